"""`write_plots(run_dir)`: every PNG of a run folder, under `run_dir/plots/`."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from pathlib import Path

from kcli.plots.curves import plot_family, plot_lr
from kcli.plots.data import final_weights, load_weights, metric_families, read_metrics, run_layouts
from kcli.plots.figure import _figure_class
from kcli.plots.weights import plot_weights


def _file_name(family: str) -> str:
    """A safe file stem: custom metric names may hold any character."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", family).strip("._") or "metric"


def write_plots(run_dir: Path) -> list[Path]:
    """Write the run's PNGs under `run_dir/plots/` and return their paths.

    One figure per metric family, `lr.png` when the learning rate was logged, and `weights.png`
    when the run has a checkpoint: after the first epoch against the weights the run ended with
    (those a callback restored at the end, when one did; see `final_weights`). Raises KcliError
    when there are no metrics, a checkpoint cannot be read, or matplotlib is not installed. The
    figures are drawn in a scratch folder and moved into plots/ only once all of them are done: a
    failure leaves plots/ as it was.
    """
    run_dir = Path(run_dir)
    table = read_metrics(run_dir)
    _figure_class()  # fail on a missing matplotlib before any file is written
    if "epoch" not in table:  # not written by our trainer, but a plain count still reads right
        table["epoch"] = [float(i) for i in range(1, len(next(iter(table.values()))) + 1)]
    out = run_dir / "plots"
    scratch = Path(tempfile.mkdtemp(prefix=".plots-", dir=run_dir))
    try:
        drawn = _draw_all(run_dir, table, scratch)
        out.mkdir(parents=True, exist_ok=True)
        for path in drawn:
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [out / path.name for path in drawn]


def _draw_all(run_dir: Path, table: dict, out: Path) -> list[Path]:
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
        # first.pt alone (last.pt lost) is still drawn, as the only weights there are
        final = final_weights(run_dir) if last else load_weights(first)
        before = load_weights(first) if first and last else None
        written.append(plot_weights(before, final, out / "weights.png", run_layouts(run_dir)))
    return written
