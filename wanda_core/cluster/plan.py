"""The plan: every run configuration the book's chapters need for a profile, which of their records
exist, and an estimate of what the rest costs.

    python -m wanda_core plan smoke                     # every chapter
    python -m wanda_core plan paper --chapters 02 04    # two chapters (by number or name)
    python -m wanda_core plan default --missing         # only the runs still to do

    from wanda_core.cluster.plan import make_plan
    p = make_plan(load_profile("smoke"))
    p.jobs            # one Job per record: its merged configuration and what each chapter asks of it
    p.missing()       # the jobs whose record is absent or lacks an evaluation a chapter asks for

The configurations come from the book itself: each chapter's calls into wanda_core.study.experiments that
take the profile are executed under `runner.collecting()`, where run() records its configuration and
returns a stand-in instead of running (the experiment stops when it reads one). A chapter that starts
calling another experiment is in the plan the same day.

Several chapters can ask for the same record (Table 3's Wanda run is chapter 2's, and chapter 4 adds
zero-shot tasks to it): a Job merges them into one configuration with every dataset and task asked for,
so one worker makes the record every chapter then reuses.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanda_core.runs.config import RunConfig

EXPERIMENTS = "wanda_core.study.experiments"
# the fields one record's configurations may differ in and still be made by one run: the union is asked for
MERGED_FIELDS = ("eval", "tasks", "save_weights")
TASK_FIELDS = ("task_limit", "task_dir", "task_source")


# --- which calls of a chapter build runs --------------------------------------------------------------
def _code(nb: Path) -> list[ast.Module]:
    from wanda_core.report.bookbuild import read_notebook

    return [ast.parse(c["source"]) for c in read_notebook(nb).cells if c["cell_type"] == "code"]


def experiment_calls(nb: Path) -> list[tuple[str, dict[str, Any]]]:
    """(source, names) of each call in chapter `nb` into wanda_core.experiments that is handed the
    profile: `names` binds what the source needs (the modules or functions it calls, and "P").
    Calls that take other values (a frame computed earlier) only reshape records already asked for."""
    mods: dict[str, str] = {}    # local name -> experiments module
    funcs: dict[str, tuple[str, str]] = {}  # local name -> (module, function)
    prof: set[str] = set()
    trees = _code(nb)
    for tree in trees:
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(EXPERIMENTS):
                for a in n.names:
                    if n.module == EXPERIMENTS:
                        mods[a.asname or a.name] = f"{EXPERIMENTS}.{a.name}"
                    else:
                        funcs[a.asname or a.name] = (n.module, a.name)
            elif isinstance(n, ast.Import):
                for a in n.names:
                    if a.name.startswith(EXPERIMENTS + ".") and a.asname:
                        mods[a.asname] = a.name
            elif isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
                f = n.value.func
                if (getattr(f, "attr", None) or getattr(f, "id", None)) in ("setup", "load_profile"):
                    prof.update(t.id for t in n.targets if isinstance(t, ast.Name))
    out = []
    for tree in trees:
        for n in ast.walk(tree):
            if not isinstance(n, ast.Call):
                continue
            f = n.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in mods:
                target = importlib.import_module(mods[f.value.id])
                names = {f.value.id: target}
            elif isinstance(f, ast.Name) and f.id in funcs:
                names = {f.id: getattr(importlib.import_module(funcs[f.id][0]), funcs[f.id][1])}
            else:
                continue
            values = list(n.args) + [k.value for k in n.keywords]
            takes_profile = any(isinstance(v, ast.Name) and v.id in prof for v in values)
            if takes_profile and all(isinstance(v, ast.Constant) or (isinstance(v, ast.Name) and v.id in prof)
                                     for v in values):
                names.update({p: None for p in prof})
                out.append((ast.unparse(n), names))
    return out


def collect(P, chapters: list[str] | None = None) -> list[tuple[str, RunConfig]]:
    """(chapter, configuration) of every run the chosen chapters ask for, in the book's order."""
    from wanda_core.report.bookbuild import find_notebook, notebooks
    from wanda_core.runs.runner import PlanStop, collecting

    nbs = notebooks() if not chapters else [find_notebook(c) for c in chapters]
    found: list[tuple[str, RunConfig]] = []
    for nb in nbs:
        for src, names in experiment_calls(nb):
            ns = {k: (P if v is None else v) for k, v in names.items()}
            with collecting() as got:
                try:
                    eval(compile(src, f"<{nb.stem}>", "eval"), ns)  # the chapter's own call, collecting
                except PlanStop:
                    pass
            for cfg, score_fn in got:
                if score_fn is not None:
                    raise ValueError(f"{nb.stem}: `{src}` runs a custom score function, which a plan cannot ship to workers")
                found.append((nb.stem, cfg))
    return found


# --- one job per record -------------------------------------------------------------------------------
def _key(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    for k in MERGED_FIELDS:
        d.pop(k)
    if not cfg.tasks:
        for k in TASK_FIELDS:
            d.pop(k)
    return d


def merge(a: RunConfig, b: RunConfig) -> RunConfig | None:
    """One configuration that makes the record both `a` and `b` ask for (every dataset, every task,
    weights kept if either keeps them), or None when they differ in anything else."""
    ka, kb = _key(a), _key(b)  # they differ in keys only by the task fields of one without tasks
    if any(ka[k] != kb[k] for k in set(ka) & set(kb)):
        return None
    base = a if a.tasks else b
    return base.replace(eval=tuple(dict.fromkeys((*a.eval, *b.eval))), tasks=tuple(dict.fromkeys((*a.tasks, *b.tasks))),
                        save_weights=a.save_weights or b.save_weights)


@dataclass
class Job:
    """The runs of one record: `configs` run in order by one worker (usually one merged configuration)."""
    id: str
    configs: list[RunConfig]
    asked: list[tuple[str, RunConfig]] = field(default_factory=list)  # (chapter, configuration) as the book asks
    status: str = "missing"          # done | partial (a record lacks an evaluation) | missing
    estimate_s: float | None = None  # seconds to make it, from records' timings (None: no timing to go by)

    @property
    def chapters(self) -> list[str]:
        return list(dict.fromkeys(ch for ch, _ in self.asked))

    def describe(self) -> str:
        c = self.configs[0]
        what = c.method if c.method == "dense" else (
            f"{c.method} {round(100 * c.sparsity)}%" if c.structure == "unstructured" else f"{c.method} {c.structure}")
        extra = [f"{k}={v}" for k, v in (("score", c.score), ("group", c.group), ("update", c.weight_update),
                                         ("allocation", c.allocation), ("refine", c.refine))
                 if v not in (None, "none", "uniform")]
        if c.method not in ("dense", "magnitude") or c.score or c.weight_update != "none":
            extra += [f"n={c.nsamples}", f"seed={c.seed}"]
        if c.tasks:
            extra.append(f"{len(c.tasks)} tasks")
        return " ".join([c.model, what, *extra])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "configs": [c.to_dict() for c in self.configs], "chapters": self.chapters,
                "status": self.status, "estimate_s": self.estimate_s, "what": self.describe()}


def jobs_of(asked: list[tuple[str, RunConfig]]) -> list[Job]:
    """Group the asked-for configurations by record id, merging those one run can make."""
    from wanda_core.runs.runner import record_id

    jobs: dict[str, Job] = {}
    for ch, cfg in asked:
        rid = record_id(cfg)
        job = jobs.setdefault(rid, Job(rid, []))
        job.asked.append((ch, cfg))
        for i, c in enumerate(job.configs):
            m = merge(c, cfg)
            if m is not None:
                job.configs[i] = m
                break
        else:
            job.configs.append(cfg)
    return list(jobs.values())


def job_status(job: Job, runs_dir: str | Path) -> str:
    """done when every chapter's configuration finds its record complete (the book reuses it as is)."""
    from wanda_core.runs.runner import is_complete, load_record

    recs = [load_record(c, runs_dir) for _, c in job.asked]
    if all(is_complete(r, c) for r, (_, c) in zip(recs, job.asked)):
        return "done"
    return "partial" if any(r is not None for r in recs) else "missing"


# --- cost from existing records -----------------------------------------------------------------------
def _engine_key(c: dict[str, Any]) -> tuple:
    return (c["model"], c["method"], c.get("weight_update", "none"), c.get("allocation", "uniform"),
            c.get("refine", "none"), c["device"], c["dtype"])


class Timings:
    """Seconds per phase from the records of `dirs`: prune time by model and method (the engine's
    settings), perplexity time per dataset by model, zero-shot time per task by model and task limit."""

    def __init__(self, dirs):
        from wanda_core.runs.records import read_json

        self.prune: dict[tuple, list[float]] = {}
        self.prune_by_method: dict[tuple, list[float]] = {}
        self.ppl: dict[tuple, list[float]] = {}
        self.task: dict[tuple, list[float]] = {}
        self.records = 0
        for d in dirs:
            for p in sorted(Path(d).glob("*.json")):
                r = read_json(p)
                if not isinstance(r, dict) or r.get("status") != "complete" or "config" not in r:
                    continue
                self.records += 1
                c, sec = r["config"], r.get("seconds") or {}
                if c["method"] != "dense" and sec.get("prune") is not None:
                    self.prune.setdefault(_engine_key(c), []).append(sec["prune"])
                    self.prune_by_method.setdefault((c["model"], c["method"], c["device"]), []).append(sec["prune"])
                ppl_s = 0.0
                for ds, v in r["results"].get("ppl", {}).items():
                    if v.get("seconds") is not None:
                        self.ppl.setdefault((c["model"], ds, v["seqlen"], v["max_windows"], c["device"]), []).append(v["seconds"])
                        ppl_s += v["seconds"]
                z = r["results"].get("zeroshot")
                if z and sec.get("eval") is not None and z.get("tasks"):
                    per = max(sec["eval"] - ppl_s, 0.0) / len(z["tasks"])
                    self.task.setdefault((c["model"], z.get("limit"), c["device"]), []).append(per)

    def estimate(self, cfg: RunConfig) -> float | None:
        """Seconds to prune and evaluate `cfg`, or None if no record of its model and method says."""
        c = cfg.to_dict()
        total = 0.0
        if cfg.method != "dense":
            t = self.prune.get(_engine_key(c)) or self.prune_by_method.get((cfg.model, cfg.method, cfg.device))
            if not t:
                return None
            total += statistics.median(t)
        for ds in cfg.eval:
            t = self.ppl.get((cfg.model, ds, cfg.seqlen, cfg.eval_windows, cfg.device))
            if not t:
                return None
            total += statistics.median(t)
        if cfg.tasks:
            t = self.task.get((cfg.model, cfg.task_limit, cfg.device))
            if not t:
                return None
            total += statistics.median(t) * len(cfg.tasks)
        return total


# --- the plan -----------------------------------------------------------------------------------------
@dataclass
class Plan:
    profile: str
    runs_dir: str
    chapters: list[str]
    jobs: list[Job]
    timing_records: int = 0

    def missing(self) -> list[Job]:
        return [j for j in self.jobs if j.status != "done"]

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "runs_dir": self.runs_dir, "chapters": self.chapters,
                "jobs": [j.to_dict() for j in self.jobs], "timing_records": self.timing_records}


def make_plan(P, chapters: list[str] | None = None, timing_dirs=()) -> Plan:
    """Every job the chosen chapters need, its status in P.runs_dir and, for the rest, an estimate
    from the timings of the records in P.runs_dir and `timing_dirs`."""
    asked = collect(P, chapters)
    jobs = jobs_of(asked)
    timings = Timings([P.runs_dir, *timing_dirs])
    for j in jobs:
        j.status = job_status(j, P.runs_dir)
        if j.status != "done":
            est = [timings.estimate(c) for c in j.configs]
            j.estimate_s = None if None in est else sum(est)
    chs = list(dict.fromkeys(ch for ch, _ in asked))
    return Plan(P.name, str(P.runs_dir), chs, jobs, timings.records)


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def report(plan: Plan, only_missing: bool = False, workers: int = 1) -> str:
    """The plan in words: per chapter, the runs and their status, then the totals and the estimate."""
    lines = [f"profile {plan.profile}: records in {plan.runs_dir}"]
    per_ch: dict[str, list[Job]] = {}
    for j in plan.jobs:
        for ch in j.chapters:
            per_ch.setdefault(ch, []).append(j)
    lines.append(f"{'chapter':<24} {'runs':>5} {'done':>5} {'to do':>6}")
    for ch in plan.chapters:
        js = per_ch.get(ch, [])
        done = sum(j.status == "done" for j in js)
        lines.append(f"{ch:<24} {len(js):>5} {done:>5} {len(js) - done:>6}")
    shown = plan.missing() if only_missing else plan.jobs
    if shown:
        lines.append("")
        lines.append(f"{'record':<17} {'status':<8} {'estimate':>9}  run (chapters)")
        for j in shown:
            est = "-" if j.status == "done" else ("?" if j.estimate_s is None else _duration(j.estimate_s))
            lines.append(f"{j.id:<17} {j.status:<8} {est:>9}  {j.describe()} ({', '.join(c.split('_')[0] for c in j.chapters)})")
    todo = plan.missing()
    known = [j.estimate_s for j in todo if j.estimate_s is not None]
    lines.append("")
    lines.append(f"{len(plan.jobs)} runs ({sum(len(j.asked) for j in plan.jobs)} asked for by {len(plan.chapters)} chapters): "
                 f"{len(plan.jobs) - len(todo)} done, {len(todo)} to do"
                 + (f" ({sum(j.status == 'partial' for j in todo)} of them only an evaluation)" if todo else ""))
    if not todo:
        lines.append("nothing is missing: the book renders from these records")
    elif known:
        lines.append(f"estimate for {len(known)} of the {len(todo)} runs to do: {_duration(sum(known))} one after another"
                     + (f", ~{_duration(sum(known) / workers)} on {workers} workers" if workers > 1 else "")
                     + f" (the median timings of {plan.timing_records} records of the same model and method, "
                     "on the machines that made them)")
    if todo and len(known) < len(todo):
        lines.append(f"{len(todo) - len(known)} runs have no timing to go by (no finished record of their model "
                     "and method yet)")
    return "\n".join(lines)


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="every run the book's chapters need, which records exist, what the rest costs")
    p.add_argument("profile", help="smoke, default, paper, scale or a path to a .yaml profile")
    p.add_argument("--chapters", nargs="+", default=None, metavar="CHAPTER",
                   help="only these chapters, by number or name (default: every chapter)")
    p.add_argument("--missing", action="store_true", help="list only the runs still to do")
    p.add_argument("--workers", type=int, default=1, help="divide the estimate by this many parallel workers")
    p.add_argument("--timings-from", nargs="*", default=[], metavar="DIR",
                   help="more directories of records whose timings inform the estimate")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=main)


def main(a: argparse.Namespace) -> int:
    import json

    from wanda_core.study.profiles import load_profile

    P = load_profile(a.profile)
    plan = make_plan(P, a.chapters, a.timings_from)
    print(json.dumps(plan.to_dict(), indent=1, default=str) if a.json else report(plan, a.missing, a.workers))
    return 0
