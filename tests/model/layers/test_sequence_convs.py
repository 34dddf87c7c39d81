"""DepthwiseConv1D, SeparableConv1D and the ConvLSTMs: shapes and counts from Keras' formulas,
values by hand, the gate order, dropout's masks, the mistakes refused.

(tests/parity compares the same layers with Keras itself.)
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry
from kcli.model.nn.keras_layout import keras_tensor


def spec(data: dict):
    return layer_registry.validate_spec(data)


def test_depthwise_and_separable_1d_shapes_and_counts(check_layer):
    # DepthwiseConv1D: k*C*dm + C*dm; (8 - 3) // 1 + 1 = 6 steps.
    check_layer(
        {"type": "DepthwiseConv1D", "kernel_size": 3, "depth_multiplier": 2},
        [(8, 3)],
        (6, 6),
        (3 * 3 * 2 + 3 * 2, 0),
    )
    # same, stride 2: ceil(8 / 2) = 4 steps.
    check_layer(
        {"type": "DepthwiseConv1D", "kernel_size": 3, "strides": 2, "padding": "same"},
        [(8, 3)],
        (4, 3),
        (3 * 3 + 3, 0),
    )
    # SeparableConv1D: k*C*dm (no bias) + C*dm*F + F.
    check_layer(
        {"type": "SeparableConv1D", "filters": 5, "kernel_size": 3, "depth_multiplier": 2},
        [(8, 3)],
        (6, 5),
        (3 * 3 * 2 + 3 * 2 * 5 + 5, 0),
    )
    no_bias = {"type": "SeparableConv1D", "filters": 4, "kernel_size": 2, "use_bias": False}
    check_layer(no_bias, [(5, 3)], (4, 4), (2 * 3 + 3 * 4, 0))
    assert spec(no_bias).output_shape([(None, 3)]) == (None, 4)  # any length


def test_depthwise_1d_by_hand_channel_then_multiplier():
    layer = spec({"type": "DepthwiseConv1D", "kernel_size": 2, "depth_multiplier": 2})
    module = layer.build([(3, 2)])
    with torch.no_grad():
        # output channels: (channel 0, m 0), (0, 1), (1, 0), (1, 1); taps [first, second]
        module.depthwise_kernel.copy_(
            torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]).reshape(4, 1, 2)
        )
        module.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.5]))
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]).reshape(1, 3, 2)
    want = [[1.0, 2.0, 30.0, 0.5], [2.0, 3.0, 50.0, 10.5]]  # e.g. 2*10 - 20 + 0.5 = 0.5
    assert module(x)[0].tolist() == want
    # Keras' layout: (k, C, dm)
    assert tuple(keras_tensor(module, "depthwise_kernel", module.depthwise_kernel).shape) == (
        2,
        2,
        2,
    )


def test_separable_1d_by_hand():
    layer = spec({"type": "SeparableConv1D", "filters": 1, "kernel_size": 1})
    module = layer.build([(1, 2)])
    with torch.no_grad():
        module.depthwise_kernel.copy_(torch.tensor([2.0, 3.0]).reshape(2, 1, 1))
        module.pointwise_kernel.copy_(torch.tensor([10.0, 100.0]).reshape(1, 2, 1))
        module.bias.fill_(1.0)
    # depthwise [1*2, 2*3] = [2, 6]; pointwise 2*10 + 6*100 + 1 = 621
    assert module(torch.tensor([[[1.0, 2.0]]])).flatten().tolist() == [621.0]
    assert tuple(keras_tensor(module, "pointwise_kernel", module.pointwise_kernel).shape) == (
        1,
        2,
        1,
    )


def test_depthwise_1d_mistakes():
    with pytest.raises(ValidationError, match="causal"):  # Keras' depthwise layers take none
        spec({"type": "DepthwiseConv1D", "kernel_size": 3, "padding": "causal"})
    with pytest.raises(ValidationError, match="one per spatial axis"):
        spec({"type": "SeparableConv1D", "filters": 2, "kernel_size": [3, 3]})
    with pytest.raises(ShapeError, match=r"a channels-last sequence \(steps, channels\)"):
        spec({"type": "DepthwiseConv1D", "kernel_size": 3}).output_shape([(4, 4, 2)])
    with pytest.raises(ShapeError, match="more than the 2"):
        spec({"type": "SeparableConv1D", "filters": 2, "kernel_size": 3}).output_shape([(2, 1)])


# ---- ConvLSTM


def test_conv_lstm_shapes_and_counts(check_layer):
    # kernel k*C*4F, recurrent kernel k*F*4F, bias 4F (Keras' formula).
    k, c, f = 3, 2, 4
    check_layer(
        {"type": "ConvLSTM1D", "filters": f, "kernel_size": k},
        [(5, 7, c)],
        (7 - k + 1, f),
        (k * c * 4 * f + k * f * 4 * f + 4 * f, 0),
    )
    sequences = {"type": "ConvLSTM1D", "filters": f, "kernel_size": k, "return_sequences": True}
    check_layer(sequences, [(5, 7, c)], (5, 5, f), (k * c * 4 * f + k * f * 4 * f + 4 * f, 0))
    assert spec(sequences).output_shape([(None, 7, c)]) == (None, 5, f)  # any number of steps
    # 2-D, same, stride 2: ceil(5 / 2) = 3, ceil(6 / 2) = 3; no bias.
    check_layer(
        {
            "type": "ConvLSTM2D",
            "filters": 2,
            "kernel_size": [3, 2],
            "strides": 2,
            "padding": "same",
            "use_bias": False,
        },
        [(4, 5, 6, 3)],
        (3, 3, 2),
        (3 * 2 * 3 * 8 + 3 * 2 * 2 * 8, 0),
    )
    check_layer(
        {"type": "ConvLSTM3D", "filters": 1, "kernel_size": 2},
        [(2, 3, 3, 3, 1)],
        (2, 2, 2, 1),
        (8 * 1 * 4 + 8 * 1 * 4 + 4, 0),
    )


def _one_by_one(filters: int = 1, **args):
    """A ConvLSTM1D with a 1x1 kernel: each position is an LSTM of its own."""
    layer = spec({"type": "ConvLSTM1D", "filters": filters, "kernel_size": 1, **args})
    return layer, layer.build([(3, 2, 1)])


def test_conv_lstm_is_an_lstm_per_position_with_keras_gate_order():
    layer, module = _one_by_one(return_sequences=True)
    # Gates i, f, c, o: input weights (1, 2, 3, 4), recurrent (0.5, -0.5, 0.25, 1), bias b.
    w, u, b = [1.0, 2.0, 3.0, 4.0], [0.5, -0.5, 0.25, 1.0], [0.1, 0.2, 0.3, 0.4]
    with torch.no_grad():
        module.kernel.copy_(torch.tensor(w).reshape(4, 1, 1))
        module.recurrent_kernel.copy_(torch.tensor(u).reshape(4, 1, 1))
        module.bias.copy_(torch.tensor(b))
    x = torch.tensor([[[[0.5], [-1.0]], [[1.0], [0.0]], [[-0.5], [2.0]]]])  # (1, T=3, 2, 1)
    out = module(x)
    assert tuple(out.shape) == (1, 3, 2, 1)
    for position in range(2):
        h = c = torch.tensor(0.0)
        for t in range(3):
            z = [x[0, t, position, 0] * w[g] + h * u[g] + b[g] for g in range(4)]
            i, f, o = torch.sigmoid(z[0]), torch.sigmoid(z[1]), torch.sigmoid(z[3])
            c = f * c + i * torch.tanh(z[2])
            h = o * torch.tanh(c)
            assert out[0, t, position, 0].item() == pytest.approx(h.item(), rel=1e-6)


def test_conv_lstm_forget_bias_starts_at_one():
    _, module = _one_by_one(filters=3)
    assert module.bias.tolist() == [0.0] * 3 + [1.0] * 3 + [0.0] * 6  # i, f, c, o
    _, module = _one_by_one(filters=3, unit_forget_bias=False)
    assert module.bias.tolist() == [0.0] * 12


def test_conv_lstm_dropout_masks_one_per_gate_and_sequence():
    # In training, the input frames are multiplied by one mask per gate (the same at every
    # step); eval uses no mask. With the input kernel at 1, the recurrent kernel at 0 and no
    # bias, each gate's pre-activation is the masked input itself.
    layer, module = _one_by_one(filters=1, dropout=0.5, use_bias=False, return_sequences=True)
    with torch.no_grad():
        module.kernel.fill_(1.0)
        module.recurrent_kernel.zero_()
    projected = module.train().project_inputs(torch.ones(64, 3, 2, 1))  # (N, T, 4F, 2)
    values = set(projected.unique().tolist())
    assert values == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - 0.5)
    assert (projected == projected[:, :1]).all()  # the same mask at every step
    gates = projected[:, 0]  # (N, 4, 2): the four gates draw their own masks
    assert not (gates == gates[:, :1]).all()
    assert (module.eval().project_inputs(torch.ones(2, 3, 2, 1)) == 1.0).all()


def test_conv_lstm_recurrent_dropout_changes_training_only():
    torch.manual_seed(0)
    layer, module = _one_by_one(filters=2, recurrent_dropout=0.5)
    x = torch.randn(4, 3, 2, 1)
    eval_out = module.eval()(x)
    assert torch.equal(eval_out, module(x))  # deterministic in inference
    assert not torch.equal(module.train()(x), eval_out)


def test_conv_lstm_states_and_initial_state():
    layer = spec({"type": "ConvLSTM1D", "filters": 2, "kernel_size": 3, "return_state": True})
    assert layer.output_shapes([(4, 6, 1)]) == [(4, 2), (4, 2), (4, 2)]
    module = layer.build([(4, 6, 1), (4, 2), (4, 2)]).eval()
    x, h0, c0 = torch.randn(2, 4, 6, 1), torch.randn(2, 4, 2), torch.randn(2, 4, 2)
    out, h, c = module(x, h0, c0)
    assert torch.equal(out, h)  # without return_sequences the output is the last h
    assert not torch.equal(h, module(x)[1])  # the initial state counts
    with pytest.raises(ShapeError, match=r"initial state is \[h, c\]"):
        layer.output_shape([(4, 6, 1), (4, 2)])
    with pytest.raises(ShapeError, match=r"initial state of shape \(None, 4, 2\)"):
        layer.output_shape([(4, 6, 1), (6, 2), (6, 2)])


def test_conv_lstm_mistakes():
    with pytest.raises(ShapeError, match="known spatial sizes"):
        spec({"type": "ConvLSTM2D", "filters": 2, "kernel_size": 2}).output_shape([(3, None, 4, 1)])
    with pytest.raises(ShapeError, match=r"rank 4, batch excluded"):
        spec({"type": "ConvLSTM2D", "filters": 2, "kernel_size": 2}).output_shape([(3, 4, 1)])
    with pytest.raises(ValidationError, match="strides > 1 cannot be combined"):
        spec({"type": "ConvLSTM1D", "filters": 2, "kernel_size": 2, "strides": 2,
              "dilation_rate": 2})  # fmt: skip
    with pytest.raises(ValidationError, match="causal"):
        spec({"type": "ConvLSTM1D", "filters": 2, "kernel_size": 2, "padding": "causal"})
    with pytest.raises(ValidationError, match="less than 1"):
        spec({"type": "ConvLSTM1D", "filters": 2, "kernel_size": 2, "dropout": 1.0})


def test_conv_lstm_regularized_weights_and_keras_layout():
    layer = spec(
        {
            "type": "ConvLSTM2D",
            "filters": 3,
            "kernel_size": [2, 3],
            "kernel_regularizer": "l2",
            "recurrent_regularizer": "l1",
            "bias_regularizer": "l2",
        }
    )
    assert set(layer.regularized_weights()) == {"kernel", "recurrent_kernel", "bias"}
    module = layer.build([(2, 4, 5, 6)])
    assert tuple(keras_tensor(module, "kernel", module.kernel).shape) == (2, 3, 6, 12)
    shown = keras_tensor(module, "recurrent_kernel", module.recurrent_kernel)
    assert tuple(shown.shape) == (2, 3, 3, 12)
    assert layer.activation_spec() is None  # the cell applies its activations itself
