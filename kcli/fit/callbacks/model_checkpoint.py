"""ModelCheckpoint: save a checkpoint at epoch ends, by default when the monitored value improves.

The file is written through the trainer (`save_checkpoint` / `save_full_checkpoint`). Torch-free.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from kcli.errors import KcliError
from kcli.fit.callbacks.base import Callback, CallbackSpec, _inside_run_folder
from kcli.fit.callbacks.monitoring import Mode, _Monitoring, improved


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
