"""The run folder itself: its file names, creating it, and writing its files atomically.

Layout (CLI.md): `runs/<name>/<YYYYmmdd-HHMMSS>-<6 hex>/` with run.json, metrics.csv,
recipe.yaml, checkpoints/, eval.json ... `write_text_atomic` is how every file of it is written.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from kcli.errors import KcliError

RUN_FILE = "run.json"
METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


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
