"""The run's curves as PNG files, written at the end of training and by `kcli plot RUN`.

`write_plots(run_dir)` reads `metrics.csv` and the checkpoints of a run folder and writes, under
`run_dir/plots/`:
  - one figure per metric family: `loss.png` (loss and val_loss), `accuracy.png` (accuracy and
    val_accuracy) ..., with the best validation epoch marked and its value written beside it;
  - `lr.png`: the learning rate per epoch, on a log scale when it spans more than a decade;
  - `weights.png`: a histogram per weight tensor, after the first epoch (`checkpoints/first.pt`)
    overlaid with after the last (`checkpoints/last.pt`).

matplotlib is optional (`pip install kcli[plots]`) and imported inside the functions that draw.
Figures are made with `matplotlib.figure.Figure` on an Agg canvas, never through pyplot: no GUI
backend can be picked up, and no global figure state leaks between calls or threads.

Choices the issue left open:
  - "best" is the lowest value, except for metrics where higher is better (names containing
    accuracy, precision, recall, f1, auc or r2), where it is the highest;
  - the weight grid keeps the 16 largest tensors, in model order; the others are named in a note
    under the title;
  - checkpoint labels show the checkpoint's own `epoch` value, verbatim.
"""

from __future__ import annotations

import csv
import math
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli.errors import KcliError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
CURVE_SIZE = (6.4, 4.0)  # inches: 704 x 440 pixels at DPI
MAX_WEIGHT_PANELS = 16
MIN_BINS, MAX_BINS = 10, 50
TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"
FIRST_COLOR = "tab:gray"
LAST_COLOR = "tab:red"
NOT_CURVES = ("epoch", "lr", "seconds")
HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "auc", "r2")
MetricTable = dict[str, list[float]]


# -- reading -------------------------------------------------------------------------------------
def read_metrics(run_dir: Path) -> MetricTable:
    """`run_dir/metrics.csv` as column -> values (NaN where a cell is empty or not finite).

    Raises KcliError when the file is missing, has no rows, or holds a cell that is not a number.
    """
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise KcliError(f"no metrics to plot in {run_dir}: {path.name} not found")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    columns = [c.strip() for c in rows[0][1]] if rows else []
    table: MetricTable = {c: [] for c in columns}
    for line, row in rows[1:]:
        if len(row) > len(columns):
            raise KcliError(f"{path}:{line}: {len(row)} cells under {len(columns)} column names")
        # a short row is a line cut off mid-write (a crash): its missing cells read as NaN
        cells = row + [""] * (len(columns) - len(row))
        for column, cell in zip(columns, cells, strict=True):
            table[column].append(_number(cell, path, line, column))
    if not columns or not table[columns[0]]:
        raise KcliError(f"no metrics to plot in {run_dir}: {path.name} has no rows")
    return table


def _number(cell: str, path: Path, line: int, column: str) -> float:
    """One cell as a float; empty (no validation that epoch) and inf (diverged) become NaN."""
    text = cell.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise KcliError(
            f"{path}:{line}: column '{column}' holds {text!r}, which is not a number"
        ) from None
    return value if math.isfinite(value) else math.nan


def metric_families(columns: list[str]) -> dict[str, list[str]]:
    """Group columns into families: `{"loss": ["loss", "val_loss"], ...}`, in file order.

    `epoch`, `lr` and `seconds` are not curves. A `val_x` column joins the `x` family; one with no
    training twin makes a family of its own, named `x`.
    """
    families: dict[str, list[str]] = {}
    for column in columns:
        if column in NOT_CURVES:
            continue
        is_val = column.startswith("val_")
        family = column[len("val_") :] if is_val else column
        families.setdefault(family, [])
        families[family].insert(len(families[family]) if is_val else 0, column)
    return families


def higher_is_better(name: str) -> bool:
    """Whether a bigger value of metric `name` is better (accuracy) or worse (loss, mae)."""
    lowered = name.lower()
    return not lowered.endswith("loss") and any(key in lowered for key in HIGHER_IS_BETTER)


def best_index(values: list[float], maximize: bool) -> int | None:
    """The index of the best finite value (the first one on ties), or None when none is finite."""
    finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
    if not finite:
        return None
    if maximize:
        return max(finite, key=lambda vi: (vi[0], -vi[1]))[1]
    return min(finite)[1]  # (value, index) pairs: a tie goes to the smaller index


def wants_log_scale(values: list[float]) -> bool:
    """True when the positive values span more than one decade (max / min > 10)."""
    finite = [v for v in values if not math.isnan(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 10


def select_tensors(
    shapes: dict[str, tuple[int, ...]], cap: int = MAX_WEIGHT_PANELS
) -> tuple[list[str], list[str]]:
    """(shown, left out): the `cap` largest tensors with more than one element, in model order.

    Ties in size keep the earlier tensor. Tensors of one element are neither shown nor left out:
    a histogram of one number says nothing.
    """
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    candidates = [name for name in shapes if sizes[name] > 1]
    order = {name: i for i, name in enumerate(candidates)}
    kept = set(sorted(candidates, key=lambda n: (-sizes[n], order[n]))[:cap])
    return [n for n in candidates if n in kept], [n for n in candidates if n not in kept]


def load_weights(path: Path) -> tuple[dict[str, Any], int | None]:
    """The float tensors of a checkpoint's `model` state_dict, and its `epoch` (None if absent)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which and why, then stop
        raise KcliError(f"cannot read checkpoint {path}: {err}") from None
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise KcliError(f"checkpoint {path} has no 'model' state_dict to plot")
    tensors = {
        name: value
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
    }
    epoch = checkpoint.get("epoch")
    return tensors, epoch if isinstance(epoch, int) else None


# -- drawing -------------------------------------------------------------------------------------
def _figure_class() -> type[Figure]:
    """matplotlib's Figure, or a KcliError saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise KcliError("plots need matplotlib: pip install kcli[plots]") from None
    return Figure


def _save(fig: Figure, path: Path) -> Path:
    """Lay out and write `fig` as a PNG through the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


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


def _file_name(family: str) -> str:
    """A safe file stem: custom metric names may hold any character."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", family).strip("._") or "metric"


# -- the entry point ----------------------------------------------------------------------------
def write_plots(run_dir: Path) -> list[Path]:
    """Write the run's PNGs under `run_dir/plots/` and return their paths.

    One figure per metric family, `lr.png` when the learning rate was logged, and `weights.png`
    when the run has a checkpoint. Raises KcliError when there are no metrics, a checkpoint cannot
    be read, or matplotlib is not installed.
    """
    run_dir = Path(run_dir)
    table = read_metrics(run_dir)
    _figure_class()  # fail on a missing matplotlib before any file is written
    if "epoch" not in table:  # not written by our trainer, but a plain count still reads right
        table["epoch"] = [float(i) for i in range(1, len(next(iter(table.values()))) + 1)]
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = [
        plot_family(family, columns, table, out / f"{_file_name(family)}.png")
        for family, columns in metric_families(list(table)).items()
    ]
    if "lr" in table and not all(math.isnan(v) for v in table["lr"]):
        written.append(plot_lr(table, out / "lr.png"))
    checkpoints = run_dir / "checkpoints"
    first, last = (
        p if p.is_file() else None for p in (checkpoints / "first.pt", checkpoints / "last.pt")
    )
    if first or last:
        written.append(plot_weights(first, last, out / "weights.png"))
    return written
