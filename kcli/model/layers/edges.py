"""The spatial axes cut, padded or repeated, in 1-D and 3-D (and Cropping2D): Keras' Cropping1D/
2D/3D, ZeroPadding1D/3D and UpSampling1D/3D. (ZeroPadding2D and UpSampling2D, with its bilinear
mode, are in reshaping.py.)

Inputs are channels-last: a sequence (steps, channels), an image (H, W, C), a volume
(D, H, W, C). Amounts are per spatial axis, as Keras takes them: an int (every side of every
axis), one int per axis (both sides of it), or a [before, after] pair per axis (Cropping1D and
ZeroPadding1D: [before, after] of their one axis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, Shape, format_shape, require_rank

if TYPE_CHECKING:
    from torch import nn

Amount = int | list[int] | list[list[int]]
_WHAT = {
    1: "a sequence (steps, channels)",
    2: "an image (height, width, channels)",
    3: "a volume (depth, height, width, channels)",
}


def pairs(value: Amount, rank: int, name: str) -> tuple[tuple[int, int], ...]:
    """Keras' forms of an amount -> one (before, after) pair per spatial axis."""
    if isinstance(value, int):
        found = ((value, value),) * rank
    elif rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        found = ((value[0], value[1]),)
    elif len(value) == rank and all(isinstance(v, int) for v in value):
        found = tuple((v, v) for v in value)
    elif len(value) == rank and all(isinstance(v, list) and len(v) == 2 for v in value):
        found = tuple((v[0], v[1]) for v in value)
    else:
        forms = "an int, [before, after]" if rank == 1 else f"an int, {rank} ints, or {rank} pairs"
        raise ValueError(f"{name} takes {forms} (got {value!r})")
    if any(v < 0 for pair in found for v in pair):
        raise ValueError(f"{name} must be >= 0 (got {value!r})")
    return found


class _Edges(LayerSpec):
    """Crop or zero-pad each spatial axis by (before, after) amounts."""

    rank: ClassVar[int] = 1
    field_name: ClassVar[str] = "cropping"

    @field_validator("cropping", "padding", check_fields=False)
    @classmethod
    def _form(cls, value: Amount) -> Amount:
        pairs(value, cls.rank, cls.field_name)  # one of Keras' forms, for this layer's rank
        return value

    def amounts(self) -> tuple[tuple[int, int], ...]:
        return pairs(getattr(self, self.field_name), self.rank, self.field_name)

    def _spatial(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self.type, shape, self.rank + 1, _WHAT[self.rank])
        return shape


class _Cropping(_Edges):
    """Removes `cropping` steps/pixels from the start and end of each spatial axis."""

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape = self._spatial(input_shapes)
        sizes = []
        for size, (before, after) in zip(shape[:-1], self.amounts(), strict=True):
            if size is not None and before + after >= size:
                raise ShapeError(
                    f"{self.type} crops {before} + {after} of an axis of {size} from input "
                    f"{format_shape(shape)}: nothing would be left"
                )
            sizes.append(None if size is None else size - before - after)
        return (*sizes, shape[-1])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import CropModule

        return CropModule(self.amounts())


class Cropping1D(_Cropping):
    """Removes steps from the start and end of a (steps, channels) sequence."""

    type: Literal["Cropping1D"] = "Cropping1D"
    cropping: Amount = Field([1, 1], description="int, or [start, end].")


class Cropping2D(_Cropping):
    """Removes rows and columns from the edges of an (H, W, C) image."""

    type: Literal["Cropping2D"] = "Cropping2D"
    rank: ClassVar[int] = 2
    cropping: Amount = Field(
        [[0, 0], [0, 0]], description="int, [rows, cols] or [[top, bottom], [left, right]]."
    )


class Cropping3D(_Cropping):
    """Removes slices from the edges of each axis of a (D, H, W, C) volume."""

    type: Literal["Cropping3D"] = "Cropping3D"
    rank: ClassVar[int] = 3
    cropping: Amount = Field(
        [[1, 1], [1, 1], [1, 1]], description="int, 3 ints, or 3 [before, after] pairs."
    )


class _ZeroPadding(_Edges):
    """Adds `padding` zeros before and after each spatial axis."""

    field_name: ClassVar[str] = "padding"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape = self._spatial(input_shapes)
        sizes = [
            None if size is None else size + before + after
            for size, (before, after) in zip(shape[:-1], self.amounts(), strict=True)
        ]
        return (*sizes, shape[-1])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import PadModule

        return PadModule(self.amounts())


class ZeroPadding1D(_ZeroPadding):
    """Adds zero steps at the start and end of a (steps, channels) sequence."""

    type: Literal["ZeroPadding1D"] = "ZeroPadding1D"
    padding: Amount = Field(1, description="int, or [start, end].")


class ZeroPadding3D(_ZeroPadding):
    """Adds zero slices around each axis of a (D, H, W, C) volume."""

    type: Literal["ZeroPadding3D"] = "ZeroPadding3D"
    rank: ClassVar[int] = 3
    padding: Amount = Field(
        [[1, 1], [1, 1], [1, 1]], description="int, 3 ints, or 3 [before, after] pairs."
    )


class _Repeat(LayerSpec):
    """Repeats each step/pixel `size` times along each spatial axis (Keras' nearest upsampling)."""

    rank: ClassVar[int] = 1

    def factors(self) -> tuple[int, ...]:
        size = self.size  # type: ignore[attr-defined]
        return (size,) * self.rank if isinstance(size, int) else tuple(size)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self.type, shape, self.rank + 1, _WHAT[self.rank])
        sizes = [
            None if n is None else n * f for n, f in zip(shape[:-1], self.factors(), strict=True)
        ]
        return (*sizes, shape[-1])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.reshaping import RepeatModule

        return RepeatModule(self.factors())


class UpSampling1D(_Repeat):
    """Repeats each step of a (steps, channels) sequence `size` times."""

    type: Literal["UpSampling1D"] = "UpSampling1D"
    size: int = Field(2, gt=0, description="How many times each step is repeated.")


class UpSampling3D(_Repeat):
    """Repeats each voxel of a (D, H, W, C) volume by `size` along each axis."""

    type: Literal["UpSampling3D"] = "UpSampling3D"
    rank: ClassVar[int] = 3
    size: int | list[int] = Field(2, description="The factor per axis (an int: all three).")

    @field_validator("size")
    @classmethod
    def _three(cls, value: int | list[int]) -> int | list[int]:
        values = [value] if isinstance(value, int) else value
        if (not isinstance(value, int) and len(value) != 3) or any(v < 1 for v in values):
            raise ValueError(f"size is an int or 3 ints, each >= 1 (got {value!r})")
        return value
