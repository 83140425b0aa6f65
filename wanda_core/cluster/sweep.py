"""The sweep: make the runs a plan says are missing, on a process pool, a Ray cluster or Slurm.

    python -m wanda_core sweep smoke                                   # a local process pool
    python -m wanda_core sweep smoke --executor ray --workers 2        # a local Ray cluster
    python -m wanda_core sweep paper --executor ray --ray-address HEAD:6379
    python -m wanda_core sweep paper --executor slurm --partition gpu --dry-run   # the job array

The runs are those of `wanda_core.cluster.plan` (the chapters' own configurations), one job per record.
Every worker writes into the profile's runs directory, the one the chapters read (runs/<profile>,
or $WANDA_RUNS_DIR/<profile>): after a sweep, `make book` prunes nothing. Safe on shared storage:

- records are written atomically (records.atomic_write_json): nothing half-written is ever read;
- a worker claims a record before making it: the lock file <runs>/.claims/<id>.lock is created
  exclusively (O_EXCL, atomic on local disks and NFS) and holds the worker's host, pid and name; the
  worker touches it while it runs. Another worker handed the same record takes the next one and comes
  back to it at the end (then it waits). A lock whose process is gone (same host) or whose heartbeat
  stopped for `--stale-after` seconds (a dead node) is broken, so a killed run is redone by the next sweep;
- under the claim a complete record is left alone, and the runner looks again just before it writes:
  a finished record is never overwritten by a duplicate.

Each record's provenance names the host, process and worker ($WANDA_WORKER) that made it.
Bad input is refused before anything is submitted: an unreachable Ray address, no `sbatch` for
Slurm, a run asking for more than any node offers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

EXECUTORS = ("local", "ray", "slurm")
# variables a worker on another process or node needs as the driver has them (model cache, offline switches)
FORWARD_ENV = ("WANDA_CACHE", "WANDA_RUNS_DIR", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
               "TOKENIZERS_PARALLELISM", "PYTHONWARNINGS")


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
def _alive(pid: int | None) -> bool:
    """Is process `pid` of this host running (a zombie, killed but not yet reaped, is not)?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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
        if holder and holder.get("host") == platform.node() and not _alive(holder.get("pid")):
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


def _ray_task(job: dict, runs_dir: str, wait: bool, stale_after: float, threads: int) -> dict:
    import ray

    worker = f"ray:{platform.node()}:{ray.get_runtime_context().get_worker_id()[:12]}"
    return work(job, runs_dir, worker, wait, stale_after, threads)


def _submitit_task(job: dict, runs_dir: str, wait: bool, stale_after: float, threads: int) -> dict:
    import submitit

    env = submitit.JobEnvironment()
    return work(job, runs_dir, f"{env.cluster}:{env.job_id}", wait, stale_after, threads)


# --- executors: each yields one result per job handed to it -------------------------------------------
def _failed(job: dict, e: BaseException) -> dict:
    return {"id": job["id"], "what": job.get("what", ""), "status": "failed", "error": f"{type(e).__name__}: {e}",
            "host": None, "worker": None, "seconds": 0.0}


class LocalPool:
    """A process pool on this machine (spawned processes, each with res.cpus torch threads); one
    worker runs in this process (no second Python to start)."""

    def __init__(self, workers: int, res: Resources):
        if res.gpus:
            import torch

            have = torch.cuda.device_count()
            if workers * res.gpus > have:
                raise SweepError(f"{workers} workers x {res.gpus} GPU(s) per run, but this machine has {have} GPU(s): "
                                 f"use --workers {max(have // res.gpus, 1)}" if have >= res.gpus else
                                 f"each run asks for {res.gpus} GPU(s) and this machine has {have}: sweep on a "
                                 "GPU cluster (--executor ray or slurm), or use a CPU profile")
        self.workers, self.res = workers, res

    def __enter__(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.pool = None
        if self.workers == 1:
            return self
        ctx = mp.get_context("spawn")
        gpus = ctx.Queue()
        for w in range(self.workers):
            gpus.put(",".join(str(w * self.res.gpus + i) for i in range(self.res.gpus)))
        self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_pool_init,
                                        initargs=(gpus, bool(self.res.gpus)))
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def results(self, jobs: list[dict], runs_dir: str, wait: bool, stale_after: float) -> Iterator[dict]:
        from concurrent.futures import as_completed

        if self.pool is None:
            for j in jobs:
                yield work(j, runs_dir, None, wait, stale_after, self.res.cpus)
            return

        futs = {self.pool.submit(work, j, runs_dir, None, wait, stale_after, self.res.cpus): j for j in jobs}
        for f in as_completed(futs):
            try:
                yield f.result()
            except Exception as e:  # noqa: BLE001 -- a pool process died (killed, out of memory)
                yield _failed(futs[f], e)


def _pool_init(gpus, use_gpus: bool) -> None:
    if use_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must answer before anything is submitted."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--ray-address {address!r} is not HOST:PORT (the head node's address, e.g. 10.0.0.5:6379), "
                         "`auto`, or left out to start a local Ray cluster")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise SweepError(f"cannot reach a Ray cluster at {address} ({e}): start one with `ray start --head` on the "
                         "head node and pass its address, or leave --ray-address out to start a local one") from None


class RayCluster:
    """One Ray task per job, at most `workers` in flight, each asking for the run's resources."""

    def __init__(self, workers: int, res: Resources, address: str | None = None):
        check_ray_address(address)
        self.workers, self.res, self.address = workers, res, address

    def __enter__(self):
        import ray

        self.started = not ray.is_initialized()
        if self.started:
            kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
            try:
                if self.address:
                    ray.init(address=self.address, **kw)
                else:  # a local cluster with room for `workers` runs at once
                    ray.init(num_cpus=self.workers * self.res.cpus, **kw)
            except ConnectionError as e:
                raise SweepError(f"cannot connect to the Ray cluster at {self.address}: {e}") from None
        try:
            self.check()
        except SweepError:
            self.__exit__()
            raise
        return self

    def check(self) -> None:
        """Some live node offers what one run asks for (CPUs, GPUs, memory), or a clear error."""
        import ray

        need = {"CPU": self.res.cpus, "GPU": self.res.gpus, "memory": (self.res.mem_gb or 0) * 2**30}
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if not any(all(n["Resources"].get(k, 0) >= v for k, v in need.items() if v) for n in nodes):
            offer = "; ".join(f"{n.get('NodeManagerAddress')}: {n['Resources'].get('CPU', 0):g} CPUs, "
                              f"{n['Resources'].get('GPU', 0):g} GPUs, {n['Resources'].get('memory', 0) / 2**30:.0f} GB"
                              for n in nodes) or "no live node"
            raise SweepError(f"no node of the Ray cluster offers what one run asks for ({self.res}); its nodes: {offer}. "
                             "Lower --cpus-per-task, --gpus-per-task or --mem-gb, or add such a node")

    def __exit__(self, *exc):
        if self.started:
            import ray

            ray.shutdown()

    def results(self, jobs: list[dict], runs_dir: str, wait: bool, stale_after: float) -> Iterator[dict]:
        import ray

        env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
        task = ray.remote(_ray_task).options(
            num_cpus=self.res.cpus, num_gpus=self.res.gpus, memory=int(self.res.mem_gb * 2**30) if self.res.mem_gb else None,
            max_retries=2, runtime_env={"env_vars": env} if env and not self.started else None)
        queue, pending = list(jobs), {}
        while queue or pending:
            while queue and len(pending) < self.workers:
                j = queue.pop(0)
                pending[task.remote(j, runs_dir, wait, stale_after, self.res.cpus)] = j
            ready, _ = ray.wait(list(pending), num_returns=1)
            j = pending.pop(ready[0])
            try:
                yield ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 -- a worker or node died past its retries
                yield _failed(j, e)


def check_slurm(partition: str | None, res: Resources) -> None:
    """sbatch is on PATH; with sinfo, the partition exists and one of its nodes offers the run's needs."""
    if shutil.which("sbatch") is None:
        raise SweepError("no `sbatch` on this machine, so no Slurm to submit to: run this on the cluster's login "
                         "node, add --dry-run to see the job array it would submit, or use --executor ray or local")
    if shutil.which("sinfo") is None:
        return
    out = subprocess.run(["sinfo", "-h", "-o", "%P %c %m %G"], capture_output=True, text=True).stdout.split("\n")
    nodes = [line.split() for line in out if line.strip()]
    parts = {n[0].rstrip("*") for n in nodes}
    if partition and partition not in parts:
        raise SweepError(f"no Slurm partition {partition!r}; valid: {', '.join(sorted(parts))}")

    def gpus(gres: str) -> int:
        return sum(int(g.split(":")[-1].split("(")[0]) for g in gres.split(",")
                   if g.startswith("gpu") and g.split(":")[-1].split("(")[0].isdigit())

    def mem_mb(m: str) -> float:
        return float(m.rstrip("+")) if m.rstrip("+").isdigit() else float("inf")

    fit = [n for n in nodes if (not partition or n[0].rstrip("*") == partition) and int(n[1].rstrip("+")) >= res.cpus
           and mem_mb(n[2]) >= (res.mem_gb or 0) * 1024 and gpus(n[3] if len(n) > 3 else "") >= res.gpus]
    if not fit:
        raise SweepError(f"no node{' of partition ' + partition if partition else ''} offers what one run asks for "
                         f"({res}); lower --cpus-per-task, --gpus-per-task or --mem-gb, or choose another --partition")


def slurm_parameters(res: Resources, workers: int, partition: str | None) -> dict[str, Any]:
    """submitit's parameters for the job array (AutoExecutor names)."""
    p: dict[str, Any] = {"name": "wanda-sweep", "timeout_min": res.minutes, "cpus_per_task": res.cpus,
                         "gpus_per_node": res.gpus, "slurm_array_parallelism": workers}
    if res.mem_gb:
        p["mem_gb"] = res.mem_gb
    if partition:
        p["slurm_partition"] = partition
    return p


def sbatch_text(n: int, res: Resources, workers: int, partition: str | None, folder: str | os.PathLike) -> str:
    """The sbatch script submitit writes for an array of `n` runs (what `--dry-run` prints)."""
    from submitit.slurm.slurm import _make_sbatch_string

    kw: dict[str, Any] = {"job_name": "wanda-sweep", "time": res.minutes, "cpus_per_task": res.cpus,
                          "gpus_per_node": res.gpus or None, "array_parallelism": workers, "map_count": n}
    if res.mem_gb:
        kw["mem"] = f"{int(res.mem_gb * 1024)}MB"
    if partition:
        kw["partition"] = partition
    cmd = " ".join([sys.executable, "-u -m submitit.core._submit", str(folder)])
    return _make_sbatch_string(command=cmd, folder=folder, **kw)


class Submitit:
    """A job array through submitit: Slurm (cluster="slurm"), or its local executor ("local": real
    subprocess jobs on this machine, all at once) or debug executor ("debug": in this process)."""

    def __init__(self, workers: int, res: Resources, folder: str | os.PathLike, partition: str | None = None,
                 cluster: str = "slurm"):
        if cluster == "slurm":
            check_slurm(partition, res)  # here too for a direct use (sweep() checks before planning)
        self.workers, self.res, self.folder, self.partition, self.cluster = workers, res, Path(folder), partition, cluster

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def results(self, jobs: list[dict], runs_dir: str, wait: bool, stale_after: float) -> Iterator[dict]:
        import submitit

        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        params = slurm_parameters(self.res, self.workers, self.partition)
        if self.cluster != "slurm":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        ex.update_parameters(**params)
        n = len(jobs)
        submitted = ex.map_array(_submitit_task, jobs, [runs_dir] * n, [wait] * n, [stale_after] * n, [self.res.cpus] * n)
        by_id = {s.job_id: j for s, j in zip(submitted, jobs)}
        for s in submitit.helpers.as_completed(submitted, poll_frequency=1.0):
            try:
                yield s.result()
            except Exception as e:  # noqa: BLE001 -- the job failed or was killed; its log says why
                yield {**_failed(by_id[s.job_id], e), "log": str(s.paths.stderr)}


# --- the driver -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    results: list[dict]
    seconds: float

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.results)

    def summary(self) -> str:
        lines = [f"{len(self.results)} runs in {self.seconds:.0f} s: {self.count('ran')} made by this sweep, "
                 f"{self.count('done')} made by another worker or before, {self.count('failed')} failed"]
        for r in self.results:
            if r["status"] == "failed":
                lines.append(f"  failed {r['id']} ({r.get('what', '')}): {r['error'].splitlines()[0] if r['error'] else ''}"
                             + (f" [log: {r['log']}]" if r.get("log") else ""))
        if self.count("failed"):
            lines.append("a rerun of the same command redoes the failed runs (finished records are kept)")
        return "\n".join(lines)


def drive(ex, jobs: list[dict], runs_dir: str, stale_after: float, progress: bool = True) -> list[dict]:
    """Hand `jobs` to executor `ex`: first each once without waiting on another worker's claim, then
    the claimed ones again, waiting for their holder (or its claim to go stale)."""
    from tqdm import tqdm

    out: list[dict] = []
    with tqdm(total=len(jobs), desc="runs", unit="run", disable=not progress) as bar:
        busy: list[dict] = []
        ids = {j["id"]: j for j in jobs}
        for wait, todo in ((False, jobs), (True, None)):
            todo = todo if todo is not None else [ids[r["id"]] for r in busy]
            if not todo:
                break
            busy = []
            for r in ex.results(todo, runs_dir, wait, stale_after):
                if r["status"] == "busy":
                    busy.append(r)
                    continue
                out.append(r)
                bar.update(1)
                bar.set_postfix(failed=sum(x["status"] == "failed" for x in out))
    return out


def sweep(P, executor: str = "local", workers: int | None = None, chapters: list[str] | None = None,
          res: Resources | None = None, ray_address: str | None = None, partition: str | None = None,
          slurm_folder: str | None = None, stale_after: float = 600.0, progress: bool = True,
          cluster: str = "slurm", dry_run: bool = False, echo: Callable[[str], None] = print) -> Outcome:
    """Make every missing run of the plan of `P` (its chosen chapters) with `executor`."""
    from wanda_core.cluster.plan import make_plan

    if executor not in EXECUTORS:
        raise SweepError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    res = res or resources(P)
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be >= 1, got {workers}")
    if not dry_run and executor == "slurm" and cluster == "slurm":
        check_slurm(partition, res)  # the quick checks first, before the chapters are read
    if not dry_run and executor == "ray":
        check_ray_address(ray_address)
    plan = make_plan(P, chapters)
    todo = [payload(j) for j in plan.missing()]
    # default: the whole array at once on Slurm (the scheduler queues it), this machine's cores otherwise
    workers = workers or (max(len(todo), 1) if executor == "slurm" else max(1, (os.cpu_count() or 1) // res.cpus))
    runs_dir = str(Path(P.runs_dir).resolve())
    folder = Path(slurm_folder or Path(runs_dir) / ".slurm")
    echo(f"profile {P.name}: {len(plan.jobs)} runs, {len(todo)} to do, into {runs_dir}")
    if dry_run:
        echo(f"would hand {len(todo)} runs to {executor} with {workers} workers, each asking for {res}")
        if executor == "slurm" and todo:
            echo(f"a Slurm job array of {len(todo)} tasks, at most {workers} at a time; its sbatch script:")
            echo(sbatch_text(len(todo), res, workers, partition, folder / "%j"))
        for i, j in enumerate(todo):
            echo(f"  [{i}] {j['id']}  {j['what']}")
        return Outcome([], 0.0)
    if not todo:
        echo("nothing to do: every record is there")
        return Outcome([], 0.0)
    t0 = time.perf_counter()
    if executor == "local":
        ex = LocalPool(workers, res)
    elif executor == "ray":
        ex = RayCluster(workers, res, ray_address)
    else:
        ex = Submitit(workers, res, folder, partition, cluster)
    with ex:
        results = drive(ex, todo, runs_dir, stale_after, progress)
    out = Outcome(results, time.perf_counter() - t0)
    echo(out.summary())
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="make the runs a plan lists as missing: process pool, Ray or Slurm")
    p.add_argument("profile", help="smoke, default, paper, scale or a path to a .yaml profile")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: a process pool here; ray: a Ray cluster; slurm: a job array via submitit (default: local)")
    p.add_argument("--workers", type=int, default=None,
                   help="runs at once (default: this machine's cores / --cpus-per-task; Slurm: the array's parallelism)")
    p.add_argument("--chapters", nargs="+", default=None, metavar="CHAPTER", help="only these chapters' runs")
    p.add_argument("--dry-run", action="store_true", help="print what would be submitted, submit nothing")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="an existing Ray cluster's head (or `auto`); default: start a local one")
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--time", type=int, default=None, metavar="MINUTES", help="time limit per run (default: the profile's run_minutes)")
    p.add_argument("--cpus-per-task", type=int, default=None, help="CPU cores per run (default: the profile's run_cpus)")
    p.add_argument("--gpus-per-task", type=int, default=None, help="GPUs per run (default: the profile's run_gpus)")
    p.add_argument("--mem-gb", type=float, default=None, help="memory per run (default: the profile's run_mem_gb)")
    p.add_argument("--slurm-folder", default=None, help="submitit's job files and logs (default: <runs>/.slurm)")
    p.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                   help="a claim without heartbeat this long is a dead worker's, and its run is redone (default: 600)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(a: argparse.Namespace) -> int:
    from wanda_core.study.profiles import load_profile

    P = load_profile(a.profile)
    res = resources(P, a.cpus_per_task, a.gpus_per_task, a.mem_gb, a.time)
    out = sweep(P, a.executor, a.workers, a.chapters, res, a.ray_address, a.partition, a.slurm_folder,
                a.stale_after, progress=not a.quiet, dry_run=a.dry_run)
    return 1 if out.count("failed") else 0
