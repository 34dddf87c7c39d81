"""Convolutional LSTMs: ConvLSTM1D, ConvLSTM2D and ConvLSTM3D (Shi et al., 2015), as Keras 3.

Input (steps, *spatial, channels) -> the last state (*spatial', filters), or every step's
(steps, *spatial', filters) with `return_sequences`; spatial' is the input convolution's output
(its `strides`, `padding`, `dilation_rate`, as Conv1D/2D/3D's). An LSTM whose four gates
(Keras' order i, f, c, o) are convolutions: of the input frame with `kernel`, and of the state
with `recurrent_kernel` (stride 1, "same" padding). Keras' defaults: tanh / sigmoid, glorot
uniform kernel, orthogonal recurrent kernel, zero bias with the forget gate's at 1. States, as
the LSTM's: `return_state: true` outputs [output, h, c] (consumers name `layer:1`, `layer:2`),
`inputs: [sequence, h0, c0]` starts from those. The torch side is kcli/model/nn/conv_recurrent.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.errors import ShapeError
from kcli.model.activations import ActivationRef, ActivationSpec
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import Shape, format_shape, require_known, require_rank
from kcli.model.layers.conv import _Conv
from kcli.model.layers.recurrent import _activation_module
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


class _ConvLSTM(_Conv):
    """What ConvLSTM1D/2D/3D share: Keras' arguments, the shape rule and the weights."""

    # The sequence, then optionally Keras' initial_state: h and c.
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 3)

    filters: int = Field(gt=0, description="Channels of the state and of each output step.")
    activation: ActivationRef | None = Field(
        "tanh", description="Applied to the candidate cell and to the cell; null: linear."
    )
    recurrent_activation: ActivationRef | None = Field(
        "sigmoid", description="Applied to the input, forget and output gates; null: linear."
    )
    kernel_initializer: InitializerRef = "glorot_uniform"
    recurrent_initializer: InitializerRef = "orthogonal"
    unit_forget_bias: bool = Field(True, description="Start the forget gate's bias at 1.")
    kernel_regularizer: RegularizerRef | None = None
    recurrent_regularizer: RegularizerRef | None = None
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Drop rate of the input frames (masks per sequence)."
    )
    recurrent_dropout: float = Field(
        0.0, ge=0, lt=1, description="Drop rate of the state fed back (masks per sequence)."
    )
    return_sequences: bool = Field(False, description="Output every step, not just the last.")
    return_state: bool = Field(
        False, description="Also output the last state, as Keras: [output, h, c]."
    )
    go_backwards: bool = Field(
        False, description="Read the sequence reversed (and return it reversed)."
    )

    def activation_spec(self) -> ActivationSpec | None:
        return None  # `activation` is the cell's own, applied inside the module

    def _state_shape(self, shape: Shape) -> Shape:
        """The (*spatial', filters) of h and c for a valid input shape."""
        require_rank(self.type, shape, self.rank + 2, self.input_layout)
        require_known(self.type, shape, -1, "channel axis (last)")
        if None in shape[1:-1]:
            raise ShapeError(
                f"{self.type} needs known spatial sizes (as Keras' ConvLSTM), got input shape "
                f"{format_shape(shape)}"
            )
        return (*self.spatial_output(shape[1:]), self.filters)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape, *initial = input_shapes
        state = self._state_shape(shape)
        if initial and len(initial) != 2:
            raise ShapeError(
                f"{self.type}'s initial state is [h, c] after the sequence in `inputs`, "
                f"got {len(initial)} state input(s)"
            )
        for given in initial:
            if tuple(given) != state:
                raise ShapeError(
                    f"{self.type} takes an initial state of shape {format_shape(state)}, got "
                    f"{format_shape(given)}"
                )
        return (shape[0], *state) if self.return_sequences else state

    def output_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        main = self.output_shape(input_shapes)
        if not self.return_state:
            return [main]
        state = self._state_shape(input_shapes[0])
        return [main, state, state]

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        import torch

        from kcli.model.nn.conv import SpatialPadding
        from kcli.model.nn.conv_recurrent import ConvLSTMModule

        shape = input_shapes[0]
        channels = shape[-1]
        state = self._state_shape(shape)
        kernel = self.kernel_tuple()
        ones = (1,) * self.rank
        module = ConvLSTMModule(
            self.rank,
            channels,
            self.filters,
            kernel,
            self.stride_tuple(),
            self.dilation_tuple(),
            self.use_bias,
            self.padding_module(shape[1:]),
            SpatialPadding("same", state[:-1], kernel, ones, ones),
            activation=_activation_module(self.activation),
            recurrent_activation=_activation_module(self.recurrent_activation),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            return_state=self.return_state,
        )
        # Keras' fans: kernel (*k, C, 4F), recurrent kernel (*k, F, 4F), bias (4F,).
        field, width = math.prod(kernel), 4 * self.filters
        self.kernel_initializer.fill_(module.kernel, fan_in=field * channels, fan_out=field * width)
        self.recurrent_initializer.fill_(
            module.recurrent_kernel, fan_in=field * self.filters, fan_out=field * width
        )
        if module.bias is not None:
            self.bias_initializer.fill_(module.bias, fan_in=width, fan_out=width)
            if self.unit_forget_bias:
                with torch.no_grad():
                    module.bias[self.filters : 2 * self.filters] = 1.0  # f of i, f, c, o
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        pairs = {
            "kernel": self.kernel_regularizer,
            "recurrent_kernel": self.recurrent_regularizer,
            "bias": self.bias_regularizer,
        }
        return {weight: reg for weight, reg in pairs.items() if reg is not None}


class ConvLSTM1D(_ConvLSTM):
    """A convolutional LSTM over a sequence of (steps', channels) frames: (T, steps, C)."""

    type: Literal["ConvLSTM1D"] = "ConvLSTM1D"
    rank: ClassVar[int] = 1
    input_layout: ClassVar[str] = "a sequence of channels-last 1-D frames (time, steps, channels)"


class ConvLSTM2D(_ConvLSTM):
    """A convolutional LSTM over a sequence of images: (T, height, width, channels)."""

    type: Literal["ConvLSTM2D"] = "ConvLSTM2D"
    input_layout: ClassVar[str] = (
        "a sequence of channels-last images (time, height, width, channels)"
    )


class ConvLSTM3D(_ConvLSTM):
    """A convolutional LSTM over a sequence of volumes: (T, depth, height, width, channels)."""

    type: Literal["ConvLSTM3D"] = "ConvLSTM3D"
    rank: ClassVar[int] = 3
    input_layout: ClassVar[str] = (
        "a sequence of channels-last volumes (time, depth, height, width, channels)"
    )
