"""Activation modules torch.nn has no exact equivalent for."""

from __future__ import annotations

import torch
from torch import nn


class GeneralRelu(nn.Module):
    """Keras' relu(x, negative_slope, max_value, threshold)."""

    def __init__(self, negative_slope: float, max_value: float | None, threshold: float) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.max_value = max_value
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            out = out.clamp(max=self.max_value)
        return out


class Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)
