"""`kcli predict`: a trained run's predictions for new inputs, streamed batch by batch.

Input: a .npy array (read memory-mapped), a .npz archive (an array per model input, or `x`), or
a .csv file (by the run's feature columns when it trained on a CSV, else every column, in order,
as the features). The run's own preprocess.json is applied to each batch, so the input holds raw
features, as the run's data did. Output: .npy (written through a memory map as batches come) or
.csv (rows appended as batches come); both go to a temp file first, renamed over at the end.

What is written: a regressor's outputs. A classifier's class decisions (the argmax, or one unit
above its threshold): as class indices in a .npy, as class names in a .csv; with `--proba` the
output probabilities instead (a CSV column per class).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem
from kcli.use.evaluate import (
    binary_threshold,
    class_labels,
    find_run,
    is_classifier,
    run_device,
    unlocated,
)

OUTPUT_SUFFIXES = (".npy", ".csv")


@dataclass
class Prediction:
    """What `kcli predict` wrote."""

    run_dir: Path
    input: Path
    output: Path
    n_samples: int
    what: str  # class indices | class names | probabilities | values
    shape: tuple[int, ...]  # per sample

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "input": str(self.input),
            "output": str(self.output),
            "n_samples": self.n_samples,
            "what": self.what,
            "shape": list(self.shape),
        }


def output_path(input_path: Path, output: Path | None) -> Path:
    """-o, checked: .npy or .csv, in a folder that exists; default INPUT.predictions.npy."""
    path = output or input_path.with_name(f"{input_path.stem}.predictions.npy")
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise KcliError(Problem(f"-o {path}: predictions are written as .npy or .csv"))
    if not path.parent.is_dir():
        raise KcliError(Problem(f"-o {path}: the folder {path.parent} does not exist"))
    return path


def predict_run(
    run: str,
    input_path: Path,
    runs_dir: Path,
    *,
    output: Path | None = None,
    batch_size: int | None = None,
    proba: bool = False,
    checkpoint: str | None = None,
    device: str | None = None,
) -> Prediction:
    """Run a trained model over INPUT in batches and write its predictions."""
    import torch

    from kcli.train.assemble import EVAL_BATCH_FACTOR
    from kcli.use.run_model import load_run_model

    run_dir = find_run(run, runs_dir)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise KcliError(Problem(f"no input file {input_path}"))
    out = output_path(input_path, output)
    run_model = load_run_model(run_dir, checkpoint, run_device(run_dir, device))
    recipe = run_model.loaded.recipe
    loss = recipe.compile.loss
    if proba and not is_classifier(loss):
        raise KcliError(Problem(f"--proba needs a classifier; {run_dir} trained with {loss.type}"))
    reader = open_input(input_path, run_model)
    size = (
        batch_size or recipe.fit.validation_batch_size or recipe.fit.batch_size * EVAL_BATCH_FACTOR
    )
    decide = _decision(run_model, proba)
    model, device = run_model.model, next(run_model.model.parameters()).device
    writer: _Writer | None = None
    try:
        for start, raw in reader.batches(size):
            try:
                x = run_model.preprocessing.transform_x(
                    raw, str(input_path), (), lambda i, s=start: reader.label(s + i)
                )
            except KcliError as error:
                raise unlocated(error) from None
            with torch.no_grad():
                output_values = model(_to_tensors(x, device)).float().cpu().numpy()
            values = decide(output_values)
            if writer is None:
                header = _csv_header(run_model, values, proba)
                labels = class_labels(run_model, run_model.plan.output_shapes[0][-1])
                writer = _Writer(out, reader.n, values, header, labels)
            writer.write(values)
        if writer is None:
            raise KcliError(Problem(f"{input_path} holds no samples"))
        writer.finish()
    finally:
        if writer is not None:
            writer.discard()
    what = "probabilities" if proba else "values"
    if is_classifier(loss) and not proba:
        what = "class names" if out.suffix.lower() == ".csv" else "class indices"
    return Prediction(run_dir, input_path, out, reader.n, what, tuple(writer.sample_shape))


def _to_tensors(x: Any, device: Any) -> Any:
    import torch

    if isinstance(x, dict):
        return {name: torch.from_numpy(np.ascontiguousarray(v)).to(device) for name, v in x.items()}
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def _decision(run_model: Any, proba: bool):
    """outputs -> what is written: values, probabilities, or class indices."""
    loss = run_model.loaded.recipe.compile.loss
    if proba or not is_classifier(loss):
        return lambda out: out
    threshold = binary_threshold(loss)

    def classes(out: np.ndarray) -> np.ndarray:
        if out.shape[-1] == 1:
            return (out[..., 0] > threshold).astype(np.int64)
        return out.argmax(axis=-1).astype(np.int64)

    return classes


def _csv_header(run_model: Any, values: np.ndarray, proba: bool) -> list[str]:
    """CSV column names: `class`, one per class name (--proba), or `prediction[_i]`."""
    width = int(np.prod(values.shape[1:], dtype=np.int64))
    loss = run_model.loaded.recipe.compile.loss
    units = run_model.plan.output_shapes[0][-1]
    if is_classifier(loss) and not proba:
        return ["class"] if width == 1 else [f"class_{i}" for i in range(width)]
    if proba and values.ndim == 2:
        names = class_labels(run_model, units)
        return [names[1]] if units == 1 else names[:width]
    return ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]


class _Writer:
    """Predictions to a temp file beside the output, renamed over it when all are written."""

    def __init__(
        self, path: Path, n: int, first: np.ndarray, header: list[str], labels: list[str] | None
    ) -> None:
        self.path = path
        self.sample_shape = first.shape[1:]
        self.position = 0
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        self.temp = Path(name)
        self.csv = path.suffix.lower() == ".csv"
        if self.csv:
            self.handle = self.temp.open("w", newline="", encoding="utf-8")
            self.rows = csv.writer(self.handle)
            self.rows.writerow(header)
            self.labels = labels or []
        else:
            from numpy.lib.format import open_memmap

            self.array = open_memmap(self.temp, "w+", first.dtype, (n, *self.sample_shape))

    def write(self, values: np.ndarray) -> None:
        if not self.csv:
            self.array[self.position : self.position + len(values)] = values
        else:
            flat = values.reshape(len(values), -1)
            if values.dtype.kind == "i":
                self.rows.writerows([[self.labels[v] for v in row] for row in flat])
            else:
                self.rows.writerows([[f"{v:.9g}" for v in row] for row in flat])
        self.position += len(values)

    def finish(self) -> None:
        if self.csv:
            self.handle.close()
        else:
            self.array.flush()
            del self.array
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o666 & ~umask)  # mkstemp made it private; give it a file's usual mode
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        """Remove the temp file if the output was not completed (an error on the way)."""
        if self.csv and not self.handle.closed:
            self.handle.close()
        self.temp.unlink(missing_ok=True)


# ---- inputs -------------------------------------------------------------------------------------
class _Input:
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

    def __init__(self, path: Path, columns: list[str] | None, categorical: set[str]) -> None:
        self.path = path
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
    if suffix == ".csv":
        if prep.table is not None:
            return _CsvInput(path, list(prep.table["columns"]), set(prep.table["categories"]))
        if prep.inputs is not None:
            raise KcliError(Problem(f"{path}: the model has several inputs; give an .npz"))
        reader = _CsvInput(path, None, set())
        if data.target is not None and data.target in reader.columns:
            reader = _CsvInput(path, [c for c in reader.columns if c != data.target], set())
        return reader
    if suffix not in (".npy", ".npz"):
        raise KcliError(Problem(f"{path}: predict reads .npy, .npz or .csv files"))
    if prep.table is not None:
        columns = ", ".join(prep.table["columns"])
        raise KcliError(
            Problem(f"{path}: this run trained on CSV columns ({columns}); give a .csv with them")
        )
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise KcliError(Problem(f"cannot read {path} as a NumPy {suffix} file: {error}")) from None
    if suffix == ".npy":
        if not isinstance(loaded, np.ndarray):
            raise KcliError(Problem(f"{path} is an .npz archive, not a .npy array"))
        if prep.inputs is not None:
            raise KcliError(
                Problem(
                    f"{path}: the model has inputs {', '.join(prep.inputs)}; give an .npz "
                    "with one array per input"
                )
            )
        if loaded.ndim == 0:
            raise KcliError(Problem(f"{path} holds a single value, not samples"))
        return _ArrayInput(loaded)
    with loaded as archive:
        return _ArrayInput(_npz_arrays(path, dict(archive.items()), prep.inputs, data.x))


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
