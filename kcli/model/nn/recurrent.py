"""Keras' SimpleRNN, LSTM and GRU on torch: Keras' weights and equations, torch's fused kernels.

Each layer holds Keras' three weights under Keras' names, in torch's (out, in) layout like Dense:
`kernel` (gates*units, features), `recurrent_kernel` (gates*units, units) and `bias`. Gate order
is torch's, which for the LSTM is also Keras' (i, f, c, o); the GRU's rows are (r, z, n) where
Keras' columns are (z, r, h). Keras has one bias per gate where torch's kernels take two (input
and recurrent): the missing recurrent bias is a zero tensor made per call, so it is neither a
parameter nor counted. The GRU with reset_after (Keras 3's default) has both, as torch: its
`bias` is (2, 3*units), row 0 for the input, row 1 for the recurrent side, as in Keras.

With the default activations (and SimpleRNN's relu) and no recurrent dropout while training,
the whole sequence runs in one fused call (`torch.lstm`, `torch.gru`, `torch.rnn_tanh`: cuDNN on
a GPU). Otherwise a step loop runs Keras' cell equations; the input projection of all steps is
still one matmul. Dropout is Keras': one mask per sequence (the same at every step) on the
inputs, and with `recurrent_dropout` one per sequence on the state fed to the recurrent kernel.

A Keras mask (`mask=`, from Masking or Embedding(mask_zero)) computes Keras' masked loop: a
masked step keeps the previous state and repeats the previous output. When every sequence of
the batch is padded at its end only (the usual Embedding mask_zero data), a fused kernel runs
the packed sequences, as Keras' TensorFlow backend takes cuDNN for such masks; any other mask
(padding first or inside, go_backwards' reversed one, a non-fused cell, recurrent dropout) and
any traced, compiled or exported graph runs the step loop. Without a mask the code path is the
one above, with no per-step work added.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

_FUSED_OPS = {"rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu, "gru": torch.gru}


def _right_padded_lengths(mask: torch.Tensor) -> torch.Tensor | None:
    """Each sequence's length when every one is its real steps then padding (at least one real
    step), which the fused kernels run packed; None otherwise, or while a graph is traced,
    compiled or exported, which takes the step loop (its result cannot hang on the data)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return None
    lengths = mask.sum(dim=1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    if not bool((mask == (steps < lengths.unsqueeze(1))).all() & (lengths > 0).all()):
        return None
    return lengths


# torch.compile (fit.compile) cannot compile the fused kernels on CPU (inductor fails on
# mkldnn_rnn_layer, torch 2.14): they run as they are, and the layers around them compile.
_eager_under_compile = torch.compiler.disable


class RecurrentModule(nn.Module):
    """What SimpleRNN, LSTM and GRU share: weights, dropout, direction, fused-or-loop dispatch.

    `fused` names the torch kernel computing the layer exactly ("lstm", "gru", "rnn_tanh",
    "rnn_relu"), or None when only the step loop does (non-default activations).
    """

    gates = 1
    n_states = 1

    def __init__(
        self,
        input_size: int,
        units: int,
        *,
        bias_shape: tuple[int, ...] | None,
        activation: nn.Module,
        recurrent_activation: nn.Module | None,
        fused: str | None,
        dropout: float,
        recurrent_dropout: float,
        return_sequences: bool,
        go_backwards: bool,
        return_state: bool = False,
        zero_output_for_mask: bool = False,
    ) -> None:
        super().__init__()
        self.units = units
        self.kernel = nn.Parameter(torch.empty(self.gates * units, input_size))
        self.recurrent_kernel = nn.Parameter(torch.empty(self.gates * units, units))
        self.bias = nn.Parameter(torch.empty(bias_shape)) if bias_shape is not None else None
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.fused = fused
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.return_state = return_state
        self.zero_output_for_mask = zero_output_for_mask

    def forward(self, x: torch.Tensor, *initial: torch.Tensor, mask: torch.Tensor | None = None):
        """The output (the sequence, or the last step); with return_state, (output, *state).

        `initial`: Keras' initial_state, h (and the LSTM's c); zeros when not given. `mask`:
        Keras' (batch, steps) mask, True at the steps that count; a masked step leaves the
        state as it was and repeats the previous output (zeros with `zero_output_for_mask`,
        which Bidirectional sets when returning sequences, as Keras). A mask runs the step
        loop: no torch kernel skips arbitrary steps; without one nothing changes.
        """
        if self.go_backwards:
            x = x.flip(1)  # Keras returns the outputs in the reversed order too
            if mask is not None:
                mask = mask.flip(1)
        if self.training and self.dropout > 0:
            x = x * F.dropout(x.new_ones(x.shape[0], 1, x.shape[2]), self.dropout, True)
        recurrent_mask = None
        if self.training and self.recurrent_dropout > 0:
            ones = x.new_ones(x.shape[0], self.units)
            recurrent_mask = F.dropout(ones, self.recurrent_dropout, True)
        state = tuple(initial) if initial else self.initial_state(x)
        lengths = None
        if mask is not None and self.fused is not None and recurrent_mask is None:
            lengths = _right_padded_lengths(mask)
        if lengths is not None:
            sequence, state = self.run_packed(x, state, mask, lengths)
            output = sequence if self.return_sequences else state[0]
        elif mask is not None:
            sequence, state, last = self.run_masked(x, recurrent_mask, state, mask)
            output = sequence if self.return_sequences else last
        else:
            if self.fused is not None and recurrent_mask is None:
                sequence, state = self.run_fused(x, state)
            else:
                sequence, state = self.run_loop(x, recurrent_mask, state)
            output = sequence if self.return_sequences else state[0]
        return (output, *state) if self.return_state else output

    def compute_mask(self, inputs, masks):
        """Keras' RNN.compute_mask: the sequence's mask stays on a returned sequence; the last
        step and the states have none."""
        mask = masks[0] if self.return_sequences else None
        return (mask, *[None] * self.n_states) if self.return_state else mask

    def input_bias(self) -> torch.Tensor | None:
        """The bias added to the input projection (Keras' only bias, or row 0 of the GRU's)."""
        return self.bias

    def recurrent_bias(self) -> torch.Tensor | None:
        """The bias added to the recurrent projection; Keras has none but the reset_after GRU."""
        return None

    def fused_params(self) -> list[torch.Tensor]:
        """torch's weights w_ih, w_hh, b_ih, b_hh (b_hh zero where Keras has none)."""
        if self.bias is None:
            return [self.kernel, self.recurrent_kernel]
        recurrent = self.recurrent_bias()
        if recurrent is None:
            recurrent = torch.zeros_like(self.input_bias())
        return [self.kernel, self.recurrent_kernel, self.input_bias(), recurrent]

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x.new_zeros(x.shape[0], self.units),)

    @_eager_under_compile
    def run_fused(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(all outputs, last state) from one fused torch kernel over the sequence."""
        op = _FUSED_OPS[self.fused]
        params = self.fused_params()
        sequence, last = op(
            x,
            state[0].unsqueeze(0),
            params,
            self.bias is not None,
            1,
            0.0,
            self.training,
            False,
            True,
        )
        return sequence, (last[0],)

    def run_loop(
        self, x: torch.Tensor, recurrent_mask: torch.Tensor | None, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
        """(all outputs or None, last state) from Keras' cell equations, step by step."""
        projected = F.linear(x, self.kernel, self.input_bias())  # every step's input part at once
        outputs = []
        for t in range(x.shape[1]):
            state = self.step(projected[:, t], state, recurrent_mask)
            if self.return_sequences:
                outputs.append(state[0])
        sequence = torch.stack(outputs, 1) if self.return_sequences else None
        return sequence, state

    @_eager_under_compile
    def run_packed(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        mask: torch.Tensor,
        lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(all outputs, last state) of right-padded sequences (each one's real steps first)
        from the fused kernel on a packed batch: Keras' masked loop gives the same, the state
        of each sequence's last real step and its output repeated over the padding (zeros
        with zero_output_for_mask)."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        order = packed.sorted_indices
        data, state = self.packed_op(
            packed.data, packed.batch_sizes, tuple(s[order].unsqueeze(0) for s in state)
        )
        state = tuple(s[0][packed.unsorted_indices] for s in state)
        sequence = None
        if self.return_sequences:
            result = PackedSequence(data, packed.batch_sizes, order, packed.unsorted_indices)
            sequence, _ = pad_packed_sequence(result, batch_first=True, total_length=x.shape[1])
            if not self.zero_output_for_mask:
                sequence = torch.where(mask.unsqueeze(-1), sequence, state[0].unsqueeze(1))
        return sequence, state

    def packed_op(
        self, data: torch.Tensor, batch_sizes: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """torch's fused kernel on packed data: (packed outputs, (1, N, units) states)."""
        op = _FUSED_OPS[self.fused]
        params = self.fused_params()
        out, h = op(
            data, batch_sizes, state[0], params, self.bias is not None, 1, 0.0, self.training,
            False,
        )  # fmt: skip
        return out, (h,)

    def run_masked(
        self,
        x: torch.Tensor,
        recurrent_mask: torch.Tensor | None,
        state: tuple[torch.Tensor, ...],
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...], torch.Tensor]:
        """(all outputs or None, last state, last output) under a mask, as Keras' rnn loop:
        at a masked step the state is the previous one and the output the previous output
        (zeros before the first kept step, and always with zero_output_for_mask)."""
        projected = F.linear(x, self.kernel, self.input_bias())
        keep = mask.to(torch.bool).unsqueeze(-1)  # (N, T, 1)
        zeros = x.new_zeros(x.shape[0], self.units)
        output, outputs = zeros, []
        for t in range(x.shape[1]):
            new = self.step(projected[:, t], state, recurrent_mask)
            kept = keep[:, t]
            state = tuple(torch.where(kept, n, s) for n, s in zip(new, state, strict=True))
            output = torch.where(kept, new[0], zeros if self.zero_output_for_mask else output)
            if self.return_sequences:
                outputs.append(output)
        sequence = torch.stack(outputs, 1) if self.return_sequences else None
        return sequence, state, output

    def step(
        self, projected: torch.Tensor, state: tuple[torch.Tensor, ...], mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """One cell step: the next state (output first) from this step's input projection."""
        raise NotImplementedError  # each cell overrides this


class SimpleRNNModule(RecurrentModule):
    """h = activation(x W + b + h_prev U)."""

    gates = 1

    def step(self, projected, state, mask):
        (h,) = state
        if mask is not None:
            h = h * mask
        return (self.activation(projected + F.linear(h, self.recurrent_kernel)),)


class LSTMModule(RecurrentModule):
    """Keras' LSTM: gates i, f, c, o; c = f*c + i*act(c~); h = o*act(c)."""

    gates = 4
    n_states = 2

    def initial_state(self, x):
        zeros = x.new_zeros(x.shape[0], self.units)
        return zeros, zeros

    @_eager_under_compile
    def run_fused(self, x, state):
        h, c = (s.unsqueeze(0) for s in state)
        params = self.fused_params()
        sequence, h, c = torch.lstm(
            x, (h, c), params, self.bias is not None, 1, 0.0, self.training, False, True
        )
        return sequence, (h[0], c[0])

    def packed_op(self, data, batch_sizes, state):
        params = self.fused_params()
        out, h, c = torch.lstm(
            data, batch_sizes, state, params, self.bias is not None, 1, 0.0, self.training, False
        )
        return out, (h, c)

    def step(self, projected, state, mask):
        h, c = state
        if mask is not None:
            h = h * mask
        z = projected + F.linear(h, self.recurrent_kernel)
        i, f, g, o = z.chunk(4, dim=1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        return gate(o) * self.activation(c), c


class GRUModule(RecurrentModule):
    """Keras' GRU (rows r, z, n). reset_after: n = act(x W_n + b_n + r*(h U_n + b'_n)).

    Without reset_after (Keras 2's form; one bias): n = act(x W_n + b_n + (r*h) U_n).
    Either way h = z*h_prev + (1-z)*n.
    """

    gates = 3

    def __init__(self, *args, reset_after: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reset_after = reset_after

    def input_bias(self):
        if self.bias is not None and self.reset_after:
            return self.bias[0]
        return self.bias

    def recurrent_bias(self):
        if self.bias is not None and self.reset_after:
            return self.bias[1]
        return None

    def step(self, projected, state, mask):
        (h,) = state
        dropped = h if mask is None else h * mask
        x_r, x_z, x_n = projected.chunk(3, dim=1)
        u = self.units
        gate = self.recurrent_activation
        if self.reset_after:
            h_r, h_z, h_n = F.linear(dropped, self.recurrent_kernel, self.recurrent_bias()).chunk(
                3, dim=1
            )
            r, z = gate(x_r + h_r), gate(x_z + h_z)
            n = self.activation(x_n + r * h_n)
        else:
            h_r, h_z = F.linear(dropped, self.recurrent_kernel[: 2 * u]).chunk(2, dim=1)
            r, z = gate(x_r + h_r), gate(x_z + h_z)
            n = self.activation(x_n + F.linear(r * dropped, self.recurrent_kernel[2 * u :]))
        return (z * h + (1 - z) * n,)


class BidirectionalModule(nn.Module):
    """Runs a forward and a backward RNN and merges their outputs (concat, sum, mul, ave).

    The backward layer reads the sequence reversed; with return_sequences its outputs are
    flipped back so step t of both halves belongs to input step t, as in Keras.
    """

    def __init__(
        self, forward_layer: RecurrentModule, backward_layer: RecurrentModule, merge_mode: str
    ) -> None:
        super().__init__()
        self.forward_layer = forward_layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        # Keras' Bidirectional: a masked step's output is zeros when returning sequences.
        for layer in (forward_layer, backward_layer):
            layer.zero_output_for_mask = layer.return_sequences

    def forward(self, x: torch.Tensor, *initial: torch.Tensor, mask: torch.Tensor | None = None):
        """The merged output; with the wrapped layer's return_state, as Keras:
        (output, *forward states, *backward states). `initial`: both directions' initial
        states, forward first; `mask`: the sequence's, given to both directions."""
        half = len(initial) // 2
        y, y_backward = (
            self.forward_layer(x, *initial[:half], mask=mask),
            self.backward_layer(x, *initial[half:], mask=mask),
        )
        states: tuple[torch.Tensor, ...] = ()
        if self.forward_layer.return_state:
            (y, *forward_states), (y_backward, *backward_states) = y, y_backward
            states = (*forward_states, *backward_states)
        if self.backward_layer.return_sequences:
            y_backward = y_backward.flip(1)
        if self.merge_mode == "concat":
            merged = torch.cat([y, y_backward], dim=-1)
        elif self.merge_mode == "sum":
            merged = y + y_backward
        elif self.merge_mode == "mul":
            merged = y * y_backward
        else:  # "ave"
            merged = (y + y_backward) / 2
        return (merged, *states) if states else merged

    def compute_mask(self, inputs, masks):
        """Keras' Bidirectional.compute_mask: the mask stays on returned sequences only."""
        layer = self.forward_layer
        mask = masks[0] if layer.return_sequences else None
        return (mask, *[None] * (2 * layer.n_states)) if layer.return_state else mask
