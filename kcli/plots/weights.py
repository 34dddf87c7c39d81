"""The weight histograms: one panel per tensor, after the first epoch against after the last."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli.errors import KcliError
from kcli.plots.data import load_weights, select_tensors
from kcli.plots.figure import CURVE_SIZE, _figure_class, _save

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MIN_BINS, MAX_BINS = 10, 50
FIRST_COLOR = "tab:gray"
LAST_COLOR = "tab:red"


def plot_weights(first: Path | None, last: Path | None, path: Path) -> Path:
    """A grid of weight histograms, after the first epoch overlaid with after the last.

    Either checkpoint may be None (not both): the one there is drawn alone.
    """
    if last is None:
        first, last = None, first
    assert last is not None, "plot_weights needs at least one checkpoint"
    last_tensors, last_epoch = load_weights(last)
    first_tensors, first_epoch = load_weights(first) if first is not None else ({}, None)
    if first_epoch is not None and first_epoch == last_epoch:
        first_tensors = {}  # a one-epoch run: both files hold the same weights
    shown, left_out = select_tensors({n: tuple(t.shape) for n, t in last_tensors.items()})
    if not shown:
        raise KcliError(f"checkpoint {last} has no weight tensor with more than one element")

    ncols = min(4, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    width = max(3.4 * ncols, CURVE_SIZE[0])
    note = _left_out_note(left_out, chars=int(width * 13)) if left_out else ""
    header = 0.58 + 0.15 * (note.count("\n") + 1 if note else 0)  # inches: title, legend, note
    height = 2.6 * nrows + header
    fig = _figure_class()(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    labels = (_label("first", first_epoch), _label("last", last_epoch))
    for ax, name in zip(axes, shown, strict=False):
        _weight_panel(ax, name, first_tensors.get(name), last_tensors[name], labels)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("count", fontsize=8)

    def below_top(inches: float) -> float:  # figure fraction of a point `inches` under the top
        return 1 - inches / height

    title = "weight distributions" + (f": {labels[0]} vs {labels[1]}" if first_tensors else "")
    fig.suptitle(title, y=below_top(0.08), va="top", fontsize=12)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="upper center",
        bbox_to_anchor=(0.5, below_top(0.32)),
        ncol=2,
        fontsize=9,
        frameon=False,
    )
    if note:
        fig.text(0.5, below_top(0.62), note, ha="center", va="top", fontsize=8, color="0.3")
    fig.tight_layout(pad=0.6, rect=(0, 0, 1, below_top(header)))
    return _save(fig, path)


def histogram_bins(size: int) -> int:
    """Bins for a tensor of `size` values: 2 sqrt(size), kept within [10, 50].

    Few bins for a 64-value bias (16) so its shape is not lost in noise, 50 for a big kernel.
    """
    return min(MAX_BINS, max(MIN_BINS, round(2 * math.sqrt(size))))


def _weight_panel(ax: Axes, name: str, before: Any, after: Any, labels: tuple[str, str]) -> None:
    """One tensor's histogram: before (gray, filled, may be None) under after (red outline)."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    values = [after.detach().float().flatten().numpy()]
    if before is not None and tuple(before.shape) == tuple(after.shape):
        values.insert(0, before.detach().float().flatten().numpy())
    values = [v[np.isfinite(v)] for v in values]  # a diverged run still draws what is finite
    lo = min((float(v.min()) for v in values if v.size), default=0.0)
    hi = max((float(v.max()) for v in values if v.size), default=0.0)
    if hi <= lo:  # all equal (a fresh moving_variance): give the one bin some width
        lo, hi = lo - 0.5, hi + 0.5
    # shared bins, so the two shapes compare bin for bin
    bins = np.linspace(lo, hi, histogram_bins(int(after.numel())) + 1)
    if len(values) == 2:
        ax.hist(values[0], bins=bins, color=FIRST_COLOR, alpha=0.45, label=labels[0])
    else:  # drawn alone, the outline reads better over a light fill
        ax.hist(values[0], bins=bins, color=LAST_COLOR, alpha=0.2)
    ax.hist(
        values[-1], bins=bins, histtype="step", linewidth=1.6, color=LAST_COLOR, label=labels[1]
    )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    shape = "x".join(str(d) for d in after.shape)
    ax.set_title(f"{name}  ({shape})", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_xlabel("weight value", fontsize=8)


def _label(which: str, epoch: int | None) -> str:
    return f"after epoch {epoch}" if epoch is not None else f"after the {which} epoch"


def _left_out_note(left_out: list[str], chars: int) -> str:
    """`not shown (n smaller tensors): a, b, ...`, wrapped to `chars` a line, two lines at most."""
    note = f"not shown ({len(left_out)} smaller tensors): " + ", ".join(left_out)
    lines = textwrap.wrap(note, width=chars)
    if len(lines) > 2:
        lines = textwrap.wrap(note, width=chars - 6)[:2]
        lines[-1] += " ..."
    return "\n".join(lines)
