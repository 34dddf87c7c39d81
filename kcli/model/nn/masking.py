"""Keras masks on torch: the Masking module and the mask rules the layers' modules share.

A mask is a boolean (batch, steps) tensor, True at the steps that count; the graph
(kcli.model.nn.model) carries one beside each value that has one and hands it to the modules
that take it (`mask=`). Every rule here is torch ops on the input tensors, so a traced or
exported graph (ONNX, TorchScript, torch.export) computes the masks from its inputs as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MaskingModule(nn.Module):
    """Keras' Masking: a step whose features all equal `mask_value` is masked, and zeroed."""

    def __init__(self, mask_value: float) -> None:
        super().__init__()
        self.mask_value = mask_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (x != self.mask_value).any(dim=-1, keepdim=True)
        return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def compute_mask(self, inputs: Sequence[torch.Tensor], masks: Sequence) -> torch.Tensor:
        return (inputs[0] != self.mask_value).any(dim=-1)


def merged_mask(masks: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """Keras' Merge.compute_mask (Add, Subtract, Multiply, Average, Maximum, Minimum): the OR
    of the inputs' masks, or None when an input has none."""
    if any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out | m
    return out


def concatenated_mask(
    inputs: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | None], axis: int
) -> torch.Tensor | None:
    """Keras' Concatenate.compute_mask: each mask (all True for an input without one) spread
    over its input's shape, joined along `axis`, then any() over the last axis."""
    if all(m is None for m in masks):
        return None
    spread = []
    for x, m in zip(inputs, masks, strict=True):
        if m is None:
            spread.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
        elif m.dim() < x.dim():
            spread.append(m.unsqueeze(-1).expand(*m.shape, *x.shape[m.dim() :]))
        else:
            spread.append(m)
    return torch.cat(spread, dim=axis).any(dim=-1)
