"""Noise modules: Keras' Dropout (with noise_shape and seed), GaussianNoise, GaussianDropout and
AlphaDropout.

Both act only in training mode (`module.train()`) and are the identity in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Seeded(nn.Module):
    """A module drawing its noise from its own generator when given a seed.

    The generator is made on the first draw, on the input's device (a CUDA draw needs a CUDA
    generator); without a seed the global, run-seeded generator is used.
    """

    def __init__(self, seed: int | None) -> None:
        super().__init__()
        self.seed = seed
        self._generator: torch.Generator | None = None

    def generator_for(self, x: torch.Tensor) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return self._generator


class DropoutModule(_Seeded):
    """Zeroes inputs with probability `rate` and scales the rest by 1 / (1 - rate).

    `noise_shape` (batch axis included, None = the input's size there) shares one draw along
    the axes where it is 1: SpatialDropout2D is `(None, 1, 1, None)`, dropping whole channels.
    """

    def __init__(
        self, rate: float, noise_shape: tuple[int | None, ...] | None, seed: int | None
    ) -> None:
        super().__init__(seed)
        self.rate = rate
        self.keep = 1.0 - rate
        self.noise_shape = noise_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        if self.noise_shape is None and self.seed is None:
            return F.dropout(x, self.rate, training=True)  # torch's fused kernel
        shape = x.shape if self.noise_shape is None else self._mask_shape(x)
        mask = x.new_empty(shape).bernoulli_(self.keep, generator=self.generator_for(x))
        return x * mask.div_(self.keep)

    def _mask_shape(self, x: torch.Tensor) -> list[int]:
        return [x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape)]


class GaussianNoiseModule(_Seeded):
    """Adds zero-mean Gaussian noise with standard deviation `stddev` (training only)."""

    def __init__(self, stddev: float, seed: int | None) -> None:
        super().__init__(seed)
        self.stddev = stddev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.stddev == 0:
            return x
        noise = torch.empty_like(x).normal_(0.0, self.stddev, generator=self.generator_for(x))
        return x + noise


class GaussianDropoutModule(_Seeded):
    """Multiplies by Gaussian noise of mean 1, stddev sqrt(rate / (1 - rate)) (training only)."""

    def __init__(self, rate: float, seed: int | None) -> None:
        super().__init__(seed)
        self.stddev = (rate / (1.0 - rate)) ** 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.stddev == 0:
            return x
        noise = torch.empty_like(x).normal_(1.0, self.stddev, generator=self.generator_for(x))
        return x * noise


# SELU's constants (kcli.model.activations' selu), as Keras' AlphaDropout writes them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class AlphaDropoutModule(DropoutModule):
    """Keras 3's AlphaDropout: dropped entries set to -alpha*scale, then `a * x + b` (training).

    The mask is drawn as the Dropout's (`noise_shape` shares a draw along its 1 axes).
    """

    def __init__(
        self, rate: float, noise_shape: tuple[int | None, ...] | None, seed: int | None
    ) -> None:
        super().__init__(rate, noise_shape, seed)
        saturation = -_SELU_ALPHA * _SELU_SCALE
        self.saturation = saturation
        self.a = ((1 - rate) * (1 + rate * saturation**2)) ** -0.5
        self.b = -self.a * saturation * rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        shape = x.shape if self.noise_shape is None else self._mask_shape(x)
        kept = x.new_empty(shape).bernoulli_(self.keep, generator=self.generator_for(x))
        # kept: x; dropped: the saturation value; then the affine map a * . + b.
        return (x * kept + self.saturation * (1 - kept)) * self.a + self.b
