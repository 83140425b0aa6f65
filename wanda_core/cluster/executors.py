"""The executors of a sweep, each yielding one result per job handed to it: a local process pool, a Ray
cluster (one task per run, with the resources the profile asks for) and Slurm through submitit (a job
array, or the script it would submit with --dry-run)."""
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from wanda_core.cluster.jobs import Resources, SweepError, _failed, work

# variables a worker on another process or node needs as the driver has them (model cache, offline switches)
FORWARD_ENV = ("WANDA_CACHE", "WANDA_RUNS_DIR", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
               "TOKENIZERS_PARALLELISM", "PYTHONWARNINGS")


def _ray_task(job: dict, runs_dir: str, wait: bool, stale_after: float, threads: int) -> dict:
    import ray

    worker = f"ray:{platform.node()}:{ray.get_runtime_context().get_worker_id()[:12]}"
    return work(job, runs_dir, worker, wait, stale_after, threads)


def _submitit_task(job: dict, runs_dir: str, wait: bool, stale_after: float, threads: int) -> dict:
    import submitit

    env = submitit.JobEnvironment()
    return work(job, runs_dir, f"{env.cluster}:{env.job_id}", wait, stale_after, threads)



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
