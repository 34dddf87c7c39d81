"""Tiny trained runs shared by the eval / predict / export / runs tests: each trained once.

`trained(kind)` trains one small recipe of a layer family (2 epochs, a few hundred samples) into
a session-wide temp runs folder and returns its run folder; later calls reuse it.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

COMMON = """
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 2, batch_size: 16}
"""

RECIPES = {
    "mlp": """
seed: 3
data:
  source: synthetic:classification
  params: {n_samples: 200, n_features: 6, n_classes: 3}
  validation_split: 0.2
  test_split: 0.2
  preprocess: [standardize]
model:
  input_shape: [6]
  layers:
    - {type: Dense, units: 16, activation: relu, kernel_regularizer: {l2: 0.001}}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 3, activation: softmax}
""",
    "cnn": """
seed: 4
data:
  source: synthetic:images
  params: {n_samples: 120, height: 8, width: 8, channels: 1, n_classes: 3}
  validation_split: 0.2
  test_split: 0.2
  preprocess: [{scale: 0.5, offset: 0.1}, {reshape: [64]}, minmax, {reshape: [8, 8, 1]}]
model:
  input_shape: [8, 8, 1]
  layers:
    - {type: Conv2D, filters: 4, kernel_size: 3, padding: same, activation: relu}
    - {type: BatchNormalization}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Flatten}
    - {type: Dense, units: 3, activation: softmax}
""",
    "rnn": """
seed: 5
data:
  source: synthetic:sequences
  params: {n_samples: 120, length: 8, n_features: 2, n_classes: 3}
  validation_split: 0.2
  test_split: 0.2
  preprocess: [standardize]
model:
  input_shape: [8, 2]
  layers:
    - {type: Bidirectional, layer: {type: LSTM, units: 4, return_sequences: true}}
    - {type: GRU, units: 4}
    - {type: Dense, units: 3, activation: softmax}
""",
    "embedding": """
seed: 6
data:
  source: synthetic:sequences
  params: {n_samples: 160, length: 6, vocab_size: 20, n_classes: 3}
  validation_split: 0.2
  test_split: 0.2
model:
  input_shape: [6]
  layers:
    - {type: Embedding, input_dim: 20, output_dim: 4}
    - {type: GlobalAveragePooling1D}
    - {type: Dense, units: 3, activation: softmax}
""",
    "graph": """
seed: 7
data:
  source: two.npz
  x: {left: xa, right: xb}
  validation_split: 0.2
  test_split: 0.2
  preprocess: [{standardize: {input: left}}, {scale: 2.0}]
model:
  inputs: {left: [4], right: [3]}
  layers:
    - {name: a, type: Dense, units: 8, activation: relu, inputs: left}
    - {name: b, type: Dense, units: 8, activation: tanh, inputs: right}
    - {name: both, type: Concatenate, inputs: [a, b]}
    - {name: mix, type: Dense, units: 8}
    - {name: skip, type: Add, inputs: [mix, a]}
    - {name: probs, type: Dense, units: 2, activation: softmax}
  outputs: [probs]
""",
    "csv": """
seed: 8
data:
  source: fruit.csv
  target: fruit
  categorical: [color]
  validation_split: 0.2
  test_split: 0.2
  preprocess: [standardize]
model:
  input_shape: [5]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 3, activation: softmax}
""",
    "regression": """
seed: 9
data:
  source: synthetic:regression
  params: {n_samples: 120, n_features: 5}
  test_split: 0.25
  preprocess: [standardize]
model:
  input_shape: [5]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 1}
compile:
  optimizer: adam
  loss: mse
  metrics: [mae]
fit: {epochs: 2, batch_size: 16}
""",
}


def cli(*args: str):
    """Invoke kcli in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from kcli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@functools.cache
def workspace() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="kcli-trained-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _write_data(folder)
    return folder


def runs_dir() -> Path:
    return workspace() / "runs"


def _write_data(folder: Path) -> None:
    """The files the `graph` and `csv` recipes read."""
    rng = np.random.default_rng(0)
    xa = rng.normal(3.0, 2.0, (160, 4)).astype(np.float32)
    xb = rng.normal(0.0, 1.0, (160, 3)).astype(np.float32)
    y = ((xa[:, 0] - 3.0) + xb[:, 1] > 0).astype(np.int64)
    np.savez(folder / "two.npz", xa=xa, xb=xb, y=y)
    lines = ["weight,color,length,fruit"]
    names = ["apple", "banana", "cherry"]
    colors = ["red", "yellow", "green"]
    for i in range(150):
        k = i % 3
        weight = 150 - 60 * k + rng.normal(0, 10)
        length = 7 + 6 * (k == 1) + rng.normal(0, 1)
        lines.append(f"{weight:.2f},{colors[(k + (i % 7 == 0)) % 3]},{length:.2f},{names[k]}")
    (folder / "fruit.csv").write_text("\n".join(lines) + "\n")


@functools.cache
def trained(kind: str) -> Path:
    """The run folder of the `kind` recipe, trained on first use."""
    text = f"name: {kind}\n" + RECIPES[kind]
    if "compile:" not in text:
        text += COMMON
    recipe = workspace() / f"{kind}.yaml"
    recipe.write_text(text)
    result = cli("train", recipe, "--runs-dir", runs_dir(), "--json", "-q")
    assert result.exit_code in (0, 1), result.output
    return Path(json.loads(result.stdout)["run_dir"])
