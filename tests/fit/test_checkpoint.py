"""Checkpoint files: atomic writes, weights_only loading, clear errors, RNG state round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from kcli.errors import KcliError
from kcli.fit import checkpoint
from kcli.fit.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint


class NotAllowed:
    """An arbitrary class: weights_only loading must refuse to build it."""


def test_save_and_load_round_trip(tmp_path):
    state = {
        "model": {"weight": torch.arange(6.0).reshape(2, 3)},
        "epoch": 3,
        "name": "digits",
        "history": [0.5, 0.25],
        "nothing": None,
    }
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert loaded["epoch"] == 3 and loaded["name"] == "digits" and loaded["nothing"] is None
    assert loaded["history"] == [0.5, 0.25]
    # The file is readable by torch directly with weights_only=True (what CLI.md promises).
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path)["epoch"] == 2


def test_a_failure_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def half_written(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")  # some bytes reach the disk, then it fails
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", half_written)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    old = load_checkpoint(path)
    assert old["epoch"] == 1 and torch.equal(old["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temp file is gone


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(KcliError, match="no checkpoint file there"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken"])
def test_corrupt_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(KcliError, match="not a readable checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.randn(100)})
    path.write_bytes(path.read_bytes()[:200])  # what a crash without atomic writes would leave
    with pytest.raises(KcliError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": NotAllowed()}, path)
    with pytest.raises(KcliError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_a_non_dict_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(KcliError, match="not a kcli checkpoint"):
        load_checkpoint(path)


def _draw() -> tuple:
    """Numbers from every generator (CUDA's too where present), cached gaussians included."""
    return (
        [random.random() for _ in range(3)],
        random.gauss(0.0, 1.0),
        np.random.rand(3).tolist(),
        float(np.random.standard_normal()),
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (4,)).tolist(),
        torch.rand(3, device="cuda").tolist() if torch.cuda.is_available() else None,
    )


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    # An odd number of gaussians leaves a cached second value in Python and NumPy: it must be
    # part of the saved state too.
    random.gauss(0.0, 1.0)
    np.random.standard_normal()
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = _draw()
    _draw()  # move every generator on
    state = torch.load(tmp_path / "rng.pt", map_location="cpu", weights_only=True)["rng"]
    restore_rng_state(state)
    assert _draw() == expected


def test_rng_state_has_the_documented_parts():
    state = rng_state()
    assert set(state) >= {"python", "numpy", "torch"}
    assert ("cuda" in state) == torch.cuda.is_available()
    assert state["python"]["state"].dtype == torch.int64
    assert state["python"]["state"].numel() == 625  # 624 Mersenne Twister words + position
    assert state["numpy"]["keys"].numel() == 624


# ---- CheckpointSaver: writes in rounds at most `interval` apart ---------------------------------
def test_saver_writes_at_once_when_the_last_round_is_old(tmp_path):
    saver = checkpoint.CheckpointSaver(interval=0.0)
    saver.save({tmp_path / "last.pt": {"epoch": 1}})
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_saver_keeps_recent_states_in_memory_as_snapshots_until_flush(tmp_path):
    saver = checkpoint.CheckpointSaver(interval=3600.0)
    weight = torch.zeros(3)
    saver.save({tmp_path / "first.pt": {"w": weight, "epoch": 1}})  # first round: written
    assert (tmp_path / "first.pt").is_file()
    saver.save({tmp_path / "last.pt": {"w": weight, "epoch": 2}})  # within the hour: kept
    weight += 5.0  # training goes on and changes the live tensor
    saver.save({tmp_path / "best.pt": {"w": weight, "epoch": 3}})
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()
    saver.flush()
    # Each file holds the state as it was when saved, not the live tensor at flush time.
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["w"], torch.zeros(3))
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")["w"], torch.full((3,), 5.0))


def test_saver_keeps_only_the_newest_state_of_a_path(tmp_path):
    saver = checkpoint.CheckpointSaver(interval=3600.0)
    saver.save({tmp_path / "other.pt": {"epoch": 0}})  # opens the round
    for epoch in (1, 2, 3):
        saver.save({tmp_path / "last.pt": {"epoch": epoch}})
    saver.flush()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


def test_saver_writes_a_large_state_at_once_instead_of_copying_it(tmp_path):
    saver = checkpoint.CheckpointSaver(interval=3600.0, snapshot_limit=100)
    saver.save({tmp_path / "a.pt": {"epoch": 0}})
    saver.save({tmp_path / "big.pt": {"w": torch.zeros(26)}})  # 104 bytes > 100
    assert (tmp_path / "big.pt").is_file()


def test_saver_serializes_a_state_saved_under_two_names_once(tmp_path, monkeypatch):
    calls = []
    real = checkpoint.serialize
    monkeypatch.setattr(checkpoint, "serialize", lambda state: calls.append(1) or real(state))
    saver = checkpoint.CheckpointSaver(interval=0.0)
    state = {"w": torch.ones(2), "epoch": 4}
    saver.save({tmp_path / "last.pt": state, tmp_path / "best.pt": state})
    assert len(calls) == 1
    assert (tmp_path / "last.pt").read_bytes() == (tmp_path / "best.pt").read_bytes()


def test_saver_limit_counts_everything_waiting(tmp_path):
    # Per-epoch file names never replace each other: their copies must not pile up.
    saver = checkpoint.CheckpointSaver(interval=3600.0, snapshot_limit=100)
    saver.save({tmp_path / "a.pt": {"epoch": 0}})  # opens the round
    saver.save({tmp_path / "e1.pt": {"w": torch.zeros(15)}})  # 60 bytes: kept
    assert not (tmp_path / "e1.pt").exists()
    saver.save({tmp_path / "e2.pt": {"w": torch.zeros(15)}})  # 120 bytes in all: written
    assert (tmp_path / "e1.pt").is_file() and (tmp_path / "e2.pt").is_file()
