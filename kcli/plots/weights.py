"""The weight histograms: one panel per tensor, after the first epoch against the final weights.

Each panel is titled as Keras names and shapes the weight: `dense/kernel (6, 16)`, the shape in
Keras' layout (kcli.model.nn.keras_layout) where kcli stores it in torch's.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli.errors import KcliError
from kcli.plots.data import Shape, Weights, select_tensors
from kcli.plots.figure import CURVE_SIZE, _figure_class, _save

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MIN_BINS, MAX_BINS = 10, 50
FIRST_COLOR = "tab:gray"
LAST_COLOR = "tab:red"


def plot_weights(
    first: Weights | None,
    final: Weights,
    path: Path,
    layouts: dict[str, tuple[Shape, Shape]] | None = None,
) -> Path:
    """A grid of weight histograms, after the first epoch overlaid with the final weights.

    `first` may be None: the final weights are then drawn alone. `layouts` (see
    `kcli.plots.data.run_layouts`) gives each tensor's shape in Keras' layout for the titles.
    """
    first_tensors = first.tensors if first is not None else {}
    if first is not None and first.epoch is not None and first.epoch == final.epoch:
        first_tensors = {}  # a one-epoch run (or epoch 1 restored): the same weights twice
    shown, left_out = select_tensors({n: tuple(t.shape) for n, t in final.tensors.items()})
    if not shown:
        raise KcliError(f"checkpoint {final.path} has no weight tensor with more than one element")

    ncols = min(4, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    width = max(3.4 * ncols, CURVE_SIZE[0])
    note = _left_out_note(left_out, chars=int(width * 13)) if left_out else ""
    header = 0.58 + 0.15 * (note.count("\n") + 1 if note else 0)  # inches: title, legend, note
    height = 2.6 * nrows + header
    fig = _figure_class()(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    labels = (weights_label(first, "first"), weights_label(final, "last"))
    for ax, name in zip(axes, shown, strict=False):
        tensor = final.tensors[name]
        _weight_panel(ax, first_tensors.get(name), tensor, labels)
        ax.set_title(weight_title(name, tuple(tensor.shape), layouts or {}), fontsize=9)
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


def _weight_panel(ax: Axes, before: Any, after: Any, labels: tuple[str, str]) -> None:
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
    ax.tick_params(labelsize=8)
    ax.set_xlabel("weight value", fontsize=8)


def weight_title(name: str, shape: Shape, layouts: dict[str, tuple[Shape, Shape]]) -> str:
    """`dense/kernel (6, 16)`: the weight as Keras names it (the layer, a slash, the weight) and
    the shape Keras prints for it, in Keras' layout.

    `shape` is the tensor's in the checkpoint. A tensor `layouts` does not know, or knows with
    another stored shape (a recipe.yaml that does not build this checkpoint's model), keeps it
    and says so: a torch-layout shape must not pass for Keras'.
    """
    keras_name = name.replace(".", "/")
    stored, keras_shape = layouts.get(name, (None, None))
    if stored == tuple(shape):
        return f"{keras_name} {keras_shape}"
    return f"{keras_name} {tuple(shape)} as stored"


def weights_label(weights: Weights | None, which: str) -> str:
    """`after epoch 3`, and how the final weights came back: `after epoch 3 (restored best)`."""
    epoch = weights.epoch if weights is not None else None
    restored = weights.restored if weights is not None else None
    if epoch is None:
        return f"{restored} at the end" if restored else f"after the {which} epoch"
    return f"after epoch {epoch} ({restored})" if restored else f"after epoch {epoch}"


def _left_out_note(left_out: list[str], chars: int) -> str:
    """`not shown (n smaller tensors): a, b, ...`, wrapped to `chars` a line, two lines at most."""
    note = f"not shown ({len(left_out)} smaller tensors): " + ", ".join(left_out)
    lines = textwrap.wrap(note, width=chars)
    if len(lines) > 2:
        lines = textwrap.wrap(note, width=chars - 6)[:2]
        lines[-1] += " ..."
    return "\n".join(lines)
