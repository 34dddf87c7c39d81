"""Keras' ConvLSTM1D/2D/3D on torch: an LSTM whose gates are convolutions of channels-last frames.

Weights in torch's conv layout, under Keras' names: `kernel` (4*filters, channels, *k),
`recurrent_kernel` (4*filters, filters, *k), `bias` (4*filters,); the gates are Keras' order
i, f, c, o along the 4*filters axis (Keras' kernels are (*k, in, 4*filters)). The input side
is one convolution of every frame at once (the steps folded into the batch) with the layer's
strides, padding and dilation; the recurrent side, per step, a stride-1 "same" convolution of
the state, as Keras'. The state is kept channels-first inside the loop and returned
channels-last.

Dropout is Keras': in training, four masks per sequence (one per gate, the same at every step)
on the input frames, and with `recurrent_dropout` four on the state fed back; the four masked
copies run as one grouped convolution (groups=4), each group with its gate's kernel slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kcli.model.nn.conv import SpatialPadding, to_channels_first, to_channels_last

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _channels_last_apply(activation: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An activation of a channels-first tensor, applied as Keras applies it: channels last
    (a softmax's axis -1 is the filters)."""
    return activation(x.movedim(1, -1)).movedim(-1, 1)


class ConvLSTMModule(nn.Module):
    """The sequence (N, T, *spatial, C) -> the last state h, or every step's h with
    `return_sequences`; with `return_state`, (output, h, c). `initial`: Keras' initial_state,
    h and c channels-last (zeros when not given)."""

    def __init__(
        self,
        rank: int,
        channels: int,
        filters: int,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        use_bias: bool,
        padding: SpatialPadding,
        recurrent_padding: SpatialPadding,
        *,
        activation: nn.Module,
        recurrent_activation: nn.Module,
        dropout: float,
        recurrent_dropout: float,
        return_sequences: bool,
        go_backwards: bool,
        return_state: bool,
    ) -> None:
        super().__init__()
        self.filters = filters
        self.strides, self.dilation = strides, dilation
        self.padding, self.recurrent_padding = padding, recurrent_padding
        self.kernel = nn.Parameter(torch.empty(4 * filters, channels, *kernel))
        self.recurrent_kernel = nn.Parameter(torch.empty(4 * filters, filters, *kernel))
        self.bias = nn.Parameter(torch.empty(4 * filters)) if use_bias else None
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.return_state = return_state
        self.conv = _CONV[rank]

    @staticmethod
    def _gate_masks(like: torch.Tensor, rate: float) -> torch.Tensor:
        """(N, 4, *like's other axes): one dropout mask per sample and gate."""
        return F.dropout(like.new_ones(like.shape[0], 4, *like.shape[1:]), rate, True)

    def _masked(self, x: torch.Tensor, masks: torch.Tensor | None) -> tuple[torch.Tensor, int]:
        """(the conv's input, its groups): x itself, or the four masked copies side by side
        along the channels (x (N, C, ...), masks (N, 4, C, ...) -> (N, 4C, ...))."""
        if masks is None:
            return x, 1
        return (x.unsqueeze(1) * masks).flatten(1, 2), 4

    def project_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every step's input convolution at once: (N, T, *S, C) -> (N, T, 4F, *S')."""
        n, steps = x.shape[:2]
        frames = to_channels_first(x.reshape(n * steps, *x.shape[2:]))  # (N*T, C, *S)
        groups = 1
        if self.training and self.dropout > 0:
            masks = self._gate_masks(frames[:n], self.dropout)  # (N, 4, C, *S), every step
            sequence = frames.reshape(n, steps, 1, *frames.shape[1:])
            frames = (sequence * masks.unsqueeze(1)).reshape(n * steps, -1, *frames.shape[2:])
            groups = 4
        explicit, implicit = SpatialPadding.split(self.padding.pads(frames))
        if explicit is not None:
            frames = F.pad(frames, explicit)
        projected = self.conv(
            frames, self.kernel, self.bias, self.strides, implicit, self.dilation, groups
        )
        return projected.reshape(n, steps, *projected.shape[1:])

    def project_state(self, h: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """The recurrent convolution of the state: stride 1, "same" padding, no dilation."""
        h, groups = self._masked(h, masks)
        explicit, implicit = SpatialPadding.split(self.recurrent_padding.pads(h))
        if explicit is not None:
            h = F.pad(h, explicit)
        return self.conv(h, self.recurrent_kernel, None, 1, implicit, 1, groups)

    def forward(self, x: torch.Tensor, *initial: torch.Tensor):
        if self.go_backwards:
            x = x.flip(1)  # Keras returns the outputs in the reversed order too
        projected = self.project_inputs(x)  # (N, T, 4F, *S')
        if initial:
            h, c = (to_channels_first(state) for state in initial)
        else:
            h = c = projected.new_zeros(projected.shape[0], self.filters, *projected.shape[3:])
        recurrent_masks = None
        if self.training and self.recurrent_dropout > 0:
            recurrent_masks = self._gate_masks(h, self.recurrent_dropout)
        gate, act = self.recurrent_activation, self.activation
        outputs = []
        for t in range(projected.shape[1]):
            z = projected[:, t] + self.project_state(h, recurrent_masks)
            i, f, g, o = z.chunk(4, dim=1)
            c = _channels_last_apply(gate, f) * c + _channels_last_apply(
                gate, i
            ) * _channels_last_apply(act, g)
            h = _channels_last_apply(gate, o) * _channels_last_apply(act, c)
            if self.return_sequences:
                outputs.append(h)
        if self.return_sequences:
            output = torch.stack(outputs, 1).movedim(2, -1)  # (N, T, *S', F)
        else:
            output = to_channels_last(h)
        if self.return_state:
            return output, to_channels_last(h), to_channels_last(c)
        return output
