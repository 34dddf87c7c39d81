"""`kcli export`: a run's model as a deployable artifact, checked before it is written.

ONNX, torch.export (.pt2) and TorchScript artifacts take raw features: the run's preprocess
steps (standardize, minmax, scale, reshape, cast) are folded in as the first ops, computed as
preprocess.json's numpy code computes them (standardize and minmax in float64, then back to the
input's dtype). What cannot be folded is a CSV run's one-hot encoding of categorical columns:
such an artifact takes the encoded feature vector, whose column names are in its metadata. ONNX
inputs and outputs carry the recipe's names (`input`, or the model's `inputs:`; the output
layers' names); the PyTorch formats take the inputs positionally in that order. All have a
dynamic batch axis. safetensors holds the weights only, with the recipe and preprocess.json as
metadata.

Before writing, the artifact is run (onnxruntime, torch.export.load, torch.jit.load, or a model
rebuilt from the recipe and the saved weights: export_formats.py) on a sample of the run's data
(export_sample.py), at other batch sizes than it was traced with, and compared with the run's own
model on the same raw sample through preprocess.json. The file is written (through a temp file
beside it) only if the largest difference is within the tolerance.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem, did_you_mean, install_hint
from kcli.files import check_output_path
from kcli.use.export_formats import FORMATS, WRITERS
from kcli.use.export_sample import input_names, reference_outputs, sample_inputs

EXTRAS_HINT = install_hint("export")


@dataclass
class ExportResult:
    """What `kcli export` wrote and how it was checked."""

    path: Path
    format: str
    max_abs_diff: float
    tolerance: float
    n_checked: int
    inputs: dict[str, list[int]]  # name -> per-sample shape (raw features)
    outputs: list[str]
    folded: list[str] = field(default_factory=list)  # preprocess steps inside the artifact
    note: str | None = None
    run_dir: Path | None = None  # the run exported
    checkpoint: str | None = None  # and which of its checkpoints

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "n_checked": self.n_checked,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "folded": self.folded,
            "note": self.note,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "checkpoint": self.checkpoint,
        }


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise KcliError(Problem(f"exporting needs the '{module}' package: {EXTRAS_HINT}")) from None


def _refuse_text_inputs(run_model: Any, fmt: str) -> None:
    """A model reading strings cannot be exported: its string half is kcli's preprocessing."""
    strings = getattr(run_model.preprocessing, "strings", None) or {}
    if strings:
        read = ", ".join(
            f"{entry['spec']['type']} '{entry['layer']}' (input '{name}')"
            for name, entry in strings.items()
        )
        raise KcliError(
            Problem(
                f"cannot export {run_model.run_dir} as {fmt}: its model reads text through {read}, "
                "whose strings kcli's preprocessing turns into ids with the vocabulary in the "
                "run's preprocess.json; an exported artifact could take only those ids"
            )
        )


def export_run(
    run: str,
    runs_dir: Path,
    fmt: str,
    output: Path | None = None,
    checkpoint: str | None = None,
) -> ExportResult:
    """Export a run's model as `fmt`, verified against the run's own model, to `output`."""
    from kcli.use.evaluate import find_run
    from kcli.use.run_model import load_run_model

    if fmt not in FORMATS:
        raise KcliError(
            Problem(
                f"unknown export format '{fmt}'{did_you_mean(fmt, FORMATS)}; one of "
                f"{', '.join(FORMATS)}"
            )
        )
    if output is not None:
        check_output_path(Path(output))
    for module in {
        "onnx": ("onnx", "onnxruntime", "onnxscript"),
        "safetensors": ("safetensors",),
    }.get(fmt, ()):
        _require(module)
    run_dir = find_run(run, runs_dir)
    run_model = load_run_model(run_dir, checkpoint, "cpu")
    _refuse_text_inputs(run_model, fmt)
    path = Path(output) if output is not None else _default_path(run_dir, run_model, fmt)
    raw = sample_inputs(run_model)
    reference = reference_outputs(run_model, raw)
    temp = _temp_beside(path)
    try:
        outputs, tolerance, folded = WRITERS[fmt](run_model, raw, temp)
        diff = max(float(abs(o - r).max()) for o, r in zip(outputs, reference, strict=True))
        if not diff <= tolerance:  # `not <=`: a NaN difference fails too
            raise KcliError(
                Problem(
                    f"the {fmt} artifact does not match the run's model: max |difference| "
                    f"{diff:.3g} > tolerance {tolerance:.3g}; nothing written"
                )
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    shapes = list(run_model.preprocessing.raw_shapes.values())
    names = input_names(run_model)
    if run_model.preprocessing.inputs is not None:
        shapes = [run_model.preprocessing.raw_shapes[name] for name in names]
    inputs = {name: list(shape) for name, shape in zip(names, shapes, strict=True)}
    note = None
    if run_model.preprocessing.table is not None and run_model.preprocessing.table["categories"]:
        note = "takes the one-hot encoded CSV features (their names are in the metadata)"
    if fmt == "safetensors":
        note = "weights only: rebuild the model from the recipe in the metadata"
    return ExportResult(
        path,
        fmt,
        diff,
        tolerance,
        len(reference[0]),
        inputs,
        list(run_model.plan.outputs),
        folded,
        note,
        run_dir,
        run_model.checkpoint,
    )


def _default_path(run_dir: Path, run_model: Any, fmt: str) -> Path:
    folder = run_dir / "export"
    folder.mkdir(exist_ok=True)
    return folder / f"{run_model.loaded.name}{FORMATS[fmt]}"


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)
