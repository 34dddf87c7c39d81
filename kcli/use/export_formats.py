"""How each `kcli export` format is written, then read back the way its users read it.

Each writer takes the run's model, the raw sample (export_sample.py) and the path to write, and
returns the artifact's outputs on the whole sample, the tolerance they are held to, and the
preprocess steps folded in. ONNX, torch.export and TorchScript trace `DeployModel` (the run's
model behind its fitted preprocessing) at TRACE_BATCH samples with a dynamic batch axis, and are
run at other batch sizes: onnxruntime and torch.jit.load on the whole sample, torch.export's
program at CHECK_BATCHES sizes and the rest. safetensors is checked weight by weight and through
a model rebuilt from the recipe. A writer that cannot export raises a KcliError naming why.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kcli.errors import KcliError, Problem
from kcli.use.export_keras import write_keras
from kcli.use.export_sample import encoded, input_names

FORMATS = {
    "onnx": ".onnx",
    "torch-export": ".pt2",
    "torchscript": ".pt",
    "safetensors": ".safetensors",
    "keras": ".keras",
}
TOLERANCE = 1e-5  # float32 kernels of another runtime; relative to the outputs' scale
TRACE_BATCH = 3  # traced/exported with this batch; checked on another size (the axis is dynamic)
# torch.export's program is run on these batch sizes, then on the rest of the sample: 1 because
# torch's tracer treats size 1 apart from the others, 7 as an odd size above the trace's.
CHECK_BATCHES = (1, 7)


def _tolerance(reference_scale: float) -> float:
    return TOLERANCE * max(1.0, reference_scale)


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
    try:
        with _quiet_torch_export():
            program = torch.onnx.export(
                deploy,
                example,
                None,
                input_names=input_names(run_model),
                output_names=list(run_model.plan.outputs),
                dynamic_shapes=_batch_axes(example),
                dynamo=True,
            )
    except Exception as error:  # the exporter's many error types: find the layer behind it
        raise _unexportable(run_model, error, "onnx") from None
    proto = program.model_proto
    onnx.helper.set_model_props(proto, _metadata(run_model))
    onnx.save_model(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(session.get_inputs(), sample, strict=True)}
    outputs = session.run(None, feeds)
    return outputs, _tolerance(_scale_of(outputs)), deploy.folded


def _batch_axes(example: tuple[torch.Tensor, ...]) -> tuple[tuple[dict[int, Any], ...]]:
    """dim 0 of each input dynamic, one size shared by all (DeployModel's `*inputs` argument).

    min=1: one sample is a valid batch (torch's default lower bound is 0, and was 2 before 2.3,
    so it is said here). The example batch is TRACE_BATCH, not 1: torch would make a traced
    size of 1 a constant. torch-export's program is run at batch 1 before it is written.
    """
    batch = torch.export.Dim("batch", min=1)
    return (tuple({0: batch} for _ in example),)


def _unexportable(run_model: Any, error: Exception, fmt: str) -> KcliError:
    """Which layers the exporter cannot take: each layer is exported alone to find them."""
    exporter, verb = {"onnx": ("ONNX", "express"), "torch-export": ("torch.export", "trace")}[fmt]
    failed = []
    for node in run_model.plan.nodes:
        module = _LayerAlone(run_model.model.layer(node.name)).eval()
        example = tuple(torch.zeros(2, *shape) for shape in node.input_shapes)
        try:
            with _quiet_torch_export():
                if fmt == "onnx":
                    torch.onnx.export(module, example, None, dynamo=True)
                else:
                    torch.export.export(module, example)
        except Exception as layer_error:  # reported below, with the layer's name
            failed.append(f"{node.name} ({node.spec.type}): {_first_line(layer_error)}")
    if failed:
        return KcliError(
            [
                Problem(f"{exporter} cannot {verb} layer {what}; try --format torchscript")
                for what in failed
            ]
        )
    return KcliError(Problem(f"the {exporter} export failed: {_first_line(error)}"))


def _first_line(error: BaseException) -> str:
    """The root cause's first line (the exporter wraps the error that names the problem)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


class _LayerAlone(nn.Module):
    """One layer's module as a model of its own (to find the layer an exporter cannot take)."""

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


def _torch_export(run_model: Any, raw: Any, path: Path) -> tuple[list[Any], float, list[str]]:
    from kcli.model.nn.deploy import DeployModel

    deploy = DeployModel.from_run(run_model)
    sample = [torch.from_numpy(a) for a in encoded(run_model, raw)]
    example = tuple(t[:TRACE_BATCH] for t in sample)
    extra = {"kcli.json": json.dumps(_metadata(run_model))}
    try:
        with _quiet_torch_export():
            program = torch.export.export(deploy, example, dynamic_shapes=_batch_axes(example))
            # An open file, not the path: torch wants a path to end in .pt2; the temp file's
            # does not.
            with open(path, "wb") as file:
                torch.export.save(program, file, extra_files=extra)
    except Exception as error:  # the exporter's many error types: find the layer behind it
        raise _unexportable(run_model, error, "torch-export") from None
    with open(path, "rb") as file:
        loaded = torch.export.load(file).module()  # what a user of the file runs
    outputs = _in_batches(loaded, sample)
    return outputs, _tolerance(_scale_of(outputs)), deploy.folded


def _in_batches(module: Any, sample: list[torch.Tensor]) -> list[Any]:
    """The module on the sample cut into batches of CHECK_BATCHES sizes and the rest, joined."""
    import numpy as np

    n = len(sample[0])
    bounds = sorted({0, n, *(min(n, b) for b in itertools.accumulate(CHECK_BATCHES))})
    parts = []
    for start, stop in itertools.pairwise(bounds):
        try:
            with torch.no_grad():
                out = module(*(t[start:stop] for t in sample))
        except Exception as error:  # a guard the program was exported with, or a kernel's
            raise KcliError(
                Problem(
                    f"the torch-export program does not run on a batch of {stop - start}: "
                    f"{_first_line(error)}; nothing written"
                )
            ) from None
        parts.append([o.numpy() for o in (out if isinstance(out, tuple) else (out,))])
    return [np.concatenate(chunks) for chunks in zip(*parts, strict=True)]


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


# The format's name (--format) -> its writer; FORMATS above gives the file's extension.
WRITERS = {
    "onnx": _onnx,
    "torch-export": _torch_export,
    "torchscript": _torchscript,
    "safetensors": _safetensors,
    "keras": write_keras,  # kcli/use/export_keras.py
}
