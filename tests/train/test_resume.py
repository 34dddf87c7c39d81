"""`--resume` continues a run exactly: same weights, same metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.train.conftest import TINY_RECIPE, metric_rows, run_cli


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def assert_same_run(a: Path, b: Path) -> None:
    assert metric_rows(a) == metric_rows(b)
    weights_a, weights_b = last_weights(a), last_weights(b)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


def test_resume_with_more_epochs_equals_an_uninterrupted_run(write_recipe, train, tmp_path):
    recipe = write_recipe()
    _, full = train(recipe, "fit.epochs=5", runs=tmp_path / "a")
    _, short = train(recipe, "fit.epochs=2", runs=tmp_path / "b")
    short_dir = Path(short["run_dir"])
    result = run_cli("train", "--resume", str(short_dir), "fit.epochs=5", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run_dir"] == str(short_dir)
    assert_same_run(Path(full["run_dir"]), short_dir)
    record = json.loads((short_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 5
    assert len(record["resumed_from"]) == 1


def test_resume_refuses_changes_other_than_epochs(write_recipe, train):
    _, short = train(write_recipe(), "fit.epochs=1")
    result = run_cli("train", "--resume", short["run_dir"], "fit.batch_size=8")
    assert result.exit_code == 2
    assert "only fit.epochs can change" in result.stderr


SLOW_RECIPE = (
    TINY_RECIPE.replace("n_samples: 240", "n_samples: 6000")
    .replace("batch_size: 16", "batch_size: 4")
    .replace("epochs: 4", "epochs: 3")
)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_checkpoints_mid_run_and_resume_finishes_identically(
    write_recipe, tmp_path, stop_signal
):
    recipe = write_recipe(SLOW_RECIPE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = tmp_path / "interrupted"
    command = [sys.executable, "-m", "kcli", "train", str(recipe), "--runs-dir", str(runs), "-q"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the first epoch is logged, then interrupt somewhere in the second.
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline and process.poll() is None:
        found = list(runs.glob("tiny/*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            metrics = found[0]
            break
        time.sleep(0.05)
    assert metrics is not None, process.communicate()
    time.sleep(0.2)
    process.send_signal(stop_signal)  # SIGTERM (a cancelled CI job) is handled as Ctrl-C
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    run_dir = metrics.parent
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] >= 1

    result = run_cli("train", "--resume", str(run_dir), "-q")
    assert result.exit_code == 0, result.output
    _, full = (
        None,
        run_cli("train", str(recipe), "--runs-dir", str(tmp_path / "full"), "-q", "--json"),
    )
    full_dir = Path(json.loads(full.stdout)["run_dir"])
    assert_same_run(full_dir, run_dir)


def test_a_crash_loses_no_epoch_even_when_writes_were_deferred(
    write_recipe, train, tmp_path, monkeypatch
):
    """Checkpoint files are written at most once a second (CheckpointSaver); a crash must
    still leave last.pt at the last finished epoch, and --resume must finish identically."""
    from kcli.fit import checkpoint
    from kcli.fit.steps import Stepper

    recipe = write_recipe()
    _, full = train(recipe, runs=tmp_path / "a")

    monkeypatch.setattr(checkpoint, "WRITE_INTERVAL_S", 3600.0)  # defer all but the first round
    real_step, steps = Stepper.train_step, []

    def crash_in_epoch_3(self, *args):
        steps.append(1)
        if len(steps) == 2 * 8 + 5:  # 120 training samples / batch 16: 8 steps an epoch
            raise RuntimeError("simulated crash")
        return real_step(self, *args)

    monkeypatch.setattr(Stepper, "train_step", crash_in_epoch_3)
    with pytest.raises(RuntimeError, match="simulated crash"):  # a bug's traceback, as is
        train(recipe, runs=tmp_path / "b")
    (run_dir,) = (tmp_path / "b" / "tiny").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and "simulated crash" in record["message"]
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2

    monkeypatch.undo()
    resumed = run_cli("train", "--resume", str(run_dir), "--json", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(Path(full["run_dir"]), run_dir)


def test_an_error_in_a_later_callback_still_writes_the_epochs_checkpoints(
    write_recipe, train, tmp_path, monkeypatch
):
    # A ModelCheckpoint saved this epoch's state, then a later callback failed: the saved
    # state (the weights at this epoch's end) must reach the disk, deferred or not.
    from kcli.fit import checkpoint
    from kcli.fit.callbacks import TerminateOnNaNCallback

    monkeypatch.setattr(checkpoint, "WRITE_INTERVAL_S", 3600.0)

    def fail_in_epoch_2(self, epoch, logs):
        if epoch == 1:
            raise RuntimeError("callback failed")

    monkeypatch.setattr(TerminateOnNaNCallback, "on_epoch_end", fail_in_epoch_2)
    recipe = write_recipe(
        TINY_RECIPE
        + "  callbacks:\n"
        + "    - {type: ModelCheckpoint, filepath: 'checkpoints/e{epoch}.pt',"
        + " save_best_only: false}\n"
        + "    - {type: TerminateOnNaN}\n"
    )
    with pytest.raises(RuntimeError, match="callback failed"):
        train(recipe)
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    saved = torch.load(run_dir / "checkpoints" / "e2.pt", weights_only=True)
    assert saved["epoch"] == 2


def test_kill_9_loses_at_most_the_last_second_and_resume_finishes_identically(
    write_recipe, tmp_path
):
    # A process killed outright cannot flush: last.pt may lag metrics.csv by up to a second of
    # epochs (CheckpointSaver). --resume must drop the rows past the checkpoint and end exactly
    # where an uninterrupted run does.
    recipe = write_recipe(TINY_RECIPE.replace("epochs: 4", "epochs: 300"))
    runs = tmp_path / "killed"
    command = [sys.executable, "-m", "kcli", "train", str(recipe), "--runs-dir", str(runs), "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, metrics = time.time() + 120, None
    while time.time() < deadline and process.poll() is None:
        found = list(runs.glob("tiny/*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) >= 60:
            metrics = found[0]
            break
        time.sleep(0.02)
    assert metrics is not None, process.communicate()
    process.kill()
    process.communicate(timeout=60)
    run_dir = metrics.parent
    rows_written = len(metrics.read_text().splitlines()) - 1
    saved_epoch = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= saved_epoch <= rows_written

    result = run_cli("train", "--resume", str(run_dir), "-q")
    assert result.exit_code == 0, result.output
    full = run_cli("train", str(recipe), "--runs-dir", str(tmp_path / "full"), "-q", "--json")
    assert_same_run(Path(json.loads(full.stdout)["run_dir"]), run_dir)
