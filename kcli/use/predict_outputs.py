"""`kcli predict` for a model of several outputs: one array per output, or one CSV.

Each output is read as its own loss says (kcli.use.predict): a classification output gives
class decisions (indices in the .npz, class names in the CSV), or with `--proba` its
probabilities; any other output its values. Written:
  - `.npz`: one array per output, keyed by the output's name (the default);
  - `.csv`: one group of columns per output, in output order, each named after the output
    (`<output>` for one value, `<output>_<i>`, or `<output>_<class>` with --proba).
Both are written to a temp file first and renamed over the output at the end.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem
from kcli.use.confusion import is_classifier
from kcli.use.evaluate import class_labels
from kcli.use.prediction import Prediction, decision, model_outputs


def predict_outputs(
    run_model: Any, reader: Any, input_path: Path, out: Path, size: int, proba: bool
) -> Any:
    """Run the model over the input in batches; write every output's predictions to `out`."""

    heads = run_model.loaded.recipe.compile.heads(run_model.plan.outputs)
    names = run_model.output_names
    decide = [decision(head.loss, proba) for head in heads]
    chunks: list[list[np.ndarray]] = [[] for _ in heads]
    for outputs in model_outputs(run_model, reader, input_path, size):
        for index, output in enumerate(outputs):
            chunks[index].append(decide[index](output.float().cpu().numpy()))
    if not chunks[0]:
        raise KcliError(Problem(f"{input_path} holds no samples"))
    arrays = {name: np.concatenate(parts) for name, parts in zip(names, chunks, strict=True)}
    if out.suffix.lower() == ".csv":
        _write_csv(out, run_model, heads, arrays, proba)
    else:
        _write_npz(out, arrays)
    kinds = []
    for head, name in zip(heads, names, strict=True):
        classes = is_classifier(head.loss)
        if classes and proba:
            kinds.append(f"{name}: probabilities")
        elif classes:
            kinds.append(f"{name}: class {'names' if out.suffix.lower() == '.csv' else 'indices'}")
        else:
            kinds.append(f"{name}: values")
    first = next(iter(arrays.values()))
    return Prediction(
        run_model.run_dir,
        input_path,
        out,
        len(first),
        "; ".join(kinds),
        tuple(first.shape[1:]),
        reader.note,
    )


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def _publish(temp: Path, path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp made it private; give it a file's usual mode
    os.replace(temp, path)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    temp = _temp_beside(path)
    try:
        with temp.open("wb") as handle:
            np.savez(handle, **arrays)
        _publish(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _columns(name: str, values: np.ndarray, run_model: Any, head: Any, proba: bool) -> list[str]:
    """One output's CSV column names."""
    width = int(np.prod(values.shape[1:], dtype=np.int64))
    if proba and is_classifier(head.loss) and values.ndim == 2:
        units = run_model.plan.output_shapes[head.index][-1]
        labels = class_labels(run_model, units, name)
        return [f"{name}_{labels[1]}"] if units == 1 else [f"{name}_{c}" for c in labels[:width]]
    return [name] if width == 1 else [f"{name}_{i}" for i in range(width)]


def _write_csv(path: Path, run_model: Any, heads: list, arrays: dict, proba: bool) -> None:
    header, blocks = [], []
    for head, (name, values) in zip(heads, arrays.items(), strict=True):
        header += _columns(name, values, run_model, head, proba)
        flat = values.reshape(len(values), -1)
        if flat.dtype.kind == "i":  # class decisions: written as the class names
            units = run_model.plan.output_shapes[head.index][-1]
            labels = class_labels(run_model, units, name)
            blocks.append([[labels[v] for v in row] for row in flat])
        else:
            blocks.append([[f"{v:.9g}" for v in row] for row in flat])
    temp = _temp_beside(path)
    try:
        with temp.open("w", newline="", encoding="utf-8") as handle:
            rows = csv.writer(handle)
            rows.writerow(header)
            for parts in zip(*blocks, strict=True):
                rows.writerow([cell for part in parts for cell in part])
        _publish(temp, path)
    finally:
        temp.unlink(missing_ok=True)
