"""Keras' fit arguments steps_per_epoch, validation_steps, validation_freq and initial_epoch.

Each is checked against what Keras' fit does with the same data: which batches an epoch trains
on, which validation batches are read, which epochs validate, how epochs are numbered.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kcli.fit.epochs import EpochWindow, epoch_window
from tests.train.conftest import TINY_RECIPE, run_cli
from tests.train.test_loop_details import FROZEN_RECIPE


def rows(run_dir: Path) -> list[dict[str, str]]:
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_epoch_windows_follow_keras_iterator():
    # 5 batches a pass, 2 steps an epoch: Keras' iterator runs on across epochs; the third
    # epoch reaches the end of the pass after 1 step and stops there; the fourth starts pass 2.
    assert [epoch_window(e, 5, 2) for e in range(4)] == [
        EpochWindow(0, 0, 2),
        EpochWindow(0, 2, 2),
        EpochWindow(0, 4, 1),
        EpochWindow(1, 0, 2),
    ]
    # More steps than a pass has: every epoch is one (new) pass, as Keras' arrays give.
    assert [epoch_window(e, 5, 7) for e in range(2)] == [EpochWindow(0, 0, 5), EpochWindow(1, 0, 5)]
    assert epoch_window(3, 5, None) == EpochWindow(3, 0, 5)


def test_steps_per_epoch_splits_one_pass_over_epochs(write_recipe, train, tmp_path):
    # 180 training samples in batches of 16: 12 batches a pass. Two epochs of 6 steps train on
    # exactly the batches, in the same order, of one full epoch: the same weights, to the bit.
    recipe = write_recipe(TINY_RECIPE.replace("  test_split: 0.25\n", ""))
    _, whole = train(recipe, "fit.epochs=1", runs=tmp_path / "a")
    result, halves = train(recipe, "fit.epochs=2", "fit.steps_per_epoch=6", runs=tmp_path / "b")
    assert result.exit_code == 0, result.output
    a, b = weights(Path(whole["run_dir"])), weights(Path(halves["run_dir"]))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert [row["epoch"] for row in rows(Path(halves["run_dir"]))] == ["1", "2"]


def test_steps_per_epoch_counts_the_optimizer_steps(write_recipe, train):
    # 12 batches a pass, 5 steps an epoch: windows 5, 5, 2 (end of pass), 5: 17 updates.
    recipe = write_recipe(TINY_RECIPE.replace("  test_split: 0.25\n", ""))
    result, document = train(recipe, "fit.epochs=4", "fit.steps_per_epoch=5")
    assert result.exit_code == 0, result.output
    state = torch.load(Path(document["run_dir"]) / "checkpoints" / "last.pt", weights_only=True)
    assert int(state["optimizer"]["keras"]["iterations"]) == 17
    # Without --quiet, the shortened epoch is said once (Keras warns "ran out of data").
    shown = run_cli(
        "train",
        str(recipe),
        "fit.epochs=4",
        "fit.steps_per_epoch=5",
        "--runs-dir",
        str(Path(document["run_dir"]).parents[1]),
    )
    assert shown.exit_code == 0, shown.output
    assert (shown.stdout + shown.stderr).count("trains 2 of steps_per_epoch 5 steps") == 1


def test_validation_steps_reads_the_first_validation_batches(write_recipe, train):
    # Frozen weights: val_loss of 1 validation step of 16 must be the loss of the first 16
    # validation samples (in order: validation is not shuffled), not of all 60.
    from kcli.data import load_data
    from kcli.recipe.load import load_recipe

    path = write_recipe(FROZEN_RECIPE.replace("  test_split: 0.25\n", ""))
    result, document = train(
        path, "fit.epochs=1", "fit.validation_steps=1", "fit.validation_batch_size=16"
    )
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    w = weights(run_dir)
    recipe = load_recipe(path).recipe
    validation = load_data(recipe.data, path.parent, recipe.seed).validation
    x = torch.from_numpy(np.asarray(validation.x[:16], dtype=np.float32))
    y = torch.from_numpy(np.asarray(validation.y[:16])).long()
    logits = torch.relu(x @ w["dense.kernel"].T + w["dense.bias"]) @ w["dense_1.kernel"].T
    logits = logits + w["dense_1.bias"]
    crossentropy = torch.nn.functional.cross_entropy(logits.double(), y)
    penalty = 0.001 * w["dense.kernel"].double().square().sum()
    (row,) = rows(run_dir)
    assert float(row["val_loss"]) == pytest.approx(float(crossentropy + penalty), abs=1e-5)


@pytest.mark.parametrize(
    "freq,validated", [("2", [False, True, False, True]), ("[1,3]", [True, False, True, False])]
)
def test_validation_freq_validates_those_epochs_and_gates_read_the_last(
    write_recipe, train, freq, validated
):
    text = TINY_RECIPE.replace(
        "  batch_size: 16\n",
        "  batch_size: 16\n  callbacks:\n    - {type: EarlyStopping, monitor: val_loss, "
        "patience: 10}\nexpect:\n  val_accuracy: '>= 0.0'\n",
    )
    result, document = train(write_recipe(text), f"fit.validation_freq={freq}")
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    table = rows(run_dir)
    assert [row["val_loss"] != "" for row in table] == validated
    assert all((row["val_accuracy"] != "") == v for row, v in zip(table, validated, strict=True))
    # No "val_loss is not among the logged values" warning on the epochs without validation.
    assert "not among the logged values" not in result.stderr + result.stdout
    # The final numbers (run.json, gates) hold the last validation's values.
    last = [row for row in table if row["val_loss"] != ""][-1]
    final = json.loads((run_dir / "run.json").read_text())["final_metrics"]
    assert final["val_accuracy"] == pytest.approx(float(last["val_accuracy"]))


def test_initial_epoch_numbers_from_there_and_schedules_from_step_0(write_recipe, train):
    text = TINY_RECIPE.replace(
        "{type: Adam, learning_rate: 0.01}",
        "{type: SGD, learning_rate: {type: ExponentialDecay, initial_learning_rate: 0.1, "
        "decay_steps: 1, decay_rate: 0.5}}",
    )
    result, document = train(write_recipe(text), "fit.epochs=3", "fit.initial_epoch=1")
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    table = rows(run_dir)
    assert [row["epoch"] for row in table] == ["2", "3"]
    # 120 train samples / 16 = 8 steps an epoch; the optimizer starts at step 0, as Keras'
    # does: after the first epoch run the rate is 0.1 * 0.5 ** 8.
    assert float(table[0]["lr"]) == pytest.approx(0.1 * 0.5**8)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["epochs_done"] == 3
    assert (run_dir / "checkpoints" / "first.pt").is_file()


def test_bad_fit_arguments_are_exit_2_located(write_recipe, tmp_path):
    recipe = write_recipe()
    result = run_cli("validate", str(recipe), "fit.initial_epoch=4")
    assert result.exit_code == 2
    assert "fit.initial_epoch: initial_epoch 4 leaves no epoch to train: epochs is 4" in (
        result.stderr
    )
    result = run_cli("validate", str(recipe), "fit.validation_freq=0")
    assert result.exit_code == 2 and "fit.validation_freq" in result.stderr
    # A generator source counts its own steps: fit.steps_per_epoch points there.
    (tmp_path / "gen.py").write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    rng = np.random.default_rng(0)\n"
        "    for _ in range(4):\n"
        "        yield rng.normal(size=(8, 6)).astype('float32'), rng.integers(0, 3, 8)\n"
    )
    text = TINY_RECIPE.replace(
        "  source: synthetic:classification\n  params: {n_samples: 240, n_features: 6, "
        "n_classes: 3}\n  validation_split: 0.25\n  test_split: 0.25\n"
        "  preprocess: [standardize]\n",
        "  source: python:gen:batches\n",
    )
    path = write_recipe(text, "gen.yaml")
    result = run_cli("train", str(path), "fit.steps_per_epoch=2", "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    assert "fit.steps_per_epoch: fit.steps_per_epoch is for data held in memory" in result.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("run.json"))


def test_resume_with_steps_per_epoch_equals_an_uninterrupted_run(write_recipe, train, tmp_path):
    # Epoch 3 starts mid-pass (batch 10 of 12): the resumed run must redraw pass 0's order.
    from tests.train.test_resume import assert_same_run

    recipe = write_recipe(TINY_RECIPE.replace("  test_split: 0.25\n", ""))
    _, full = train(recipe, "fit.epochs=4", "fit.steps_per_epoch=5", runs=tmp_path / "a")
    _, short = train(recipe, "fit.epochs=2", "fit.steps_per_epoch=5", runs=tmp_path / "b")
    result = run_cli("train", "--resume", short["run_dir"], "fit.epochs=4", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert_same_run(Path(full["run_dir"]), Path(short["run_dir"]))


def test_a_model_with_nothing_to_train_is_exit_2_not_a_traceback(write_recipe, tmp_path):
    # Both Dense layers frozen: no weight needs a gradient, so no optimizer can be built.
    text = TINY_RECIPE.replace("activation: relu,", "activation: relu, trainable: false,")
    text = text.replace("activation: softmax}", "activation: softmax, trainable: false}")
    result = run_cli("train", str(write_recipe(text)), "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    assert "model: the model has no trainable weights" in result.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("run.json"))
