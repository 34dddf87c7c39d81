"""LayerSpec: one class per Keras layer type, holding its arguments, shape rule and builder.

A layer spec declares its Keras arguments as pydantic fields (types, Keras defaults, bounds),
`output_shape(input_shapes)` in pure Python (so `kcli validate` finds shape errors without torch),
and `build(input_shapes)` that imports torch and returns an `nn.Module` whose forward takes the
layer's input tensors positionally. Shapes exclude the batch axis and are channels-last, as in
Keras; `None` is a dimension unknown until data arrives (e.g. a variable sequence length).

Conventions the graph relies on:
  - Weights are module attributes with Keras' names (`kernel`, `bias`, `recurrent_kernel`,
    `gamma`, ...); `regularized_weights()` maps those names to the layer's regularizers.
  - A layer's own `activation` is not built into its module: `activation_spec()` returns it and
    the graph applies it after the module, so a softmax/sigmoid output can hand its logits to a
    crossentropy loss.
  - Every persistent floating-point buffer of a module is a Keras non-trainable weight
    (BatchNormalization's moving mean and variance), and is counted as such, unless the module
    names its Keras weights in `keras_weight_buffers` (Normalization's int32 count is one;
    Discretization's learned boundaries are not): see kcli.model.nn.counting.
  - Keras masks (a boolean (batch, steps) tensor, True at the steps that count, which Masking and
    Embedding(mask_zero) attach to their output) follow `mask_in` / `mask_out` below, as Keras'
    supports_masking and compute_mask do; a module that takes a mask takes it as `mask=`, so a
    layer without masks keeps its positional-only forward.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.errors import ShapeError
from kcli.model.activations import ActivationRef, ActivationSpec
from kcli.model.regularizers import RegularizerRef, RegularizerSpec
from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int | None, ...]
MaskIn = Literal["", "first", "all"]  # LayerSpec.mask_in
MaskOut = Literal["none", "pass", "module", "new"]  # LayerSpec.mask_out

layer_registry = Registry("layer type")
_INPUT_POINTER = (
    "a recipe gives the input's shape as model.input_shape (or named model.inputs), not as a layer"
)
layer_registry.pointers.update(input=_INPUT_POINTER, inputlayer=_INPUT_POINTER)


def keras_snake_case(name: str) -> str:
    """Keras' automatic layer names: `Dense` -> `dense`, `SimpleRNN` -> `simple_rnn`."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def format_shape(shape: Shape) -> str:
    """A shape as Keras prints it, batch included: `(None, 8, 8, 16)`."""
    dims = ", ".join("None" if d is None else str(d) for d in (None, *shape))
    return f"({dims})" if len(shape) else "(None,)"


def require_rank(layer: str, shape: Shape, rank: int | tuple[int, int | None], what: str) -> None:
    """Raise a ShapeError unless `shape` has `rank` dims (or min..max; None = no maximum)."""
    low, high = (rank, rank) if isinstance(rank, int) else rank
    if len(shape) < low or (high is not None and len(shape) > high):
        want = str(low) if low == high else (f"{low}+" if high is None else f"{low}..{high}")
        raise ShapeError(
            f"{layer} expects {what} (rank {want}, batch excluded), "
            f"got input shape {format_shape(shape)}"
        )


def require_known(layer: str, shape: Shape, axis: int, what: str) -> int:
    """The size of `shape[axis]`, which a layer's weights depend on; None is an error."""
    size = shape[axis]
    if size is None:
        raise ShapeError(f"{layer} needs a known {what}, got input shape {format_shape(shape)}")
    return size


class LayerSpec(RegisteredSpec):
    """Arguments every Keras layer takes, plus the graph wiring (`name`, `inputs`)."""

    registry: ClassVar[Registry] = layer_registry
    # How many inputs the layer takes: (min, max); max None = any number (merge layers).
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 1)
    # What the layer does with the masks of its inputs (kcli.model.nn.model runs them):
    # `mask_in`: "" the module never sees them; "first": its forward takes its input's mask as
    # `mask=` (RNNs, GlobalAveragePooling1D; as Keras, only when called on one input: an RNN
    # given initial states does not apply it); "all": a list, one per input (merges, attention).
    # `mask_out`: "none" (Keras' supports_masking False: the mask stops here, Keras ignores it),
    # "pass" (the first input's mask passes on unchanged: Keras' default compute_mask),
    # "module" (the module's `compute_mask(inputs, masks)` gives the output's mask, or a tuple
    # with one per output, when an input has one) or "new" (the same, called even without
    # input masks: the layers that make masks, Masking and Embedding(mask_zero)).
    mask_in: ClassVar[MaskIn] = ""
    mask_out: ClassVar[MaskOut] = "none"

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$",
        description="The layer's name; default: Keras-style from the type (dense, dense_1, ...).",
    )
    inputs: str | list[str] | None = Field(
        None, description="The layer(s) or model input(s) feeding this one; default: the previous."
    )
    trainable: bool = Field(True, description="False freezes the layer's weights.")
    activity_regularizer: RegularizerRef | None = Field(
        None, description="A penalty on the layer's output, divided by the batch size (Keras 3)."
    )

    def default_name(self) -> str:
        """The base of the layer's Keras-style automatic name (`dense`, then `dense_1` ...)."""
        return keras_snake_case(self.type)  # type: ignore[attr-defined]

    def input_names(self) -> list[str] | None:
        if self.inputs is None:
            return None
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        """The output shape for these input shapes; raise ShapeError when they do not fit."""
        raise NotImplementedError  # every registered layer overrides this

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        """The torch module computing this layer (without its `activation`: see module doc)."""
        raise NotImplementedError  # every registered layer overrides this

    def output_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        """Every output's shape: one for most layers; an RNN with return_state has its states
        too (its module then returns a tuple, and consumers name `layer:1` ...)."""
        return [self.output_shape(input_shapes)]

    def activation_spec(self) -> ActivationSpec | None:
        """The activation applied after the module, or None for none."""
        return None

    def masking(self) -> tuple[str, str]:
        """(mask_in, mask_out) of this layer: the class's, unless its arguments change them
        (Embedding without mask_zero makes no mask)."""
        return self.mask_in, self.mask_out

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        """Module attribute name -> the regularizer on that weight."""
        pairs = {"kernel": "kernel_regularizer", "bias": "bias_regularizer"}
        found = {}
        for weight, field in pairs.items():
            regularizer = getattr(self, field, None)
            if regularizer is not None:
                found[weight] = regularizer
        return found


class ActivatedLayer(LayerSpec):
    """A layer with Keras' `activation` argument (Dense, Conv*): applied after the module."""

    activation: ActivationRef | None = Field(
        None, description="Applied to the output; none (linear) by default."
    )

    def activation_spec(self) -> ActivationSpec | None:
        return self.activation
