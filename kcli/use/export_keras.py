"""`kcli export --format keras`: the run's model as a Keras 3 `.keras` archive, checked.

The archive's config is kcli.use.keras_export_config's (raw features in: the preprocess steps
Keras has as layers in front), its compile_config the recipe's compile section where Keras has
the same (kcli.use.keras_compile), its weights kcli.model.keras_weights' (Keras' layout) written
by kcli.model.keras_archive. Before the file is put in place it is read back the way its users
read it: with Keras installed, `keras.saving.load_model` (in a subprocess on Keras' torch
backend, so the CLI never imports Keras itself) predicts the export sample; without Keras,
kcli's own `kcli import` path rebuilds the model from the archive and predicts it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem

TOLERANCE = 1e-5  # as the other formats: float32 kernels of another runtime
KERAS_TIMEOUT_S = 300
# Run by the subprocess: load the archive with Keras and write its outputs on the sample.
_KERAS_CHECK = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
data = np.load(sys.argv[2])
xs = [data[f"x{i}"] for i in range(len(data.files))]
out = model(xs if len(xs) > 1 else xs[0], training=False)
out = list(out) if isinstance(out, (list, tuple)) else [out]
np.savez(sys.argv[3], *[keras.ops.convert_to_numpy(o) for o in out])
"""


def write_keras(run_model: Any, raw: Any, path: Path) -> tuple[list[Any], float, list[str]]:
    """Write the archive at `path` and return its outputs on the sample (export.py checks)."""
    if importlib.util.find_spec("h5py") is None:
        raise KcliError(Problem("a .keras archive needs the 'h5py' package: pip install h5py"))
    from kcli.model.keras_archive import write_keras_archive
    from kcli.model.keras_weights import keras_weights_of
    from kcli.use.export_sample import encoded
    from kcli.use.keras_compile import export_compile
    from kcli.use.keras_export_config import keras_model_config

    config = keras_model_config(run_model)
    config["compile_config"] = export_compile(run_model.loaded.recipe.compile)
    write_keras_archive(Path(path), config, keras_weights_of(run_model.model.eval()))
    sample = encoded(run_model, raw)
    if _keras_loaded_on_torch():
        outputs = keras_in_process(Path(path), sample)
    elif importlib.util.find_spec("keras") is not None:
        outputs = keras_outputs(Path(path), sample)
    else:
        outputs = reimported_outputs(Path(path), sample)
    scale = max(float(abs(o).max()) for o in outputs) if outputs else 1.0
    return outputs, TOLERANCE * max(1.0, scale), folded_steps(run_model)


def folded_steps(run_model: Any) -> list[str]:
    prep = run_model.preprocessing
    return [
        step.type if step.input is None else f"{step.type} ({step.input})"
        for step in prep.steps
        if not step.target and not (step.type == "cast" and step.dtype == "float32")
    ]


def _keras_loaded_on_torch() -> bool:
    """Keras is already imported here, on the torch backend (a notebook, the tests): load
    the archive in this process instead of starting Keras again in another."""
    keras = sys.modules.get("keras")
    return keras is not None and keras.backend.backend() == "torch"


def keras_in_process(path: Path, sample: list[np.ndarray]) -> list[np.ndarray]:
    import keras

    with tempfile.TemporaryDirectory(prefix="kcli-keras-") as folder:
        archive = Path(folder) / "model.keras"  # Keras reads only files named .keras
        shutil.copyfile(path, archive)
        try:
            with warnings.catch_warnings():
                # Keras warns that the optimizer's state is not in the file, as it does for
                # its own archives of models compiled and never trained.
                warnings.simplefilter("ignore")
                model = keras.saving.load_model(archive)
        except Exception as error:  # Keras' many error types; the message names the cause
            raise KcliError(
                Problem(f"Keras cannot load the exported archive: {error}; nothing written")
            ) from None
    out = model(sample if len(sample) > 1 else sample[0], training=False)
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(o) for o in out]


def keras_outputs(path: Path, sample: list[np.ndarray]) -> list[np.ndarray]:
    """The archive loaded by Keras (torch backend, a subprocess) run on the sample."""
    with tempfile.TemporaryDirectory(prefix="kcli-keras-") as folder:
        archive = Path(folder) / "model.keras"  # Keras reads only files named .keras
        shutil.copyfile(path, archive)
        inputs, outputs = Path(folder) / "inputs.npz", Path(folder) / "outputs.npz"
        np.savez(inputs, **{f"x{i}": x for i, x in enumerate(sample)})
        env = {**os.environ, "KERAS_BACKEND": "torch"}
        command = [sys.executable, "-c", _KERAS_CHECK, str(archive), str(inputs), str(outputs)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=KERAS_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise KcliError(
                Problem(f"Keras did not load the archive within {KERAS_TIMEOUT_S} s")
            ) from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit code {done.returncode}"
            raise KcliError(
                Problem(f"Keras cannot load the exported archive: {reason}; nothing written")
            )
        with np.load(outputs) as found:
            return [found[f"arr_{i}"] for i in range(len(found.files))]


def reimported_outputs(path: Path, sample: list[np.ndarray]) -> list[np.ndarray]:
    """Without Keras: the archive read back by `kcli import`'s translation, then run."""
    import torch
    from safetensors.torch import load

    from kcli.model.build import build_model_from_spec
    from kcli.use.keras_import import (
        check_imported,
        read_keras_source,
        recipe_from_keras,
        weights_state,
    )

    source = read_keras_source(path)
    parsed = check_imported(recipe_from_keras(source, None), str(path))
    built = build_model_from_spec(parsed.model.model_copy(update={"weights": None}), parsed.seed)
    built.model.load_state_dict(load(weights_state(parsed, source)), strict=True)
    names = list(built.plan.inputs)
    tensors = [torch.from_numpy(x) for x in sample]
    x = dict(zip(names, tensors, strict=True)) if len(names) > 1 else tensors[0]
    with torch.no_grad():
        out = built.model.eval()(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
