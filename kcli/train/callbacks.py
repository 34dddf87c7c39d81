"""Keras' callbacks: a spec per name (torch-free, in recipes' `fit.callbacks`) and what it builds.

`CallbackSpec.build()` gives a `Callback`: an object with no-op hooks that the trainer calls
(`on_train_begin`, `on_epoch_begin(epoch)`, `on_epoch_end(epoch, logs)`, `on_train_end`;
`epoch` is 0-based as in Keras). A callback reaches the run through `self.trainer`, which
offers `model`, `run_dir`, `stop_training`, `get_learning_rate()`, `set_learning_rate(v)`,
`checkpoint_state()` and `log(message)`. Its counters and best values live from construction
on and travel in checkpoints through `state_dict()` / `load_state_dict()`, so a resumed run
counts on exactly as an uninterrupted one. Torch is imported inside methods only.
"""

from __future__ import annotations

import csv
import io
import math
import string
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from kcli.errors import KcliError
from kcli.registry import RegisteredSpec, Registry
from kcli.schedules import ScheduleRef

callback_registry = Registry("callback")

Mode = Literal["auto", "min", "max"]
# Names that get better as they grow, for mode "auto" (looked for after stripping "val_").
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "r2")


class Callback:
    """Base of callback implementations: every hook does nothing until overridden."""

    trainer: Any = None

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict[str, float]) -> None:
        """Before the first epoch of this `fit` (after `load_state_dict` when resuming)."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Before epoch `epoch` (0-based) trains."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After epoch `epoch` trained and validated; `logs` holds loss, metrics, val_*, lr."""

    def on_train_end(self, logs: dict[str, float]) -> None:
        """After the last epoch (or an early stop); `logs` are the last epoch's."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue: numbers, strings, lists, dicts, tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back a `state_dict()` from a checkpoint."""


class CallbackSpec(RegisteredSpec):
    """A callback as a recipe names it; `build()` makes a fresh `Callback` for one run."""

    registry: ClassVar[Registry] = callback_registry

    def build(self) -> Callback:
        raise NotImplementedError  # every registered callback overrides this


def monitor_mode(monitor: str, mode: Mode) -> Literal["min", "max"]:
    """Resolve mode "auto": max for accuracy-like names (acc, auc, precision ...), else min."""
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_").lower()
    return "max" if any(hint in name for hint in _HIGHER_IS_BETTER) else "min"


def improved(current: float, reference: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `current` beats `reference` by more than `min_delta` (NaN never does)."""
    if mode == "min":
        return current < reference - abs(min_delta)
    return current > reference + abs(min_delta)


def _inside_run_folder(value: str) -> str:
    """A path relative to the run folder that stays in it (a run writes only in its folder)."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or value.startswith("~"):
        raise ValueError(
            f"must be a path inside the run folder, like 'checkpoints/x.pt' (got {value!r})"
        )
    return value


class _Monitoring(Callback):
    """A callback that watches one logged value and warns once when it is missing."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.monitor: str = spec.monitor
        self.mode = monitor_mode(spec.monitor, spec.mode)
        self._warned = False

    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def monitored(self, logs: dict[str, float]) -> float | None:
        value = logs.get(self.monitor)
        if value is None:
            if not self._warned:
                self._warned = True
                self.trainer.log(
                    f"{self.spec.type}: '{self.monitor}' is not among the logged values "
                    f"({', '.join(sorted(logs))}); skipping it"
                )
            return None
        return float(value)


def _copy_weights(model: Any) -> dict[str, Any]:
    """A CPU copy of a model's weights, unaffected by later training steps."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ---- EarlyStopping -----------------------------------------------------------------------------
class EarlyStopping(CallbackSpec):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    With `restore_best_weights`, the best epoch's weights are put back when training ends,
    whether or not it stopped early (Keras 3 does the same). `baseline`: the wait counter only
    restarts on a value that also beats it. Epochs before `start_from_epoch` are not watched.
    """

    type: Literal["EarlyStopping"] = "EarlyStopping"
    monitor: str = "val_loss"
    min_delta: float = 0.0  # Keras takes its absolute value
    patience: int = Field(0, ge=0)
    verbose: int = Field(0, ge=0)
    mode: Mode = "auto"
    baseline: float | None = None
    restore_best_weights: bool = False
    start_from_epoch: int = Field(0, ge=0)

    def build(self) -> Callback:
        return EarlyStoppingCallback(self)


class EarlyStoppingCallback(_Monitoring):
    def __init__(self, spec: EarlyStopping) -> None:
        super().__init__(spec)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self.worst()
        self.best_epoch = 0
        self.best_weights: dict[str, Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        spec = self.spec
        current = self.monitored(logs)
        if current is None or epoch < spec.start_from_epoch:
            return
        if spec.restore_best_weights and self.best_weights is None:
            # Until something improves, the first watched epoch's weights are the best ones.
            self.best_weights, self.best_epoch = _copy_weights(self.trainer.model), epoch
        self.wait += 1
        if improved(current, self.best, self.mode, spec.min_delta):
            self.best, self.best_epoch = current, epoch
            if spec.restore_best_weights:
                self.best_weights = _copy_weights(self.trainer.model)
            if spec.baseline is None or improved(current, spec.baseline, self.mode, spec.min_delta):
                self.wait = 0
            return
        if self.wait >= spec.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self.stopped_epoch > 0 and self.spec.verbose:
            self.trainer.log(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.spec.restore_best_weights and self.best_weights is not None:
            if self.spec.verbose:
                best = self.best_epoch + 1
                self.trainer.log(f"Restoring model weights from the end of the best epoch: {best}.")
            self.trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best": self.best,
            "best_epoch": self.best_epoch,
        }
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.best_weights = state.get("best_weights")


# ---- ReduceLROnPlateau -------------------------------------------------------------------------
class ReduceLROnPlateau(CallbackSpec):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement.

    After a reduction, `cooldown` epochs pass before the wait counts again; the rate never
    goes below `min_lr`.
    """

    type: Literal["ReduceLROnPlateau"] = "ReduceLROnPlateau"
    monitor: str = "val_loss"
    factor: float = Field(0.1, ge=0, lt=1)  # Keras refuses factor >= 1 too
    patience: int = Field(10, ge=0)
    verbose: int = Field(0, ge=0)
    mode: Mode = "auto"
    min_delta: float = 1e-4
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)

    def build(self) -> Callback:
        return ReduceLROnPlateauCallback(self)


class ReduceLROnPlateauCallback(_Monitoring):
    def __init__(self, spec: ReduceLROnPlateau) -> None:
        super().__init__(spec)
        self.wait = 0
        self.cooldown_counter = 0
        self.best = self.worst()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        spec = self.spec
        current = self.monitored(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if improved(current, self.best, self.mode, spec.min_delta):
            self.best, self.wait = current, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait < spec.patience:
            return
        old_lr = self.trainer.get_learning_rate()
        if old_lr > spec.min_lr:
            new_lr = max(old_lr * spec.factor, spec.min_lr)
            self.trainer.set_learning_rate(new_lr)
            if spec.verbose:
                self.trainer.log(
                    f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}."
                )
            self.cooldown_counter, self.wait = spec.cooldown, 0

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.best = float(state["best"])


# ---- ModelCheckpoint ---------------------------------------------------------------------------
class ModelCheckpoint(CallbackSpec):
    """Save a checkpoint at epoch ends, by default only when `monitor` improves.

    `filepath` is relative to the run folder and may use `{epoch}` (1-based, as in Keras) and
    logged names: `checkpoints/e{epoch:02d}-{val_loss:.3f}.pt`. Unlike Keras, `save_best_only`
    defaults to true: the trainer writes checkpoints/last.pt after every epoch itself. The file
    holds the trainer's full checkpoint state, or `{model, epoch}` with `save_weights_only`.
    Checkpoints are written per epoch only (`save_freq: epoch`).
    """

    type: Literal["ModelCheckpoint"] = "ModelCheckpoint"
    filepath: str = "checkpoints/best.pt"
    monitor: str = "val_loss"
    verbose: int = Field(0, ge=0)
    save_best_only: bool = True
    save_weights_only: bool = False
    mode: Mode = "auto"
    save_freq: Literal["epoch"] = "epoch"
    initial_value_threshold: float | None = None

    @field_validator("filepath")
    @classmethod
    def _check_filepath(cls, value: str) -> str:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as e:
            raise ValueError(f"is not a valid path template ({e}): {value!r}") from None
        if any(name == "" or name.isdigit() for name in fields):
            raise ValueError(f"placeholders need a name like {{epoch}} (got {value!r})")
        return _inside_run_folder(value)

    def build(self) -> Callback:
        return ModelCheckpointCallback(self)


class ModelCheckpointCallback(_Monitoring):
    def __init__(self, spec: ModelCheckpoint) -> None:
        super().__init__(spec)
        threshold = spec.initial_value_threshold
        self.best = self.worst() if threshold is None else float(threshold)

    def _path(self, epoch: int, logs: dict[str, float]) -> Path:
        try:
            relative = self.spec.filepath.format_map({**logs, "epoch": epoch + 1})
        except KeyError as e:
            raise KcliError(
                f"ModelCheckpoint filepath {self.spec.filepath!r} names {e.args[0]!r}, which is "
                f"not logged (logged: epoch, {', '.join(sorted(logs))})"
            ) from None
        return Path(self.trainer.run_dir) / relative

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        spec, log = self.spec, self.trainer.log
        path = self._path(epoch, logs)
        if spec.save_best_only:
            current = self.monitored(logs)
            if current is None:
                return
            if not improved(current, self.best, self.mode):
                if spec.verbose:
                    log(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if spec.verbose:
                log(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{current:.5f}, saving model to {path}"
                )
            self.best = current  # before checkpoint_state(), so the file holds the new best
        elif spec.verbose:
            log(f"Epoch {epoch + 1}: saving model to {path}")
        if spec.save_weights_only:
            state = {"model": self.trainer.model.state_dict(), "epoch": epoch + 1}
            self.trainer.save_checkpoint(path, state)
        else:
            self.trainer.save_full_checkpoint(path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


# ---- LearningRateScheduler, TerminateOnNaN -----------------------------------------------------
class LearningRateScheduler(CallbackSpec):
    """Set the learning rate to `schedule(epoch)` before each epoch (0-based epoch index).

    The schedule is one of the optimizer schedules, evaluated at the epoch index instead of
    the step: `{type: ExponentialDecay, initial_learning_rate: 0.1, decay_steps: 10, ...}`.
    """

    type: Literal["LearningRateScheduler"] = "LearningRateScheduler"
    schedule: ScheduleRef
    verbose: int = Field(0, ge=0)

    def build(self) -> Callback:
        return LearningRateSchedulerCallback(self)


class LearningRateSchedulerCallback(Callback):
    def __init__(self, spec: LearningRateScheduler) -> None:
        self.spec = spec

    def on_epoch_begin(self, epoch: int) -> None:
        lr = float(self.spec.schedule(epoch))
        self.trainer.set_learning_rate(lr)
        if self.spec.verbose:
            self.trainer.log(
                f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}."
            )


class TerminateOnNaN(CallbackSpec):
    """Stop training when the epoch's loss is NaN or infinite."""

    type: Literal["TerminateOnNaN"] = "TerminateOnNaN"

    def build(self) -> Callback:
        return TerminateOnNaNCallback()


class TerminateOnNaNCallback(Callback):
    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            self.trainer.log(f"Epoch {epoch + 1}: invalid loss ({loss}), terminating training")
            self.trainer.stop_training = True


# ---- CSVLogger ---------------------------------------------------------------------------------
class CSVLogger(CallbackSpec):
    """Write each epoch's logs to a CSV file in the run folder.

    Keras' format: the 0-based epoch, then the logged names sorted ("NA" where one is missing).
    `append` keeps what an existing file holds; a resumed run continues its own file.
    """

    type: Literal["CSVLogger"] = "CSVLogger"
    filename: str = "log.csv"
    separator: str = Field(",", min_length=1, max_length=1)
    append: bool = False

    @field_validator("filename")
    @classmethod
    def _check_filename(cls, value: str) -> str:
        return _inside_run_folder(value)

    def build(self) -> Callback:
        return CSVLoggerCallback(self)


class CSVLoggerCallback(Callback):
    def __init__(self, spec: CSVLogger) -> None:
        self.spec = spec
        self.keys: list[str] | None = None
        self.next_epoch = 0  # epochs already written, so a resumed run continues the file
        self._resumed = False
        self._file: Any = None

    def on_train_begin(self, logs: dict[str, float]) -> None:
        path = Path(self.trainer.run_dir) / self.spec.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._resumed and path.is_file():
            self._keep_rows_before(path, self.next_epoch)
        keep = (self.spec.append or self._resumed) and path.is_file()
        has_rows = keep and path.stat().st_size > 0
        self._file = path.open("a" if keep else "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, delimiter=self.spec.separator, lineterminator="\n")
        self._write_header = not has_rows

    def _keep_rows_before(self, path: Path, epoch: int) -> None:
        """Drop rows a crashed run wrote after its checkpoint: they will be trained again."""
        from kcli.runs import write_text_atomic

        rows = list(csv.reader(io.StringIO(path.read_text("utf-8")), delimiter=self.spec.separator))
        kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epoch]
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.spec.separator, lineterminator="\n").writerows(kept)
        write_text_atomic(path, buffer.getvalue())

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.keys is None:
            self.keys = sorted(logs)
        if self._write_header:
            self._writer.writerow(["epoch", *self.keys])
            self._write_header = False
        self._writer.writerow([epoch, *(logs.get(k, "NA") for k in self.keys)])
        self._file.flush()
        self.next_epoch = epoch + 1

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def state_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys or []), "next_epoch": self.next_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.keys = list(state["keys"]) or None
        self.next_epoch = int(state["next_epoch"])
        self._resumed = True


# ---- TensorBoard -------------------------------------------------------------------------------
def _summary_writer_class() -> Any:
    """torch's SummaryWriter; KcliError with the install hint when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise KcliError(
            "the TensorBoard callback needs the tensorboard package: pip install kcli[tensorboard]"
        ) from None
    return SummaryWriter


class TensorBoard(CallbackSpec):
    """Epoch curves (and weight histograms every `histogram_freq` epochs) for TensorBoard.

    As in Keras, training values go to `<log_dir>/train` and val_ ones, without the prefix, to
    `<log_dir>/validation`, as `epoch_<name>`. Logged per epoch (`update_freq: epoch`).
    """

    type: Literal["TensorBoard"] = "TensorBoard"
    log_dir: str = "tensorboard"
    histogram_freq: int = Field(0, ge=0)
    update_freq: Literal["epoch"] = "epoch"

    @field_validator("log_dir")
    @classmethod
    def _check_log_dir(cls, value: str) -> str:
        return _inside_run_folder(value)

    def build(self) -> Callback:
        return TensorBoardCallback(self, _summary_writer_class())


class TensorBoardCallback(Callback):
    def __init__(self, spec: TensorBoard, writer_class: Any) -> None:
        self.spec = spec
        self._writer_class = writer_class
        self._writers: dict[str, Any] = {}

    def on_train_begin(self, logs: dict[str, float]) -> None:
        root = Path(self.trainer.run_dir) / self.spec.log_dir
        self._writers = {
            part: self._writer_class(log_dir=str(root / part)) for part in ("train", "validation")
        }

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            part = "validation" if name.startswith("val_") else "train"
            tag = "learning_rate" if name == "lr" else name.removeprefix("val_")
            self._writers[part].add_scalar(f"epoch_{tag}", value, epoch)
        freq = self.spec.histogram_freq
        if freq and epoch % freq == 0:
            for name, weight in self.trainer.model.named_parameters():
                self._writers["train"].add_histogram(name, weight.detach().cpu(), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict[str, float]) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


CallbackRef = callback_registry.field()
"""The type of a `fit.callbacks` entry: a name or a `{type: ..., params}` mapping."""
