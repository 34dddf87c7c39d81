"""Keras' PReLU: a leaky ReLU whose negative slope is learned, per feature."""

from __future__ import annotations

import torch
from torch import nn


class PReLUModule(nn.Module):
    """x where x > 0, alpha * x elsewhere; `alpha` broadcasts over the non-batch axes.

    torch's nn.PReLU keys its weights on axis 1 (NCHW channels); Keras' alpha has the input's
    per-sample shape with size 1 on shared axes, which plain broadcasting handles.
    """

    def __init__(self, alpha_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(alpha_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, self.alpha * x)
