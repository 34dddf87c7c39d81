"""MultiHeadAttention, Attention, AdditiveAttention: values by hand, Keras' parameter counts
from its formula, shape errors, training-only dropout, regularizers, and export through the CLI.

(tests/parity compares the same layers with Keras itself, weights and gradients included.)
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry
from tests.trained import cli

E = math.e


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


def set_weights(module: torch.nn.Module, values: dict[str, list]) -> None:
    with torch.no_grad():
        for name, value in values.items():
            module.get_parameter(name).copy_(torch.tensor(value))


# ---- values by hand


def tiny_mha(causal: bool = False) -> torch.nn.Module:
    """2 heads of size 1 on a 1-feature sequence, with weights simple enough to follow:
    head 0: q = x, k = x, v = x; head 1: q = 2x, k = x, v = -x; output = head 0 + head 1 + 0.25.
    """
    layer = spec(
        {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 1, "use_causal_mask": causal}
    )
    module = layer.build([(2, 1)])
    set_weights(
        module,
        {
            "query.kernel": [[[1.0], [2.0]]],  # (features 1, heads 2, key_dim 1)
            "key.kernel": [[[1.0], [1.0]]],
            "value.kernel": [[[1.0], [-1.0]]],
            "attention_output.kernel": [[[1.0]], [[1.0]]],  # (heads 2, value_dim 1, out 1)
            "query.bias": [[0.0], [0.0]],
            "key.bias": [[0.0], [0.0]],
            "value.bias": [[0.0], [0.0]],
            "attention_output.bias": [0.25],
        },
    )
    return module.eval()


def test_multi_head_attention_by_hand():
    # x = [0, 1]; scores q_i k_j / sqrt(1). Step 0's query is 0: both heads weigh the two steps
    # equally, head 0 gives (0 + 1) / 2, head 1 -(0 + 1) / 2, so the output is 0 + 0.25.
    # Step 1: head 0's scores [0, 1] -> weights [1, e] / (1 + e) -> e / (1 + e);
    # head 1's scores [0, 2] -> weights [1, e^2] / (1 + e^2) -> -e^2 / (1 + e^2).
    x = torch.tensor([[[0.0], [1.0]]])
    step1 = E / (1 + E) - E**2 / (1 + E**2) + 0.25
    torch.testing.assert_close(tiny_mha()(x), torch.tensor([[[0.25], [step1]]]))
    # Causal: step 0 sees only itself (its value 0 in both heads); step 1 sees both steps.
    torch.testing.assert_close(tiny_mha(causal=True)(x), torch.tensor([[[0.25], [step1]]]))
    x = torch.tensor([[[1.0], [0.0]]])  # now step 0 (value 1) differs with and without the mask
    # Step 0 unmasked: head 0's scores [1, 0] -> e / (1 + e); head 1's [2, 0] -> -e^2/(1 + e^2).
    unmasked = E / (1 + E) - E**2 / (1 + E**2) + 0.25
    masked = 1.0 - 1.0 + 0.25  # only step 0: head 0 gives 1, head 1 gives -1
    assert tiny_mha()(x)[0, 0, 0].item() == pytest.approx(unmasked, rel=1e-6)
    assert tiny_mha(causal=True)(x)[0, 0, 0].item() == pytest.approx(masked, rel=1e-6)


def test_multi_head_attention_scales_by_the_key_dim():
    # One head, key_dim 4: q . k = 4 x_i x_j (all-ones kernels), divided by sqrt(4) = 2.
    layer = spec({"type": "MultiHeadAttention", "num_heads": 1, "key_dim": 4, "value_dim": 1})
    module = layer.build([(2, 1)])
    for name, param in module.named_parameters():
        torch.nn.init.ones_(param) if name.endswith("kernel") else torch.nn.init.zeros_(param)
    x = torch.tensor([[[0.0], [1.0]]])
    # Step 1's scores [0, 4 / 2] -> weights [1, e^2] / (1 + e^2) on the values [0, 1].
    assert module(x)[0, 1, 0].item() == pytest.approx(E**2 / (1 + E**2), rel=1e-6)


def test_attention_and_additive_attention_by_hand():
    query = torch.tensor([[[1.0, 0.0]]])
    value = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    dot = spec({"type": "Attention"}).build([(1, 2), (2, 2)])
    # Scores q . v_j = [1, 0]: weights [e, 1] / (1 + e).
    torch.testing.assert_close(dot(query, value), torch.tensor([[[E / (1 + E), 1 / (1 + E)]]]))
    scaled = spec({"type": "Attention", "use_scale": True}).build([(1, 2), (2, 2)])
    set_weights(scaled, {"scale": 2.0})  # scores [2, 0]
    want = torch.tensor([[[E**2 / (1 + E**2), 1 / (1 + E**2)]]])
    torch.testing.assert_close(scaled(query, value), want)

    # concat: w * sum(tanh(q + k_j)): k_0 = [1, 0] gives tanh 2 + tanh 0, k_1 = [0, 1] 2 tanh 1.
    concat = spec({"type": "Attention", "score_mode": "concat"}).build([(1, 2), (2, 2)])
    set_weights(concat, {"concat_score_weight": 0.5})
    scores = torch.tensor([0.5 * math.tanh(2.0), 0.5 * 2 * math.tanh(1.0)])
    weights = torch.softmax(scores, dim=0)
    torch.testing.assert_close(concat(query, value), weights.view(1, 1, 2))  # value = identity

    # additive: sum(scale * tanh(q + k_j)) with scale [1, -1]: [tanh 2, tanh 1 - tanh 1 = 0].
    additive = spec({"type": "AdditiveAttention"}).build([(1, 2), (2, 2)])
    set_weights(additive, {"scale": [1.0, -1.0]})
    weights = torch.softmax(torch.tensor([math.tanh(2.0), 0.0]), dim=0)
    torch.testing.assert_close(additive(query, value), weights.view(1, 1, 2))


def test_causal_attention_layers_look_back_only():
    # Changing the last step's key and value changes no earlier output.
    x = torch.randn(2, 5, 3)
    later = x.clone()
    later[:, -1] += 10.0
    for data in (
        {"type": "Attention", "use_causal_mask": True},
        {"type": "Attention", "score_mode": "concat", "use_causal_mask": True},
        {"type": "AdditiveAttention", "use_causal_mask": True},
        {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2, "use_causal_mask": True},
    ):
        module = spec(data).build([(5, 3), (5, 3)]).eval()
        before, after = module(x, x), module(later, later)
        torch.testing.assert_close(before[:, :-1], after[:, :-1], msg=data["type"])
        assert not torch.allclose(before[:, -1], after[:, -1]), data["type"]


# ---- parameter counts: Keras' formula


def mha_count(dq, dv, dk, heads, key_dim, value_dim=None, out=None, bias=True) -> int:
    """Keras' MultiHeadAttention: query and key kernels (d, heads, key_dim), the value kernel
    (dv, heads, value_dim), the output kernel (heads, value_dim, out), each with its bias."""
    value_dim = value_dim or key_dim
    out = dq if out is None else out
    kernels = dq * heads * key_dim + dk * heads * key_dim + dv * heads * value_dim
    kernels += heads * value_dim * out
    biases = 2 * heads * key_dim + heads * value_dim + out
    return kernels + (biases if bias else 0)


MHA = {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3}


@pytest.mark.parametrize(
    ("args", "shapes", "out_shape", "count"),
    [
        ({}, [(5, 4)], (5, 4), mha_count(4, 4, 4, 2, 3)),
        ({}, [(3, 4), (5, 6)], (3, 4), mha_count(4, 6, 6, 2, 3)),
        ({}, [(3, 4), (5, 6), (5, 2)], (3, 4), mha_count(4, 6, 2, 2, 3)),
        ({"value_dim": 5}, [(5, 4)], (5, 4), mha_count(4, 4, 4, 2, 3, 5)),
        ({"output_shape": 7}, [(5, 4)], (5, 7), mha_count(4, 4, 4, 2, 3, out=7)),
        ({"output_shape": [2, 3]}, [(5, 4)], (5, 2, 3), mha_count(4, 4, 4, 2, 3, out=6)),
        ({"use_bias": False}, [(5, 4)], (5, 4), mha_count(4, 4, 4, 2, 3, bias=False)),
        ({}, [(None, 4)], (None, 4), mha_count(4, 4, 4, 2, 3)),  # any length
    ],
)
def test_multi_head_attention_counts_as_keras(check_layer, args, shapes, out_shape, count):
    known = [_known(s) for s in shapes]  # a length of None runs at 7 steps
    check_layer({**MHA, **args}, known, _known(out_shape), (count, 0))
    assert spec({**MHA, **args}).output_shape(shapes) == out_shape


def test_the_formula_worked_once():
    # Self-attention on 4 features, 2 heads of 3: three (4, 2, 3) kernels and a (2, 3, 4) one,
    # 96 weights; biases (2, 3) three times and (4,): 22.
    assert mha_count(4, 4, 4, 2, 3) == 96 + 22


def _known(shape: tuple) -> tuple:
    return tuple(7 if d is None else d for d in shape)


def test_attention_counts_as_keras(check_layer):
    shapes = [(3, 4), (5, 6), (5, 4)]  # query, value, key: the output has the value's features
    check_layer({"type": "Attention"}, shapes, (3, 6), (0, 0))
    check_layer({"type": "Attention", "use_scale": True}, shapes, (3, 6), (1, 0))
    check_layer({"type": "Attention", "score_mode": "concat"}, shapes, (3, 6), (1, 0))
    both = {"type": "Attention", "score_mode": "concat", "use_scale": True}
    check_layer(both, shapes, (3, 6), (2, 0))  # scale and concat_score_weight
    check_layer({"type": "AdditiveAttention"}, shapes, (3, 6), (4, 0))  # scale: one per feature
    check_layer({"type": "AdditiveAttention", "use_scale": False}, [(3, 4), (5, 4)], (3, 4), (0, 0))


def test_kernels_draw_with_keras_fans():
    # Keras' EinsumDense gives glorot_uniform the contracted axes as fan_in and the projected
    # ones as fan_out: query (8, 4, 16) draws within sqrt(6 / (8 + 64)), the output kernel
    # (4, 16, 8) too. The biases start at zero.
    torch.manual_seed(0)
    module = spec({"type": "MultiHeadAttention", "num_heads": 4, "key_dim": 16}).build([(9, 8)])
    limit = math.sqrt(6 / (8 + 64))
    for name in ("query", "key", "value", "attention_output"):
        kernel = module.get_parameter(f"{name}.kernel")
        assert kernel.abs().max() <= limit and kernel.abs().max() > 0.95 * limit, name
        assert not module.get_parameter(f"{name}.bias").any(), name
    # AdditiveAttention's scale: glorot_uniform over (dim,): fans dim and dim.
    scale = spec({"type": "AdditiveAttention"}).build([(3, 50), (4, 50)]).scale
    assert scale.abs().max() <= math.sqrt(6 / 100) and scale.abs().max() > 0.9 * math.sqrt(0.06)


# ---- mistakes


def test_shape_mistakes_name_the_shapes():
    with pytest.raises(ShapeError, match=r"query expects a sequence \(steps, features\)"):
        spec(MHA).output_shape([(4, 4, 3)])  # an image: attention over 2 axes is not here
    with pytest.raises(ShapeError, match="value and key need the same number of steps"):
        spec(MHA).output_shape([(3, 4), (5, 4), (6, 4)])
    with pytest.raises(ShapeError, match="needs a known feature axis"):
        spec(MHA).output_shape([(3, None)])
    with pytest.raises(ShapeError, match="takes .* or \\[query, value, key\\], got 4 inputs"):
        spec(MHA).output_shape([(3, 4)] * 4)
    with pytest.raises(ShapeError, match="query and key need the same features"):
        spec({"type": "Attention"}).output_shape([(3, 4), (5, 6)])
    with pytest.raises(ShapeError, match="takes \\[query, value\\]"):
        spec({"type": "AdditiveAttention"}).output_shape([(3, 4)])


def test_arguments_keras_does_not_have_here_are_refused():
    with pytest.raises(ValueError, match="attention_axes \\[1, 2\\] is not supported"):
        spec({**MHA, "attention_axes": [1, 2]})
    for axes in (None, 1, -2, [1], [-2]):  # the sequence axis, as Keras counts it
        spec({**MHA, "attention_axes": axes})
    with pytest.raises(ValueError, match="Keras applies it to each of the four projections"):
        spec({**MHA, "activity_regularizer": "l2"})
    with pytest.raises(ValueError):
        spec({**MHA, "output_shape": 0})
    with pytest.raises(ValueError, match="Input should be 'dot' or 'concat'"):
        spec({"type": "Attention", "score_mode": "add"})


RECIPE = """
seed: 1
data:
  source: synthetic:sequences
  params: {{n_samples: 96, length: 6, n_features: 4, n_classes: 3}}
  validation_split: 0.25
model:
  input_shape: [6, 4]
  layers:
{layers}
    - {{type: GlobalAveragePooling1D}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
fit: {{epochs: 1, batch_size: 16}}
"""

LAYERS = """\
    - {name: self, type: MultiHeadAttention, num_heads: 2, key_dim: 3, use_causal_mask: true}
    - {name: cross, type: MultiHeadAttention, num_heads: 2, key_dim: 2, value_dim: 3,
       output_shape: 5, inputs: [self, input]}
    - {name: dot, type: Attention, use_scale: true, inputs: [cross, cross]}
    - {name: concat, type: Attention, score_mode: concat, inputs: [dot, cross, dot]}
    - {name: additive, type: AdditiveAttention, use_causal_mask: true, inputs: [concat, dot]}
"""


def test_located_errors_through_the_cli(tmp_path):
    bad = LAYERS.replace("key_dim: 3,", "key_dim: 3, attention_axes: [1, 2],")
    path = tmp_path / "bad.yaml"
    path.write_text(RECIPE.format(layers=bad))
    result = cli("validate", path)
    assert result.exit_code == 2, result.output
    assert "bad.yaml:" in result.output and "model.layers[0].attention_axes" in result.output
    assert "not supported" in result.output
    four = LAYERS.replace("inputs: [self, input]", "inputs: [self, input, input, input]")
    path.write_text(RECIPE.format(layers=four))
    result = cli("validate", path)
    assert result.exit_code == 2, result.output
    assert "model.layers[1].inputs" in result.output
    assert "MultiHeadAttention takes 1-3 input(s), got 4" in result.output


# ---- training and export


def test_dropout_on_the_probabilities_in_training_only():
    layer = spec({**MHA, "dropout": 0.5})
    module = layer.build([(6, 4)])
    x = torch.randn(3, 6, 4)
    module.eval()
    torch.testing.assert_close(module(x), module(x))  # inference: no dropout
    plain = spec(MHA).build([(6, 4)])
    plain.load_state_dict(module.state_dict())
    torch.testing.assert_close(module(x), plain.eval()(x))
    module.train()
    assert not torch.allclose(module(x), plain(x))
    attention = spec({"type": "Attention", "dropout": 0.5}).build([(6, 4), (6, 4)])
    attention.eval()
    plain = spec({"type": "Attention"}).build([(6, 4), (6, 4)])
    torch.testing.assert_close(attention(x, x), plain(x, x))
    attention.train()
    assert not torch.allclose(attention(x, x), attention.eval()(x, x))


def test_regularizers_reach_every_projection(tmp_path):
    from kcli.recipe.load import load_recipe

    layers = (
        "    - {type: MultiHeadAttention, num_heads: 2, key_dim: 3,\n"
        "       kernel_regularizer: {l2: 0.5}, bias_regularizer: {l1: 0.25}}\n"
    )
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(layers=layers))
    model = load_recipe(path).build_model().model
    mha = model.layer("multi_head_attention")
    with torch.no_grad():
        for param in mha.parameters():
            param.fill_(1.0)
    # Each of the 4 projections: kernel 0.5 * sum(1) and bias 0.25 * sum(1), plus the Dense.
    kernels = 4 * 2 * 3 + 4 * 2 * 3 + 4 * 2 * 3 + 2 * 3 * 4  # 96 weights of 1
    biases = 3 * 2 * 3 + 4  # 22 weights of 1
    assert model.weight_penalty().item() == pytest.approx(0.5 * kernels + 0.25 * biases)


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    """Every attention form (self and cross MultiHeadAttention, causal, value_dim, output_shape,
    dot and concat Attention, AdditiveAttention), trained by `kcli train`: (run folder, runs)."""
    folder = tmp_path_factory.mktemp("attention")
    path = folder / "attention.yaml"
    path.write_text("name: attention\n" + RECIPE.format(layers=LAYERS))
    runs = folder / "runs"
    result = cli("train", path, "--runs-dir", runs, "--json", "-q")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_dir"], runs


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_trained_attention_model_exports(fmt, attention_run, tmp_path):
    run_dir, runs = attention_run
    out = tmp_path / f"model.{fmt}"
    result = cli("export", run_dir, "-f", fmt, "-o", out, "--runs-dir", runs, "--json")
    assert result.exit_code == 0, result.output  # the artifact was run and checked, then written
    document = json.loads(result.stdout)
    assert document["max_abs_diff"] <= document["tolerance"] == 1e-5
    assert out.is_file()
