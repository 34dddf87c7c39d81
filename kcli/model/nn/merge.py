"""Merge modules: combine several inputs elementwise or by concatenation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ElementwiseMerge(nn.Module):
    """Folds the inputs with a binary `op` (add, mul, maximum ...), optionally scaled by `scale`.

    Inputs of lower rank get size-1 axes right after the batch axis (`expand[i]` of them), so
    (N, F) meets (N, T, F) on its last axis as Keras broadcasts it, not on the batch axis.
    """

    def __init__(
        self,
        op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        expand: tuple[int, ...],
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.op = op
        self.expand = expand
        self.scale = scale

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self._aligned(inputs[0], self.expand[0])
        for x, extra in zip(inputs[1:], self.expand[1:], strict=True):
            out = self.op(out, self._aligned(x, extra))
        if self.scale is not None:
            out = out * self.scale
        return out

    @staticmethod
    def _aligned(x: torch.Tensor, extra: int) -> torch.Tensor:
        for _ in range(extra):
            x = x.unsqueeze(1)
        return x


class ConcatenateModule(nn.Module):
    """Concatenates the inputs along `axis` (batch axis = 0)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.axis)
