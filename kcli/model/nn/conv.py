"""Channels-last convolutions with TensorFlow's padding rules (Keras' Conv*, Depthwise, Separable).

Inputs and outputs are channels-last, as in Keras: (N, L, C) and (N, H, W, C). Each forward
permutes to channels-first as a view (for a contiguous (N, H, W, C) tensor, `permute(0, 3, 1, 2)`
is already torch's channels_last memory format, so no copy is made), runs `F.conv*`, and permutes
back. Kernels are kept in torch's layout ((out, in/groups, *k), or (in, out/groups, *k) for the
transposed conv) so no per-step weight transposes are needed; Keras' layout is HWIO.

"same" padding is TensorFlow's: total = max((ceil(n/s) - 1)*s + (k-1)*d + 1 - n, 0), split with
the odd pixel at the end (bottom/right). torch's `padding=` is symmetric, so it is used only when
both sides are equal; otherwise the input is padded explicitly with `F.pad` first. Where a
spatial size is unknown at build time (None), the pads are worked out from the tensor's shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Pads = tuple[tuple[int, int], ...]  # (before, after) per spatial axis, in axis order


def tf_same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" (before, after) padding of one axis: the odd pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    """(N, *spatial, C) -> (N, C, *spatial), a view."""
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N, *spatial, C), a view."""
    return x.permute(0, *range(2, x.dim()), 1)


def _pad_arg(pads: Pads) -> list[int]:
    """F.pad's argument (last axis first) for per-axis (before, after) pads."""
    flat: list[int] = []
    for before, after in reversed(pads):
        flat += [before, after]
    return flat


class SpatialPadding:
    """How a conv or pool pads its spatial axes: none, fixed pads, or TF-same from the shape.

    `mode` is "valid", "same" or "causal" (1-D: all (k-1)*d on the left). `sizes` are the
    spatial sizes known at build time (None where unknown: computed per call).
    """

    def __init__(
        self,
        mode: str,
        sizes: tuple[int | None, ...],
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> None:
        self.mode = mode
        self.kernel, self.strides, self.dilation = kernel, strides, dilation
        self.static: Pads | None = None
        if mode == "valid":
            self.static = tuple((0, 0) for _ in kernel)
        elif mode == "causal":
            self.static = tuple(((k - 1) * d, 0) for k, d in zip(kernel, dilation, strict=True))
        else:
            # With stride 1 the pads do not depend on the size: any size gives them.
            sizes = tuple(
                1 if n is None and s == 1 else n for n, s in zip(sizes, strides, strict=True)
            )
            if all(n is not None for n in sizes):
                self.static = self._same(sizes)

    def _same(self, sizes) -> Pads:
        return tuple(
            tf_same_pads(n, k, s, d)
            for n, k, s, d in zip(sizes, self.kernel, self.strides, self.dilation, strict=True)
        )

    def pads(self, x: torch.Tensor) -> Pads:
        """The (before, after) pads of each spatial axis of a channels-first `x`."""
        if self.static is not None:
            return self.static
        return self._same(tuple(x.shape[2:]))

    @staticmethod
    def split(pads: Pads) -> tuple[list[int] | None, tuple[int, ...]]:
        """(F.pad argument or None, torch `padding=`): symmetric pads go to the op itself."""
        if all(before == after for before, after in pads):
            return None, tuple(before for before, _ in pads)
        return _pad_arg(pads), tuple(0 for _ in pads)


class ConvND(nn.Module):
    """A channels-last 1-D, 2-D or 3-D convolution (Conv1D/2D/3D)."""

    def __init__(
        self,
        rank: int,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
        use_bias: bool,
        padding: SpatialPadding,
    ) -> None:
        super().__init__()
        self.rank = rank
        self.strides, self.dilation, self.groups = strides, dilation, groups
        self.padding = padding
        self.kernel = nn.Parameter(torch.empty(out_channels, in_channels // groups, *kernel))
        self.bias = nn.Parameter(torch.empty(out_channels)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_first(x)
        explicit, implicit = SpatialPadding.split(self.padding.pads(x))
        if explicit is not None:
            x = F.pad(x, explicit)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[self.rank]
        y = conv(x, self.kernel, self.bias, self.strides, implicit, self.dilation, self.groups)
        return to_channels_last(y)


class DepthwiseConvModule(nn.Module):
    """Keras' DepthwiseConv1D/2D: each input channel gets `depth_multiplier` own filters.

    Output channel c*depth_multiplier + m comes from input channel c, as in Keras (whose
    (*k, C, dm) kernel flattens to the same order).
    """

    def __init__(
        self,
        channels: int,
        depth_multiplier: int,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        use_bias: bool,
        padding: SpatialPadding,
    ) -> None:
        super().__init__()
        self.strides, self.dilation, self.groups = strides, dilation, channels
        self.padding = padding
        out = channels * depth_multiplier
        self.depthwise_kernel = nn.Parameter(torch.empty(out, 1, *kernel))
        self.bias = nn.Parameter(torch.empty(out)) if use_bias else None
        self.op = {1: F.conv1d, 2: F.conv2d}[len(kernel)]

    def depthwise(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The depthwise conv of a channels-last `x`, channels-first out."""
        x = to_channels_first(x)
        explicit, implicit = SpatialPadding.split(self.padding.pads(x))
        if explicit is not None:
            x = F.pad(x, explicit)
        return self.op(
            x, self.depthwise_kernel, bias, self.strides, implicit, self.dilation, self.groups
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_channels_last(self.depthwise(x, self.bias))


class SeparableConvModule(DepthwiseConvModule):
    """Keras' SeparableConv1D/2D: a depthwise conv (no bias) then a 1x1 pointwise conv + bias."""

    def __init__(
        self,
        channels: int,
        filters: int,
        depth_multiplier: int,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        use_bias: bool,
        padding: SpatialPadding,
    ) -> None:
        super().__init__(channels, depth_multiplier, kernel, strides, dilation, False, padding)
        middle = channels * depth_multiplier
        self.pointwise_kernel = nn.Parameter(torch.empty(filters, middle, *(1,) * len(kernel)))
        self.bias = nn.Parameter(torch.empty(filters)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(self.depthwise(x, None), self.pointwise_kernel, self.bias)
        return to_channels_last(y)


class ConvTransposeND(nn.Module):
    """Keras' Conv1D/2D/3DTranspose: the adjoint of a TF-padded strided conv, channels-last.

    The full transposed conv has (n-1)*s + (k-1)*d + 1 pixels per axis; Keras keeps a window of
    it, cropping `crop[i] = (before, after)` pixels (a negative `after` means extra zeros, which
    torch's `output_padding` adds). torch crops `padding` on both sides and gives back
    `output_padding` at the end, so an after-crop larger than the before-crop (TF-same with an
    odd total, e.g. k=3, s=2) is finished by slicing.
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        use_bias: bool,
        crop: tuple[tuple[int, int], ...],
    ) -> None:
        super().__init__()
        self.strides, self.dilation = strides, dilation
        self.padding = tuple(before for before, _ in crop)
        self.output_padding = tuple(max(before - after, 0) for before, after in crop)
        # Extra pixels to drop at the end of each axis after torch's symmetric crop.
        self.trim = tuple(max(after - before, 0) for before, after in crop)
        self.kernel = nn.Parameter(torch.empty(in_channels, filters, *kernel))
        self.bias = nn.Parameter(torch.empty(filters)) if use_bias else None
        self.op = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(kernel)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(
            to_channels_first(x),
            self.kernel,
            self.bias,
            self.strides,
            self.padding,
            self.output_padding,
            1,
            self.dilation,
        )
        if any(self.trim):
            index = [slice(None), slice(None)]
            index += [slice(0, y.shape[2 + i] - t) for i, t in enumerate(self.trim)]
            y = y[tuple(index)]
        return to_channels_last(y)
