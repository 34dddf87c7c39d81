"""Shared layers: one layer's weights used at two places (Keras' calling a layer object twice).

A siamese model: one Dense "tower" applied to a left and a right input. Keras counts the tower's
weights once, both calls compute with them, and a gradient step moves them by the sum of what
both calls contribute; each of these is checked against a hand computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from kcli.errors import KcliError
from tests.train.conftest import run_cli

SIAMESE = """\
name: siamese
seed: 3
data:
  source: pairs.npz
  x: {left: left, right: right}
  y: same
  validation_split: 0.25
model:
  inputs: {left: [6], right: [6]}
  layers:
    - {name: tower, type: Dense, units: 4, activation: tanh, inputs: left,
       kernel_regularizer: {l2: 0.01}}
    - {name: tower_right, type: Shared, shares: tower, inputs: right}
    - {name: gap, type: Subtract, inputs: [tower, tower_right]}
    - {name: out, type: Dense, units: 1, activation: sigmoid}
compile:
  optimizer: {type: SGD, learning_rate: 0.1}
  loss: binary_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
  batch_size: 16
"""


def write_pairs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    left = rng.normal(size=(120, 6)).astype(np.float32)
    same = rng.integers(0, 2, 120)
    right = np.where(same[:, None] == 1, left, rng.normal(size=(120, 6))).astype(np.float32)
    np.savez(folder / "pairs.npz", left=left, right=right, same=same)


def test_the_shared_weights_are_one_module_counted_once(tmp_path):
    from kcli.model.summary import summarize_model
    from kcli.recipe.load import load_recipe

    path = tmp_path / "siamese.yaml"
    path.write_text(SIAMESE)
    built = load_recipe(path).build_model()
    model = built.model
    # The state dict holds the tower once: no `tower_right.*` keys.
    assert sorted(model.state_dict()) == ["out.bias", "out.kernel", "tower.bias", "tower.kernel"]
    assert model.layer("tower_right") is model.layer("tower")
    summary = summarize_model(built.plan, model, "siamese")
    rows = {row.name: row for row in summary.layers}
    # tower: 6*4 + 4 = 28; its second call adds none; out: 4*1 + 1 = 5. Total 33, as Keras.
    assert rows["tower"].params == 28 and rows["tower_right"].params == 0
    assert rows["tower_right"].type == "Dense, shares tower"
    assert summary.total_params == 33
    # Both calls compute with the same weights (and the tower's tanh).
    x_left, x_right = torch.randn(3, 6), torch.randn(3, 6)
    w, b = model.state_dict()["tower.kernel"], model.state_dict()["tower.bias"]
    gap = torch.tanh(x_left @ w.T + b) - torch.tanh(x_right @ w.T + b)
    want = torch.sigmoid(gap @ model.state_dict()["out.kernel"].T + model.state_dict()["out.bias"])
    with torch.no_grad():
        got = model({"left": x_left, "right": x_right})
    torch.testing.assert_close(got, want)
    # The L2 penalty is the tower's, once: 0.01 * sum(w^2).
    torch.testing.assert_close(model.weight_penalty(), 0.01 * w.square().sum())


def test_a_gradient_step_sums_both_calls(tmp_path):
    from kcli.recipe.load import load_recipe

    path = tmp_path / "siamese.yaml"
    path.write_text(SIAMESE)
    model = load_recipe(path).build_model().model
    x_left, x_right = torch.randn(5, 6), torch.randn(5, 6)
    model({"left": x_left, "right": x_right}).sum().backward()
    kernel = model.layer("tower").kernel
    # By hand: d/dW of sum(sigmoid(v . (tanh(W l + b) - tanh(W r + b)) + c)).
    w = kernel.detach().clone().requires_grad_()
    b = model.layer("tower").bias.detach()
    v, c = model.layer("out").kernel.detach(), model.layer("out").bias.detach()
    gap = torch.tanh(x_left @ w.T + b) - torch.tanh(x_right @ w.T + b)
    torch.sigmoid(gap @ v.T + c).sum().backward()
    torch.testing.assert_close(kernel.grad, w.grad)


def test_a_siamese_recipe_trains_and_exports(tmp_path):
    write_pairs(tmp_path)
    path = tmp_path / "siamese.yaml"
    path.write_text(SIAMESE)
    result = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"), "--json", "-q")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    assert "tower_right (Dense, shares tower)" in (run_dir / "summary.txt").read_text()
    result = run_cli("export", str(run_dir), "--format", "onnx", "--json")
    assert result.exit_code == 0, result.output


def test_bad_shared_calls_are_located(tmp_path):
    bad = SIAMESE.replace("shares: tower,", "shares: towr,")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    result = run_cli("validate", str(path))
    assert result.exit_code == 2
    assert (
        "model.layers[1].shares: shares 'towr', which is not a layer (did you mean 'tower'?)"
        in (result.stderr)
    )
    # Inputs of another shape than the shared layer was built for: named, with both shapes.
    path.write_text(SIAMESE.replace("right: [6]}", "right: [5]}"))
    result = run_cli("validate", str(path))
    assert result.exit_code == 2
    assert (
        "layer 'tower_right' shares the weights of 'tower', built for input (None, 6), but gets "
        "(None, 5)"
    ) in result.stderr
    # Trainability is the shared layer's.
    path.write_text(SIAMESE.replace("inputs: right}", "inputs: right, trainable: false}"))
    result = run_cli("validate", str(path))
    assert result.exit_code == 2 and "belong to the shared layer 'tower'" in result.stderr


def test_a_shared_call_alone_has_no_shape_rule():
    from kcli.model.layers import layer_registry

    spec = layer_registry.get("Shared").model_validate({"type": "Shared", "shares": "x"})
    try:
        spec.output_shape([(3,)])
    except KcliError as error:
        assert "takes the shape rule of 'x'" in str(error)
    else:  # pragma: no cover - the assertion that matters
        raise AssertionError("a Shared call must not have a shape rule of its own")
