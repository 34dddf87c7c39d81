"""`kcli export`: a run's model as a deployable artifact, checked before it is written.

ONNX and TorchScript artifacts take raw features: the run's preprocess steps (standardize,
minmax, scale, reshape, cast) are folded in as the first ops, computed as preprocess.json's numpy
code computes them (standardize and minmax in float64, then back to the input's dtype). What
cannot be folded is a CSV run's one-hot encoding of categorical columns: such an artifact takes
the encoded feature vector, whose column names are in its metadata. Inputs and outputs carry the
recipe's names (`input`, or the model's `inputs:`; the output layers' names) and a dynamic batch
axis. safetensors holds the weights only, with the recipe and preprocess.json as metadata.

Before writing, the artifact is run (onnxruntime, torch.jit.load, or a model rebuilt from the
recipe and the saved weights) on a sample of the run's data, at another batch size than it was
traced with, and compared with the run's own model on the same raw sample through
preprocess.json. The file is written only if the largest difference is within the tolerance.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kcli.errors import KcliError, Problem, did_you_mean, install_hint
from kcli.files import check_output_path

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
TOLERANCE = 1e-5  # float32 kernels of another runtime; relative to the outputs' scale
SAMPLE_SIZE = 64
TRACE_BATCH = 3  # traced/exported with this batch; checked on another size (the axis is dynamic)
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
    path = Path(output) if output is not None else _default_path(run_dir, run_model, fmt)
    raw = sample_inputs(run_model)
    reference = reference_outputs(run_model, raw)
    exporter = {"onnx": _onnx, "torchscript": _torchscript, "safetensors": _safetensors}[fmt]
    temp = _temp_beside(path)
    try:
        outputs, tolerance, folded = exporter(run_model, raw, temp)
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
    names = _input_names(run_model)
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


def _input_names(run_model: Any) -> list[str]:
    return list(run_model.plan.inputs)


# ---- the sample -------------------------------------------------------------------------------
def sample_inputs(run_model: Any) -> Any:
    """Up to SAMPLE_SIZE raw samples of the run's data (random ones if it cannot be read)."""
    import numpy as np

    from kcli.data.raw import take
    from kcli.data.sources import load_source_arrays

    recipe = run_model.loaded.recipe
    spec = recipe.data.source_spec()
    try:
        raw = load_source_arrays(spec, run_model.recipe_dir, seed=recipe.seed)
    except KcliError:
        return _random_inputs(run_model)
    return take(raw.x, np.arange(min(len(raw), SAMPLE_SIZE)))


def _random_inputs(run_model: Any) -> Any:
    """Standard-normal raw features; integer ids below input_dim where an Embedding reads them."""
    import numpy as np

    prep = run_model.preprocessing
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in prep.raw_shapes.items():
        values = rng.standard_normal((SAMPLE_SIZE, *shape)).astype(np.float32)
        limit = _embedding_limit(run_model, name)
        if limit is not None:
            values = rng.integers(0, limit, (SAMPLE_SIZE, *shape)).astype(np.float32)
        arrays[name] = values
    if prep.table is not None:
        raise KcliError(
            Problem(
                f"cannot read {run_model.run_dir}'s data to check the export against (a CSV run)"
            )
        )
    return arrays if prep.inputs is not None else next(iter(arrays.values()))


def _embedding_limit(run_model: Any, input_name: str) -> int | None:
    names = _input_names(run_model)
    model_input = input_name if input_name in names else names[0]
    for node in run_model.plan.nodes:
        if node.spec.type == "Embedding" and list(node.inputs) == [model_input]:
            return node.spec.input_dim
    return None


def encoded(run_model: Any, raw: Any) -> list[Any]:
    """The raw sample as the artifact takes it: float32 arrays in model-input order."""
    from kcli.data.preprocess import Preprocessing

    prep = run_model.preprocessing
    # The same preprocessing without its steps: only the CSV encoding and the shape checks.
    encode = Preprocessing([], [], inputs=prep.inputs, raw_shapes=prep.raw_shapes, table=prep.table)
    arrays = encode.transform_x(raw, "the export sample")
    if isinstance(arrays, dict):
        return [arrays[name] for name in _input_names(run_model)]
    return [arrays]


def reference_outputs(run_model: Any, raw: Any) -> list[Any]:
    """The run's own model on the sample, through preprocess.json (numpy)."""
    x = run_model.preprocessing.transform_x(raw, "the export sample")
    if isinstance(x, dict):
        x = {name: torch.from_numpy(values) for name, values in x.items()}
    else:
        x = torch.from_numpy(x)
    with torch.no_grad():
        out = run_model.model.eval()(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _tolerance(reference_scale: float) -> float:
    return TOLERANCE * max(1.0, reference_scale)


# ---- the formats ------------------------------------------------------------------------------
def _metadata(run_model: Any) -> dict[str, str]:
    prep = run_model.preprocessing
    return {
        "kcli.recipe": run_model.loaded.resolved_yaml(),
        "kcli.preprocess": json.dumps(prep.to_json()),
        "kcli.class_names": json.dumps(run_model.class_names),
        "kcli.features": json.dumps(prep.feature_names()),
    }


def _scale_of(outputs: list[Any]) -> float:
    return max(float(abs(o).max()) for o in outputs) if outputs else 1.0


@contextlib.contextmanager
def _quiet_torch_export():
    """Keep torch's exporter chatter (progress lines, its own deprecation notes) off the CLI."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _onnx(run_model: Any, raw: Any, path: Path) -> tuple[list[Any], float, list[str]]:
    import onnx
    import onnxruntime

    from kcli.model.nn.deploy import DeployModel

    deploy = DeployModel.from_run(run_model)
    sample = encoded(run_model, raw)
    example = tuple(torch.from_numpy(a[:TRACE_BATCH]) for a in sample)
    batch = torch.export.Dim("batch")
    try:
        with _quiet_torch_export():
            program = torch.onnx.export(
                deploy,
                example,
                None,
                input_names=_input_names(run_model),
                output_names=list(run_model.plan.outputs),
                dynamic_shapes=(tuple({0: batch} for _ in example),),
                dynamo=True,
            )
    except Exception as error:  # the exporter's many error types: find the layer behind it
        raise _unexportable(run_model, error) from None
    proto = program.model_proto
    onnx.helper.set_model_props(proto, _metadata(run_model))
    onnx.save_model(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(session.get_inputs(), sample, strict=True)}
    outputs = session.run(None, feeds)
    return outputs, _tolerance(_scale_of(outputs)), deploy.folded


def _unexportable(run_model: Any, error: Exception) -> KcliError:
    """Which layers ONNX cannot express: each layer is exported alone to find them."""
    failed = []
    for node in run_model.plan.nodes:
        module = run_model.model.layer(node.name)
        example = tuple(torch.zeros(2, *shape) for shape in node.input_shapes)
        try:
            with _quiet_torch_export():
                torch.onnx.export(_LayerAlone(module).eval(), example, None, dynamo=True)
        except Exception as layer_error:  # reported below, with the layer's name
            failed.append(f"{node.name} ({node.spec.type}): {_first_line(layer_error)}")
    if failed:
        return KcliError(
            [
                Problem(f"ONNX cannot express layer {what}; try --format torchscript")
                for what in failed
            ]
        )
    return KcliError(Problem(f"the ONNX export failed: {_first_line(error)}"))


def _first_line(error: BaseException) -> str:
    """The root cause's first line (the exporter wraps the error that names the problem)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


class _LayerAlone(nn.Module):
    """One layer's module as a model of its own (to find the layer ONNX cannot express)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layer(*inputs)


def _torchscript(run_model: Any, raw: Any, path: Path) -> tuple[list[Any], float, list[str]]:
    from kcli.model.nn.deploy import DeployModel

    deploy = DeployModel.from_run(run_model)
    sample = [torch.from_numpy(a) for a in encoded(run_model, raw)]
    example = tuple(t[:TRACE_BATCH] for t in sample)
    with warnings.catch_warnings():
        # torch.jit.trace is deprecated in favour of torch.export, but TorchScript files are
        # what C++ (libtorch) and older runtimes load; its tracer warnings are checked below.
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(deploy, example, check_trace=False)
        extra = {"kcli.json": json.dumps(_metadata(run_model))}
        torch.jit.save(traced, str(path), _extra_files=extra)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        out = loaded(*sample)
    outputs = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    return outputs, _tolerance(_scale_of(outputs)), deploy.folded


def _safetensors(run_model: Any, raw: Any, path: Path) -> tuple[list[Any], float, list[str]]:
    from safetensors.torch import load_file, save_file

    state = {k: v.detach().contiguous() for k, v in run_model.model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", **_metadata(run_model)})
    loaded = load_file(str(path))
    changed = [k for k in state if k not in loaded or not torch.equal(state[k], loaded[k])]
    if changed or set(loaded) != set(state):
        raise KcliError(Problem(f"safetensors did not round-trip the weights: {changed[:5]}"))
    rebuilt = run_model.loaded.build_model().model
    rebuilt.load_state_dict(loaded, strict=True)
    x = run_model.preprocessing.transform_x(raw, "the export sample")
    x = (
        {k: torch.from_numpy(v) for k, v in x.items()}
        if isinstance(x, dict)
        else torch.from_numpy(x)
    )
    with torch.no_grad():
        out = rebuilt.eval()(x)
    outputs = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    return outputs, 0.0, []  # the same weights in the same model: exactly the same numbers
