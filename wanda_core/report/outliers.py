"""Chapter 1's figures and sentences (outlier features, the toy example, what the mask keeps), from wanda_core.study.experiments.outliers."""
from __future__ import annotations

import pandas as pd
import numpy as np

from wanda_core.report.plotting import pyplot, TINY
from wanda_core.report.present import PALETTE
from wanda_core.study import paper


def intro() -> str:
    """The paper's headline example (chapter 1's first paragraph), read from data/paper_numbers.csv."""
    pn = paper.numbers()
    d, m, w = (paper.value(pn, "LLaMA-7B", k) for k in ("dense", "magnitude", "wanda"))
    return (f"For large language models it works badly: the paper reports that removing half of LLaMA-7B's weights this "
            f"way raises its WikiText-2 perplexity from {d:.2f} to {m:.2f}, while Wanda, which removes the same number of "
            f"weights, ends at {w:.2f}.")


def toy(errors: pd.DataFrame) -> str:
    e = errors.set_index("method")
    y = e["output_norm"].iloc[0]
    return (f"The output has norm $\\lVert y \\rVert_2$ = {y:.2f}. Magnitude pruning removes the weights 2.0 and -1.0 "
            "because they are small, but the weight 2.0 multiplies the largest input: the output changes by "
            f"{e.loc['magnitude', 'error']:.2f}, {e.loc['magnitude', 'relative_error']:.0%} of its norm. Wanda removes "
            f"4.0 and -1.0 instead, and the output changes by {e.loc['wanda', 'error']:.2f} ({e.loc['wanda', 'relative_error']:.0%}).")


def mask_effect(effect: pd.DataFrame) -> str:
    w = effect.loc[effect["magnitude_top"].idxmax()]
    return (f"In `{w['layer']}`, magnitude would remove {w['magnitude_top']:.0%} of the weights that read the five largest "
            f"input channels, Wanda {w['wanda_top']:.0%}. On average every weight has the same 50% chance; where the two "
            "numbers differ, the score does the work of the example above at scale.")


def channel_norms(norms: pd.DataFrame) -> None:
    """Scatter of ||X_j||_2 over channels for each picked layer, median and 10x median marked."""
    plt = pyplot()
    picked = list(dict.fromkeys(norms.loc[norms["picked"], "layer"]))
    rows = -(-len(picked) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, picked):
        v = np.clip(norms.loc[norms["layer"] == name].sort_values("channel")["norm"].to_numpy(), TINY, None)
        med = float(np.median(v))
        ax.scatter(np.arange(v.size), v, s=4, color=PALETTE["Wanda"], alpha=0.8)
        ax.axhline(med, color="black", lw=0.8, label="median channel")
        ax.axhline(10 * med, color=PALETTE["Magnitude"], ls="--", lw=0.8, label="10 x median")
        for j in np.argsort(v)[::-1][:3]:
            ax.annotate(str(j), (j, v[j]), textcoords="offset points", xytext=(3, 2), fontsize=8)
        block, lname = name.split(".", 1)
        ax.set_yscale("log")
        ax.set_title(f"block {block}, input of {lname} ({v.size} channels)", fontsize=10)
        ax.set_xlabel("input channel j")
        ax.set_ylabel(r"$\Vert X_j \Vert_2$ (log scale)")
    for ax in axes.flat[len(picked):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Input-activation norm of every channel, dense model, {int(norms['tokens'].iloc[0]):,} tokens "
                 "(the three largest are numbered)")
    fig.tight_layout()
    plt.show()


def norm_tail(norms: pd.DataFrame) -> None:
    """Each picked layer's channel norms sorted, over the layer's median (log-log)."""
    plt = pyplot()
    fig, ax = plt.subplots()
    for name, d in norms[norms["picked"]].groupby("layer", sort=False):
        v = np.sort(np.clip(d["norm"].to_numpy(), TINY, None))[::-1]
        ax.plot(np.arange(1, v.size + 1), v / np.median(v), label=name)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("channel rank (1 = largest norm, log scale)")
    ax.set_ylabel(r"$\Vert X_j \Vert_2$ / layer median (log scale)")
    ax.set_title("How far the largest channels stand out, dense model")
    ax.legend(title="layer", fontsize=8)
    plt.show()


def attention_heatmap(norms: pd.DataFrame) -> None:
    """log10(norm / block median) of the attention input, every block x every channel."""
    from wanda_core.study.experiments.outliers import attention_matrix

    plt = pyplot()
    name, M = attention_matrix(norms)
    rel = np.log10(M / np.median(M, axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(10, 3.8))
    im = ax.imshow(rel, aspect="auto", cmap="magma", interpolation="nearest", vmin=-1, vmax=max(1.0, float(rel.max())))
    fig.colorbar(im, ax=ax, label=r"$\log_{10}$(norm / block median)")
    ax.grid(False)
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("input channel j")
    ax.set_ylabel("block")
    ax.set_title(f"Input of {name} in every block, dense model")
    plt.show()
