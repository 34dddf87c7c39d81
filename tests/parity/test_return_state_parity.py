"""return_state and initial_state against Keras: the same RNN weights, the same inputs and states.

A Keras RNN with `return_state=True` returns `[output, h]` (the LSTM `[output, h, c]`), and one
called with `initial_state=[...]` starts from those states; kcli's module takes the states as
extra inputs and returns the same tuple. Each case copies kcli's weights into Keras (through
kcli.model.nn.keras_layout, kcli's one statement of Keras' layouts) and compares every output,
on the fused kernel path and on the step-loop path (a non-default activation), forwards and with
go_backwards; Bidirectional with return_state and both directions' initial states; then the
seq2seq encoder-decoder of the Keras examples, as a whole model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.layers import layer_registry  # noqa: E402
from kcli.model.nn.keras_layout import keras_tensor  # noqa: E402

STEPS, FEATURES, UNITS, BATCH = 5, 3, 4, 2

# Keras itself warns when it reads numpy inputs (its own __array__ call): not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _keras_weights(module) -> list[np.ndarray]:
    names = ["kernel", "recurrent_kernel"] + (["bias"] if module.bias is not None else [])
    return [keras_tensor(module, n, getattr(module, n)).detach().numpy() for n in names]


def _seeded(module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.4)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("loop", [False, True], ids=["fused", "loop"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_return_state_and_initial_state_match_keras(kind, loop, go_backwards, return_sequences):
    arguments = {
        "units": UNITS,
        "return_state": True,
        "go_backwards": go_backwards,
        "return_sequences": return_sequences,
    }
    if loop:  # a non-default activation has no fused kernel: the step loop runs
        arguments["activation"] = "relu" if kind != "SimpleRNN" else "sigmoid"
    spec = layer_registry.get(kind).model_validate({"type": kind, **arguments})
    n_states = 2 if kind == "LSTM" else 1
    shapes = [(STEPS, FEATURES), *[(UNITS,)] * n_states]
    module = spec.build(shapes)
    _seeded(module, 7)
    module.eval()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(n_states)]

    layer = getattr(keras.layers, kind)(**arguments)
    layer.build((BATCH, STEPS, FEATURES))
    layer.set_weights(_keras_weights(module))
    want = [keras.ops.convert_to_numpy(t) for t in layer(x, initial_state=list(states))]
    with torch.no_grad():
        got = module(torch.from_numpy(x), *map(torch.from_numpy, states))
    assert len(got) == len(want) == 1 + n_states
    assert spec.output_shapes(shapes) == [tuple(w.shape[1:]) for w in want]
    for ours, theirs in zip(got, want, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-6)


def test_the_seq2seq_encoder_decoder_matches_keras(tmp_path):
    # Keras' character-level seq2seq example, small: the encoder's states start the decoder.
    from kcli.recipe.load import load_recipe

    recipe = tmp_path / "seq2seq.yaml"
    recipe.write_text(
        "data: {source: sklearn:iris}\n"
        "model:\n"
        "  inputs: {encoder_in: [6, 5], decoder_in: [4, 5]}\n"
        "  layers:\n"
        "    - {name: encoder, type: LSTM, units: 8, return_state: true, inputs: encoder_in}\n"
        "    - {name: decoder, type: LSTM, units: 8, return_sequences: true,\n"
        "       inputs: [decoder_in, 'encoder:1', 'encoder:2']}\n"
        "    - {name: out, type: Dense, units: 5, activation: softmax}\n"
        "compile: {loss: categorical_crossentropy}\n"
    )
    built = load_recipe(recipe).build_model()
    model = built.model.eval()
    encoder_in = keras.Input((6, 5))
    decoder_in = keras.Input((4, 5))
    _, h, c = keras.layers.LSTM(8, return_state=True, name="encoder")(encoder_in)
    sequence = keras.layers.LSTM(8, return_sequences=True, name="decoder")(
        decoder_in, initial_state=[h, c]
    )
    out = keras.layers.Dense(5, activation="softmax", name="out")(sequence)
    reference = keras.Model([encoder_in, decoder_in], out)
    # Keras' own parameter counts: 4 * (8 * (5 + 8) + 8) = 448 per LSTM, 8 * 5 + 5 = 45.
    assert reference.count_params() == sum(p.numel() for p in model.parameters()) == 941
    for name in ("encoder", "decoder"):
        reference.get_layer(name).set_weights(_keras_weights(model.layer(name)))
    dense = model.layer("out")
    reference.get_layer("out").set_weights(
        [keras_tensor(dense, "kernel", dense.kernel).detach().numpy(), dense.bias.detach().numpy()]
    )
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 6, 5)).astype("float32")
    b = rng.normal(size=(3, 4, 5)).astype("float32")
    want = keras.ops.convert_to_numpy(reference([a, b]))
    with torch.no_grad():
        got = model({"encoder_in": torch.from_numpy(a), "decoder_in": torch.from_numpy(b)})
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
@pytest.mark.parametrize("with_initial", [False, True], ids=["zeros", "initial"])
def test_bidirectional_return_state_matches_keras(kind, merge_mode, with_initial):
    # Keras: [output, forward states, backward states]; initial_state lists forward's first.
    inner = {"type": kind, "units": UNITS, "return_state": True, "return_sequences": True}
    spec = layer_registry.get("Bidirectional").model_validate(
        {"type": "Bidirectional", "layer": inner, "merge_mode": merge_mode}
    )
    n_states = 2 if kind == "LSTM" else 1
    shapes = [(STEPS, FEATURES), *([(UNITS,)] * (2 * n_states) if with_initial else [])]
    module = spec.build(shapes)
    _seeded(module, 11)
    module.eval()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in shapes[1:]]

    wrapped = getattr(keras.layers, kind)(UNITS, return_state=True, return_sequences=True)
    layer = keras.layers.Bidirectional(wrapped, merge_mode=merge_mode)
    layer.build((BATCH, STEPS, FEATURES))
    layer.set_weights(_keras_weights(module.forward_layer) + _keras_weights(module.backward_layer))
    called = layer(x, initial_state=list(states)) if with_initial else layer(x)
    want = [keras.ops.convert_to_numpy(t) for t in called]
    with torch.no_grad():
        got = module(torch.from_numpy(x), *map(torch.from_numpy, states))
    assert len(got) == len(want) == 1 + 2 * n_states
    assert spec.output_shapes(shapes) == [tuple(w.shape[1:]) for w in want]
    for ours, theirs in zip(got, want, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-6)
