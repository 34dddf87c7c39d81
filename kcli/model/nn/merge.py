"""Merge modules: combine several inputs elementwise or by concatenation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kcli.model.nn.masking import concatenated_mask, merged_mask


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

    def forward(self, *inputs: torch.Tensor, mask: list | None = None) -> torch.Tensor:
        if mask is not None:  # Maximum, Minimum: the masked entries take no part
            return self._masked(inputs, mask)
        out = self._aligned(inputs[0], self.expand[0])
        for x, extra in zip(inputs[1:], self.expand[1:], strict=True):
            out = self.op(out, self._aligned(x, extra))
        if self.scale is not None:
            out = out * self.scale
        return out

    def _masked(self, inputs, masks) -> torch.Tensor:
        """Keras' _apply_merge_op_and_or_mask (Maximum, Minimum): an input's masked entries
        are the running result's, and the running result's masked entries the input's."""
        out, kept = None, None
        for x, m, extra in zip(inputs, masks, self.expand, strict=True):
            x = self._aligned(x, extra)
            m = None if m is None else m.unsqueeze(-1).expand(x.shape)
            if out is None:
                out, kept = x, m
                continue
            if m is not None:
                x = torch.where(m, x, out)
            if kept is not None:
                out = torch.where(kept, out, x)
            kept = kept | m if m is not None and kept is not None else None
            out = self.op(out, x)
        return out

    def compute_mask(self, inputs, masks):
        """Keras' Merge.compute_mask: the OR of the inputs' masks (None if one has none)."""
        return merged_mask(masks)

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

    def compute_mask(self, inputs, masks):
        """Keras' Concatenate.compute_mask (an unmasked input counts as all kept)."""
        return concatenated_mask(inputs, masks, self.axis)


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
