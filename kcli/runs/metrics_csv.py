"""metrics.csv: `MetricsLog` appends one row per epoch; `read_metrics` reads the rows back."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kcli.errors import KcliError
from kcli.files import write_text_atomic


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
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise KcliError(f"{path}: unreadable metrics log ({error})") from None
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
