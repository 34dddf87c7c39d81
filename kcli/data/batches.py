"""Batches as the trainer consumes them: index slices of device tensors, or a stream.

`InMemoryBatches` moves x, y and the sample weights to the device once, as contiguous tensors.
An epoch is a permutation of the sample indices drawn from a CPU `torch.Generator` seeded by
the recipe; a batch is `x[idx]` for the next slice of it: no Dataset, no collate, no per-sample
Python. The generator's state is part of `state_dict()`, so a resumed run draws exactly the
permutations an uninterrupted one would, even from the middle of an epoch (`start_batch`).

Distributed training: every rank draws the same permutation (same seed); step k of all ranks
together covers the k-th global batch (b * world_size indices) of it, rank r taking the r-th equal
part, so the ranks jointly see what one process with the global batch would. Without `drop_last`
the permutation is padded by repeating its first indices so the shares are equal (a few samples are
seen twice per epoch, as with torch's DistributedSampler); with `drop_last` the tail that does not
divide evenly is left out of the epoch instead, and so is each rank's last partial batch. Either
way every rank has the same number of batches, which DistributedDataParallel requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kcli.data.splits import StreamSplit


def _tensor(array: np.ndarray, device: torch.device, dtype: torch.dtype | None = None):
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch.from_numpy wants writable memory
        array = array.copy()
    tensor = torch.from_numpy(array)
    return tensor.to(device=device, dtype=dtype or tensor.dtype)


def _default_y_dtype(y: np.ndarray) -> torch.dtype:
    return torch.long if y.dtype.kind in "iu" else torch.float32


def _targets(y: Any, device: torch.device, y_dtype: Any) -> Any:
    """y on the device: an array, or a mapping output -> array (several outputs), where
    `y_dtype` may be one dtype or a mapping output -> dtype."""
    if y is None:
        return None
    if isinstance(y, dict):
        dtypes = y_dtype if isinstance(y_dtype, dict) else {}
        return {
            name: _tensor(values, device, dtypes.get(name) or _default_y_dtype(values))
            for name, values in y.items()
        }
    return _tensor(y, device, y_dtype or _default_y_dtype(y))


def _weights(w: Any, device: torch.device) -> Any:
    """Sample weights on the device: one array, or a mapping output -> array."""
    if w is None:
        return None
    if isinstance(w, dict):
        return {name: _tensor(values, device, torch.float32) for name, values in w.items()}
    return _tensor(w, device, torch.float32)


def _on_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, dict):
        return {name: _tensor(values, device) for name, values in x.items()}
    return _tensor(x, device)


def _take(x: Any, index: torch.Tensor) -> Any:
    if isinstance(x, dict):
        return {name: values.index_select(0, index) for name, values in x.items()}
    return x.index_select(0, index)


def _slice(x: Any, start: int, stop: int) -> Any:
    if isinstance(x, dict):
        return {name: values[start:stop] for name, values in x.items()}
    return x[start:stop]


class InMemoryBatches:
    """Seeded, resumable, shardable mini-batches of arrays that live on the device."""

    def __init__(
        self,
        x: Any,
        y: Any,
        sample_weight: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        *,
        y_dtype: Any = None,  # one torch dtype, or a mapping output -> dtype
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad batching: batch_size={batch_size}, rank {rank}/{world_size}")
        self.device = torch.device(device)
        self.n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
        self.x = _on_device(x, self.device)
        self.y = _targets(y, self.device, y_dtype)
        self.w = _weights(sample_weight, self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        if world_size == 1:
            self.per_rank = self.n
        else:
            self.per_rank = self.n // world_size if drop_last else -(-self.n // world_size)
        self._generator = torch.Generator().manual_seed(seed)
        self._position = 0  # the epoch the generator draws next
        self._start_state = self._generator.get_state()  # at the start of the cached epoch
        self._cached: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        """Batches per epoch (on each rank)."""
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)

    def _permutation(self, epoch_index: int) -> torch.Tensor:
        if self._cached is not None and self._cached[0] == epoch_index:
            return self._cached[1]
        if epoch_index < self._position:
            raise ValueError(
                f"epoch {epoch_index} was drawn before (next is {self._position}); "
                "load_state_dict from an earlier point to replay it"
            )
        while self._position < epoch_index:  # skipped epochs still advance the generator
            torch.randperm(self.n, generator=self._generator)
            self._position += 1
        self._start_state = self._generator.get_state()
        permutation = torch.randperm(self.n, generator=self._generator)
        self._position = epoch_index + 1
        self._cached = (epoch_index, permutation)
        return permutation

    def _rank_indices(self, epoch_index: int) -> torch.Tensor:
        if self.shuffle:
            order = self._permutation(epoch_index)
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:
            total = self.per_rank * self.world_size
            order = order[torch.arange(total) % self.n]  # pads by wrapping, or truncates
            order = self._interleave(order)
        return order.to(self.device)

    def _interleave(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's indices: its share of each global batch, in step order.

        Step k of every rank together covers `order[k*b*W : (k+1)*b*W]`, rank r taking the r-th
        of W equal parts, so W ranks with batch b see exactly the batches one process with
        batch b*W would (the basis of DDP's equivalence with single-process training).
        """
        size, world = self.batch_size, self.world_size
        full = self.per_rank // size
        head = order[: full * size * world].view(full, world, size)[:, self.rank, :].reshape(-1)
        tail_length = self.per_rank - full * size
        if tail_length == 0:
            return head
        tail = order[full * size * world :].view(world, tail_length)[self.rank]
        return torch.cat([head, tail])

    def epoch(self, epoch_index: int, start_batch: int = 0) -> Iterator[tuple[Any, Any, Any]]:
        """(x, y, sample_weight) batches of epoch `epoch_index`, from batch `start_batch` on.

        The permutation is drawn when this is called, not at the first batch, so
        `state_dict()` taken during the epoch replays it.
        """
        n_batches = len(self)
        size = self.batch_size
        if not self.shuffle and self.world_size == 1:  # in order: views, no gather at all
            return (
                self._batch_slice(b * size, min((b + 1) * size, self.n))
                for b in range(start_batch, n_batches)
            )
        indices = self._rank_indices(epoch_index)
        return (
            self._batch_at(indices[b * size : (b + 1) * size])
            for b in range(start_batch, n_batches)
        )

    def _batch_slice(self, start: int, stop: int) -> tuple[Any, Any, Any]:
        y = None if self.y is None else _slice(self.y, start, stop)
        w = None if self.w is None else _slice(self.w, start, stop)
        return _slice(self.x, start, stop), y, w

    def _batch_at(self, index: torch.Tensor) -> tuple[Any, Any, Any]:
        y = None if self.y is None else _take(self.y, index)
        w = None if self.w is None else _take(self.w, index)
        return _take(self.x, index), y, w

    def state_dict(self) -> dict[str, Any]:
        """The data order's state: loadable with torch.load(weights_only=True)."""
        if self._cached is not None:
            return {"epoch": self._cached[0], "generator": self._start_state.clone()}
        return {"epoch": self._position, "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rewind to the start of epoch `state['epoch']` as it was when saved."""
        self._generator.set_state(state["generator"])
        self._position = int(state["epoch"])
        self._cached = None


class StreamBatches:
    """Tensors from a generator source's batches; no worker processes.

    With `world_size` > 1 the stream is read in groups of `world_size` batches and rank r takes
    the r-th of each group (every rank runs the same seeded function, so they agree); an
    incomplete last group is dropped so all ranks take the same number of steps.
    `steps_per_epoch` counts steps, each taking one batch per rank.
    """

    def __init__(
        self,
        split: StreamSplit,
        device: str | torch.device = "cpu",
        *,
        y_dtype: torch.dtype | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.split = split
        self.device = torch.device(device)
        self.y_dtype = y_dtype
        self.rank, self.world_size = rank, world_size
        self.steps = split.steps_per_epoch  # None: until the generator ends

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("a generator without steps_per_epoch has no known length")
        return self.steps

    def epoch(self, epoch_index: int = 0) -> Iterator[tuple[Any, Any, Any]]:
        """The next epoch's batches (a generator's order is its own: `epoch_index` is unused)."""
        wanted = None if self.steps is None else self.steps * self.world_size
        group = []
        for batch in self.split.epoch(wanted):
            group.append(batch)
            if len(group) == self.world_size:
                x, y, w = group[self.rank]
                group = []
                yield (
                    _on_device(x, self.device),
                    _targets(y, self.device, self.y_dtype),
                    _weights(w, self.device),
                )
