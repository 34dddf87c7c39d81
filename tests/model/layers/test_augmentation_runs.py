"""Runs with preprocessing and augmentation layers: bit-reproducible from the recipe's seed,
resumable to the same weights (the augmentation's draws come from the checkpointed generator),
active in training only, and exportable (ONNX, TorchScript, torch.export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train.conftest import metric_rows, run_cli

AUGMENTED = """\
name: augmented
seed: 5
data:
  source: synthetic:images
  params: {n_samples: 96, height: 8, width: 8, channels: 1, n_classes: 3}
  validation_split: 0.25
model:
  input_shape: [8, 8, 1]
  layers:
    - {type: Rescaling, scale: 2.0, offset: -1.0}
    - {type: RandomFlip, mode: horizontal}
    - {type: RandomRotation, factor: 0.1}
    - {type: RandomZoom, height_factor: 0.2, fill_mode: constant}
    - {type: RandomTranslation, height_factor: 0.1, width_factor: 0.1}
    - {type: RandomContrast, factor: 0.2, value_range: [-1, 1]}
    - {type: RandomBrightness, factor: 0.1, value_range: [-1, 1]}
    - {type: RandomCrop, height: 6, width: 6}
    - {type: Resizing, height: 7, width: 7}
    - {type: CenterCrop, height: 6, width: 6}
    - {type: Conv2D, filters: 4, kernel_size: 3, activation: relu}
    - {type: Flatten}
    - {type: Dense, units: 3, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 4, batch_size: 16}
"""

ENCODED = """\
name: encoded
seed: 6
data:
  source: synthetic:sequences
  params: {n_samples: 96, length: 6, vocab_size: 12, n_classes: 3}
  validation_split: 0.25
model:
  input_shape: [6]
  layers:
    - {name: counts, type: CategoryEncoding, num_tokens: 12, output_mode: count, inputs: input}
    - {name: hashed, type: Hashing, num_bins: 8, output_mode: multi_hot, inputs: input}
    - {name: bins, type: Discretization, bin_boundaries: [3.0, 6.0, 9.0], output_mode: one_hot,
       inputs: input}
    - {name: flat, type: Flatten, inputs: bins}
    - {name: both, type: Concatenate, inputs: [counts, hashed, flat]}
    - {type: Dense, units: 3, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 2, batch_size: 16}
"""


def train(tmp_path: Path, recipe: str, *overrides: str, runs: str = "runs") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    args = ("train", str(path), *overrides, "--runs-dir", str(tmp_path / runs), "--json", "-q")
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def assert_same_run(a: Path, b: Path) -> None:
    assert metric_rows(a) == metric_rows(b)
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_a_run_with_augmentation_is_bit_reproducible_and_resumes_identically(tmp_path):
    full = train(tmp_path, AUGMENTED, runs="a")
    again = train(tmp_path, AUGMENTED, runs="b")
    assert_same_run(full, again)
    short = train(tmp_path, AUGMENTED, "fit.epochs=2", runs="c")
    result = run_cli("train", "--resume", str(short), "fit.epochs=4", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert_same_run(full, short)  # epochs 3-4 drew what the uninterrupted run drew


def test_augmentation_changes_training_but_not_inference(tmp_path):
    augmented = train(tmp_path, AUGMENTED, runs="a")
    # The same run without its random layers trains to other weights: the draws were used.
    plain = AUGMENTED
    for layer in ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation"):
        plain = "\n".join(line for line in plain.splitlines() if layer not in line) + "\n"
    kept = weights(train(tmp_path, plain, runs="b"))
    assert not torch.equal(weights(augmented)["conv2d.kernel"], kept["conv2d.kernel"])
    # Validation and evaluation run in inference, where the random layers are the identity:
    # eval on the validation split gives the last epoch's val_loss exactly, twice.
    last = metric_rows(augmented)
    val_loss = float(last[-1][last[0].index("val_loss")])
    for _ in range(2):
        args = ("eval", str(augmented), "--split", "validation", "--checkpoint", "last", "--json")
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["metrics"]["loss"] == val_loss


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("recipe", [AUGMENTED, ENCODED], ids=["augmented", "encoded"])
def test_runs_with_these_layers_export_to_every_format(recipe, tmp_path):
    run_dir = train(tmp_path, recipe, "fit.epochs=1")
    for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt"), ("torch-export", "pt2")):
        out = tmp_path / f"model.{suffix}"
        result = run_cli("export", str(run_dir), "--format", fmt, "-o", str(out), "--json")
        assert result.exit_code == 0, f"{fmt}: {result.output}"
        document = json.loads(result.stdout)
        assert document["max_abs_diff"] <= document["tolerance"], fmt
        assert out.is_file()
