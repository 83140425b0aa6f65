"""One job of a sweep: the resources a run asks for, the claim a worker holds on a record while it
makes it (an exclusive lock file with host, pid, worker and a heartbeat; see wanda_core.cluster.sweep),
and `work`, what every executor runs for one record."""
import json
import os
import platform
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanda_core.paths import process_alive


class SweepError(ValueError):
    """Bad input, found before anything is submitted."""


@dataclass(frozen=True)
class Resources:
    """What one run asks of the executor."""
    cpus: int
    gpus: int
    mem_gb: float | None
    minutes: int

    def __str__(self) -> str:
        mem = f", {self.mem_gb:g} GB memory" if self.mem_gb else ""
        return f"{self.cpus} CPU{'s' * (self.cpus > 1)}, {self.gpus} GPU{'s' * (self.gpus != 1)}{mem}"


def resources(P, cpus: int | None = None, gpus: int | None = None, mem_gb: float | None = None,
              minutes: int | None = None) -> Resources:
    """The profile's per-run resources (run_cpus, run_gpus, run_mem_gb, run_minutes), flags first."""
    g = gpus if gpus is not None else P.run_gpus if P.run_gpus is not None else int(P.device.startswith("cuda"))
    return Resources(cpus or P.run_cpus, g, mem_gb if mem_gb is not None else P.run_mem_gb, minutes or P.run_minutes)


# --- the claim: one worker per record -----------------------------------------------------------------
class Claim:
    """An exclusive lock on one record for one worker: `<runs>/.claims/<id>.lock`, created with O_EXCL,
    holding {host, pid, worker, token}, its mtime refreshed every stale_after/5 seconds while held."""

    def __init__(self, runs_dir: str | os.PathLike, rid: str, worker: str, stale_after: float = 600.0):
        self.path = Path(runs_dir) / ".claims" / f"{rid}.lock"
        self.me = {"host": platform.node(), "pid": os.getpid(), "worker": worker, "token": uuid.uuid4().hex,
                   "since": time.time()}
        self.stale_after = stale_after
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def holder(self) -> dict | None:
        from wanda_core.runs.records import read_json

        h = read_json(self.path)
        return h if isinstance(h, dict) else None

    def stale(self, holder: dict | None) -> bool:
        """The holder's process is gone (same host), or no heartbeat for stale_after seconds."""
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True
        if holder and holder.get("host") == platform.node() and not process_alive(holder.get("pid")):
            return True
        return age > self.stale_after

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                judged = self.holder()
                if not self.stale(judged) or not self._break(judged):
                    return False
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.me, f)
                f.flush()
                os.fsync(f.fileno())
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()
            return True
        return False

    def _break(self, judged: dict | None) -> bool:
        """Move a stale lock aside (of several breakers one rename succeeds) and drop it; a lock that
        turns out to be another than the one judged stale is put back."""
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # gone already: try to take it
        from wanda_core.runs.records import read_json

        moved = read_json(aside)
        if judged is not None and moved != judged:  # taken afresh between our look and the rename
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        return True

    def _heartbeat(self) -> None:
        every = max(0.5, min(60.0, self.stale_after / 5))
        while not self._stop.wait(every):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        h = self.holder()
        if h and h.get("token") == self.me["token"]:
            self.path.unlink(missing_ok=True)


# --- the worker: the same function on every executor --------------------------------------------------
def _config(d: dict):
    from wanda_core.runs.config import RunConfig

    return RunConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def payload(job) -> dict:
    """What a worker is handed for a plan.Job: plain dicts (picklable, JSON-able)."""
    return {"id": job.id, "what": job.describe(), "configs": [c.to_dict() for c in job.configs],
            "asked": [c.to_dict() for _, c in job.asked]}


def work(job: dict, runs_dir: str, worker: str | None = None, wait: bool = True, stale_after: float = 600.0,
         threads: int | None = None, poll: float = 1.0) -> dict[str, Any]:
    """Make one job's record here, under its claim. Returns {id, status, host, pid, worker, seconds}:
    status "ran" (this worker wrote it), "done" (complete already, or made by another worker meanwhile),
    "busy" (another live worker holds it and wait is False) or "failed" (with the error)."""
    from wanda_core.runs.runner import is_complete, load_record, run

    worker = worker or f"local:{platform.node()}:{os.getpid()}"
    out = {"id": job["id"], "what": job.get("what", ""), "host": platform.node(), "pid": os.getpid(),
           "worker": worker, "seconds": 0.0}
    asked = [_config(d) for d in job.get("asked") or job["configs"]]

    def done() -> bool:
        return all(is_complete(load_record(c, runs_dir), c) for c in asked)

    t0 = time.perf_counter()
    try:
        if done():
            return {**out, "status": "done"}
        claim = Claim(runs_dir, job["id"], worker, stale_after)
        while not claim.acquire():
            if done():
                return {**out, "status": "done"}
            if not wait:
                return {**out, "status": "busy", "holder": claim.holder()}
            time.sleep(poll)
        try:
            if done():
                return {**out, "status": "done"}
            import torch

            before = os.environ.get("WANDA_WORKER"), torch.get_num_threads()
            os.environ["WANDA_WORKER"] = worker
            torch.set_num_threads(threads or before[1])
            try:
                for c in (_config(d) for d in job["configs"]):
                    rec = run(c, runs_dir, progress=False)
            finally:  # a worker in the driver's own process leaves it as it was
                torch.set_num_threads(before[1])
                if before[0] is None:
                    os.environ.pop("WANDA_WORKER", None)
                else:
                    os.environ["WANDA_WORKER"] = before[0]
            prov = rec.get("provenance") or {}
            mine = prov.get("worker") == worker and prov.get("pid") == os.getpid() and prov.get("host") == platform.node()
            return {**out, "status": "ran" if mine else "done", "seconds": time.perf_counter() - t0}
        finally:
            claim.release()
    except Exception as e:  # noqa: BLE001 -- reported in the driver's summary, the sweep goes on
        return {**out, "status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - t0}



# --- executors: each yields one result per job handed to it -------------------------------------------
def _failed(job: dict, e: BaseException) -> dict:
    return {"id": job["id"], "what": job.get("what", ""), "status": "failed", "error": f"{type(e).__name__}: {e}",
            "host": None, "worker": None, "seconds": 0.0}
