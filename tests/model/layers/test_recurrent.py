"""Recurrent layers: Keras parameter counts, Keras' cell equations (fused and step-loop paths),
Keras' initial weights, dropout masks, go_backwards and Bidirectional."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(d: dict):
    d = layer_registry.normalize(d)
    return layer_registry.get(d["type"]).model_validate(d)


def run(module, x):
    module.eval()
    with torch.no_grad():
        return module(x)


# ---- shapes and parameter counts ----

F_IN, U = 3, 5  # input features, units
CASES = [
    # LSTM: 4*(u*(i+u) + u), one bias per gate (torch's nn.LSTM would have 4*(u*(i+u) + 2u)).
    ({"type": "LSTM", "units": U}, (7, F_IN), (U,), 4 * (U * (F_IN + U) + U)),
    (
        {"type": "LSTM", "units": U, "return_sequences": True},
        (7, F_IN),
        (7, U),
        4 * (U * (F_IN + U) + U),
    ),
    ({"type": "LSTM", "units": U, "use_bias": False}, (7, F_IN), (U,), 4 * U * (F_IN + U)),
    ({"type": "LSTM", "units": U, "activation": "relu"}, (7, F_IN), (U,), 4 * (U * (F_IN + U) + U)),
    # GRU, reset_after (Keras 3): 3*(u*(i+u) + 2u); Keras 2's form: 3*(u*(i+u) + u).
    ({"type": "GRU", "units": U}, (7, F_IN), (U,), 3 * (U * (F_IN + U) + 2 * U)),
    ({"type": "GRU", "units": U, "reset_after": False}, (7, F_IN), (U,), 3 * (U * (F_IN + U) + U)),
    (
        {"type": "GRU", "units": U, "return_sequences": True},
        (4, F_IN),
        (4, U),
        3 * (U * (F_IN + U) + 2 * U),
    ),
    # SimpleRNN: u*(i+u) + u.
    ({"type": "SimpleRNN", "units": U}, (7, F_IN), (U,), U * (F_IN + U) + U),
    (
        {"type": "SimpleRNN", "units": U, "activation": "relu", "return_sequences": True},
        (6, F_IN),
        (6, U),
        U * (F_IN + U) + U,
    ),
    # Bidirectional: twice the wrapped layer; concat doubles the last axis.
    (
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": U}},
        (7, F_IN),
        (2 * U,),
        2 * 4 * (U * (F_IN + U) + U),
    ),
    (
        {
            "type": "Bidirectional",
            "layer": {"type": "GRU", "units": U, "return_sequences": True},
            "merge_mode": "sum",
        },
        (7, F_IN),
        (7, U),
        2 * 3 * (U * (F_IN + U) + 2 * U),
    ),
    (
        {"type": "Bidirectional", "layer": {"type": "SimpleRNN", "units": U}, "merge_mode": "ave"},
        (7, F_IN),
        (U,),
        2 * (U * (F_IN + U) + U),
    ),
]


@pytest.mark.parametrize("layer,in_shape,out_shape,params", CASES)
def test_shapes_and_keras_param_counts(check_layer, layer, in_shape, out_shape, params):
    check_layer(layer, [in_shape], out_shape, (params, 0))


def test_unknown_sequence_length():
    layer = spec({"type": "GRU", "units": 4, "return_sequences": True})
    assert layer.output_shape([(None, 3)]) == (None, 4)
    module = layer.build([(None, 3)])
    assert tuple(run(module, torch.randn(2, 11, 3)).shape) == (2, 11, 4)


# ---- Keras' equations, written out in numpy ----


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def hard_sigmoid(v):  # Keras 3: relu6(x + 3) / 6
    return np.clip(v + 3, 0, 6) / 6


def keras_lstm(x, kernel, recurrent, bias, act=np.tanh, gate=sigmoid, mask=None):
    """Keras' LSTM on numpy, Keras layout: kernel (i, 4u), columns i, f, c, o."""
    u = recurrent.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    outputs = []
    for t in range(x.shape[1]):
        fed = h if mask is None else h * mask
        z = x[:, t] @ kernel + fed @ recurrent + bias
        i, f, cc, o = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
        c = gate(f) * c + gate(i) * act(cc)
        h = gate(o) * act(c)
        outputs.append(h)
    return np.stack(outputs, 1)


def keras_gru(x, kernel, recurrent, bias, reset_after, act=np.tanh, gate=sigmoid, mask=None):
    """Keras' GRU on numpy, Keras layout: kernel (i, 3u), columns z, r, h."""
    u = recurrent.shape[0]
    h = np.zeros((x.shape[0], u))
    outputs = []
    for t in range(x.shape[1]):
        fed = h if mask is None else h * mask
        if reset_after:
            xm = x[:, t] @ kernel + bias[0]
            hm = fed @ recurrent + bias[1]
            z = gate(xm[:, :u] + hm[:, :u])
            r = gate(xm[:, u : 2 * u] + hm[:, u : 2 * u])
            hh = act(xm[:, 2 * u :] + r * hm[:, 2 * u :])
        else:
            xm = x[:, t] @ kernel + bias
            hm = fed @ recurrent[:, : 2 * u]
            z = gate(xm[:, :u] + hm[:, :u])
            r = gate(xm[:, u : 2 * u] + hm[:, u : 2 * u])
            hh = act(xm[:, 2 * u :] + (r * fed) @ recurrent[:, 2 * u :])
        h = z * h + (1 - z) * hh
        outputs.append(h)
    return np.stack(outputs, 1)


def keras_simple_rnn(x, kernel, recurrent, bias, act=np.tanh):
    h = np.zeros((x.shape[0], recurrent.shape[0]))
    outputs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ kernel + bias + h @ recurrent)
        outputs.append(h)
    return np.stack(outputs, 1)


def numpy_weights(module):
    """kernel, recurrent kernel and bias as float64 numpy, randomized bias (init is zeros)."""
    with torch.no_grad():
        module.bias.normal_()
    return [
        w.detach().double().numpy() for w in (module.kernel, module.recurrent_kernel, module.bias)
    ]


def gru_to_keras(weight, u):
    """Our rows (r, z, n) -> Keras' columns (z, r, h): reorder the gates and transpose."""
    return np.concatenate([weight[u : 2 * u], weight[:u], weight[2 * u :]]).T


def gru_bias_to_keras(bias, u):
    """Our (r, z, n) bias columns -> Keras' (z, r, h), row by row for the (2, 3u) bias."""
    return np.concatenate([bias[..., u : 2 * u], bias[..., :u], bias[..., 2 * u :]], axis=-1)


def as_torch(x):
    return torch.from_numpy(x).float()


@pytest.mark.parametrize("path", ["fused", "loop"])
def test_lstm_equals_keras_equations(path):
    layer = spec({"type": "LSTM", "units": 4, "return_sequences": True})
    module = layer.build([(6, 3)])
    assert module.fused == "lstm"
    if path == "loop":
        module.fused = None
    kernel, recurrent, bias = numpy_weights(module)
    x = np.random.default_rng(0).normal(size=(2, 6, 3))
    expected = keras_lstm(x, kernel.T, recurrent.T, bias)  # torch (out, in) -> Keras (in, out)
    np.testing.assert_allclose(run(module, as_torch(x)).numpy(), expected, atol=1e-5)


def test_lstm_non_default_activations_run_keras_equations_step_by_step():
    layer = spec(
        {"type": "LSTM", "units": 4, "activation": "relu", "recurrent_activation": "hard_sigmoid"}
    )
    module = layer.build([(5, 3)])
    assert module.fused is None
    kernel, recurrent, bias = numpy_weights(module)
    x = np.random.default_rng(1).normal(size=(2, 5, 3))
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    expected = keras_lstm(x, kernel.T, recurrent.T, bias, act=relu, gate=hard_sigmoid)[:, -1]
    np.testing.assert_allclose(run(module, as_torch(x)).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("path", ["fused", "loop"])
def test_gru_reset_after_equals_keras_equations(path):
    u = 4
    module = spec({"type": "GRU", "units": u, "return_sequences": True}).build([(6, 3)])
    assert module.fused == "gru"
    if path == "loop":
        module.fused = None
    kernel, recurrent, bias = numpy_weights(module)
    assert bias.shape == (2, 3 * u)  # Keras' (2, 3u): input row, recurrent row
    x = np.random.default_rng(2).normal(size=(2, 6, 3))
    expected = keras_gru(
        x, gru_to_keras(kernel, u), gru_to_keras(recurrent, u), gru_bias_to_keras(bias, u), True
    )
    np.testing.assert_allclose(run(module, as_torch(x)).numpy(), expected, atol=1e-5)


def test_gru_reset_before_equals_keras_equations():
    u = 4
    module = spec({"type": "GRU", "units": u, "reset_after": False}).build([(6, 3)])
    assert module.fused is None  # torch has no kernel for Keras 2's GRU
    kernel, recurrent, bias = numpy_weights(module)
    x = np.random.default_rng(3).normal(size=(2, 6, 3))
    expected = keras_gru(
        x, gru_to_keras(kernel, u), gru_to_keras(recurrent, u), gru_bias_to_keras(bias, u), False
    )
    np.testing.assert_allclose(run(module, as_torch(x)).numpy(), expected[:, -1], atol=1e-5)


@pytest.mark.parametrize(
    "activation,kind", [("tanh", "rnn_tanh"), ("relu", "rnn_relu"), ("sigmoid", None)]
)
@pytest.mark.parametrize("path", ["fused", "loop"])
def test_simple_rnn_equals_keras_equations(activation, kind, path):
    module = spec(
        {"type": "SimpleRNN", "units": 4, "activation": activation, "return_sequences": True}
    ).build([(5, 3)])
    assert module.fused == kind
    if path == "loop":
        module.fused = None
    kernel, recurrent, bias = numpy_weights(module)
    act = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "sigmoid": sigmoid}[activation]
    x = np.random.default_rng(4).normal(size=(2, 5, 3))
    expected = keras_simple_rnn(x, kernel.T, recurrent.T, bias, act)
    np.testing.assert_allclose(run(module, as_torch(x)).numpy(), expected, atol=1e-5)


def test_recurrent_dropout_mask_feeds_the_recurrent_kernel_only():
    # Keras drops the state fed to the recurrent matmul; the GRU's blend z*h + (1-z)*hh and the
    # LSTM's carry use the undropped state. A fixed mask through the step loop vs numpy:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 5, 3))
    mask = np.array([[2.0, 0.0, 2.0, 0.0], [0.0, 2.0, 2.0, 2.0]])  # 1/(1-0.5) or 0
    gru = spec({"type": "GRU", "units": 4, "return_sequences": True}).build([(5, 3)])
    kernel, recurrent, bias = numpy_weights(gru)
    expected = keras_gru(
        x,
        gru_to_keras(kernel, 4),
        gru_to_keras(recurrent, 4),
        gru_bias_to_keras(bias, 4),
        True,
        mask=mask,
    )
    with torch.no_grad():
        got, _ = gru.run_loop(as_torch(x), as_torch(mask), gru.initial_state(as_torch(x)))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    lstm = spec({"type": "LSTM", "units": 4, "return_sequences": True}).build([(5, 3)])
    kernel, recurrent, bias = numpy_weights(lstm)
    with torch.no_grad():
        got, _ = lstm.run_loop(as_torch(x), as_torch(mask), lstm.initial_state(as_torch(x)))
    np.testing.assert_allclose(
        got.numpy(), keras_lstm(x, kernel.T, recurrent.T, bias, mask=mask), atol=1e-5
    )


# ---- dropout: one mask per sequence (Keras) ----


def identity_rnn(units, **extra):
    """A SimpleRNN with kernel I, bias 0 and recurrent kernel I (or 0), to read masks off."""
    module = spec({"type": "SimpleRNN", "units": units, "return_sequences": True, **extra}).build(
        [(3, units)]
    )
    with torch.no_grad():
        module.kernel.copy_(torch.eye(units))
        module.bias.zero_()
    return module


def test_input_dropout_mask_is_the_same_at_every_step():
    torch.manual_seed(0)
    module = identity_rnn(200, dropout=0.5)
    with torch.no_grad():
        module.recurrent_kernel.zero_()
        module.train()
        out = module(torch.ones(1, 3, 200))  # h_t = tanh(x_t * mask): fused path
    assert module.fused == "rnn_tanh"
    # mask values are 0 or 1/(1-0.5) = 2, the same mask at each of the 3 steps
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 0], out[:, 2])
    dropped, kept = out == 0, torch.isclose(out, torch.tanh(torch.tensor(2.0)))
    assert (dropped | kept).all() and dropped.any() and kept.any()
    assert torch.equal(run(module, torch.ones(1, 3, 200)), torch.tanh(torch.ones(1, 3, 200)))


def test_recurrent_dropout_mask_is_the_same_at_every_step():
    torch.manual_seed(0)
    module = identity_rnn(200, recurrent_dropout=0.5, activation="linear")
    with torch.no_grad():
        module.recurrent_kernel.copy_(torch.eye(200))
        module.train()
        out = module(torch.ones(1, 3, 200))[0].T  # (units, steps)
    # h_t = 1 + m*h_{t-1}: a unit with m = 0 gives [1, 1, 1]; with m = 2, [1, 3, 7]. A new mask
    # per step would also give mixes such as [1, 1, 3].
    rows = {tuple(row) for row in out.tolist()}
    assert rows == {(1.0, 1.0, 1.0), (1.0, 3.0, 7.0)}
    # Not training: no dropout, h_t = 1 + h_{t-1} = [1, 2, 3].
    assert run(module, torch.ones(1, 3, 200))[0, :, 0].tolist() == [1.0, 2.0, 3.0]


# ---- initial weights (Keras', not torch's) ----


def test_lstm_forget_gate_bias_starts_at_one():
    module = spec({"type": "LSTM", "units": 4}).build([(5, 3)])
    # gates i, f, c, o: only the f slice (units 4..7) is 1
    assert module.bias.tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 8
    plain = spec({"type": "LSTM", "units": 4, "unit_forget_bias": False}).build([(5, 3)])
    assert plain.bias.abs().sum().item() == 0
    gru = spec({"type": "GRU", "units": 4}).build([(5, 3)])
    assert gru.bias.abs().sum().item() == 0


def test_recurrent_kernel_is_orthogonal_and_kernel_glorot():
    u, i = 16, 10
    module = spec({"type": "LSTM", "units": u}).build([(5, i)])
    # Keras' recurrent kernel W is (u, 4u) with orthonormal rows, W W^T = I_u; ours is W^T.
    w = module.recurrent_kernel.detach().double()
    torch.testing.assert_close(w.T @ w, torch.eye(u, dtype=torch.float64), atol=1e-5, rtol=0)
    # glorot_uniform on Keras' (i, 4u) kernel: limit sqrt(6 / (i + 4u))
    limit = (6 / (i + 4 * u)) ** 0.5
    assert 0.9 * limit < module.kernel.abs().max().item() <= limit


def test_regularized_weights():
    layer = spec(
        {"type": "GRU", "units": 3, "recurrent_regularizer": "l2", "bias_regularizer": "l1"}
    )
    assert set(layer.regularized_weights()) == {"recurrent_kernel", "bias"}
    wrapped = spec(
        {
            "type": "Bidirectional",
            "layer": {"type": "LSTM", "units": 3, "kernel_regularizer": {"l2": 0.1}},
        }
    )
    names = wrapped.regularized_weights()
    assert set(names) == {"forward_layer.kernel", "backward_layer.kernel"}
    module = wrapped.build([(4, 2)])
    for name in names:
        assert isinstance(module.get_parameter(name), torch.nn.Parameter)


# ---- direction ----


def test_go_backwards_reads_reversed_and_returns_reversed():
    forward = spec({"type": "LSTM", "units": 3, "return_sequences": True}).build([(5, 2)])
    backward = spec(
        {"type": "LSTM", "units": 3, "return_sequences": True, "go_backwards": True}
    ).build([(5, 2)])
    backward.load_state_dict(forward.state_dict())
    x = torch.randn(2, 5, 2)
    torch.testing.assert_close(run(backward, x), run(forward, x.flip(1)))


def test_bidirectional_concat_halves():
    layer = spec(
        {"type": "Bidirectional", "layer": {"type": "GRU", "units": 3, "return_sequences": True}}
    )
    module = layer.build([(5, 2)])
    assert module.backward_layer.go_backwards and not module.forward_layer.go_backwards
    x = torch.randn(2, 5, 2)
    out = run(module, x)
    assert tuple(out.shape) == (2, 5, 6)
    torch.testing.assert_close(out[..., :3], run(module.forward_layer, x))
    # the backward half is put back in input order: step t of it belongs to input step t
    torch.testing.assert_close(out[..., 3:], run(module.backward_layer, x).flip(1))


def test_bidirectional_merge_modes():
    x = torch.randn(2, 4, 2)

    def merged(mode, state=None):
        layer = spec(
            {
                "type": "Bidirectional",
                "layer": {"type": "SimpleRNN", "units": 3},
                "merge_mode": mode,
            }
        )
        module = layer.build([(4, 2)])
        if state is not None:
            module.load_state_dict(state)
        return module

    concat = merged("concat")
    both = run(concat, x)
    a, b = both[:, :3], both[:, 3:]
    state = concat.state_dict()
    torch.testing.assert_close(run(merged("sum", state), x), a + b)
    torch.testing.assert_close(run(merged("mul", state), x), a * b)
    torch.testing.assert_close(run(merged("ave", state), x), (a + b) / 2)


def test_bidirectional_frozen_inner_layer():
    layer = spec(
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2, "trainable": False}}
    )
    module = layer.build([(4, 3)])
    assert not any(p.requires_grad for p in module.parameters())


# ---- validation, shapes, export ----


def test_invalid_configurations():
    with pytest.raises(ValidationError, match="Bidirectional wraps one of SimpleRNN, LSTM, GRU"):
        spec({"type": "Bidirectional", "layer": {"type": "Dense", "units": 3}})
    with pytest.raises(ValidationError, match="merge_mode null"):
        spec({"type": "Bidirectional", "layer": {"type": "LSTM", "units": 3}, "merge_mode": None})
    with pytest.raises(ValidationError, match="on the Bidirectional"):
        spec({"type": "Bidirectional", "layer": {"type": "LSTM", "units": 3, "inputs": "x"}})
    with pytest.raises(ValidationError, match="less than 1"):
        spec({"type": "GRU", "units": 3, "dropout": 1.0})
    # lowercase type names inside Bidirectional are canonicalized like any layer's
    assert (
        spec({"type": "Bidirectional", "layer": {"type": "lstm", "units": 3}}).layer.type == "LSTM"
    )


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"LSTM expects .*\(None, 8\)"):
        spec({"type": "LSTM", "units": 3}).output_shape([(8,)])
    with pytest.raises(ShapeError, match=r"GRU needs a known feature axis"):
        spec({"type": "GRU", "units": 3}).output_shape([(8, None)])


@pytest.mark.parametrize("fused", [True, False])
def test_lstm_exports(fused):
    module = spec({"type": "LSTM", "units": 3}).build([(4, 2)]).eval()
    if not fused:
        module.fused = None
    x = torch.randn(2, 4, 2)
    exported = torch.export.export(module, (x,))
    torch.testing.assert_close(exported.module()(x), module(x))
