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
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from wanda_core.cluster.jobs import Resources, SweepError, payload, resources
from wanda_core.cluster.executors import LocalPool, RayCluster, Submitit, check_ray_address, check_slurm, sbatch_text

EXECUTORS = ("local", "ray", "slurm")


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
