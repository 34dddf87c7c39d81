"""run.json: the `RunRecord` of a run (identity, status, provenance, progress) and its updates."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kcli.errors import KcliError
from kcli.files import write_json_atomic
from kcli.runs.folder import RUN_FILE, now_iso

Status = Literal["running", "completed", "failed", "interrupted"]


class Resume(BaseModel):
    """One `--resume` of a run: when it started and how many epochs the checkpoint held."""

    at: str
    epoch: int
    command: list[str] = Field(default_factory=list)


class RunRecord(BaseModel):
    """What run.json holds: identity, status, provenance and progress of one run."""

    model_config = ConfigDict(extra="ignore")  # a newer kcli's extra fields stay readable

    id: str
    name: str
    status: Status
    started: str
    ended: str | None = None
    seed: int
    recipe_hash: str  # sha256 of the resolved recipe.yaml text
    command: list[str]
    versions: dict[str, str | None]  # python, torch, kcli, numpy
    device: str
    git_commit: str | None = None  # HEAD of the working folder's repository, if any
    recipe_dir: str | None = None  # where relative data paths of the recipe resolve
    epochs_done: int = 0
    message: str | None = None  # why it failed or was interrupted; failed gates
    final_metrics: dict[str, float] = Field(default_factory=dict)
    resumed_from: list[Resume] = Field(default_factory=list)
    distributed: dict[str, Any] | None = None  # world size, backend, replicas' weight digests
    # The recipe's plugin modules: name, the file trained with, its sha256 (copied to plugins/).
    plugins: list[dict[str, Any]] = Field(default_factory=list)
    # model.weights: the file training started from, its format, strict, what was skipped.
    start_weights: dict[str, Any] | None = None
    pid: int | None = None  # the process writing the run while it is running (rank 0)
    host: str | None = None  # the machine that process runs on

    def is_stale(self) -> bool:
        """Running, by run.json, but its process on this machine is gone (killed, crashed)."""
        if self.status != "running" or self.pid is None or self.host != platform.node():
            return False  # another machine's process cannot be checked from here
        try:
            os.kill(self.pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except (PermissionError, OSError):
            return False  # exists, but belongs to another user
        return False

    @property
    def resume_count(self) -> int:
        return len(self.resumed_from)


def hash_text(text: str) -> str:
    """sha256 hex digest of a text (the recipe hash of run.json)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def git_commit(cwd: Path | None = None, timeout: float = 3.0) -> str | None:
    """HEAD's commit of the git repository around `cwd`; None without git or a repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # git missing, or hung (network file system)
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit):
        return None
    return commit


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def new_run_record(
    run_dir: Path,
    *,
    name: str,
    seed: int,
    recipe_hash: str,
    command: list[str],
    device: str,
    recipe_dir: str | None = None,
    torch_version: str | None = None,
    kcli_version: str | None = None,
) -> RunRecord:
    """The run.json of a run starting now in `run_dir` (status running, versions, git commit).

    Versions come from the installed packages' metadata unless given (no torch import needed).
    """
    from kcli import __version__

    versions = {
        "python": platform.python_version(),
        "torch": torch_version or _package_version("torch"),
        "kcli": kcli_version or __version__,
        "numpy": _package_version("numpy"),
    }
    return RunRecord(
        id=Path(run_dir).name,
        name=name,
        status="running",
        started=now_iso(),
        seed=seed,
        recipe_hash=recipe_hash,
        command=list(command),
        versions=versions,
        device=device,
        git_commit=git_commit(),
        recipe_dir=recipe_dir,
        pid=os.getpid(),
        host=platform.node(),
    )


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    """Write run.json atomically."""
    write_json_atomic(Path(run_dir) / RUN_FILE, record.model_dump(mode="json"))


def read_run_record(run_dir: Path) -> RunRecord:
    """The run.json of a run folder; KcliError if it has none or it cannot be read."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise KcliError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    try:
        return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:  # ValueError: bad JSON or pydantic's ValidationError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KcliError(f"{path}: unreadable run record ({first})") from None


def update_run_record(run_dir: Path, **changes: Any) -> RunRecord:
    """Read run.json, apply `changes` (validated), write it back; returns the new record."""
    record = read_run_record(run_dir)
    updated = RunRecord.model_validate({**record.model_dump(), **changes})
    write_run_record(run_dir, updated)
    return updated


def set_status(
    run_dir: Path,
    status: Status,
    message: str | None = None,
    *,
    epochs_done: int | None = None,
    final_metrics: Mapping[str, float] | None = None,
) -> RunRecord:
    """Record a status change; `ended` is set now, or cleared when the run is running again."""
    changes: dict[str, Any] = {
        "status": status,
        "message": message,
        "ended": None if status == "running" else now_iso(),
    }
    if status == "running":  # (again, after --resume): this process is the one writing it
        changes.update(pid=os.getpid(), host=platform.node())
    if epochs_done is not None:
        changes["epochs_done"] = epochs_done
    if final_metrics is not None:
        changes["final_metrics"] = dict(final_metrics)
    return update_run_record(run_dir, **changes)


def note_resumed(run_dir: Path, epochs_done: int, command: list[str]) -> RunRecord:
    """Add a `resumed_from` entry: the run continues from a checkpoint after `epochs_done`."""
    record = read_run_record(run_dir)
    entry = Resume(at=now_iso(), epoch=epochs_done, command=list(command))
    return update_run_record(
        run_dir, resumed_from=[*record.resumed_from, entry], epochs_done=epochs_done
    )
