"""Convolution layers: Conv1D, Conv2D, Conv2DTranspose, SeparableConv2D, DepthwiseConv2D.

Channels-last, as Keras: (steps, channels) for 1-D, (height, width, channels) for 2-D. "same"
padding is TensorFlow's (the odd pixel at the bottom/right), "causal" (Conv1D) pads the left.
Kernels are stored in torch's layout (kcli/nn/conv.py); initializer fans are Keras' (receptive
field size times input or output channels of Keras' HWIO kernel).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kcli.errors import ShapeError
from kcli.initializers import InitializerRef
from kcli.layers.base import ActivatedLayer, Shape, format_shape, require_known, require_rank
from kcli.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Size = PositiveInt | list[PositiveInt]
"""Keras' int-or-tuple arguments: one int for every spatial axis, or one per axis."""


def as_tuple(value: int | list[int], rank: int) -> tuple[int, ...]:
    """An int-or-list argument as one int per spatial axis."""
    return (value,) * rank if isinstance(value, int) else tuple(value)


def check_rank(name: str, value: int | list[int] | None, rank: int) -> None:
    """Raise (for pydantic) unless a list argument has one value per spatial axis."""
    if isinstance(value, list) and len(value) != rank:
        axes = "axis" if rank == 1 else "axes"
        raise ValueError(
            f"{name} needs one int or {rank} ints (one per spatial {axes}), got {value}"
        )


def conv_output_length(n: int | None, kernel: int, stride: int, dilation: int, padding: str):
    """Keras' output length of one axis: valid floor((n-d(k-1)-1)/s)+1, same/causal ceil(n/s)."""
    if n is None:
        return None
    if padding == "valid":
        return (n - dilation * (kernel - 1) - 1) // stride + 1
    return math.ceil(n / stride)


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
        from kcli.nn.conv import SpatialPadding

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
        from kcli.nn.conv import ConvND

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


class Conv2DTranspose(_FilterConv):
    """A transposed 2-D convolution (the adjoint of Conv2D): upsamples by `strides`.

    Output size per axis (Keras): without output_padding, valid n*s + max(k' - s, 0) and same
    n*s; with it, (n-1)*s + k' - 2*pad + output_padding, pad = k'//2 for same, 0 for valid
    (k' = (k-1)*d + 1). "same" without output_padding crops the full output as TensorFlow does
    (the adjoint of a TF-padded conv: the odd pixel is cropped at the bottom/right); Keras'
    torch backend crops it at the top/left instead, so k=3, s=2 outputs differ by a shift there.
    """

    type: Literal["Conv2DTranspose"] = "Conv2DTranspose"
    aliases: ClassVar[tuple[str, ...]] = ("Convolution2DTranspose",)

    output_padding: NonNegativeInt | list[NonNegativeInt] | None = Field(
        None, description="Extra rows/columns at the bottom/right; each < its stride."
    )

    @model_validator(mode="after")
    def _strides_or_dilation(self):
        # Overrides the forward convs' rule: torch's transposed conv takes both at once.
        return self

    @model_validator(mode="after")
    def _padding_below_stride(self):
        if self.output_padding is not None:
            check_rank("output_padding", self.output_padding, self.rank)
            for extra, stride in zip(self.output_padding_tuple(), self.stride_tuple(), strict=True):
                if extra >= stride:
                    raise ValueError(
                        f"output_padding must be smaller than strides, got "
                        f"output_padding={self.output_padding} and strides={self.strides}"
                    )
        return self

    def output_padding_tuple(self) -> tuple[int, ...] | None:
        if self.output_padding is None:
            return None
        return as_tuple(self.output_padding, self.rank)

    def _crops(self) -> tuple[tuple[int, int], ...]:
        """Per axis: (before, after) pixels cut from the full transposed output (< 0: added)."""
        extras = self.output_padding_tuple() or (None,) * self.rank
        crops = []
        for k, s, d, extra in zip(
            self.kernel_tuple(), self.stride_tuple(), self.dilation_tuple(), extras, strict=True
        ):
            span = (k - 1) * d + 1
            if extra is None:
                # TF: the adjoint of a "same" conv from n*s to n crops half of max(k'-s, 0),
                # the odd pixel at the end; "valid" keeps n*s + max(k'-s, 0) from the start.
                before = max(span - s, 0) // 2 if self.padding == "same" else 0
                length_minus_n_s = 0 if self.padding == "same" else max(span - s, 0)
            else:
                before = span // 2 if self.padding == "same" else 0
                length_minus_n_s = span - s - 2 * before + extra
            # Full length is (n-1)*s + span; what is left after the kept window is cut after.
            crops.append((before, span - s - before - length_minus_n_s))
        return tuple(crops)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self.input_channels(shape)
        sizes = []
        for n, (before, after), s, k, d in zip(
            shape[:-1],
            self._crops(),
            self.stride_tuple(),
            self.kernel_tuple(),
            self.dilation_tuple(),
            strict=True,
        ):
            sizes.append(None if n is None else (n - 1) * s + (k - 1) * d + 1 - before - after)
        return (*sizes, self.filters)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.nn.conv import Conv2DTransposeModule

        (shape,) = input_shapes
        channels = shape[-1]
        kernel = self.kernel_tuple()
        module = Conv2DTransposeModule(
            channels,
            self.filters,
            kernel,
            self.stride_tuple(),
            self.dilation_tuple(),
            self.use_bias,
            self._crops(),
        )
        field = math.prod(kernel)  # Keras kernel (kh, kw, F, C): fan_in counts the filters
        self.kernel_initializer.fill_(
            module.kernel, fan_in=field * self.filters, fan_out=field * channels
        )
        if module.bias is not None:
            self.bias_initializer.fill_(module.bias, fan_in=self.filters, fan_out=self.filters)
        return module


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
        from kcli.nn.conv import DepthwiseConv2DModule

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
        from kcli.nn.conv import SeparableConv2DModule

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
