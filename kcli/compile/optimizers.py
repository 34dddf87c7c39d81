"""Keras' optimizers: `optimizer: adam` or `{type: SGD, learning_rate: 0.01, momentum: 0.9}`.

Names, arguments and defaults are Keras 3's (which differ from torch.optim's: Adam epsilon 1e-7,
RMSprop rho 0.9, Adagrad lr 0.001 ...). Every optimizer takes `learning_rate` (a number or a
schedule), decoupled `weight_decay` and one of `clipnorm` / `clipvalue` / `global_clipnorm`.
`build(params)` returns a torch optimizer from kcli.compile.update_rules applying Keras' update
rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.compile.schedules import ScheduleRef
from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    from kcli.compile.update_rules import KerasOptimizer

optimizer_registry = Registry("optimizer")

_COMMON = {"type", "learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm"}


class OptimizerSpec(RegisteredSpec):
    """Arguments every Keras optimizer takes; subclasses add their update rule's own."""

    registry: ClassVar[Registry] = optimizer_registry

    learning_rate: float | ScheduleRef = Field(
        0.001, description="A constant (>= 0) or a schedule evaluated at every optimizer step."
    )
    weight_decay: float | None = Field(
        None, ge=0, description="Decoupled decay: w *= 1 - lr * weight_decay before each step."
    )
    clipnorm: float | None = Field(None, gt=0, description="Clip each gradient to this norm.")
    clipvalue: float | None = Field(None, gt=0, description="Clamp gradients to [-v, v].")
    global_clipnorm: float | None = Field(
        None, gt=0, description="Clip all gradients together to this global norm."
    )

    @model_validator(mode="after")
    def _one_clip_at_most(self) -> OptimizerSpec:
        if isinstance(self.learning_rate, float) and self.learning_rate < 0:
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate}")
        given = [n for n in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(
                f"only one of clipnorm, clipvalue and global_clipnorm can be set, got {given}"
            )
        return self

    def hyperparameters(self) -> dict[str, Any]:
        """The update rule's own arguments (beta_1, rho, ...), by their Keras names."""
        return self.model_dump(exclude=_COMMON)

    def implementation(self) -> type[KerasOptimizer]:
        """The torch optimizer class applying this update rule (kcli.compile.update_rules)."""
        raise NotImplementedError  # every registered optimizer overrides this

    def build(self, params: Iterable[Any]) -> KerasOptimizer:
        """A torch optimizer over `params` (tensors or param-group dicts) with Keras' rule."""
        return self.implementation()(
            params,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            clipnorm=self.clipnorm,
            clipvalue=self.clipvalue,
            global_clipnorm=self.global_clipnorm,
            **self.hyperparameters(),
        )


class SGD(OptimizerSpec):
    """Gradient descent, with Keras' momentum (lr inside the velocity) and Nesterov form."""

    type: Literal["SGD"] = "SGD"
    learning_rate: float | ScheduleRef = 0.01
    momentum: float = Field(0.0, ge=0, le=1)
    nesterov: bool = False

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import SGD

        return SGD


class RMSprop(OptimizerSpec):
    """Divide by a running RMS of the gradient (epsilon inside the square root, as Keras)."""

    type: Literal["RMSprop"] = "RMSprop"
    rho: float = Field(0.9, ge=0, lt=1)
    momentum: float = Field(0.0, ge=0, le=1)
    epsilon: float = Field(1e-7, ge=0)
    centered: bool = False

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import RMSprop

        return RMSprop


class Adagrad(OptimizerSpec):
    """Per-weight rates from the sum of squared gradients."""

    type: Literal["Adagrad"] = "Adagrad"
    initial_accumulator_value: float = Field(0.1, ge=0)
    epsilon: float = Field(1e-7, ge=0)

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import Adagrad

        return Adagrad


class Adadelta(OptimizerSpec):
    """Adagrad with decaying averages of squared gradients and updates."""

    type: Literal["Adadelta"] = "Adadelta"
    rho: float = Field(0.95, ge=0, lt=1)
    epsilon: float = Field(1e-7, ge=0)

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import Adadelta

        return Adadelta


class Adam(OptimizerSpec):
    """Adam in Keras' epsilon-hat form; `amsgrad` keeps the running maximum of v."""

    type: Literal["Adam"] = "Adam"
    beta_1: float = Field(0.9, ge=0, lt=1)
    beta_2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-7, ge=0)
    amsgrad: bool = False

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import Adam

        return Adam


class AdamW(Adam):
    """Adam with decoupled weight decay on by default (0.004, Keras' default)."""

    type: Literal["AdamW"] = "AdamW"  # type: ignore[assignment]
    weight_decay: float | None = Field(0.004, ge=0)

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import AdamW

        return AdamW


class Nadam(OptimizerSpec):
    """Adam with Nesterov momentum and Keras' momentum schedule b1 * (1 - 0.5 * 0.96**t)."""

    type: Literal["Nadam"] = "Nadam"
    beta_1: float = Field(0.9, ge=0, lt=1)
    beta_2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-7, ge=0)

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import Nadam

        return Nadam


class Adamax(OptimizerSpec):
    """Adam with the infinity norm in place of the second moment."""

    type: Literal["Adamax"] = "Adamax"
    beta_1: float = Field(0.9, ge=0, lt=1)
    beta_2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-7, ge=0)

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import Adamax

        return Adamax


class Lion(OptimizerSpec):
    """Sign of an interpolated momentum: w -= lr * sign(b1 * m + (1 - b1) * g)."""

    type: Literal["Lion"] = "Lion"
    beta_1: float = Field(0.9, ge=0, le=1)
    beta_2: float = Field(0.99, ge=0, le=1)

    def implementation(self) -> type[KerasOptimizer]:
        from kcli.compile.update_rules import Lion

        return Lion


OptimizerRef = optimizer_registry.field()
"""The type of `compile.optimizer`: a name (`adam`) or a `{type: ..., params}` mapping."""
