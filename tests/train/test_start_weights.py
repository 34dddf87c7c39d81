"""`model.weights`: a run starts from saved weights (a run folder, a checkpoint, a safetensors
export, a .keras file), strictly by default, as a user runs it (`kcli train` / `kcli validate`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.conftest import run_cli

BASE = """\
name: base
seed: 7
data:
  source: synthetic:classification
  params: {n_samples: 96, n_features: 6, n_classes: 3}
  validation_split: 0.25
model:
  input_shape: [6]
  layers:
    - {name: body, type: Dense, units: 8, activation: relu}
    - {name: head, type: Dense, units: 3, activation: softmax}
compile: {optimizer: {type: Adam, learning_rate: 0.05}, loss: sparse_categorical_crossentropy}
fit: {epochs: 2, batch_size: 16}
"""

# Transfer learning: the trained body, frozen; a new two-class head (so not strict).
FINE_TUNE = """\
name: tuned
seed: 8
data:
  source: synthetic:classification
  params: {n_samples: 96, n_features: 6, n_classes: 2}
model:
  input_shape: [6]
  weights: WEIGHTS
  layers:
    - {name: body, type: Dense, units: 8, activation: relu, trainable: false}
    - {name: head, type: Dense, units: 2, activation: softmax}
compile: {optimizer: {type: Adam, learning_rate: 0.05}, loss: sparse_categorical_crossentropy}
fit: {epochs: 2, batch_size: 16}
"""


def _train(recipe: Path, runs: Path, *args: str):
    result = run_cli("train", str(recipe), *args, "--runs-dir", str(runs), "--json", "-q")
    document = json.loads(result.stdout) if result.exit_code == 0 else None
    return result, document


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    (folder / "base.yaml").write_text(BASE)
    result, document = _train(folder / "base.yaml", folder / "runs")
    assert result.exit_code == 0, result.output
    return Path(document["run_dir"])


def _recipe(tmp_path: Path, text: str, weights: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("WEIGHTS", weights))
    return path


def _source(kind: str, base_run: Path, tmp_path: Path) -> str:
    if kind == "run folder":
        return str(base_run)
    if kind == "checkpoint":
        return str(base_run / "checkpoints" / "last.pt")
    out = tmp_path / "base.safetensors"
    result = run_cli("export", str(base_run), "--format", "safetensors", "-o", str(out))
    assert result.exit_code == 0, result.output
    return out.name  # relative: resolved against the recipe's folder


@pytest.mark.parametrize("kind", ["run folder", "checkpoint", "safetensors"])
def test_strict_start_from_saved_weights(kind, base_run, tmp_path):
    # A learning rate of 0: the run ends with exactly the loaded weights,
    # which differ from the fresh initialisation of seed 8 (so they were loaded).
    text = BASE.replace("name: base", "name: again").replace("seed: 7", "seed: 8")
    text = text.replace("model:\n", "model:\n  weights: WEIGHTS\n").replace("0.05", "0.0")
    recipe = _recipe(tmp_path, text, _source(kind, base_run, tmp_path))
    result, document = _train(recipe, tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    want, got = _weights(base_run), _weights(run_dir)
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    record = json.loads((run_dir / "run.json").read_text())["start_weights"]
    assert record["strict"] is True and record["skipped"] == []
    assert record["format"] == ("safetensors" if kind == "safetensors" else "checkpoint")


def test_a_strict_mismatch_exits_2_naming_the_weights(base_run, tmp_path):
    recipe = _recipe(tmp_path, FINE_TUNE, str(base_run))
    result, _ = _train(recipe, tmp_path / "runs")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    # model.weights is on line 8 of the recipe, its value at column 12.
    assert lines[0] == (
        f"{recipe}:8:12: model.weights: {base_run}: the weights do not fit the model: "
        "head.kernel: shape (3, 8) in the file, the model's is (2, 8)"
    )
    assert any("head.bias: shape (3,) in the file, the model's is (2,)" in line for line in lines)
    assert "strict: false" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing written


def test_fine_tuning_keeps_frozen_layers_and_trains_the_new_head(base_run, tmp_path):
    from kcli.recipe.load import load_recipe
    from kcli.train.setup import prepare

    weights = f"{{path: {base_run}, strict: false}}"
    recipe = _recipe(tmp_path, FINE_TUNE, weights)
    start = prepare(load_recipe(recipe), "cpu").model.state_dict()  # as the run starts
    result, document = _train(recipe, tmp_path / "runs")
    assert result.exit_code == 0, result.output
    skipped = [
        "head.kernel: shape (3, 8) in the file, the model's is (2, 8)",
        "head.bias: shape (3,) in the file, the model's is (2,)",
    ]
    assert "note: model.weights: 2 skipped (strict: false): " + "; ".join(skipped) in result.stderr
    run_dir = Path(document["run_dir"])
    record = json.loads((run_dir / "run.json").read_text())["start_weights"]
    assert record == {
        "path": str(base_run.resolve()),
        "format": "checkpoint",
        "strict": False,
        "skipped": skipped,
    }
    base, final = _weights(base_run), _weights(run_dir)
    for name in ("body.kernel", "body.bias"):  # loaded, then frozen through training
        assert torch.equal(start[name], base[name]), name
        assert torch.equal(final[name], base[name]), name
    for name in ("head.kernel", "head.bias"):  # new, and trained
        assert not torch.equal(final[name], start[name]), name


def test_resume_continues_from_the_checkpoint_not_model_weights(base_run, tmp_path):
    copy = tmp_path / "copy.safetensors"
    from safetensors.torch import save_file

    save_file(_weights(base_run), str(copy))
    recipe = _recipe(tmp_path, FINE_TUNE, f"{{path: {copy.name}, strict: false}}")
    result, document = _train(recipe, tmp_path / "runs", "fit.epochs=1")
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    after_one = _weights(run_dir)
    os.unlink(copy)  # a resume that read model.weights again would fail here
    resumed = run_cli("train", "--resume", str(run_dir), "fit.epochs=2", "--json", "-q")
    assert resumed.exit_code == 0, resumed.output
    final = _weights(run_dir)
    assert torch.equal(final["body.kernel"], after_one["body.kernel"])  # frozen
    assert not torch.equal(final["head.kernel"], after_one["head.kernel"])  # one more epoch


def test_validate_checks_the_path_exists(tmp_path):
    recipe = _recipe(tmp_path, FINE_TUNE, "{path: gone.keras, strict: false}")
    result = run_cli("validate", str(recipe))
    assert result.exit_code == 2
    where = f"{recipe}:8:19: model.weights.path: {tmp_path / 'gone.keras'}: no such file"
    assert result.output.splitlines()[0].startswith(where)


def test_start_from_a_keras_file(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":  # pragma: no cover
        pytest.skip("needs Keras' torch backend")
    theirs = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", name="body"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    theirs.save(tmp_path / "start.keras")
    text = BASE.replace("model:\n", "model:\n  weights: WEIGHTS\n").replace("0.05", "0.0")
    recipe = _recipe(tmp_path, text, "start.keras")
    result, document = _train(recipe, tmp_path / "runs")
    assert result.exit_code == 0, result.output
    final = _weights(Path(document["run_dir"]))
    body_kernel, body_bias, head_kernel, head_bias = theirs.get_weights()
    # kcli keeps Dense kernels as (out, in), Keras as (in, out); learning rate 0: unchanged.
    np.testing.assert_array_equal(final["body.kernel"].numpy(), body_kernel.T)
    np.testing.assert_array_equal(final["body.bias"].numpy(), body_bias)
    np.testing.assert_array_equal(final["head.kernel"].numpy(), head_kernel.T)
    np.testing.assert_array_equal(final["head.bias"].numpy(), head_bias)
