"""Convolution layers: the shared base, Conv1D and Conv2D.

Channels-last, as Keras: (steps, channels) for 1-D, (height, width, channels) for 2-D. "same"
padding is TensorFlow's (the odd pixel at the bottom/right), "causal" (Conv1D) pads the left.
Kernels are stored in torch's layout (kcli/model/nn/conv.py); initializer fans are Keras'
(receptive field size times input or output channels of Keras' HWIO kernel). The transposed
convolutions are in conv_transpose.py, the depthwise and separable ones in conv_depthwise.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kcli.errors import ShapeError
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import ActivatedLayer, Shape, format_shape, require_known, require_rank
from kcli.model.layers.spatial import Size, as_tuple, check_rank, conv_output_length
from kcli.model.regularizers import RegularizerRef

if TYPE_CHECKING:
    from torch import nn


class _Conv(ActivatedLayer):
    """What every convolution shares: window arguments, their checks and the shape rule."""

    rank: ClassVar[int] = 2
    input_layout: ClassVar[str] = "a channels-last image (height, width, channels)"

    kernel_size: Size = Field(description="The window size: an int or one per spatial axis.")
    strides: Size = Field(1, description="The step between windows: an int or one per axis.")
    padding: Literal["valid", "same"] = Field(
        "valid", description="valid: no padding; same: TensorFlow's, output = ceil(in/strides)."
    )
    dilation_rate: Size = Field(1, description="Gaps between kernel taps (atrous conv).")
    use_bias: bool = True
    bias_initializer: InitializerRef = "zeros"
    bias_regularizer: RegularizerRef | None = None

    @field_validator("kernel_size", "strides", "dilation_rate")
    @classmethod
    def _one_per_axis(cls, value, info):
        check_rank(info.field_name, value, cls.rank)
        return value

    @model_validator(mode="after")
    def _strides_or_dilation(self):
        # Keras refuses both at once (TensorFlow has no kernel for it).
        if max(self.stride_tuple()) > 1 and max(self.dilation_tuple()) > 1:
            raise ValueError(
                f"strides > 1 cannot be combined with dilation_rate > 1, got "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        return self

    def kernel_tuple(self) -> tuple[int, ...]:
        return as_tuple(self.kernel_size, self.rank)

    def stride_tuple(self) -> tuple[int, ...]:
        return as_tuple(self.strides, self.rank)

    def dilation_tuple(self) -> tuple[int, ...]:
        return as_tuple(self.dilation_rate, self.rank)

    def input_channels(self, shape: Shape) -> int:
        """The channel count of a valid input shape; ShapeError names the layer and the shape."""
        require_rank(self.type, shape, self.rank + 1, self.input_layout)
        return require_known(self.type, shape, -1, "channel axis (last)")

    def spatial_output(self, shape: Shape) -> tuple[int | None, ...]:
        """Output sizes of the spatial axes; ShapeError when a valid window does not fit."""
        sizes = []
        for axis, (n, k, s, d) in enumerate(
            zip(
                shape[:-1],
                self.kernel_tuple(),
                self.stride_tuple(),
                self.dilation_tuple(),
                strict=True,
            )
        ):
            size = conv_output_length(n, k, s, d, self.padding)
            if size is not None and size < 1:
                raise ShapeError(
                    f"{self.type}: the kernel ({k}, dilation {d}) spans {(k - 1) * d + 1} "
                    f"pixels, more than the {n} of spatial axis {axis} with padding 'valid'; "
                    f"input shape {format_shape(shape)}"
                )
            sizes.append(size)
        return tuple(sizes)

    def padding_module(self, shape: Shape):
        from kcli.model.nn.conv import SpatialPadding

        return SpatialPadding(
            self.padding,
            tuple(shape[:-1]),
            self.kernel_tuple(),
            self.stride_tuple(),
            self.dilation_tuple(),
        )


class _FilterConv(_Conv):
    """A convolution with `filters` and a plain `kernel` (Conv1D, Conv2D, Conv2DTranspose)."""

    filters: int = Field(gt=0, description="Output channels.")
    kernel_initializer: InitializerRef = "glorot_uniform"
    kernel_regularizer: RegularizerRef | None = None


class _GroupedConv(_FilterConv):
    """Conv1D and Conv2D: `groups` splits the channels into independent convolutions."""

    groups: int = Field(1, gt=0, description="Channel groups; filters and channels divide by it.")

    @model_validator(mode="after")
    def _filters_divide(self):
        if self.filters % self.groups:
            raise ValueError(
                f"filters ({self.filters}) must be divisible by groups ({self.groups})"
            )
        return self

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        channels = self.input_channels(shape)
        if channels % self.groups:
            raise ShapeError(
                f"{self.type}: input channels ({channels}) must be divisible by groups "
                f"({self.groups}); input shape {format_shape(shape)}"
            )
        return (*self.spatial_output(shape), self.filters)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.conv import ConvND

        (shape,) = input_shapes
        channels = shape[-1]
        kernel = self.kernel_tuple()
        module = ConvND(
            self.rank,
            channels,
            self.filters,
            kernel,
            self.stride_tuple(),
            self.dilation_tuple(),
            self.groups,
            self.use_bias,
            self.padding_module(shape),
        )
        field = math.prod(kernel)  # Keras kernel (*k, C/groups, F): fans scale by the window
        fan_in, fan_out = field * channels // self.groups, field * self.filters
        self.kernel_initializer.fill_(module.kernel, fan_in=fan_in, fan_out=fan_out)
        if module.bias is not None:
            self.bias_initializer.fill_(module.bias, fan_in=self.filters, fan_out=self.filters)
        return module


class Conv1D(_GroupedConv):
    """A 1-D convolution over (steps, channels); `padding: causal` looks only backwards."""

    type: Literal["Conv1D"] = "Conv1D"
    aliases: ClassVar[tuple[str, ...]] = ("Convolution1D",)
    rank: ClassVar[int] = 1
    input_layout: ClassVar[str] = "a channels-last sequence (steps, channels)"

    padding: Literal["valid", "same", "causal"] = Field(
        "valid",
        description="valid: none; same: TensorFlow's; causal: (k-1)*dilation zeros on the left.",
    )


class Conv2D(_GroupedConv):
    """A 2-D convolution over (height, width, channels)."""

    type: Literal["Conv2D"] = "Conv2D"
    aliases: ClassVar[tuple[str, ...]] = ("Convolution2D",)


class Conv3D(_GroupedConv):
    """A 3-D convolution over (depth, height, width, channels) volumes (video, scans)."""

    type: Literal["Conv3D"] = "Conv3D"
    aliases: ClassVar[tuple[str, ...]] = ("Convolution3D",)
    rank: ClassVar[int] = 3
    input_layout: ClassVar[str] = "a channels-last volume (depth, height, width, channels)"
