"""Reading a run for its plots, and the pure decisions about what to draw (no matplotlib).

`metrics.csv` as a table of columns, checkpoints as weight tensors; which columns make one figure,
which epoch is best, when the learning rate wants a log scale, which tensors get a histogram.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from kcli.errors import KcliError

MAX_WEIGHT_PANELS = 16
NOT_CURVES = ("epoch", "lr", "seconds")
HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "auc", "r2")
MetricTable = dict[str, list[float]]


def read_metrics(run_dir: Path) -> MetricTable:
    """`run_dir/metrics.csv` as column -> values (NaN where a cell is empty or not finite).

    Raises KcliError when the file is missing, has no rows, or holds a cell that is not a number.
    """
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise KcliError(f"no metrics to plot in {run_dir}: {path.name} not found")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise KcliError(f"{path}: unreadable metrics log ({error})") from None
    columns = [c.strip() for c in rows[0][1]] if rows else []
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise KcliError(f"{path}:1: column {', '.join(repeated)} appears more than once")
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

    from kcli.fit.checkpoint import load_checkpoint, model_weights

    checkpoint = load_checkpoint(path)
    state = model_weights(checkpoint, path)
    tensors = {
        name: value
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
    }
    epoch = checkpoint.get("epoch")
    return tensors, epoch if isinstance(epoch, int) else None
