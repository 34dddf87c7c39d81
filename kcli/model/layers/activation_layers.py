"""Activation layers: Activation, ReLU, LeakyReLU, ELU, PReLU, Softmax.

All but PReLU are weightless: their module is the identity and `activation_spec()` returns the
equivalent function from kcli.model.activations, which the graph applies after the module,
exactly as for a Dense layer's `activation`. So a Softmax layer that ends a model hands its
logits to a crossentropy loss just as `activation: softmax` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.errors import ShapeError
from kcli.model import activations as act
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import LayerSpec, MaskOut, Shape, format_shape
from kcli.model.layers.normalization import param_fans
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


class _Weightless(LayerSpec):
    """Base of the activation layers computed by their `activation_spec()` alone."""

    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from torch import nn

        return nn.Identity()


class Activation(_Weightless):
    """Applies an activation function: `{type: Activation, activation: relu}`."""

    type: Literal["Activation"] = "Activation"
    activation: act.ActivationRef = Field(description="The function, e.g. relu or softmax.")

    def activation_spec(self) -> act.ActivationSpec:
        return self.activation


class ReLU(_Weightless):
    """max(x, 0), with an optional ceiling, a slope below `threshold` and a shifted threshold.

    As Keras computes it: x where x > threshold, else 0; then clipped to [0, max_value] when
    max_value is set; then `negative_slope * (threshold - x)` subtracted below the threshold.
    The layer takes thresholds >= 0, as Keras' layer does (the `relu` activation function
    takes any threshold).
    """

    type: Literal["ReLU"] = "ReLU"
    max_value: float | None = Field(None, ge=0, description="The ceiling; none by default.")
    negative_slope: float = Field(0.0, ge=0, description="The slope below the threshold.")
    threshold: float = Field(
        0.0, ge=0, description="Values at or below it give 0 (before the slope)."
    )

    def activation_spec(self) -> act.ActivationSpec:
        return act.Relu(
            max_value=self.max_value, negative_slope=self.negative_slope, threshold=self.threshold
        )


class LeakyReLU(_Weightless):
    """x for x > 0, negative_slope * x otherwise.

    The layer's Keras default slope is 0.3, while the `leaky_relu` function's is 0.2.
    """

    type: Literal["LeakyReLU"] = "LeakyReLU"
    negative_slope: float = Field(0.3, ge=0, description="The slope for negative inputs.")

    @model_validator(mode="before")
    @classmethod
    def _keras2_alpha(cls, data: Any) -> Any:
        """`alpha`, Keras 2's name for the slope (Keras 3 still takes it, with a warning)."""
        if isinstance(data, dict) and "alpha" in data:
            if "negative_slope" in data:
                raise ValueError("give negative_slope or alpha (its Keras 2 name), not both")
            data = {k: v for k, v in data.items() if k != "alpha"} | {
                "negative_slope": data["alpha"]
            }
        return data

    def activation_spec(self) -> act.ActivationSpec:
        return act.LeakyRelu(negative_slope=self.negative_slope)


class ELU(_Weightless):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    type: Literal["ELU"] = "ELU"
    alpha: float = Field(1.0, description="The scale of the negative part.")

    def activation_spec(self) -> act.ActivationSpec:
        return act.Elu(alpha=self.alpha)


class Softmax(_Weightless):
    """The softmax along `axis` (batch axis = 0; -1, the default, is the last)."""

    type: Literal["Softmax"] = "Softmax"
    axis: int = Field(-1, description="The axis normalized to sum to 1.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        rank = len(shape) + 1
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ShapeError(
                f"Softmax axis {self.axis} is not a feature axis of input shape "
                f"{format_shape(shape)} (allowed: 1..{rank - 1} or -{rank - 1}..-1)"
            )
        return shape

    def activation_spec(self) -> act.ActivationSpec:
        return act.Softmax(axis=self.axis)


class PReLU(LayerSpec):
    """A leaky ReLU whose slope `alpha` is learned: x for x > 0, alpha * x otherwise.

    alpha has one weight per feature of the input (all non-batch axes), shared along
    `shared_axes` (1-based, batch excluded: [1, 2] shares one slope per channel of an image).
    Keras starts alpha at 0 (torch's nn.PReLU at 0.25).
    """

    type: Literal["PReLU"] = "PReLU"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    alpha_initializer: InitializerRef = "zeros"
    alpha_regularizer: RegularizerRef | None = None
    shared_axes: list[int] | None = Field(
        None, description="Axes (1 = the first after the batch) sharing one alpha."
    )

    def alpha_shape(self, shape: Shape) -> tuple[int, ...]:
        """alpha's shape for this input shape: the input's, with 1 on the shared axes."""
        shared = self.shared_axes or []
        outside = [a for a in shared if not 1 <= a <= len(shape)]
        if outside:
            raise ShapeError(
                f"PReLU shared_axes {shared} must lie in 1..{len(shape)} for input shape "
                f"{format_shape(shape)}"
            )
        alpha = [1 if axis in shared else d for axis, d in enumerate(shape, start=1)]
        if None in alpha:
            raise ShapeError(
                f"PReLU needs known sizes on the axes it does not share, got input shape "
                f"{format_shape(shape)} (share the unknown axes with shared_axes)"
            )
        return tuple(int(d) for d in alpha)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self.alpha_shape(shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.prelu import PReLUModule

        alpha_shape = self.alpha_shape(input_shapes[0])
        module = PReLUModule(alpha_shape)
        self.alpha_initializer.fill_(module.alpha, *param_fans(alpha_shape))
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        if self.alpha_regularizer is None:
            return {}
        return {"alpha": self.alpha_regularizer}
