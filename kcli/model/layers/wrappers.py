"""Wrappers: TimeDistributed (a layer applied to every time step) and SpectralNormalization.

Both take a catalog layer as `layer: {type: Dense, units: 8}` (or the one-key form `layer:
{Dense: {units: 8}}`) and have its weights as their own, under `layer.` (`td.layer.kernel`),
counted once, as Keras counts a wrapper's. The wrapped layer is not a node of the graph:
wiring (`inputs`) and the activity regularizer are set on the wrapper. Its activation is the
wrapper's, applied after the module as every layer's (so a softmax can still hand its logits
to a crossentropy loss). Bidirectional, the recurrent wrapper, is in recurrent.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    SerializeAsAny,
    TypeAdapter,
    field_validator,
)
from pydantic_core import PydanticCustomError

from kcli.errors import ShapeError
from kcli.model.activations import ActivationSpec
from kcli.model.initializers import TruncatedNormal
from kcli.model.layers.base import LayerSpec, MaskOut, Shape, layer_registry, require_rank
from kcli.model.layers.conv import Conv1D, Conv2D, Conv3D
from kcli.model.layers.conv_depthwise import DepthwiseConv1D, DepthwiseConv2D
from kcli.model.layers.conv_transpose import Conv1DTranspose, Conv2DTranspose, Conv3DTranspose
from kcli.model.layers.core import Dense
from kcli.model.layers.embedding import Embedding
from kcli.model.regularizers import RegularizerSpec

if TYPE_CHECKING:
    from torch import nn

# Layers that are not one layer of their own: a wrapper cannot run them as one.
_NOT_WRAPPABLE = {
    "Shared": "a Shared call is another layer run again: wrap that layer",
    "Model": "a sub-model call runs the sub-model's layers: wrap a layer of its own",
}


def _wrapped_layer(wrapper: str, spec: LayerSpec) -> LayerSpec:
    """The wrapped layer's spec, refused where a wrapper cannot run it or it has graph wiring."""
    if spec.type in _NOT_WRAPPABLE:
        raise PydanticCustomError(
            "not_wrappable",
            "a {wrapper} cannot wrap {name}: {why}",
            {"wrapper": wrapper, "name": spec.type, "why": _NOT_WRAPPABLE[spec.type]},
        )
    if type(spec).n_inputs[0] > 1:
        raise PydanticCustomError(
            "not_wrappable",
            "a {wrapper} wraps a layer of one input; {name} takes {low} or more",
            {"wrapper": wrapper, "name": spec.type, "low": type(spec).n_inputs[0]},
        )
    for key in ("inputs", "activity_regularizer"):
        if getattr(spec, key) is not None:
            raise PydanticCustomError(
                "wrapped_layer_key",
                "set '{key}' on the {wrapper}, not on the layer it wraps",
                {"key": key, "wrapper": wrapper},
            )
    return spec


def _trainable(spec: LayerSpec, module: nn.Module) -> nn.Module:
    if not spec.trainable:  # the wrapped layer frozen on its own (the graph freezes the wrapper)
        module.requires_grad_(False)
    return module


def _prefixed(spec: LayerSpec) -> dict[str, RegularizerSpec]:
    return {f"layer.{weight}": reg for weight, reg in spec.regularized_weights().items()}


def _step_layer(value: Any) -> LayerSpec:
    return _wrapped_layer("TimeDistributed", layer_registry.validate_spec(value))


class _StepLayerSchema:
    """The JSON Schema of TimeDistributed's `layer`: any layer type but TimeDistributed itself
    (a layer of any type that lists itself among its choices would never end; nesting still
    validates, only editors do not offer it)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        specs = {n: c for n, c in layer_registry.specs.items() if n != "TimeDistributed"}
        names = tuple(specs)
        spellings = tuple(
            s for s in layer_registry.spellings() if layer_registry.canonical(s) in specs
        )
        union = Annotated[Union[tuple(specs.values())], Field(discriminator="type")]  # noqa: UP007
        one_key = Annotated[dict[Literal[names], Any], Field(min_length=1, max_length=1)]
        accepted = Union[Literal[spellings], union, one_key]  # noqa: UP007
        return handler(TypeAdapter(accepted).core_schema)


class TimeDistributed(LayerSpec):
    """Applies `layer` to every time step of a (steps, ...) input: the same weights each step.

    Axis 1 is time: the wrapped layer sees each step's (...) as its input and the outputs are
    stacked back, (steps, *the layer's output). It runs once on the steps folded into the batch
    (one call, not one per step), which is what Keras' step-by-step calls compute; a layer with
    batch statistics (BatchNormalization in training) or one that updates its weights in a
    call (SpectralNormalization) runs step by step instead, as in Keras. Parameters: the wrapped
    layer's.
    """

    type: Literal["TimeDistributed"] = "TimeDistributed"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    layer: Annotated[
        SerializeAsAny[LayerSpec],
        PlainValidator(_step_layer),
        _StepLayerSchema(),
    ] = Field(description="The layer applied to each step: {type: Dense, units: 8}.")

    def _step_shape(self, shape: Shape) -> Shape:
        require_rank(self.type, shape, (2, None), "a sequence (steps, ...) of the layer's inputs")
        return shape[1:]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        step = self._step_shape(shape)
        outputs = self.layer.output_shapes([step])
        if len(outputs) > 1:
            raise ShapeError(
                f"TimeDistributed wraps a layer of one output; {self.layer.type} has "
                f"{len(outputs)} here (return_state)"
            )
        return (shape[0], *outputs[0])

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.wrappers import TimeDistributedModule

        step = self._step_shape(input_shapes[0])
        return TimeDistributedModule(_trainable(self.layer, self.layer.build([step])))

    def activation_spec(self) -> ActivationSpec | None:
        """The wrapped layer's activation, over the same axes of the stacked output: an axis
        counted from the front (a softmax's `axis: 1`) moves one back, past the time axis."""
        activation = self.layer.activation_spec()
        axis = getattr(activation, "axis", None)
        if isinstance(axis, int) and axis > 0:
            return activation.model_copy(update={"axis": axis + 1})
        return activation

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        return _prefixed(self.layer)


# The layers SpectralNormalization takes, and the weight it normalizes in each (Keras: the
# layer's `kernel`, else its `embeddings`; a depthwise conv's kernel is kcli's
# `depthwise_kernel`).
_NORMALIZED_WEIGHT = {
    **dict.fromkeys(
        (
            "Dense",
            "Conv1D",
            "Conv2D",
            "Conv3D",
            "Conv1DTranspose",
            "Conv2DTranspose",
            "Conv3DTranspose",
        ),
        "kernel",
    ),
    "DepthwiseConv1D": "depthwise_kernel",
    "DepthwiseConv2D": "depthwise_kernel",
    "Embedding": "embeddings",
}


def _kernel_layer(value: Any) -> Any:
    value = layer_registry.normalize(value)
    if isinstance(value, dict) and value["type"] not in _NORMALIZED_WEIGHT:
        raise PydanticCustomError(
            "no_kernel",
            "a SpectralNormalization wraps a layer with a kernel (or embeddings), one of "
            "{options}; got '{name}'",
            {"options": ", ".join(_NORMALIZED_WEIGHT), "name": value["type"]},
        )
    return value


KernelLayerRef = Annotated[
    Annotated[
        Union[  # noqa: UP007
            Dense,
            Conv1D,
            Conv2D,
            Conv3D,
            Conv1DTranspose,
            Conv2DTranspose,
            Conv3DTranspose,
            DepthwiseConv1D,
            DepthwiseConv2D,
            Embedding,
        ],
        Field(discriminator="type"),
    ],
    BeforeValidator(_kernel_layer),
]


class SpectralNormalization(LayerSpec):
    """Keeps the spectral norm of `layer`'s kernel at 1 (Miyato et al., 2018), as Keras 3 does.

    In each training call, before the layer runs, `power_iterations` steps of the power method
    from the non-trainable `vector_u` (1, kernel's last axis) estimate the kernel's largest
    singular value sigma, and the kernel itself is divided by it (no gradient through sigma;
    an all-zero kernel is left alone); `vector_u` keeps the estimate. Inference runs the layer
    with the kernel as it is. Parameters: the layer's, and `vector_u` (non-trainable).
    """

    type: Literal["SpectralNormalization"] = "SpectralNormalization"
    layer: KernelLayerRef = Field(
        description="The layer whose kernel is normalized: {type: Dense, units: 8}."
    )
    power_iterations: int = Field(1, gt=0, description="Power-method steps per training call.")

    @field_validator("layer")
    @classmethod
    def _one_layer(cls, value: LayerSpec) -> LayerSpec:
        return _wrapped_layer("SpectralNormalization", value)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return self.layer.output_shape(input_shapes)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.wrappers import SpectralNormModule

        inner = _trainable(self.layer, self.layer.build(input_shapes))
        module = SpectralNormModule(
            inner, _NORMALIZED_WEIGHT[self.layer.type], self.power_iterations
        )
        size = module.vector_u.shape[-1]  # Keras: TruncatedNormal(stddev=0.02)
        TruncatedNormal(stddev=0.02).fill_(module.vector_u, fan_in=1, fan_out=size)
        return module

    def activation_spec(self) -> ActivationSpec | None:
        return self.layer.activation_spec()

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        return _prefixed(self.layer)
