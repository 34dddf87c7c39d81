"""The planned graph (names, wiring, order, outputs, output links) and the GraphModel built from it.

Plans are made from `ModelSpec`s directly (no files); penalties are checked against Keras'
formulas (`l1*sum|w| + l2*sum(w^2)`, activity penalty divided by the batch size) evaluated by hand
on weights the test sets itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kcli.cli import app
from kcli.errors import KcliError
from kcli.model.graph import assign_names, plan_graph
from kcli.model.layers import layer_registry
from kcli.model.spec import ModelSpec


def model(layers: list[dict], **fields) -> ModelSpec:
    if "inputs" not in fields:
        fields.setdefault("input_shape", [4])
    return ModelSpec.model_validate({"layers": layers, **fields})


def plan_problems(spec: ModelSpec) -> list:
    with pytest.raises(KcliError) as caught:
        plan_graph(spec)
    return caught.value.problems


def layer(spec: dict):
    return layer_registry.get(spec["type"]).model_validate(spec)


# ---- names ----------------------------------------------------------------------------------


def test_auto_names_are_keras_style() -> None:
    layers = [
        layer({"type": t, **extra})
        for t, extra in [
            ("Dense", {"units": 2}),
            ("Dense", {"units": 2}),
            ("Conv2D", {"filters": 1, "kernel_size": 1}),
            ("Conv2DTranspose", {"filters": 1, "kernel_size": 1}),
            ("SimpleRNN", {"units": 1}),
            ("LSTM", {"units": 1}),
            ("BatchNormalization", {}),
            ("GlobalAveragePooling2D", {}),
            ("ReLU", {}),
            ("PReLU", {}),
            ("Dense", {"units": 2}),
        ]
    ]
    # Keras' to_snake_case: ReLU -> re_lu, PReLU -> p_re_lu (as Keras names them).
    assert assign_names(layers, set()) == [
        "dense",
        "dense_1",
        "conv2d",
        "conv2d_transpose",
        "simple_rnn",
        "lstm",
        "batch_normalization",
        "global_average_pooling2d",
        "re_lu",
        "p_re_lu",
        "dense_2",
    ]


def test_auto_names_skip_explicit_names_and_inputs() -> None:
    layers = [
        layer({"type": "Dense", "units": 2}),
        layer({"type": "Dense", "units": 2, "name": "dense_1"}),
        layer({"type": "Dense", "units": 2}),
        layer({"type": "Dense", "units": 2, "name": "dense"}),
    ]
    # `dense` and `dense_1` are taken by the explicit names, wherever they appear.
    assert assign_names(layers, set()) == ["dense_2", "dense_1", "dense_3", "dense"]
    # A model input called `dense` is taken too.
    assert assign_names(layers[:1], {"dense"}) == ["dense_1"]


def test_duplicate_and_reserved_names_are_errors() -> None:
    problems = plan_problems(
        model(
            [
                {"type": "Dense", "units": 2, "name": "a"},
                {"type": "Dense", "units": 2, "name": "a"},
                {"type": "Dense", "units": 2, "name": "forward"},
            ]
        )
    )
    by_loc = {p.loc: p.message for p in problems}
    assert "already used by layer 0" in by_loc[("model", "layers", 1, "name")]
    assert "reserved" in by_loc[("model", "layers", 2, "name")]


def test_layer_named_like_an_input_is_an_error() -> None:
    problems = plan_problems(
        model([{"type": "Dense", "units": 2, "name": "x", "inputs": "x"}], inputs={"x": [3]})
    )
    assert any("already a model input" in p.message for p in problems)


# ---- wiring, order, outputs ------------------------------------------------------------------


def test_unnamed_layers_are_fed_by_the_previous_layer() -> None:
    plan = plan_graph(
        model(
            [
                {"type": "Dense", "units": 8, "name": "side", "inputs": "meta"},
                {"type": "Dense", "units": 4},  # fed by `side`, the layer before
                {"type": "Dense", "units": 3, "inputs": "pixels"},
                {"type": "Concatenate", "inputs": ["dense", "dense_1"]},
            ],
            inputs={"meta": [5], "pixels": [6]},
        )
    )
    wiring = {node.name: node.inputs for node in plan.nodes}
    assert wiring == {
        "side": ("meta",),
        "dense": ("side",),
        "dense_1": ("pixels",),
        "concatenate": ("dense", "dense_1"),
    }
    assert plan.outputs == ("concatenate",)  # the last layer
    assert plan.output_shapes == [(4 + 3,)]
    assert not plan.sequential


def test_sequential_model_wires_first_layer_to_its_input() -> None:
    plan = plan_graph(model([{"type": "Dense", "units": 3}, {"type": "Dense", "units": 2}]))
    assert plan.sequential
    assert plan.inputs == {"input": (4,)}
    assert [node.inputs for node in plan.nodes] == [("input",), ("dense",)]
    assert [node.shape for node in plan.nodes] == [(3,), (2,)]


def test_layers_listed_before_their_inputs_run_after_them() -> None:
    plan = plan_graph(
        model(
            [
                {"type": "Add", "name": "out", "inputs": ["a", "b"]},
                {"type": "Dense", "units": 3, "name": "a", "inputs": "x"},
                {"type": "Dense", "units": 3, "name": "b", "inputs": "a"},
            ],
            inputs={"x": [2]},
            outputs="out",
        )
    )
    assert [node.name for node in plan.nodes] == ["a", "b", "out"]


def test_multi_input_model_needs_named_inputs_on_its_first_layer() -> None:
    problems = plan_problems(model([{"type": "Dense", "units": 2}], inputs={"a": [2], "b": [2]}))
    assert problems[0].loc == ("model", "layers", 0)
    assert "must name its inputs" in problems[0].message


def test_merge_layer_needs_two_inputs() -> None:
    problems = plan_problems(model([{"type": "Add", "inputs": ["input"]}]))
    assert problems[0].loc == ("model", "layers", 0, "inputs")
    assert "Add takes at least 2 input(s), got 1" in problems[0].message


def test_multiple_outputs(tmp_path: Path) -> None:
    import torch

    from kcli.model.nn.model import build_model

    plan = plan_graph(
        model(
            [
                {"type": "Dense", "units": 8, "name": "trunk", "inputs": "x"},
                {"type": "Dense", "units": 3, "name": "label", "activation": "softmax"},
                {"type": "Dense", "units": 1, "name": "score", "inputs": "trunk"},
            ],
            inputs={"x": [5]},
            outputs=["label", "score"],
        )
    )
    assert plan.outputs == ("label", "score")
    assert plan.output_shapes == [(3,), (1,)]
    torch.manual_seed(0)
    net = build_model(plan)
    label, score = net(torch.randn(6, 5))
    assert label.shape == (6, 3) and score.shape == (6, 1)
    torch.testing.assert_close(label.sum(dim=1), torch.ones(6))  # a softmax output


@pytest.mark.parametrize(
    ("outputs", "keras_order"),
    [
        # Read off Keras 3 (keras.Model([a, b], outputs).layers) for the same graph. Depths
        # (longest path to an output): a 5; d1, b 4; d2, e1 3; skip 2; cat 1; o1, o2 0. Ties go
        # to the layer a depth-first walk from the outputs (inputs in order) reaches first, so
        # the order of the outputs decides o1/o2 and nothing else.
        (["o1", "o2"], ["a", "d1", "b", "d2", "e1", "skip", "cat", "o1", "o2"]),
        (["o2", "o1"], ["a", "d1", "b", "d2", "e1", "skip", "cat", "o2", "o1"]),
    ],
)
def test_summary_lists_layers_in_keras_order(outputs: list[str], keras_order: list[str]) -> None:
    from kcli.model.summary import keras_layer_order

    spec = model(
        [
            # Listed in an order of their own: the summary must not follow it.
            {"type": "Dense", "units": 4, "name": "e1", "inputs": "b"},
            {"type": "Dense", "units": 3, "name": "o2", "inputs": "d1"},
            {"type": "Dense", "units": 4, "name": "d1", "inputs": "a"},
            {"type": "Dense", "units": 4, "name": "d2", "inputs": "d1"},
            {"type": "Add", "name": "skip", "inputs": ["d2", "a"]},
            {"type": "Concatenate", "name": "cat", "inputs": ["e1", "skip"]},
            {"type": "Dense", "units": 2, "name": "o1", "inputs": "cat"},
        ],
        inputs={"a": [4], "b": [4]},
        outputs=outputs,
    )
    assert keras_layer_order(plan_graph(spec)) == keras_order


def test_an_empty_inputs_list_is_an_error() -> None:
    # Found by tests/test_fuzz.py: `inputs: []` reached the shape rule and crashed there.
    problems = plan_problems(
        model([{"type": "Dense", "units": 2, "inputs": []}, {"type": "Dense", "units": 1}])
    )
    message = "inputs is an empty list: name the layer(s) or input(s) feeding it"
    assert [(p.loc, p.message) for p in problems][:1] == [(("model", "layers", 0), message)]


def test_unknown_output_name() -> None:
    problems = plan_problems(
        model([{"type": "Dense", "units": 2, "name": "head"}], outputs=["heda"])
    )
    assert problems[0].loc == ("model", "outputs", 0)
    assert "'heda' is not a layer (did you mean 'head'?)" in problems[0].message


def test_unreachable_layer_is_an_error() -> None:
    problems = plan_problems(
        model(
            [
                {"type": "Dense", "units": 8, "name": "trunk", "inputs": "x"},
                {"type": "Dense", "units": 3, "name": "orphan", "inputs": "x"},
                {"type": "Dense", "units": 1, "name": "head", "inputs": "trunk"},
            ],
            inputs={"x": [5]},
        )
    )
    assert [p.loc for p in problems] == [("model", "layers", 1)]
    assert "'orphan' does not feed any model output (head)" in problems[0].message


def test_cycle_is_reported_at_its_first_layer() -> None:
    problems = plan_problems(
        model(
            [
                {"type": "Dense", "units": 2, "name": "head", "inputs": "x"},
                {"type": "Dense", "units": 2, "name": "p", "inputs": "q"},
                {"type": "Dense", "units": 2, "name": "q", "inputs": "p"},
            ],
            inputs={"x": [2]},
            outputs=["head", "q"],
        )
    )
    (problem,) = problems
    assert problem.loc == ("model", "layers", 1)
    assert "cycle" in problem.message and "p" in problem.message and "q" in problem.message


# ---- output links (which crossentropy can fold the output's activation in) -------------------


@pytest.mark.parametrize(
    ("layers", "input_shape", "link"),
    [
        ([{"type": "Dense", "units": 3, "activation": "softmax"}], [4], "softmax"),
        ([{"type": "Dense", "units": 1, "activation": "sigmoid"}], [4], "sigmoid"),
        ([{"type": "Dense", "units": 3, "activation": "relu"}], [4], None),
        ([{"type": "Dense", "units": 3}], [4], None),
        ([{"type": "Dense", "units": 3}, {"type": "Softmax"}], [4], "softmax"),
        (
            [{"type": "Dense", "units": 3}, {"type": "Activation", "activation": "softmax"}],
            [4],
            "softmax",
        ),
        (
            [{"type": "Dense", "units": 3}, {"type": "Activation", "activation": "sigmoid"}],
            [4],
            "sigmoid",
        ),
        # per-sample (4, 3): axis 2 (batch = 0) and -1 are the last axis, axis 1 is not
        ([{"type": "Softmax", "axis": 2}], [4, 3], "softmax"),
        ([{"type": "Softmax", "axis": -1}], [4, 3], "softmax"),
        ([{"type": "Softmax", "axis": 1}], [4, 3], None),
        (
            [{"type": "Dense", "units": 3, "activation": {"type": "softmax", "axis": 1}}],
            [4, 2],
            None,
        ),
    ],
)
def test_output_link(layers: list[dict], input_shape: list[int], link: str | None) -> None:
    plan = plan_graph(model(layers, input_shape=input_shape))
    assert plan.output_link(plan.outputs[0]) == link


# ---- GraphModel: forward_train and penalties -------------------------------------------------


def _build(spec: ModelSpec, seed: int = 0):
    import torch

    from kcli.model.nn.model import build_model

    torch.manual_seed(seed)
    return build_model(plan_graph(spec))


def test_state_dict_keys_are_layer_and_keras_weight_names() -> None:
    net = _build(model([{"type": "Dense", "units": 3}, {"type": "BatchNormalization"}]))
    keys = set(net.state_dict())
    assert {"dense.kernel", "dense.bias"} <= keys
    assert all(key.startswith(("dense.", "batch_normalization.")) for key in keys)


def test_forward_train_returns_pre_activations() -> None:
    import torch

    net = _build(
        model(
            [
                {"type": "Dense", "units": 4, "activation": "relu"},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        )
    )
    x = torch.randn(5, 4)
    outputs, pres, activity = net.forward_train(x)
    first, head = net.layer("dense"), net.layer("dense_1")
    # By hand: logits = relu(x K1^T + b1) K2^T + b2 (kernels in torch's (out, in) layout).
    hidden = torch.relu(x @ first.kernel.T + first.bias)
    logits = hidden @ head.kernel.T + head.bias
    torch.testing.assert_close(pres[0], logits)
    torch.testing.assert_close(outputs[0], torch.softmax(logits, dim=-1))
    torch.testing.assert_close(net(x), outputs[0])
    assert activity is None
    assert net.weight_penalty() is None and not net.has_weight_penalty


def test_forward_train_pre_activation_of_linear_output_is_the_output() -> None:
    import torch

    net = _build(model([{"type": "Dense", "units": 2}]))
    outputs, pres, _ = net.forward_train(torch.randn(3, 4))
    assert pres[0] is outputs[0]


def test_weight_penalty_is_keras_formula() -> None:
    import torch

    net = _build(
        model(
            [
                {
                    "type": "Dense",
                    "units": 2,
                    "kernel_regularizer": {"l1": 0.01, "l2": 0.001},
                    "bias_regularizer": {"l2": 0.1},
                },
                {"type": "Dense", "units": 1, "kernel_regularizer": "l2"},  # Keras' default 0.01
            ],
            input_shape=[3],
        )
    )
    with torch.no_grad():
        net.layer("dense").kernel.copy_(torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]))
        net.layer("dense").bias.copy_(torch.tensor([0.5, -1.5]))
        net.layer("dense_1").kernel.copy_(torch.tensor([[2.0, -1.0]]))
    # kernel: 0.01*(1+2+3+4+5+6) + 0.001*(1+4+9+16+25+36) = 0.21 + 0.091
    # bias:   0.1*(0.25 + 2.25) = 0.25
    # dense_1 kernel, `l2` = l2 0.01: 0.01*(4 + 1) = 0.05   (dense_1's bias is not regularized)
    expected = 0.21 + 0.091 + 0.25 + 0.05
    assert net.has_weight_penalty
    assert net.weight_penalty().item() == pytest.approx(expected, rel=1e-6)


def test_weight_penalty_of_wrapped_and_embedding_layers() -> None:
    import torch

    net = _build(
        model(
            [
                {
                    "type": "Embedding",
                    "input_dim": 7,
                    "output_dim": 3,
                    "embeddings_regularizer": {"l2": 0.5},
                },
                {
                    "type": "Bidirectional",
                    "layer": {"type": "LSTM", "units": 2, "kernel_regularizer": {"l1": 0.25}},
                },
            ],
            input_shape=[5],
        )
    )
    table = net.layer("embedding").embeddings
    both = net.layer("bidirectional")
    forward_kernel = both.forward_layer.kernel
    backward_kernel = both.backward_layer.kernel
    # Both directions carry the wrapped layer's regularizer (Keras regularizes both copies).
    expected = (
        0.5 * table.square().sum()
        + 0.25 * forward_kernel.abs().sum()
        + 0.25 * backward_kernel.abs().sum()
    )
    torch.testing.assert_close(net.weight_penalty(), expected)
    net.weight_penalty().backward()  # a training loss can differentiate it
    assert forward_kernel.grad is not None and table.grad is not None


def test_activity_penalty_is_divided_by_batch_size() -> None:
    import torch

    net = _build(
        model(
            [
                {
                    "type": "Dense",
                    "units": 1,
                    "activation": "relu",
                    "activity_regularizer": {"l1": 0.25, "l2": 0.5},
                },
            ],
            input_shape=[2],
        )
    )
    with torch.no_grad():
        net.layer("dense").kernel.copy_(torch.tensor([[1.0, -1.0]]))
        net.layer("dense").bias.zero_()
    x = torch.tensor([[3.0, 1.0], [1.0, 3.0], [2.0, 0.0]])
    _, _, activity = net.forward_train(x)
    # The penalty is on the activated output: relu([2, -2, 2]) = [2, 0, 2].
    # l1: 0.25*(2+0+2) = 1; l2: 0.5*(4+0+4) = 4; divided by the batch of 3: 5/3
    assert activity.item() == pytest.approx(5 / 3, rel=1e-6)
    _, _, activity_half = net.forward_train(x[:1])  # batch of 1: [2] -> 0.25*2 + 0.5*4 = 2.5
    assert activity_half.item() == pytest.approx(2.5, rel=1e-6)


# ---- trainable: false -----------------------------------------------------------------------


def test_frozen_layers_count_as_non_trainable(tmp_path: Path) -> None:
    recipe = tmp_path / "frozen.yaml"
    recipe.write_text(
        """\
data: {source: synthetic:classification}
compile: {loss: mse}
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4, trainable: false}
    - {type: BatchNormalization, trainable: false}
    - {type: BatchNormalization}
    - {type: Dense, units: 2}
"""
    )
    result = CliRunner().invoke(app, ["summarize", "--json", str(recipe)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    frozen_dense = 8 * 4 + 4  # 36, all frozen
    frozen_norm = 4 * 4  # 16: gamma, beta and the statistics, all frozen
    norm_trainable, norm_statistics = 2 * 4, 2 * 4  # gamma, beta | moving mean, variance
    head = 4 * 2 + 2  # 10
    assert document["trainable_params"] == norm_trainable + head
    assert document["non_trainable_params"] == frozen_dense + frozen_norm + norm_statistics
    assert document["total_params"] == 36 + 16 + 16 + 10

    from kcli.recipe.load import load_recipe

    net = load_recipe(recipe).build_model().model
    assert not any(p.requires_grad for p in net.layer("dense").parameters())
    assert all(p.requires_grad for p in net.layer("dense_1").parameters())


def test_frozen_batchnorm_runs_in_inference_mode_while_training() -> None:
    """Keras: `trainable: false` on BatchNormalization also freezes its moving statistics."""
    import torch

    net = _build(model([{"type": "BatchNormalization", "trainable": False}], input_shape=[3]))
    norm = net.layer("batch_normalization")
    before = {key: value.clone() for key, value in norm.state_dict().items()}
    net.train()
    x = torch.tensor([[1.0, 2.0, 3.0], [5.0, -2.0, 0.0]])
    # Fresh statistics (mean 0, variance 1), gamma 1, beta 0: y = x / sqrt(1 + epsilon 1e-3)
    torch.testing.assert_close(net(x), x / (1 + 1e-3) ** 0.5)
    for key, value in norm.state_dict().items():
        torch.testing.assert_close(value, before[key])
