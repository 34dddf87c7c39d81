"""Keras' learning-rate schedules: `learning_rate: {type: CosineDecay, ...}` in an optimizer.

A schedule maps the number of optimizer steps completed so far (0 before the first update) to a
learning rate, with Keras 3's formula and argument names. `__call__` is plain Python float math
(no torch), so the optimizer evaluates it once per step without touching the device and the
LearningRateScheduler callback can call it too.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from kcli.registry import RegisteredSpec, Registry

schedule_registry = Registry("learning rate schedule")


class ScheduleSpec(RegisteredSpec):
    """A learning rate as a function of the optimizer step."""

    registry: ClassVar[Registry] = schedule_registry

    def __call__(self, step: int) -> float:
        """The learning rate for the update that follows `step` completed updates."""
        raise NotImplementedError  # every registered schedule overrides this


class ExponentialDecay(ScheduleSpec):
    """initial_learning_rate * decay_rate ** (step / decay_steps); floored exponent if staircase."""

    type: Literal["ExponentialDecay"] = "ExponentialDecay"
    initial_learning_rate: float = Field(..., ge=0)
    decay_steps: int = Field(..., gt=0)
    decay_rate: float = Field(..., gt=0)
    staircase: bool = False

    def __call__(self, step: int) -> float:
        progress = step / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return self.initial_learning_rate * self.decay_rate**progress


class InverseTimeDecay(ScheduleSpec):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps); floored if staircase."""

    type: Literal["InverseTimeDecay"] = "InverseTimeDecay"
    initial_learning_rate: float = Field(..., ge=0)
    decay_steps: int = Field(..., gt=0)
    decay_rate: float = Field(..., ge=0)
    staircase: bool = False

    def __call__(self, step: int) -> float:
        progress = step / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return self.initial_learning_rate / (1.0 + self.decay_rate * progress)


class PiecewiseConstantDecay(ScheduleSpec):
    """values[0] while step <= boundaries[0], values[i] while step <= boundaries[i], then last."""

    type: Literal["PiecewiseConstantDecay"] = "PiecewiseConstantDecay"
    boundaries: list[int] = Field(..., min_length=1)
    values: list[float] = Field(..., min_length=2)

    @model_validator(mode="after")
    def _check_lengths(self) -> PiecewiseConstantDecay:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values needs one more entry than boundaries: got {len(self.boundaries)} "
                f"boundaries and {len(self.values)} values"
            )
        pairs = zip(self.boundaries[:-1], self.boundaries[1:], strict=True)
        if any(later <= earlier for earlier, later in pairs):
            raise ValueError(f"boundaries must increase, got {self.boundaries}")
        return self

    def __call__(self, step: int) -> float:
        # Keras: the interval (b[i-1], b[i]] gets values[i]; a boundary step keeps the old value.
        for boundary, value in zip(self.boundaries, self.values[:-1], strict=True):
            if step <= boundary:
                return value
        return self.values[-1]


class PolynomialDecay(ScheduleSpec):
    """(initial - end) * (1 - step/decay_steps) ** power + end; restarts longer if cycle."""

    type: Literal["PolynomialDecay"] = "PolynomialDecay"
    initial_learning_rate: float = Field(..., ge=0)
    decay_steps: int = Field(..., gt=0)
    end_learning_rate: float = Field(1e-4, ge=0)
    power: float = 1.0
    cycle: bool = False

    def __call__(self, step: int) -> float:
        decay_steps = float(self.decay_steps)
        if self.cycle:
            # The horizon grows to the next multiple of decay_steps (step 0 keeps the first).
            multiple = 1.0 if step == 0 else math.ceil(step / decay_steps)
            decay_steps *= multiple
        else:
            step = min(step, self.decay_steps)
        fraction_left = 1.0 - step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return span * fraction_left**self.power + self.end_learning_rate


def _cosine(fraction: float, alpha: float) -> float:
    """Keras' cosine factor, going from 1 at fraction 0 to alpha at fraction 1."""
    return (1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * fraction)) + alpha


class CosineDecay(ScheduleSpec):
    """Cosine from the start rate down to alpha * start over decay_steps (Keras 3).

    With `warmup_target` set, the rate first rises linearly from initial_learning_rate to
    warmup_target over warmup_steps, then decays from warmup_target. As in Keras,
    `warmup_steps` alone (without `warmup_target`) does nothing.
    """

    type: Literal["CosineDecay"] = "CosineDecay"
    initial_learning_rate: float = Field(..., ge=0)
    decay_steps: int = Field(..., gt=0)
    alpha: float = Field(0.0, ge=0, le=1)
    warmup_target: float | None = Field(None, ge=0)
    warmup_steps: int = Field(0, ge=0)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            fraction = min(step, self.decay_steps) / self.decay_steps
            return self.initial_learning_rate * _cosine(fraction, self.alpha)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + rise * step / self.warmup_steps
        fraction = (step - self.warmup_steps) / self.decay_steps
        return self.warmup_target * _cosine(fraction, self.alpha)


class CosineDecayRestarts(ScheduleSpec):
    """SGDR: cosine periods, each t_mul times longer and m_mul times lower than the last."""

    type: Literal["CosineDecayRestarts"] = "CosineDecayRestarts"
    initial_learning_rate: float = Field(..., ge=0)
    first_decay_steps: int = Field(..., gt=0)
    t_mul: float = Field(2.0, gt=0)
    m_mul: float = Field(1.0, ge=0)
    alpha: float = Field(0.0, ge=0, le=1)

    def __call__(self, step: int) -> float:
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            # Periods 1, t, t^2, ... end at (1 - t^i) / (1 - t) first periods: solve for i.
            t = self.t_mul
            restart = math.floor(math.log(1.0 - fraction * (1.0 - t)) / math.log(t))
            done = (1.0 - t**restart) / (1.0 - t)
            fraction = (fraction - done) / t**restart
        peak = self.m_mul**restart
        cosine = 0.5 * peak * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)


ScheduleRef = schedule_registry.field()
"""The type of a field holding a schedule: a name or a `{type: ..., params}` mapping."""
