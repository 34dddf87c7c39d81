"""Nested models: a sub-model of `model.models` called as a layer, `{type: Model, model: NAME}`.

A siamese model calls one encoder (two Dense layers) on a left and a right input. As Keras'
calls of one Model object, both calls run the same weights (kept once, as `encoder.<layer>.*`),
a gradient step sums what both calls contribute, the L2 penalty counts the weights once and an
activity penalty counts per call; each is checked against a hand computation. The summary's
rows against Keras itself are in tests/parity/test_nested_parity.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.train.conftest import run_cli

SIAMESE = """\
name: nested
seed: 3
data:
  source: pairs.npz
  x: {left: left, right: right}
  y: same
  validation_split: 0.25
  test_split: 0.2
model:
  inputs: {left: [6], right: [6]}
  models:
    encoder:
      inputs: {x: [6]}
      layers:
        - {name: hidden, type: Dense, units: 4, activation: tanh,
           kernel_regularizer: {l2: 0.01}}
        - {name: proj, type: Dense, units: 3}
  layers:
    - {name: left_code, type: Model, model: encoder, inputs: left}
    - {name: right_code, type: Model, model: encoder, inputs: right}
    - {name: gap, type: Subtract, inputs: [left_code, right_code]}
    - {name: out, type: Dense, units: 1, activation: sigmoid}
compile:
  optimizer: {type: SGD, learning_rate: 0.1}
  loss: binary_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
  batch_size: 16
"""
WEIGHTS = [
    "encoder.hidden.bias",
    "encoder.hidden.kernel",
    "encoder.proj.bias",
    "encoder.proj.kernel",
    "out.bias",
    "out.kernel",
]


def write(tmp_path, text: str = SIAMESE, name: str = "nested.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def built(tmp_path, text: str = SIAMESE):
    from kcli.recipe.load import load_recipe

    return load_recipe(write(tmp_path, text)).build_model()


def write_pairs(folder) -> None:
    rng = np.random.default_rng(0)
    left = rng.normal(size=(120, 6)).astype(np.float32)
    same = rng.integers(0, 2, 120)
    right = np.where(same[:, None] == 1, left, rng.normal(size=(120, 6))).astype(np.float32)
    np.savez(folder / "pairs.npz", left=left, right=right, same=same)
    np.savez(folder / "new.npz", left=left[:5], right=right[:5])


def dense(x, module):
    return x @ module.kernel.T + module.bias


def test_both_calls_run_one_set_of_weights(tmp_path):
    model = built(tmp_path).model
    # The encoder's weights exist once, under its name: no per-call copies.
    assert sorted(model.state_dict()) == WEIGHTS
    assert model.layer("left_code") is model.layer("right_code")
    assert model.calls("left_code") == "encoder" and model.calls("gap") is None
    hidden, proj = model.get_submodule("encoder.hidden"), model.get_submodule("encoder.proj")
    out = model.layer("out")
    left, right = torch.randn(3, 6), torch.randn(3, 6)

    def code(x):
        return dense(torch.tanh(dense(x, hidden)), proj)

    with torch.no_grad():
        want = torch.sigmoid(dense(code(left) - code(right), out))
        got = model({"left": left, "right": right})
    torch.testing.assert_close(got, want)
    # The L2 penalty is the encoder's, once: 0.01 * sum(W^2), not once per call.
    torch.testing.assert_close(model.weight_penalty(), 0.01 * hidden.kernel.square().sum())
    assert model.has_weight_penalty


def test_a_gradient_step_sums_both_calls(tmp_path):
    model = built(tmp_path).model
    left, right = torch.randn(5, 6), torch.randn(5, 6)
    model({"left": left, "right": right}).sum().backward()
    hidden, proj = model.get_submodule("encoder.hidden"), model.get_submodule("encoder.proj")
    # By hand: d/dW1 of sum(sigmoid(v . (code(l) - code(r)) + c)), with W1 in both codes.
    w = hidden.kernel.detach().clone().requires_grad_()
    b = hidden.bias.detach()
    p, q = proj.kernel.detach(), proj.bias.detach()
    v, c = model.layer("out").kernel.detach(), model.layer("out").bias.detach()

    def code(x):
        return torch.tanh(x @ w.T + b) @ p.T + q

    torch.sigmoid((code(left) - code(right)) @ v.T + c).sum().backward()
    torch.testing.assert_close(hidden.kernel.grad, w.grad)


def test_an_activity_penalty_counts_once_per_call(tmp_path):
    text = SIAMESE.replace("kernel_regularizer: {l2: 0.01}}", "activity_regularizer: {l1: 0.1}}")
    model = built(tmp_path, text).model
    left, right = torch.randn(4, 6), torch.randn(4, 6)
    _, _, activity = model.forward_train({"left": left, "right": right})
    hidden = model.get_submodule("encoder.hidden")
    # Keras: l1 * sum|tanh(hidden)| / batch, for each call of the encoder.
    want = sum(0.1 * torch.tanh(dense(x, hidden)).abs().sum() / 4 for x in (left, right))
    torch.testing.assert_close(activity, want)


def test_the_summary_shows_the_sub_model_as_one_row(tmp_path):
    path = write(tmp_path)
    result = run_cli("summarize", str(path), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    rows = {row["name"]: row for row in document["layers"]}
    assert [row["name"] for row in document["layers"]] == ["left", "right", "encoder", "gap", "out"]
    # hidden 6*4 + 4 = 28, proj 4*3 + 3 = 15: the encoder's 43, counted once for two calls;
    # out 3*1 + 1 = 4. Keras says 47 for the same model (the parity test).
    encoder = rows["encoder"]
    assert (encoder["type"], encoder["params"], encoder["output_shape"]) == ("Functional", 43, [3])
    assert encoder["calls"] == ["left_code", "right_code"]
    assert encoder["inputs"] == ["left", "right"]
    assert "layers" not in encoder  # without --expand
    assert document["total_params"] == 28 + 15 + 4
    text = run_cli("summarize", str(path)).stdout
    assert "encoder (Functional)" in text and "hidden" not in text
    # The consumer of the second call is connected to the encoder's node 1, as Keras says.
    assert "encoder[0][0]" in text and "encoder[1][0]" in text
    expanded = run_cli("summarize", str(path), "--expand").stdout
    lines = [line for line in expanded.splitlines() if line.startswith("│") and "└" in line]
    assert [line.split("│")[1].strip() for line in lines] == [
        "└ x (InputLayer)",
        "└ hidden (Dense)",
        "└ proj (Dense)",
    ]
    assert [line.split("│")[3].strip() for line in lines] == ["0", "28", "15"]
    inner = json.loads(run_cli("summarize", str(path), "--json", "--expand").stdout)
    by_name = {row["name"]: row for row in inner["layers"]}
    assert [row["params"] for row in by_name["encoder"]["layers"]] == [0, 28, 15]


def test_train_resume_eval_predict_export(tmp_path):
    write_pairs(tmp_path)
    path = write(tmp_path)
    runs = str(tmp_path / "runs")
    result = run_cli("train", str(path), "--runs-dir", runs, "--json", "-q")
    assert result.exit_code == 0, result.output
    run_dir = json.loads(result.stdout)["run_dir"]
    last = f"{run_dir}/checkpoints/last.pt"
    assert sorted(torch.load(last, weights_only=True)["model"]) == WEIGHTS
    assert "encoder (Functional)" in open(f"{run_dir}/summary.txt").read()
    result = run_cli("train", "--resume", run_dir, "fit.epochs=3", "--runs-dir", runs, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(torch.load(last, weights_only=True)["model"]) == WEIGHTS  # names stay
    assert len(open(f"{run_dir}/metrics.csv").read().splitlines()) == 1 + 3
    result = run_cli("eval", run_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_samples"] == 24  # 20% of 120
    out = tmp_path / "p.npy"
    result = run_cli("predict", run_dir, str(tmp_path / "new.npz"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert np.load(out).shape[0] == 5
    for fmt in ("onnx", "torchscript"):
        result = run_cli("export", run_dir, "--format", fmt, "--json")
        assert result.exit_code == 0, result.output


def test_a_sub_model_of_two_inputs_and_two_outputs(tmp_path):
    text = """\
data: {source: sklearn:iris}
model:
  inputs: {x: [4], y: [2]}
  models:
    pair:
      inputs: {a: [4], b: [2]}
      layers:
        - {name: joined, type: Concatenate, inputs: [a, b]}
        - {name: wide, type: Dense, units: 3, activation: relu}
        - {name: narrow, type: Dense, units: 2, inputs: joined}
      outputs: [wide, narrow]
  layers:
    - {name: p, type: Model, model: pair, inputs: [x, y]}
    - {name: both, type: Concatenate, inputs: ["p:0", "p:1"]}
    - {name: out, type: Dense, units: 1}
compile: {loss: mse}
"""
    result = built(tmp_path, text)
    assert result.plan.node("p").shapes == ((3,), (2,))
    assert result.plan.node("both").shape == (5,)
    model = result.model
    x, y = torch.randn(3, 4), torch.randn(3, 2)
    wide, narrow = model.get_submodule("pair.wide"), model.get_submodule("pair.narrow")
    joined = torch.cat([x, y], dim=-1)
    want = dense(torch.cat([torch.relu(dense(joined, wide)), dense(joined, narrow)], -1), model.out)
    with torch.no_grad():
        torch.testing.assert_close(model({"x": x, "y": y}), want)
    summary = run_cli("summarize", str(write(tmp_path, text))).stdout
    assert "pair (Functional)" in summary and "[(None, 3), (None, 2)]" in summary
    assert "pair[0][0]" in summary and "pair[0][1]" in summary


def test_a_call_infers_the_lengths_its_sub_model_leaves_open(tmp_path):
    # The sub-model takes sequences of any length; called on length 10, its Conv1D (kernel 3)
    # gives 8 steps, which a Flatten and Dense after the call can use: 8*2 = 16 features.
    text = """\
data: {source: sklearn:iris}
model:
  input_shape: [10, 3]
  models:
    conv:
      inputs: {seq: [null, 3]}
      layers: [{type: Conv1D, filters: 2, kernel_size: 3}]
  layers:
    - {type: Model, model: conv}
    - {type: Flatten}
    - {type: Dense, units: 1}
compile: {loss: mse}
"""
    result = built(tmp_path, text)
    assert result.plan.models["conv"].output_shapes == [(None, 2)]  # as declared
    assert result.plan.node("conv").shape == (8, 2)
    assert result.plan.node("dense").input_shapes == ((16,),)
    assert result.model(torch.randn(2, 10, 3)).shape == (2, 1)


def test_a_softmax_at_the_end_of_a_sub_model_hands_its_logits_to_the_loss(tmp_path):
    text = """\
data: {source: sklearn:iris}
model:
  input_shape: [5]
  models:
    head:
      input_shape: [4]
      layers: [{name: probs, type: Dense, units: 3, activation: softmax}]
  layers:
    - {type: Dense, units: 4}
    - {type: Model, model: head}
compile: {loss: sparse_categorical_crossentropy}
"""
    result = built(tmp_path, text)
    assert result.plan.output_link("head") == "softmax"
    assert not result.model.output_activation_optional  # the sub-model applies its own
    x = torch.randn(2, 5)
    outputs, pres, _ = result.model.forward_train(x)
    probs = result.model.get_submodule("head.probs")
    logits = dense(dense(x, result.model.dense), probs)
    torch.testing.assert_close(pres[0], logits)
    torch.testing.assert_close(outputs[0], torch.softmax(logits, -1))


NESTED = """\
data: {source: sklearn:iris}
model:
  input_shape: [6]
  models:
    block:
      input_shape: [4]
      layers: [{name: inner, type: Dense, units: 4}]
    encoder:
      input_shape: [6]
      trainable: false
      layers:
        - {name: first, type: Dense, units: 4}
        - {type: Model, model: block}
  layers:
    - {type: Model, model: encoder}
    - {type: Model, model: block}
    - {name: out, type: Dense, units: 2}
compile: {loss: mse}
"""


def test_a_sub_model_inside_a_sub_model(tmp_path):
    result = built(tmp_path, NESTED)
    model = result.model
    assert list(result.plan.models) == ["block", "encoder"]  # each after those it calls
    # block is one set of weights, called inside encoder and by the model itself.
    assert sorted(model.state_dict()) == [
        "block.inner.bias",
        "block.inner.kernel",
        "encoder.first.bias",
        "encoder.first.kernel",
        "out.bias",
        "out.kernel",
    ]
    first, inner = model.get_submodule("encoder.first"), model.get_submodule("block.inner")
    x = torch.randn(2, 6)
    with torch.no_grad():
        want = dense(dense(dense(dense(x, first), inner), inner), model.out)
        torch.testing.assert_close(model(x), want)
    # encoder is frozen, and so is block, which it contains (one object, as in Keras).
    assert not first.kernel.requires_grad and not inner.kernel.requires_grad
    assert model.out.kernel.requires_grad
    document = json.loads(run_cli("summarize", str(write(tmp_path, NESTED)), "--json").stdout)
    rows = {row["name"]: row for row in document["layers"]}
    # first 6*4 + 4 = 28, inner 4*4 + 4 = 20: encoder 48 (block's included), block 20;
    # out 4*2 + 2 = 10. Totals count block once: 28 + 20 + 10 = 58, 48 of them frozen.
    assert rows["encoder"]["params"] == 48 and rows["block"]["params"] == 20
    assert rows["block"]["type"] == rows["encoder"]["type"] == "Sequential"
    assert document["total_params"] == 58
    assert (document["trainable_params"], document["non_trainable_params"]) == (10, 48)
    text = run_cli("summarize", str(write(tmp_path, NESTED)), "--expand").stdout
    names = [line.split("│")[1].rstrip() for line in text.splitlines() if line.startswith("│")]
    # A Sequential sub-model lists no input row; two levels down, six spaces.
    assert names == [
        " encoder (Sequential)",
        "    └ first (Dense)",
        "    └ block (Sequential)",
        "       └ inner (Dense)",
        " block (Sequential)",
        "    └ inner (Dense)",
        " out (Dense)",
    ]


def test_shared_weights_under_a_sub_model_are_counted_once_when_planned(tmp_path):
    from kcli.model.nn.counting import planned_weight_counts
    from kcli.model.nn.keras_layout import planned_layouts

    result = built(tmp_path, NESTED)
    # The first call meets encoder (and block in it): 48; block's own call adds nothing.
    assert planned_weight_counts(result.plan) == {"encoder": 48, "block": 0, "out": 10}
    # The weight histograms' layouts are planned under the state dict's own names.
    layouts = planned_layouts(result.plan)
    assert sorted(layouts) == sorted(result.model.state_dict())
    assert layouts["block.inner.kernel"] == ((4, 4), (4, 4))  # torch (out, in), Keras (in, out)
    assert layouts["encoder.first.kernel"] == ((4, 6), (6, 4))


BAD = [
    (
        ("model: encoder, inputs: right", "model: encodr, inputs: right"),
        "model.layers[1].model: 'encodr' is not a sub-model (model.models has encoder) "
        "(did you mean 'encoder'?)",
    ),
    (
        ("inputs: right}", "inputs: [left, right]}"),
        "model.layers[1]: layer 'right_code': sub-model 'encoder' takes 1 input(s) (x), got 2",
    ),
    (
        ("right: [6]}", "right: [5]}"),
        "model.layers[1]: layer 'right_code': sub-model 'encoder' takes input 'x' of shape "
        "(None, 6), got (None, 5)",
    ),
    (
        ("- {name: proj, type: Dense, units: 3}", "- {name: proj, type: Model, model: encoder}"),
        "model.models.encoder.layers[1].model: sub-model 'encoder' calls itself: a model "
        "cannot contain itself",
    ),
    (
        ("inputs: right}", "inputs: right, trainable: false}"),
        "model.layers[1]: trainable belongs to the sub-model: set model.models.encoder.trainable",
    ),
    (
        ("{name: out, type: Dense", "{name: encoder, type: Dense"),
        "model.layers[3].name: the name 'encoder' is sub-model model.models.encoder's: only a "
        "call of it may have it",
    ),
    (
        (
            "{name: right_code, type: Model, model: encoder, inputs: right}",
            "{name: right_code, type: Shared, shares: left_code, inputs: right}",
        ),
        "model.layers[1].shares: shares 'left_code', a call of sub-model 'encoder': call the "
        "sub-model again ({type: Model, model: encoder})",
    ),
    (
        (
            "  models:\n",
            "  models:\n    spare: {input_shape: [2], layers: [{type: Dense, units: 1}]}\n",
        ),
        "model.models.spare: sub-model 'spare' is not called by any layer",
    ),
    (
        ("units: 4, activation: tanh", "units: 0, activation: tanh"),
        "model.models.encoder.layers[0].units: must be > 0 (got 0)",
    ),
    (
        ("type: Model, model: encoder, inputs: left", "type: Functional, inputs: left"),
        "model.layers[0].type: 'Functional': a sub-model is defined under model.models",
    ),
]


@pytest.mark.parametrize("change,message", BAD)
def test_mistakes_are_located(tmp_path, change, message):
    assert change[0] in SIAMESE
    result = run_cli("validate", str(write(tmp_path, SIAMESE.replace(*change))))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_loop_of_sub_models_is_refused_where_it_closes(tmp_path):
    text = """\
data: {source: sklearn:iris}
model:
  input_shape: [4]
  models:
    a:
      input_shape: [4]
      layers: [{type: Dense, units: 4}, {type: Model, model: b}]
    b:
      input_shape: [4]
      layers: [{type: Model, model: a}]
  layers: [{type: Model, model: a}]
compile: {loss: mse}
"""
    result = run_cli("validate", str(write(tmp_path, text)))
    assert result.exit_code == 2, result.output
    # file:line:col of the `a` in b's call of it, which closes the loop a -> b -> a.
    assert (
        "nested.yaml:10:37: model.models.b.layers[0].model: sub-model 'b' calls 'a', which "
        "contains it (a -> b -> a): a model cannot contain itself"
    ) in result.stderr


def test_a_call_without_any_sub_model_says_where_they_go(tmp_path):
    text = SIAMESE.replace("    - {name: out, type: Dense", "    - {name: out, type: Dense")
    text = text.replace("model: encoder", "model: tower")
    text = text[: text.index("  models:")] + text[text.index("  layers:\n    - {name: left") :]
    result = run_cli("validate", str(write(tmp_path, text)))
    assert result.exit_code == 2, result.output
    assert "'tower' is not a sub-model: define it under model.models" in result.stderr


def test_the_catalog_lists_the_model_layer():
    result = run_cli("layers", "Model")
    assert result.exit_code == 0, result.output
    assert "model" in result.stdout and "model.models" in result.stdout
