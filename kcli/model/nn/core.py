"""Core modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenseModule(nn.Module):
    """x @ kernel.T + bias; the kernel is kept in torch's (out, in) layout for F.linear."""

    def __init__(self, in_features: int, units: int, use_bias: bool) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(units, in_features))
        self.bias = nn.Parameter(torch.empty(units)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.kernel, self.bias)
