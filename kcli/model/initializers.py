"""Keras' weight initializers: a spec per name (torch-free) that fills a torch tensor in place.

Fans are passed in by the layer in Keras' terms (a Dense kernel: fan_in = inputs, fan_out = units;
a conv kernel: receptive field x channels), so each formula reads as Keras documents it.
Keras' *_normal initializers draw from a normal truncated at two standard deviations, scaled up by
1/0.87962566103423978 so the truncated distribution keeps the intended variance.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    import torch

initializer_registry = Registry("initializer")

# The standard deviation of a unit normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


class InitializerSpec(RegisteredSpec):
    registry: ClassVar[Registry] = initializer_registry
    seed: int | None = None  # None: the run's seeded global generator

    def fill_(self, tensor: torch.Tensor, fan_in: int, fan_out: int) -> None:
        """Fill `tensor` in place."""
        import torch

        if tensor.is_meta:  # a model built on the meta device only to count its weights
            return
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=tensor.device).manual_seed(self.seed)
        with torch.no_grad():
            self._fill(tensor, fan_in, fan_out, generator)

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        raise NotImplementedError  # every registered initializer overrides this


def _truncated_normal_(tensor, mean: float, std: float, generator) -> None:
    import torch

    torch.nn.init.trunc_normal_(tensor, 0.0, 1.0, -2.0, 2.0, generator=generator)
    tensor.mul_(std).add_(mean)


class _VarianceScalingBase(InitializerSpec):
    def _scaled(self, tensor, fan_in, fan_out, generator, scale, mode, distribution) -> None:
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        n = max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * scale / n)
            tensor.uniform_(-limit, limit, generator=generator)
        elif distribution == "untruncated_normal":
            tensor.normal_(0.0, math.sqrt(scale / n), generator=generator)
        else:  # truncated_normal
            _truncated_normal_(tensor, 0.0, math.sqrt(scale / n) / _TRUNCATED_STD, generator)


class VarianceScaling(_VarianceScalingBase):
    type: Literal["variance_scaling"] = "variance_scaling"
    scale: float = Field(1.0, gt=0)
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] = "truncated_normal"

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        self._scaled(tensor, fan_in, fan_out, generator, self.scale, self.mode, self.distribution)


def _preset(name: str, scale: float, mode: str, distribution: str) -> type[InitializerSpec]:
    """A named variance-scaling preset (glorot_*, he_*, lecun_*) as its own registered class."""

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        self._scaled(tensor, fan_in, fan_out, generator, scale, mode, distribution)

    doc = f"Keras' {name}: variance scaling, scale={scale}, mode={mode}, {distribution}."
    return type(
        name.title().replace("_", ""),
        (_VarianceScalingBase,),
        {
            "__annotations__": {"type": Literal[name]},
            "type": name,
            "_fill": _fill,
            "__doc__": doc,
            "__module__": __name__,
        },
    )


GlorotUniform = _preset("glorot_uniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("glorot_normal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _preset("he_uniform", 2.0, "fan_in", "uniform")
HeNormal = _preset("he_normal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _preset("lecun_uniform", 1.0, "fan_in", "uniform")
LecunNormal = _preset("lecun_normal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(InitializerSpec):
    type: Literal["orthogonal"] = "orthogonal"
    gain: float = 1.0

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        import torch

        torch.nn.init.orthogonal_(tensor, gain=self.gain, generator=generator)


class Zeros(InitializerSpec):
    type: Literal["zeros"] = "zeros"

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        tensor.zero_()


class Ones(InitializerSpec):
    type: Literal["ones"] = "ones"

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        tensor.fill_(1.0)


class Constant(InitializerSpec):
    type: Literal["constant"] = "constant"
    value: float = 0.0

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        tensor.fill_(self.value)


class RandomNormal(InitializerSpec):
    type: Literal["random_normal"] = "random_normal"
    mean: float = 0.0
    stddev: float = Field(0.05, gt=0)

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        tensor.normal_(self.mean, self.stddev, generator=generator)


class RandomUniform(InitializerSpec):
    type: Literal["random_uniform"] = "random_uniform"
    minval: float = -0.05
    maxval: float = 0.05

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        tensor.uniform_(self.minval, self.maxval, generator=generator)


class TruncatedNormal(InitializerSpec):
    """Keras' truncated_normal: values beyond two standard deviations are redrawn."""

    type: Literal["truncated_normal"] = "truncated_normal"
    mean: float = 0.0
    stddev: float = Field(0.05, gt=0)

    def _fill(self, tensor, fan_in, fan_out, generator) -> None:
        _truncated_normal_(tensor, self.mean, self.stddev, generator)


InitializerRef = initializer_registry.field()
"""The type of a `*_initializer:` field: a name or a `{type: ..., params}` mapping."""
