"""`kcli runs`: the runs of a runs folder as a table, and two runs compared side by side.

Each run is shown by its headline metric: the first compiled metric that has a validation twin
in metrics.csv (`accuracy`, `mae` ...), or the loss when there is none. "best val" is that
metric's best validation value over the epochs (highest for accuracy-like metrics, lowest
otherwise) and "test" is the same metric in eval.json. No torch here.
"""

from __future__ import annotations

import difflib
import io
import math
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem
from kcli.runs import METRICS_FILE, RunSummary, list_runs, read_metrics, read_run_record

SKIPPED = ("epoch", "loss", "regularization", "lr", "seconds")


def higher_is_better(name: str) -> bool:
    """True for accuracy, precision, recall, f1, auc, r2 (as the plots mark the best epoch)."""
    from kcli.plots import higher_is_better as plots_rule

    return plots_rule(name)


def headline_metric(rows: list[dict[str, float]]) -> str:
    """The metric a run is summarised by: the first with a val_ column, else loss. A model of
    several outputs logs each output's loss (`<output>_loss`): those are losses, not metrics."""
    columns = list(rows[0]) if rows else []
    for name in columns:
        loss_part = name.endswith("_loss")
        if name in SKIPPED or loss_part or name.startswith("val_"):
            continue
        if f"val_{name}" in columns:
            return name
    return "loss"


def run_row(summary: RunSummary) -> dict[str, Any]:
    """One run as `kcli runs --json` gives it."""
    try:
        rows = read_metrics(summary.path / METRICS_FILE)
    except KcliError:  # a damaged metrics.csv: the run is still listed
        rows = []
    metric = headline_metric(rows)
    best = None
    values = [(row.get(f"val_{metric}", math.nan), int(row["epoch"])) for row in rows]
    values = [(v, epoch) for v, epoch in values if not math.isnan(v)]
    if values:
        pick = max if higher_is_better(metric) else min
        value, epoch = pick(values, key=lambda pair: pair[0])
        best = {"metric": f"val_{metric}", "value": value, "epoch": epoch}
    test = summary.test_metrics.get(metric)
    return {
        "id": summary.id,
        "recipe": summary.name,
        "path": str(summary.path),
        "status": summary.status,
        "started": summary.started,
        "epochs": summary.epochs,
        "metric": metric,
        "best_val": best,
        "test": None if test is None else {"metric": f"test_{metric}", "value": test},
        "test_metrics": summary.test_metrics,
        "final": summary.final,
        "duration_s": summary.duration_s,
        "problem": summary.problem,
        "gates": summary.gates,
        "checkpoint": summary.checkpoint,
    }


def run_rows(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run under `runs_dir`, newest first."""
    return [run_row(summary) for summary in list_runs(runs_dir)]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _console(buffer: io.StringIO):
    import shutil

    from rich.console import Console

    # The terminal's width (COLUMNS, or 120 when there is no terminal, as in a pipe).
    width = shutil.get_terminal_size((120, 24)).columns
    return Console(file=buffer, width=width, color_system=None, force_terminal=False)


def render_runs(rows: list[dict[str, Any]], runs_dir: Path) -> str:
    """The rich table of `kcli runs`."""
    from rich.table import Table

    buffer = io.StringIO()
    console = _console(buffer)
    if not rows:
        console.print(f"no runs in {runs_dir} (train one with `kcli train RECIPE`)")
        return buffer.getvalue()
    table = Table(title=f"runs in {runs_dir}, newest first", title_justify="left")
    # "best val ... @N": the best validation value and the epoch that reached it
    # The id is never cut or wrapped, whatever the width: it is what other commands take.
    table.add_column("run id", no_wrap=True, min_width=len(rows[0]["id"]))
    for column in ("recipe", "status", "epochs", "best val", "test", "gates", "weights"):
        table.add_column(column, justify="right" if column == "epochs" else "left")
    table.add_column("duration", justify="right")
    for row in rows:
        best, test = row["best_val"], row["test"]
        table.add_row(
            row["id"],
            row["recipe"],
            row["status"] if not row["problem"] else f"broken: {row['problem']}",
            str(row["epochs"]),
            f"{best['metric']} {best['value']:.4f} @{best['epoch']}" if best else "-",
            f"{test['metric']} {test['value']:.4f}" if test else "-",
            row["gates"],
            row["checkpoint"] or "-",
            format_duration(row["duration_s"]),
        )
    console.print(table)
    return buffer.getvalue()


def _final_metrics(run_dir: Path) -> dict[str, float]:
    """run.json's final metrics (last epoch and test_); metrics.csv's last row if it has none."""
    record = read_run_record(run_dir)
    if record.final_metrics:
        return dict(record.final_metrics)
    rows = read_metrics(run_dir / METRICS_FILE)
    return {k: v for k, v in rows[-1].items() if k not in ("epoch", "seconds")} if rows else {}


def compare_runs(first: str, second: str, runs_dir: Path) -> dict[str, Any]:
    """Two runs' resolved recipes as a unified diff, and their final metrics side by side."""
    from kcli.runs import resolve_run

    runs = [resolve_run(arg, runs_dir) for arg in (first, second)]
    texts = []
    for run_dir in runs:
        path = run_dir / "recipe.yaml"
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise KcliError(Problem(f"cannot read {path}: {error.strerror or error}")) from None
    labels = [f"{run_dir.parent.name}/{run_dir.name}/recipe.yaml" for run_dir in runs]
    diff = "".join(
        difflib.unified_diff(
            texts[0].splitlines(keepends=True),
            texts[1].splitlines(keepends=True),
            fromfile=labels[0],
            tofile=labels[1],
        )
    )
    finals = [_final_metrics(run_dir) for run_dir in runs]
    names = list(finals[0]) + [k for k in finals[1] if k not in finals[0]]
    return {
        "runs": [str(run_dir) for run_dir in runs],
        "recipe_diff": diff,
        "metrics": {name: [finals[0].get(name), finals[1].get(name)] for name in names},
    }


def render_comparison(comparison: dict[str, Any]) -> str:
    """The diff, then a table: metric, run A, run B, B - A."""
    from rich.table import Table

    buffer = io.StringIO()
    console = _console(buffer)
    first, second = comparison["runs"]
    diff = comparison["recipe_diff"] or "(the resolved recipes are identical)\n"
    buffer.write(diff if diff.endswith("\n") else diff + "\n")
    table = Table(title="final metrics", title_justify="left")
    table.add_column("metric")
    table.add_column(f"A: {Path(first).name}", justify="right")
    table.add_column(f"B: {Path(second).name}", justify="right")
    table.add_column("B - A", justify="right")
    for name, (a, b) in comparison["metrics"].items():
        change = f"{b - a:+.4f}" if a is not None and b is not None else "-"
        table.add_row(name, _shown(a), _shown(b), change)
    console.print(table)
    console.print(f"A: {first}\nB: {second}", highlight=False, soft_wrap=True)
    return buffer.getvalue()


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
