"""Callbacks on scripted sequences of logs, against Keras' update rules worked out by hand."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from kcli.errors import KcliError
from kcli.fit import callbacks as cb
from kcli.fit.callbacks import CallbackRef, callback_registry, monitor_mode
from kcli.fit.checkpoint import save_checkpoint


class FakeTrainer:
    """Exactly the trainer surface callbacks may use, around a tiny linear model."""

    def __init__(self, run_dir, lr: float = 0.1) -> None:
        self.model = nn.Linear(2, 1)
        self.run_dir = run_dir
        self.stop_training = False
        self.lr = lr
        self.messages: list[str] = []
        self.epochs_done = 0

    def get_learning_rate(self) -> float:
        return self.lr

    def set_learning_rate(self, value: float) -> None:
        self.lr = value

    def checkpoint_state(self) -> dict:
        return {"model": self.model.state_dict(), "epoch": self.epochs_done, "lr": self.lr}

    # The real trainer batches its writes (CheckpointSaver, tested in test_checkpoint.py);
    # this one writes at once so each test can read the file after each epoch.
    def save_checkpoint(self, path, state: dict) -> None:
        save_checkpoint(path, state)

    def save_full_checkpoint(self, path) -> None:
        save_checkpoint(path, self.checkpoint_state())

    def log(self, message: str) -> None:
        self.messages.append(message)


def make(spec: dict | str, trainer):
    callback = TypeAdapter(CallbackRef).validate_python(spec).build()
    callback.set_trainer(trainer)
    return callback


def drive(callback, trainer, values, monitor="val_loss", start=0, end=True):
    """Run epochs start.. with `monitor` taking `values`; before each epoch end, every weight is
    set to the epoch index so tests can tell which epoch's weights a file or restore holds.
    Returns the learning rate after each epoch."""
    lrs = []
    if start == 0:
        callback.on_train_begin({})
    for epoch, value in enumerate(values, start=start):
        callback.on_epoch_begin(epoch)
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.fill_(float(epoch))
        trainer.epochs_done = epoch + 1
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
        lrs.append(trainer.lr)
        if trainer.stop_training:
            break
    if end:
        callback.on_train_end({})
    return lrs


def weight_value(trainer) -> float:
    return float(trainer.model.weight.detach()[0, 0])


# ---- registry and defaults -----------------------------------------------------------------
def test_registry_names_and_loose_matching():
    assert set(callback_registry.names()) == {
        "EarlyStopping",
        "ReduceLROnPlateau",
        "ModelCheckpoint",
        "LearningRateScheduler",
        "TerminateOnNaN",
        "CSVLogger",
        "TensorBoard",
    }
    spec = TypeAdapter(CallbackRef).validate_python("early_stopping")
    assert spec.type == "EarlyStopping"
    with pytest.raises(ValidationError, match="did you mean 'EarlyStopping'"):
        TypeAdapter(CallbackRef).validate_python({"type": "EarlyStoping"})


def test_keras_defaults():
    es = cb.EarlyStopping()
    assert (es.monitor, es.min_delta, es.patience, es.mode, es.baseline) == (
        "val_loss",
        0.0,
        0,
        "auto",
        None,
    )
    assert (es.restore_best_weights, es.start_from_epoch) == (False, 0)
    rl = cb.ReduceLROnPlateau()
    assert (rl.monitor, rl.factor, rl.patience, rl.min_delta, rl.cooldown, rl.min_lr) == (
        "val_loss",
        0.1,
        10,
        1e-4,
        0,
        0.0,
    )
    mc = cb.ModelCheckpoint()
    # Keras' save_best_only defaults to False; kcli's to True because the trainer already
    # writes checkpoints/last.pt every epoch, so the callback's job is best.pt.
    assert (mc.filepath, mc.monitor, mc.save_best_only, mc.save_weights_only) == (
        "checkpoints/best.pt",
        "val_loss",
        True,
        False,
    )
    csv_logger = cb.CSVLogger()
    assert (csv_logger.filename, csv_logger.separator, csv_logger.append) == ("log.csv", ",", False)
    assert cb.TensorBoard().log_dir == "tensorboard"


def test_callback_modules_import_without_torch():
    code = (
        "import sys, kcli.train, kcli.fit.callbacks, kcli.runs; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("monitor", "mode", "expected"),
    [
        ("val_loss", "auto", "min"),
        ("loss", "auto", "min"),
        ("val_accuracy", "auto", "max"),
        ("sparse_categorical_accuracy", "auto", "max"),
        ("val_auc", "auto", "max"),
        ("val_precision", "auto", "max"),
        ("recall", "auto", "max"),
        ("val_f1_score", "auto", "max"),
        ("val_r2_score", "auto", "max"),
        ("val_mae", "auto", "min"),
        ("val_accuracy", "min", "min"),
        ("val_loss", "max", "max"),
    ],
)
def test_monitor_mode(monitor, mode, expected):
    assert monitor_mode(monitor, mode) == expected


@pytest.mark.parametrize("path", ["/tmp/x.pt", "../x.pt", "checkpoints/../../x.pt", "~/x.pt"])
def test_paths_must_stay_in_the_run_folder(path):
    with pytest.raises(ValidationError, match="inside the run folder"):
        cb.ModelCheckpoint(filepath=path)
    with pytest.raises(ValidationError, match="inside the run folder"):
        cb.CSVLogger(filename=path)


# ---- EarlyStopping -----------------------------------------------------------------------
def test_early_stopping_patience_zero_stops_at_the_first_non_improvement(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make("EarlyStopping", t)
    # e0 1.0 < inf: best, wait 0; e1 0.9 < 1.0: best, wait 0; e2 0.95: wait 1 >= 0 -> stop.
    lrs = drive(es, t, [1.0, 0.9, 0.95, 0.8])
    assert len(lrs) == 3 and es.stopped_epoch == 2 and es.best == 0.9


def test_early_stopping_patience_counts_epochs_without_improvement(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "patience": 2}, t)
    # e2 0.95: wait 1; e3 0.92 (> best 0.9): wait 2 >= 2 -> stop after 4 epochs.
    assert len(drive(es, t, [1.0, 0.9, 0.95, 0.92, 0.85])) == 4
    assert (es.stopped_epoch, es.best_epoch) == (3, 1)


def test_early_stopping_min_delta(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "patience": 2, "min_delta": 0.1}, t)
    # e0 best 1.0; e1 0.95 < 1.0-0.1? no, wait 1; e2 0.85 < 0.9: best, wait 0;
    # e3 0.8 < 0.75? no, wait 1; e4 0.79: wait 2 -> stop at epoch 4.
    assert len(drive(es, t, [1.0, 0.95, 0.85, 0.8, 0.79, 0.1])) == 5
    assert (es.best, es.best_epoch, es.stopped_epoch) == (0.85, 2, 4)


def test_early_stopping_max_mode_for_accuracy(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "monitor": "val_accuracy"}, t)
    # e1 0.6 > 0.5: best; e2 0.6 > 0.6? no -> wait 1 >= 0 -> stop.
    assert len(drive(es, t, [0.5, 0.6, 0.6, 0.9], monitor="val_accuracy")) == 3


def test_early_stopping_baseline_must_be_beaten_to_reset_the_wait(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "patience": 2, "baseline": 0.5}, t)
    # e0 0.9: best but not < 0.5, wait stays 1; e1 0.8: best, wait 2 (no check on improvement);
    # e2 0.8: no improvement, wait 3 >= 2 -> stop. Without the baseline it would go on.
    assert len(drive(es, t, [0.9, 0.8, 0.8, 0.8])) == 3
    t2 = FakeTrainer(tmp_path)
    assert len(drive(make({"type": "EarlyStopping", "patience": 2}, t2), t2, [0.9, 0.8, 0.8])) == 3
    assert not t2.stop_training
    t3 = FakeTrainer(tmp_path)
    es3 = make({"type": "EarlyStopping", "patience": 2, "baseline": 0.5}, t3)
    # e0 wait 1; e1 0.4 beats best and baseline: wait 0; e2 wait 1; e3 wait 2 -> stop at 3.
    assert len(drive(es3, t3, [0.9, 0.4, 0.45, 0.46, 0.47])) == 4


def test_early_stopping_restores_the_best_epochs_weights(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "patience": 1, "restore_best_weights": True}, t)
    # best at e1 (0.5); e2 0.7: wait 1 >= 1 -> stop. Weights were filled with 2 at e2.
    drive(es, t, [1.0, 0.5, 0.7, 0.8])
    assert es.stopped_epoch == 2
    assert weight_value(t) == 1.0 and float(t.model.bias.detach()[0]) == 1.0


def test_early_stopping_restores_best_weights_even_without_stopping(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "patience": 10, "restore_best_weights": True}, t)
    drive(es, t, [1.0, 0.5, 0.7])
    assert not t.stop_training
    assert weight_value(t) == 1.0  # epoch 1's weights, not the last epoch's 2.0


def test_early_stopping_start_from_epoch(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make({"type": "EarlyStopping", "start_from_epoch": 2}, t)
    # e0, e1 ignored (else e1 0.6 > 0.5 would stop); e2 0.9 is the first best; e3 1.0 stops.
    assert len(drive(es, t, [0.5, 0.6, 0.9, 1.0, 0.1])) == 4


def test_missing_monitor_warns_once_and_is_skipped(tmp_path):
    t = FakeTrainer(tmp_path)
    es = make("EarlyStopping", t)
    drive(es, t, [1.0, 2.0, 3.0], monitor="loss_only")
    assert not t.stop_training
    assert len(t.messages) == 1 and "'val_loss' is not among the logged values" in t.messages[0]


def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_early_stopping_state_dict_resumes_counting(tmp_path):
    spec = {"type": "EarlyStopping", "patience": 2, "restore_best_weights": True}
    values = [1.0, 0.5, 0.6, 0.7, 0.4]
    whole = FakeTrainer(tmp_path)
    es = make(spec, whole)
    drive(es, whole, values)  # e2 wait 1, e3 wait 2 -> stop at 3 with epoch 1's weights
    first = FakeTrainer(tmp_path)
    es1 = make(spec, first)
    drive(es1, first, values[:3], end=False)  # "interrupted" after epoch 2 (wait 1)
    second = FakeTrainer(tmp_path)
    es2 = make(spec, second)
    es2.load_state_dict(_round_trip(es1.state_dict()))
    es2.on_train_begin({})
    drive(es2, second, values[3:], start=3)
    assert es2.stopped_epoch == es.stopped_epoch == 3
    assert weight_value(second) == weight_value(whole) == 1.0


# ---- ReduceLROnPlateau -------------------------------------------------------------------
def test_reduce_lr_on_plateau_factor_and_patience(tmp_path):
    t = FakeTrainer(tmp_path, lr=0.1)
    rl = make({"type": "ReduceLROnPlateau", "factor": 0.5, "patience": 2}, t)
    # e0 best; e1 wait 1; e2 wait 2 -> 0.1*0.5; e3 wait 1; e4 wait 2 -> 0.05*0.5.
    assert drive(rl, t, [1.0] * 5) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_reduce_lr_on_plateau_min_delta(tmp_path):
    t = FakeTrainer(tmp_path, lr=0.1)
    rl = make({"type": "ReduceLROnPlateau", "patience": 1}, t)
    # 0.99995 < 1.0 - 1e-4 = 0.9999 is false: no improvement, wait 1 >= 1 -> 0.1 * 0.1.
    assert drive(rl, t, [1.0, 0.99995]) == pytest.approx([0.1, 0.01])
    t2 = FakeTrainer(tmp_path, lr=0.1)
    rl2 = make({"type": "ReduceLROnPlateau", "patience": 1}, t2)
    assert drive(rl2, t2, [1.0, 0.9998]) == pytest.approx([0.1, 0.1])  # 0.9998 < 0.9999


def test_reduce_lr_on_plateau_cooldown(tmp_path):
    t = FakeTrainer(tmp_path, lr=1.0)
    rl = make({"type": "ReduceLROnPlateau", "factor": 0.5, "patience": 1, "cooldown": 2}, t)
    # e1 reduce to 0.5, cooldown 2; e2 cooldown 1 (no counting); e3 cooldown 0 then wait 1 ->
    # 0.25, cooldown 2; e4 cooldown 1; e5 -> 0.125; e6 cooldown.
    assert drive(rl, t, [1.0] * 7) == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125])


def test_reduce_lr_on_plateau_min_lr(tmp_path):
    t = FakeTrainer(tmp_path, lr=0.1)
    rl = make({"type": "ReduceLROnPlateau", "patience": 0, "min_lr": 0.005}, t)
    # e1 max(0.01, 0.005); e2 max(0.001, 0.005) = 0.005; e3 0.005 > 0.005 is false: unchanged.
    assert drive(rl, t, [1.0] * 4) == pytest.approx([0.1, 0.01, 0.005, 0.005])


def test_reduce_lr_on_plateau_max_mode_and_factor_bound(tmp_path):
    t = FakeTrainer(tmp_path, lr=0.1)
    rl = make({"type": "ReduceLROnPlateau", "monitor": "val_accuracy", "patience": 1}, t)
    assert drive(rl, t, [0.5, 0.6, 0.7], monitor="val_accuracy") == pytest.approx([0.1] * 3)
    with pytest.raises(ValidationError):
        cb.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_state_dict_resumes_counting(tmp_path):
    spec = {"type": "ReduceLROnPlateau", "factor": 0.5, "patience": 1, "cooldown": 2}
    whole = FakeTrainer(tmp_path, lr=1.0)
    expected = drive(make(spec, whole), whole, [1.0] * 7)
    first = FakeTrainer(tmp_path, lr=1.0)
    rl1 = make(spec, first)
    lrs = drive(rl1, first, [1.0] * 3, end=False)  # in the middle of a cooldown
    second = FakeTrainer(tmp_path, lr=first.lr)
    rl2 = make(spec, second)
    rl2.load_state_dict(_round_trip(rl1.state_dict()))
    rl2.on_train_begin({})
    assert lrs + drive(rl2, second, [1.0] * 4, start=3) == pytest.approx(expected)


# ---- ModelCheckpoint ---------------------------------------------------------------------
def saved_epoch(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


def test_model_checkpoint_writes_only_on_improvement(tmp_path):
    t = FakeTrainer(tmp_path)
    mc = make("ModelCheckpoint", t)
    path = tmp_path / "checkpoints" / "best.pt"
    mc.on_train_begin({})
    written = []
    for epoch, value in enumerate([1.0, 0.8, 0.9, 0.7, 0.7]):
        drive(mc, t, [value], start=epoch, end=False)
        written.append(saved_epoch(path))
    assert written == [1, 2, 2, 4, 4]  # 0.9 and the second 0.7 are not improvements
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert float(state["model"]["weight"][0, 0]) == 3.0  # epoch index 3's weights
    assert state["lr"] == 0.1  # the trainer's full checkpoint state


def test_model_checkpoint_max_mode_and_weights_only(tmp_path):
    t = FakeTrainer(tmp_path)
    spec = {"type": "ModelCheckpoint", "monitor": "val_accuracy", "save_weights_only": True}
    drive(make(spec, t), t, [0.5, 0.7, 0.6], monitor="val_accuracy")
    state = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert set(state) == {"model", "epoch"} and state["epoch"] == 2


def test_model_checkpoint_every_epoch_with_a_template(tmp_path):
    t = FakeTrainer(tmp_path)
    spec = {
        "type": "ModelCheckpoint",
        "filepath": "checkpoints/e{epoch:02d}-{val_loss:.2f}.pt",
        "save_best_only": False,
    }
    drive(make(spec, t), t, [1.0, 1.25])
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["e01-1.00.pt", "e02-1.25.pt"]  # epoch in names is 1-based, as in Keras


def test_model_checkpoint_template_errors(tmp_path):
    with pytest.raises(ValidationError, match="placeholders need a name"):
        cb.ModelCheckpoint(filepath="checkpoints/{}.pt")
    with pytest.raises(ValidationError, match="not a valid path template"):
        cb.ModelCheckpoint(filepath="checkpoints/{epoch.pt")
    t = FakeTrainer(tmp_path)
    mc = make({"type": "ModelCheckpoint", "filepath": "{val_acc}.pt"}, t)
    with pytest.raises(KcliError, match="names 'val_acc', which is not logged"):
        drive(mc, t, [1.0])


def test_model_checkpoint_initial_value_threshold_and_state(tmp_path):
    t = FakeTrainer(tmp_path)
    spec = {"type": "ModelCheckpoint", "initial_value_threshold": 0.85}
    mc = make(spec, t)
    path = tmp_path / "checkpoints" / "best.pt"
    drive(mc, t, [1.0], end=False)
    assert not path.exists()  # 1.0 does not beat 0.85
    drive(mc, t, [0.8], start=1, end=False)
    assert saved_epoch(path) == 2
    resumed = make(spec, t)
    resumed.load_state_dict(_round_trip(mc.state_dict()))
    drive(resumed, t, [0.82], start=2)  # worse than the restored best 0.8: no write
    assert saved_epoch(path) == 2


# ---- LearningRateScheduler, TerminateOnNaN -----------------------------------------------
def test_learning_rate_scheduler_sets_the_rate_per_epoch(tmp_path):
    t = FakeTrainer(tmp_path, lr=1.0)
    schedule = {
        "type": "ExponentialDecay",
        "initial_learning_rate": 0.1,
        "decay_steps": 1,
        "decay_rate": 0.5,
    }
    lrs = drive(
        make({"type": "LearningRateScheduler", "schedule": schedule, "verbose": 1}, t), t, [0.0] * 3
    )
    assert lrs == pytest.approx([0.1, 0.05, 0.025])  # 0.1 * 0.5**epoch, epoch 0-based
    assert t.messages[1] == "Epoch 2: LearningRateScheduler setting learning rate to 0.05."
    t2 = FakeTrainer(tmp_path, lr=1.0)
    steps = {"type": "PiecewiseConstantDecay", "boundaries": [1], "values": [1.0, 0.1]}
    lrs = drive(make({"type": "LearningRateScheduler", "schedule": steps}, t2), t2, [0.0] * 3)
    assert lrs == pytest.approx([1.0, 1.0, 0.1])  # epoch 1 is the boundary: still 1.0


@pytest.mark.parametrize(("loss", "stops"), [(math.nan, True), (math.inf, True), (2.5, False)])
def test_terminate_on_nan(tmp_path, loss, stops):
    t = FakeTrainer(tmp_path)
    callback = make("TerminateOnNaN", t)
    callback.on_epoch_end(0, {"loss": loss})
    assert t.stop_training is stops


# ---- CSVLogger ---------------------------------------------------------------------------
def run_csv(callback, epochs, start=0, end=True):
    callback.on_train_begin({})
    for epoch in range(start, start + epochs):
        callback.on_epoch_end(epoch, {"val_loss": 0.25 * epoch, "loss": 0.5, "accuracy": 0.75})
    if end:
        callback.on_train_end({})


def test_csv_logger_writes_keras_format(tmp_path):
    t = FakeTrainer(tmp_path)
    run_csv(make("CSVLogger", t), 2)
    # 0-based epoch first, then the logged names sorted, as Keras' CSVLogger writes them.
    assert (tmp_path / "log.csv").read_text() == (
        "epoch,accuracy,loss,val_loss\n0,0.75,0.5,0.0\n1,0.75,0.5,0.25\n"
    )


def test_csv_logger_separator_and_append(tmp_path):
    t = FakeTrainer(tmp_path)
    spec = {"type": "CSVLogger", "filename": "logs/train.csv", "separator": ";", "append": True}
    run_csv(make(spec, t), 1)
    run_csv(make(spec, t), 1, start=1)
    assert (tmp_path / "logs" / "train.csv").read_text() == (
        "epoch;accuracy;loss;val_loss\n0;0.75;0.5;0.0\n1;0.75;0.5;0.25\n"
    )
    run_csv(make({**spec, "append": False}, t), 1)  # without append the file starts over
    assert (tmp_path / "logs" / "train.csv").read_text().count("\n") == 2


def test_csv_logger_resume_drops_rows_after_the_checkpoint(tmp_path):
    t = FakeTrainer(tmp_path)
    first = make("CSVLogger", t)
    run_csv(first, 2, end=False)
    state = _round_trip(first.state_dict())  # checkpointed after epoch index 1
    first.on_epoch_end(2, {"loss": 0.5})  # epoch 2 logged, then a crash before its checkpoint
    first.on_train_end({})
    resumed = make("CSVLogger", t)
    resumed.load_state_dict(state)
    run_csv(resumed, 2, start=2)
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "0", "1", "2", "3"]


# ---- TensorBoard -------------------------------------------------------------------------
def test_tensorboard_without_the_package_fails_before_training(monkeypatch):
    # None in sys.modules makes `import` raise ImportError, as if tensorboard were missing.
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    hint = r"pip install \"kcli-keras\[tensorboard\]\" \(in a checkout"
    with pytest.raises(KcliError, match=hint):
        TypeAdapter(CallbackRef).validate_python("TensorBoard").build()


class FakeWriter:
    instances: list[FakeWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.histograms, self.closed = log_dir, [], [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_histogram(self, tag, values, step):
        self.histograms.append((tag, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_logs_train_and_validation_like_keras(tmp_path, monkeypatch):
    FakeWriter.instances = []
    monkeypatch.setattr(cb.loggers, "_summary_writer_class", lambda: FakeWriter)
    t = FakeTrainer(tmp_path)
    callback = make({"type": "TensorBoard", "histogram_freq": 2}, t)
    callback.on_train_begin({})
    for epoch in range(3):
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 2.0, "lr": 0.1})
    callback.on_train_end({})
    train, validation = FakeWriter.instances
    assert train.log_dir == str(tmp_path / "tensorboard" / "train")
    assert validation.log_dir == str(tmp_path / "tensorboard" / "validation")
    assert ("epoch_loss", 1.0, 1) in train.scalars and (
        "epoch_learning_rate",
        0.1,
        1,
    ) in train.scalars
    assert validation.scalars == [("epoch_loss", 2.0, e) for e in range(3)]
    # histograms at epochs 0 and 2 (epoch % 2 == 0), one per parameter (weight, bias)
    assert train.histograms == [("weight", 0), ("bias", 0), ("weight", 2), ("bias", 2)]
    assert train.closed and validation.closed
