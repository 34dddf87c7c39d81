"""Reading a CSV source with the csv module: a header row, then one sample per line.

Feature columns are parsed as numbers (an empty cell is a missing value, NaN, which the finite
check then reports) unless listed under `categorical:`, which stay strings for the one-hot
encoding fitted on the train split. The target column becomes int64 when every value is an
integer literal, float64 when every value is a number, and otherwise stays strings: class names,
turned into indices by the preprocessing (fitted on the train split).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kcli.data.raw import RawData
from kcli.data.spec import SourceSpec
from kcli.errors import KcliError, Loc

_FIRST_DATA_LINE = 2  # line 1 is the header


def read_csv(spec: SourceSpec, path: Path, loc: Loc, require_y: bool = True) -> RawData:
    """The feature columns and the target of a CSV file as `RawData` (x: column -> values)."""
    header, rows = _read_rows(path, loc)
    columns = {name: i for i, name in enumerate(header)}
    available = ", ".join(header)
    target = spec.target
    if target is not None and target not in columns and require_y:
        raise KcliError(
            f"{path} has no column '{target}' (columns: {available})", loc=(*loc, "target")
        )
    features = spec.features or [c for c in header if c != target]
    for key, names in (("features", spec.features or []), ("categorical", spec.categorical)):
        missing = [c for c in names if c not in columns]
        if missing:
            raise KcliError(
                f"{path} has no column(s) {', '.join(map(repr, missing))} (columns: {available})",
                loc=(*loc, key),
            )
    if not features:
        raise KcliError(f"{path} has no feature columns besides '{target}'", loc=(*loc, "target"))
    x = {}
    for name in features:
        values = [row[columns[name]] for row in rows]
        if name in spec.categorical:
            x[name] = np.array(values, dtype=object)
        else:
            x[name] = _numeric_column(values, name, path, (*loc, "source"))
    y = None
    if target is not None and target in columns:
        y = _target_column([row[columns[target]] for row in rows], target, path, loc)
    return RawData(
        x,
        y,
        where=str(path),
        loc=loc,
        columns=features,
        categorical=list(spec.categorical),
        first_line=_FIRST_DATA_LINE,
    )


def _read_rows(path: Path, loc: Loc) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise KcliError(f"cannot read {path} as CSV: {err}", loc=(*loc, "source")) from None
    lines = [line for line in lines if line]  # blank lines carry no sample
    if not lines:
        raise KcliError(f"{path} is empty; expected a header row", loc=(*loc, "source"))
    header, rows = [h.strip() for h in lines[0]], lines[1:]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise KcliError(
            f"{path} has duplicate column name(s) {', '.join(duplicates)}", loc=(*loc, "source")
        )
    for number, row in enumerate(rows, start=_FIRST_DATA_LINE):
        if len(row) != len(header):
            raise KcliError(
                f"{path} line {number} has {len(row)} fields, the header has {len(header)}",
                loc=(*loc, "source"),
            )
    if not rows:
        raise KcliError(f"{path} has a header but no rows", loc=(*loc, "source"))
    return header, rows


def _numeric_column(values: list[str], name: str, path: Path, loc: Loc) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, text in enumerate(values):
        text = text.strip()
        try:
            out[i] = float(text) if text else np.nan
        except ValueError:
            raise KcliError(
                f"{path} column '{name}' is not numeric (line {i + _FIRST_DATA_LINE}: {text!r}); "
                "list it under categorical: to one-hot encode it",
                loc=loc,
            ) from None
    return out


def _target_column(values: list[str], name: str, path: Path, loc: Loc) -> np.ndarray:
    values = [v.strip() for v in values]
    empty = [i + _FIRST_DATA_LINE for i, v in enumerate(values) if not v]
    if empty:
        lines = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
        raise KcliError(
            f"{path} target column '{name}' is empty on {len(empty)} line(s): {lines}",
            loc=(*loc, "target"),
        )
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        pass  # not all integers: numbers, or class names
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=object)
