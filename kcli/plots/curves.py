"""The metric curves (train and validation per family) and the learning-rate curve."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from kcli.plots.data import MetricTable, best_index, higher_is_better, wants_log_scale
from kcli.plots.figure import CURVE_SIZE, _figure_class, _save

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"


def _style_epoch_axis(ax: Axes, epochs: list[float], ylabel: str) -> None:
    """Whole-epoch ticks (every epoch when there are few), labels and a light grid."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    if len(epochs) <= 12:
        # MaxNLocator falls back to fractional ticks on a narrow range (one epoch: 0.96 ... 1.04)
        ax.xaxis.set_major_locator(FixedLocator(epochs))
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _plot_curve(ax: Axes, epochs: list[float], values: list[float], color: str, label: str) -> None:
    """A line through the finite points only, so epochs without validation leave no gaps."""
    points = [(e, v) for e, v in zip(epochs, values, strict=True) if not math.isnan(v)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    marker = "o" if len(points) <= 30 else None  # a few epochs read better as points
    ax.plot(xs, ys, marker=marker, markersize=3, color=color, label=label)


def _mark_best(
    ax: Axes, epochs: list[float], val: list[float], train: list[float] | None, maximize: bool
) -> None:
    """Dot the best validation value, write it beside the dot, and name it in the legend.

    The value goes on the side of the dot away from the training curve, which is where it would
    otherwise be hidden: train usually sits on the better side of validation.
    """
    index = best_index(val, maximize)
    if index is None:
        return
    x, y = epochs[index], val[index]
    ax.plot(
        [x],
        [y],
        "o",
        color=VAL_COLOR,
        markersize=9,
        markeredgecolor="black",
        zorder=5,
        label=f"best validation: {y:.4g} (epoch {x:g})",
    )
    beside = train[index] if train is not None else math.nan
    above = not (beside > y) if not math.isnan(beside) else maximize
    ax.annotate(
        f"{y:.4g}",
        xy=(x, y),
        xytext=(0, 9 if above else -9),
        textcoords="offset points",
        ha="center",
        va="bottom" if above else "top",
        fontsize=9,
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        zorder=6,
    )


def plot_family(family: str, columns: list[str], table: MetricTable, path: Path) -> Path:
    """One metric's train and validation curves, the best validation epoch marked."""
    epochs = table["epoch"]
    fig = _figure_class()(figsize=CURVE_SIZE)
    ax = fig.add_subplot()
    for column in columns:
        is_val = column.startswith("val_")
        _plot_curve(
            ax,
            epochs,
            table[column],
            color=VAL_COLOR if is_val else TRAIN_COLOR,
            label="validation" if is_val else "train",
        )
    train = [c for c in columns if not c.startswith("val_")]
    val = [c for c in columns if c.startswith("val_")]
    if val:
        train_values = table[train[0]] if train else None
        _mark_best(ax, epochs, table[val[0]], train_values, higher_is_better(family))
    ax.margins(x=0.04, y=0.12)  # room for the value beside the best dot
    ax.set_title(family)
    _style_epoch_axis(ax, epochs, family)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr(table: MetricTable, path: Path) -> Path:
    """The learning rate per epoch; log y-scale when it spans more than a decade."""
    fig = _figure_class()(figsize=CURVE_SIZE)
    ax = fig.add_subplot()
    lr = table["lr"]
    _plot_curve(ax, table["epoch"], lr, color=TRAIN_COLOR, label="learning rate")
    if wants_log_scale(lr):
        ax.set_yscale("log")
        _label_log_ticks(ax, lr)
    ax.margins(x=0.04, y=0.1)
    ax.set_title("learning rate")
    _style_epoch_axis(ax, table["epoch"], "learning rate")
    fig.tight_layout()
    return _save(fig, path)


def _label_log_ticks(ax: Axes, values: list[float]) -> None:
    """Over up to three decades tick 1, 2 and 5 of each as plain numbers (0.005, 0.002 ...).

    matplotlib's default labels only the powers of ten, which over a decade or two leaves one or
    two labels to read a schedule by.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if not math.isnan(v)]
    if max(finite) / min(finite) > 1e3:
        return
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
