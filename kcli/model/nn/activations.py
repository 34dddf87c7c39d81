"""Activation modules torch.nn has no exact equivalent for."""

from __future__ import annotations

import torch
from torch import nn


class GeneralRelu(nn.Module):
    """Keras' relu(x, negative_slope, max_value, threshold).

    In Keras' order: keep x only where x > threshold (0 elsewhere), clip to [0, max_value] when
    there is a ceiling (so with a negative threshold, values in (threshold, 0) become 0 then,
    and stay negative without one), and subtract negative_slope * relu(threshold - x).
    """

    def __init__(self, negative_slope: float, max_value: float | None, threshold: float) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.max_value = max_value
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * (x > self.threshold).to(x.dtype)
        if self.max_value is not None:
            out = out.clamp(0.0, self.max_value)
        if self.negative_slope:
            out = out - self.negative_slope * torch.relu(self.threshold - x)
        return out


class Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)
