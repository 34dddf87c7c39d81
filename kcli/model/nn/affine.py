"""Batched affine warps of channels-last images, as Keras' `image.affine_transform` computes them.

A transform is one row [a0, a1, a2, b0, b1, b2] per image: the output pixel at column x, row y
takes the input at (x', y') = (a0*x + a1*y + a2, b0*x + b1*y + b2) (TensorFlow's convention,
which Keras keeps), read with nearest or bilinear interpolation. Points outside the image follow
`fill_mode` as Keras' `map_coordinates` does: with "constant" each interpolation corner outside
the image contributes `fill_value`; "nearest" repeats the edge pixel, "wrap" tiles the image,
"reflect" mirrors it about the edge (d c b a | a b c d | d c b a).
"""

from __future__ import annotations

import math

import torch


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    folded = torch.remainder(index, 2 * size)
    return torch.where(folded >= size, 2 * size - 1 - folded, folded)


def _fix(index: torch.Tensor, size: int, fill_mode: str) -> torch.Tensor:
    """An index in [0, size) for every position, inside the image or not."""
    if fill_mode == "wrap":
        return torch.remainder(index, size)
    if fill_mode == "reflect":
        return _reflect(index, size)
    return index.clamp(0, size - 1)  # nearest, and constant (whose outside corners are masked)


def affine_warp(
    images: torch.Tensor,
    transforms: torch.Tensor,
    interpolation: str = "bilinear",
    fill_mode: str = "reflect",
    fill_value: float = 0.0,
) -> torch.Tensor:
    """(N, H, W, C) images warped by (N, 6) transforms (see the module docstring)."""
    n, height, width, _ = images.shape
    dtype, device = transforms.dtype, images.device
    rows = torch.arange(height, dtype=dtype, device=device).view(1, height, 1)
    cols = torch.arange(width, dtype=dtype, device=device).view(1, 1, width)
    a0, a1, a2, b0, b1, b2 = (transforms[:, i].view(n, 1, 1) for i in range(6))
    src_x = a0 * cols + a1 * rows + a2
    src_y = b0 * cols + b1 * rows + b2
    if interpolation == "nearest":
        corners = [(torch.round(src_y), torch.round(src_x), None)]
    else:
        y0, x0 = torch.floor(src_y), torch.floor(src_x)
        wy, wx = src_y - y0, src_x - x0
        corners = [
            (y0, x0, (1 - wy) * (1 - wx)),
            (y0, x0 + 1, (1 - wy) * wx),
            (y0 + 1, x0, wy * (1 - wx)),
            (y0 + 1, x0 + 1, wy * wx),
        ]
    batch = torch.arange(n, device=device).view(n, 1, 1)
    out = None
    for y, x, weight in corners:
        yi, xi = y.long(), x.long()
        value = images[batch, _fix(yi, height, fill_mode), _fix(xi, width, fill_mode)]
        if fill_mode == "constant":
            inside = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
            value = torch.where(inside.unsqueeze(-1), value, fill_value)
        term = value if weight is None else weight.unsqueeze(-1).to(value.dtype) * value
        out = term if out is None else out + term
    return out


def rotation_transforms(degrees: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Rotations by `degrees` (one per image, counter-clockwise on screen for a positive angle)
    about the image's center, as Keras' RandomRotation builds them."""
    theta = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    a2 = cx - cx * cos + cy * sin
    b2 = cy - cx * sin - cy * cos
    return torch.stack([cos, -sin, a2, sin, cos, b2], dim=1)


def translation_transforms(shifts: torch.Tensor) -> torch.Tensor:
    """Shifts by (dx, dy) pixels per image (positive: right and down)."""
    ones, zeros = torch.ones_like(shifts[:, 0]), torch.zeros_like(shifts[:, 0])
    return torch.stack([ones, zeros, -shifts[:, 0], zeros, ones, -shifts[:, 1]], dim=1)


def zoom_transforms(zooms: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zooms by (zx, zy) per image about the center, as Keras' RandomZoom: a factor is the input
    distance one output pixel steps over, so below 1 magnifies and above 1 shrinks."""
    zx, zy = zooms[:, 0], zooms[:, 1]
    zeros = torch.zeros_like(zx)
    x_offset = (width - 1) / 2.0 * (1.0 - zx)
    y_offset = (height - 1) / 2.0 * (1.0 - zy)
    return torch.stack([zx, zeros, x_offset, zeros, zy, y_offset], dim=1)
