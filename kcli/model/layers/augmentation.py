"""Image augmentation layers: random in training only, the identity in inference (evaluation,
prediction, export), as Keras' RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
RandomCrop, RandomContrast and RandomBrightness are.

Each image of a batch gets its own draw, from the run's seeded generator (or the layer's own
with `seed`), on the model's device. A factor is a number f (the range [-f, f]) or a pair
[lower, upper], as in Keras; images are channels last, (height, width, channels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from kcli.model.layers.base import LayerSpec, Shape
from kcli.model.layers.preprocessing import image_shape

if TYPE_CHECKING:
    from torch import nn

Factor = float | tuple[float, float]
FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["bilinear", "nearest"]


def factor_range(value: Factor, low: float, high: float, *, open_low: bool = False):
    """(lower, upper) of a Keras factor (f -> [-f, f], a pair sorted); ValueError when it leaves
    [low, high] ((low, high] with open_low)."""
    lower, upper = (-abs(value), abs(value)) if isinstance(value, int | float) else sorted(value)
    for v in (lower, upper):
        if v > high or v < low or (open_low and v == low):
            bounds = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
            raise ValueError(f"a factor must lie in {bounds}, got {value}")
    return float(lower), float(upper)


def _factor(description: str) -> Any:
    return Field(description=description + " A number f means -f..f; or a pair (lower, upper).")


def _seed() -> Any:
    return Field(None, description="Seeds this layer's own draws; default: the run's generator.")


class _ImageAugmentation(LayerSpec):
    """Shape-preserving augmentation of an image."""

    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return image_shape(self.type, shape)


class _Warping(_ImageAugmentation):
    """An affine augmentation: how points outside the image are filled, and interpolation."""

    fill_mode: FillMode = Field(
        "reflect", description="reflect (d c b a | a b c d), wrap, constant or nearest."
    )
    interpolation: Interpolation = "bilinear"
    fill_value: float = Field(0.0, description="The value outside the image (fill_mode constant).")

    def warp_args(self) -> tuple:
        return (self.interpolation, self.fill_mode, self.fill_value, self.seed)


class RandomFlip(_ImageAugmentation):
    """Flips each image left-right (`horizontal`), up-down (`vertical`) or both, each with
    probability 1/2; with `horizontal_and_vertical` each axis has its own coin."""

    type: Literal["RandomFlip"] = "RandomFlip"
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "horizontal_and_vertical", description="Which axes may flip."
    )

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomFlipModule

        return RandomFlipModule(self.mode, self.seed)


class RandomRotation(_Warping):
    """Rotates each image about its center by a random fraction of a full turn (factor 0.1:
    up to 36 degrees either way; positive is counter-clockwise)."""

    type: Literal["RandomRotation"] = "RandomRotation"
    factor: Factor = _factor("The angle's range, as a fraction of 360 degrees, in [-1, 1].")

    @field_validator("factor")
    @classmethod
    def _in_range(cls, value: Factor) -> Factor:
        factor_range(value, -1.0, 1.0)
        return value

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomRotationModule

        return RandomRotationModule(factor_range(self.factor, -1.0, 1.0), *self.warp_args())


class RandomTranslation(_Warping):
    """Shifts each image by random fractions of its height and width (0.1: up to 10% either
    way; positive moves the content down / right)."""

    type: Literal["RandomTranslation"] = "RandomTranslation"
    height_factor: Factor = _factor("The vertical shift's range, as a fraction of the height.")
    width_factor: Factor = _factor("The horizontal shift's range, as a fraction of the width.")

    @field_validator("height_factor", "width_factor")
    @classmethod
    def _in_range(cls, value: Factor) -> Factor:
        factor_range(value, -1.0, 1.0)
        return value

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomTranslationModule

        return RandomTranslationModule(
            factor_range(self.height_factor, -1.0, 1.0),
            factor_range(self.width_factor, -1.0, 1.0),
            *self.warp_args(),
        )


class RandomZoom(_Warping):
    """Zooms each image about its center by 1 + a random factor: positive zooms out (the image
    shrinks), negative zooms in. Without `width_factor` both axes take the same factor."""

    type: Literal["RandomZoom"] = "RandomZoom"
    height_factor: Factor = _factor("The vertical zoom's range, in (-1, 1].")
    width_factor: Factor | None = Field(
        None, description="The horizontal zoom's range, in (-1, 1]; default: the height's zoom."
    )

    @field_validator("height_factor", "width_factor")
    @classmethod
    def _in_range(cls, value: Factor | None) -> Factor | None:
        if value is not None:
            factor_range(value, -1.0, 1.0, open_low=True)
        return value

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomZoomModule

        width = None if self.width_factor is None else factor_range(self.width_factor, -1.0, 1.0)
        return RandomZoomModule(
            factor_range(self.height_factor, -1.0, 1.0), width, *self.warp_args()
        )


class RandomCrop(_ImageAugmentation):
    """A (height, width) window at a random place of each image in training. In inference, and
    in training for an image smaller than the window, the largest centered window of the
    target's aspect ratio, resized to (height, width) (as Keras documents it)."""

    type: Literal["RandomCrop"] = "RandomCrop"
    height: int = Field(gt=0, description="Output height.")
    width: int = Field(gt=0, description="Output width.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return (self.height, self.width, image_shape("RandomCrop", shape)[2])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomCropModule

        return RandomCropModule((self.height, self.width), self.seed)


class _ColorAugmentation(_ImageAugmentation):
    value_range: tuple[float, float] = Field(
        (0.0, 255.0), description="The pixels' (low, high); outputs are clipped to it."
    )

    @field_validator("value_range")
    @classmethod
    def _sorted(cls, value: tuple[float, float]) -> tuple[float, float]:
        return (min(value), max(value))


class RandomContrast(_ColorAugmentation):
    """(x - mean) * c + mean for each image and channel (the mean over the pixels), with c drawn
    in [1 - lower, 1 + upper] (factor f: [1 - f, 1 + f]); clipped to value_range."""

    type: Literal["RandomContrast"] = "RandomContrast"
    factor: Factor = Field(
        description="A number f in 0..1 (c in 1-f..1+f), or a pair (lower, upper)."
    )

    @field_validator("factor")
    @classmethod
    def _in_range(cls, value: Factor) -> Factor:
        values = [value] if isinstance(value, int | float) else list(value)
        if any(v < 0 or v > 1 for v in values):
            raise ValueError(f"a contrast factor must lie in [0, 1], got {value}")
        return value

    def bounds(self) -> tuple[float, float]:
        """(lower, upper): the factor c is drawn in [1 - lower, 1 + upper]."""
        if isinstance(self.factor, int | float):
            return (float(self.factor), float(self.factor))
        lower, upper = sorted(self.factor)
        return (float(lower), float(upper))

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomContrastModule

        return RandomContrastModule(self.bounds(), self.value_range, self.seed)


class RandomBrightness(_ColorAugmentation):
    """Adds one random delta per image, a fraction of value_range's span drawn in the factor's
    range (-1: black, 1: white), and clips to value_range."""

    type: Literal["RandomBrightness"] = "RandomBrightness"
    factor: Factor = _factor("The delta's range, as a fraction of value_range, in [-1, 1].")

    @field_validator("factor")
    @classmethod
    def _in_range(cls, value: Factor) -> Factor:
        factor_range(value, -1.0, 1.0)
        return value

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.augmentation import RandomBrightnessModule

        factor = factor_range(self.factor, -1.0, 1.0)
        return RandomBrightnessModule(factor, self.value_range, self.seed)
