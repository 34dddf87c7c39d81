"""Recurrent layers: SimpleRNN, LSTM, GRU and the Bidirectional wrapper.

Input (steps, features) -> (units), or (steps, units) with `return_sequences`. Keras' defaults:
tanh / sigmoid activations, glorot_uniform kernels, orthogonal recurrent kernels, zero biases
(the LSTM's forget gate at 1), GRU reset_after. `stateful` and `unroll` are not offered: every
batch starts from the given or a zero state. A mask (Masking, Embedding mask_zero) makes them
skip the masked steps, as Keras. The torch side
(weights in torch's layout, fused kernels, the step loop) is kcli/model/nn/recurrent.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from kcli.errors import ShapeError
from kcli.model.activations import ActivationRef, ActivationSpec, activation_registry
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import (
    LayerSpec,
    MaskIn,
    MaskOut,
    Shape,
    format_shape,
    layer_registry,
    require_known,
    require_rank,
)
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


def _is_default(spec: ActivationSpec | None, name: str) -> bool:
    """True when `spec` is activation `name` with its default arguments (a fused kernel's)."""
    return spec is not None and spec == activation_registry.get(name)()


def _activation_module(spec: ActivationSpec | None) -> nn.Module:
    from torch import nn

    return spec.build() if spec is not None else nn.Identity()  # null: linear, as Keras


class _Recurrent(LayerSpec):
    """Arguments every Keras RNN layer shares, and its shape rule and weight setup."""

    gates: ClassVar[int] = 1
    n_states: ClassVar[int] = 1  # the state tensors: h, and the LSTM's c
    # A mask (Masking, Embedding mask_zero) skips steps; it stays on a returned sequence.
    mask_in: ClassVar[MaskIn] = "first"
    mask_out: ClassVar[MaskOut] = "module"
    # The sequence, then optionally the initial state (Keras' initial_state): h (and c).
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 2)

    units: int = Field(gt=0, description="Size of the state and of each output step.")
    activation: ActivationRef | None = Field(
        "tanh", description="Applied to the candidate state (and the LSTM's cell); null: linear."
    )
    use_bias: bool = True
    kernel_initializer: InitializerRef = "glorot_uniform"
    recurrent_initializer: InitializerRef = "orthogonal"
    bias_initializer: InitializerRef = "zeros"
    kernel_regularizer: RegularizerRef | None = None
    recurrent_regularizer: RegularizerRef | None = None
    bias_regularizer: RegularizerRef | None = None
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Drop rate of the inputs (one mask per sequence)."
    )
    recurrent_dropout: float = Field(
        0.0, ge=0, lt=1, description="Drop rate of the state fed back (one mask per sequence)."
    )
    return_sequences: bool = Field(False, description="Output every step, not just the last.")
    go_backwards: bool = Field(
        False, description="Read the sequence reversed (and return it reversed)."
    )
    return_state: bool = Field(
        False,
        description="Also output the last state, as Keras: [output, h] (LSTM: [output, h, c]); "
        "a consumer names one with `layer:1`, `layer:2`.",
    )
    zero_output_for_mask: bool = Field(
        False,
        description="Under a mask (Masking, Embedding mask_zero): zeros at masked steps of the "
        "returned sequence, not the previous output (Bidirectional sets it when returning "
        "sequences, as Keras).",
    )

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape, *initial = input_shapes
        require_rank(self.type, shape, 2, "a sequence (steps, features)")
        require_known(self.type, shape, -1, "feature axis (last)")
        if initial and len(initial) != self.n_states:
            want = "[h, c]" if self.n_states == 2 else "[h]"
            raise ShapeError(
                f"{self.type}'s initial state is {want} after the sequence in `inputs`, "
                f"got {len(initial)} state input(s)"
            )
        for state in initial:
            if tuple(state) != (self.units,):
                raise ShapeError(
                    f"{self.type} takes an initial state of shape {format_shape((self.units,))} "
                    f"(its units), got {format_shape(state)}"
                )
        return (shape[0], self.units) if self.return_sequences else (self.units,)

    def output_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        main = self.output_shape(input_shapes)
        return [main, *[(self.units,)] * self.n_states] if self.return_state else [main]

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        pairs = {
            "kernel": self.kernel_regularizer,
            "recurrent_kernel": self.recurrent_regularizer,
            "bias": self.bias_regularizer,
        }
        return {weight: reg for weight, reg in pairs.items() if reg is not None}

    def fused_kind(self) -> str | None:
        """The torch kernel computing this layer exactly, or None (step loop only)."""
        raise NotImplementedError  # each RNN overrides this

    def bias_shape(self) -> tuple[int, ...] | None:
        return (self.gates * self.units,) if self.use_bias else None

    def module_arguments(self, input_shapes: list[Shape]) -> dict[str, Any]:
        """Keyword arguments of kcli.model.nn.recurrent.RecurrentModule for this spec."""
        gated = self.gates > 1  # LSTM and GRU have a recurrent_activation, SimpleRNN not
        return {
            "input_size": input_shapes[0][-1],
            "units": self.units,
            "bias_shape": self.bias_shape(),
            "activation": _activation_module(self.activation),
            "recurrent_activation": (
                _activation_module(self.recurrent_activation) if gated else None
            ),
            "fused": self.fused_kind(),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
            "return_state": self.return_state,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    def initialize(self, module) -> None:
        """Fill the weights with the initializers, fans as Keras computes them."""
        inputs, width = module.kernel.shape[1], self.gates * self.units
        # Keras kernel (features, gates*units), recurrent kernel (units, gates*units).
        self.kernel_initializer.fill_(module.kernel, fan_in=inputs, fan_out=width)
        self.recurrent_initializer.fill_(module.recurrent_kernel, fan_in=self.units, fan_out=width)
        if module.bias is not None:
            # Keras' fans of a (n,) bias are (n, n); of the GRU's (2, n) bias, (2, n).
            fan_in = module.bias.shape[0] if module.bias.dim() == 2 else width
            self.bias_initializer.fill_(module.bias, fan_in=fan_in, fan_out=width)


class SimpleRNN(_Recurrent):
    """A fully connected RNN: h_t = activation(x_t W + b + h_{t-1} U).

    States, as Keras: `return_state: true` outputs [output, h] (consumers name `layer:1`);
    `inputs: [sequence, h0]` starts from h0 (Keras' initial_state) instead of zeros.
    """

    type: Literal["SimpleRNN"] = "SimpleRNN"

    def fused_kind(self) -> str | None:
        if _is_default(self.activation, "tanh"):
            return "rnn_tanh"
        return "rnn_relu" if _is_default(self.activation, "relu") else None

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.recurrent import SimpleRNNModule

        module = SimpleRNNModule(**self.module_arguments(input_shapes))
        self.initialize(module)
        return module


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter 1997), Keras' form: gates i, f, c, o; one bias each.

    States, as Keras: `return_state: true` outputs [output, h, c], which consumers name
    `layer:1` and `layer:2` (`layer` alone, or `layer:0`, is the output); `inputs: [sequence,
    h0, c0]` starts from those states (Keras' initial_state), e.g. a seq2seq decoder with
    `inputs: [decoder_in, "encoder:1", "encoder:2"]`.
    """

    type: Literal["LSTM"] = "LSTM"
    gates: ClassVar[int] = 4
    n_states: ClassVar[int] = 2
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 3)

    recurrent_activation: ActivationRef | None = Field(
        "sigmoid", description="Applied to the input, forget and output gates; null: linear."
    )
    unit_forget_bias: bool = Field(True, description="Start the forget gate's bias at 1.")

    def fused_kind(self) -> str | None:
        fusable = _is_default(self.activation, "tanh") and _is_default(
            self.recurrent_activation, "sigmoid"
        )
        return "lstm" if fusable else None

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        import torch

        from kcli.model.nn.recurrent import LSTMModule

        module = LSTMModule(**self.module_arguments(input_shapes))
        self.initialize(module)
        if module.bias is not None and self.unit_forget_bias:
            with torch.no_grad():
                module.bias[self.units : 2 * self.units] = 1.0  # the f slice of i, f, c, o
        return module


class GRU(_Recurrent):
    """Gated recurrent unit (Cho 2014), Keras 3's reset_after form by default.

    States, as Keras: `return_state: true` outputs [output, h] (consumers name `layer:1`);
    `inputs: [sequence, h0]` starts from h0 (Keras' initial_state) instead of zeros.
    """

    type: Literal["GRU"] = "GRU"
    gates: ClassVar[int] = 3

    recurrent_activation: ActivationRef | None = Field(
        "sigmoid", description="Applied to the update and reset gates; null: linear."
    )
    reset_after: bool = Field(
        True, description="Reset after the recurrent matmul (Keras 3, cuDNN) or before (Keras 2)."
    )

    def bias_shape(self) -> tuple[int, ...] | None:
        if self.use_bias and self.reset_after:
            return (2, 3 * self.units)  # input and recurrent biases, as Keras stores them
        return super().bias_shape()

    def fused_kind(self) -> str | None:
        fusable = _is_default(self.activation, "tanh") and _is_default(
            self.recurrent_activation, "sigmoid"
        )
        return "gru" if fusable and self.reset_after else None

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.recurrent import GRUModule

        module = GRUModule(**self.module_arguments(input_shapes), reset_after=self.reset_after)
        self.initialize(module)
        return module


_WRAPPABLE = ("SimpleRNN", "LSTM", "GRU")


def _recurrent_layer(value: Any) -> Any:
    """Canonicalize the wrapped layer's type name and refuse what Bidirectional cannot wrap."""
    value = layer_registry.normalize(value)
    if isinstance(value, dict) and value["type"] not in _WRAPPABLE:
        raise PydanticCustomError(
            "not_recurrent",
            "Bidirectional wraps one of {options}, got '{name}'",
            {"options": ", ".join(_WRAPPABLE), "name": value["type"]},
        )
    return value


RecurrentRef = Annotated[
    Annotated[Union[SimpleRNN, LSTM, GRU], Field(discriminator="type")],  # noqa: UP007
    BeforeValidator(_recurrent_layer),
]


class Bidirectional(LayerSpec):
    """Runs `layer` forwards and a copy backwards, and merges the two outputs.

    Params are twice the wrapped layer's. The copy reads the sequence reversed (its
    `go_backwards` flipped) and its outputs are put back in input order before merging. With
    the wrapped layer's `return_state`, as Keras: [output, forward h (, c), backward h (, c)];
    `inputs: [sequence, *forward states, *backward states]` is Keras' initial_state.
    """

    # The sequence, then optionally each direction's initial states (forward first).
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 5)
    # Both directions skip the masked steps (zeros there when returning sequences, as Keras).
    mask_in: ClassVar[MaskIn] = "first"
    mask_out: ClassVar[MaskOut] = "module"

    type: Literal["Bidirectional"] = "Bidirectional"

    layer: RecurrentRef = Field(description="The RNN to run both ways: {type: LSTM, units: 8}.")
    merge_mode: Literal["concat", "sum", "mul", "ave"] = Field(
        "concat", description="How the two directions' outputs combine."
    )

    @field_validator("merge_mode", mode="before")
    @classmethod
    def _one_output(cls, value):
        if value is None:
            raise PydanticCustomError(
                "merge_mode_null",
                "merge_mode null (the two directions as separate outputs) is not supported: "
                "a kcli layer has one output; use concat, sum, mul or ave",
            )
        return value

    @field_validator("layer")
    @classmethod
    def _no_wiring(cls, value: _Recurrent):
        # The wrapped layer is not a node of the graph: wiring and output penalties belong
        # to the Bidirectional itself.
        for key in ("inputs", "activity_regularizer"):
            if getattr(value, key) is not None:
                raise PydanticCustomError(
                    "wrapped_layer_key",
                    "set '{key}' on the Bidirectional, not on the layer it wraps",
                    {"key": key},
                )
        return value

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        sequence, *initial = input_shapes
        states = self.layer.n_states
        if initial and len(initial) != 2 * states:
            want = "[h, c] of each direction" if states == 2 else "[h] of each direction"
            raise ShapeError(
                f"Bidirectional's initial state is {want} (forward first) after the sequence in "
                f"`inputs`: {2 * states} state inputs, got {len(initial)}"
            )
        for state in initial:  # each direction's states are the wrapped layer's own
            self.layer.output_shape([sequence, *[state] * states])
        inner = self.layer.output_shape([sequence])
        if self.merge_mode == "concat":
            return (*inner[:-1], 2 * inner[-1])
        return inner

    def output_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        """With the wrapped layer's return_state, as Keras: [output, forward states (h, c),
        backward states], the states each (units,)."""
        main = self.output_shape(input_shapes)
        if not self.layer.return_state:
            return [main]
        return [main, *[(self.layer.units,)] * (2 * self.layer.n_states)]

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.recurrent import BidirectionalModule

        sequence = [input_shapes[0]]
        backward = self.layer.model_copy(update={"go_backwards": not self.layer.go_backwards})
        module = BidirectionalModule(
            self.layer.build(sequence), backward.build(sequence), self.merge_mode
        )
        if not self.layer.trainable:
            module.requires_grad_(False)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        """The wrapped layer's penalties on both copies: `forward_layer.kernel`, ..."""
        inner = self.layer.regularized_weights()
        return {
            f"{side}.{weight}": reg
            for side in ("forward_layer", "backward_layer")
            for weight, reg in inner.items()
        }
