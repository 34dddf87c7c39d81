"""Layers with several outputs: an RNN's return_state, named `layer:k`, and initial states.

The numbers are checked against Keras in tests/parity/test_return_state_parity.py; here: the
planner's wiring of `layer:k`, the summary (Keras' list of output shapes, `layer[0][k]`), and
every mistake reported at its place in the recipe.
"""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import run_cli

SEQ2SEQ = """\
name: seq
data: {source: sklearn:iris}
model:
  inputs: {encoder_in: [5, 3], decoder_in: [4, 2]}
  layers:
    - {name: encoder, type: LSTM, units: 6, return_state: true, inputs: encoder_in}
    - {name: decoder, type: LSTM, units: 6, return_sequences: true,
       inputs: [decoder_in, "encoder:1", "encoder:2"]}
    - {name: out, type: Dense, units: 3, activation: softmax}
compile: {loss: sparse_categorical_crossentropy}
"""


def write(tmp_path, text):
    path = tmp_path / "seq.yaml"
    path.write_text(text)
    return path


def test_summary_lists_every_output_and_keras_counts(tmp_path):
    path = write(tmp_path, SEQ2SEQ)
    result = run_cli("summarize", str(path), "--json")
    assert result.exit_code == 0, result.output
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    # LSTM params 4 * (units * (features + units) + units): 4 * (6 * 9 + 6) = 240 and
    # 4 * (6 * 8 + 6) = 216; the encoder's outputs: the last output, h and c, each (6,).
    assert layers["encoder"]["params"] == 240 and layers["decoder"]["params"] == 216
    assert layers["encoder"]["output_shapes"] == [[6], [6], [6]]
    assert layers["decoder"]["inputs"] == ["decoder_in", "encoder:1", "encoder:2"]
    assert layers["decoder"]["output_shapes"] is None
    text = run_cli("summarize", str(path)).stdout
    assert "[(None, 6), (None, 6), (None, 6)]" in text
    assert "encoder[0][1]" in text and "encoder[0][2]" in text


@pytest.mark.parametrize(
    "change,message",
    [
        (
            ('"encoder:2"]', '"encoder:3"]'),
            "'encoder:3' is not an output of 'encoder': it has 3 (encoder:0, encoder:1, encoder:2)",
        ),
        (
            ("return_state: true, ", ""),
            "'encoder:1' is not an output of 'encoder': it has 1 (encoder:0) (set "
            "return_state: true for an RNN's states)",
        ),
        (
            (', "encoder:2"]', "]"),
            "LSTM's initial state is [h, c] after the sequence in `inputs`, got 1 state input(s)",
        ),
        (
            ("units: 6, return_sequences", "units: 5, return_sequences"),
            "LSTM takes an initial state of shape (None, 5) (its units), got (None, 6)",
        ),
        (
            ('"encoder:1"', '"encodr:1"'),
            "input 'encodr' is neither a layer nor a model input (did you mean 'encoder'?)",
        ),
    ],
)
def test_wiring_mistakes_are_located(tmp_path, change, message):
    path = write(tmp_path, SEQ2SEQ.replace(*change))
    result = run_cli("validate", str(path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "model.layers[1]" in result.stderr  # at the decoder, where the reference is


def test_bidirectional_return_state_gives_both_directions_states(tmp_path):
    # Keras: [output, forward h, forward c, backward h, backward c]; the output concatenates.
    text = SEQ2SEQ.replace(
        "{name: encoder, type: LSTM, units: 6, return_state: true, inputs: encoder_in}",
        "{name: encoder, type: Bidirectional, layer: {type: LSTM, units: 6, return_state: true},"
        " inputs: encoder_in}",
    ).replace('"encoder:1", "encoder:2"]', '"encoder:3", "encoder:4"]')  # the backward h, c
    result = run_cli("summarize", str(write(tmp_path, text)), "--json")
    assert result.exit_code == 0, result.output
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    assert layers["encoder"]["output_shapes"] == [[12], [6], [6], [6], [6]]
    assert layers["encoder"]["params"] == 2 * 240  # two LSTMs of 4 * (6 * 9 + 6)
