"""eval, predict and export of a model of several outputs (issue 17): per output, by name."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.train.conftest import run_cli
from tests.train.test_multi_output import TWO_HEADS, two_head_data


@pytest.fixture(scope="module")
def two_head_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two_heads")
    np.savez(folder / "data.npz", **two_head_data())
    (folder / "recipe.yaml").write_text(TWO_HEADS)
    result = run_cli(
        "train", str(folder / "recipe.yaml"), "--runs-dir", str(folder / "runs"), "--json", "-q"
    )
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def test_eval_reports_every_output_and_a_confusion_matrix_for_the_classifier(two_head_run):
    result = run_cli("eval", str(two_head_run), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["metrics"]) == [
        "loss",
        "label_loss",
        "value_loss",
        "label_accuracy",
        "value_mae",
    ]
    # eval on the test split reproduces what training logged for it.
    trained = json.loads((two_head_run / "eval.json").read_text())["metrics"]
    assert report["metrics"] == pytest.approx(trained)
    outputs = report["outputs"]
    assert list(outputs) == ["label"]  # `value` is a regression output: no matrix
    matrix = np.array(outputs["label"]["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == report["n_samples"] == 40
    # The matrix agrees with the logged accuracy: its diagonal over its total.
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["metrics"]["label_accuracy"])
    text = run_cli("eval", str(two_head_run))
    assert "confusion matrix of output 'label'" in text.output
    assert "per class of output 'label'" in text.output


def test_eval_on_other_data_takes_targets_by_output(two_head_run, tmp_path):
    data = two_head_data(n=30, seed=9)
    np.savez(tmp_path / "new.npz", **data)
    result = run_cli("eval", str(two_head_run), "--data", str(tmp_path / "new.npz"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_samples"] == 30
    np.savez(tmp_path / "partial.npz", x=data["x"], label=data["label"])
    missing = run_cli("eval", str(two_head_run), "--data", str(tmp_path / "partial.npz"))
    assert missing.exit_code == 2
    assert "value" in missing.stderr and "Traceback" not in missing.stderr


def test_predict_writes_one_array_per_output(two_head_run, tmp_path):
    x = two_head_data(n=12, seed=3)["x"]
    np.save(tmp_path / "x.npy", x)
    result = run_cli("predict", str(two_head_run), str(tmp_path / "x.npy"))
    assert result.exit_code == 0, result.output
    arrays = np.load(tmp_path / "x.predictions.npz")
    assert sorted(arrays.files) == ["label", "value"]
    assert arrays["label"].shape == (12,) and arrays["label"].dtype == np.int64
    assert arrays["value"].shape == (12, 1) and arrays["value"].dtype == np.float32
    # The run's own model on the same inputs gives these numbers.
    import torch

    from kcli.use.run_model import load_run_model

    model = load_run_model(two_head_run).model
    with torch.no_grad():
        label, value = model(torch.from_numpy(x))
    assert np.array_equal(arrays["label"], label.numpy().argmax(1))
    assert np.allclose(arrays["value"], value.numpy())

    proba = run_cli(
        "predict",
        str(two_head_run),
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "p.csv"),
        "--proba",
    )
    assert proba.exit_code == 0, proba.output
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0] == ["label_0", "label_1", "label_2", "value"]
    assert len(rows) == 13
    assert sum(float(v) for v in rows[1][:3]) == pytest.approx(1.0, abs=1e-6)
    assert float(rows[1][3]) == pytest.approx(float(value[0, 0]), rel=1e-6)
    single = run_cli(
        "predict", str(two_head_run), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy")
    )
    assert single.exit_code == 2 and ".npz or .csv" in single.stderr


def test_export_names_every_output(two_head_run, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    path = tmp_path / "model.onnx"
    result = run_cli("export", str(two_head_run), "--format", "onnx", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert "outputs: label, value" in result.output
    session = onnxruntime.InferenceSession(str(path))
    assert [o.name for o in session.get_outputs()] == ["label", "value"]
    x = two_head_data(n=5, seed=4)["x"]
    label, value = session.run(None, {session.get_inputs()[0].name: x})
    assert label.shape == (5, 3) and value.shape == (5, 1)
    torchscript = run_cli(
        "export", str(two_head_run), "--format", "torchscript", "-o", str(tmp_path / "m.pt")
    )
    assert torchscript.exit_code == 0, torchscript.output


def test_runs_and_plots_use_the_output_names(two_head_run):
    """`kcli runs` sums a run up by its first metric, not by an output's loss; `kcli plot`
    draws one curve per logged name (each output's loss and metrics)."""
    listed = run_cli("runs", str(two_head_run.parent.parent), "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["metric"] == "label_accuracy"
    assert row["best_val"]["metric"] == "val_label_accuracy"
    assert row["test"]["metric"] == "test_label_accuracy"
    plotted = run_cli("plot", str(two_head_run))
    assert plotted.exit_code == 0, plotted.output
    drawn = {path.stem for path in (two_head_run / "plots").glob("*.png")}
    assert {"loss", "label_loss", "value_loss", "label_accuracy", "value_mae"} <= drawn
