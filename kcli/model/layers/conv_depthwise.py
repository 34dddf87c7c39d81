"""Depthwise convolutions: DepthwiseConv1D/2D, and SeparableConv1D/2D (depthwise, then pointwise).

Keras 3's arguments and weights: a depthwise kernel (*k, C, depth_multiplier) (Keras names it
`kernel` in DepthwiseConv*, `depthwise_kernel` in SeparableConv*; kcli's module attribute is
`depthwise_kernel` in both), the separable ones' pointwise kernel (*1, C*dm, filters), a bias.
Padding "valid" or "same" (Keras' depthwise layers take no "causal").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import Shape
from kcli.model.layers.conv import _Conv
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


class _DepthwiseBase(_Conv):
    """Depthwise convolutions: `depth_multiplier` filters of their own per input channel."""

    depth_multiplier: int = Field(1, gt=0, description="Depthwise outputs per input channel.")
    depthwise_initializer: InitializerRef = "glorot_uniform"
    depthwise_regularizer: RegularizerRef | None = None

    def fill_depthwise(self, module, channels: int) -> None:
        field = math.prod(self.kernel_tuple())  # Keras kernel (*k, C, depth_multiplier)
        self.depthwise_initializer.fill_(
            module.depthwise_kernel, fan_in=field * channels, fan_out=field * self.depth_multiplier
        )


class _Depthwise(_DepthwiseBase):
    """Each input channel convolved with its own `depth_multiplier` kernels; no mixing."""

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        channels = self.input_channels(shape)
        return (*self.spatial_output(shape), channels * self.depth_multiplier)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.conv import DepthwiseConvModule

        (shape,) = input_shapes
        channels = shape[-1]
        module = DepthwiseConvModule(
            channels,
            self.depth_multiplier,
            self.kernel_tuple(),
            self.stride_tuple(),
            self.dilation_tuple(),
            self.use_bias,
            self.padding_module(shape),
        )
        self.fill_depthwise(module, channels)
        if module.bias is not None:
            out = channels * self.depth_multiplier
            self.bias_initializer.fill_(module.bias, fan_in=out, fan_out=out)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        pairs = {"depthwise_kernel": self.depthwise_regularizer, "bias": self.bias_regularizer}
        return {weight: reg for weight, reg in pairs.items() if reg is not None}


class _Separable(_DepthwiseBase):
    """A depthwise conv (no bias) followed by a 1x1 pointwise conv to `filters` (+ bias)."""

    filters: int = Field(gt=0, description="Output channels of the pointwise conv.")
    pointwise_initializer: InitializerRef = "glorot_uniform"
    pointwise_regularizer: RegularizerRef | None = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self.input_channels(shape)
        return (*self.spatial_output(shape), self.filters)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.conv import SeparableConvModule

        (shape,) = input_shapes
        channels = shape[-1]
        module = SeparableConvModule(
            channels,
            self.filters,
            self.depth_multiplier,
            self.kernel_tuple(),
            self.stride_tuple(),
            self.dilation_tuple(),
            self.use_bias,
            self.padding_module(shape),
        )
        self.fill_depthwise(module, channels)
        middle = channels * self.depth_multiplier  # Keras pointwise kernel (*1, C*dm, F)
        self.pointwise_initializer.fill_(
            module.pointwise_kernel, fan_in=middle, fan_out=self.filters
        )
        if module.bias is not None:
            self.bias_initializer.fill_(module.bias, fan_in=self.filters, fan_out=self.filters)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        pairs = {
            "depthwise_kernel": self.depthwise_regularizer,
            "pointwise_kernel": self.pointwise_regularizer,
            "bias": self.bias_regularizer,
        }
        return {weight: reg for weight, reg in pairs.items() if reg is not None}


_SEQUENCE = "a channels-last sequence (steps, channels)"


class DepthwiseConv1D(_Depthwise):
    """Each channel of a (steps, channels) sequence convolved with its own kernels; no mixing."""

    type: Literal["DepthwiseConv1D"] = "DepthwiseConv1D"
    rank: ClassVar[int] = 1
    input_layout: ClassVar[str] = _SEQUENCE


class DepthwiseConv2D(_Depthwise):
    """Each input channel convolved with its own `depth_multiplier` kernels; no mixing."""

    type: Literal["DepthwiseConv2D"] = "DepthwiseConv2D"


class SeparableConv1D(_Separable):
    """A depthwise conv of a sequence (no bias), then a pointwise conv to `filters` (+ bias)."""

    type: Literal["SeparableConv1D"] = "SeparableConv1D"
    aliases: ClassVar[tuple[str, ...]] = ("SeparableConvolution1D",)
    rank: ClassVar[int] = 1
    input_layout: ClassVar[str] = _SEQUENCE


class SeparableConv2D(_Separable):
    """A depthwise conv (no bias) followed by a 1x1 pointwise conv to `filters` (+ bias)."""

    type: Literal["SeparableConv2D"] = "SeparableConv2D"
    aliases: ClassVar[tuple[str, ...]] = ("SeparableConvolution2D",)
