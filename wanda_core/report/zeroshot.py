"""Chapter 4's figure, sentences and derived tables (zero-shot accuracy, Table 2), from wanda_core.study.experiments.zeroshot."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.report.present import CONFIG_LABEL, display_name, model_label, PALETTE, plus_minus


def _pct(s: pd.Series) -> pd.Series:
    return 100 * s


def data(P, acc: pd.DataFrame) -> str:
    """Which model, how many examples per task, and where each task's data came from."""
    n = acc.groupby("task", sort=False)["n"].first()
    return (f"Profile `{P.name}`, model **{model_label(P.model)}**; examples per task: "
            + ", ".join(f"{t} {k:,}" for t, k in n.items()) + ". Data:\n\n"
            + "\n".join(f"- {s}" for s in sorted(set(acc["source"]))))


def accuracy(out: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Accuracy (%) ± the half-width of its 95% interval, one row per configuration, one column per
    task, and Table 2's mean over the tasks in it."""
    acc, mean = out["acc"], out["mean"]
    cell = plus_minus(_pct(acc["acc"]), _pct(acc["ci95_hi"] - acc["acc"]), "{:.1f}")
    t = acc.assign(v=cell).pivot(index="config", columns="task", values="v")[list(dict.fromkeys(acc["task"]))]
    m = mean.set_index("config")
    t[f"mean ({int(m['tasks'].max())} tasks)"] = plus_minus(_pct(m["mean_acc"]), _pct(m["ci95_hi"] - m["mean_acc"]), "{:.1f}")
    return t.loc[mean["config"]].rename_axis(columns=None).reset_index()


def at_chance(acc: pd.DataFrame) -> str:
    dense = acc[(acc["config"] == "dense") & acc["at_chance"]]["task"]
    return "The dense model is within two standard errors of chance on: " + (", ".join(dense) or "no task") + "."


def chance_table(acc: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) of every configuration on each task where it is at chance (blank where it is not)."""
    at = acc[acc["at_chance"]]
    t = (_pct(at.pivot_table(index="task", columns="config", values="acc", aggfunc="first"))
         .reindex(columns=[c for c in dict.fromkeys(acc["config"]) if c in set(at["config"])]))
    return t.rename(columns=CONFIG_LABEL).rename_axis(columns=None).reset_index()


def vs_paper(out: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Our mean over the tasks (%), its standard error and examples, beside the paper's means."""
    paper = _pct(out["paper"].query("task == 'mean'").pivot_table(index="config", columns="model", values="acc",
                                                                  aggfunc="first"))
    side = out["mean"].set_index("config")[["mean_acc", "stderr", "n_total"]]
    side = side.assign(mean_acc=_pct(side["mean_acc"]), stderr=_pct(side["stderr"]))
    return side.join(paper.rename(columns=lambda m: f"paper, {m} (%)"), how="left").reset_index()


def comparisons(cmp: pd.DataFrame) -> pd.DataFrame:
    """The chapter's comparisons in accuracy points."""
    return cmp.assign(diff=_pct(cmp["diff"]), stderr=_pct(cmp["stderr"]))[["a", "b", "diff", "stderr", "resolved"]]


def resolved(cmp: pd.DataFrame) -> str:
    """One line per comparison: the difference, its standard error, and whether it is resolved."""
    return "\n".join(f"- {CONFIG_LABEL.get(r.a, r.a)} - {CONFIG_LABEL.get(r.b, r.b)}: {100 * r.diff:+.2f} points "
                     f"(stderr {100 * r.stderr:.2f}): " + ("resolved" if r.resolved else "**not resolved** at this sample size")
                     for r in cmp.itertuples())


def zeroshot(acc: pd.DataFrame) -> None:
    """Accuracy per task with its 95% interval for each configuration, chance as a bar."""
    from wanda_core.report.present import CONFIG_LABEL

    plt = pyplot()
    tasks = list(dict.fromkeys(acc["task"]))
    configs = list(dict.fromkeys(acc["config"]))
    fig, ax = plt.subplots(figsize=(11, 4))
    for k, (config, g) in enumerate(acc.groupby("config", sort=False)):
        g = g.set_index("task").loc[tasks]
        ax.errorbar([i + (k - (len(configs) - 1) / 2) * 0.1 for i in range(len(tasks))], 100 * g["acc"],
                    yerr=100 * (g["ci95_hi"] - g["acc"]), fmt="s" if "2:4" in config else "o", ms=4, capsize=2, color=PALETTE.get(display_name(g["method"].iloc[0])), mfc="white" if "2:4" in config else None,
                    label=CONFIG_LABEL.get(config, config))
    ax.scatter(range(len(tasks)), 100 * acc.groupby("task", sort=False)["chance"].first().loc[tasks],
               marker="_", s=400, c="k", label="chance")
    ax.set(xticks=range(len(tasks)), xticklabels=tasks, ylim=(0, 100), ylabel="accuracy (%), 95% interval",
           title=f"{model_label(acc['model'].iloc[0])}: zero-shot accuracy at 50% sparsity (open markers: 2:4)")
    ax.legend(fontsize=8, ncol=4)
    plt.show()
