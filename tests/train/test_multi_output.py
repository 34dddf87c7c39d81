"""Models of several outputs trained together, as Keras' compile/fit trains them (issue 17).

The total loss is sum(loss_weight * output loss) + the regularization penalty, each output's
own loss is logged unweighted as `<output>_loss`, metrics as `<output>_<metric>`; targets come
keyed by output from every kind of source; resume and DDP work unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.conftest import metric_rows, run_cli

TWO_HEADS = """\
name: two_heads
seed: 5
data:
  source: data.npz
  y: {label: label, value: value}
  validation_split: 0.25
  test_split: 0.25
model:
  input_shape: [4]
  layers:
    - {name: hidden, type: Dense, units: 8, activation: tanh, kernel_regularizer: {l2: 0.01}}
    - {name: label, type: Dense, units: 3, activation: softmax, inputs: hidden}
    - {name: value, type: Dense, units: 1, inputs: hidden}
  outputs: [label, value]
compile:
  optimizer: {type: Adam, learning_rate: 0.02}
  loss: {label: sparse_categorical_crossentropy, value: mse}
  loss_weights: {label: 1.0, value: 0.5}
  metrics: {label: [accuracy], value: [mae]}
fit: {epochs: 3, batch_size: 16}
"""


def two_head_data(n: int = 160, seed: int = 0) -> dict[str, np.ndarray]:
    """x (n, 4); label: which of 3 bands x[:, 0] falls in; value: a smooth function of x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    label = np.digitize(x[:, 0], [-0.4, 0.4]).astype(np.int64)
    value = (0.5 * x[:, 1] - 0.3 * x[:, 2]).astype(np.float32)[:, None]
    return {"x": x, "label": label, "value": value}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    np.savez(tmp_path / "data.npz", **two_head_data())
    (tmp_path / "recipe.yaml").write_text(TWO_HEADS)
    return tmp_path


def train(folder: Path, *overrides: str, runs: str = "runs", recipe: str = "recipe.yaml"):
    result = run_cli(
        "train", str(folder / recipe), *overrides, "--runs-dir", str(folder / runs), "--json", "-q"
    )
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def test_a_two_output_run_logs_keras_names_everywhere(folder):
    result, document = train(
        folder,
        'expect={test_label_accuracy: ">= 0.5", val_value_loss: "< 10"}',
        "fit.callbacks=[{type: EarlyStopping, monitor: val_label_loss, patience: 5}]",
    )
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    expected = ["loss", "label_loss", "value_loss", "label_accuracy", "value_mae"]
    # Keras' order: the total, each output's loss, then the metrics (the weight penalty on its
    # own); val_ forms after.
    assert header[1:7] == [*expected, "regularization"]
    assert header[7:12] == [f"val_{name}" for name in expected]
    eval_metrics = json.loads((run_dir / "eval.json").read_text())["metrics"]
    assert list(eval_metrics) == expected
    assert document["failed_gates"] == []
    assert document["metrics"]["test_value_mae"] == eval_metrics["value_mae"]
    # A gate on one output's metric fails the run when that output misses it.
    failing, document = train(folder, 'expect={test_value_mae: "< 0.0001"}', runs="gated")
    assert failing.exit_code == 1
    assert "test_value_mae" in failing.output


def test_the_total_loss_is_the_weighted_sum_plus_the_penalty(folder):
    """Keras' total: 1.0 * label_loss + 0.5 * value_loss + 0.01 * sum(hidden kernel ** 2),
    worked out here with numpy from the model's own outputs on one batch."""
    from kcli.fit.steps import Accumulator, Stepper
    from kcli.recipe.load import load_recipe
    from kcli.train.setup import prepare

    prepared = prepare(load_recipe(folder / "recipe.yaml"), "cpu")
    model = prepared.model.eval()
    data = two_head_data()
    x = torch.from_numpy(data["x"][:10])
    y = {
        "label": torch.from_numpy(data["label"][:10]),
        "value": torch.from_numpy(data["value"][:10]),
    }
    stepper = Stepper(model, prepared.objectives, None, torch.device("cpu"))
    accumulator = Accumulator.zeros(torch.device("cpu"), len(prepared.objectives))
    metrics = [spec.streaming() for spec in prepared.metric_specs]
    label_out, value_out = (
        t.double().numpy() for t in stepper.eval_step(x, y, None, accumulator, metrics)
    )

    crossentropy = -np.log(label_out[np.arange(10), data["label"][:10]]).mean()
    squared = ((value_out - data["value"][:10]) ** 2).mean()
    kernel = model.state_dict()["hidden.kernel"].double().numpy()
    penalty = 0.01 * (kernel**2).sum()
    total = 1.0 * crossentropy + 0.5 * squared + penalty
    assert float(accumulator.loss_sum) / 10 == pytest.approx(total, rel=1e-5)
    label_loss, value_loss = (float(s) / 10 for s in accumulator.output_sums)
    assert label_loss == pytest.approx(crossentropy, rel=1e-5)  # unweighted, as Keras logs it
    assert value_loss == pytest.approx(squared, rel=1e-5)
    # Each metric read its own output and targets.
    specs = prepared.metric_specs
    by_name = {spec.log_name: float(m.compute()) for spec, m in zip(specs, metrics, strict=True)}
    assert by_name["value_mae"] == pytest.approx(
        np.abs(value_out - data["value"][:10]).mean(), rel=1e-5
    )
    accuracy = (label_out.argmax(1) == data["label"][:10]).mean()
    assert by_name["label_accuracy"] == pytest.approx(accuracy)


def test_loss_and_weights_as_lists_equal_the_mappings(folder):
    _, by_name = train(folder, runs="a")
    _, in_order = train(
        folder,
        "compile.loss=[sparse_categorical_crossentropy, mse]",
        "compile.loss_weights=[1.0, 0.5]",
        "compile.metrics=[[accuracy], [mae]]",
        runs="b",
    )
    assert metric_rows(Path(by_name["run_dir"])) == metric_rows(Path(in_order["run_dir"]))


def test_one_metric_list_applies_to_every_output(folder):
    result, document = train(
        folder,
        "compile.metrics=[mae]",
        "compile.loss=mse",
        "data.y={label: value, value: value}",
        "model.layers.1.units=1",
        "model.layers.1.activation=linear",
    )
    assert result.exit_code == 0, result.output
    header = (Path(document["run_dir"]) / "metrics.csv").read_text().splitlines()[0]
    assert "label_mae" in header and "value_mae" in header and "label_loss" in header


def test_a_loss_weight_of_zero_leaves_that_output_untrained(folder):
    """With value's weight 0 its head gets no gradient: its weights stay as initialised."""
    _, document = train(folder, "compile.loss_weights={label: 1.0, value: 0.0}", "fit.epochs=1")
    run_dir = Path(document["run_dir"])
    first = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    from kcli.recipe.load import load_recipe

    initial = load_recipe(folder / "recipe.yaml").build_model().model.state_dict()
    assert torch.equal(first["value.kernel"], initial["value.kernel"])
    assert not torch.equal(first["label.kernel"], initial["label.kernel"])


@pytest.mark.parametrize(
    ("overrides", "message", "where"),
    [
        (["data.y={label: label}"], "no target for output(s) value", "data.y"),
        (
            ["data.y={label: label, value: value, extra: value}"],
            "'extra' is not an output",
            "data.y.extra",
        ),
        (["data.y=label"], "give one target per output", "data.y"),
        (["compile.loss={label: mse}"], "gives no loss for output(s) value", "compile.loss"),
        (
            ["compile.loss_weights=[1.0]"],
            "has 1 entries but the model has 2",
            "compile.loss_weights",
        ),
        (["compile.metrics={lable: [accuracy]}"], "did you mean 'label'", "compile.metrics.lable"),
        (["expect={test_acuracy: '> 0'}"], "test_label_accuracy", "expect.test_acuracy"),
        (
            ["fit.class_weight={0: 1.0, 1: 2.0, 2: 1.0}"],
            "class_weight per output",
            "fit.class_weight",
        ),
    ],
)
def test_targets_losses_and_names_that_do_not_fit_the_outputs_are_exit_2(
    folder, overrides, message, where
):
    result, _ = train(folder, *overrides)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and where in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (folder / "runs").exists() or not list((folder / "runs").glob("*/*/run.json"))


def test_csv_npy_and_python_sources_give_targets_by_output(folder):
    data = two_head_data()
    # CSV: a mapping output -> column; the target columns are not features.
    lines = ["a,b,c,d,band,amount"] + [
        ",".join([*(f"{v:.6f}" for v in row), str(lab), f"{val[0]:.6f}"])
        for row, lab, val in zip(data["x"], data["label"], data["value"], strict=False)
    ]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    csv_result, csv_run = train(
        folder,
        "data.source=data.csv",
        "data.y=null",
        "data.target={label: band, value: amount}",
        runs="csv",
    )
    assert csv_result.exit_code == 0, csv_result.output
    # .npy files: a list in output order.
    for name in ("x", "label", "value"):
        np.save(folder / f"{name}.npy", data[name])
    npy_result, npy_run = train(
        folder, "data.source=x.npy", "data.y=[label.npy, value.npy]", runs="npy"
    )
    assert npy_result.exit_code == 0, npy_result.output
    # python: a function returning (x, {output: y}).
    (folder / "heads.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    d = np.load('data.npz')\n"
        "    return d['x'], {'value': d['value'], 'label': d['label']}\n"
    )
    import os

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        py_result, py_run = train(folder, "data.source=python:heads:load", "data.y=null", runs="py")
    finally:
        os.chdir(cwd)
    assert py_result.exit_code == 0, py_result.output
    _, npz_run = train(folder, runs="npz")
    # The same samples, targets and seed: the same run, whichever way the targets came.
    reference = metric_rows(Path(npz_run["run_dir"]))
    for run in (npy_run, py_run):
        assert metric_rows(Path(run["run_dir"])) == reference
    assert len(metric_rows(Path(csv_run["run_dir"]))) == len(reference)


def test_sample_and_class_weights_by_output_weight_only_their_output(folder):
    """Zero sample weights on `value` zero value_loss alone; zero class weights on `label`
    zero label_loss alone: each weighs only the output it is given for."""
    data = two_head_data()
    np.savez(folder / "data.npz", **data, w_value=np.zeros(len(data["x"]), np.float32))

    def first_epoch(*overrides: str, runs: str) -> dict[str, float]:
        result, document = train(folder, "fit.epochs=1", *overrides, runs=runs)
        assert result.exit_code == 0, result.output
        header, first = (Path(document["run_dir"]) / "metrics.csv").read_text().splitlines()[:2]
        return {k: float(v) for k, v in zip(header.split(","), first.split(","), strict=True)}

    by_sample = first_epoch("data.sample_weight={value: w_value}", runs="sample")
    assert by_sample["value_loss"] == 0.0 and by_sample["label_loss"] > 0.0
    by_class = first_epoch("fit.class_weight={label: {0: 0.0, 1: 0.0, 2: 0.0}}", runs="class")
    assert by_class["label_loss"] == 0.0 and by_class["value_loss"] > 0.0


def test_resume_of_a_two_output_run_equals_an_uninterrupted_one(folder):
    _, full = train(folder, "fit.epochs=4", runs="full")
    _, short = train(folder, "fit.epochs=2", runs="short")
    run_dir = Path(short["run_dir"])
    result = run_cli("train", "--resume", str(run_dir), "fit.epochs=4", "-q")
    assert result.exit_code == 0, result.output
    assert metric_rows(run_dir) == metric_rows(Path(full["run_dir"]))
    a = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(Path(full["run_dir"]) / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_same_recipe_and_seed_give_the_same_numbers(folder):
    _, first = train(folder, runs="one")
    _, second = train(folder, runs="two")
    assert metric_rows(Path(first["run_dir"])) == metric_rows(Path(second["run_dir"]))


def test_two_ranks_train_a_two_output_model_as_one_process_with_the_global_batch(folder):
    """DDP: 2 ranks x batch 8 end with the weights of 1 process x batch 16 (no dropout)."""
    import os
    import subprocess
    import sys

    def kcli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kcli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ},
        )

    recipe = str(folder / "recipe.yaml")
    ddp = kcli(
        "train",
        recipe,
        "fit.batch_size=8",
        "fit.epochs=2",
        "--nproc-per-node",
        "2",
        "--runs-dir",
        str(folder / "ddp"),
        "-q",
    )
    assert ddp.returncode == 0, ddp.stderr
    single = kcli(
        "train",
        recipe,
        "fit.batch_size=16",
        "fit.epochs=2",
        "--runs-dir",
        str(folder / "single"),
        "-q",
    )
    assert single.returncode == 0, single.stderr

    def weights(runs: str) -> dict:
        (run_dir,) = [p for p in (folder / runs).glob("*/*") if p.is_dir()]
        header = (run_dir / "metrics.csv").read_text().splitlines()[0]
        assert "val_label_loss" in header and "value_mae" in header
        return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]

    a, b = weights("ddp"), weights("single")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
