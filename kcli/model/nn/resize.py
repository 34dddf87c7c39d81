"""Image preprocessing in the model: Keras' Rescaling, Resizing and CenterCrop (channels last).

Resizing is Keras' torch backend's: F.interpolate with half-pixel centers (align_corners off)
for bilinear and bicubic, "nearest-exact" for nearest, on the (optionally cropped or padded)
image. The crop and pad boxes are Keras' integer arithmetic, so the same pixels are kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic"}


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Images as floats (Keras' image layers compute in float32); floats are kept as they are."""
    return x if x.is_floating_point() else x.to(torch.float32)


def aspect_crop_box(height: int, width: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, rows, cols) of the largest centered box with the target's aspect ratio."""
    rows = max(min(height, int(float(width * target[0]) / target[1])), 1)
    cols = max(min(width, int(float(height * target[1]) / target[0])), 1)
    return int(float(height - rows) / 2), int(float(width - cols) / 2), rows, cols


def cubic_weights(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in): torch's bicubic resampling of one axis (half-pixel centers, A = -0.75,
    edge pixels repeated) as a matrix, so a resize is two matmuls (which onnxruntime runs,
    while its Cubic Resize refuses to shrink)."""
    a = -0.75
    src = (torch.arange(n_out, device=device, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5
    base = torch.floor(src)
    t = src - base
    distances = torch.stack([1 + t, t, 1 - t, 2 - t], dim=1)
    near = ((a + 2) * distances - (a + 3)) * distances * distances + 1
    far = ((a * distances - 5 * a) * distances + 8 * a) * distances - 4 * a
    weights = torch.where(distances <= 1, near, far)
    taps = (base.long().unsqueeze(1) + torch.arange(-1, 3, device=device)).clamp(0, n_in - 1)
    matrix = torch.zeros(n_out, n_in, device=device)
    return matrix.scatter_add_(1, taps, weights)


def resize_channels_last(
    x: torch.Tensor,
    size: tuple[int, int],
    interpolation: str = "bilinear",
    antialias: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    fill_value: float = 0.0,
) -> torch.Tensor:
    """(N, H, W, C) -> (N, size[0], size[1], C), as Keras' image.resize on torch."""
    height, width = x.shape[1], x.shape[2]
    if crop_to_aspect_ratio:
        top, left, rows, cols = aspect_crop_box(height, width, size)
        x = x[:, top : top + rows, left : left + cols]
    elif pad_to_aspect_ratio:
        # Keras pads the same amount on both sides (so an odd margin loses its last row).
        rows = max(height, int(float(width * size[0]) / size[1]))
        cols = max(width, int(float(height * size[1]) / size[0]))
        top, left = int(float(rows - height) / 2), int(float(cols - width) / 2)
        x = F.pad(x, (0, 0, left, left, top, top), value=fill_value)
    if interpolation == "bicubic" and not antialias:
        rows = cubic_weights(x.shape[1], size[0], x.device).to(x.dtype)
        cols = cubic_weights(x.shape[2], size[1], x.device).to(x.dtype)
        return torch.einsum("ph,nhwc,qw->npqc", rows, x, cols)
    images = x.permute(0, 3, 1, 2)
    smooth = interpolation in ("bilinear", "bicubic")
    resized = F.interpolate(
        images,
        size=tuple(size),
        mode=_MODES[interpolation],
        align_corners=False if smooth else None,
        antialias=antialias and smooth,
    )
    return resized.permute(0, 2, 3, 1)


def smart_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Keras' smart_resize: the largest centered crop of the target's aspect, then bilinear."""
    return resize_channels_last(x, size, crop_to_aspect_ratio=True)


class RescalingModule(nn.Module):
    """x * scale + offset; a list scale or offset applies per channel (the last axis)."""

    def __init__(self, scale: float | list[float], offset: float | list[float]) -> None:
        super().__init__()
        self.scale = scale
        self.offset = offset

    def _constant(self, value: float | list[float], x: torch.Tensor) -> float | torch.Tensor:
        if isinstance(value, list):
            return torch.tensor(value, dtype=x.dtype, device=x.device)
        return value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_float(x)
        return x * self._constant(self.scale, x) + self._constant(self.offset, x)


class ResizingModule(nn.Module):
    def __init__(
        self,
        size: tuple[int, int],
        interpolation: str,
        antialias: bool,
        crop_to_aspect_ratio: bool,
        pad_to_aspect_ratio: bool,
        fill_value: float,
    ) -> None:
        super().__init__()
        self.size = size
        self.interpolation = interpolation
        self.antialias = antialias
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.fill_value = fill_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_channels_last(
            as_float(x),
            self.size,
            self.interpolation,
            self.antialias,
            self.crop_to_aspect_ratio,
            self.pad_to_aspect_ratio,
            self.fill_value,
        )


class CenterCropModule(nn.Module):
    """The central (height, width) window; a smaller image is smart-resized, as in Keras."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_float(x)
        rows, cols = self.size
        height, width = x.shape[1], x.shape[2]
        if height >= rows and width >= cols:  # sizes fixed by the graph, not tensor values
            top, left = (height - rows) // 2, (width - cols) // 2
            return x[:, top : top + rows, left : left + cols]
        return smart_resize(x, self.size)
