"""Writing files so that a reader never sees half of one: temp file, fsync, rename.

Every file kcli writes into a run folder (checkpoints, metrics, records, logs) goes through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem, StorageError


def regular_file_mode() -> int:
    """The mode `open()` would give a new file (mkstemp's temp files are private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, fsync, then rename over.

    A reader sees the old content or the new one, never half a file; a crash or an error while
    writing leaves the old file as it was. A write the system refuses (disk full, file too
    large, no permission) is a StorageError naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same folder as the target, so os.replace is a rename within one file system (atomic).
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise StorageError(path, error) from error
    os.fchmod(fd, regular_file_mode())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise StorageError(path, error) from error
        raise
    _fsync_folder(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """`text` as UTF-8, written atomically (see `write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


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


def write_json_atomic(path: Path, obj: Any) -> None:
    """`obj` as indented JSON, written atomically (NaN and inf are kept, as Python's json does)."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def check_output_path(path: Path, option: str = "-o") -> Path:
    """An output file the user named: its folder must exist and take a new file; exit 2 if not.

    Checked before any work, so an unwritable `-o` is bad input, not a failure at the end.
    """
    path = Path(path)
    if path.is_dir():
        raise KcliError(Problem(f"{option} {path}: that is a folder; give the file to write"))
    folder = path.parent
    if not folder.is_dir():
        raise KcliError(Problem(f"{option} {path}: the folder {folder} does not exist"))
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as error:
        reason = error.strerror or str(error)
        raise KcliError(Problem(f"{option} {path}: cannot write in {folder} ({reason})")) from None
    os.close(fd)
    os.unlink(probe)
    return path
