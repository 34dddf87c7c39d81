"""Checkpoint files: written atomically, read back with `weights_only=True`, RNG state included.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so `torch.load` can
read it with `weights_only=True` (no arbitrary pickled objects run on load). The random number
generators' states are converted to that form by `rng_state()` and back by
`restore_rng_state()`, so a resumed run draws the same numbers an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import random
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kcli.errors import KcliError
from kcli.files import regular_file_mode


def serialize(state: dict[str, Any]) -> bytes:
    """`state` in torch.save's format, as bytes (a snapshot: later changes to it don't show)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically (see `write_atomically`)."""
    write_atomically(path, serialize(state))


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path`: a temp file beside it, fsync, then rename over.

    A crash or an error while writing leaves the previous file at `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so os.replace is a rename within one file system (atomic).
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, regular_file_mode())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(path.parent)


WRITE_INTERVAL_S = 1.0  # at most one round of checkpoint writes per second (CheckpointSaver)
SNAPSHOT_LIMIT_BYTES = 64 * 2**20  # larger states are written at once, never copied in memory


class CheckpointSaver:
    """Saves the checkpoints of each epoch end without making short epochs wait on the disk.

    Writing a small model's checkpoint (serialize, write, fsync, rename) costs about as much as
    ten of its training steps; for epochs of a few milliseconds that doubles the cost of
    checkpointing every epoch. So files are written in rounds at most `interval` seconds apart:
    in between, an epoch's states are copied in memory (tensors cloned: cheap, and limited to
    `snapshot_limit` bytes for all that waits; past it, everything is written at once) and
    written with the next round.
    `flush` writes whatever waits; the trainer calls it whenever `fit` stops, for any reason
    (the end, an error, Ctrl-C), so those lose nothing. A process killed outright (SIGKILL, a
    power cut) loses at most `interval` seconds of checkpoints, and the files on disk are whole
    and consistent. Epochs longer than `interval` get every epoch's files written at its end.
    """

    def __init__(
        self,
        interval: float | None = None,
        snapshot_limit: int | None = None,
        before_round: Callable[[], None] | None = None,
    ) -> None:
        self.interval = WRITE_INTERVAL_S if interval is None else interval
        self.snapshot_limit = SNAPSHOT_LIMIT_BYTES if snapshot_limit is None else snapshot_limit
        self.before_round = before_round  # e.g. make metrics.csv durable first
        self._pending: dict[Path, dict[str, Any]] = {}
        self._last_round = -math.inf

    def save(self, states: dict[Path, dict[str, Any]]) -> None:
        """The checkpoints of one moment, path -> state (one state may go to several paths)."""
        if not states:
            return
        recent = time.monotonic() - self._last_round < self.interval
        distinct = {id(state): state for state in states.values()}
        # The limit is on all that waits, so per-epoch file names ({epoch} in a ModelCheckpoint
        # filepath) cannot pile up copies in memory.
        waiting = {id(state): state for state in self._pending.values()}
        held = sum(map(_tensor_bytes, [*distinct.values(), *waiting.values()]))
        if recent and held <= self.snapshot_limit:
            copies = {key: _detached_copy(state) for key, state in distinct.items()}
            self._pending.update({path: copies[id(state)] for path, state in states.items()})
            return
        self._pending.update(states)
        self.flush()

    def flush(self) -> None:
        """Write every waiting checkpoint now (a state saved under two names is serialized once)."""
        if self.before_round is not None:
            self.before_round()
        pending, self._pending = self._pending, {}
        serialized: dict[int, bytes] = {}
        for path, state in pending.items():
            if id(state) not in serialized:
                serialized[id(state)] = serialize(state)
            write_atomically(path, serialized[id(state)])
        self._last_round = time.monotonic()


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _detached_copy(value: Any) -> Any:
    """A copy of a checkpoint state that later training steps cannot change (tensors cloned)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, _detached_copy(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_detached_copy(v) for v in value)
    return value  # numbers, strings, None: immutable


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened for fsync
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with `weights_only=True`; KcliError if missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise KcliError(f"{path}: no checkpoint file there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        # torch reports a truncated or foreign file as one of these; the first line says which.
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KcliError(f"{path}: not a readable checkpoint ({reason})") from None
    except OSError as e:
        raise KcliError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if not isinstance(state, dict):
        raise KcliError(
            f"{path}: not a kcli checkpoint (holds a {type(state).__name__}, not a dict)"
        )
    return state


def rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's global generators, in weights_only-safe form."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {
            "version": int(version),
            # 624 uint32 words plus the position; int64 holds every uint32 exactly. (Through
            # NumPy: a third of torch.tensor's time on a tuple.)
            "state": torch.from_numpy(np.array(internal, dtype=np.int64)),
            "gauss_next": gauss_next,  # None or a float: both weights_only-safe
        },
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global generators back to a state from `rng_state()` (after a checkpoint load).

    CUDA states are restored for the devices present: a run resumed on a machine with fewer
    (or no) GPUs restores what it can, since the CPU generators drive data order and dropout
    masks on CPU.
    """
    python = state["python"]
    internal = tuple(int(v) for v in python["state"].tolist())
    random.setstate((int(python["version"]), internal, python["gauss_next"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available():
        for index in range(min(len(cuda_states), torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda_states[index], device=index)
