"""`kcli train`: the run folder, reproducibility, gates and bad input."""

from __future__ import annotations

import json

import torch

from tests.train.conftest import TINY_RECIPE, metric_rows


def test_train_writes_the_complete_run_folder(write_recipe, train):
    result, document = train(write_recipe())
    assert result.exit_code == 0, result.output
    run_dir = __import__("pathlib").Path(document["run_dir"])
    for name in (
        "recipe.yaml",
        "run.json",
        "metrics.csv",
        "summary.txt",
        "preprocess.json",
        "eval.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run_dir / name).is_file(), name
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 4
    rows = metric_rows(run_dir)
    assert rows[0] == [
        "epoch",
        "loss",
        "accuracy",
        "regularization",
        "val_loss",
        "val_accuracy",
        "lr",
    ]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["n_samples"] == 60  # 25% of 240
    assert document["metrics"]["test_accuracy"] == evaluation["metrics"]["accuracy"]
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 4 and "dense.kernel" in state["model"]
    assert "Total params: 163 " in (run_dir / "summary.txt").read_text()  # 6*16+16 + 16*3+3


def test_same_seed_gives_bit_identical_metrics(write_recipe, train):
    recipe = write_recipe()
    _, first = train(recipe)
    _, second = train(recipe)
    assert first["run_dir"] != second["run_dir"]
    rows = [metric_rows(__import__("pathlib").Path(d["run_dir"])) for d in (first, second)]
    assert rows[0] == rows[1]
    assert first["metrics"] == second["metrics"]


def test_another_seed_gives_other_numbers(write_recipe, train):
    recipe = write_recipe()
    _, first = train(recipe)
    _, second = train(recipe, "seed=8")
    assert first["metrics"]["loss"] != second["metrics"]["loss"]


def test_failed_gate_exits_1_and_names_it(write_recipe, train):
    recipe = write_recipe(TINY_RECIPE + 'expect:\n  test_accuracy: ">= 1.01"\n  loss: "< 100"\n')
    result, document = train(recipe)
    assert result.exit_code == 1
    assert "expect test_accuracy >= 1.01: got" in result.stderr
    assert "loss" not in " ".join(document["failed_gates"]).replace("test_accuracy", "")
    assert document["status"] == "completed"


def test_unknown_gate_metric_is_bad_input_before_training(write_recipe, train, tmp_path):
    recipe = write_recipe(TINY_RECIPE + 'expect:\n  test_acuracy: ">= 0.5"\n')
    result, _ = train(recipe)
    assert result.exit_code == 2
    assert (
        "expect.test_acuracy" in result.stderr and "did you mean 'test_accuracy'" in result.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_bad_override_exits_2_and_leaves_no_run_folder(write_recipe, train, tmp_path):
    result, _ = train(write_recipe(), "fit.epochz=3")
    assert result.exit_code == 2
    assert "override fit.epochz=3: fit.epochz: unknown key 'epochz'" in result.stderr
    assert "did you mean 'epochs'" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_loss_that_cannot_fit_the_output_is_caught_before_training(write_recipe, train, tmp_path):
    # sparse_categorical_crossentropy on one output unit cannot represent 3 classes.
    result, _ = train(write_recipe(), "model.layers.2.units=1")
    assert result.exit_code == 2
    assert "compile.loss" in result.stderr or "data" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_labels_out_of_range_for_the_output_are_caught(write_recipe, train, tmp_path):
    # 3 classes (labels 0..2) but a 2-unit softmax output.
    result, _ = train(write_recipe(), "model.layers.2.units=2")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_diverging_loss_fails_the_run_with_exit_1(write_recipe, train, tmp_path):
    recipe = write_recipe(
        TINY_RECIPE.replace(
            "{type: Adam, learning_rate: 0.01}", "{type: SGD, learning_rate: 1.0e+30}"
        )
    )
    result, _ = train(recipe)
    assert result.exit_code == 1
    assert "became" in result.stderr and "loss" in result.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed"


def test_bf16_mixed_precision_trains_on_cpu(write_recipe, train):
    result, document = train(write_recipe(), "fit.precision=bf16-mixed", "fit.epochs=2")
    assert result.exit_code == 0, result.output
    assert document["metrics"]["loss"] == document["metrics"]["loss"]  # not NaN


def test_a_metric_that_cannot_read_the_labels_is_bad_input(write_recipe, train, tmp_path):
    # top_k_categorical_accuracy wants one-hot labels; these are class indices.
    result, _ = train(write_recipe(), "compile.metrics=[{type: top_k_categorical_accuracy, k: 2}]")
    assert result.exit_code == 2
    assert "compile.metrics[0]" in result.stderr
    assert "use sparse_top_k_categorical_accuracy" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_plain_output_ends_with_the_test_metrics_and_the_run(write_recipe, tmp_path):
    from tests.train.conftest import run_cli

    result = run_cli("train", str(write_recipe()), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("test: accuracy: ") and " - loss: " in lines[-2]
    assert lines[-1].startswith("run: ") and lines[-1].endswith("(completed)")
    assert sum(line.startswith("Epoch ") for line in lines) == 4
