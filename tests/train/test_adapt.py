"""Layers adapted on the train split (Normalization, Discretization num_bins, IntegerLookup), run
through the CLI as a user runs them: statistics from the train split only, saved in every
checkpoint, and the same numbers from eval, --resume and the exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.conftest import metric_rows, run_cli

RECIPE = """\
name: adapted
seed: 5
data:
  source: train.npz
  validation: val.npz
  test: test.npz
model:
  input_shape: [3]
  layers:
{layers}
    - {{type: Dense, units: 2, activation: softmax}}
compile:
  optimizer: {{type: Adam, learning_rate: 0.01}}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 3
  batch_size: 16
"""
NORMALIZATION = "    - {type: Normalization}"
ALL_THREE = """\
    - {type: Normalization}
    - {type: Discretization, num_bins: 4}
    - {type: IntegerLookup, max_tokens: 6, output_mode: multi_hot, pad_to_max_tokens: true}"""


def _split(rng, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    x = (rng.normal(size=(n, 3)) * [1.0, 5.0, 0.2] + [2.0, -1.0, 7.0] + shift).astype(np.float32)
    return x, (x[:, 0] - shift > 2.0).astype(np.int64)


def write_run_files(folder: Path, layers: str) -> tuple[Path, np.ndarray]:
    """The recipe, and train/validation/test files whose values differ wildly (shifted by
    +1000 and -1000), so a statistic that saw validation or test data is far off."""
    rng = np.random.default_rng(0)
    for name, n, shift in (("train", 96, 0.0), ("val", 32, 1000.0), ("test", 32, -1000.0)):
        x, y = _split(rng, n, shift)
        np.savez(folder / f"{name}.npz", x=x, y=y)
        if name == "train":
            train_x = x
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(layers=layers))
    return path, train_x


def train_run(recipe: Path, runs: Path, *overrides: str) -> Path:
    result = run_cli("train", str(recipe), *overrides, "--runs-dir", str(runs), "--json", "-q")
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def checkpoint_weights(run_dir: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / f"{which}.pt", weights_only=True)["model"]


def test_statistics_come_from_the_train_split_only_and_are_in_every_checkpoint(tmp_path):
    recipe, train_x = write_run_files(tmp_path, NORMALIZATION)
    run_dir = train_run(recipe, tmp_path / "runs")
    mean, variance = train_x.astype(np.float64).mean(0), train_x.astype(np.float64).var(0)
    for which in ("first", "best", "last"):
        weights = checkpoint_weights(run_dir, which)
        np.testing.assert_allclose(weights["normalization.mean"], mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(weights["normalization.variance"], variance, rtol=1e-5)
        assert weights["normalization.count"].dtype == torch.int32
    # Keras' count: 2 * 3 features + 1 non-trainable, and the Dense layer's 3 * 2 + 2
    summary = (run_dir / "summary.txt").read_text()
    assert "Non-trainable params: 7" in summary and "Total params: 15" in summary


def test_eval_of_the_finished_run_gives_training_test_metrics(tmp_path):
    recipe, _ = write_run_files(tmp_path, ALL_THREE)
    run_dir = train_run(recipe, tmp_path / "runs")
    saved = json.loads((run_dir / "eval.json").read_text())
    result = run_cli("eval", str(run_dir), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["metrics"] == saved["metrics"] and document["n_samples"] == 32
    weights = checkpoint_weights(run_dir)
    # learned, not left at their initial zeros: quartile edges of the normalized first feature
    edges = weights["discretization.bin_boundaries"]
    assert edges.shape == (3,) and bool((edges[1:] > edges[:-1]).all())
    # the bins of 3 features are at most 4 tokens (0..3), most frequent first
    assert weights["integer_lookup.size"].item() == 4
    assert sorted(weights["integer_lookup.tokens"][:4].tolist()) == [0, 1, 2, 3]


def test_resume_equals_an_uninterrupted_run(tmp_path):
    recipe, _ = write_run_files(tmp_path, ALL_THREE)
    full = train_run(recipe, tmp_path / "a", "fit.epochs=4")
    short = train_run(recipe, tmp_path / "b", "fit.epochs=2")
    result = run_cli("train", "--resume", str(short), "fit.epochs=4", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert metric_rows(full) == metric_rows(short)
    ours, theirs = checkpoint_weights(full), checkpoint_weights(short)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


GIVEN_INVERT = "    - {type: Normalization, mean: 0.5, variance: 4.0, invert: true}"
LOOKUPS = """\
    - {type: Discretization, num_bins: 4}
    - {type: IntegerLookup, max_tokens: 5}
    - {type: IntegerLookup, vocabulary: [4, 3, 2, 1], invert: true, mask_token: 0}
    - {type: IntegerLookup, max_tokens: 9, output_mode: tf_idf, pad_to_max_tokens: true,
       num_oov_indices: 3, oov_method: farmhash}"""
STACKS = {
    "statistics": f"{ALL_THREE}\n    - {{type: Dense, units: 4}}\n{GIVEN_INVERT}",
    "lookups": LOOKUPS,
}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "torch-export"])
def test_exports_carry_the_adapted_state(fmt, stack, tmp_path):
    layers = STACKS[stack]
    recipe, _ = write_run_files(tmp_path, layers)
    run_dir = train_run(recipe, tmp_path / "runs")
    path = tmp_path / f"model.{fmt}"
    runs = str(tmp_path / "runs")
    result = run_cli(
        "export", str(run_dir), "-f", fmt, "-o", str(path), "--runs-dir", runs, "--json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # the artifact, run by its own runtime, against the run's model with its adapted state
    assert document["max_abs_diff"] <= document["tolerance"] == 1e-5
    assert path.is_file()


STREAM = """\
import numpy as np

def batches(seed=0):
    rng = np.random.default_rng(11)
    for _ in range(5):
        x = (rng.normal(size=(8, 3)) * 3 + 4).astype("float32")
        yield x, (x[:, 0] > 4).astype("int64")
"""


def test_a_generator_source_is_adapted_on_one_pass_of_its_batches(tmp_path):
    (tmp_path / "stream.py").write_text(STREAM)
    recipe = tmp_path / "recipe.yaml"
    text = RECIPE.format(layers="    - {type: Normalization, axis: null}")
    text = text.replace("  source: train.npz\n  validation: val.npz\n  test: test.npz\n", "")
    recipe.write_text(text.replace("data:\n", 'data:\n  source: "python:stream:batches"\n'))
    run_dir = train_run(recipe, tmp_path / "runs", "fit.epochs=1")
    rng = np.random.default_rng(11)
    seen = np.concatenate([(rng.normal(size=(8, 3)) * 3 + 4).astype("float32") for _ in range(5)])
    weights = checkpoint_weights(run_dir)
    # axis null: one scalar mean and variance over all 5 batches' 120 values
    assert weights["normalization.mean"].shape == ()
    np.testing.assert_allclose(weights["normalization.mean"], seen.mean(dtype=np.float64), 1e-6)
    np.testing.assert_allclose(weights["normalization.variance"], seen.var(dtype=np.float64), 1e-5)


def test_a_layer_after_others_adapts_on_their_eval_mode_output():
    from kcli.data.splits import ArraySplit
    from kcli.model.build import build_model_from_spec
    from kcli.model.spec import ModelSpec
    from kcli.train.adapt import ADAPT_BATCH, adapt_layers

    spec = ModelSpec.model_validate(
        {
            "input_shape": [3],
            "layers": [
                {"type": "Dense", "units": 4},
                {"type": "Dropout", "rate": 0.5},  # off when adapting: the mean would halve
                {"type": "Normalization"},
                {"type": "Discretization", "num_bins": 3},
            ],
        }
    )
    built = build_model_from_spec(spec, seed=1)
    x = np.random.default_rng(2).normal(size=(ADAPT_BATCH + 300, 3)).astype(np.float32)
    assert built.model.training
    names = adapt_layers(built, ArraySplit(x, None))
    assert names == ["normalization", "discretization"] and built.model.training
    dense = built.model.layer("dense")
    with torch.no_grad():
        h = dense(torch.from_numpy(x)).double()
    norm = built.model.layer("normalization")
    np.testing.assert_allclose(norm.mean, h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.variance, h.var(0, unbiased=False), rtol=1e-5)
    # the bins were learned on the normalized values: their edges near the terciles of N(0, 1)
    edges = built.model.layer("discretization").bin_boundaries
    assert np.allclose(edges.numpy(), [-0.43, 0.43], atol=0.08)


def test_too_few_training_values_for_the_bins_is_exit_2(tmp_path):
    recipe, _ = write_run_files(tmp_path, "    - {type: Discretization, num_bins: 500}")
    result = run_cli("train", str(recipe), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert "layer 'discretization' cannot be adapted on the train split" in result.output
    assert "recipe.yaml:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("run.json"))


@pytest.mark.slow
def test_two_ranks_adapt_to_the_single_process_statistics(tmp_path):
    """Every rank adapts on the whole train split before it is sharded: the ranks agree, and
    their statistics are a single process's."""
    import subprocess
    import sys

    recipe, _ = write_run_files(tmp_path, ALL_THREE)
    runs = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, "-m", "kcli", "train", str(recipe), "--nproc-per-node", "2"]
        + ["fit.epochs=1", "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (ddp,) = [p for p in runs.glob("*/*") if p.is_dir()]
    distributed = json.loads((ddp / "run.json").read_text())["distributed"]
    first, second = distributed["weight_digests"]  # of the whole state dict, buffers included
    assert first == second
    single = checkpoint_weights(train_run(recipe, tmp_path / "one", "fit.epochs=1"))
    for name, value in checkpoint_weights(ddp).items():
        if not name.startswith("dense"):
            assert torch.equal(value, single[name]), name
