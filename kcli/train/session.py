"""`kcli train`: one run, from recipe to a complete run folder (or an honest failed one).

prepare (data, model, checks: nothing written yet)
-> run folder: recipe.yaml, run.json (running), summary.txt, preprocess.json
-> Trainer.fit (metrics.csv row by row, checkpoints/last.pt every epoch)
-> test split -> eval.json -> plots -> expect gates -> run.json (completed)
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem
from kcli.recipe.load import LoadedRecipe, load_recipe
from kcli.recipe.schema import gate_holds, parse_gate


@dataclass
class TrainOptions:
    runs_dir: Path = Path("runs")
    device: str | None = None
    quiet: bool = False
    json: bool = False  # progress goes to stderr, the result to stdout
    resume: str | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class TrainResult:
    run_dir: Path
    status: str
    metrics: dict[str, float]
    failed_gates: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "status": self.status,
            "metrics": self.metrics,
            "failed_gates": self.failed_gates,
        }


def train(recipe_path: str | None, overrides: list[str], options: TrainOptions) -> TrainResult:
    """Train a recipe (or resume a run) and return where it went and how it ended."""
    from kcli import runs

    if options.resume:
        run_dir = runs.resolve_run(options.resume, options.runs_dir)
        record = runs.read_run_record(run_dir)
        loaded = _load_for_resume(run_dir, overrides)
        base_dir = Path(record.recipe_dir) if getattr(record, "recipe_dir", None) else None
    else:
        if recipe_path is None:
            raise KcliError(Problem("give a recipe file, or --resume RUN"))
        loaded = load_recipe(recipe_path, overrides)
        run_dir, base_dir = None, None
    return _run(loaded, options, run_dir, base_dir)


def _load_for_resume(run_dir: Path, overrides: list[str]) -> LoadedRecipe:
    original = load_recipe(run_dir / "recipe.yaml")
    loaded = load_recipe(run_dir / "recipe.yaml", overrides)
    before = original.recipe.model_dump(exclude={"fit": {"epochs"}})
    after = loaded.recipe.model_dump(exclude={"fit": {"epochs"}})
    if before != after:
        raise KcliError(
            Problem(
                "only fit.epochs can change when resuming (anything else would not continue "
                "the same run); start a new run instead",
                origin="--resume",
            )
        )
    return loaded


@contextmanager
def _sigint_sets_flag(trainer):
    """The first Ctrl-C asks the loop to stop after its step; a second one stops at once."""

    def handler(signum, frame):
        if trainer.interrupt_requested:
            raise KeyboardInterrupt
        trainer.interrupt_requested = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(
    loaded: LoadedRecipe, options: TrainOptions, resume_dir: Path | None, base_dir: Path | None
) -> TrainResult:
    from kcli import runs
    from kcli.train.build import make_trainer
    from kcli.train.checkpoint import load_checkpoint
    from kcli.train.setup import prepare
    from kcli.train.trainer import TrainingInterrupted

    prepared = prepare(loaded, options.device, base_dir)
    recipe = loaded.recipe
    if resume_dir is None:
        run_dir = runs.create_run_dir(options.runs_dir, loaded.name)
        _write_run_files(run_dir, loaded, prepared, options)
        checkpoint = None
    else:
        run_dir = resume_dir
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        runs.write_text_atomic(run_dir / "recipe.yaml", loaded.resolved_yaml())
    metrics_log = runs.MetricsLog(run_dir / "metrics.csv")
    trainer = make_trainer(prepared, run_dir, options, metrics_log.append)
    if checkpoint is not None:
        trainer.restore(checkpoint)
        metrics_log.truncate_to(trainer.epochs_done)
        trainer.history = [
            {k: v for k, v in row.items() if k != "epoch"}
            for row in runs.read_metrics(run_dir / "metrics.csv")
        ]
        runs.note_resumed(run_dir, trainer.epochs_done, options.argv)
    runs.set_status(run_dir, "running")
    try:
        with _sigint_sets_flag(trainer):
            trainer.fit()
    except TrainingInterrupted as stop:
        runs.set_status(run_dir, "interrupted", str(stop), epochs_done=trainer.epochs_done)
        trainer.log(f"{stop}. Continue with: kcli train --resume {run_dir}")
        raise
    except KeyboardInterrupt:
        runs.set_status(
            run_dir, "interrupted", "stopped by a second Ctrl-C", epochs_done=trainer.epochs_done
        )
        raise
    except BaseException as error:  # the run folder must say it failed, whatever happened
        runs.set_status(
            run_dir, "failed", f"{type(error).__name__}: {error}", epochs_done=trainer.epochs_done
        )
        raise

    final = dict(trainer.history[-1]) if trainer.history else {}
    final.pop("seconds", None)
    if prepared.splits.test is not None:
        test_logs = trainer.evaluate(trainer.batches_for(prepared.splits.test))
        final.update({f"test_{k}": v for k, v in test_logs.items()})
        runs.write_json_atomic(
            run_dir / "eval.json",
            {"split": "test", "metrics": test_logs, "n_samples": _count(prepared.splits.test)},
        )
    _write_plots(run_dir, trainer)
    failed = check_gates(recipe.expect, final)
    runs.set_status(
        run_dir,
        "completed",
        "; ".join(failed) or None,
        epochs_done=trainer.epochs_done,
        final_metrics=final,
    )
    return TrainResult(run_dir, "completed", final, failed)


def check_gates(expect: dict[str, str], metrics: dict[str, float]) -> list[str]:
    """The gates that do not hold, each as `name: value (expected op threshold)`."""
    failed = []
    for key, gate in expect.items():
        op, threshold = parse_gate(gate)
        value = metrics.get(key)
        if value is None or not gate_holds(op, threshold, value):
            shown = "missing" if value is None else f"{value:.4f}"
            failed.append(f"expect {key} {op} {threshold:g}: got {shown}")
    return failed


def _count(split: Any) -> int | None:
    try:
        return len(split)
    except TypeError:
        return None


def _write_run_files(run_dir: Path, loaded: LoadedRecipe, prepared, options: TrainOptions) -> None:
    import torch

    from kcli import __version__, runs
    from kcli.summary import render_summary, summarize_model

    runs.write_text_atomic(run_dir / "recipe.yaml", loaded.resolved_yaml())
    record = runs.new_run_record(
        run_dir,
        name=loaded.name,
        seed=loaded.recipe.seed,
        recipe_hash=loaded.recipe_hash(),
        command=options.argv,
        device=str(prepared.device),
        recipe_dir=str(loaded.base_dir.resolve()),
        torch_version=torch.__version__,
        kcli_version=__version__,
    )
    runs.write_run_record(run_dir, record)
    title = loaded.recipe.model.name or loaded.name
    summary = summarize_model(prepared.plan, prepared.model, title)
    runs.write_text_atomic(run_dir / "summary.txt", render_summary(summary))
    document = {
        "preprocessing": prepared.splits.preprocessing.to_json(),
        "target": prepared.splits.target.to_json(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    runs.write_text_atomic(run_dir / "preprocess.json", json.dumps(document, indent=2))


def _write_plots(run_dir: Path, trainer) -> None:
    """Plots are a convenience: without matplotlib the run still completes, with a note."""
    try:
        from kcli.plots import write_plots

        write_plots(run_dir)
    except KcliError as error:
        trainer.log(f"plots skipped: {error}")
