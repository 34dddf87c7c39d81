"""Keras' BatchNormalization, LayerNormalization and GroupNormalization on channels-last tensors.

torch.nn.BatchNorm* normalizes axis 1 and updates its running variance with the unbiased batch
variance; Keras normalizes any axis (the last by default) and updates the moving variance with
the biased one, with `moving = moving * momentum + batch * (1 - momentum)`. Hence our own module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BatchNormModule(nn.Module):
    """Normalizes over every axis but `axis` (batch included) with batch or moving statistics.

    In training mode the batch's mean and biased variance normalize the input and move the
    moving statistics; in eval mode (or when `frozen`, Keras' `trainable=False`) the moving
    statistics normalize it. `moving_mean` and `moving_variance` are persistent buffers, so they
    are saved and counted as non-trainable weights; no batch counter is kept.
    """

    def __init__(
        self,
        features: int,
        axis: int,
        rank: int,
        momentum: float,
        epsilon: float,
        center: bool,
        scale: bool,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        self.momentum = momentum
        self.epsilon = epsilon
        self.frozen = frozen
        # `axis` is counted with the batch axis (0) in a tensor of `rank` axes.
        self.reduce_dims = tuple(d for d in range(rank) if d != axis)
        # The (C,) statistics broadcast against the input in this shape: C, then 1 per later axis.
        self.stat_shape = (features,) + (1,) * (rank - 1 - axis)
        self.gamma = nn.Parameter(torch.ones(features)) if scale else None
        self.beta = nn.Parameter(torch.zeros(features)) if center else None
        self.register_buffer("moving_mean", torch.zeros(features))
        self.register_buffer("moving_variance", torch.ones(features))
        # fit.sync_batchnorm: batch statistics over every rank's batch (distributed training).
        self.synchronized = False

    def _global_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance over all ranks' batches; gradients flow through the sums."""
        from torch.distributed.nn.functional import all_reduce

        count = x.new_tensor(x.numel() / self.moving_mean.numel())
        sums = torch.stack([x.sum(dim=self.reduce_dims), x.square().sum(dim=self.reduce_dims)])
        totals = all_reduce(torch.cat([sums.flatten(), count.view(1)]))
        n = totals[-1]
        total_sum, total_square = totals[:-1].view(2, -1)
        mean = total_sum / n
        return mean, (total_square / n - mean.square()).clamp_min(0.0)

    def _masked_statistics(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keras' masked moments: mean and biased variance over the unmasked steps only (the
        counts plus Keras' epsilon 1e-7); this process's batch, also under sync_batchnorm."""
        keep = mask.unsqueeze(-1).expand(x.shape)
        count = keep.to(x.dtype).sum(dim=self.reduce_dims) + 1e-7
        mean = torch.where(keep, x, 0.0).sum(dim=self.reduce_dims) / count
        difference = torch.where(keep, x - mean.view(self.stat_shape), 0.0)
        return mean, difference.square().sum(dim=self.reduce_dims) / count

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: a sequence's Keras mask (batch, steps); in training the batch statistics
        leave its masked steps out, as Keras' BatchNormalization does."""
        if self.training and not self.frozen:
            if mask is not None:
                mean, variance = self._masked_statistics(x, mask)
            elif self.synchronized:
                mean, variance = self._global_statistics(x)
            else:
                variance, mean = torch.var_mean(x, dim=self.reduce_dims, correction=0)
            with torch.no_grad():
                # moving * momentum + batch * (1 - momentum), as a lerp toward the batch.
                weight = 1.0 - self.momentum
                self.moving_mean.lerp_(mean.to(self.moving_mean.dtype), weight)
                self.moving_variance.lerp_(variance.to(self.moving_variance.dtype), weight)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        # One multiply-add over the input: x * (gamma / std) + (beta - mean * gamma / std).
        factor = torch.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            factor = factor * self.gamma
        shift = -mean * factor
        if self.beta is not None:
            shift = shift + self.beta
        return torch.addcmul(shift.view(self.stat_shape), x, factor.view(self.stat_shape))


class LayerNormModule(nn.Module):
    """Normalizes each sample over `axes` (counted with the batch axis as 0).

    Trailing axes go through torch's fused F.layer_norm; other axes are reduced by hand. The
    weights have the shape of the normalized axes, as Keras' `gamma` and `beta`.
    """

    def __init__(
        self,
        param_shape: tuple[int, ...],
        axes: tuple[int, ...],
        rank: int,
        epsilon: float,
        center: bool,
        scale: bool,
    ) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.axes = axes
        self.fused = axes == tuple(range(rank - len(axes), rank))
        self.normalized_shape = param_shape
        # For the unfused path: the weights broadcast against the input with 1 on other axes.
        broadcast = [1] * rank
        for axis, size in zip(axes, param_shape, strict=True):
            broadcast[axis] = size
        self.broadcast_shape = tuple(broadcast[1:])
        self.gamma = nn.Parameter(torch.ones(param_shape)) if scale else None
        self.beta = nn.Parameter(torch.zeros(param_shape)) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.layer_norm(x, self.normalized_shape, self.gamma, self.beta, self.epsilon)
        variance, mean = torch.var_mean(x, dim=self.axes, correction=0, keepdim=True)
        out = (x - mean) * torch.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            out = out * self.gamma.view(self.broadcast_shape)
        if self.beta is not None:
            out = out + self.beta.view(self.broadcast_shape)
        return out


class GroupNormModule(nn.Module):
    """Normalizes each sample's groups of consecutive channels of `axis` (batch axis = 0).

    torch's fused F.group_norm, on the input with `axis` moved to 1 (a view) and back; its
    groups are consecutive channels, as Keras' reshape to (groups, channels / groups) makes them.
    """

    def __init__(
        self, channels: int, groups: int, axis: int, epsilon: float, center: bool, scale: bool
    ) -> None:
        super().__init__()
        self.groups, self.axis, self.epsilon = groups, axis, epsilon
        self.gamma = nn.Parameter(torch.ones(channels)) if scale else None
        self.beta = nn.Parameter(torch.zeros(channels)) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(self.axis, 1)
        y = F.group_norm(moved, self.groups, self.gamma, self.beta, self.epsilon)
        return y.movedim(1, self.axis)


def enable_sync_batchnorm(model: nn.Module) -> int:
    """Make every BatchNormModule of `model` use all ranks' statistics; returns how many."""
    found = 0
    for module in model.modules():
        if isinstance(module, BatchNormModule):
            module.synchronized = True
            found += 1
    return found
