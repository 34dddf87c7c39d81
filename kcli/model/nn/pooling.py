"""Channels-last pooling with TensorFlow's "same" padding (Keras' MaxPooling*, AveragePooling*).

As in the convs (kcli/model/nn/conv.py), inputs are permuted to channels-first as views, pooled by
torch's kernels and permuted back. "same" pads the odd pixel at the end; max pooling treats
padding as -inf and average pooling averages over the real pixels only (TF's rule, torch's
`count_include_pad=False`). torch's `padding=` is used when the two sides are equal; otherwise
the input is padded explicitly and, for averages, divided by the share of real pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kcli.model.nn.conv import SpatialPadding, to_channels_first, to_channels_last


class PoolND(nn.Module):
    """Max or average pooling over the 1, 2 or 3 spatial axes of a channels-last tensor."""

    def __init__(
        self,
        kind: str,
        rank: int,
        pool: tuple[int, ...],
        strides: tuple[int, ...],
        padding: SpatialPadding,
    ) -> None:
        super().__init__()
        self.kind, self.rank = kind, rank  # kind: "max" or "avg"
        self.pool, self.strides, self.padding = pool, strides, padding

    def _pool(self, x: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
        if self.kind == "max":
            op = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[self.rank]
            return op(x, self.pool, self.strides, padding)
        op = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[self.rank]
        return op(x, self.pool, self.strides, padding, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_first(x)
        explicit, implicit = SpatialPadding.split(self.padding.pads(x))
        if explicit is None:
            return to_channels_last(self._pool(x, implicit))
        if self.kind == "max":
            return to_channels_last(self._pool(F.pad(x, explicit, value=-torch.inf), implicit))
        # Average over real pixels only: pool a map of ones padded the same way to get the
        # share of each window that is real, and divide by it.
        total = self._pool(F.pad(x, explicit), implicit)
        ones = x.new_ones((1, 1, *x.shape[2:]))
        share = self._pool(F.pad(ones, explicit), implicit)
        return to_channels_last(total / share)


class GlobalPool(nn.Module):
    """Max or mean over every spatial axis of a channels-last tensor (Global*Pooling*).

    GlobalAveragePooling1D takes the sequence's mask (`mask=`), as Keras: the mean over the
    unmasked steps (a sample with every step masked divides 0 by 0, as Keras does).
    """

    def __init__(self, kind: str, rank: int, keepdims: bool) -> None:
        super().__init__()
        self.kind, self.keepdims = kind, keepdims
        self.dims = tuple(range(1, rank + 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "max":
            return x.amax(dim=self.dims, keepdim=self.keepdims)
        if mask is not None:  # GlobalAveragePooling1D under a mask: the mean of the kept steps
            keep = mask.unsqueeze(-1)
            total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
            count = keep.to(x.dtype).sum(dim=1, keepdim=self.keepdims)
            return total.sum(dim=1, keepdim=self.keepdims) / count
        return x.mean(dim=self.dims, keepdim=self.keepdims)
