"""Nested models against Keras: the same model built as a recipe and with Keras' functional API.

Each case is a kcli recipe and the Keras code a user would write for it (a sub-model is a
`keras.Model` called as a layer). The tests compare `kcli summarize --expand` with Keras'
`model.summary(expand_nested=True)` row by row (the order, `name (type)` with Keras' `└`
indentation, output shapes, parameter counts, `Connected to` with Keras' `layer[node][k]`
numbering) and the totals; then copy kcli's weights into Keras (through kcli.model.nn.keras_layout)
and compare the outputs on the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from keras import layers as K  # noqa: E402

from kcli.model.layers.base import format_shape  # noqa: E402
from kcli.model.nn.keras_layout import keras_tensor  # noqa: E402
from kcli.model.summary import NESTED_MARK, render_summary, summarize_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def siamese():
    x = keras.Input((6,), name="x")
    encoder = keras.Model(x, K.Dense(3, name="proj")(K.Dense(4, "relu", name="hidden")(x)),
                          name="encoder")  # fmt: skip
    left, right = keras.Input((6,), name="left"), keras.Input((6,), name="right")
    gap = K.Subtract(name="gap")([encoder(left), encoder(right)])
    return keras.Model([left, right], K.Dense(1, "sigmoid", name="out")(gap), name="siamese")


SIAMESE = """
  inputs: {left: [6], right: [6]}
  models:
    encoder:
      inputs: {x: [6]}
      layers:
        - {name: hidden, type: Dense, units: 4, activation: relu}
        - {name: proj, type: Dense, units: 3}
  layers:
    - {name: left_code, type: Model, model: encoder, inputs: left}
    - {name: right_code, type: Model, model: encoder, inputs: right}
    - {name: gap, type: Subtract, inputs: [left_code, right_code]}
    - {name: out, type: Dense, units: 1, activation: sigmoid}
"""


def nested_twice():
    # block (Sequential) inside encoder (two outputs) and called by the outer model too.
    block = keras.Sequential([keras.Input((4,)), K.Dense(4, name="b_dense")], name="block")
    e_in = keras.Input((6,), name="e_in")
    h = K.Dense(4, name="e_dense")(e_in)
    encoder = keras.Model(e_in, [block(h), h], name="encoder")
    inp, side = keras.Input((6,), name="inp"), keras.Input((3,), name="side")
    a, b = encoder(inp)
    added = K.Add(name="add")([a, block(b), K.Dense(4, name="s_dense")(side)])
    return keras.Model([inp, side], K.Dense(2, name="out")(added), name="outer")


NESTED_TWICE = """
  inputs: {inp: [6], side: [3]}
  models:
    block:
      input_shape: [4]
      layers: [{name: b_dense, type: Dense, units: 4}]
    encoder:
      inputs: {e_in: [6]}
      layers:
        - {name: e_dense, type: Dense, units: 4}
        - {type: Model, model: block}
      outputs: [block, e_dense]
  layers:
    - {type: Model, model: encoder, inputs: inp}
    - {type: Model, model: block, inputs: "encoder:1"}
    - {name: s_dense, type: Dense, units: 4, inputs: side}
    - {name: add, type: Add, inputs: ["encoder:0", block, s_dense]}
    - {name: out, type: Dense, units: 2}
"""


def stacked():
    # One sub-model called on its own output (its two calls at different depths), beside a
    # layer at the depth of the second call.
    x = keras.Input((4,), name="cell_in")
    block = keras.Model(x, K.Dense(4, "tanh", name="cell")(x), name="block")
    inp = keras.Input((4,), name="inp")
    both = K.Add(name="sum")([block(block(inp)), K.Dense(4, name="side")(inp)])
    return keras.Model(inp, K.Dense(1, name="out")(both), name="stacked")


STACKED = """
  inputs: {inp: [4]}
  models:
    block:
      inputs: {cell_in: [4]}
      layers: [{name: cell, type: Dense, units: 4, activation: tanh}]
  layers:
    - {name: once, type: Model, model: block, inputs: inp}
    - {name: twice, type: Model, model: block, inputs: once}
    - {name: side, type: Dense, units: 4, inputs: inp}
    - {name: sum, type: Add, inputs: [twice, side]}
    - {name: out, type: Dense, units: 1}
"""


def frozen_states():
    # A frozen encoder whose outputs are an LSTM's states (`lstm:1`, `lstm:2`); a decoder starts
    # from them.
    tokens = keras.Input((5, 3), name="tokens")
    _, h, c = K.LSTM(6, return_state=True, name="lstm")(tokens)
    encoder = keras.Model(tokens, [h, c], name="encoder")
    encoder.trainable = False
    source, target = keras.Input((5, 3), name="source"), keras.Input((4, 2), name="target")
    sequence = K.LSTM(6, return_sequences=True, name="decoder")(
        target, initial_state=encoder(source)
    )
    return keras.Model([source, target], K.Dense(3, name="out")(sequence), name="frozen")


FROZEN_STATES = """
  inputs: {source: [5, 3], target: [4, 2]}
  models:
    encoder:
      inputs: {tokens: [5, 3]}
      trainable: false
      layers: [{name: lstm, type: LSTM, units: 6, return_state: true}]
      outputs: ["lstm:1", "lstm:2"]
  layers:
    - {name: states, type: Model, model: encoder, inputs: source}
    - {name: decoder, type: LSTM, units: 6, return_sequences: true,
       inputs: [target, "states:0", "states:1"]}
    - {name: out, type: Dense, units: 3}
"""

CASES = {
    "siamese": (siamese, SIAMESE),
    "nested_twice": (nested_twice, NESTED_TWICE),
    "stacked": (stacked, STACKED),
    "frozen_states": (frozen_states, FROZEN_STATES),
}


def build_kcli(name: str, model_text: str, tmp_path):
    from kcli.recipe.load import load_recipe

    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ndata: {{source: sklearn:iris}}\nmodel:{model_text}\n"
                    "compile: {loss: mse}\n")  # fmt: skip
    return load_recipe(path).build_model()


def keras_table(model, monkeypatch) -> tuple[list[list[str]], list[str]]:
    """Keras' expanded summary: each row's cells, and the three totals lines."""
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell wraps
    printed: list[str] = []
    model.summary(expand_nested=True, line_length=300, print_fn=printed.append)
    lines = "".join(printed).splitlines()
    rows = []
    for line in lines:
        if line.startswith("│"):
            name, *rest = line.strip("│").split("│")
            rows.append([name[1:].rstrip(), *(cell.strip() for cell in rest)])  # keep the indent
    return rows, [line.strip() for line in lines if "params:" in line]


def kcli_table(summary) -> list[list[str]]:
    """kcli's summary rows in Keras' cell form (Keras joins connections with ', ')."""

    def cells(rows, level):
        for row in rows:
            prefix = "   " * level + NESTED_MARK if level else ""
            shape = format_shape(tuple(row.output_shape))
            if row.output_shapes:
                shape = "[" + ", ".join(format_shape(tuple(s)) for s in row.output_shapes) + "]"
            connected = ", ".join(row.connected_to) or "-"
            yield [f"{prefix}{row.name} ({row.type})", shape, f"{row.params:,}", connected]
            yield from cells(row.layers or [], level + 1)

    return list(cells(summary.layers, 0))


@pytest.mark.parametrize("case", list(CASES))
def test_the_expanded_summary_is_keras(case, tmp_path, monkeypatch):
    make_keras, model_text = CASES[case]
    theirs = make_keras()
    built = build_kcli(case, model_text, tmp_path)
    summary = summarize_model(built.plan, built.model, case)
    keras_rows, keras_totals = keras_table(theirs, monkeypatch)
    assert kcli_table(summary) == keras_rows
    text = render_summary(summary)
    ours = [line.strip() for line in text.splitlines() if "params:" in line]
    assert ours == keras_totals
    assert summary.total_params == theirs.count_params()


def _keras_layer(model, name: str):
    """The Keras layer called `name`, in `model` or any model nested in it."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers"):
            found = _keras_layer(layer, name)
            if found is not None:
                return found
    return None


_WEIGHT_ORDER = {"Dense": ["kernel", "bias"], "LSTM": ["kernel", "recurrent_kernel", "bias"]}


@pytest.mark.parametrize("case", list(CASES))
def test_the_outputs_are_keras_with_the_same_weights(case, tmp_path):
    make_keras, model_text = CASES[case]
    theirs = make_keras()
    built = build_kcli(case, model_text, tmp_path)
    model = built.model.eval()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.parameters():  # non-zero biases too
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    copied = set()
    for key in model.state_dict():
        path = key.rpartition(".")[0]
        if path in copied:
            continue
        copied.add(path)
        module = model.get_submodule(path)
        layer = _keras_layer(theirs, path.rpartition(".")[2])
        names = _WEIGHT_ORDER[type(layer).__name__]
        layer.set_weights(
            [keras_tensor(module, n, getattr(module, n)).detach().numpy() for n in names]
        )
    rng = np.random.default_rng(2)
    inputs = {
        name: rng.normal(size=(3, *shape)).astype("float32")
        for name, shape in built.plan.inputs.items()
    }
    arrays = [inputs[name] for name in built.plan.inputs]
    want = keras.ops.convert_to_numpy(theirs(arrays if len(arrays) > 1 else arrays[0]))
    with torch.no_grad():
        got = model({name: torch.from_numpy(x) for name, x in inputs.items()})
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
