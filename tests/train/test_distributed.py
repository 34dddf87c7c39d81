"""Distributed training on 2 CPU processes (gloo), through `kcli train --nproc-per-node 2`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

# Without dropout or regularization, so 2 ranks x batch 16 must equal 1 process x batch 32.
EXACT_RECIPE = """\
name: ddp
seed: 3
data:
  source: synthetic:classification
  params: {n_samples: 256, n_features: 5, n_classes: 2}
  preprocess: [standardize]
model:
  input_shape: [5]
  layers:
    - {type: Dense, units: 8, activation: tanh}
    - {type: Dense, units: 2, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 2, batch_size: 16}
"""


def kcli(*args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "kcli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.glob("*/*") if p.is_dir()]
    return run_dir


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "ddp.yaml"
    path.write_text(EXACT_RECIPE)
    return path


@pytest.fixture(scope="module")
def scratch_temp(tmp_path_factory) -> Path:
    """The temp folder of the distributed runs here (TMPDIR), to see what they leave in it."""
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def two_process_run(recipe, tmp_path_factory, scratch_temp) -> Path:
    runs = tmp_path_factory.mktemp("runs2")
    done = kcli(
        "train",
        str(recipe),
        "--nproc-per-node",
        "2",
        "--runs-dir",
        str(runs),
        env={"TMPDIR": str(scratch_temp)},
    )
    assert done.returncode == 0, done.stderr
    return only_run(runs)


def test_ranks_leave_no_scratch_folder_behind(two_process_run, scratch_temp):
    # Rank 1 writes its callbacks' files into a kcli-rank-* folder of its own; workers end with
    # os._exit, so the folder must be removed before that.
    assert not list(scratch_temp.glob("kcli-rank-*"))


def test_two_processes_write_one_completed_run(two_process_run):
    record = json.loads((two_process_run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert record["distributed"]["world_size"] == 2
    assert record["distributed"]["global_batch_size"] == 32
    lines = (two_process_run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3  # header + 2 epochs, written once (by rank 0 only)


def test_both_ranks_end_with_identical_weights(two_process_run):
    distributed = json.loads((two_process_run / "run.json").read_text())["distributed"]
    first, second = distributed["weight_digests"]
    assert first == second and distributed["weights_in_sync"] is True


def test_two_ranks_equal_one_process_with_the_global_batch(two_process_run, recipe, tmp_path):
    runs = tmp_path / "single"
    done = kcli("train", str(recipe), "fit.batch_size=32", "--runs-dir", str(runs))
    assert done.returncode == 0, done.stderr
    single, ddp = weights(only_run(runs)), weights(two_process_run)
    for name in single:
        assert torch.allclose(single[name], ddp[name], atol=1e-5), name


def test_resuming_a_two_process_run_continues_it(recipe, two_process_run, tmp_path):
    runs = tmp_path / "resumed"
    short = kcli(
        "train", str(recipe), "fit.epochs=1", "--nproc-per-node", "2", "--runs-dir", str(runs)
    )
    assert short.returncode == 0, short.stderr
    run_dir = only_run(runs)
    resumed = kcli("train", "--resume", str(run_dir), "fit.epochs=2", "--nproc-per-node", "2")
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    full, continued = weights(two_process_run), weights(run_dir)
    for name in full:
        assert torch.equal(full[name], continued[name]), name


def _pid_of_rank(marker: str, rank: int) -> int | None:
    """The worker process of `rank` among the processes started with our marker."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"KCLI_TEST_MARK={marker}".encode() in environ and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_a_killed_rank_fails_the_run_quickly(tmp_path):
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        EXACT_RECIPE.replace("n_samples: 256", "n_samples: 20000").replace(
            "epochs: 2, batch_size: 16", "epochs: 50, batch_size: 8"
        )
    )
    runs = tmp_path / "runs"
    marker = uuid.uuid4().hex
    command = [sys.executable, "-m", "kcli", "train", str(slow), "--nproc-per-node", "2"]
    launcher = subprocess.Popen(
        [*command, "--runs-dir", str(runs), "-q"],
        env={**os.environ, "KCLI_TEST_MARK": marker},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 90
    while time.time() < deadline and not list(runs.glob("*/*/metrics.csv")):
        time.sleep(0.1)
    pid = _pid_of_rank(marker, 1)
    assert pid is not None, launcher.communicate(timeout=5)
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    launcher.communicate(timeout=60)
    assert launcher.returncode != 0
    assert time.time() - killed_at < 30  # fails within seconds, not at a collective timeout
    record = json.loads((only_run(runs) / "run.json").read_text())
    assert record["status"] == "failed"


def test_bad_input_found_by_every_rank_is_reported_once_with_exit_2(tmp_path):
    # A missing data file passes `validate` (it reads no data); every rank finds it. kcli's
    # launcher must end with that exit code and kcli's message alone: no torch launcher
    # traceback (ChildFailedError), no failure table, the message not repeated per rank.
    recipe = tmp_path / "missing.yaml"
    recipe.write_text(
        EXACT_RECIPE.replace("source: synthetic:classification", "source: gone.npz").replace(
            "  params: {n_samples: 256, n_features: 5, n_classes: 2}\n", ""
        )
    )
    done = kcli("train", str(recipe), "--nproc-per-node", "2", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "file not found" in line]
    assert len(lines) == 1 and "gone.npz" in lines[0]
    assert not (tmp_path / "runs").exists()
