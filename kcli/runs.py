"""The run folder: create it, write its files atomically, record its status, find runs again.

Layout (CLI.md): `runs/<name>/<YYYYmmdd-HHMMSS>-<6 hex>/` with run.json (a `RunRecord`),
metrics.csv (one row per epoch, `MetricsLog`), recipe.yaml, checkpoints/, eval.json ...
A RUN argument is a run folder or a recipe name; a name means that recipe's newest run
(`resolve_run`). No torch here: `kcli runs` lists runs without loading it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kcli.errors import KcliError, did_you_mean

RUN_FILE = "run.json"
METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")

Status = Literal["running", "completed", "failed", "interrupted"]


def now_iso() -> str:
    """The local time with its UTC offset, to the millisecond (sortable across time zones)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


# ---- writing files -----------------------------------------------------------------------------
def regular_file_mode() -> int:
    """The mode `open()` would give a new file (mkstemp's temp files are private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file in the same folder, fsync, then rename over.

    A reader sees the old content or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, regular_file_mode())
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """`obj` as indented JSON, written atomically (NaN and inf are kept, as Python's json does)."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """A new, empty run folder `runs_dir/name/<YYYYmmdd-HHMMSS>-<6 hex>/` with `checkpoints/`.

    The random suffix keeps two runs started in the same second apart; `mkdir` without
    `exist_ok` makes the (astronomically unlikely) collision a retry, never a shared folder.
    """
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\")):
        raise KcliError(f"run name {name!r} cannot name a folder: use letters, digits, - and _")
    parent = Path(runs_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        run_dir = parent / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        (run_dir / "checkpoints").mkdir()
        return run_dir


# ---- run.json ----------------------------------------------------------------------------------
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


# ---- metrics.csv -------------------------------------------------------------------------------
def order_columns(keys: list[str]) -> list[str]:
    """epoch, loss, the other metrics, the val_ ones (in their metric's order), lr, seconds."""
    names = [k for k in keys if k != "epoch"]
    tail = [k for k in ("lr", "seconds") if k in names]
    train = [k for k in names if not k.startswith("val_") and k not in tail]
    train.sort(key=lambda k: k != "loss")  # stable: loss first, the rest as given
    val = [k for k in names if k.startswith("val_")]
    val.sort(key=lambda k: train.index(k[4:]) if k[4:] in train else len(train))
    return ["epoch", *train, *val, *tail]


def _format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return repr(float(value))  # shortest text that reads back to the same float


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


class MetricsLog:
    """metrics.csv: one row per epoch, appended and flushed as each epoch ends.

    Rows are mappings with an `epoch` key (1-based: the number of epochs done) and the epoch's
    logs. The columns are fixed by the first row (`order_columns`); later rows may miss a
    column (an empty cell) but not add one. On an existing file (a resumed run) the header
    gives the columns, and a last line cut short by a crash is dropped.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file() and self.path.stat().st_size > 0:
            text = self.path.read_text(encoding="utf-8")
            if not text.endswith("\n"):  # a crash in mid-line: keep the complete rows only
                text = text[: text.rfind("\n") + 1]
                write_text_atomic(self.path, text)
            header = next(csv.reader(io.StringIO(text)), None)
            self.columns = header or None

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one epoch's row, handed to the OS at once (a crash of kcli later keeps it).

        `sync` makes the rows durable against a power cut too; the trainer calls it before
        each round of checkpoint writes, so a checkpoint on disk always has its rows there.
        """
        if "epoch" not in row:
            raise ValueError("a metrics row needs its 'epoch'")
        text = ""
        if self.columns is None:
            self.columns = order_columns(list(row))
            text = _csv_line(self.columns)
        unknown = [k for k in row if k not in self.columns]
        if unknown:
            raise ValueError(f"metrics.csv has no column for {unknown} (columns: {self.columns})")
        text += _csv_line([_format_value(row.get(column)) for column in self.columns])
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            handle.write(text)

    def sync(self) -> None:
        """fsync the rows written so far (nothing to do before the first)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            os.fsync(handle.fileno())

    def truncate_to(self, epoch: int) -> None:
        """Drop the rows after `epoch` (resume: the checkpoint holds `epoch` epochs)."""
        if self.columns is None:
            return
        kept = [row for row in read_metrics(self.path) if row["epoch"] <= epoch]
        lines = [_csv_line(self.columns)]
        lines += [_csv_line([_format_row_cell(row, c) for c in self.columns]) for row in kept]
        write_text_atomic(self.path, "".join(lines))


def _format_row_cell(row: Mapping[str, float], column: str) -> str:
    value = row.get(column, math.nan)
    if column == "epoch":
        return str(int(value))
    return "" if math.isnan(value) else repr(float(value))


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv as floats (an empty cell is NaN); [] when there is no file.

    Rows that do not parse (a line cut short by a crash) are skipped.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        return []
    header, result = rows[0], []
    for cells in rows[1:]:
        if len(cells) != len(header):
            continue
        try:
            result.append(
                {k: float(v) if v != "" else math.nan for k, v in zip(header, cells, strict=True)}
            )
        except ValueError:
            continue
    return result


# ---- finding runs ------------------------------------------------------------------------------
def _started_key(run_dir: Path, started: str | None) -> tuple[float, str]:
    """Newest-first sort key: the recorded start time, else the time in the folder's name."""
    stamp = None
    if started is not None:
        try:
            stamp = datetime.fromisoformat(started).timestamp()
        except ValueError:
            stamp = None
    if stamp is None and RUN_ID.match(run_dir.name):
        stamp = datetime.strptime(run_dir.name[:15], "%Y%m%d-%H%M%S").timestamp()
    return (stamp if stamp is not None else 0.0, run_dir.name)


def _runs_under(recipe_folder: Path) -> list[tuple[Path, RunRecord]]:
    """The readable runs directly under a recipe's folder, newest first."""
    found = []
    for child in recipe_folder.iterdir():
        if child.is_dir() and (child / RUN_FILE).is_file():
            try:
                found.append((child, read_run_record(child)))
            except KcliError:
                continue  # a broken run cannot be resolved; `kcli runs` shows it as broken
    found.sort(key=lambda pair: _started_key(pair[0], pair[1].started), reverse=True)
    return found


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / LAST_CHECKPOINT).is_file()


def _pick_run(recipe_folder: Path, require_checkpoint: bool, prefer_completed: bool) -> Path | None:
    runs = _runs_under(recipe_folder)
    usable = [(d, r) for d, r in runs if not require_checkpoint or _has_checkpoint(d)]
    if prefer_completed:
        usable = [p for p in usable if p[1].status == "completed"] or usable
    if usable:
        return usable[0][0]
    if not runs:
        return None
    listing = ", ".join(
        f"{d.name} ({r.status}{'' if _has_checkpoint(d) else ', no checkpoint'})" for d, r in runs
    )
    raise KcliError(
        f"{recipe_folder}: no run with a checkpoint ({LAST_CHECKPOINT.as_posix()}); "
        f"the runs there stopped before finishing an epoch: {listing}"
    )


def resolve_run(
    arg: str,
    runs_dir: Path,
    *,
    require_checkpoint: bool = False,
    prefer_completed: bool = False,
) -> Path:
    """The run folder a RUN argument means: a run folder, or a recipe name (its newest run).

    - A folder holding run.json is that run.
    - A folder of runs (e.g. `runs/digits-mlp`) or a name under `runs_dir` means its newest
      run, by start time, of any status (CLI.md: "its newest run"), so `--resume NAME`
      continues the run just interrupted. With `prefer_completed`, the newest completed run
      wins when there is one (for commands that want a finished model).
    - With `require_checkpoint`, only runs that wrote checkpoints/last.pt count.
    Nothing matching is a KcliError naming what exists.
    """
    runs_dir = Path(runs_dir)
    path = Path(arg)
    if (path / RUN_FILE).is_file():
        if require_checkpoint and not _has_checkpoint(path):
            raise KcliError(
                f"{path}: the run has no checkpoint ({LAST_CHECKPOINT.as_posix()}); it stopped "
                "before finishing an epoch"
            )
        return path
    for folder in (path, runs_dir / arg):
        if folder.is_dir():
            picked = _pick_run(folder, require_checkpoint, prefer_completed)
            if picked is not None:
                return picked
    names = (
        sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and _runs_under(p))
        if runs_dir.is_dir()
        else []
    )
    if path.is_dir():
        where = f"{path}: not a run folder (no {RUN_FILE}) and no runs in it"
    else:
        where = f"no run {arg!r}: not a run folder, nor a recipe name with runs in {runs_dir}"
    if names:
        raise KcliError(f"{where}{did_you_mean(arg, names)}; runs exist for: {', '.join(names)}")
    raise KcliError(f"{where}; {runs_dir} holds no runs yet (train one with `kcli train`)")


@dataclass
class RunSummary:
    """One row of `kcli runs`: what a run folder says about itself ("broken" if unreadable)."""

    id: str
    name: str
    path: Path
    status: str
    started: str | None = None
    epochs: int = 0
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    final: dict[str, float] = field(default_factory=dict)  # the last metrics.csv row
    test_metrics: dict[str, float] = field(default_factory=dict)  # eval.json
    duration_s: float | None = None
    problem: str | None = None  # why a broken run is broken


def _best(rows: list[dict[str, float]], column: str, pick: Any) -> float | None:
    values = [row[column] for row in rows if column in row and not math.isnan(row[column])]
    return pick(values) if values else None


def _test_metrics(run_dir: Path) -> dict[str, float]:
    try:
        document = json.loads((run_dir / EVAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(document, dict) and isinstance(document.get("metrics"), dict):
        document = document["metrics"]
    if not isinstance(document, dict):
        return {}
    numbers = {k: v for k, v in document.items() if not isinstance(v, bool)}
    return {k: float(v) for k, v in numbers.items() if isinstance(v, int | float)}


def summarize_run(run_dir: Path) -> RunSummary:
    """A run folder's RunSummary; never raises for a broken folder, marks it instead."""
    record, problem = None, None
    try:
        record = read_run_record(run_dir)
    except KcliError as error:
        problem = str(error)
    try:
        rows = read_metrics(run_dir / METRICS_FILE)
    except (OSError, ValueError):
        rows = []
    summary = RunSummary(
        id=run_dir.name,
        name=record.name if record else run_dir.parent.name,
        path=run_dir,
        status=record.status if record else "broken",
        started=record.started if record else None,
        epochs=record.epochs_done if record else len(rows),
        best_val_loss=_best(rows, "val_loss", min),
        best_val_accuracy=_best(rows, "val_accuracy", max),
        final={k: v for k, v in rows[-1].items() if k != "epoch"} if rows else {},
        test_metrics=_test_metrics(run_dir),
        problem=problem,
    )
    if record and record.ended:
        try:
            start = datetime.fromisoformat(record.started)
            summary.duration_s = (datetime.fromisoformat(record.ended) - start).total_seconds()
        except (TypeError, ValueError):
            summary.duration_s = None
    return summary


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run under `runs_dir`, newest first; unreadable ones are listed as 'broken'."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    keyed = []
    for recipe_folder in runs_dir.iterdir():
        if not recipe_folder.is_dir():
            continue
        for child in recipe_folder.iterdir():
            if child.is_dir() and ((child / RUN_FILE).is_file() or RUN_ID.match(child.name)):
                summary = summarize_run(child)
                keyed.append((_started_key(child, summary.started), summary))
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [summary for _, summary in keyed]
