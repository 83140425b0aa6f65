"""The plan (every run the chapters need, from their own code) and the sweep on real engines: a local
Ray cluster, submitit's local executor (real subprocess jobs), Slurm's job array as a dry run, and
the faults shared storage has to survive (a worker killed mid-run, two sweeps at once)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wanda_core.cluster import executors, jobs, sweep
from wanda_core.cluster import plan as planmod
from wanda_core.cluster.jobs import Claim, Resources, SweepError
from wanda_core.runs import runner
from wanda_core.study.profiles import load_profile

CHAPTER = "02_unstructured"  # dense and the three methods at 50%: four quick runs on the tiny model


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDA_RUNS_DIR", str(tmp_path / "runs"))
    return load_profile("smoke")


def _numbers(runs_dir: Path) -> dict:
    """id -> what a run computed (sparsity per block, perplexity, zero-shot accuracies)."""
    out = {}
    for p in sorted(Path(runs_dir).glob("*.json")):
        r = json.loads(p.read_text())
        out[r["id"]] = {"prune_fields": r["prune_fields"], "ppl": {k: v["ppl"] for k, v in r["results"]["ppl"].items()},
                        "per_block": (r.get("prune") or {}).get("sparsity", {}).get("per_block"),
                        "zeroshot": {t: v["acc"] for t, v in (r["results"].get("zeroshot") or {"tasks": {}})["tasks"].items()}}
    return out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """Chapter 2's runs one after another in this process (run_many), as a book build makes them:
    the records every executor's must equal. Made once for the module (it also warms the model cache)."""
    d = tmp_path_factory.mktemp("sequential")
    jobs = planmod.make_plan(load_profile("smoke"), ["02"]).jobs
    runner.run_many([c for j in jobs for c in j.configs], d, progress=False)
    return d


def _seed(sequential: Path, runs_dir: Path, keep: int) -> list[str]:
    """Copy the first `keep` sequential records into `runs_dir` (runs already made); their ids."""
    import shutil

    runs_dir.mkdir(parents=True, exist_ok=True)
    ids = [runner.record_id(c) for j in planmod.make_plan(load_profile("smoke"), ["02"]).jobs for c in j.configs]
    for i in ids[:keep]:
        shutil.copy2(sequential / f"{i}.json", runs_dir / f"{i}.json")
        if (sequential / "weights" / f"{i}.pt").exists():
            (runs_dir / "weights").mkdir(exist_ok=True)
            shutil.copy2(sequential / "weights" / f"{i}.pt", runs_dir / "weights" / f"{i}.pt")
    return ids


# --- the plan -----------------------------------------------------------------------------------------
def test_plan_of_a_chapter_is_its_configurations(smoke):
    from wanda_core.study.experiments import sweeps, tables

    p = planmod.make_plan(smoke, ["02"])
    assert [j.id for j in p.jobs] == [runner.record_id(c) for c in tables.table3_configs(smoke)]
    assert [j.status for j in p.jobs] == ["missing"] * 4 and p.chapters == [CHAPTER]
    sw = planmod.make_plan(smoke, ["05"])  # dense + 3 methods x 3 sparsities, by hand
    assert len(sw.jobs) == 1 + 3 * len(smoke.sparsities) == len(sweeps.sparsity_configs(smoke))


def test_plan_merges_what_chapters_ask_of_one_record(smoke):
    """Chapter 2's Wanda run is chapter 4's too, which adds the zero-shot tasks: one job, both asked."""
    p = planmod.make_plan(smoke, ["02", "04"])
    wanda = next(j for j in p.jobs if j.configs[0].method == "wanda" and j.configs[0].structure == "unstructured")
    assert wanda.chapters == [CHAPTER, "04_zeroshot"] and len(wanda.configs) == 1
    assert wanda.configs[0].tasks == smoke.tasks and wanda.configs[0].save_weights
    assert planmod.merge(wanda.configs[0], wanda.configs[0].replace(seqlen=32)) is None  # another window: another run


def test_plan_of_the_paper_profile_needs_no_hub():
    p = planmod.make_plan(load_profile("paper"))
    assert len(p.jobs) > 100 and {j.configs[0].model for j in p.jobs} >= {"meta-llama/Llama-2-7b-hf"}
    assert "nothing is missing" not in planmod.report(p)


def test_estimate_comes_from_records(smoke):
    P = smoke
    runner.run(P.config(method="magnitude", sparsity=0.5, save_weights=True), P.runs_dir, progress=False)
    p = planmod.make_plan(P, ["02"])
    est = {j.configs[0].method: j.estimate_s for j in p.jobs}
    assert est["magnitude"] is None  # done: nothing to estimate
    assert est["sparsegpt"] is None  # no record of the method yet
    text = planmod.report(p)
    assert "1 done, 3 to do" in text and "no timing to go by" in text


# --- Ray ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_equals_a_sequential_run(smoke, sequential, ray_cluster):
    out = sweep.sweep(smoke, "ray", workers=2, chapters=["02"], progress=False, echo=lambda s: None)
    assert out.count("ran") == 4 and out.count("failed") == 0, out.summary()
    assert len({r["worker"] for r in out.results}) == 2  # two Ray workers shared the runs
    assert _numbers(smoke.runs_dir) == _numbers(sequential)  # same ids, same numbers
    for p in Path(smoke.runs_dir).glob("*.json"):
        prov = json.loads(p.read_text())["provenance"]
        assert prov["worker"].startswith("ray:") and prov["host"] and prov["pid"]
    assert not list((Path(smoke.runs_dir) / ".claims").glob("*"))  # every claim released
    assert "nothing is missing" in planmod.report(planmod.make_plan(smoke, ["02"]))
    again = sweep.sweep(smoke, "ray", workers=2, chapters=["02"], progress=False, echo=lambda s: None)
    assert again.results == []  # nothing left to hand out


def test_ray_refuses_what_no_node_offers(ray_cluster):
    with pytest.raises(SweepError, match="no node of the Ray cluster offers"):
        with executors.RayCluster(1, Resources(cpus=1, gpus=1, mem_gb=None, minutes=5)):
            pass
    with pytest.raises(SweepError, match="no node"):
        with executors.RayCluster(1, Resources(cpus=64, gpus=0, mem_gb=None, minutes=5)):
            pass


def test_unreachable_ray_address_fails_fast(smoke):
    t = time.perf_counter()
    with pytest.raises(SweepError, match="cannot reach a Ray cluster at 127.0.0.1:9"):
        sweep.sweep(smoke, "ray", workers=1, chapters=["02"], ray_address="127.0.0.1:9", echo=lambda s: None)
    with pytest.raises(SweepError, match="HOST:PORT"):
        executors.check_ray_address("headnode")
    assert time.perf_counter() - t < 15


# --- submitit and Slurm -----------------------------------------------------------------------------
def test_submitit_local_executor_runs_real_jobs(smoke, sequential, tmp_path):
    pytest.importorskip("submitit")
    _seed(sequential, Path(smoke.runs_dir), keep=2)  # two runs made already: a job array of the other two
    out = sweep.sweep(smoke, "slurm", workers=2, chapters=["02"], cluster="local", slurm_folder=str(tmp_path / "jobs"),
                      progress=False, echo=lambda s: None)
    assert out.count("ran") == 2, out.summary()
    workers = {r["worker"] for r in out.results}
    assert all(w.startswith("local:") for w in workers) and len(workers) == 2  # one subprocess job per run
    assert all(r["pid"] != os.getpid() for r in out.results)
    assert _numbers(smoke.runs_dir) == _numbers(sequential)


def test_slurm_dry_run_prints_the_job_array(smoke, monkeypatch):
    lines = []
    res = Resources(cpus=4, gpus=1, mem_gb=32, minutes=90)
    sweep.sweep(smoke, "slurm", workers=3, chapters=["02"], res=res, partition="gpu", dry_run=True, echo=lines.append)
    text = "\n".join(lines)
    for flag in ("#SBATCH --array=0-3%3", "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --time=90", "#SBATCH --mem=32768MB", "submitit.core._submit"):
        assert flag in text, flag
    assert sum(line.startswith("  [") for line in lines) == 4 and not Path(smoke.runs_dir).exists()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SweepError, match="no `sbatch`.*--dry-run"):
        sweep.sweep(smoke, "slurm", chapters=["02"], echo=lambda s: None)


def test_slurm_checks_partition_and_resources(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (bin_ / "sinfo").write_text("#!/bin/sh\necho 'cpu* 32 128000 (null)'\necho 'gpu 64 512000 gpu:a100:4'\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    executors.check_slurm("gpu", Resources(cpus=8, gpus=1, mem_gb=64, minutes=60))  # fits a gpu node
    with pytest.raises(SweepError, match="no Slurm partition 'a100'; valid: cpu, gpu"):
        executors.check_slurm("a100", Resources(cpus=8, gpus=1, mem_gb=64, minutes=60))
    with pytest.raises(SweepError, match="no node of partition cpu offers"):
        executors.check_slurm("cpu", Resources(cpus=8, gpus=1, mem_gb=64, minutes=60))
    with pytest.raises(SweepError, match="no node"):
        executors.check_slurm(None, Resources(cpus=8, gpus=8, mem_gb=64, minutes=60))


# --- faults ---------------------------------------------------------------------------------------------
def test_claim_is_exclusive_and_a_dead_holders_is_broken(tmp_path):
    a, b = Claim(tmp_path, "x", "a"), Claim(tmp_path, "x", "b")
    assert a.acquire() and not b.acquire()
    a.release()
    assert b.acquire()
    b.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".claims" / "x.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid}))
    assert a.acquire()  # its process is gone: stale at once
    a.release()
    (tmp_path / ".claims" / "x.lock").write_text(json.dumps({"host": "another-node", "pid": 1}))
    assert not Claim(tmp_path, "x", "c", stale_after=60).acquire()  # another host, fresh heartbeat: held
    old = time.time() - 120
    os.utime(tmp_path / ".claims" / "x.lock", (old, old))
    assert Claim(tmp_path, "x", "c", stale_after=60).acquire()  # no heartbeat for 2 minutes: a dead node


KILLED = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from wanda_core.runs import runner
    from wanda_core.cluster import jobs
    real = runner.engine.prune_model
    def slow(*a, **k):
        Path(sys.argv[3]).touch()      # mid-run: claimed, model loaded, pruning
        time.sleep(60)
        return real(*a, **k)
    runner.engine.prune_model = slow
    jobs.work(json.loads(sys.argv[1]), sys.argv[2], worker="doomed")
""")


def test_a_killed_worker_leaves_no_record_and_the_next_sweep_redoes_it(smoke, sequential, tmp_path):
    runs = Path(smoke.runs_dir)
    _seed(sequential, runs, keep=3)  # dense, magnitude, SparseGPT made; Wanda's worker is killed mid-run
    job = next(j for j in planmod.make_plan(smoke, ["02"]).jobs if j.configs[0].method == "wanda")
    flag = tmp_path / "pruning"
    p = subprocess.Popen([sys.executable, "-c", KILLED, json.dumps(jobs.payload(job)), str(runs), str(flag)])
    try:
        deadline = time.time() + 600  # seconds on an idle machine; a bound for a loaded one
        while not flag.exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert flag.exists(), "the worker never reached its prune"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert not (runs / f"{job.id}.json").exists() and (runs / ".claims" / f"{job.id}.lock").exists()
    assert planmod.job_status(job, runs) == "missing"
    out = sweep.sweep(smoke, "local", workers=1, chapters=["02"], progress=False, echo=lambda s: None)
    assert [r["id"] for r in out.results if r["status"] == "ran"] == [job.id], out.summary()
    rec = json.loads((runs / f"{job.id}.json").read_text())
    assert rec["provenance"]["worker"] != "doomed" and not (runs / ".claims" / f"{job.id}.lock").exists()
    assert _numbers(runs) == _numbers(sequential)


def test_two_sweeps_at_once_write_each_record_once(smoke):
    env = dict(os.environ, WANDA_RUNS_DIR=os.environ["WANDA_RUNS_DIR"])
    cmd = [sys.executable, "-m", "wanda_core", "sweep", "smoke", "--chapters", "02", "--workers", "1", "--quiet"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    made = []
    for out, _ in outs:
        line = next(x for x in out.splitlines() if " made by this sweep" in x)
        made.append(int(line.split(": ", 1)[1].split(" made by this sweep")[0]))
    runs = Path(smoke.runs_dir)
    assert sum(made) == 4 and len(list(runs.glob("*.json"))) == 4  # each record made by exactly one sweep
    assert planmod.make_plan(smoke, ["02"]).missing() == []
    assert not list((runs / ".claims").glob("*"))
