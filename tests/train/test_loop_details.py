"""Details of the loop: Keras' logged loss, class weights, the progress display, compile."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kcli.fit.progress import (
    Progress,
    bar,
    eta_text,
    fitted_logs,
    format_logs,
    format_value,
    per_step_text,
)
from tests.train.conftest import TINY_RECIPE

FROZEN_RECIPE = TINY_RECIPE.replace(
    "{type: Adam, learning_rate: 0.01}", "{type: SGD, learning_rate: 0.0}"
).replace("    - {type: Dropout, rate: 0.1}\n", "")


def frozen_run(recipe_path: Path, run_dir: Path):
    """A frozen run's weights, and its train split through them: (weights, logits, labels)."""
    from kcli.data import load_data
    from kcli.recipe.load import load_recipe

    weights = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    recipe = load_recipe(recipe_path).recipe
    train_split = load_data(recipe.data, recipe_path.parent, recipe.seed).train
    x = torch.from_numpy(np.asarray(train_split.x, dtype=np.float32))
    y = torch.from_numpy(np.asarray(train_split.y)).long()
    hidden = torch.relu(x @ weights["dense.kernel"].T + weights["dense.bias"])
    return weights, hidden @ weights["dense_1.kernel"].T + weights["dense_1.bias"], y


def first_row(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    return dict(zip(lines[0].split(","), lines[1].split(","), strict=True))


def test_logged_loss_is_the_sample_mean_plus_the_l2_penalty(write_recipe, train):
    # With a zero learning rate the weights never move, so the epoch's logged loss must be
    # Keras' number for those weights: mean crossentropy over the train samples + 0.001*sum(w^2).
    recipe_path = write_recipe(FROZEN_RECIPE)
    result, document = train(recipe_path, "fit.epochs=1")
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    weights, logits, y = frozen_run(recipe_path, run_dir)
    crossentropy = torch.nn.functional.cross_entropy(logits.double(), y)
    penalty = 0.001 * weights["dense.kernel"].double().square().sum()
    logged = first_row(run_dir)
    assert abs(float(logged["loss"]) - float(crossentropy + penalty)) < 1e-5
    assert abs(float(logged["regularization"]) - float(penalty)) < 1e-6
    # Training accuracy reads the logits (the softmax is skipped: it keeps the order), and
    # must be the share of samples whose largest score is the label.
    accuracy = (logits.argmax(1) == y).double().mean()
    assert float(logged["accuracy"]) == pytest.approx(float(accuracy), abs=1e-6)


def test_order_only_metrics_skip_the_softmax_and_others_keep_it(tmp_path):
    from kcli.compile.metrics import metric_registry
    from kcli.fit.steps import Objective, Stepper
    from kcli.model.graph import plan_graph
    from kcli.model.nn.model import build_model
    from kcli.recipe.load import load_recipe

    def stepper(metric_names, regularized=False):
        extra = ", activity_regularizer: {l2: 0.01}" if regularized else ""
        path = tmp_path / "recipe.yaml"
        last = "units: 3, activation: softmax"
        path.write_text(TINY_RECIPE.replace(last + "}", last + extra + "}"))
        model = build_model(plan_graph(load_recipe(path).recipe.model))
        objective = Objective(lambda p, y: p.sum(1), True, "softmax")
        return Stepper(model, objective, None, torch.device("cpu")), [
            metric_registry.get(name).model_validate({}).build() for name in metric_names
        ]

    step, metrics = stepper(["sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy"])
    assert step._metrics_read_logits(metrics)
    # ... and the training pass then really leaves the softmax out: its output is the logits.
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    step.model.eval()  # no dropout: both passes see the same network
    _, _, (output,), _ = step._losses(x, y, None, activate_outputs=False)
    outputs, pres, _ = step.model.forward_train(x)
    assert torch.equal(output, pres[0]) and not torch.allclose(output, outputs[0])
    assert torch.allclose(outputs[0], torch.softmax(pres[0], dim=-1))
    step, metrics = stepper(["sparse_categorical_accuracy", "mean_squared_error"])
    assert not step._metrics_read_logits(metrics)  # mse reads the probabilities
    step, metrics = stepper(["sparse_categorical_accuracy"], regularized=True)
    assert not step._metrics_read_logits(metrics)  # the penalty reads the activated output


def test_class_weights_weight_only_the_weighted_metrics(write_recipe, train):
    # Keras weights the loss and `weighted_metrics` by the class weights, never `metrics`.
    # Frozen weights (learning rate 0, no dropout) let the test recompute both accuracies.
    text = FROZEN_RECIPE.replace(
        "  metrics: [accuracy]\n", "  metrics: [accuracy]\n  weighted_metrics: [accuracy]\n"
    ).replace("  epochs: 4\n", "  epochs: 4\n  class_weight: {0: 1.0, 1: 6.0, 2: 0.25}\n")
    recipe_path = write_recipe(text)
    result, document = train(recipe_path, "fit.epochs=1")
    assert result.exit_code == 0, result.output
    run_dir = Path(document["run_dir"])
    _, logits, y = frozen_run(recipe_path, run_dir)
    correct = (logits.argmax(1) == y).double()
    class_weight = torch.tensor([1.0, 6.0, 0.25], dtype=torch.float64)[y]
    logged = first_row(run_dir)
    # The unweighted metric keeps its name; the weighted one of the same name is
    # `weighted_accuracy`, as Keras logs it, and both exist for validation too.
    assert float(logged["accuracy"]) == pytest.approx(float(correct.mean()), abs=1e-6)
    weighted = (class_weight * correct).sum() / class_weight.sum()
    assert float(logged["weighted_accuracy"]) == pytest.approx(float(weighted), abs=1e-6)
    assert abs(float(weighted) - float(correct.mean())) > 0.01  # the test can tell them apart
    assert "val_weighted_accuracy" in logged
    # Validation has no class weights (Keras applies class_weight to training data only).
    assert logged["val_weighted_accuracy"] == logged["val_accuracy"]


def test_logged_metric_names_follow_keras():
    from kcli.compile.spec import CompileSpec

    spec = CompileSpec.model_validate(
        {
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy", "accuracy", "mae"],
            "weighted_metrics": ["accuracy", "auc", {"type": "mae", "name": "w_mae"}],
        }
    )
    logged = spec.logged_metrics()
    assert [m.log_name for m in logged] == [
        "accuracy",
        "accuracy_1",
        "mae",
        "weighted_accuracy",
        "auc",
        "w_mae",
    ]
    assert [m.sample_weighted for m in logged] == [False, False, False, True, True, True]
    # accuracy is resolved against the loss (sparse labels) in both lists.
    assert {m.type for m in logged if "accuracy" in m.log_name} == {"sparse_categorical_accuracy"}
    # An unweighted streaming metric drops the weights it is given; a weighted one uses them.
    p, labels, w = (
        torch.tensor([[0.9, 0.1], [0.2, 0.8]]),
        torch.tensor([0, 0]),
        torch.tensor([3.0, 1.0]),
    )
    plain, weighted = logged[0].streaming(), logged[3].streaming()
    plain.update(p, labels, w)
    weighted.update(p, labels, w)
    assert float(plain.compute()) == 0.5 and float(weighted.compute()) == 0.75


def test_balanced_class_weights_are_n_over_k_times_count():
    from types import SimpleNamespace

    from kcli.train.setup import train_weights

    labels = np.array([0, 0, 0, 1, 2, 2])
    splits = SimpleNamespace(train=SimpleNamespace(y=labels, sample_weight=None), targets=None)
    weights = train_weights("balanced", splits, ["dense"])
    # n / (k * count): 6 / (3 * 3) for class 0, 6 / (3 * 1) for class 1, 6 / (3 * 2) for class 2.
    expected = np.array([6 / 9, 6 / 9, 6 / 9, 2.0, 1.0, 1.0], dtype=np.float32)
    assert np.allclose(weights, expected)
    mapping = train_weights({0: 1.0, 1: 4.0, 2: 0.5}, splits, ["dense"])
    assert np.allclose(mapping, [1, 1, 1, 4, 0.5, 0.5])


def test_keras_value_format_and_bar():
    assert format_value(0.123456) == "0.1235"
    assert format_value(0.0000123) == "1.2300e-05"
    assert format_logs({"loss": 1.0, "accuracy": 0.5}) == "accuracy: 0.5000 - loss: 1.0000"
    assert bar(20, 20) == "━" * 20 and bar(0, 20) == " " * 20 and len(bar(7, 20)) == 20


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_output_prints_one_line_per_epoch():
    stream = io.StringIO()
    progress = Progress(epochs=3, stream=stream)
    progress.start_epoch(0, 10)
    for step in range(1, 11):
        progress.step(step, lambda: {"loss": 1.0})
    progress.end_epoch(0, 10, {"loss": 0.5, "lr": 0.1, "seconds": 1.0})
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("Epoch 1/3 - 10 steps") and line.endswith("loss: 0.5000")


def test_time_per_step_after_a_mid_epoch_resume_counts_only_the_steps_run_now(monkeypatch):
    # 30 of 40 steps ran before the interruption; the resumed process runs 10 in 0.02 s:
    # 2 ms per step, not 0.02 s / 40 = 500 us.
    clock = iter([100.0, 100.02])
    monkeypatch.setattr("kcli.fit.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress(epochs=2, stream=stream)
    progress.start_epoch(1, 40, done_before=30)
    progress.end_epoch(1, 40, {"loss": 0.5})
    assert " 2ms/step " in stream.getvalue()


def test_live_bar_reads_the_running_logs_only_when_it_redraws():
    calls = []
    progress = Progress(epochs=1, stream=_Terminal(), refresh_hz=1e-3)  # one redraw per 1000 s
    progress.start_epoch(0, 500)
    for step in range(1, 501):
        progress.step(step, lambda: calls.append(1) or {"loss": 1.0})
    assert len(calls) == 0  # no host sync per batch
    progress.end_epoch(0, 500, {"loss": 1.0})


def test_live_bar_shows_the_epochs_eta_then_its_time(monkeypatch):
    # 10 of 40 steps in 2 s: 0.2 s a step, 30 steps left: ETA 6s. At the end: the time taken.
    clock = iter([100.0, 102.0, 108.0])
    monkeypatch.setattr("kcli.fit.progress.time.perf_counter", lambda: next(clock))
    stream = _Terminal()
    progress = Progress(epochs=1, stream=stream, refresh_hz=1e9)
    progress.start_epoch(0, 40)
    progress.step(10, lambda: {"loss": 1.0})
    progress.end_epoch(0, 40, {"loss": 0.5})
    drawn = [line for line in stream.getvalue().split("\r") if line.startswith(("10/", "40/"))]
    assert drawn[0].startswith("10/40 ") and " ETA 6s 200ms/step - loss: 1.0000" in drawn[0]
    assert drawn[1].startswith("40/40 ") and " 8s 200ms/step - loss: 0.5000" in drawn[1]
    assert eta_text(7.9) == "7s" and eta_text(125) == "2:05" and eta_text(3725) == "1:02:05"


def test_live_bar_fits_an_80_column_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = _Terminal()
    progress = Progress(epochs=1, stream=stream)
    logs = {
        "loss": 0.25,
        "accuracy": 0.9,
        "precision": 0.8,
        "recall": 0.7,
        "auc": 0.95,
        "val_loss": 0.3,
        "val_accuracy": 0.85,
    }
    progress.start_epoch(0, 47)
    progress.end_epoch(0, 47, logs)
    (line,) = [part for part in stream.getvalue().split("\r") if part.startswith("47/47")]
    line = line.replace("\x1b[K", "").rstrip("\n")
    # One line shorter than the terminal; loss and val_loss kept, the rest as room allows.
    assert len(line) <= 79
    assert "loss: 0.2500" in line and "val_loss: 0.3000" in line and line.endswith(" …")
    # A wide terminal shows every metric.
    monkeypatch.setenv("COLUMNS", "250")
    assert fitted_logs(logs, 250).count(" - ") == len(logs)
    assert fitted_logs(logs, 30) == " - loss: 0.2500 …"


def test_quiet_prints_nothing():
    stream = _Terminal()
    progress = Progress(epochs=1, stream=stream, quiet=True)
    progress.start_epoch(0, 2)
    progress.end_epoch(0, 2, {"loss": 1.0})
    progress.message("hello")
    assert stream.getvalue() == ""


def test_torch_compile_trains(write_recipe, train):
    result, document = train(write_recipe(), "fit.compile=true", "fit.epochs=1")
    assert result.exit_code == 0, result.output
    record = json.loads((Path(document["run_dir"]) / "run.json").read_text())
    assert record["status"] == "completed"


COMPILED_RNN = """\
name: rnn
seed: 5
data:
  source: synthetic:sequences
  params: {n_samples: 130, length: 8, n_features: 2, n_classes: 3}
  validation_split: 0.2
model:
  input_shape: [8, 2]
  layers:
    - {type: LSTM, units: 4, return_sequences: true}
    - {type: GRU, units: 4}
    - {type: Dense, units: 3, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
fit: {epochs: 2, batch_size: 16, compile: true}
"""

COMPILED_CNN = """\
name: cnn
seed: 4
data:
  source: synthetic:images
  params: {n_samples: 90, height: 8, width: 8, channels: 3, n_classes: 3}
  validation_split: 0.2
model:
  input_shape: [8, 8, 3]
  layers:
    - {type: Conv2D, filters: 4, kernel_size: 3, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Flatten}
    - {type: Dense, units: 3, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
fit: {epochs: 2, batch_size: 16, compile: true}
"""


def test_torch_compile_trains_recurrent_and_conv_models_in_one_process(write_recipe, train):
    # Two regressions of fit.compile on CPU: inductor cannot compile the fused LSTM kernel
    # (it now runs eagerly inside the compiled model), and a process compiling a second model
    # switched dynamo to dynamic shapes, on which inductor failed for the CNN (now static shapes).
    # The sample counts leave a partial last batch, so each model also sees a second shape.
    for text in (COMPILED_RNN, COMPILED_CNN):
        result, document = train(write_recipe(text, name=text.split()[1] + ".yaml"))
        assert result.exit_code == 0, result.output
        record = json.loads((Path(document["run_dir"]) / "run.json").read_text())
        assert record["status"] == "completed"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2.4, "2s/step"),  # a second or more: seconds
        (0.0031, "3ms/step"),  # from a millisecond: milliseconds
        (0.00045, "450us/step"),  # under a millisecond: microseconds, as Keras (not "0ms")
        (0.0, "0s/step"),  # no time measured yet: Keras shows 0s
    ],
)
def test_time_per_step_uses_keras_units(seconds, text):
    assert per_step_text(seconds) == text
