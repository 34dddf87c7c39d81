"""Fixtures for training tests: tiny recipes written into tmp folders, run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

TINY_RECIPE = """\
name: tiny
seed: 7
data:
  source: synthetic:classification
  params: {n_samples: 240, n_features: 6, n_classes: 3}
  validation_split: 0.25
  test_split: 0.25
  preprocess: [standardize]
model:
  input_shape: [6]
  layers:
    - {type: Dense, units: 16, activation: relu, kernel_regularizer: {l2: 0.001}}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 3, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 4
  batch_size: 16
"""


def run_cli(*args: str):
    from kcli.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(text: str = TINY_RECIPE, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def train(tmp_path: Path):
    """Run `kcli train --json` with a runs folder in tmp; returns (result, parsed JSON or None)."""

    def go(recipe: Path, *args: str, runs: Path | None = None):
        runs_dir = runs or tmp_path / "runs"
        result = run_cli("train", str(recipe), *args, "--runs-dir", str(runs_dir), "--json", "-q")
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError:
            document = None
        return result, document

    return go


def metric_rows(run_dir: Path) -> list[list[str]]:
    """metrics.csv without the wall-clock `seconds` column (the only one allowed to differ)."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, column in enumerate(header) if column != "seconds"]
    return [[cells[i] for i in keep] for cells in (line.split(",") for line in lines)]
