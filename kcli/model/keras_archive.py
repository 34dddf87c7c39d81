"""Keras' `.keras` archive, read and written without Keras: config.json, metadata.json and
model.weights.h5 in a zip.

Keras saves each layer's variables at `layers/<slot>/vars/<i>` in model.weights.h5, where the
slot is the snake_case class name, numbered per class in the order of the model's layer list
(`dense`, `dense_1`, ...; a Sequential's list leaves out its InputLayer), not the layer's name.
A layer's sublayers sit under their attribute names (an RNN's `cell`, Bidirectional's
`forward_layer` and `backward_layer`, a wrapper's `layer`, MultiHeadAttention's
`query_dense`...), and a nested model's layers under `layers/<slot>/layers/`. The optimizer's
variables (`optimizer/`) are not weights of the model and are skipped.

`KerasArchive.weights` maps each layer that has weights to them in Keras' `get_weights()`
order (its own variables, then its sublayers' in the order Keras tracks them); a nested
model's layers are `<model name>/<layer name>` (kcli.model.keras_weights' keys).
Torch-free: h5py and numpy only.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from kcli.errors import KcliError, Problem
from kcli.files import write_bytes_atomic

KerasWeights = dict[str, list[np.ndarray]]
MODEL_CLASSES = {"Functional", "Sequential", "Model"}
# Sublayers in the order Keras tracks them (`get_weights()`), where that is not the order the
# file lists them in (public attribute names alphabetically, then private ones).
SUBLAYER_ORDER = {
    "Bidirectional": ["forward_layer", "backward_layer"],
    "MultiHeadAttention": ["query_dense", "key_dense", "value_dense", "output_dense"],
}
RNN_CLASSES = {"SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "RNN"}


@dataclass
class KerasArchive:
    """What a `.keras` file holds: the model's config, the metadata, the weights per layer."""

    config: dict  # config.json: the model's Keras config (compile_config included if saved)
    metadata: dict  # metadata.json
    weights: KerasWeights = field(default_factory=dict)


def _snake(name: str) -> str:
    # Keras' naming.to_snake_case, which names the slots of a layer list in the file.
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_slots(model_config: dict) -> list[tuple[str, dict]]:
    """(slot in the file, layer config) of each layer of a model's config, in its order."""
    layers = model_config.get("config", {}).get("layers", [])
    if model_config.get("class_name") == "Sequential":
        layers = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
    used: dict[str, int] = {}
    slots = []
    for layer in layers:
        base = _snake(layer.get("class_name", "layer"))
        used[base] = used.get(base, -1) + 1
        slots.append((base if used[base] == 0 else f"{base}_{used[base]}", layer))
    return slots


def _layer_name(layer: dict) -> str:
    return layer.get("config", {}).get("name") or layer.get("name", "")


def _inner_config(class_name: str, config: dict, attr: str) -> dict:
    """The config of sublayer `attr` of a layer (a wrapper's inner layer), or {}."""
    inner = config.get("config", {})
    if attr == "backward_layer" and inner.get("backward_layer"):
        return inner["backward_layer"]
    if attr in ("layer", "forward_layer", "backward_layer"):
        return inner.get("layer") or {}
    return {}


# ---- reading


def _own_vars(group) -> list[np.ndarray]:
    if group is None or "vars" not in group:
        return []
    vars_ = group["vars"]
    return [np.asarray(vars_[str(i)]) for i in range(len(vars_))]


def _children(class_name: str, group) -> list[str]:
    names = [
        name for name in group if name not in ("vars", "layers") and "seed_generator" not in name
    ]
    order = SUBLAYER_ORDER.get(class_name)
    if order:
        return [name for name in order if name in names]
    # Keras walks attributes sorted, with private ones ("_...") last.
    return sorted(names, key=lambda name: f"~{name}" if name.startswith("_") else name)


def _layer_arrays(layer: dict, group) -> list[np.ndarray]:
    """One (non-model) layer's weights in `get_weights()` order, from its group in the file."""
    class_name = layer.get("class_name", "")
    arrays = _own_vars(group)
    inner = [_layer_arrays(_inner_config(class_name, layer, attr) or {}, group[attr])
             for attr in _children(class_name, group)]  # fmt: skip
    if class_name == "SpectralNormalization" and inner and arrays:
        inner[0] = inner[0][1:]  # the kernel is tracked once, as the wrapper's first weight
    return arrays + [array for arrays_ in inner for array in arrays_]


def _model_weights(model_config: dict, group, prefix: str, weights: KerasWeights) -> None:
    layers = group["layers"] if group is not None and "layers" in group else None
    for slot, layer in layer_slots(model_config):
        sub = layers[slot] if layers is not None and slot in layers else None
        if layer.get("class_name") in MODEL_CLASSES:
            _model_weights(layer, sub, f"{_layer_name(layer)}/", weights)
            continue
        arrays = _layer_arrays(layer, sub) if sub is not None else []
        if arrays:
            weights[prefix + _layer_name(layer)] = arrays


def _bad(path: Path, why: str) -> KcliError:
    return KcliError(Problem(f"{path}: {why}"))


def _json_member(archive: zipfile.ZipFile, path: Path, member: str, required: bool) -> dict:
    if member not in archive.namelist():
        if required:
            raise _bad(path, f"not a Keras model file (no {member} in it)")
        return {}
    try:
        value = json.loads(archive.read(member))
    except (ValueError, UnicodeDecodeError) as error:
        raise _bad(path, f"{member} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise _bad(path, f"{member} is not a JSON object")
    return value


def read_keras_archive(path: Path) -> KerasArchive:
    """The config, metadata and weights of a `.keras` file (a KcliError naming it if it is
    missing, not a zip, or lacks config.json or model.weights.h5)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file" if not path.exists() else "not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            config = _json_member(archive, path, "config.json", required=True)
            metadata = _json_member(archive, path, "metadata.json", required=False)
            if "model.weights.h5" not in archive.namelist():
                raise _bad(path, "not a Keras model file (no model.weights.h5 in it)")
            data = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, OSError) as error:
        raise _bad(path, f"not a Keras model file (a .keras file is a zip: {error})") from None
    weights: KerasWeights = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            _model_weights(config, h5, "", weights)
    except (OSError, KeyError, ValueError) as error:
        raise _bad(path, f"model.weights.h5 cannot be read ({error})") from None
    return KerasArchive(config=config, metadata=metadata, weights=weights)


# ---- writing


def _split(layer: dict, arrays: list[np.ndarray]) -> tuple[list, list[tuple[str, dict, list]]]:
    """(the layer's own variables, [(sublayer attribute, its config, its variables)])."""
    class_name = layer.get("class_name", "")
    inner = _inner_config(class_name, layer, "layer")
    if class_name in RNN_CLASSES:
        return [], [("cell", {}, arrays)]
    if class_name == "Bidirectional":
        half = len(arrays) // 2
        backward = _inner_config(class_name, layer, "backward_layer")
        return [], [
            ("forward_layer", inner, arrays[:half]),
            ("backward_layer", backward, arrays[half:]),
        ]
    if class_name == "TimeDistributed":
        return [], [("layer", inner, arrays)]
    if class_name == "SpectralNormalization":
        return arrays[:2], [("layer", inner, arrays[:1] + arrays[2:])]
    if class_name == "MultiHeadAttention":
        size = len(arrays) // 4
        parts = SUBLAYER_ORDER["MultiHeadAttention"]
        return [], [(part, {}, arrays[k * size : (k + 1) * size]) for k, part in enumerate(parts)]
    return arrays, []


def _write_layer(group, layer: dict, arrays: list[np.ndarray]) -> None:
    own, children = _split(layer, arrays)
    _write_vars(group, own, _layer_name(layer))
    for attr, inner, inner_arrays in children:
        _write_layer(group.create_group(attr), inner, inner_arrays)


def _write_vars(group, arrays: list[np.ndarray], name: str) -> None:
    vars_ = group.create_group("vars")
    if name:
        vars_.attrs["name"] = name
    for i, array in enumerate(arrays):
        vars_.create_dataset(str(i), data=np.asarray(array))


def _write_model(group, model_config: dict, prefix: str, weights: KerasWeights, used: set) -> None:
    _write_vars(group, [], _layer_name(model_config))
    layers = group.create_group("layers")
    for slot, layer in layer_slots(model_config):
        sub = layers.create_group(slot)
        if layer.get("class_name") in MODEL_CLASSES:
            _write_model(sub, layer, f"{_layer_name(layer)}/", weights, used)
            continue
        key = prefix + _layer_name(layer)
        used.add(key)
        _write_layer(sub, layer, list(weights.get(key, [])))


def write_keras_archive(
    path: Path, config: dict, weights: KerasWeights, metadata: dict | None = None
) -> None:
    """Write a `.keras` file (atomically) that `keras.saving.load_model` reads: `config` as
    config.json, `weights` (per layer, `get_weights()` order) as model.weights.h5."""
    import h5py

    buffer = io.BytesIO()
    used: set[str] = set()
    with h5py.File(buffer, "w") as h5:
        # No optimizer/ group: the archive carries the model's weights, not a training state.
        _write_model(h5, config, "", weights, used)
    unknown = sorted(key for key, arrays in weights.items() if len(arrays) and key not in used)
    if unknown:
        raise KcliError(f"weights for layers the config does not have: {', '.join(unknown)}")
    if metadata is None:
        saved = datetime.now(timezone.utc).strftime("%Y-%m-%d@%H:%M:%S")
        metadata = {"keras_version": _keras_version(), "date_saved": saved}
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", buffer.getvalue())
    write_bytes_atomic(Path(path), zipped.getvalue())


def _keras_version() -> str:
    # The format version this writer follows; Keras only reads it to warn on a mismatch.
    return "3.5.0"
