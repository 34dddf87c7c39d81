"""Pooling layers: Max/AveragePooling1D/2D/3D and their Global* forms, channels-last.

"same" padding is TensorFlow's (the odd pixel at the end); a max ignores the padding and an
average divides by the real pixels of its window only, as TensorFlow and JAX do (Keras' torch
backend instead replicates the edge pixels into an uneven window, so averages at the border of
an odd-sized "same" input differ from it there; the README says so).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, MaskIn, Shape, format_shape, require_rank
from kcli.model.layers.spatial import Size, as_tuple, check_rank

if TYPE_CHECKING:
    from torch import nn

_LAYOUTS = {
    1: "a channels-last sequence (steps, channels)",
    2: "a channels-last image (height, width, channels)",
    3: "a channels-last volume (depth, height, width, channels)",
}


class _Pooling(LayerSpec):
    """A window max or average; `strides` defaults to `pool_size` (non-overlapping windows)."""

    rank: ClassVar[int] = 2
    kind: ClassVar[str] = "max"  # or "avg"

    pool_size: Size = Field(2, description="The window size: an int or one per spatial axis.")
    strides: Size | None = Field(None, description="The step between windows; default pool_size.")
    padding: Literal["valid", "same"] = Field(
        "valid", description="valid: windows inside the input; same: output = ceil(in/strides)."
    )

    @field_validator("pool_size", "strides")
    @classmethod
    def _one_per_axis(cls, value, info):
        check_rank(info.field_name, value, cls.rank)
        return value

    def pool_tuple(self) -> tuple[int, ...]:
        return as_tuple(self.pool_size, self.rank)

    def stride_tuple(self) -> tuple[int, ...]:
        return self.pool_tuple() if self.strides is None else as_tuple(self.strides, self.rank)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self.type, shape, self.rank + 1, _LAYOUTS[self.rank])
        sizes = []
        for axis, (n, p, s) in enumerate(
            zip(shape[:-1], self.pool_tuple(), self.stride_tuple(), strict=True)
        ):
            if n is None:
                sizes.append(None)
            elif self.padding == "same":
                sizes.append(math.ceil(n / s))
            elif n < p:
                raise ShapeError(
                    f"{self.type}: pool_size {p} is larger than spatial axis {axis} "
                    f"({n}) with padding 'valid'; input shape {format_shape(shape)}"
                )
            else:
                sizes.append((n - p) // s + 1)
        return (*sizes, shape[-1])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.conv import SpatialPadding
        from kcli.model.nn.pooling import PoolND

        (shape,) = input_shapes
        pool, strides = self.pool_tuple(), self.stride_tuple()
        padding = SpatialPadding(self.padding, tuple(shape[:-1]), pool, strides, (1,) * self.rank)
        return PoolND(self.kind, self.rank, pool, strides, padding)


class MaxPooling1D(_Pooling):
    """The maximum of each window of a (steps, channels) sequence."""

    type: Literal["MaxPooling1D"] = "MaxPooling1D"
    aliases: ClassVar[tuple[str, ...]] = ("MaxPool1D",)
    rank: ClassVar[int] = 1


class MaxPooling2D(_Pooling):
    """The maximum of each window of a (height, width, channels) image."""

    type: Literal["MaxPooling2D"] = "MaxPooling2D"
    aliases: ClassVar[tuple[str, ...]] = ("MaxPool2D",)


class AveragePooling1D(_Pooling):
    """The mean of each window of a (steps, channels) sequence (real pixels only).

    `pool_size` defaults to 2 as for MaxPooling1D; Keras requires it for the average layers.
    """

    type: Literal["AveragePooling1D"] = "AveragePooling1D"
    aliases: ClassVar[tuple[str, ...]] = ("AvgPool1D",)
    rank: ClassVar[int] = 1
    kind: ClassVar[str] = "avg"


class AveragePooling2D(_Pooling):
    """The mean of each window of a (height, width, channels) image (real pixels only).

    `pool_size` defaults to 2 as for MaxPooling2D; Keras requires it for the average layers.
    """

    type: Literal["AveragePooling2D"] = "AveragePooling2D"
    aliases: ClassVar[tuple[str, ...]] = ("AvgPool2D",)
    kind: ClassVar[str] = "avg"


class MaxPooling3D(_Pooling):
    """The maximum of each window of a (depth, height, width, channels) volume."""

    type: Literal["MaxPooling3D"] = "MaxPooling3D"
    aliases: ClassVar[tuple[str, ...]] = ("MaxPool3D",)
    rank: ClassVar[int] = 3


class AveragePooling3D(_Pooling):
    """The mean of each window of a (depth, height, width, channels) volume (real voxels only).

    `pool_size` defaults to 2 as for MaxPooling3D; Keras requires it for the average layers.
    """

    type: Literal["AveragePooling3D"] = "AveragePooling3D"
    aliases: ClassVar[tuple[str, ...]] = ("AvgPool3D",)
    rank: ClassVar[int] = 3
    kind: ClassVar[str] = "avg"


class _GlobalPooling(LayerSpec):
    """A max or mean over every spatial axis: (..., C) -> (C,), or (1, ..., 1, C) kept."""

    rank: ClassVar[int] = 2
    kind: ClassVar[str] = "max"

    keepdims: bool = Field(False, description="Keep the spatial axes, with size 1.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self.type, shape, self.rank + 1, _LAYOUTS[self.rank])
        return (*(1,) * self.rank, shape[-1]) if self.keepdims else (shape[-1],)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.pooling import GlobalPool

        return GlobalPool(self.kind, self.rank, self.keepdims)


class GlobalMaxPooling1D(_GlobalPooling):
    """The maximum over all steps of a (steps, channels) sequence."""

    type: Literal["GlobalMaxPooling1D"] = "GlobalMaxPooling1D"
    aliases: ClassVar[tuple[str, ...]] = ("GlobalMaxPool1D",)
    rank: ClassVar[int] = 1


class GlobalMaxPooling2D(_GlobalPooling):
    """The maximum over all pixels of a (height, width, channels) image."""

    type: Literal["GlobalMaxPooling2D"] = "GlobalMaxPooling2D"
    aliases: ClassVar[tuple[str, ...]] = ("GlobalMaxPool2D",)


class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over all steps of a (steps, channels) sequence; under a mask (Masking,
    Embedding mask_zero), over the unmasked steps, as Keras (the only pooling layer that
    reads a mask: the others, as in Keras, ignore it and pass none on)."""

    type: Literal["GlobalAveragePooling1D"] = "GlobalAveragePooling1D"
    mask_in: ClassVar[MaskIn] = "first"
    aliases: ClassVar[tuple[str, ...]] = ("GlobalAvgPool1D",)
    rank: ClassVar[int] = 1
    kind: ClassVar[str] = "avg"


class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over all pixels of a (height, width, channels) image."""

    type: Literal["GlobalAveragePooling2D"] = "GlobalAveragePooling2D"
    aliases: ClassVar[tuple[str, ...]] = ("GlobalAvgPool2D",)
    kind: ClassVar[str] = "avg"


class GlobalMaxPooling3D(_GlobalPooling):
    """The maximum over all voxels of a (depth, height, width, channels) volume."""

    type: Literal["GlobalMaxPooling3D"] = "GlobalMaxPooling3D"
    aliases: ClassVar[tuple[str, ...]] = ("GlobalMaxPool3D",)
    rank: ClassVar[int] = 3


class GlobalAveragePooling3D(_GlobalPooling):
    """The mean over all voxels of a (depth, height, width, channels) volume."""

    type: Literal["GlobalAveragePooling3D"] = "GlobalAveragePooling3D"
    aliases: ClassVar[tuple[str, ...]] = ("GlobalAvgPool3D",)
    rank: ClassVar[int] = 3
    kind: ClassVar[str] = "avg"
