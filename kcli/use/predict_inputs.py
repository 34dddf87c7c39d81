"""The inputs `kcli predict` reads, batch by batch: .npy, .npz and .csv files.

Each reader is checked against what the run's preprocessing takes before any prediction is made:
a .npy (memory-mapped) or an .npz (an array per model input, or `x`) for array data; a .csv by
the run's feature columns when it trained on a CSV, else every column in order. A run trained on
a CSV of numeric columns also takes a .npy/.npz of shape (n, columns): its columns are read as
the recipe's features, in their order (the `note` says so).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem


class _Input:
    note: str | None = None  # how the input was read, when that is not the obvious way
    """Raw samples of an input file in batches: `n`, `batches(size)`, `label(i)`."""

    n: int

    def batches(self, size: int) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError  # each input kind overrides this

    def label(self, index: int) -> str:
        return f"sample {index}"


class _ArrayInput(_Input):
    """A .npy array (memory-mapped) or the arrays of a .npz archive, by input name."""

    def __init__(self, x: Any) -> None:
        self.x = x
        lengths = {len(v) for v in x.values()} if isinstance(x, dict) else {len(x)}
        if len(lengths) > 1:
            raise KcliError(Problem(f"the input's arrays differ in length: {sorted(lengths)}"))
        self.n = lengths.pop()

    def batches(self, size: int) -> Iterator[tuple[int, Any]]:
        for start in range(0, self.n, size):
            if isinstance(self.x, dict):
                yield start, {k: np.asarray(v[start : start + size]) for k, v in self.x.items()}
            else:
                yield start, np.asarray(self.x[start : start + size])


class _CsvInput(_Input):
    """Rows of a CSV file: the run's feature columns by name, or every column as a number."""

    def __init__(
        self,
        path: Path,
        columns: list[str] | None,
        categorical: set[str],
        strings: frozenset[str] = frozenset(),
    ) -> None:
        self.path = path
        self.strings = strings  # text columns, kept exactly as written
        with self._open() as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            self.n = sum(1 for row in reader if row)
        if not header:
            raise KcliError(Problem(f"{path} is empty; expected a header row"))
        self.columns = columns or header
        missing = [c for c in self.columns if c not in header]
        if missing:
            raise KcliError(
                Problem(
                    f"{path} has no column(s) {', '.join(missing)}; the run's features are "
                    f"{', '.join(self.columns)} (it has: {', '.join(header)})"
                )
            )
        self.index = [header.index(c) for c in self.columns]
        self.categorical = categorical
        self.lines: list[int] = []
        self.table = columns is not None

    def _open(self):
        try:
            return self.path.open(newline="", encoding="utf-8-sig")
        except OSError as error:
            raise KcliError(Problem(f"cannot read {self.path}: {error}")) from None

    def label(self, index: int) -> str:
        return f"line {self.lines[index]}" if index < len(self.lines) else f"row {index}"

    def batches(self, size: int) -> Iterator[tuple[int, Any]]:
        with self._open() as handle:
            reader = csv.reader(handle)
            width = len(next(reader))
            chunk: list[list[str]] = []
            start = 0
            for row in reader:
                if not row:
                    continue
                if len(row) != width:
                    raise KcliError(
                        Problem(
                            f"{self.path} line {reader.line_num} has {len(row)} fields, the "
                            f"header has {width}"
                        )
                    )
                self.lines.append(reader.line_num)
                chunk.append([row[i] for i in self.index])
                if len(chunk) == size:
                    yield start, self._arrays(chunk, start)
                    start, chunk = start + len(chunk), []
            if chunk:
                yield start, self._arrays(chunk, start)

    def _arrays(self, rows: list[list[str]], start: int) -> Any:
        columns = {}
        for j, name in enumerate(self.columns):
            if name in self.strings:
                columns[name] = np.array([row[j] for row in rows], dtype=object)
                continue
            cells = [row[j].strip() for row in rows]
            if name in self.categorical:
                columns[name] = np.array(cells, dtype=object)
                continue
            values = np.empty(len(cells))
            for i, text in enumerate(cells):
                try:
                    values[i] = float(text) if text else np.nan  # the finite check reports NaN
                except ValueError:
                    raise KcliError(
                        Problem(
                            f"{self.path} column '{name}' is not numeric ({self.label(start + i)}"
                            f": {text!r})"
                        )
                    ) from None
            columns[name] = values
        if self.table:
            return columns
        return np.stack([columns[name] for name in self.columns], axis=1)


def open_input(path: Path, run_model: Any) -> _Input:
    """The reader for INPUT, checked against what the run's preprocessing takes."""
    prep = run_model.preprocessing
    suffix = path.suffix.lower()
    data = run_model.loaded.recipe.data
    strings = list(getattr(prep, "strings", None) or {})
    if suffix == ".csv":
        if prep.table is not None:
            columns, categorical = list(prep.table["columns"]), set(prep.table["categories"])
            return _CsvInput(path, columns + strings, categorical, frozenset(strings))
        if prep.inputs is not None:
            raise KcliError(Problem(f"{path}: the model has several inputs; give an .npz"))
        reader = _CsvInput(path, None, set())
        if data.target is not None and data.target in reader.columns:
            reader = _CsvInput(path, [c for c in reader.columns if c != data.target], set())
        return reader
    if suffix not in (".npy", ".npz"):
        raise KcliError(Problem(f"{path}: predict reads .npy, .npz or .csv files"))
    if strings:
        raise KcliError(
            Problem(
                f"{path}: this run's model reads text (the CSV column(s) {', '.join(strings)}); "
                "give a .csv with those columns"
            )
        )
    if suffix == ".npy":
        loaded = _load_array(path)
        if prep.inputs is not None:
            raise KcliError(
                Problem(
                    f"{path}: the model has inputs {', '.join(prep.inputs)}; give an .npz "
                    "with one array per input"
                )
            )
        x = loaded
    else:
        inputs = None if prep.table is not None else prep.inputs
        x = _npz_arrays(path, _load_archive(path), inputs, data.x)
    if prep.table is not None:
        return _TableArrayInput(path, x, list(prep.table["columns"]), prep.table["categories"])
    return _ArrayInput(x)


def _load_array(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise KcliError(Problem(f"cannot read {path} as a NumPy .npy file: {error}")) from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise KcliError(Problem(f"{path} is an .npz archive, not a .npy array"))
    if loaded.ndim == 0:
        raise KcliError(Problem(f"{path} holds a single value, not samples"))
    return loaded


def _load_archive(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz (allow_pickle off: object arrays are refused, never unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise KcliError(Problem(f"{path} is a .npy array, not an .npz archive"))
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise KcliError(Problem(f"cannot read {path} as a NumPy .npz archive: {error}")) from None
    scalars = [name for name, array in arrays.items() if array.ndim == 0]
    if scalars:
        raise KcliError(Problem(f"{path}: array '{scalars[0]}' holds a single value, not samples"))
    return arrays


class _TableArrayInput(_ArrayInput):
    """An array of numbers for a run trained on CSV columns: column j is the j-th feature."""

    def __init__(self, path: Path, x: Any, columns: list[str], categories: dict) -> None:
        if categories:
            raise KcliError(
                Problem(
                    f"{path}: this run trained on CSV columns, some categorical "
                    f"({', '.join(categories)}); give a .csv with the columns {', '.join(columns)}"
                )
            )
        if x.ndim != 2 or x.shape[1] != len(columns):
            raise KcliError(
                Problem(
                    f"{path} holds samples of shape {tuple(x.shape[1:])}; this run trained on "
                    f"{len(columns)} CSV columns, so an array needs shape (n, {len(columns)}) "
                    f"with the columns {', '.join(columns)} in that order (or give a .csv)"
                )
            )
        super().__init__(x)
        self.columns = columns
        self.note = f"read the {len(columns)} columns of {path.name} as {', '.join(columns)}"

    def batches(self, size: int) -> Iterator[tuple[int, Any]]:
        for start, rows in super().batches(size):
            if rows.dtype.kind not in "biuf":
                raise KcliError(Problem(f"x has dtype {rows.dtype}; expected numbers"))
            values = rows.astype(np.float64)
            yield start, {name: values[:, j] for j, name in enumerate(self.columns)}


def _npz_arrays(path: Path, arrays: dict[str, np.ndarray], inputs, x_names) -> Any:
    """The arrays an .npz gives each model input: by input name, the recipe's `x:`, or `x`."""

    def pick(candidates: list[str], what: str) -> np.ndarray:
        for name in candidates:
            if name in arrays:
                return arrays[name]
        if len(arrays) == 1 and inputs is None:
            return next(iter(arrays.values()))
        raise KcliError(
            Problem(
                f"{path} has no array for {what} (looked for {', '.join(candidates)}; it has: "
                f"{', '.join(arrays) or 'none'})"
            )
        )

    if inputs is None:
        return pick(([x_names] if isinstance(x_names, str) else []) + ["x"], "x")
    mapping = x_names if isinstance(x_names, dict) else {}
    return {name: pick([name, mapping.get(name, name)], f"input '{name}'") for name in inputs}
