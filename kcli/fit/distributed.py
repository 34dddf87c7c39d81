"""Distributed training on torch.distributed: what each process of a run needs.

`kcli train RECIPE --nproc-per-node N` (kcli/train/launch.py) re-runs the same command under
torch's elastic launcher
(`python -m torch.distributed.run`, what `torchrun` is), which starts N processes with RANK,
WORLD_SIZE, LOCAL_RANK and a rendezvous in their environment. A `kcli train` that finds
WORLD_SIZE > 1 joins the process group (gloo on CPU, NCCL on CUDA, one GPU per local rank);
so does one started by the user's own `torchrun -m kcli train ...`.

What differs from one process (the rest is the same code):
- the model runs under DistributedDataParallel; `batch_size` is per process;
- each rank takes its share of every global batch (kcli.data.batches), and validation and test
  are split between ranks; losses and metrics are all-reduced as sums and counts, so every
  logged number is the global one, and every rank takes the same callback decisions;
- only rank 0 writes the run folder; the others write into a scratch folder that is deleted;
- Ctrl-C or a launcher's SIGTERM stops every rank at once: the run is marked interrupted and
  resumes from the last epoch's checkpoint (all ranks' RNG states are kept in it).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

# How long a collective may wait for a peer before the run fails (a dead peer usually fails it
# much sooner: the launcher stops the group as soon as one process exits with an error).
COLLECTIVE_TIMEOUT = timedelta(minutes=5)
RUN_DIR_FILE_ENV = "KCLI_RUN_DIR_FILE"
EXIT_CODE_FILE_ENV = "KCLI_EXIT_CODE_FILE"


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when started by torch's launcher, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def join_process_group(device: torch.device) -> DistContext | None:
    """Join the launcher's process group (once); None for a single-process run."""
    found = world_from_env()
    if found is None:
        return None
    rank, world, local_rank = found
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return DistContext(rank, world, local_rank, backend)


def leave_process_group() -> None:
    """Wait for every rank to finish, then close the group (a process that exits with the group
    open makes gloo abort it)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def local_device(requested: torch.device, context: DistContext | None) -> torch.device:
    """One GPU per local rank; CPU stays CPU."""
    if context is not None and requested.type == "cuda":
        return torch.device("cuda", context.local_rank)
    return requested


def all_reduce_sums(tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over all ranks, in place."""
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (a shared stop decision)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(obj: object) -> list:
    """`obj` from every rank, in rank order, on every rank."""
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: object) -> object:
    """Rank 0's `obj` on every rank."""
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of every weight's bytes: equal on all ranks iff their replicas are identical."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


_scratch_folders: list[Path] = []


def scratch_run_dir() -> Path:
    """Where a rank other than 0 lets callbacks write (deleted when the process ends).

    Workers end with os._exit (see `finish_worker`), which skips atexit: `finish_worker`
    removes the folders itself, and atexit covers every other way out.
    """
    path = Path(tempfile.mkdtemp(prefix="kcli-rank-"))
    (path / "checkpoints").mkdir()
    if not _scratch_folders:
        atexit.register(remove_scratch_folders)
    _scratch_folders.append(path)
    return path


def remove_scratch_folders() -> None:
    """Delete this process's scratch run folders."""
    while _scratch_folders:
        shutil.rmtree(_scratch_folders.pop(), ignore_errors=True)


def announce_run_dir(run_dir: Path) -> None:
    """Tell the launching `kcli train` where the run is (it marks the run failed if a rank dies)."""
    target = os.environ.get(RUN_DIR_FILE_ENV)
    if target:
        Path(target).write_text(str(run_dir))


def is_worker_of_other_rank() -> bool:
    """True in a distributed process other than rank 0 (which prints nothing)."""
    found = world_from_env()
    return found is not None and found[0] != 0


def finish_worker(code: int) -> None:
    """End a distributed worker process now, skipping interpreter teardown (in which gloo's
    threads can abort the process after a finished run); a no-op in a single process."""
    if world_from_env() is None:
        return
    remove_scratch_folders()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def report_exit_code(code: int) -> int:
    """The exit code a worker should use.

    Under `kcli train --nproc-per-node`, a failed gate or a diverged loss is an outcome, not a
    crash: rank 0 hands its code to the launching kcli through a file and every worker exits 0,
    so torch's launcher does not report a failed process. Under a user's own torchrun the code
    is returned as is.
    """
    target = os.environ.get(EXIT_CODE_FILE_ENV)
    if not target:
        return code
    found = world_from_env()
    if found is None or found[0] == 0:
        Path(target).write_text(str(code))
    return 0
