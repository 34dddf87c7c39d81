"""`model.weights`: start training from saved weights (fine-tuning, transfer learning).

The file is read before training, after the model is built (and its preprocessing layers
adapted), so it decides where training starts: a `.safetensors` file named as kcli's state
dict (`kcli export --format safetensors`, `kcli import`), a `.keras` archive (Keras' layer
names and layouts, through kcli.model.keras_weights), or a run folder / a checkpoint file
(`torch.load(weights_only=True)`). Strict by default: every weight of the model present with
its shape and nothing extra, else exit 2 listing each difference, located at `model.weights`,
with no weight changed and nothing written. `strict: false` loads what fits and reports what
it skipped (a stderr line and run.json's `start_weights`). `--resume` does not come here: a
resumed run continues from its own checkpoint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kcli.errors import KcliError, Problem
from kcli.model.spec import StartWeightsSpec

CHECKPOINT_SUFFIXES = {".pt", ".pth", ".ckpt"}


def _fits(tensors: Mapping[str, Any], model: nn.Module) -> tuple[list[str], list[str]]:
    """(the names that fit, what does not) comparing named tensors with the state dict."""
    state = model.state_dict()
    problems = [f"{name}: in the file, not in the model" for name in tensors if name not in state]
    problems += [f"{name}: in the model, not in the file" for name in state if name not in tensors]
    fits = []
    for name, tensor in tensors.items():
        if name not in state:
            continue
        have, want = tuple(tensor.shape), tuple(state[name].shape)
        if have != want:
            problems.append(f"{name}: shape {have} in the file, the model's is {want}")
        else:
            fits.append(name)
    return fits, problems


def load_named_weights(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], strict: bool = True
) -> list[str]:
    """Copy tensors named as the model's state dict into it; what was skipped, one line each.
    `strict`: a KcliError listing every difference instead, with nothing copied."""
    fits, problems = _fits(tensors, model)
    if strict and problems:
        raise KcliError([Problem(f"the weights do not fit the model: {p}") for p in problems])
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for name in fits:
            target = state[name]
            target.copy_(tensors[name].to(dtype=target.dtype, device=target.device))
    return problems


def _run_checkpoint(folder: Path) -> Path:
    """The checkpoint of a run folder the run ended with (eval.json says), else best, else last."""
    checkpoints = folder / "checkpoints"
    if not checkpoints.is_dir():
        raise KcliError(f"{folder}: a folder, but not a kcli run (no checkpoints/ in it)")
    try:
        chosen = json.loads((folder / "eval.json").read_text()).get("checkpoint") or "best"
    except (OSError, ValueError, AttributeError):
        chosen = "best"
    for name in (chosen, "best", "last"):
        if (checkpoints / f"{name}.pt").is_file():
            return checkpoints / f"{name}.pt"
    raise KcliError(f"{folder}: the run has no checkpoint yet")


def _checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    from kcli.fit.checkpoint import load_checkpoint, model_weights

    state = load_checkpoint(path)
    if "model" not in state and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state  # a bare state dict (torch.save(model.state_dict()))
    return model_weights(state, path)


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise KcliError(f"{path}: not a readable safetensors file ({error})") from None


def load_weights_file(model: nn.Module, path: Path, strict: bool) -> tuple[str, list[str]]:
    """(the file's format, what was skipped) after loading `path` into `model`."""
    if not path.exists():
        raise KcliError(f"{path}: no such file or folder")
    if path.is_dir():
        path = _run_checkpoint(path)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        from kcli.model.keras_archive import read_keras_archive
        from kcli.model.keras_weights import load_keras_weights

        return "keras", load_keras_weights(model, read_keras_archive(path).weights, strict)
    if suffix == ".safetensors":
        return "safetensors", load_named_weights(model, _safetensors(path), strict)
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint", load_named_weights(model, _checkpoint_tensors(path), strict)
    raise KcliError(
        f"{path}: give a .safetensors, .keras or checkpoint (.pt) file, or a run folder"
    )


def _at_weights(error: KcliError, spec_is_path: bool, path: Path) -> KcliError:
    loc = ("model", "weights") if spec_is_path else ("model", "weights", "path")
    problems = []
    for problem in error.problems:
        message = problem.message
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        problems.append(replace(problem, loc=problem.loc or loc, message=message))
    details = list(error.details)
    if any("do not fit the model" in p.message for p in problems):
        details.append(
            "to load only the weights that fit: model.weights: {path: ..., strict: false}"
        )
    return KcliError(problems, details=details)


def load_start_weights(model: nn.Module, loaded, announce: bool = True) -> dict | None:
    """Load the recipe's `model.weights` into the freshly built model; the record run.json
    keeps (path, format, strict, skipped), or None without `model.weights`."""
    from kcli.recipe.load import locate

    start: StartWeightsSpec | None = loaded.recipe.model.start_weights()
    if start is None:
        return None
    path = start.file(loaded.base_dir)
    try:
        kind, skipped = load_weights_file(model, path, start.strict)
    except KcliError as error:
        is_path = isinstance(loaded.recipe.model.weights, str)
        raise locate(_at_weights(error, is_path, path), loaded) from None
    if skipped and announce:
        print(
            f"note: model.weights: {len(skipped)} skipped (strict: false): " + "; ".join(skipped),
            file=sys.stderr,
        )
    record = {"path": str(path.resolve()), "format": kind, "strict": start.strict}
    return {**record, "skipped": skipped}
