"""A model's `outputs` naming one output of a layer with several: `layer:k`, as `inputs` does.

An LSTM with return_state outputs [output, h, c]; `outputs: ["encoder:0", "encoder:2"]` makes
the model's outputs its last output and its cell state. Checked in the plan (shapes, links),
the built model's forward (against the LSTM module's own outputs), the summary, and a
sub-model whose outputs are an LSTM's states, which a decoder then starts from.
"""

from __future__ import annotations

import json

import torch

from kcli.model.graph import plan_graph
from kcli.model.spec import ModelSpec
from tests.train.conftest import run_cli

STATES = """\
name: states
data: {source: sklearn:iris}
model:
  inputs: {seq: [5, 3]}
  layers:
    - {name: encoder, type: LSTM, units: 4, return_state: true, inputs: seq}
  outputs: ["encoder:0", "encoder:2"]
compile: {loss: mse}
"""


def spec(outputs) -> ModelSpec:
    layer = {"name": "encoder", "type": "LSTM", "units": 4, "return_state": True}
    return ModelSpec.model_validate({"input_shape": [5, 3], "layers": [layer], "outputs": outputs})


def test_outputs_name_one_output_of_a_layer():
    from kcli.model.nn.model import build_model

    plan = plan_graph(spec(["encoder:0", "encoder:2"]))
    assert plan.outputs == ("encoder:0", "encoder:2")
    assert plan.output_shapes == [(4,), (4,)]
    assert plan.output_link("encoder:2") is None  # a state: no activation to fold in
    torch.manual_seed(0)
    model = build_model(plan)
    assert not model.output_activation_optional
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        output, h, c = model.layer("encoder")(x)
        got = model(x)
    assert isinstance(got, tuple) and len(got) == 2
    torch.testing.assert_close(got[0], output)
    torch.testing.assert_close(got[1], c)
    # The output's pre-activation is itself (an RNN's outputs are not activated by the graph).
    outputs, pres, activity = model.forward_train(x)
    assert activity is None and all(p is o for p, o in zip(pres, outputs, strict=True))


def test_a_single_output_of_index_k_and_the_summary(tmp_path):
    plan = plan_graph(spec("encoder:1"))
    assert plan.outputs == ("encoder:1",) and plan.output_shapes == [(4,)]
    path = tmp_path / "states.yaml"
    path.write_text(STATES)
    result = run_cli("summarize", str(path), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["layers"]
    # 4 * (units * (features + units) + units) = 4 * (4 * 7 + 4) = 128, as Keras counts it.
    assert [(r["name"], r["params"]) for r in rows] == [("seq", 0), ("encoder", 128)]


def test_an_output_the_layer_does_not_have_is_located(tmp_path):
    path = tmp_path / "states.yaml"
    path.write_text(STATES.replace('"encoder:2"]', '"encoder:3"]'))
    result = run_cli("validate", str(path))
    assert result.exit_code == 2, result.output
    assert (
        "states.yaml:7:26: model.outputs[1]: 'encoder:3' is not an output of 'encoder': it has "
        "3 (encoder:0, encoder:1, encoder:2)"
    ) in result.stderr
    path.write_text(STATES.replace('"encoder:2"]', '"encodr:2"]'))
    result = run_cli("validate", str(path))
    assert result.exit_code == 2, result.output
    assert "model.outputs[1]: 'encodr:2' is not a layer (did you mean 'encoder'?)" in result.stderr


SEQ2SEQ = """\
name: seq
data: {source: sklearn:iris}
model:
  inputs: {source: [5, 3], target: [4, 2]}
  models:
    encoder:
      inputs: {tokens: [5, 3]}
      layers:
        - {name: lstm, type: LSTM, units: 6, return_state: true}
      outputs: ["lstm:1", "lstm:2"]
  layers:
    - {name: states, type: Model, model: encoder, inputs: source}
    - {name: decoder, type: LSTM, units: 6, return_sequences: true,
       inputs: [target, "states:0", "states:1"]}
    - {name: out, type: Dense, units: 3, activation: softmax}
compile: {loss: sparse_categorical_crossentropy}
"""


def test_a_sub_model_whose_outputs_are_an_rnns_states(tmp_path):
    from kcli.recipe.load import load_recipe

    path = tmp_path / "seq.yaml"
    path.write_text(SEQ2SEQ)
    built = load_recipe(path).build_model()
    assert built.plan.node("states").shapes == ((6,), (6,))
    model = built.model
    source, target = torch.randn(2, 5, 3), torch.randn(2, 4, 2)
    with torch.no_grad():
        _, h, c = model.get_submodule("encoder.lstm")(source)
        sequence = model.layer("decoder")(target, h, c)
        want = torch.softmax(sequence @ model.out.kernel.T + model.out.bias, -1)
        torch.testing.assert_close(model({"source": source, "target": target}), want)
    result = run_cli("summarize", str(path), "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    # The encoder's LSTM: 4 * (6 * (3 + 6) + 6) = 240; its row shows both states' shapes.
    assert rows["encoder"]["params"] == 240
    assert rows["encoder"]["output_shapes"] == [[6], [6]]
    text = run_cli("summarize", str(path)).stdout
    assert "encoder[0][0]" in text and "encoder[0][1]" in text
