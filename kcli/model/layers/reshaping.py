"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, ZeroPadding2D, UpSampling2D.

All are channels-last, as Keras' default `data_format`: an image is (H, W, C).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, Shape, format_shape, require_rank

if TYPE_CHECKING:
    from torch import nn

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class Flatten(LayerSpec):
    """Flattens each sample to one axis, in row-major order (H, W, C for an image).

    The input is already channels-last, so this is a plain reshape and matches Keras' order.
    """

    type: Literal["Flatten"] = "Flatten"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if any(d is None for d in shape):
            return (None,)
        return (math.prod(shape),)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import FlattenModule

        return FlattenModule()


class Reshape(LayerSpec):
    """Reshapes each sample to `target_shape`; one entry may be -1 (inferred from the size)."""

    type: Literal["Reshape"] = "Reshape"
    target_shape: list[int] = Field(
        description="The new shape, batch excluded; positive sizes and at most one -1."
    )

    @field_validator("target_shape")
    @classmethod
    def _one_free_size(cls, value: list[int]) -> list[int]:
        bad = [d for d in value if d != -1 and d <= 0]
        if bad:
            raise ValueError(f"sizes must be positive or -1, got {value}")
        if value.count(-1) > 1:
            raise ValueError(f"at most one size may be -1, got {value}")
        return value

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        target = list(self.target_shape)
        known = math.prod(d for d in target if d != -1)
        if any(d is None for d in shape):
            # The sample size is unknown until data arrives: so is the free size.
            return tuple(None if d == -1 else d for d in target)
        total = math.prod(shape)
        if -1 in target:
            if total % known:
                raise self._mismatch(shape, f"{total} values do not divide into {known}")
            target[target.index(-1)] = total // known
        elif known != total:
            raise self._mismatch(shape, f"{total} values cannot fill {known}")
        return tuple(target)

    def _mismatch(self, shape: Shape, why: str) -> ShapeError:
        target = format_shape(tuple(None if d == -1 else d for d in self.target_shape))
        return ShapeError(
            f"Reshape cannot turn input shape {format_shape(shape)} into target_shape "
            f"{self.target_shape} {target}: {why}"
        )

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import ReshapeModule

        resolved = self.output_shape(input_shapes)
        if None in resolved:
            return ReshapeModule(tuple(self.target_shape))
        return ReshapeModule(tuple(int(d) for d in resolved))


class Permute(LayerSpec):
    """Permutes the axes of each sample; `dims` is 1-based (1 = the first non-batch axis)."""

    type: Literal["Permute"] = "Permute"
    dims: list[int] = Field(description="A permutation of 1..rank, e.g. [2, 1].")

    @field_validator("dims")
    @classmethod
    def _is_permutation(cls, value: list[int]) -> list[int]:
        if sorted(value) != list(range(1, len(value) + 1)):
            raise ValueError(
                f"must be a permutation of 1..{len(value)} (1-based, batch axis excluded), "
                f"got {value}"
            )
        return value

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != len(self.dims):
            raise ShapeError(
                f"Permute with dims {self.dims} needs an input of rank {len(self.dims)} "
                f"(batch excluded), got input shape {format_shape(shape)}"
            )
        return tuple(shape[d - 1] for d in self.dims)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import PermuteModule

        return PermuteModule(tuple(self.dims))


class RepeatVector(LayerSpec):
    """Repeats a vector `n` times: (F,) -> (n, F)."""

    type: Literal["RepeatVector"] = "RepeatVector"
    n: int = Field(gt=0, description="How many times to repeat the input.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("RepeatVector", shape, 1, "a vector per sample")
        return (self.n, shape[0])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import RepeatVectorModule

        return RepeatVectorModule(self.n)


def _scale(size: int | None, factor: int) -> int | None:
    return None if size is None else size * factor


class ZeroPadding2D(LayerSpec):
    """Adds rows and columns of zeros around an (H, W, C) image.

    `padding` is an int (all four sides), `[a, b]` (a rows on top and bottom, b columns left
    and right) or `[[top, bottom], [left, right]]`.
    """

    type: Literal["ZeroPadding2D"] = "ZeroPadding2D"
    padding: (
        NonNegativeInt
        | tuple[NonNegativeInt, NonNegativeInt]
        | tuple[
            tuple[NonNegativeInt, NonNegativeInt],
            tuple[NonNegativeInt, NonNegativeInt],
        ]
    ) = Field((1, 1), description="int, [rows, cols] or [[top, bottom], [left, right]].")

    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right)."""
        p = self.padding
        if isinstance(p, int):
            return (p, p, p, p)
        if isinstance(p[0], int):
            return (p[0], p[0], p[1], p[1])
        (top, bottom), (left, right) = p
        return (top, bottom, left, right)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("ZeroPadding2D", shape, 3, "an image (height, width, channels)")
        top, bottom, left, right = self.pads()
        height, width, channels = shape
        return (
            None if height is None else height + top + bottom,
            None if width is None else width + left + right,
            channels,
        )

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import ZeroPadding2DModule

        return ZeroPadding2DModule(*self.pads())


class UpSampling2D(LayerSpec):
    """Scales an (H, W, C) image up by integer factors: rows by size[0], columns by size[1]."""

    type: Literal["UpSampling2D"] = "UpSampling2D"
    size: PositiveInt | tuple[PositiveInt, PositiveInt] = Field(
        (2, 2), description="The factor for rows and columns (an int: both)."
    )
    interpolation: Literal["nearest", "bilinear"] = Field(
        "nearest", description="nearest repeats pixels; bilinear uses half-pixel centers."
    )

    def factors(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("UpSampling2D", shape, 3, "an image (height, width, channels)")
        rows, cols = self.factors()
        height, width, channels = shape
        return (_scale(height, rows), _scale(width, cols), channels)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import UpSampling2DModule

        return UpSampling2DModule(self.factors(), self.interpolation)
