"""`kcli train`: one run, from recipe to a complete run folder (or an honest failed one).

prepare (data, model, checks: nothing written yet)
-> run folder: recipe.yaml, run.json (running), summary.txt, preprocess.json
-> Trainer.fit (metrics.csv row by row, checkpoints/last.pt every epoch)
-> test split -> eval.json -> plots -> expect gates -> run.json (completed)
"""

from __future__ import annotations

import json
import math
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem, StorageError
from kcli.fit.trainer import TrainingInterrupted
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


def train(
    recipe_path: str | None,
    overrides: list[str],
    options: TrainOptions,
    merged: list[str] | None = None,
) -> TrainResult:
    """Train a recipe (`merged` files over it, in order) or resume a run; return where it went
    and how it ended."""
    from kcli import runs

    if options.resume:
        run_dir = runs.resolve_run(options.resume, options.runs_dir, require_checkpoint=True)
        record = runs.read_run_record(run_dir)
        loaded = _load_for_resume(run_dir, overrides)
        base_dir = Path(record.recipe_dir) if getattr(record, "recipe_dir", None) else None
    else:
        if recipe_path is None:
            raise KcliError(Problem("give a recipe file, or --resume RUN"))
        loaded = load_recipe(recipe_path, overrides, merged)
        run_dir, base_dir = None, None
    return _run(loaded, options, run_dir, base_dir)


def _load_for_resume(run_dir: Path, overrides: list[str]) -> LoadedRecipe:
    original = load_recipe(run_dir / "recipe.yaml")
    loaded = load_recipe(run_dir / "recipe.yaml", overrides)
    # How much is printed is not part of the run: verbose may change too.
    before = original.recipe.model_dump(exclude={"fit": {"epochs", "verbose"}})
    after = loaded.recipe.model_dump(exclude={"fit": {"epochs", "verbose"}})
    if before != after:
        raise KcliError(
            Problem(
                "only fit.epochs can change when resuming (and fit.verbose; anything else would "
                "not continue the same run); start a new run instead",
                origin="--resume",
            )
        )
    return loaded


@contextmanager
def _stop_signals(trainer, distributed: bool):
    """How Ctrl-C and SIGTERM stop training.

    One process: the first Ctrl-C or SIGTERM (a CI job cancelled, a container stopped) asks the
    loop to stop after its step (it checkpoints where it stands); a second one stops at once.
    Distributed: the launcher stops every rank within moments, so each rank stops at once and
    the run resumes from its last epoch's checkpoint.
    """
    from kcli.fit.trainer import TrainingInterrupted

    def ask_to_stop(signum, frame):
        if trainer.interrupt_requested:
            raise KeyboardInterrupt
        trainer.interrupt_requested = True

    def stop_now(signum, frame):
        raise TrainingInterrupted(
            f"stopped by signal {signum} after {trainer.epochs_done} epoch(s); the last epoch's "
            "checkpoint is kept"
        )

    handled = [signal.SIGINT, signal.SIGTERM]
    handler = stop_now if distributed else ask_to_stop
    try:
        previous = {sig: signal.signal(sig, handler) for sig in handled}
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run(
    loaded: LoadedRecipe, options: TrainOptions, resume_dir: Path | None, base_dir: Path | None
) -> TrainResult:
    from kcli import runs
    from kcli.fit.checkpoint import check_training_state, load_checkpoint
    from kcli.memory import settle_memory
    from kcli.train.assemble import make_trainer
    from kcli.train.setup import prepare

    prepared = prepare(loaded, options.device, base_dir, start_weights=resume_dir is None)
    settle_memory()  # the long-lived objects exist now: collect garbage from here on
    context = prepared.dist
    main = context is None or context.is_main
    recipe = loaded.recipe
    checkpoint = None
    if resume_dir is None:
        run_dir = runs.create_run_dir(options.runs_dir, loaded.name) if main else None
        if main:
            _write_run_files(run_dir, loaded, prepared, options)
        if context is not None:
            from kcli.fit.distributed import broadcast_object

            run_dir = Path(broadcast_object(str(run_dir) if main else None))
    else:
        # Everything the resume reads is checked before anything in the run folder changes.
        run_dir = resume_dir
        checkpoint_file = run_dir / "checkpoints" / "last.pt"
        checkpoint = load_checkpoint(checkpoint_file)
        check_training_state(checkpoint, checkpoint_file)
        logged = runs.read_metrics(run_dir / "metrics.csv")
        runs.read_preprocessing(run_dir / runs.PREPROCESS_FILE)  # eval and export will need it
    # Only rank 0 writes the run folder; other ranks' callbacks write into a scratch folder.
    work_dir = run_dir if main else _scratch_dir()
    metrics_log = runs.MetricsLog(run_dir / "metrics.csv") if main else None
    trainer = make_trainer(
        prepared,
        work_dir,
        options,
        metrics_log.append if main else _ignore,
        metrics_log.sync if main else None,
    )
    if checkpoint is not None:
        trainer.restore(checkpoint, checkpoint_file)
        trainer.history = [{k: v for k, v in row.items() if k != "epoch"} for row in logged][
            : trainer.epochs_done
        ]
        if main:
            runs.write_text_atomic(run_dir / "recipe.yaml", loaded.resolved_yaml())
            metrics_log.truncate_to(trainer.epochs_done)
            runs.note_resumed(run_dir, trainer.epochs_done, options.argv)
            from kcli.recipe.plugins import changed_plugin_notes

            for note in changed_plugin_notes(runs.read_run_record(run_dir).plugins, run_dir):
                trainer.log(f"note: {note}")
    if main:
        runs.set_status(run_dir, "running")
        if context is not None:
            from kcli.fit.distributed import announce_run_dir

            announce_run_dir(run_dir)
            world, batch = context.world_size, recipe.fit.batch_size
            trainer.log(
                f"distributed: {world} processes ({context.backend}) x batch {batch} "
                f"= global batch {world * batch}"
            )
    status_of = _record_status if main else _ignore
    try:
        # The signals stay handled until the run folder is complete: a Ctrl-C while the test
        # split or the plots are being done must still leave a true run.json.
        with _stop_signals(trainer, distributed=context is not None):
            trainer.fit()
            final, failed = _finish(trainer, prepared, run_dir, main)
    except TrainingInterrupted as stop:
        status_of(run_dir, "interrupted", str(stop), trainer.epochs_done)
        trainer.log(f"{stop}. Continue with: kcli train --resume {run_dir}")
        raise
    except KeyboardInterrupt:
        status_of(run_dir, "interrupted", "stopped by a second Ctrl-C", trainer.epochs_done)
        raise
    except StorageError as error:  # disk full, file too large: the last whole checkpoint stays
        try:
            status_of(run_dir, "failed", str(error), trainer.epochs_done)
            error.hint = (
                f"the run is marked failed and its last whole checkpoint is kept; make room, then "
                f"continue with: kcli train --resume {run_dir}"
            )
        except StorageError:
            error.hint = f"{run_dir}/run.json could not be marked failed either"
        raise
    except BaseException as error:  # the run folder must say it failed, whatever happened
        status_of(run_dir, "failed", f"{type(error).__name__}: {error}", trainer.epochs_done)
        raise
    if context is not None:
        from kcli.fit.distributed import leave_process_group

        leave_process_group()
    return TrainResult(run_dir, "completed", final, failed)


def _finish(trainer, prepared, run_dir: Path, main: bool) -> tuple[dict[str, float], list[str]]:
    """After the last epoch: the test split, eval.json, plots, gates, run.json completed."""
    from kcli import runs

    # Each name's latest value: with fit.validation_freq the last epoch may not have validated,
    # and the gates then read the last validation's numbers, as Keras' History holds them.
    final = {}
    for logs in trainer.history:  # rows read back on a resume hold NaN for an empty cell
        final.update({k: v for k, v in logs.items() if v is not None and not math.isnan(v)})
    final.pop("seconds", None)
    test = prepared.splits.test
    if test is not None:
        test_logs = trainer.evaluate(trainer.batches_for(test))
        final.update({f"test_{k}": v for k, v in test_logs.items()})
        if main:
            document = {
                "split": "test",
                "metrics": test_logs,
                "n_samples": _count(test),
                "checkpoint": _checkpoint_of_final_weights(trainer.model, run_dir),
            }
            runs.write_json_atomic(run_dir / "eval.json", document)
    distributed = _replica_check(trainer, prepared.dist)
    failed = check_gates(prepared.loaded.recipe.expect, final)
    if main:
        _write_plots(run_dir, trainer)
        if distributed is not None:
            runs.update_run_record(run_dir, distributed=distributed)
        runs.set_status(
            run_dir,
            "completed",
            "; ".join(failed) or None,
            epochs_done=trainer.epochs_done,
            final_metrics=final,
        )
    return final, failed


def _checkpoint_of_final_weights(model, run_dir: Path) -> str:
    """Which checkpoint holds the weights the run ended with (and eval.json was computed with).

    Usually last.pt; best.pt when a callback restored the best weights. If neither holds them
    (weights restored from an epoch best.pt did not keep), they are written to final.pt, so
    `kcli eval` can always reproduce eval.json.
    """
    import torch

    from kcli.fit.checkpoint import load_checkpoint, model_weights, save_checkpoint

    current = model.state_dict()
    for name in ("best", "last"):
        path = run_dir / "checkpoints" / f"{name}.pt"
        if path.is_file():
            saved = model_weights(load_checkpoint(path), path)
            if saved.keys() == current.keys() and all(
                torch.equal(saved[k], current[k].cpu()) for k in current
            ):
                return name
    save_checkpoint(run_dir / "checkpoints" / "final.pt", {"model": current})
    return "final"


def _ignore(*args: Any, **kwargs: Any) -> None:
    """What a rank other than 0 does instead of writing to the run folder."""


def _record_status(run_dir: Path, status: str, message: str, epochs_done: int) -> None:
    from kcli import runs

    runs.set_status(run_dir, status, message, epochs_done=epochs_done)


def _scratch_dir() -> Path:
    from kcli.fit.distributed import scratch_run_dir

    return scratch_run_dir()


def _replica_check(trainer, context) -> dict[str, Any] | None:
    """DDP's invariant, checked: every rank ends with bit-identical weights."""
    if context is None:
        return None
    from kcli.fit.distributed import gather_objects, weights_digest

    digests = gather_objects(weights_digest(trainer.model))
    return {
        "world_size": context.world_size,
        "backend": context.backend,
        "global_batch_size": context.world_size * trainer.train_batches.batch_size
        if hasattr(trainer.train_batches, "batch_size")
        else None,
        "weights_in_sync": len(set(digests)) == 1,
        "weight_digests": digests,
    }


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
    from kcli.model.summary import render_summary, summarize_model

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
    record.plugins = _copy_plugins(run_dir, loaded)
    record.start_weights = prepared.start_weights
    runs.write_run_record(run_dir, record)
    title = loaded.recipe.model.name or loaded.name
    summary = summarize_model(prepared.plan, prepared.model, title)
    runs.write_text_atomic(run_dir / "summary.txt", render_summary(summary))
    document = {
        "preprocessing": prepared.splits.preprocessing.to_json(),
        # A model of several outputs has one target per output, in "preprocessing".
        "target": None if prepared.splits.target is None else prepared.splits.target.to_json(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    runs.write_text_atomic(run_dir / "preprocess.json", json.dumps(document, indent=2))


def _copy_plugins(run_dir: Path, loaded: LoadedRecipe) -> list[dict[str, Any]]:
    """Copy the recipe's plugin files into the run (eval, predict and --resume import these,
    so the run keeps the code it was trained with); their records for run.json."""
    from kcli.files import write_bytes_atomic
    from kcli.recipe.plugins import RUN_PLUGIN_FOLDER

    for plugin in loaded.plugins:
        if plugin.path is not None and plugin.path.suffix == ".py":
            relative = Path(*plugin.name.split(".")).with_suffix(".py")
            write_bytes_atomic(run_dir / RUN_PLUGIN_FOLDER / relative, plugin.path.read_bytes())
    return [plugin.record() for plugin in loaded.plugins]


def _write_plots(run_dir: Path, trainer) -> None:
    """Plots are a convenience: without matplotlib the run still completes, with a note."""
    try:
        from kcli.plots import write_plots

        write_plots(run_dir)
    except KcliError as error:
        trainer.log(f"plots skipped: {error}")
