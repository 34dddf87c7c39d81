"""The fit loop: epochs of train steps, validation, callbacks, metrics rows and checkpoints.

The math lives in steps.py; this module is the story of a run, top to bottom, on one screen:
for each epoch, train on every batch, validate, let callbacks act, log a row, checkpoint.
Ctrl-C sets a flag; the loop finishes the step it is in, checkpoints where it stands (mid-epoch
included) and raises TrainingInterrupted, so `--resume` continues exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kcli.compile.outputs import output_loss_names
from kcli.errors import KcliError, TrainingDiverged
from kcli.fit.checkpoint import (
    CheckpointSaver,
    check_training_state,
    load_model_weights,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from kcli.fit.epochs import epoch_window
from kcli.fit.progress import Progress
from kcli.fit.steps import Accumulator, Stepper

CHECKPOINT_FORMAT = 1


class TrainingInterrupted(Exception):
    """Ctrl-C: the run was checkpointed where it stood; exit 130."""

    exit_code = 130


@dataclass
class Trainer:
    """Runs `fit` for one model; also the object callbacks talk to (`callback.trainer`)."""

    model: torch.nn.Module
    stepper: Stepper
    train_batches: Any  # InMemoryBatches | StreamBatches
    val_batches: Any | None
    metric_specs: list  # resolved MetricSpecs: names and fresh Metric objects
    callbacks: list
    run_dir: Path
    epochs: int
    progress: Progress
    write_row: Callable[[dict[str, float]], None]
    sync_rows: Callable[[], None] | None = None  # makes the written rows durable (fsync)
    dist: Any = None  # DistContext when several processes train (see distributed.py)
    has_penalty: bool = False
    steps_per_epoch: int | None = None  # Keras' fit argument (see epochs.py); None: one pass
    validation_steps: int | None = None  # validation batches per evaluation; None: all
    validates_after: Callable[[int], bool] = lambda epoch: True  # Keras' validation_freq
    initial_epoch: int = 0  # the first epoch this run trains (Keras' initial_epoch)
    validated: bool = False  # whether the epoch that just ended ran validation
    _noted_short_epoch: bool = False  # said once that an epoch ended with its pass
    stop_training: bool = False
    interrupt_requested: bool = False
    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    _next_batch: int = 0
    _partial: dict | None = None
    _snapshot: dict | None = None  # checkpoint_state() at this epoch end (save_full_checkpoint)

    def __post_init__(self) -> None:
        self.device = self.stepper.device
        self.optimizer = self.stepper.optimizer
        self.train_metrics = [spec.streaming() for spec in self.metric_specs]
        self.val_metrics = [spec.streaming() for spec in self.metric_specs]
        self._checkpoints = CheckpointSaver(before_round=self.sync_rows)
        self._epoch_saves: dict[Path, dict[str, Any]] = {}  # this epoch end's files
        for callback in self.callbacks:
            callback.set_trainer(self)

    @property
    def is_main(self) -> bool:
        """True in the process that writes the run folder (rank 0, or the only one)."""
        return self.dist is None or self.dist.is_main

    # ---- what callbacks may use -----------------------------------------------------------
    def get_learning_rate(self) -> float:
        return float(self.optimizer.current_learning_rate())

    def set_learning_rate(self, value: float) -> None:
        self.optimizer.set_learning_rate(float(value))

    def log(self, message: str) -> None:
        self.progress.message(message)

    def save_checkpoint(self, path: Path, state: dict[str, Any]) -> None:
        """Save `state` (rank 0 only) with this epoch's checkpoints (see CheckpointSaver)."""
        if self.is_main:
            self._epoch_saves[Path(path)] = state

    def save_full_checkpoint(self, path: Path) -> None:
        """Save `checkpoint_state()` as it is now. Every rank calls it (the state gathers the
        ranks' RNG states); rank 0 saves.

        The end of an epoch often saves the same state twice (last.pt, and best.pt when the
        monitored value improved): it is taken once. It is taken again after any callback ran,
        since a callback may change what the state holds.
        """
        if self._snapshot is None:
            self._snapshot = self.checkpoint_state()
        self.save_checkpoint(path, self._snapshot)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly where it stands."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epochs_done,
            "batch": self._next_batch,
            "partial": self._partial or {},
            "rng": rng_state(),
            "callbacks": [callback.state_dict() for callback in self.callbacks],
        }
        if hasattr(self.train_batches, "state_dict"):
            state["data"] = self.train_batches.state_dict()
        if self.stepper.scaler is not None:
            state["scaler"] = self.stepper.scaler.state_dict()
        if self.dist is not None:  # every rank draws its own dropout masks: keep all their RNGs
            from kcli.fit.distributed import gather_objects

            state["rng_ranks"] = gather_objects(state["rng"])
        return state

    def restore(self, state: dict[str, Any], source: Path | str = "the checkpoint") -> None:
        """Continue from a checkpoint written by `checkpoint_state` (same recipe).

        A checkpoint that does not fit (damaged, or of another model) is a KcliError naming
        `source` (its file).
        """
        check_training_state(state, Path(source))
        load_model_weights(self.model, state, Path(source))
        try:
            self._restore_training_state(state)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
            raise KcliError(
                f"{source}: damaged checkpoint: its training state cannot be restored "
                f"({type(e).__name__}: {e})"
            ) from None

    def _restore_training_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        for callback, callback_state in zip(self.callbacks, state["callbacks"], strict=False):
            callback.load_state_dict(callback_state)
        if "data" in state and hasattr(self.train_batches, "load_state_dict"):
            self.train_batches.load_state_dict(state["data"])
        if "scaler" in state and self.stepper.scaler is not None:
            self.stepper.scaler.load_state_dict(state["scaler"])
        self.epochs_done = int(state["epoch"])
        self._next_batch = int(state.get("batch", 0))
        self._partial = state.get("partial") or None
        rng = state["rng"]
        if self.dist is not None and "rng_ranks" in state:
            rng = state["rng_ranks"][self.dist.rank]
        restore_rng_state(rng)  # last: nothing after it may draw random numbers

    # ---- the loop --------------------------------------------------------------------------
    def fit(self) -> list[dict[str, float]]:
        """Train from `epochs_done` to `epochs`; returns the logs of the epochs run now."""
        try:
            return self._fit()
        finally:
            self._flush_checkpoints()

    def _flush_checkpoints(self) -> None:
        """Every saved checkpoint on disk; a write error raised unless another is on its way.

        Saves not yet handed over (a callback's in on_train_end, or those of an epoch end cut
        short by an error in a later callback) hold end-of-epoch states: they are written too.
        """
        saves, self._epoch_saves = self._epoch_saves, {}
        if sys.exc_info()[0] is None:
            self._checkpoints.save(saves)
            self._checkpoints.flush()
        else:
            with contextlib.suppress(Exception):
                self._checkpoints.save(saves)
                self._checkpoints.flush()

    def _fit(self) -> list[dict[str, float]]:
        for callback in self.callbacks:
            callback.on_train_begin({})
        while self.epochs_done < self.epochs and not self.stop_training:
            epoch = self.epochs_done
            for callback in self.callbacks:
                callback.on_epoch_begin(epoch)
            started = time.perf_counter()
            logs, steps_done = self._train_epoch(epoch)
            self.validated = self.val_batches is not None and self.validates_after(epoch)
            if self.validated:
                validation = self.evaluate(self.val_batches, steps=self.validation_steps)
                logs.update({f"val_{k}": v for k, v in validation.items()})
            self.progress.end_epoch(epoch, steps_done, logs)
            logs["lr"] = self.get_learning_rate()
            if not math.isfinite(logs["loss"]):
                raise TrainingDiverged(
                    f"the training loss became {logs['loss']} in epoch {epoch + 1}: training "
                    "stopped; the last good checkpoint is kept (try a lower learning rate)"
                )
            self.epochs_done = epoch + 1
            self._next_batch, self._partial = 0, None
            for callback in self.callbacks:
                self._snapshot = None
                callback.on_epoch_end(epoch, logs)
            logs["seconds"] = time.perf_counter() - started
            # An epoch without validation (fit.validation_freq) leaves its val_ cells empty.
            skipped = {} if self.validated or self.val_batches is None else self._val_names()
            self.write_row({"epoch": epoch + 1, **skipped, **logs})
            self.history.append(logs)
            self._write_checkpoints(epoch)
        for callback in self.callbacks:
            callback.on_train_end(self.history[-1] if self.history else {})
        return self.history

    def _val_names(self) -> dict[str, None]:
        names = ["loss", *self._output_loss_names(), *(s.log_name for s in self.metric_specs)]
        return {f"val_{name}": None for name in names}

    def _output_loss_names(self) -> list[str]:
        return output_loss_names([objective.name for objective in self.stepper.objectives])

    def _write_checkpoints(self, epoch: int) -> None:
        self.save_full_checkpoint(self.run_dir / "checkpoints" / "last.pt")
        if epoch == self.initial_epoch:  # the first epoch's weights, for the histogram plot
            self.save_checkpoint(
                self.run_dir / "checkpoints" / "first.pt",
                {"model": self.model.state_dict(), "epoch": 1},
            )
        saves, self._epoch_saves, self._snapshot = self._epoch_saves, {}, None
        self._checkpoints.save(saves)

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], int]:
        self.model.train()
        accumulator = Accumulator.zeros(self.device, len(self.stepper.objectives))
        for metric in self.train_metrics:
            metric.reset()
        start = self._next_batch
        if self._partial:  # resumed mid-epoch: carry on the sums of the batches already done
            accumulator.load(self._partial["accumulator"])
            for metric, state in zip(self.train_metrics, self._partial["metrics"], strict=True):
                metric.load_state(state)
        steps = _length(self.train_batches)
        window = None
        if self.steps_per_epoch is not None:  # in-memory data only (setup checks it)
            window = epoch_window(epoch, steps, self.steps_per_epoch)
            if window.steps < self.steps_per_epoch:
                self._note_short_epoch(epoch, window, steps)
        if window is not None:
            steps = window.steps
            batches = self.train_batches.epoch(window.pass_index, window.first + start)
            batches = itertools.islice(batches, window.steps - start)
        else:
            batches = (
                self.train_batches.epoch(epoch, start) if start else self.train_batches.epoch(epoch)
            )
        self.progress.start_epoch(epoch, steps, done_before=start)
        done = start
        for x, y, w in batches:
            self.stepper.train_step(x, y, w, accumulator, self.train_metrics)
            done += 1
            self.progress.step(done, lambda a=accumulator: self._logs(a, self.train_metrics))
            if self.interrupt_requested:
                self._checkpoint_mid_epoch(done, accumulator)
        return self._logs(accumulator, self.train_metrics, reduce=True), done

    def _note_short_epoch(self, epoch: int, window: Any, batches_per_pass: int) -> None:
        if not self._noted_short_epoch:
            self._noted_short_epoch = True
            self.log(
                f"epoch {epoch + 1} trains {window.steps} of steps_per_epoch "
                f"{self.steps_per_epoch} steps: it reached the end of a pass over the data "
                f"({batches_per_pass} batches), and as in Keras an epoch ends with its pass"
            )

    def _checkpoint_mid_epoch(self, done: int, accumulator: Accumulator) -> None:
        self._next_batch = done
        self._partial = {
            "accumulator": {k: v.clone() for k, v in accumulator.state().items()},
            "metrics": [metric.state() for metric in self.train_metrics],
        }
        self._checkpoints.flush()  # earlier epochs' files first: this last.pt lands last
        save_checkpoint(self.run_dir / "checkpoints" / "last.pt", self.checkpoint_state())
        raise TrainingInterrupted(
            f"interrupted in epoch {self.epochs_done + 1} after {done} steps; checkpoint saved"
        )

    def _logs(
        self, accumulator: Accumulator, metrics: list, reduce: bool = False
    ) -> dict[str, float]:
        """Epoch logs from device-side sums; `reduce` sums them over all ranks first."""
        if reduce and self.dist is not None:
            self._all_reduce(accumulator, metrics)
        count = max(float(accumulator.count), 1.0)
        logs = {"loss": float(accumulator.loss_sum) / count}
        for name, total in zip(self._output_loss_names(), accumulator.output_sums, strict=True):
            logs[name] = float(total) / count
        for spec, metric in zip(self.metric_specs, metrics, strict=True):
            logs[spec.log_name] = float(metric.compute())
        if self.has_penalty:
            logs["regularization"] = float(accumulator.penalty_sum) / count
        return logs

    def _all_reduce(self, accumulator: Accumulator, metrics: list) -> None:
        from kcli.fit.distributed import all_reduce_sums

        states = [metric.state() for metric in metrics]
        sums = accumulator.state()
        all_reduce_sums(list(sums.values()))
        accumulator.load(sums)
        all_reduce_sums([tensor for state in states for tensor in state.values()])
        for metric, state in zip(metrics, states, strict=True):
            metric.load_state(state)

    @torch.no_grad()
    def evaluate(self, batches: Any, steps: int | None = None) -> dict[str, float]:
        """Loss and metrics over every batch, or the first `steps` (validation, test): no
        prefix on the names."""
        self.model.eval()
        accumulator = Accumulator.zeros(self.device, len(self.stepper.objectives))
        for metric in self.val_metrics:
            metric.reset()
        for x, y, w in itertools.islice(batches.epoch(0), steps):
            self.stepper.eval_step(x, y, w, accumulator, self.val_metrics)
        logs = self._logs(accumulator, self.val_metrics, reduce=True)
        logs.pop("regularization", None)
        return logs


def _length(batches: Any) -> int | None:
    try:
        return len(batches)
    except TypeError:  # a generator source without steps_per_epoch
        return None
