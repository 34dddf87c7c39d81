"""TimeDistributed and SpectralNormalization: shapes and counts (the wrapped layer's), the steps
folded or run one by one, the power method by hand, the wrapped layers refused, and both in a
recipe (summary, regularizers, the one-key form, the JSON Schema).

(tests/parity compares the same layers with Keras itself.)
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from kcli.cli import app
from kcli.errors import ShapeError
from kcli.model.layers import layer_registry
from kcli.model.nn.counting import count_weights


def spec(data: dict):
    return layer_registry.validate_spec(data)


def wrap(layer: dict, **args):
    return spec({"type": "TimeDistributed", "layer": layer, **args})


def test_time_distributed_shapes_and_counts(check_layer):
    # The wrapped layer's parameters, once: Dense 4*3 + 3.
    dense = {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 3}}
    check_layer(dense, [(5, 4)], (5, 3), (4 * 3 + 3, 0))
    # Conv2D on each frame of a video: (T, H, W, C) -> (T, H', W', F), 2*2*2*4 + 4.
    check_layer(
        {"type": "TimeDistributed", "layer": {"type": "Conv2D", "filters": 4, "kernel_size": 2}},
        [(3, 5, 5, 2)],
        (3, 4, 4, 4),
        (2 * 2 * 2 * 4 + 4, 0),
    )
    # BatchNormalization: its moving statistics are non-trainable weights, as Keras counts.
    check_layer(
        {"type": "TimeDistributed", "layer": {"type": "BatchNormalization"}},
        [(3, 4)],
        (3, 4),
        (8, 8),
    )
    # Nested: an LSTM over each sentence of a document, then over the sentences.
    check_layer(
        {"type": "TimeDistributed", "layer": {"type": "LSTM", "units": 2}},
        [(3, 5, 4)],
        (3, 2),
        (4 * (4 * 2 + 2 * 2 + 2), 0),
    )
    nested = wrap({"type": "TimeDistributed", "layer": {"type": "Flatten"}})
    assert nested.output_shape([(2, 3, 4, 5)]) == (2, 3, 20)
    assert wrap({"type": "Dense", "units": 3}).output_shape([(None, 4)]) == (None, 3)


def test_time_distributed_folds_the_steps_and_matches_a_loop():
    layer = wrap({"type": "Conv1D", "filters": 2, "kernel_size": 2, "padding": "same"})
    module = layer.build([(4, 6, 3)]).eval()
    x = torch.randn(2, 4, 6, 3)
    each = torch.stack([module.layer(x[:, t]) for t in range(4)], dim=1)
    torch.testing.assert_close(module(x), each)
    module.train()  # no batch statistics: folded in training too, the same values
    torch.testing.assert_close(module(x), each)


def test_time_distributed_batch_normalization_runs_step_by_step_in_training():
    # As Keras calls the layer per step: each step normalized by its own batch statistics,
    # and the moving mean moved once per step, in step order.
    layer = wrap({"type": "BatchNormalization", "momentum": 0.5, "epsilon": 1e-7})
    module = layer.build([(2, 1)]).train()
    x = torch.tensor([[[1.0], [10.0]], [[3.0], [30.0]]])  # step 0: 1, 3; step 1: 10, 30
    out = module(x)
    torch.testing.assert_close(out[:, 0], out[:, 1])  # each step is (-1, 1) after its own
    # moving mean: 0 -> 0.5 * 0 + 0.5 * 2 = 1 -> 0.5 * 1 + 0.5 * 20 = 10.5
    torch.testing.assert_close(module.layer.moving_mean, torch.tensor([10.5]))
    module.eval()  # the moving statistics: folded, one call
    assert module.per_step and tuple(module(x).shape) == (2, 2, 1)


def test_time_distributed_activation_keeps_its_axes():
    softmax = wrap({"type": "Dense", "units": 3, "activation": {"type": "softmax", "axis": 1}})
    assert softmax.activation_spec().axis == 2  # the step's axis 1 is the output's axis 2
    last = wrap({"type": "Dense", "units": 3, "activation": "softmax"})
    assert last.activation_spec().axis == -1
    assert wrap({"type": "Dense", "units": 3}).activation_spec() is None


def test_time_distributed_refuses_what_it_cannot_run():
    with pytest.raises(ValidationError, match="cannot wrap Shared"):
        wrap({"type": "Shared", "shares": "dense"})
    with pytest.raises(ValidationError, match="wraps a layer of one input; Add takes 2"):
        wrap({"type": "Add"})
    with pytest.raises(ValidationError, match="set 'inputs' on the TimeDistributed"):
        wrap({"type": "Dense", "units": 2, "inputs": "x"})
    with pytest.raises(ValidationError, match="set 'activity_regularizer' on the TimeDistrib"):
        wrap({"type": "Dense", "units": 2, "activity_regularizer": "l2"})
    with pytest.raises(ValidationError, match="unknown layer type 'Dens'"):
        wrap({"type": "Dens", "units": 2})
    with pytest.raises(ShapeError, match=r"rank 2\+"):
        wrap({"type": "Dense", "units": 2}).output_shape([(4,)])
    with pytest.raises(ShapeError, match="one output; LSTM has 3 here"):
        wrap({"type": "LSTM", "units": 2, "return_state": True}).output_shape([(3, 5, 4)])
    with pytest.raises(ShapeError, match="Conv2D expects"):  # the wrapped layer's own rule
        wrap({"type": "Conv2D", "filters": 2, "kernel_size": 2}).output_shape([(3, 5, 4)])


def test_time_distributed_regularizers_and_frozen_layer():
    layer = wrap({"type": "Dense", "units": 2, "kernel_regularizer": "l2", "trainable": False})
    assert set(layer.regularized_weights()) == {"layer.kernel"}
    module = layer.build([(3, 4)])
    assert count_weights(module) == (0, 4 * 2 + 2)  # the wrapped layer frozen on its own
    assert isinstance(module.get_parameter("layer.kernel"), torch.nn.Parameter)


# ---- SpectralNormalization


def normalized(layer: dict, **args):
    return spec({"type": "SpectralNormalization", "layer": layer, **args})


def test_spectral_normalization_counts(check_layer):
    # The layer's weights, plus vector_u (1, the kernel's last Keras axis), non-trainable.
    check_layer(
        {"type": "SpectralNormalization", "layer": {"type": "Dense", "units": 3}},
        [(4,)],
        (3,),
        (4 * 3 + 3, 3),
    )
    check_layer(
        {
            "type": "SpectralNormalization",
            "layer": {"type": "Conv2D", "filters": 5, "kernel_size": 2},
        },
        [(4, 4, 2)],
        (3, 3, 5),
        (2 * 2 * 2 * 5 + 5, 5),
    )
    # A transposed conv's Keras kernel is (*k, out, in): vector_u is (1, in).
    check_layer(
        {
            "type": "SpectralNormalization",
            "layer": {"type": "Conv1DTranspose", "filters": 5, "kernel_size": 2},
        },
        [(4, 2)],
        (5, 5),
        (2 * 5 * 2 + 5, 2),
    )
    check_layer(
        {"type": "SpectralNormalization", "layer": {"type": "DepthwiseConv1D", "kernel_size": 2}},
        [(4, 3)],
        (3, 3),
        (2 * 3 + 3, 1),  # Keras kernel (2, 3, 1): depth_multiplier 1
    )


def test_spectral_normalization_power_method_by_hand():
    layer = normalized({"type": "Dense", "units": 2, "use_bias": False})
    module = layer.build([(2,)])
    with torch.no_grad():
        module.layer.kernel.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))  # diag(3, 1)
        module.vector_u.copy_(torch.tensor([[1.0, 1.0]]))
    x = torch.tensor([[1.0, 1.0]])
    assert module.eval()(x).tolist() == [[3.0, 1.0]]  # inference: the kernel as it is
    out = module.train()(x)
    # v = unit([3, 1]), u = unit(v W) = unit([9, 1]), sigma = v W u^T = sqrt(82 / 10)
    sigma = math.sqrt(8.2)
    torch.testing.assert_close(module.layer.kernel, torch.tensor([[3.0, 0.0], [0.0, 1.0]]) / sigma)
    torch.testing.assert_close(module.vector_u, torch.tensor([[9.0, 1.0]]) / math.sqrt(82))
    torch.testing.assert_close(out, torch.tensor([[3.0, 1.0]]) / sigma)
    for _ in range(40):  # the estimate converges to the largest singular value: 3 / sigma
        module(x)
    largest = torch.linalg.matrix_norm(module.layer.kernel, ord=2)
    assert largest.item() == pytest.approx(1.0, abs=1e-4)


def test_spectral_normalization_leaves_a_zero_kernel_and_passes_gradients():
    module = normalized({"type": "Dense", "units": 2}).build([(3,)]).train()
    with torch.no_grad():
        module.layer.kernel.zero_()
    u = module.vector_u.clone()
    module(torch.ones(1, 3))
    assert (module.layer.kernel == 0).all() and torch.equal(module.vector_u, u)
    # The gradient reaches the kernel (at its normalized value), none goes to vector_u.
    module = normalized({"type": "Dense", "units": 2}, power_iterations=2).build([(3,)]).train()
    module(torch.randn(4, 3)).sum().backward()
    assert module.layer.kernel.grad is not None and module.layer.kernel.grad.abs().sum() > 0
    assert not module.vector_u.requires_grad


def test_spectral_normalization_refuses_layers_without_a_kernel():
    with pytest.raises(ValidationError, match="wraps a layer with a kernel .*; got 'LSTM'"):
        normalized({"type": "LSTM", "units": 2})
    with pytest.raises(ValidationError, match="greater than 0"):
        normalized({"type": "Dense", "units": 2}, power_iterations=0)
    with pytest.raises(ValidationError, match="set 'inputs' on the SpectralNormalization"):
        normalized({"type": "Dense", "units": 2, "inputs": "x"})
    layer = normalized(
        {"type": "Dense", "units": 2, "activation": "relu", "bias_regularizer": "l1"}
    )
    assert layer.activation_spec().type == "relu"
    assert set(layer.regularized_weights()) == {"layer.bias"}


# ---- in a recipe

RECIPE = """\
data: {source: synthetic:classification}
compile: {loss: mse}
model:
  input_shape: [4, 6, 6, 1]
  layers:
    - {type: ConvLSTM2D, filters: 2, kernel_size: 3, return_sequences: true}
    - TimeDistributed: {layer: {Flatten: {}}}
    - name: steps
      type: TimeDistributed
      layer: {type: Dense, units: 3, kernel_regularizer: {l2: 0.5}}
    - {type: SpectralNormalization, layer: {type: Dense, units: 2, activation: softmax}}
"""


def test_a_recipe_with_the_wrappers(tmp_path):
    from kcli.recipe.load import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    result = CliRunner().invoke(app, ["summarize", "--json", str(path)])
    assert result.exit_code == 0, result.output
    layers = json.loads(result.stdout)["layers"]
    rows = {r["name"]: (r["type"], r["output_shape"], r["params"]) for r in layers}
    assert rows == {
        # kernel 3*3*1*8, recurrent kernel 3*3*2*8, bias 8; 6 - 3 + 1 = 4
        "conv_lstm2d": ("ConvLSTM2D", [4, 4, 4, 2], 9 * 8 + 9 * 2 * 8 + 8),
        "time_distributed": ("TimeDistributed", [4, 32], 0),
        "steps": ("TimeDistributed", [4, 3], 32 * 3 + 3),
        # Dense on (4, 3): 3*2 + 2, and vector_u (1, 2)
        "spectral_normalization": ("SpectralNormalization", [4, 2], 3 * 2 + 2 + 2),
    }
    text = CliRunner().invoke(app, ["summarize", str(path)]).stdout
    assert "steps (TimeDistributed)" in text and "(None, 4, 3)" in text
    built = load_recipe(path).build_model()
    model = built.model
    assert "steps.layer.kernel" in model.state_dict()
    assert "spectral_normalization.vector_u" in model.state_dict()
    # the wrapped kernel's L2 penalty: 0.5 * sum(kernel**2)
    kernel = model.state_dict()["steps.layer.kernel"]
    torch.testing.assert_close(model.weight_penalty(), 0.5 * kernel.square().sum())
    # the softmax of the wrapped Dense is the graph's: probabilities out, logits to the loss
    assert built.plan.output_link("spectral_normalization") == "softmax"
    model.train()
    outputs, pres, _ = model.forward_train(torch.randn(2, 4, 6, 6, 1))
    torch.testing.assert_close(outputs[0], pres[0].softmax(-1))


def test_the_json_schema_takes_the_wrappers():
    jsonschema = pytest.importorskip("jsonschema")
    from kcli.recipe.json_schema import recipe_json_schema

    document = recipe_json_schema()
    import yaml

    jsonschema.validate(yaml.safe_load(RECIPE), document)
    wrong = yaml.safe_load(RECIPE)
    wrong["model"]["layers"][3]["layer"]["type"] = "LSTM"  # no kernel to normalize
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, document)
