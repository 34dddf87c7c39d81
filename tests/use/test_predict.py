"""`kcli predict`: raw inputs through the run's preprocessing and model, in batches; bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from tests.trained import cli, runs_dir, trained, workspace


def predict(*args):
    result = cli("predict", *args, "--runs-dir", runs_dir())
    assert result.exit_code == 0, result.output
    return result


def saved_steps(run_dir):
    return json.loads((run_dir / "preprocess.json").read_text())["preprocessing"]["steps"]


def run_model_on(run_dir, x):
    """The run's own torch model on already-preprocessed features."""
    from kcli.use.run_model import load_run_model

    model = load_run_model(run_dir).model
    with torch.no_grad():
        if isinstance(x, dict):
            return model({k: torch.from_numpy(v) for k, v in x.items()}).numpy()
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def mlp_raw():
    """Raw features as the mlp recipe's source gives them (before standardize)."""
    rng = np.random.default_rng(1)
    return rng.normal(0.0, 3.0, (50, 6)).astype(np.float32)


def test_raw_npy_gives_the_model_on_standardized_features(tmp_path, mlp_raw):
    run_dir = trained("mlp")
    np.save(tmp_path / "x.npy", mlp_raw)
    predict(run_dir, tmp_path / "x.npy", "-o", tmp_path / "p.npy", "--proba")
    # By hand: (x - mean) / std with preprocess.json's mean and std, then the model.
    state = saved_steps(run_dir)[0]["state"]["input"]
    x = ((mlp_raw - np.array(state["mean"])) / np.array(state["std"])).astype(np.float32)
    expected = run_model_on(run_dir, x)
    written = np.load(tmp_path / "p.npy")
    assert written.shape == (50, 3)
    np.testing.assert_allclose(written, expected, rtol=0, atol=1e-6)
    # Without --proba: the class of the highest probability, as int64 indices.
    predict(run_dir, tmp_path / "x.npy", "-o", tmp_path / "c.npy")
    classes = np.load(tmp_path / "c.npy")
    assert classes.dtype == np.int64
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))


def test_default_output_is_beside_the_input(tmp_path, mlp_raw):
    np.save(tmp_path / "x.npy", mlp_raw)
    result = predict(trained("mlp"), tmp_path / "x.npy")
    assert (tmp_path / "x.predictions.npy").is_file()
    assert "wrote 50 predictions (class indices)" in result.stdout


def test_small_batches_stream_the_same_predictions(tmp_path, mlp_raw):
    np.save(tmp_path / "x.npy", mlp_raw)
    predict(trained("mlp"), tmp_path / "x.npy", "-o", tmp_path / "a.npy", "--proba")
    predict(
        trained("mlp"), tmp_path / "x.npy", "-o", tmp_path / "b.npy", "--proba", "--batch-size", "7"
    )  # 50 = 7 * 7 + 1: eight batches, the last of one sample
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), atol=1e-6)


def test_csv_by_column_names_gives_class_names(tmp_path):
    run_dir = trained("csv")
    # Columns in another order, plus the target: predict picks the run's features by name.
    rows = [
        ("apple", "7.1", "red", "151"),
        ("banana", "13.2", "yellow", "92"),
        ("cherry", "6.8", "green", "31"),
    ]
    path = tmp_path / "in.csv"
    path.write_text("fruit,length,color,weight\n" + "\n".join(",".join(r) for r in rows) + "\n")
    predict(run_dir, path, "-o", tmp_path / "out.csv", "--proba")
    predict(run_dir, path, "-o", tmp_path / "names.csv")
    # By hand: weight, one-hot color (categories sorted: green, red, yellow), length; then
    # standardized with the saved statistics.
    encoded = np.array(
        [[151, 0, 1, 0, 7.1], [92, 0, 0, 1, 13.2], [31, 1, 0, 0, 6.8]], dtype=np.float32
    )
    state = saved_steps(run_dir)[0]["state"]["input"]
    x = ((encoded - np.array(state["mean"])) / np.array(state["std"])).astype(np.float32)
    expected = run_model_on(run_dir, x)
    with (tmp_path / "out.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["apple", "banana", "cherry"]
    np.testing.assert_allclose(np.array(table[1:], dtype=float), expected, atol=1e-6)
    names = (tmp_path / "names.csv").read_text().split()
    assert names == ["class", *(["apple", "banana", "cherry"][k] for k in expected.argmax(1))]


def test_npz_with_the_recipes_array_names_for_a_two_input_model(tmp_path):
    run_dir = trained("graph")
    result = predict(
        run_dir, workspace() / "two.npz", "-o", tmp_path / "p.npy", "--proba", "--json"
    )
    assert json.loads(result.stdout)["n_samples"] == 160
    steps = saved_steps(run_dir)
    with np.load(workspace() / "two.npz") as arrays:
        mean, std = (np.array(steps[0]["state"]["left"][k]) for k in ("mean", "std"))
        left = ((arrays["xa"] - mean) / std).astype(np.float32) * 2.0  # then {scale: 2.0}
        right = arrays["xb"] * np.float32(2.0)
    expected = run_model_on(run_dir, {"left": left, "right": right})
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-6)


def test_regression_writes_values(tmp_path):
    run_dir = trained("regression")
    raw = np.arange(20, dtype=np.float32).reshape(4, 5) / 10
    np.save(tmp_path / "x.npy", raw)
    predict(run_dir, tmp_path / "x.npy", "-o", tmp_path / "y.csv")
    lines = (tmp_path / "y.csv").read_text().split()
    assert lines[0] == "prediction" and len(lines) == 5
    state = saved_steps(run_dir)[0]["state"]["input"]
    x = ((raw - np.array(state["mean"])) / np.array(state["std"])).astype(np.float32)
    expected = run_model_on(run_dir, x)[:, 0]
    np.testing.assert_allclose(np.array(lines[1:], dtype=float), expected, atol=1e-6)


# ---- bad input ---------------------------------------------------------------------------------
def bad(*args):
    result = cli("predict", *args, "--runs-dir", runs_dir())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_wrong_feature_count(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    message = bad(trained("mlp"), tmp_path / "x.npy")
    assert "shape (5,)" in message and "fitted on (6,)" in message


def test_csv_missing_a_feature_column(tmp_path):
    (tmp_path / "x.csv").write_text("weight,length\n1,2\n")
    message = bad(trained("csv"), tmp_path / "x.csv")
    assert "no column(s) color" in message


def test_output_folder_missing_or_unknown_suffix(tmp_path, mlp_raw):
    np.save(tmp_path / "x.npy", mlp_raw)
    assert "does not exist" in bad(
        trained("mlp"), tmp_path / "x.npy", "-o", tmp_path / "no" / "p.npy"
    )
    assert ".npy or .csv" in bad(trained("mlp"), tmp_path / "x.npy", "-o", tmp_path / "p.txt")


def test_missing_input_and_unknown_input_kind(tmp_path):
    assert "no input file" in bad(trained("mlp"), tmp_path / "nothing.npy")
    (tmp_path / "x.json").write_text("[]")
    assert ".npy, .npz or .csv" in bad(trained("mlp"), tmp_path / "x.json")


def test_one_array_for_a_two_input_model(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    assert "inputs left, right" in bad(trained("graph"), tmp_path / "x.npy")


def test_proba_needs_a_classifier(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    assert "--proba needs a classifier" in bad(trained("regression"), tmp_path / "x.npy", "--proba")
