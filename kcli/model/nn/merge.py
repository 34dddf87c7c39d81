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


def l2_normalized(x: torch.Tensor, dims: tuple[int, ...], epsilon: float) -> torch.Tensor:
    """Keras' normalize: x * min(1 / sqrt(sum(x**2)), 1 / epsilon) over `dims`."""
    inverse = torch.rsqrt(x.square().sum(dim=dims, keepdim=True)).clamp(max=1.0 / epsilon)
    return x * inverse


class DotModule(nn.Module):
    """Keras' batch_dot of two inputs over one axis of each (axes count the batch axis)."""

    def __init__(self, axes: tuple[int, int], ranks: tuple[int, int], normalize: bool) -> None:
        super().__init__()
        self.axes, self.normalize = axes, normalize
        letters = iter("cdefghijklmnopqrstuvwxy")
        first = ["b", *(next(letters) for _ in range(ranks[0] - 1))]
        second = ["b", *(next(letters) for _ in range(ranks[1] - 1))]
        first[axes[0]] = second[axes[1]] = "z"  # the contracted axis
        out = [c for c in first if c != "z"] + [c for c in second[1:] if c != "z"]
        self.equation = f"{''.join(first)},{''.join(second)}->{''.join(out)}"
        self.scalar = len(out) == 1  # only the batch axis left: Keras gives (N, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if self.normalize:  # Keras' normalize with its default epsilon 1e-7
            x1 = l2_normalized(x1, (self.axes[0],), 1e-7)
            x2 = l2_normalized(x2, (self.axes[1],), 1e-7)
        y = torch.einsum(self.equation, x1, x2)
        return y.unsqueeze(-1) if self.scalar else y


class UnitNormalizationModule(nn.Module):
    """Scales each sample to unit L2 norm over `axes` (Keras' UnitNormalization, epsilon 1e-12)."""

    def __init__(self, axes: tuple[int, ...]) -> None:
        super().__init__()
        self.axes = axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_normalized(x, self.axes, 1e-12)
