"""Keras' activation functions: a spec per name (torch-free) and the torch module it builds.

`activation: relu` and `{type: leaky_relu, negative_slope: 0.1}` both validate to a spec here.
`logits_link` marks the activations a crossentropy loss can fold into itself (softmax over the
last axis, sigmoid), so training runs on the logits for numerical stability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    from torch import nn

activation_registry = Registry("activation")


class ActivationSpec(RegisteredSpec):
    """An activation function; `build()` gives a torch module applying it elementwise."""

    registry: ClassVar[Registry] = activation_registry
    logits_link: ClassVar[str | None] = None  # "softmax" or "sigmoid": a loss may fold it in

    def build(self) -> nn.Module:
        raise NotImplementedError  # every registered activation overrides this


def _torch_nn():
    from torch import nn

    return nn


class Linear(ActivationSpec):
    """Identity (Keras' `linear`, also what `activation: null` means)."""

    type: Literal["linear"] = "linear"
    aliases: ClassVar[tuple[str, ...]] = ("identity", "none")

    def build(self) -> nn.Module:
        return _torch_nn().Identity()


class Relu(ActivationSpec):
    """max(x, 0), with Keras' optional negative slope, ceiling and threshold."""

    type: Literal["relu"] = "relu"
    negative_slope: float = Field(0.0, ge=0)
    max_value: float | None = Field(None, gt=0)
    threshold: float = 0.0

    def build(self) -> nn.Module:
        nn = _torch_nn()
        if self.negative_slope == 0 and self.max_value is None and self.threshold == 0:
            return nn.ReLU()
        from kcli.model.nn.activations import GeneralRelu

        return GeneralRelu(self.negative_slope, self.max_value, self.threshold)


class Relu6(ActivationSpec):
    type: Literal["relu6"] = "relu6"

    def build(self) -> nn.Module:
        return _torch_nn().ReLU6()


class LeakyRelu(ActivationSpec):
    """x for x > 0, negative_slope * x otherwise; Keras' function default slope is 0.2."""

    type: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: float = Field(0.2, ge=0)

    def build(self) -> nn.Module:
        return _torch_nn().LeakyReLU(self.negative_slope)


class Elu(ActivationSpec):
    type: Literal["elu"] = "elu"
    alpha: float = 1.0

    def build(self) -> nn.Module:
        return _torch_nn().ELU(self.alpha)


class Selu(ActivationSpec):
    type: Literal["selu"] = "selu"

    def build(self) -> nn.Module:
        return _torch_nn().SELU()


class Gelu(ActivationSpec):
    """Keras' default is the exact (erf) form; `approximate: true` is the tanh form."""

    type: Literal["gelu"] = "gelu"
    approximate: bool = False

    def build(self) -> nn.Module:
        return _torch_nn().GELU(approximate="tanh" if self.approximate else "none")


class Sigmoid(ActivationSpec):
    type: Literal["sigmoid"] = "sigmoid"
    logits_link: ClassVar[str | None] = "sigmoid"

    def build(self) -> nn.Module:
        return _torch_nn().Sigmoid()


class HardSigmoid(ActivationSpec):
    """Keras 3's hard_sigmoid: relu6(x + 3) / 6 (torch's Hardsigmoid is the same function)."""

    type: Literal["hard_sigmoid"] = "hard_sigmoid"

    def build(self) -> nn.Module:
        return _torch_nn().Hardsigmoid()


class Tanh(ActivationSpec):
    type: Literal["tanh"] = "tanh"

    def build(self) -> nn.Module:
        return _torch_nn().Tanh()


class Softmax(ActivationSpec):
    type: Literal["softmax"] = "softmax"
    logits_link: ClassVar[str | None] = "softmax"  # only over the last axis: see the graph
    axis: int = -1

    def build(self) -> nn.Module:
        return _torch_nn().Softmax(dim=self.axis)


class LogSoftmax(ActivationSpec):
    type: Literal["log_softmax"] = "log_softmax"
    axis: int = -1

    def build(self) -> nn.Module:
        return _torch_nn().LogSoftmax(dim=self.axis)


class Softplus(ActivationSpec):
    type: Literal["softplus"] = "softplus"

    def build(self) -> nn.Module:
        return _torch_nn().Softplus()


class Softsign(ActivationSpec):
    type: Literal["softsign"] = "softsign"

    def build(self) -> nn.Module:
        return _torch_nn().Softsign()


class Silu(ActivationSpec):
    type: Literal["silu"] = "silu"
    aliases: ClassVar[tuple[str, ...]] = ("swish",)

    def build(self) -> nn.Module:
        return _torch_nn().SiLU()


class Mish(ActivationSpec):
    type: Literal["mish"] = "mish"

    def build(self) -> nn.Module:
        return _torch_nn().Mish()


class Exponential(ActivationSpec):
    type: Literal["exponential"] = "exponential"

    def build(self) -> nn.Module:
        from kcli.model.nn.activations import Exp

        return Exp()


ActivationRef = activation_registry.field()
"""The type of an `activation:` field: a name or a `{type: ..., params}` mapping."""
