"""The run folder itself: its file names, creating it, and writing its files atomically.

Layout (CLI.md): `runs/<name>/<YYYYmmdd-HHMMSS>-<6 hex>/` with run.json, metrics.csv,
recipe.yaml, checkpoints/, eval.json ... Files are written atomically by kcli/files.py.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from pathlib import Path

from kcli.errors import KcliError

RUN_FILE = "run.json"
METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


def now_iso() -> str:
    """The local time with its UTC offset, to the millisecond (sortable across time zones)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


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
