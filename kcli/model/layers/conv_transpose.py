"""Transposed convolutions (the adjoint of a convolution: upsampling by `strides`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.model.layers.base import Shape
from kcli.model.layers.conv import _FilterConv
from kcli.model.layers.spatial import NonNegativeInt, as_tuple, check_rank

if TYPE_CHECKING:
    from torch import nn


class Conv2DTranspose(_FilterConv):
    """A transposed 2-D convolution (the adjoint of Conv2D): upsamples by `strides`.

    Output size per axis (Keras): without output_padding, valid n*s + max(k' - s, 0) and same
    n*s; with it, (n-1)*s + k' - 2*pad + output_padding, pad = k'//2 for same, 0 for valid
    (k' = (k-1)*d + 1). Which window of the full transposed output is kept follows Keras (the
    same on its torch, JAX and TensorFlow backends): "same" pads the dilated input by a total of
    s + k' - 2 (without output_padding) or k' + k' % 2 - 2 + output_padding (with it), the larger
    half before, at most k' - 1; "valid" keeps the full output from its first pixel.
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
        """Per axis: (before, after) pixels cut from the full transposed output (< 0: added).

        The full output, (n-1)*s + k' pixels, is the correlation of the stride-dilated input
        padded by k' - 1 on each side; Keras pads by `pad_before`/`pad_after` instead, so it
        cuts (k' - 1) - pad from each end (a negative cut appends zeros).
        """
        extras = self.output_padding_tuple() or (None,) * self.rank
        crops = []
        for k, s, d, extra in zip(
            self.kernel_tuple(), self.stride_tuple(), self.dilation_tuple(), extras, strict=True
        ):
            span = (k - 1) * d + 1
            if self.padding == "valid":
                pad_before = span - 1
                pad_after = span - 1 + (max(span, s) - span if extra is None else extra)
            else:
                total = s + span - 2 if extra is None else span + span % 2 - 2 + extra
                pad_before = min(total - total // 2, span - 1)
                pad_after = total - pad_before
            crops.append((span - 1 - pad_before, span - 1 - pad_after))
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
        from kcli.model.nn.conv import ConvTransposeND

        (shape,) = input_shapes
        channels = shape[-1]
        kernel = self.kernel_tuple()
        module = ConvTransposeND(
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


class Conv1DTranspose(Conv2DTranspose):
    """A transposed 1-D convolution (the adjoint of Conv1D) over (steps, channels): upsamples
    the steps by `strides`, with Conv2DTranspose's output-size and padding rules per axis."""

    type: Literal["Conv1DTranspose"] = "Conv1DTranspose"  # type: ignore[assignment]
    aliases: ClassVar[tuple[str, ...]] = ("Convolution1DTranspose",)
    rank: ClassVar[int] = 1
    input_layout: ClassVar[str] = "a channels-last sequence (steps, channels)"


class Conv3DTranspose(Conv2DTranspose):
    """A transposed 3-D convolution (the adjoint of Conv3D) over (D, H, W, C) volumes, with
    Conv2DTranspose's output-size and padding rules per axis."""

    type: Literal["Conv3DTranspose"] = "Conv3DTranspose"  # type: ignore[assignment]
    aliases: ClassVar[tuple[str, ...]] = ("Convolution3DTranspose",)
    rank: ClassVar[int] = 3
    input_layout: ClassVar[str] = "a channels-last volume (depth, height, width, channels)"
