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
from kcli.data.several import by_output, single_or_mapping, weight_names
from kcli.data.spec import SourceSpec
from kcli.errors import KcliError, Loc

_FIRST_DATA_LINE = 2  # line 1 is the header


def read_csv(
    spec: SourceSpec,
    path: Path,
    loc: Loc,
    require_y: bool = True,
    outputs: list[str] | None = None,
) -> RawData:
    """The feature columns and the target(s) of a CSV file as `RawData` (x: column -> values).

    With several model `outputs`, `target` names one column per output and y is a mapping
    output -> column values (kcli.data.several)."""
    header, rows = _read_rows(path, loc)
    columns = {name: i for i, name in enumerate(header)}
    available = ", ".join(header)
    targets = by_output(spec.target, outputs, (*loc, "target"), "target column")
    target_columns = {"": spec.target} if targets is None and spec.target else targets or {}
    for output, column in target_columns.items():
        if column not in columns and require_y:
            place = (*loc, "target", output) if isinstance(spec.target, dict) else (*loc, "target")
            raise KcliError(f"{path} has no column '{column}' (columns: {available})", loc=place)
    weight_columns = weight_names(spec.sample_weight, outputs, (*loc, "sample_weight"))
    for column in weight_columns.values():
        if column not in columns:
            raise KcliError(
                f"{path} has no column '{column}' (columns: {available})",
                loc=(*loc, "sample_weight"),
            )
    not_features = {*target_columns.values(), *weight_columns.values(), *spec.strings}
    features = _feature_columns(spec, header, not_features)
    checked = (("features", spec.features or []), ("categorical", spec.categorical))
    for key, names in (*checked, ("strings", spec.strings)):
        missing = [c for c in names if c not in columns]
        if missing:
            raise KcliError(
                f"{path} has no column(s) {', '.join(map(repr, missing))} (columns: {available})",
                loc=(*loc, key),
            )
    if not features and not spec.strings:
        shown = ", ".join(f"'{c}'" for c in sorted(not_features))
        raise KcliError(f"{path} has no feature columns besides {shown}", loc=(*loc, "target"))
    x = {}
    for name in features:
        values = [row[columns[name]] for row in rows]
        if name in spec.categorical:
            x[name] = np.array(values, dtype=object)
        else:
            x[name] = _numeric_column(values, name, path, (*loc, "source"))
    for name in spec.strings:
        # Kept exactly as written (no strip): the layer's standardize and split decide.
        x[name] = np.array([row[columns[name]] for row in rows], dtype=object)
    found = {
        output: _target_column([row[columns[c]] for row in rows], c, path, loc)
        for output, c in target_columns.items()
        if c in columns
    }
    y = single_or_mapping(found)
    sample_weight = single_or_mapping(
        {
            output: _numeric_column(
                [row[columns[c]] for row in rows], c, path, (*loc, "sample_weight")
            ).astype(np.float32)
            for output, c in weight_columns.items()
        }
    )
    return RawData(
        x,
        y,
        where=str(path),
        loc=loc,
        columns=features,
        categorical=list(spec.categorical),
        strings=list(spec.strings),
        first_line=_FIRST_DATA_LINE,
        sample_weight=sample_weight,
    )


def _feature_columns(spec: SourceSpec, header: list[str], not_features: set[str]) -> list[str]:
    """The numeric/categorical columns: `features:`, else every column but the others. With
    string columns, `features: []` means none (the model takes only the strings)."""
    if spec.features is not None and (spec.features or spec.strings):
        return list(spec.features)
    return [c for c in header if c not in not_features]


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
                "list it under categorical: to one-hot encode it, or under strings: to feed "
                "its text to a StringLookup or TextVectorization layer",
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
