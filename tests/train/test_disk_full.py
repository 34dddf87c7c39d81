"""A full disk while writing a run: the run is marked failed, its last whole checkpoint stays.

The disk is "filled" with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so the write fails
with EFBIG instead of killing the process) small enough that a training checkpoint cannot be
written, but run.json can. POSIX only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trained import trained

resource = pytest.importorskip("resource")


def limited_files(max_bytes: int):
    def apply() -> None:
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def test_disk_full_fails_the_run_and_keeps_the_last_whole_checkpoint(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("mlp"), run)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    limit = len(before) // 2  # a new last.pt (same size) cannot be written; run.json can
    done = subprocess.run(
        [sys.executable, "-m", "kcli", "train", "--resume", str(run), "fit.epochs=4"],
        capture_output=True,
        text=True,
        preexec_fn=limited_files(limit),
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot write" in done.stderr and "File too large" in done.stderr
    assert f"continue with: kcli train --resume {run}" in done.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "File too large" in record["message"]
    assert last.read_bytes() == before  # untouched: the write went to a temp file first
    assert torch.load(last, weights_only=True)["epoch"] == 2
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]

    # With room again, the run continues from that checkpoint.
    again = subprocess.run(
        [sys.executable, "-m", "kcli", "train", "--resume", str(run), "fit.epochs=4", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert len(Path(run / "metrics.csv").read_text().splitlines()) == 1 + 4
