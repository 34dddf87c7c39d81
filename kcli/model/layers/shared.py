"""Shared: one layer applied at a second place with the same weights (a siamese twin).

In Keras, calling one layer object on two tensors makes both calls use its weights. A recipe
says the same with `{type: Shared, shares: tower, name: tower_right, inputs: right}`: the planner
gives this call the shared layer's spec (its activation, its shape rule), the model runs that
layer's module again, and the weights exist, are regularized and are counted once, under the
shared layer's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, Shape

if TYPE_CHECKING:
    from torch import nn


class Shared(LayerSpec):
    """Runs another layer of the model again, on other inputs, with the same weights.

    The inputs must have the shapes the shared layer was built for. Trainability and the
    activity regularizer are the shared layer's (set them there): both calls are one layer.
    """

    type: Literal["Shared"] = "Shared"
    n_inputs: ClassVar[tuple[int, int | None]] = (1, None)  # the shared layer's count applies
    shares: str = Field(description="The name of the layer whose weights this call uses.")

    @model_validator(mode="after")
    def _one_layer(self):
        if not self.trainable or self.activity_regularizer is not None:
            raise ValueError(
                "trainable and activity_regularizer belong to the shared layer "
                f"'{self.shares}': set them there (both calls are one layer)"
            )
        return self

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        # The planner resolves a Shared call to the shared layer's spec; alone it has no rule.
        raise ShapeError(f"a Shared call takes the shape rule of '{self.shares}'")

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        raise ShapeError(f"a Shared call has no module of its own: it runs '{self.shares}'")
