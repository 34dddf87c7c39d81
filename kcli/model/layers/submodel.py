"""Model: a sub-model of `model.models` called as one layer (Keras' calling a Model object).

A recipe defines a sub-model once, under `model.models` (its own inputs, layers and outputs),
and calls it with `{type: Model, model: encoder, inputs: x}`. Every call runs the same layers
with the same weights, as Keras' calls of one Model object do: the weights exist once, under
the sub-model's name (`encoder.dense.kernel`), whichever layer calls it and however often. The
planner gives each call the sub-model's shape rule; the summary shows the sub-model as one row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, Shape, layer_registry

if TYPE_CHECKING:
    from torch import nn

_POINTER = (
    "a sub-model is defined under model.models (inputs, layers, outputs) and called as "
    "{type: Model, model: NAME}"
)
layer_registry.pointers.update(functional=_POINTER, sequential=_POINTER)


class Model(LayerSpec):
    """Calls a sub-model of model.models; every call shares its weights.

    `models: {encoder: {inputs: {x: [6]}, layers: [...]}}` beside the model's layers defines
    it; `{type: Model, model: encoder, inputs: left}` calls it (Keras: `encoder(left)`). The
    inputs are the sub-model's, in the order of its `inputs` (their shapes must fit those); the
    outputs are its `outputs` (`call:k` names output k of several). A call's default name is
    the sub-model's (`encoder`, then `encoder_1` ...). Trainability is the sub-model's: set
    `trainable` under model.models.
    """

    type: Literal["Model"] = "Model"
    n_inputs: ClassVar[tuple[int, int | None]] = (1, None)  # the sub-model's count applies
    model: str = Field(description="The sub-model to call: a name under model.models.")

    @model_validator(mode="after")
    def _one_model(self):
        if not self.trainable:
            raise ValueError(
                f"trainable belongs to the sub-model: set model.models.{self.model}.trainable "
                "(every call runs the same weights)"
            )
        if self.activity_regularizer is not None:
            raise ValueError(
                "a Model call takes no activity_regularizer: set it on the sub-model's layers"
            )
        return self

    def default_name(self) -> str:
        return self.model  # as Keras names a Model object used as a layer: by the model's name

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        # The planner gives a call its sub-model's shapes; alone it has no rule.
        raise ShapeError(f"a Model call takes the shapes of sub-model '{self.model}'")

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        raise ShapeError(f"a Model call has no module of its own: it runs '{self.model}'")
