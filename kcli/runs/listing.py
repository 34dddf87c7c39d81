"""Listing runs: one `RunSummary` per run folder, the rows of `kcli runs` (newest first)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from kcli.errors import KcliError
from kcli.runs.folder import EVAL_FILE, METRICS_FILE, RUN_FILE, RUN_ID
from kcli.runs.lookup import _started_key
from kcli.runs.metrics_csv import read_metrics
from kcli.runs.record import read_run_record


@dataclass
class RunSummary:
    """One row of `kcli runs`: what a run folder says about itself ("broken" if unreadable)."""

    id: str
    name: str
    path: Path
    status: str
    started: str | None = None
    epochs: int = 0
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    final: dict[str, float] = field(default_factory=dict)  # the last metrics.csv row
    test_metrics: dict[str, float] = field(default_factory=dict)  # eval.json
    duration_s: float | None = None
    problem: str | None = None  # why a broken run is broken
    gates: str = "-"  # pass | FAIL | none (no expect:) | - (not completed)
    checkpoint: str | None = None  # which checkpoint holds the final weights (eval.json)


def _best(rows: list[dict[str, float]], column: str, pick: Any) -> float | None:
    values = [row[column] for row in rows if column in row and not math.isnan(row[column])]
    return pick(values) if values else None


def _eval_document(run_dir: Path) -> Any:
    try:
        return json.loads((run_dir / EVAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _final_checkpoint(run_dir: Path) -> str | None:
    document = _eval_document(run_dir)
    checkpoint = document.get("checkpoint") if isinstance(document, dict) else None
    return checkpoint if isinstance(checkpoint, str) else None


def _gates(run_dir: Path, record: Any) -> str:
    """pass / FAIL for a completed run with `expect:` gates, none without any, - otherwise.

    A completed run's message lists its failed gates, and only those.
    """
    if record is None or record.status != "completed":
        return "-"
    try:
        recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return "-"
    if not isinstance(recipe, dict) or not recipe.get("expect"):
        return "none"
    return "FAIL" if record.message else "pass"


def _test_metrics(run_dir: Path) -> dict[str, float]:
    document = _eval_document(run_dir)
    if isinstance(document, dict) and isinstance(document.get("metrics"), dict):
        document = document["metrics"]
    if not isinstance(document, dict):
        return {}
    numbers = {k: v for k, v in document.items() if not isinstance(v, bool)}
    return {k: float(v) for k, v in numbers.items() if isinstance(v, int | float)}


def summarize_run(run_dir: Path) -> RunSummary:
    """A run folder's RunSummary; never raises for a broken folder, marks it instead."""
    record, problem = None, None
    try:
        record = read_run_record(run_dir)
    except KcliError as error:
        problem = str(error)
    try:
        rows = read_metrics(run_dir / METRICS_FILE)
    except (OSError, ValueError, KcliError):
        rows = []
    summary = RunSummary(
        id=run_dir.name,
        name=record.name if record else run_dir.parent.name,
        path=run_dir,
        status=("stale" if record.is_stale() else record.status) if record else "broken",
        started=record.started if record else None,
        epochs=record.epochs_done if record else len(rows),
        best_val_loss=_best(rows, "val_loss", min),
        best_val_accuracy=_best(rows, "val_accuracy", max),
        final={k: v for k, v in rows[-1].items() if k != "epoch"} if rows else {},
        test_metrics=_test_metrics(run_dir),
        problem=problem,
        gates=_gates(run_dir, record),
        checkpoint=_final_checkpoint(run_dir),
    )
    if record and record.ended:
        try:
            start = datetime.fromisoformat(record.started)
            summary.duration_s = (datetime.fromisoformat(record.ended) - start).total_seconds()
        except (TypeError, ValueError):
            summary.duration_s = None
    return summary


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run under `runs_dir`, newest first; unreadable ones are listed as 'broken'."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    keyed = []
    for recipe_folder in runs_dir.iterdir():
        if not recipe_folder.is_dir():
            continue
        for child in recipe_folder.iterdir():
            if child.is_dir() and ((child / RUN_FILE).is_file() or RUN_ID.match(child.name)):
                summary = summarize_run(child)
                keyed.append((_started_key(child, summary.started), summary))
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [summary for _, summary in keyed]
