"""Reading a run for its plots, and the pure decisions about what to draw (no matplotlib).

`metrics.csv` as a table of columns, checkpoints as weight tensors (and the weights the run ended
with), the shapes Keras gives them; which columns make one figure, which epoch is best, when the
learning rate wants a log scale, which tensors get a histogram.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.errors import KcliError

Shape = tuple[int, ...]

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


@dataclass(frozen=True)
class Weights:
    """One side of the weight histograms: float tensors by state-dict key, and where from."""

    tensors: dict[str, Any]
    epoch: int | None  # counted from 1, as metrics.csv does; None when the file does not say
    path: Path  # the checkpoint file holding them
    restored: str | None = None  # how they came back at the end of training ("restored best")


def load_weights(path: Path) -> Weights:
    """The float tensors of a checkpoint's `model` state_dict, and its `epoch` (None if absent)."""
    from kcli.fit.checkpoint import load_checkpoint

    return _weights_of(load_checkpoint(path), path)


def _weights_of(checkpoint: dict[str, Any], path: Path) -> Weights:
    from kcli.fit.checkpoint import model_weights

    epoch = checkpoint.get("epoch")
    epoch = epoch if isinstance(epoch, int) else None
    return Weights(_floats(model_weights(checkpoint, path)), epoch, path)


def _floats(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {
        name: value
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
    }


def final_weights(run_dir: Path) -> Weights:
    """The weights the run ended with: last.pt's, unless others were put back at its end.

    EarlyStopping(restore_best_weights) loads its best epoch's weights when training ends, after
    the last epoch wrote last.pt; that callback's state saved in last.pt holds exactly what it
    loads (`best_weights`) and from which epoch (`best_epoch`, counted from 0). Without one,
    eval.json's `checkpoint` (the file whose weights the test split was scored with, found by
    comparing them) may still name best.pt or final.pt, when another callback put back the
    weights of an earlier epoch. A run that never got to the end of training kept last.pt's.
    """
    from kcli.fit.checkpoint import load_checkpoint

    path = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    last = _weights_of(checkpoint, path)
    if not _training_ended(run_dir, checkpoint):
        return last
    restoring = [
        state
        for state in checkpoint.get("callbacks") or []
        if isinstance(state, dict)
        and isinstance(state.get("best_weights"), dict)
        and isinstance(state.get("best_epoch"), int)
    ]
    if restoring:  # callbacks end in order: the last one to load its weights is what stayed
        state = restoring[-1]
        return Weights(
            _floats(state["best_weights"]), state["best_epoch"] + 1, path, "restored best"
        )
    recorded = _recorded_checkpoint(run_dir)
    if recorded in ("best", "final") and (run_dir / "checkpoints" / f"{recorded}.pt").is_file():
        other = load_weights(run_dir / "checkpoints" / f"{recorded}.pt")
        # best.pt of the last epoch holds last.pt's weights: nothing was put back
        if other.epoch is None or other.epoch != last.epoch:
            note = "restored best" if recorded == "best" else "restored"
            return Weights(other.tensors, other.epoch, other.path, note)
    return last


def _training_ended(run_dir: Path, checkpoint: dict[str, Any]) -> bool:
    """Whether the fit loop got to its end, where callbacks put weights back."""
    from kcli.runs import read_run_record

    if checkpoint.get("partial"):  # written mid-epoch: the run was interrupted there
        return False
    try:
        record = read_run_record(run_dir)
    except KcliError:  # no run.json (a folder of copied files): the checkpoint is all there is
        return True
    # While `kcli train` draws the plots its run.json still says running, in this process; a
    # running one in another process (`kcli plot` of a live run) has not ended training yet.
    this_process = record.pid == os.getpid() and record.host == platform.node()
    return record.status == "completed" or (record.status == "running" and this_process)


def _recorded_checkpoint(run_dir: Path) -> str | None:
    """eval.json's `checkpoint`: which file holds the weights the run ended with (a test split's
    run only), None when there is no readable eval.json."""
    try:
        recorded = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded.get("checkpoint") if isinstance(recorded, dict) else None


def run_layouts(run_dir: Path) -> dict[str, tuple[Shape, Shape]]:
    """State-dict key -> (its shape there, the shape Keras gives that weight), for the model the
    run's recipe.yaml builds (on the meta device: nothing allocated, no weight drawn).

    Empty when the model cannot be rebuilt (no recipe.yaml, a plugin gone): the titles then show
    the shapes as stored. The titles are only labels, so whatever stops the rebuild (a plugin's
    own `build` included) must not stop the plots.
    """
    from kcli.model.graph import plan_graph
    from kcli.model.nn.keras_layout import planned_layouts
    from kcli.recipe.load import load_recipe

    path = run_dir / "recipe.yaml"
    if not path.is_file():
        return {}
    try:
        return planned_layouts(plan_graph(load_recipe(path).recipe.model))
    except Exception:
        return {}
