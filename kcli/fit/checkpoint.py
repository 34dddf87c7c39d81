"""Checkpoint files: written atomically, read back with `weights_only=True`, RNG state included.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so `torch.load` can
read it with `weights_only=True` (no arbitrary pickled objects run on load). The random number
generators' states are converted to that form by `rng_state()` and back by
`restore_rng_state()`, so a resumed run draws the same numbers an uninterrupted one would.
"""

from __future__ import annotations

import io
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kcli.errors import KcliError
from kcli.files import write_bytes_atomic


def serialize(state: dict[str, Any]) -> bytes:
    """`state` in torch.save's format, as bytes (a snapshot: later changes to it don't show)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically (see `write_atomically`)."""
    write_atomically(path, serialize(state))


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: the previous file stays whole if anything fails."""
    write_bytes_atomic(path, data)


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with `weights_only=True`; KcliError if missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise KcliError(f"{path}: no checkpoint file there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise KcliError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    except Exception as e:
        # A truncated, garbled or foreign file: torch's weights-only reader reports that in many
        # ways (UnpicklingError, RuntimeError, EOFError, IndexError ...); the first line says how.
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KcliError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict):
        raise KcliError(
            f"{path}: not a kcli checkpoint (holds a {type(state).__name__}, not a dict)"
        )
    return state


def model_weights(state: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's `model` entry, checked to be a dict of named tensors; KcliError if not."""
    weights = state.get("model")
    if weights is None:
        entries = ", ".join(sorted(map(str, state))) or "nothing"
        raise KcliError(f"{path}: not a kcli checkpoint (no 'model' entry; it holds {entries})")
    if not isinstance(weights, dict):
        raise KcliError(
            f"{path}: damaged checkpoint: its 'model' entry is a {type(weights).__name__}, "
            "not a dict of named tensors"
        )
    for name, value in weights.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise KcliError(
                f"{path}: damaged checkpoint: 'model' entry {name!r} is a "
                f"{type(value).__name__}, not a tensor"
            )
    return weights


def _listed(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def load_model_weights(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Put the checkpoint's weights into `model`, or say exactly why they do not fit it.

    Names, shapes and kinds (floating point or not) must all match the model built from the
    recipe; nothing is loaded unless everything does.
    """
    weights = model_weights(state, path)
    expected = model.state_dict()
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    wrong = [
        f"{name} {tuple(weights[name].shape)} (the recipe's model: {tuple(value.shape)})"
        for name, value in expected.items()
        if name in weights
        and (
            weights[name].shape != value.shape
            or weights[name].is_floating_point() != value.is_floating_point()
        )
    ]
    reasons = []
    if missing:
        reasons.append(f"missing {_listed(missing)}")
    if unexpected:
        reasons.append(f"unexpected {_listed(unexpected)}")
    if wrong:
        reasons.append(f"wrong shape or kind: {_listed(wrong, 2)}")
    if reasons:
        raise KcliError(
            f"{path}: the checkpoint's weights do not fit the recipe's model ({'; '.join(reasons)})"
        )
    model.load_state_dict(weights)


# What a training checkpoint holds besides the weights, and the type each entry must have.
TRAINING_ENTRIES: dict[str, type | tuple[type, ...]] = {
    "optimizer": dict,
    "epoch": int,
    "rng": dict,
    "callbacks": list,
}


def check_training_state(state: dict[str, Any], path: Path) -> None:
    """KcliError unless `state` has the entries `--resume` needs, of the right types."""
    model_weights(state, path)
    for entry, kind in TRAINING_ENTRIES.items():
        value = state.get(entry)
        if value is None:
            raise KcliError(f"{path}: cannot resume from this checkpoint: it has no '{entry}'")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise KcliError(f"{path}: damaged checkpoint: '{entry}' is a {type(value).__name__}")
    if state["epoch"] < 0:
        raise KcliError(f"{path}: damaged checkpoint: 'epoch' is {state['epoch']}")


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
