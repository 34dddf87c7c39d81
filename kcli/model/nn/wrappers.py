"""Keras' TimeDistributed and SpectralNormalization around another layer's module.

The wrapped module is the attribute `layer`, so its weights are `<wrapper>.layer.kernel` in
the state dict and keep their own Keras layouts (kcli.model.nn.keras_layout finds them by the
wrapped module's class).
"""

from __future__ import annotations

import torch
from torch import nn

from kcli.model.nn.keras_layout import keras_tensor
from kcli.model.nn.normalization import BatchNormModule


class SpectralNormModule(nn.Module):
    """Keras 3's SpectralNormalization: in training, the kernel is divided by its estimated
    largest singular value before the layer runs (the weight itself changes, as Keras assigns
    it), and `vector_u` keeps the power method's estimate.

    The power method runs on the kernel in Keras' layout, flattened to (-1, last axis), so
    `vector_u` is (1, last axis) as Keras' is, whatever layout the module stores.
    """

    def __init__(self, layer: nn.Module, weight: str, power_iterations: int) -> None:
        super().__init__()
        self.layer = layer
        self.weight = weight
        self.power_iterations = power_iterations
        columns = keras_tensor(layer, weight, getattr(layer, weight)).shape[-1]
        self.register_buffer("vector_u", torch.empty(1, columns))

    @staticmethod
    def _unit(x: torch.Tensor) -> torch.Tensor:
        # Keras' ops.normalize over every axis: x * min(1 / ||x||, 1 / epsilon), epsilon 1e-7.
        return x * torch.rsqrt(x.square().sum()).clamp_max(1e7)

    @torch.no_grad()
    def normalize_(self) -> None:
        """One training call's update of the kernel and `vector_u`, in place."""
        kernel = getattr(self.layer, self.weight)
        if not kernel.any():  # Keras leaves an all-zero kernel (and vector_u) as they are
            return
        matrix = keras_tensor(self.layer, self.weight, kernel).reshape(-1, self.vector_u.shape[-1])
        u = self.vector_u
        for _ in range(self.power_iterations):
            v = self._unit(u @ matrix.T)
            u = self._unit(v @ matrix)
        sigma = (v @ matrix) @ u.T  # (1, 1)
        kernel.div_(sigma.reshape(()))
        self.vector_u.copy_(u)

    def forward(self, *inputs: torch.Tensor):
        if self.training:
            self.normalize_()
        return self.layer(*inputs)


def _runs_per_step(module: nn.Module) -> bool:
    """Whether a training call depends on the whole batch or updates the module's weights, so
    that folding the steps into the batch would not compute Keras' step-by-step calls."""
    return any(isinstance(m, (BatchNormModule, SpectralNormModule)) for m in module.modules())


class TimeDistributedModule(nn.Module):
    """Runs `layer` on every step of axis 1: (N, T, ...) -> (N, T, *layer's output).

    The steps are folded into the batch for one call of the layer; in training, a layer with
    batch statistics or weight updates (BatchNormalization, SpectralNormalization) is called
    once per step instead, as Keras calls it, so each step has its own statistics and update.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.per_step = _runs_per_step(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, steps = x.shape[:2]
        if self.training and self.per_step:
            return torch.stack([self.layer(x[:, t]) for t in range(steps)], dim=1)
        y = self.layer(x.reshape(n * steps, *x.shape[2:]))
        return y.reshape(n, steps, *y.shape[1:])
