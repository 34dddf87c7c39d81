"""Core layers: Dense (the worked example every other layer follows) and Identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import (
    ActivatedLayer,
    LayerSpec,
    MaskOut,
    Shape,
    require_known,
    require_rank,
)
from kcli.model.regularizers import RegularizerRef

if TYPE_CHECKING:
    from torch import nn


class Dense(ActivatedLayer):
    """A fully connected layer on the last axis: `activation(x @ kernel + bias)`.

    Like Keras, an input of rank > 1 is not flattened: the kernel applies to the last axis.
    """

    type: Literal["Dense"] = "Dense"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    units: int = Field(gt=0, description="Output size.")
    use_bias: bool = True
    kernel_initializer: InitializerRef = "glorot_uniform"
    bias_initializer: InitializerRef = "zeros"
    kernel_regularizer: RegularizerRef | None = None
    bias_regularizer: RegularizerRef | None = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank("Dense", shape, (1, None), "features on the last axis")
        require_known("Dense", shape, -1, "last axis")
        return (*shape[:-1], self.units)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.core import DenseModule

        in_features = input_shapes[0][-1]
        module = DenseModule(in_features, self.units, self.use_bias)
        self.kernel_initializer.fill_(module.kernel, fan_in=in_features, fan_out=self.units)
        if module.bias is not None:
            self.bias_initializer.fill_(module.bias, fan_in=in_features, fan_out=self.units)
        return module


class Identity(LayerSpec):
    """Passes its input on unchanged (Keras' Identity: a placeholder, or a named tap)."""

    type: Literal["Identity"] = "Identity"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from torch import nn

        return nn.Identity()
