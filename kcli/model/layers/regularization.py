"""Regularization layers: Dropout, SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout,
AlphaDropout (active in training only), and ActivityRegularization."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, MaskOut, Shape, format_shape, require_rank
from kcli.model.regularizers import RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


def _rate() -> Any:
    return Field(ge=0, lt=1, description="The fraction of inputs dropped, in [0, 1).")


def _seed() -> Any:
    return Field(None, description="Seeds this layer's own noise; default: the run's generator.")


NoiseShape = list[Annotated[int, Field(gt=0)] | None] | None


def _noise_shape() -> Any:
    return Field(
        None,
        description="The mask's shape, batch axis first (None = the input's size); a 1 shares "
        "one draw along that axis, e.g. [null, 1, null] for the same mask at every step.",
    )


def _check_noise_shape(layer: str, noise_shape: NoiseShape, shape: Shape) -> None:
    """Raise a ShapeError unless `noise_shape` (batch axis first) broadcasts to the input."""
    if noise_shape is None:
        return
    full = (None, *shape)  # noise_shape counts the batch axis, as in Keras
    fits = len(noise_shape) == len(full) and all(
        n is None or n == 1 or n == d for n, d in zip(noise_shape, full, strict=True)
    )
    if not fits:
        raise ShapeError(
            f"{layer} noise_shape {noise_shape} (batch axis first) does not "
            f"broadcast to input shape {format_shape(shape)}: each entry must be null, "
            "1 or the input's size on that axis"
        )


class Dropout(LayerSpec):
    """Zeroes a fraction `rate` of the inputs in training and scales the rest by 1/(1-rate)."""

    type: Literal["Dropout"] = "Dropout"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    rate: float = _rate()
    noise_shape: NoiseShape = _noise_shape()
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        _check_noise_shape(self.type, self.noise_shape, shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import DropoutModule

        noise = None if self.noise_shape is None else tuple(self.noise_shape)
        return DropoutModule(self.rate, noise, self.seed)


class SpatialDropout1D(LayerSpec):
    """Dropout of whole feature channels of a (steps, channels) sequence, shared over steps."""

    type: Literal["SpatialDropout1D"] = "SpatialDropout1D"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    rate: float = _rate()
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("SpatialDropout1D", shape, 2, "a sequence (steps, channels)")
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import DropoutModule

        return DropoutModule(self.rate, (None, 1, None), self.seed)


class SpatialDropout2D(LayerSpec):
    """Dropout of whole channels of an (H, W, C) image: one draw per sample and channel."""

    type: Literal["SpatialDropout2D"] = "SpatialDropout2D"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    rate: float = _rate()
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("SpatialDropout2D", shape, 3, "an image (height, width, channels)")
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import DropoutModule

        return DropoutModule(self.rate, (None, 1, 1, None), self.seed)


class SpatialDropout3D(LayerSpec):
    """Dropout of whole channels of a (D, H, W, C) volume: one draw per sample and channel."""

    type: Literal["SpatialDropout3D"] = "SpatialDropout3D"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    rate: float = _rate()
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("SpatialDropout3D", shape, 4, "a volume (depth, height, width, channels)")
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import DropoutModule

        return DropoutModule(self.rate, (None, 1, 1, 1, None), self.seed)


class GaussianNoise(LayerSpec):
    """Adds zero-centered Gaussian noise of standard deviation `stddev` in training."""

    type: Literal["GaussianNoise"] = "GaussianNoise"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    stddev: float = Field(ge=0, le=1, description="The noise's standard deviation, in [0, 1].")
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import GaussianNoiseModule

        return GaussianNoiseModule(self.stddev, self.seed)


class GaussianDropout(LayerSpec):
    """Multiplies by Gaussian noise of mean 1 and stddev sqrt(rate / (1 - rate)) in training
    (Keras'); the identity in inference."""

    type: Literal["GaussianDropout"] = "GaussianDropout"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    rate: float = _rate()
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import GaussianDropoutModule

        return GaussianDropoutModule(self.rate, self.seed)


class AlphaDropout(LayerSpec):
    """Dropout that keeps a SELU network's mean and variance (Klambauer et al., 2017).

    In training, as Keras 3: each entry is dropped with probability `rate` to SELU's negative
    saturation value -alpha*scale (alpha' = -1.7581), then the whole is mapped through
    `a * x + b` with a = ((1 - rate) * (1 + rate * alpha'^2))^-1/2 and b = -a * alpha' * rate.
    The identity in inference.
    """

    type: Literal["AlphaDropout"] = "AlphaDropout"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    rate: float = _rate()
    noise_shape: NoiseShape = _noise_shape()
    seed: int | None = _seed()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        _check_noise_shape(self.type, self.noise_shape, shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.regularization import AlphaDropoutModule

        noise = None if self.noise_shape is None else tuple(self.noise_shape)
        return AlphaDropoutModule(self.rate, noise, self.seed)


class ActivityRegularization(LayerSpec):
    """Passes its input on and adds l1 * sum|x| + l2 * sum(x**2), divided by the batch size as
    Keras 3 divides activity penalties, to the training loss (Keras' ActivityRegularization:
    the same as an `activity_regularizer` on the layer before)."""

    type: Literal["ActivityRegularization"] = "ActivityRegularization"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    l1: float = Field(0.0, ge=0, description="The L1 factor.")
    l2: float = Field(0.0, ge=0, description="The L2 factor.")

    @model_validator(mode="after")
    def _as_activity_regularizer(self):
        # The penalty is the graph's activity regularizer of this layer; a resolved recipe
        # writes it back, so the same value is accepted, another one is not.
        wanted = RegularizerSpec(l1=self.l1, l2=self.l2) if (self.l1 or self.l2) else None
        given = self.activity_regularizer
        if given is not None and given != wanted:
            raise ValueError(
                "ActivityRegularization's penalty is its l1 and l2: give those, not an "
                "activity_regularizer"
            )
        object.__setattr__(self, "activity_regularizer", wanted)  # specs are frozen
        return self

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from torch import nn

        return nn.Identity()
