"""Writing files so that a reader never sees half of one: temp file, fsync, rename.

Every file kcli writes into a run folder (checkpoints, metrics, records, logs) goes through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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
