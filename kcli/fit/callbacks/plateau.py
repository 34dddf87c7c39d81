"""EarlyStopping and ReduceLROnPlateau: act when the monitored value stops improving.

Specs are torch-free; the callbacks copy and load weights through the trainer's model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kcli.fit.callbacks.base import Callback, CallbackSpec
from kcli.fit.callbacks.monitoring import Mode, _Monitoring, improved


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
