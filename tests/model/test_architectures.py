"""A dozen architectures end to end: recipe -> `kcli summarize` and a forward pass.

Every expected figure is worked out here from Keras' parameter formulas (KERAS_FACTS.md) and
Keras' shape rules, written as the arithmetic itself; none is read back from kcli's output.
Each architecture is checked twice: through `kcli summarize --json` (per-layer output shape and
params, totals split into trainable / non-trainable) and by running the built model on a random
batch, whose output must have the shape the plan inferred.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kcli.cli import app

runner = CliRunner()

# Data and compile are needed for a valid recipe; summarize never loads the data.
HEAD = """\
data:
  source: synthetic:classification
compile:
  loss: mse
"""


@dataclass
class Arch:
    """A model section, and what Keras says about it."""

    model: str  # the `model:` section, YAML text
    # (name, type, output shape batch excluded, params) per layer, InputLayer rows included
    rows: list[tuple[str, str, list[int], int]]
    non_trainable: int = 0
    inputs: dict[str, list[int]] = field(default_factory=dict)  # model input -> shape
    vocabulary: int | None = None  # inputs are integer ids below this (Embedding)
    wiring: dict[str, list[str]] = field(default_factory=dict)  # layer -> its inputs

    @property
    def sequential(self) -> bool:
        return not any(kind == "InputLayer" for _, kind, _, _ in self.rows)

    @property
    def total(self) -> int:
        return sum(params for *_, params in self.rows)

    @property
    def output_shape(self) -> list[int]:
        return self.rows[-1][2]


ARCHITECTURES = {
    "mlp": Arch(
        """
model:
  input_shape: [20]
  layers:
    - {type: Dense, units: 64, activation: relu}
    - {type: Dropout, rate: 0.5}
    - {type: Dense, units: 32, activation: relu}
    - {type: Dense, units: 3, activation: softmax}
""",
        [
            ("dense", "Dense", [64], 20 * 64 + 64),  # i*u + u = 1344
            ("dropout", "Dropout", [64], 0),
            ("dense_1", "Dense", [32], 64 * 32 + 32),  # 2080
            ("dense_2", "Dense", [3], 32 * 3 + 3),  # 99
        ],
        inputs={"input": [20]},
    ),
    "cnn": Arch(
        """
model:
  input_shape: [12, 12, 1]
  layers:
    - {type: Conv2D, filters: 8, kernel_size: 3, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Conv2D, filters: 16, kernel_size: 3, activation: relu}
    - {type: Flatten}
    - {type: Dense, units: 10, activation: softmax}
""",
        [
            # valid padding: 12 - 3 + 1 = 10; params k*k*C*F + F = 3*3*1*8 + 8 = 80
            ("conv2d", "Conv2D", [10, 10, 8], 3 * 3 * 1 * 8 + 8),
            ("max_pooling2d", "MaxPooling2D", [5, 5, 8], 0),  # 10 // 2
            ("conv2d_1", "Conv2D", [3, 3, 16], 3 * 3 * 8 * 16 + 16),  # 5 - 3 + 1; 1168
            ("flatten", "Flatten", [3 * 3 * 16], 0),
            ("dense", "Dense", [10], 144 * 10 + 10),  # 1450
        ],
        inputs={"input": [12, 12, 1]},
    ),
    "batchnorm": Arch(
        """
model:
  input_shape: [6, 6, 3]
  layers:
    - {type: Conv2D, filters: 4, kernel_size: 3, padding: same}
    - {type: BatchNormalization}
    - {type: Activation, activation: relu}
    - {type: GlobalAveragePooling2D}
    - {type: Dense, units: 2, activation: softmax}
""",
        [
            ("conv2d", "Conv2D", [6, 6, 4], 3 * 3 * 3 * 4 + 4),  # same padding keeps 6x6; 112
            # gamma, beta, moving mean, moving variance over the 4 channels (last axis)
            ("batch_normalization", "BatchNormalization", [6, 6, 4], 4 * 4),
            ("activation", "Activation", [6, 6, 4], 0),
            ("global_average_pooling2d", "GlobalAveragePooling2D", [4], 0),
            ("dense", "Dense", [2], 4 * 2 + 2),
        ],
        non_trainable=2 * 4,  # moving mean + moving variance
        inputs={"input": [6, 6, 3]},
    ),
    "lstm": Arch(
        """
model:
  input_shape: [7, 5]
  layers:
    - {type: LSTM, units: 8, return_sequences: true}
    - {type: Dense, units: 3}
    - {type: LSTM, units: 4}
""",
        [
            ("lstm", "LSTM", [7, 8], 4 * (8 * (5 + 8) + 8)),  # 4*(u*(i+u) + u) = 448
            ("dense", "Dense", [7, 3], 8 * 3 + 3),  # on the last axis, not flattened: 27
            ("lstm_1", "LSTM", [4], 4 * (4 * (3 + 4) + 4)),  # 128
        ],
        inputs={"input": [7, 5]},
    ),
    "gru": Arch(
        """
model:
  input_shape: [6, 3]
  layers:
    - {type: GRU, units: 5}
    - {type: Dense, units: 2}
""",
        [
            ("gru", "GRU", [5], 3 * (5 * (3 + 5) + 2 * 5)),  # reset_after: 3*(u*(i+u) + 2u) = 150
            ("dense", "Dense", [2], 5 * 2 + 2),
        ],
        inputs={"input": [6, 3]},
    ),
    "bidirectional": Arch(
        """
model:
  input_shape: [5, 4]
  layers:
    - {type: Bidirectional, layer: {type: LSTM, units: 6, return_sequences: true}}
    - type: Bidirectional
      layer: {type: GRU, units: 3}
      merge_mode: sum
""",
        [
            # concat doubles the features: 2*6; params twice the LSTM's 4*(6*(4+6)+6) = 528
            ("bidirectional", "Bidirectional", [5, 2 * 6], 2 * 4 * (6 * (4 + 6) + 6)),
            # sum keeps 3; twice the GRU's 3*(3*(12+3) + 2*3) = 306
            ("bidirectional_1", "Bidirectional", [3], 2 * 3 * (3 * (12 + 3) + 2 * 3)),
        ],
        inputs={"input": [5, 4]},
    ),
    "embedding": Arch(
        """
model:
  input_shape: [10]
  layers:
    - {type: Embedding, input_dim: 50, output_dim: 8}
    - {type: GlobalAveragePooling1D}
    - {type: Dense, units: 1, activation: sigmoid}
""",
        [
            ("embedding", "Embedding", [10, 8], 50 * 8),  # input_dim*output_dim = 400
            ("global_average_pooling1d", "GlobalAveragePooling1D", [8], 0),
            ("dense", "Dense", [1], 8 * 1 + 1),
        ],
        inputs={"input": [10]},
        vocabulary=50,
    ),
    "separable": Arch(
        """
model:
  input_shape: [9, 9, 3]
  layers:
    - {type: SeparableConv2D, filters: 8, kernel_size: 3}
    - {type: SeparableConv2D, filters: 4, kernel_size: 3, strides: 2, padding: same}
""",
        [
            # depthwise k*k*C (no bias) + pointwise C*F + F = 27 + 24 + 8 = 59; 9 - 3 + 1 = 7
            ("separable_conv2d", "SeparableConv2D", [7, 7, 8], 3 * 3 * 3 + 3 * 8 + 8),
            # same, stride 2: ceil(7 / 2) = 4; 72 + 32 + 4 = 108
            ("separable_conv2d_1", "SeparableConv2D", [4, 4, 4], 3 * 3 * 8 + 8 * 4 + 4),
        ],
        inputs={"input": [9, 9, 3]},
    ),
    "transpose": Arch(
        """
model:
  input_shape: [4, 4, 8]
  layers:
    - {type: Conv2DTranspose, filters: 3, kernel_size: 3, strides: 2}
    - {type: Conv2DTranspose, filters: 2, kernel_size: 3, strides: 2, padding: same}
""",
        [
            # valid: (4 - 1)*2 + 3 = 9; params k*k*F*C + F = 3*3*3*8 + 3 = 219
            ("conv2d_transpose", "Conv2DTranspose", [9, 9, 3], 3 * 3 * 3 * 8 + 3),
            # same: 9*2 = 18; 3*3*2*3 + 2 = 56
            ("conv2d_transpose_1", "Conv2DTranspose", [18, 18, 2], 3 * 3 * 2 * 3 + 2),
        ],
        inputs={"input": [4, 4, 8]},
    ),
    "conv1d_same_strided": Arch(
        """
model:
  input_shape: [11, 3]
  layers:
    - {type: Conv1D, filters: 4, kernel_size: 3, strides: 2, padding: same}
    - {type: Conv1D, filters: 2, kernel_size: 3}
    - {type: Flatten}
    - {type: Dense, units: 1}
""",
        [
            ("conv1d", "Conv1D", [6, 4], 3 * 3 * 4 + 4),  # same: ceil(11 / 2) = 6; k*C*F + F = 40
            ("conv1d_1", "Conv1D", [4, 2], 3 * 4 * 2 + 2),  # valid: 6 - 3 + 1 = 4; 26
            ("flatten", "Flatten", [4 * 2], 0),
            ("dense", "Dense", [1], 8 * 1 + 1),
        ],
        inputs={"input": [11, 3]},
    ),
    "residual_add": Arch(
        """
model:
  inputs: {x: [16]}
  layers:
    - {type: Dense, units: 16, activation: relu, inputs: x}
    - {type: Dense, units: 16}
    - {type: Add, inputs: [x, dense_1]}
    - {type: Dense, units: 4}
""",
        [
            ("x", "InputLayer", [16], 0),
            ("dense", "Dense", [16], 16 * 16 + 16),  # 272
            ("dense_1", "Dense", [16], 16 * 16 + 16),
            ("add", "Add", [16], 0),
            ("dense_2", "Dense", [4], 16 * 4 + 4),  # 68
        ],
        inputs={"x": [16]},
        wiring={"dense": ["x"], "dense_1": ["dense"], "add": ["x", "dense_1"], "dense_2": ["add"]},
    ),
    "two_input_concat": Arch(
        """
model:
  inputs: {pixels: [8, 8, 1], meta: [3]}
  layers:
    - {name: conv, type: Conv2D, filters: 4, kernel_size: 3, activation: relu, inputs: pixels}
    - {name: flat, type: Flatten}
    - {name: side, type: Dense, units: 8, activation: relu, inputs: meta}
    - {name: both, type: Concatenate, inputs: [flat, side]}
    - {name: out, type: Dense, units: 10, activation: softmax}
""",
        [
            # Keras' order (its model.layers for the same graph): by longest path to the
            # output, deepest first (pixels 4; conv and meta 3; flat and side 2), ties in the
            # order a depth-first walk from the output first reaches them (conv before meta).
            ("pixels", "InputLayer", [8, 8, 1], 0),
            ("conv", "Conv2D", [6, 6, 4], 3 * 3 * 1 * 4 + 4),  # 40
            ("meta", "InputLayer", [3], 0),
            ("flat", "Flatten", [6 * 6 * 4], 0),  # 144
            ("side", "Dense", [8], 3 * 8 + 8),  # 32
            ("both", "Concatenate", [144 + 8], 0),
            ("out", "Dense", [10], 152 * 10 + 10),  # 1530
        ],
        inputs={"pixels": [8, 8, 1], "meta": [3]},
        wiring={"flat": ["conv"], "both": ["flat", "side"], "out": ["both"]},
    ),
}


def write_recipe(folder: Path, model: str, name: str = "arch") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(HEAD + model.lstrip("\n"), encoding="utf-8")
    return path


def summarize_json(path: Path, *overrides: str) -> dict:
    result = runner.invoke(app, ["summarize", "--json", str(path), *overrides])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("arch_id", list(ARCHITECTURES))
def test_summarize_json_matches_keras_counts(arch_id: str, tmp_path: Path) -> None:
    arch = ARCHITECTURES[arch_id]
    document = summarize_json(write_recipe(tmp_path, arch.model))

    got = {
        row["name"]: (row["type"], row["output_shape"], row["params"]) for row in document["layers"]
    }
    want = {name: (kind, shape, params) for name, kind, shape, params in arch.rows}
    assert got == want
    assert document["total_params"] == arch.total
    assert document["trainable_params"] == arch.total - arch.non_trainable
    assert document["non_trainable_params"] == arch.non_trainable

    order = [row["name"] for row in document["layers"]]
    if arch.sequential:
        assert order == [name for name, *_ in arch.rows]
    else:
        # Keras' exact order among independent branches is its own; what must hold is that
        # every layer is listed after the layers and inputs feeding it.
        for row in document["layers"]:
            for source in row["inputs"]:
                assert order.index(source) < order.index(row["name"])
    by_name = {row["name"]: row["inputs"] for row in document["layers"]}
    for layer, sources in arch.wiring.items():
        assert by_name[layer] == sources


def _random_inputs(arch: Arch, batch: int):
    import torch

    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, shape in arch.inputs.items():
        if arch.vocabulary is not None:
            tensors[name] = torch.randint(0, arch.vocabulary, (batch, *shape), generator=generator)
        else:
            tensors[name] = torch.randn(batch, *shape, generator=generator)
    return tensors["input"] if list(tensors) == ["input"] else tensors


@pytest.mark.parametrize("arch_id", list(ARCHITECTURES))
def test_forward_pass_gives_inferred_shape(arch_id: str, tmp_path: Path) -> None:
    import torch

    from kcli.model.nn.counting import count_weights
    from kcli.recipe.load import load_recipe

    arch = ARCHITECTURES[arch_id]
    built = load_recipe(write_recipe(tmp_path, arch.model)).build_model()
    assert built.plan.output_shapes == [tuple(arch.output_shape)]

    batch = 3
    built.model.eval()
    with torch.no_grad():
        out = built.model(_random_inputs(arch, batch))
    assert tuple(out.shape) == (batch, *arch.output_shape)
    assert torch.isfinite(out).all()
    trainable, frozen = count_weights(built.model)
    assert (trainable, frozen) == (arch.total - arch.non_trainable, arch.non_trainable)


def test_forward_pass_in_training_mode_keeps_shapes(tmp_path: Path) -> None:
    """Dropout and BatchNormalization in training mode change values, never shapes."""
    from kcli.recipe.load import load_recipe

    for arch_id in ("mlp", "batchnorm"):
        arch = ARCHITECTURES[arch_id]
        built = load_recipe(write_recipe(tmp_path, arch.model, arch_id)).build_model()
        built.model.train()
        out = built.model(_random_inputs(arch, 4))
        assert tuple(out.shape) == (4, *arch.output_shape)
        out.sum().backward()  # gradients flow through the whole graph
        assert all(p.grad is not None for p in built.model.parameters() if p.requires_grad)


def test_two_input_model_takes_inputs_by_name_or_position(tmp_path: Path) -> None:
    """A dict of named inputs and a sequence in `inputs:` order give the same result."""
    import torch

    from kcli.recipe.load import load_recipe

    arch = ARCHITECTURES["two_input_concat"]
    built = load_recipe(write_recipe(tmp_path, arch.model)).build_model()
    built.model.eval()
    named = _random_inputs(arch, 2)
    with torch.no_grad():
        by_name = built.model(named)
        by_position = built.model([named["pixels"], named["meta"]])
    torch.testing.assert_close(by_name, by_position)


def test_variable_length_sequences(tmp_path: Path) -> None:
    """`null` dims are unknown until data arrives: shown as None, any length runs."""
    import torch

    from kcli.recipe.load import load_recipe

    model = """
model:
  input_shape: [null, 5]
  layers:
    - {type: LSTM, units: 8, return_sequences: true}
    - {type: Dense, units: 3}
    - {type: GlobalMaxPooling1D}
"""
    path = write_recipe(tmp_path, model, "varlen")
    document = summarize_json(path)
    assert [row["output_shape"] for row in document["layers"]] == [[None, 8], [None, 3], [3]]
    # 4*(8*(5+8) + 8) + (8*3 + 3) = 448 + 27
    assert document["total_params"] == 4 * (8 * (5 + 8) + 8) + (8 * 3 + 3)
    text = runner.invoke(app, ["summarize", str(path)]).stdout
    assert "(None, None, 8)" in text and "(None, None, 3)" in text
    built = load_recipe(path).build_model()
    with torch.no_grad():
        for steps in (2, 9):
            assert built.model(torch.randn(4, steps, 5)).shape == (4, 3)


# ---- the text summary --------------------------------------------------------------------


def _size(n_params: int) -> str:
    """Keras' size: 4 bytes per float32 weight, 1024-based units."""
    n_bytes = n_params * 4
    if n_bytes < 1024:
        return f"{n_bytes:.2f} B"
    return f"{n_bytes / 1024:.2f} KB"


def test_text_summary_of_sequential_model(tmp_path: Path) -> None:
    model = """
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 128, activation: relu}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 10, activation: softmax}
"""
    result = runner.invoke(app, ["summarize", str(write_recipe(tmp_path, model, "digits"))])
    assert result.exit_code == 0, result.output
    text = result.stdout
    # 64*128 + 128 = 8320, 128*10 + 10 = 1290: 9,610 params, 9610*4/1024 = 37.54 KB
    total = 64 * 128 + 128 + 128 * 10 + 10
    assert total == 9610 and _size(total) == "37.54 KB"
    assert text.splitlines()[0] == 'Model: "digits"'
    for header in ("Layer (type)", "Output Shape", "Param #"):
        assert header in text
    assert "Connected to" not in text
    assert "InputLayer" not in text  # a Sequential summary hides the input layer
    assert "dense (Dense)" in text and "dense_1 (Dense)" in text
    assert "(None, 128)" in text and "(None, 10)" in text
    assert "8,320" in text and "1,290" in text
    assert "Total params: 9,610 (37.54 KB)" in text
    assert "Trainable params: 9,610 (37.54 KB)" in text
    assert "Non-trainable params: 0 (0.00 B)" in text


def test_text_summary_of_functional_model(tmp_path: Path) -> None:
    arch = ARCHITECTURES["residual_add"]
    result = runner.invoke(app, ["summarize", str(write_recipe(tmp_path, arch.model, "res"))])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.splitlines()[0] == 'Model: "res"'
    assert "Connected to" in text
    lines = text.splitlines()
    input_row = next(line for line in lines if "x (InputLayer)" in line)
    assert "(None, 16)" in input_row and input_row.rstrip("│ ").endswith("-")
    dense_1_row = next(line for line in lines if "dense_1 (Dense)" in line)
    assert "dense[0][0]" in dense_1_row  # dense_1 is fed by dense
    assert "x[0][0]" in text and "dense_1[0][0]" in text  # the Add's two inputs
    total = 612  # 272 + 272 + 68
    assert arch.total == total
    assert f"Total params: {total:,} ({_size(total)})" in text  # 2448 B = 2.39 KB
    assert f"Trainable params: {total:,} ({_size(total)})" in text


def test_text_summary_counts_batchnorm_statistics_as_non_trainable(tmp_path: Path) -> None:
    arch = ARCHITECTURES["batchnorm"]
    result = runner.invoke(app, ["summarize", str(write_recipe(tmp_path, arch.model))])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "(None, 6, 6, 4)" in text
    total = 112 + 16 + 10
    assert arch.total == total
    assert f"Total params: {total:,} ({_size(total)})" in text  # 552 B
    assert f"Trainable params: {total - 8:,} ({_size(total - 8)})" in text  # 520 B
    assert f"Non-trainable params: 8 ({_size(8)})" in text  # 32.00 B


def test_summarize_override_changes_counts(tmp_path: Path) -> None:
    arch = ARCHITECTURES["mlp"]
    path = write_recipe(tmp_path, arch.model)
    document = summarize_json(path, "model.layers.0.units=48")
    # 20*48 + 48 = 1008, then 48*32 + 32 = 1568, then 99
    assert document["total_params"] == (20 * 48 + 48) + (48 * 32 + 32) + (32 * 3 + 3)
    assert document["layers"][0]["output_shape"] == [48]
