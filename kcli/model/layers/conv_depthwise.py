"""Depthwise convolutions: DepthwiseConv2D, and SeparableConv2D (depthwise, then pointwise)."""

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
        field = math.prod(self.kernel_tuple())  # Keras kernel (kh, kw, C, depth_multiplier)
        self.depthwise_initializer.fill_(
            module.depthwise_kernel, fan_in=field * channels, fan_out=field * self.depth_multiplier
        )


class DepthwiseConv2D(_DepthwiseBase):
    """Each input channel convolved with its own `depth_multiplier` kernels; no mixing."""

    type: Literal["DepthwiseConv2D"] = "DepthwiseConv2D"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        channels = self.input_channels(shape)
        return (*self.spatial_output(shape), channels * self.depth_multiplier)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.conv import DepthwiseConv2DModule

        (shape,) = input_shapes
        channels = shape[-1]
        module = DepthwiseConv2DModule(
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


class SeparableConv2D(_DepthwiseBase):
    """A depthwise conv (no bias) followed by a 1x1 pointwise conv to `filters` (+ bias)."""

    type: Literal["SeparableConv2D"] = "SeparableConv2D"
    aliases: ClassVar[tuple[str, ...]] = ("SeparableConvolution2D",)

    filters: int = Field(gt=0, description="Output channels of the pointwise conv.")
    pointwise_initializer: InitializerRef = "glorot_uniform"
    pointwise_regularizer: RegularizerRef | None = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self.input_channels(shape)
        return (*self.spatial_output(shape), self.filters)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.conv import SeparableConv2DModule

        (shape,) = input_shapes
        channels = shape[-1]
        module = SeparableConv2DModule(
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
        middle = channels * self.depth_multiplier  # Keras pointwise kernel (1, 1, C*dm, F)
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
