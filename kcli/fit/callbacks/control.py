"""Callbacks that steer the run each epoch: LearningRateScheduler and TerminateOnNaN.

Torch-free: the schedule is evaluated in Python and the trainer sets the rate.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from kcli.compile.schedules import ScheduleRef
from kcli.fit.callbacks.base import Callback, CallbackSpec


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
