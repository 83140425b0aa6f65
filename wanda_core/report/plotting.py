"""What every figure shares: matplotlib in the book's style, log axes when values span more than a few times."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from wanda_core.report.present import dataset_label


TINY = np.finfo(np.float32).tiny  # keeps a log axis valid if a value is zero


def pyplot():
    import matplotlib.pyplot as plt

    return plt


def positive(x, floor: float = 1e-6) -> float:
    """A value safe for a log axis (None/NaN/<= 0 become `floor`)."""
    return floor if x is None or not isinstance(x, (int, float)) or math.isnan(x) or x <= floor else float(x)


def value_axis(ax, values: Iterable[float], spread: float = 3.0) -> str:
    """Log y axis when the values span more than `spread` x, else linear from zero; the wording for
    the axis label ("log scale" or "")."""
    v = [positive(x) for x in values]
    if v and max(v) / min(v) > spread:
        ax.set_yscale("log")
        return " (log scale)"
    ax.set_ylim(0, None)
    return ""


def ppl_axis(ax, df: pd.DataFrame, values) -> None:
    ax.set_ylabel(f"perplexity on {dataset_label(df['dataset'].iloc[0])}{value_axis(ax, values)}, lower is better")
