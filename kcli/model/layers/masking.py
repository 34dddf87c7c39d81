"""Masking: marks the padded steps of a sequence so that the layers after it skip them."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.model.layers.base import LayerSpec, MaskOut, Shape, require_rank

if TYPE_CHECKING:
    from torch import nn


class Masking(LayerSpec):
    """Masks every step whose features all equal `mask_value` (and zeroes it), as Keras.

    The mask, (batch, steps), flows to the layers after it: the recurrent layers carry their
    state over a masked step, GlobalAveragePooling1D averages the unmasked steps; layers that
    Keras lets a mask through (Dense, Dropout, the normalizations, ...) pass it on; others drop it.
    """

    type: Literal["Masking"] = "Masking"
    mask_out: ClassVar[MaskOut] = "new"

    mask_value: float = Field(0.0, description="The value of every feature of a masked step.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self.type, shape, (2, None), "a sequence (steps, features)")
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.masking import MaskingModule

        return MaskingModule(self.mask_value)
