"""`kcli eval`: a run's own splits reproduce training's numbers; other data; bad input."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from tests.trained import cli, runs_dir, trained, workspace


def eval_json(*args):
    result = cli("eval", *args, "--runs-dir", runs_dir(), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# test_split 0.2 of n samples: round(0.2 * n)
@pytest.mark.parametrize("kind, n_test", [("mlp", 40), ("cnn", 24), ("graph", 32), ("csv", 30)])
def test_test_split_reproduces_eval_json_exactly(kind, n_test):
    run_dir = trained(kind)
    saved = json.loads((run_dir / "eval.json").read_text())
    # eval.json names the checkpoint holding the weights training ended with, and eval's
    # default is that checkpoint.
    assert saved["checkpoint"] in ("best", "last", "final")
    document = eval_json(run_dir)
    assert document["checkpoint"] == saved["checkpoint"]
    assert document["metrics"] == saved["metrics"]  # bit for bit, not approximately
    assert document["n_samples"] == saved["n_samples"] == n_test
    assert document["split"] == "test"


def test_validation_split_reproduces_the_last_epoch_row():
    run_dir = trained("mlp")
    with (run_dir / "metrics.csv").open() as handle:
        last = list(csv.DictReader(handle))[-1]
    document = eval_json(run_dir, "--checkpoint", "last", "--split", "validation")
    assert document["metrics"]["loss"] == float(last["val_loss"])
    assert document["metrics"]["accuracy"] == float(last["val_accuracy"])


def test_a_recipe_name_means_its_newest_run():
    document = eval_json("mlp", "--checkpoint", "last")
    assert document["run_dir"] == str(trained("mlp"))


def test_confusion_matrix_agrees_with_accuracy_and_per_class_scores():
    document = eval_json(trained("mlp"), "--checkpoint", "last")
    matrix = np.array(document["confusion_matrix"])
    assert matrix.shape == (3, 3) and document["classes"] == ["0", "1", "2"]
    assert matrix.sum() == document["n_samples"]
    # accuracy = correct / all = trace / total
    assert matrix.trace() / matrix.sum() == pytest.approx(document["metrics"]["accuracy"])
    for k, row in enumerate(document["per_class"]):
        # precision_k = M[k,k] / column k sum; recall_k = M[k,k] / row k sum
        assert row["precision"] == pytest.approx(matrix[k, k] / matrix[:, k].sum())
        assert row["recall"] == pytest.approx(matrix[k, k] / matrix[k].sum())
        assert row["support"] == matrix[k].sum()


def test_table_output_names_metrics_and_classes():
    result = cli("eval", trained("csv"), "--runs-dir", runs_dir())
    assert result.exit_code == 0, result.output
    for text in ("loss", "accuracy", "confusion matrix", "apple", "banana", "cherry", "recall"):
        assert text in result.stdout


def test_other_data_goes_through_the_runs_preprocessing():
    from kcli.use.run_model import load_run_model

    run_dir = trained("graph")
    source = workspace() / "two.npz"
    document = eval_json(run_dir, "--data", source)  # takes the recipe's x: {left: xa, ...}
    assert document["n_samples"] == 160 and document["split"] is None
    # By hand: standardize `left` with the saved mean/std, scale both by 2, run the model.
    run_model = load_run_model(run_dir)
    steps = json.loads((run_dir / "preprocess.json").read_text())["preprocessing"]["steps"]
    mean = np.array(steps[0]["state"]["left"]["mean"])
    std = np.array(steps[0]["state"]["left"]["std"])
    with np.load(source) as arrays:
        left = ((arrays["xa"] - mean) / std).astype(np.float32) * 2.0
        right = arrays["xb"] * 2.0
        y = arrays["y"]
    with torch.no_grad():
        probs = run_model.model({"left": torch.from_numpy(left), "right": torch.from_numpy(right)})
    accuracy = float((probs.argmax(-1).numpy() == y).mean())
    assert document["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_regression_has_no_confusion_matrix():
    document = eval_json(trained("regression"))
    assert set(document["metrics"]) == {"loss", "mae"}
    assert "confusion_matrix" not in document


# ---- bad input: exit 2, one clear line, no traceback ------------------------------------------
def bad(*args):
    result = cli("eval", *args, "--runs-dir", runs_dir())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_not_a_run_folder(tmp_path):
    assert "not a run folder" in bad(tmp_path)


def test_unknown_run_name():
    assert "no run 'nope'" in bad("nope")


def test_run_without_checkpoint(tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained("mlp"), copy)
    shutil.rmtree(copy / "checkpoints")
    assert "no checkpoint" in bad(copy)


def test_data_with_other_features(tmp_path):
    path = tmp_path / "five.npz"
    np.savez(path, x=np.zeros((4, 5), np.float32), y=np.zeros(4, np.int64))
    message = bad(trained("mlp"), "--data", path)
    assert "shape (5,)" in message and "(6,)" in message


def test_csv_data_missing_a_column(tmp_path):
    path = tmp_path / "fruit.csv"
    path.write_text("weight,length,fruit\n100,7,apple\n")
    assert "no column(s) 'color'" in bad(trained("csv"), "--data", path)


def test_missing_split_and_unknown_split():
    assert "has no validation split" in bad(trained("regression"), "--split", "validation")
    assert "--split must be one of" in bad(trained("mlp"), "--split", "tset")


def test_unknown_checkpoint():
    assert "--checkpoint must be best, last or final" in bad(
        trained("mlp"), "--checkpoint", "first"
    )
