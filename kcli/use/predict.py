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
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem
from kcli.files import check_output_path
from kcli.use.confusion import is_classifier
from kcli.use.evaluate import class_labels, find_run, run_device
from kcli.use.predict_inputs import open_input
from kcli.use.prediction import Prediction, decision, model_outputs

OUTPUT_SUFFIXES = (".npy", ".csv")
SEVERAL_SUFFIXES = (".npz", ".csv")  # a model of several outputs: an array per output, or CSV


def output_path(input_path: Path, output: Path | None, several: bool = False) -> Path:
    """-o, checked: .npy or .csv (.npz or .csv for several outputs), in a folder that exists;
    default INPUT.predictions.npy (.npz)."""
    suffixes = SEVERAL_SUFFIXES if several else OUTPUT_SUFFIXES
    path = output or input_path.with_name(f"{input_path.stem}.predictions{suffixes[0]}")
    if path.suffix.lower() not in suffixes:
        why = " (one array per output)" if several else ""
        shown = " or ".join(suffixes)
        raise KcliError(Problem(f"-o {path}: predictions are written as {shown}{why}"))
    return check_output_path(path)


def output_loss(run_model: Any, index: int = 0) -> Any:
    """The loss output `index` trained with (it says how its predictions are read)."""
    return run_model.loaded.recipe.compile.heads(run_model.plan.outputs)[index].loss


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

    from kcli.train.assemble import EVAL_BATCH_FACTOR
    from kcli.use.run_model import load_run_model

    run_dir = find_run(run, runs_dir)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise KcliError(Problem(f"no input file {input_path}"))
    run_model = load_run_model(run_dir, checkpoint, run_device(run_dir, device))
    several = len(run_model.plan.outputs) > 1
    out = output_path(input_path, output, several)
    recipe = run_model.loaded.recipe
    losses = [head.loss for head in recipe.compile.heads(run_model.plan.outputs)]
    if proba and not any(is_classifier(loss) for loss in losses):
        raise KcliError(
            Problem(f"--proba needs a classifier; {run_dir} trained with {losses[0].type}")
        )
    loss = losses[0]
    reader = open_input(input_path, run_model)
    size = (
        batch_size or recipe.fit.validation_batch_size or recipe.fit.batch_size * EVAL_BATCH_FACTOR
    )
    if several:
        from kcli.use.predict_outputs import predict_outputs

        return predict_outputs(run_model, reader, input_path, out, size, proba)
    decide = decision(loss, proba)
    writer: Writer | None = None
    try:
        for output in model_outputs(run_model, reader, input_path, size):
            output_values = output.float().cpu().numpy()
            values = decide(output_values)
            if writer is None:
                header = _csv_header(run_model, values, proba)
                labels = class_labels(run_model, run_model.plan.output_shapes[0][-1])
                writer = Writer(out, reader.n, values, header, labels)
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
    shape = tuple(writer.sample_shape)
    return Prediction(run_dir, input_path, out, reader.n, what, shape, reader.note)


def _csv_header(run_model: Any, values: np.ndarray, proba: bool) -> list[str]:
    """CSV column names: `class`, one per class name (--proba), or `prediction[_i]`."""
    width = int(np.prod(values.shape[1:], dtype=np.int64))
    loss = output_loss(run_model)
    units = run_model.plan.output_shapes[0][-1]
    if is_classifier(loss) and not proba:
        return ["class"] if width == 1 else [f"class_{i}" for i in range(width)]
    if proba and values.ndim == 2:
        names = class_labels(run_model, units)
        return [names[1]] if units == 1 else names[:width]
    return ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]


class Writer:
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
