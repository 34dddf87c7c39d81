"""Identity, Dot, UnitNormalization, GaussianDropout, ActivityRegularization: shapes, values by
hand, noise statistics, the penalty.

(tests/parity compares the same layers with Keras itself.)
"""

from __future__ import annotations

import math

import pytest
import torch

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


def test_shapes_follow_keras(check_layer):
    check_layer({"type": "Identity"}, [(3, 4)], (3, 4), (0, 0))
    # Keras' rule: drop the contracted axis of each, then the second's batch; (N,) -> (N, 1).
    check_layer({"type": "Dot", "axes": 1}, [(5,), (5,)], (1,), (0, 0))
    check_layer({"type": "Dot", "axes": 2}, [(3, 4), (5, 4)], (3, 5), (0, 0))
    check_layer({"type": "Dot", "axes": [1, 2]}, [(3, 4), (2, 3)], (4, 2), (0, 0))
    check_layer({"type": "UnitNormalization"}, [(3, 4)], (3, 4), (0, 0))
    check_layer({"type": "GaussianDropout", "rate": 0.3}, [(6,)], (6,), (0, 0))


def test_dot_and_unit_normalization_by_hand():
    dot = spec({"type": "Dot", "axes": 1}).build([(2,), (2,)])
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 2.0]])
    assert dot(a, b).tolist() == [[11.0]]  # 3*1 + 4*2
    cosine = spec({"type": "Dot", "axes": 1, "normalize": True}).build([(2,), (2,)])
    assert cosine(a, b).item() == pytest.approx(11 / (5 * math.sqrt(5)), rel=1e-6)
    unit = spec({"type": "UnitNormalization"}).build([(2,)])
    torch.testing.assert_close(unit(a), torch.tensor([[0.6, 0.8]]))
    # A zero vector stays zero (the norm's floor 1e-12), not NaN.
    assert unit(torch.zeros(1, 2)).tolist() == [[0.0, 0.0]]


def test_dot_mistakes_name_the_shapes():
    with pytest.raises(ShapeError, match="must have the same size"):
        spec({"type": "Dot", "axes": 1}).output_shape([(3,), (4,)])
    with pytest.raises(ShapeError, match="axis 0 is the batch"):
        spec({"type": "Dot", "axes": 0}).output_shape([(3,), (3,)])


def test_gaussian_dropout_noise_in_training_only():
    layer = spec({"type": "GaussianDropout", "rate": 0.2, "seed": 3})
    module = layer.build([(100_000,)])
    x = torch.ones(1, 100_000)
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    noisy = module(x)
    # x * N(1, sqrt(rate / (1 - rate))): sqrt(0.2 / 0.8) = 0.5.
    assert noisy.mean().item() == pytest.approx(1.0, abs=0.01)
    assert noisy.std().item() == pytest.approx(0.5, abs=0.01)
    again = layer.build([(100_000,)]).train()
    assert torch.equal(again(x), noisy)  # seeded: the same noise


def test_activity_regularization_adds_keras_penalty(tmp_path):
    # The output is the input; the training pass adds (l1 * sum|x| + l2 * sum(x**2)) / batch
    # (Keras 3 divides activity penalties by the batch size) for the values reaching it.
    from kcli.recipe.load import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "data: {source: sklearn:iris}\n"
        "model:\n  input_shape: [2]\n  layers:\n"
        "    - {type: ActivityRegularization, l1: 0.5, l2: 0.25}\n"
        "    - {type: Dense, units: 3, activation: softmax}\n"
        "compile: {loss: sparse_categorical_crossentropy}\n"
    )
    model = load_recipe(recipe).build_model().model
    x = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    _, _, activity = model.forward_train(x)
    # |x| sums to 6, x**2 to 14: (0.5 * 6 + 0.25 * 14) / 2 = 3.25
    assert activity.item() == pytest.approx(3.25)
    with pytest.raises(ValueError, match="give those, not an activity_regularizer"):
        spec({"type": "ActivityRegularization", "l1": 0.1, "activity_regularizer": {"l2": 1.0}})
