"""Preprocessing layers that live in the model: Rescaling, Resizing, CenterCrop.

Stateless: they have no weights and compute the same in training and inference, so an exported
model takes raw pixels. Images are channels last, (height, width, channels), as in Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, MaskOut, Shape, format_shape, require_rank

if TYPE_CHECKING:
    from torch import nn

_IMAGE = "an image (height, width, channels)"
PerChannel = float | Annotated[list[float], Field(min_length=1)]


def image_shape(layer: str, shape: Shape) -> Shape:
    """`shape`, checked to be an image's; a ShapeError names the layer otherwise."""
    require_rank(layer, shape, 3, _IMAGE)
    return shape


class Rescaling(LayerSpec):
    """`x * scale + offset`, e.g. `scale: 0.00392156862745098` (1/255) for pixels in [0, 1].

    A list gives one value per channel (the last axis), broadcast as Keras (numpy) does.
    """

    type: Literal["Rescaling"] = "Rescaling"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    scale: PerChannel = Field(description="The factor; a list: one per channel.")
    offset: PerChannel = Field(0.0, description="Added after scaling; a list: one per channel.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if not isinstance(value, list) or len(value) == 1:
                continue
            if not shape or (shape[-1] is not None and shape[-1] != len(value)):
                raise ShapeError(
                    f"Rescaling's {name} has {len(value)} values, one per channel, but the input "
                    f"shape {format_shape(shape)} has {shape[-1] if shape else 'no'} channels "
                    "on its last axis"
                )
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.resize import RescalingModule

        return RescalingModule(self.scale, self.offset)


class Resizing(LayerSpec):
    """Resizes an image to (height, width) with Keras' torch interpolation (half-pixel centers).

    With `crop_to_aspect_ratio` the largest centered window of the target's aspect ratio is
    resized (no distortion); with `pad_to_aspect_ratio` the image is padded with `fill_value`
    to that aspect ratio first.
    """

    type: Literal["Resizing"] = "Resizing"
    height: int = Field(gt=0, description="Output height.")
    width: int = Field(gt=0, description="Output width.")
    interpolation: Literal["bilinear", "nearest", "bicubic"] = "bilinear"
    crop_to_aspect_ratio: bool = Field(False, description="Crop to the target's aspect ratio.")
    pad_to_aspect_ratio: bool = Field(False, description="Pad to the target's aspect ratio.")
    fill_mode: Literal["constant"] = Field(
        "constant", description="How padding is filled (Keras' torch backend: constant only)."
    )
    fill_value: float = Field(0.0, description="The padding's value.")
    antialias: bool = Field(False, description="Antialias when shrinking (bilinear, bicubic).")

    @model_validator(mode="after")
    def _crop_or_pad(self):
        if self.crop_to_aspect_ratio and self.pad_to_aspect_ratio:
            raise ValueError(
                "crop_to_aspect_ratio and pad_to_aspect_ratio cannot both be true: pick one"
            )
        return self

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return (self.height, self.width, image_shape("Resizing", shape)[2])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.resize import ResizingModule

        return ResizingModule(
            (self.height, self.width),
            self.interpolation,
            self.antialias,
            self.crop_to_aspect_ratio,
            self.pad_to_aspect_ratio,
            self.fill_value,
        )


class CenterCrop(LayerSpec):
    """The central (height, width) window of an image. An image smaller than the window on
    either axis is resized instead, as Keras does: its largest centered window of the target's
    aspect ratio, resized bilinearly to (height, width)."""

    type: Literal["CenterCrop"] = "CenterCrop"
    height: int = Field(gt=0, description="Output height.")
    width: int = Field(gt=0, description="Output width.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return (self.height, self.width, image_shape("CenterCrop", shape)[2])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.resize import CenterCropModule

        return CenterCropModule((self.height, self.width))
