"""Checkpoint files: written atomically, read back with `weights_only=True`, RNG state included.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so `torch.load` can
read it with `weights_only=True` (no arbitrary pickled objects run on load). The random number
generators' states are converted to that form by `rng_state()` and back by
`restore_rng_state()`, so a resumed run draws the same numbers an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kcli.errors import KcliError
from kcli.runs import regular_file_mode


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a temp file beside it, fsync, then rename over.

    A crash or an error while writing leaves the previous file at `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so os.replace is a rename within one file system (atomic).
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, regular_file_mode())
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(path.parent)


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
            # 624 uint32 words plus the position; int64 holds every uint32 exactly.
            "state": torch.tensor(internal, dtype=torch.int64),
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
