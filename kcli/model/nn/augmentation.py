"""Image augmentation modules: random in training, the identity in eval mode (RandomCrop: a
center crop, as Keras documents it).

Every module draws its randomness on the input's device, from torch's default generator (the
run's seeded one, whose state the checkpoints save, so a resumed run draws what an
uninterrupted one would) or from its own generator when the layer has a `seed`, as Dropout
does. Each image of a batch gets its own draw. `draw(x)` returns the parameters and
`transform(x, params)` applies them, so tests can hand both sides the same parameters.
"""

from __future__ import annotations

import torch

from kcli.model.nn.affine import (
    affine_warp,
    rotation_transforms,
    translation_transforms,
    zoom_transforms,
)
from kcli.model.nn.regularization import _Seeded
from kcli.model.nn.resize import as_float, smart_resize

Range = tuple[float, float]


class _Augmentation(_Seeded):
    """forward: `transform(x, draw(x))` in training; `inference(x)` (the identity) in eval."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.inference(x)
        x = as_float(x)
        return self.transform(x, self.draw(x))

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def uniform(self, x: torch.Tensor, n: int, low: float, high: float) -> torch.Tensor:
        """n float32 draws, uniform in [low, high), on x's device."""
        u = torch.rand((n,), generator=self.generator_for(x), device=x.device)
        return low + u * (high - low)


class RandomFlipModule(_Augmentation):
    """Flips each image left-right and/or up-down, each axis with its own coin (p = 0.5).

    params: (N, 2) booleans, [flip left-right, flip up-down].
    """

    def __init__(self, mode: str, seed: int | None) -> None:
        super().__init__(seed)
        self.horizontal = mode in ("horizontal", "horizontal_and_vertical")
        self.vertical = mode in ("vertical", "horizontal_and_vertical")

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rand((x.shape[0], 2), generator=self.generator_for(x), device=x.device) < 0.5

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        one_per_image = (-1, 1, 1, 1)
        if self.horizontal:
            x = torch.where(params[:, 0].view(one_per_image), x.flip(2), x)
        if self.vertical:
            x = torch.where(params[:, 1].view(one_per_image), x.flip(1), x)
        return x


class _Warp(_Augmentation):
    """An affine augmentation: the transform rows come from the drawn parameters."""

    def __init__(
        self, interpolation: str, fill_mode: str, fill_value: float, seed: int | None
    ) -> None:
        super().__init__(seed)
        self.interpolation = interpolation
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.inactive = False  # a zero factor: nothing to draw or warp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inactive:
            return as_float(x)
        return super().forward(x)

    def transforms(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        matrix = self.transforms(params, x.shape[1], x.shape[2])
        return affine_warp(x, matrix, self.interpolation, self.fill_mode, self.fill_value)


class RandomRotationModule(_Warp):
    """Rotates each image about its center by an angle drawn in [lower, upper] * 360 degrees.

    params: (N,) angles in degrees.
    """

    def __init__(self, factor: Range, interpolation, fill_mode, fill_value, seed) -> None:
        super().__init__(interpolation, fill_mode, fill_value, seed)
        self.degrees = (factor[0] * 360.0, factor[1] * 360.0)
        self.inactive = factor == (0.0, 0.0)

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return self.uniform(x, x.shape[0], *self.degrees)

    def transforms(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return rotation_transforms(params, height, width)


class RandomTranslationModule(_Warp):
    """Shifts each image by fractions of its size drawn in the height and width ranges.

    params: (N, 2) shifts in pixels, [dx, dy] (Keras' `translations`).
    """

    def __init__(self, height_factor: Range, width_factor: Range, *args) -> None:
        super().__init__(*args)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.inactive = height_factor == (0.0, 0.0) and width_factor == (0.0, 0.0)

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        n, height, width = x.shape[0], x.shape[1], x.shape[2]
        dx = self.uniform(x, n, *self.width_factor) * width
        dy = self.uniform(x, n, *self.height_factor) * height
        return torch.stack([dx, dy], dim=1)

    def transforms(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return translation_transforms(params)


class RandomZoomModule(_Warp):
    """Zooms each image about its center by 1 + a factor drawn in the height range (and in the
    width range, or the same factor when there is none).

    params: (N, 2) zooms, [zx, zy].
    """

    def __init__(self, height_factor: Range, width_factor: Range | None, *args) -> None:
        super().__init__(*args)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.inactive = height_factor == (0.0, 0.0) and width_factor in (None, (0.0, 0.0))

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        zy = 1.0 + self.uniform(x, n, *self.height_factor)
        zx = zy if self.width_factor is None else 1.0 + self.uniform(x, n, *self.width_factor)
        return torch.stack([zx, zy], dim=1)

    def transforms(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return zoom_transforms(params, height, width)


class RandomCropModule(_Augmentation):
    """A (height, width) window at a random place of each image in training; in eval mode, or
    for an image smaller than the window, the largest centered window of the target's aspect
    ratio, resized (Keras' smart_resize).

    params: (N, 2) integer offsets, [top, left].
    """

    def __init__(self, size: tuple[int, int], seed: int | None) -> None:
        super().__init__(seed)
        self.size = size

    def _fits(self, x: torch.Tensor) -> bool:
        return x.shape[1] >= self.size[0] and x.shape[2] >= self.size[1]

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        return smart_resize(as_float(x), self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self._fits(x):
            return self.inference(x)
        return super().forward(x)

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        generator, n = self.generator_for(x), x.shape[0]
        spare = (x.shape[1] - self.size[0] + 1, x.shape[2] - self.size[1] + 1)
        return torch.stack(
            [torch.randint(s, (n,), generator=generator, device=x.device) for s in spare], dim=1
        )

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        rows = params[:, :1] + torch.arange(self.size[0], device=x.device)  # (N, height)
        cols = params[:, 1:] + torch.arange(self.size[1], device=x.device)  # (N, width)
        batch = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
        return x[batch, rows.unsqueeze(2), cols.unsqueeze(1)]


class RandomContrastModule(_Augmentation):
    """(x - mean) * c + mean per image and channel (the mean over height and width), with c
    drawn in [1 - lower, 1 + upper] per image, clipped to value_range.

    params: (N,) contrast factors.
    """

    def __init__(self, factor: Range, value_range: Range, seed: int | None) -> None:
        super().__init__(seed)
        self.factors = (1.0 - factor[0], 1.0 + factor[1])
        self.value_range = value_range

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return self.uniform(x, x.shape[0], *self.factors)

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2), keepdim=True)
        out = (x - mean) * params.view(-1, 1, 1, 1).to(x.dtype) + mean
        return out.clamp(*self.value_range)


class RandomBrightnessModule(_Augmentation):
    """Adds one delta per image, drawn in [lower, upper] * (high - low) of value_range, and
    clips to value_range.

    params: (N,) deltas.
    """

    def __init__(self, factor: Range, value_range: Range, seed: int | None) -> None:
        super().__init__(seed)
        span = value_range[1] - value_range[0]
        self.deltas = (factor[0] * span, factor[1] * span)
        self.value_range = value_range

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        return self.uniform(x, x.shape[0], *self.deltas)

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return (x + params.view(-1, 1, 1, 1).to(x.dtype)).clamp(*self.value_range)
