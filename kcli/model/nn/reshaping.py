"""Reshaping modules on channels-last tensors (batch axis first, as Keras lays them out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FlattenModule(nn.Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...), in row-major (Keras' H, W, C) order.

    A sample that is a scalar, (N,), becomes (N, 1) as in Keras.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:  # a rank fact fixed by the graph, not a tensor value
            return x.unsqueeze(-1)
        return x.flatten(1)


class ReshapeModule(nn.Module):
    """(N, ...) -> (N, *target); `target` may hold one -1, resolved by torch."""

    def __init__(self, target: tuple[int, ...]) -> None:
        super().__init__()
        self.target = tuple(target)
        # With every size known the batch axis can be the -1, which traces without reading
        # x.shape; otherwise the -1 belongs to the target and the batch size is read.
        self.batch_is_free = -1 not in self.target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_is_free:
            return x.reshape(-1, *self.target)
        return x.reshape(x.shape[0], *self.target)


class PermuteModule(nn.Module):
    """Permutes the non-batch axes; `dims` is 1-based, as Keras writes it."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.order = (0, *dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.order)


class RepeatVectorModule(nn.Module):
    """(N, F) -> (N, n, F): the same vector at every step (a broadcast view, no copy)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(-1, self.n, -1)


class ZeroPadding2DModule(nn.Module):
    """Zeros around the H and W axes of an (N, H, W, C) tensor."""

    def __init__(self, top: int, bottom: int, left: int, right: int) -> None:
        super().__init__()
        # F.pad lists pads from the last axis backwards: C (none), then W, then H.
        self.pads = (0, 0, left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class UpSampling2DModule(nn.Module):
    """Scales H and W of an (N, H, W, C) tensor by integer factors (nearest or bilinear).

    The NCHW view of a contiguous NHWC tensor is torch's channels_last format, which
    F.interpolate handles natively, so the two permutes cost no copies. Bilinear uses half-pixel
    centers (align_corners=False), which is what Keras' resize does.
    """

    def __init__(self, size: tuple[int, int], interpolation: str) -> None:
        super().__init__()
        self.scale = (float(size[0]), float(size[1]))
        self.mode = interpolation
        self.align_corners = False if interpolation == "bilinear" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(
            x.permute(0, 3, 1, 2),
            scale_factor=self.scale,
            mode=self.mode,
            align_corners=self.align_corners,
        )
        return out.permute(0, 2, 3, 1)


class CropModule(nn.Module):
    """Cuts (before, after) steps from each spatial axis of an (N, *spatial, C) tensor."""

    def __init__(self, amounts: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.amounts = amounts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [slice(None)]
        for axis, (before, after) in enumerate(self.amounts, start=1):
            index.append(slice(before, x.shape[axis] - after))
        return x[tuple(index)]


class PadModule(nn.Module):
    """Zeros around each spatial axis of an (N, *spatial, C) tensor."""

    def __init__(self, amounts: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        # F.pad lists pads from the last axis backwards: C (none), then the spatial axes.
        self.pads = (0, 0, *(v for pair in reversed(amounts) for v in pair))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class RepeatModule(nn.Module):
    """Repeats each step/voxel along each spatial axis (Keras' UpSampling1D/3D)."""

    def __init__(self, factors: tuple[int, ...]) -> None:
        super().__init__()
        self.factors = factors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, factor in enumerate(self.factors, start=1):
            if factor != 1:
                x = x.repeat_interleave(factor, dim=axis)
        return x
