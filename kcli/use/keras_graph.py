"""A Keras 3 model config (Sequential or Functional) -> the recipe's `model:` section.

Sequential: the InputLayer's batch_shape (or build_input_shape) is `input_shape`; the layers
follow in order, keeping Keras' names (which kcli's weights and summaries then use).
Functional: each layer's `inbound_nodes` say what feeds it; `keras_history` [layer, node,
tensor] names one output of one call of a layer. The first call of a layer is the kcli layer
itself; a later call (a layer shared by two branches) is a `{type: Shared, shares: ...}` entry
named `<layer>_call_<k>`; output k > 0 of a layer (an RNN's states) is `layer:k`. A model of one
input takes it as `input_shape` (kcli's single input is named `input`), several as `inputs`.
The layers are written in a topological order, each with its `inputs`. Torch-free.
"""

from __future__ import annotations

from typing import Any

from kcli.use.keras_layers import import_layer, layer_label
from kcli.use.keras_values import KERAS_INPUT_DTYPES, ImportRefused, check_dtype

SINGLE_INPUT = "input"  # kcli's name for a model's one input (RECIPE.md)
# Call arguments (an inbound node's kwargs) that carry tensors kcli takes as further inputs,
# in the order kcli's layer takes them, and those that set a spec argument.
_TENSOR_KWARGS = ("value", "key", "initial_state")
_SPEC_KWARGS = ("use_causal_mask",)
_IGNORED_KWARGS = {"training": None, "mask": None, "return_attention_scores": False}


class Located(Exception):
    """An ImportRefused with the place in the archive it was found at."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


def import_model(model: dict) -> dict[str, Any]:
    """A serialized Keras model -> the recipe's `model:` mapping."""
    kind = model.get("class_name")
    config = model.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise Located("config", f"a {kind} model config without a list of layers")
    if kind == "Sequential":
        section = _sequential(config, model.get("build_config"))
    elif kind in ("Functional", "Model"):
        section = _functional(config)
    else:
        raise Located("config", f"the model class '{kind}' is not Sequential or Functional")
    name = config.get("name")
    return {"name": name, **section} if isinstance(name, str) else section


def _layer(where: str, layer: Any) -> dict[str, Any]:
    if not isinstance(layer, dict):
        raise Located(where, "a layer entry that is not a mapping")
    try:
        return import_layer(layer)
    except ImportRefused as refusal:
        raise Located(layer_label(where, layer), str(refusal)) from None


def _input_shape(where: str, layer: dict) -> list[Any]:
    config = layer.get("config") or {}
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if not isinstance(shape, list) or len(shape) < 2:
        raise Located(layer_label(where, layer), f"an input of shape {shape} (needs batch, ...)")
    try:
        check_dtype(config.get("dtype"), KERAS_INPUT_DTYPES)
    except ImportRefused as refusal:
        raise Located(layer_label(where, layer), str(refusal)) from None
    if config.get("sparse") or config.get("ragged"):
        raise Located(layer_label(where, layer), "sparse or ragged inputs are not supported")
    return shape[1:]


def _sequential(config: dict, build_config: Any) -> dict[str, Any]:
    entries = list(enumerate(config["layers"]))
    shape = None
    if (
        entries
        and isinstance(entries[0][1], dict)
        and entries[0][1].get("class_name") == ("InputLayer")
    ):
        shape = _input_shape("config.layers[0]", entries[0][1])
        entries = entries[1:]
    if shape is None:
        built = config.get("build_input_shape") or (build_config or {}).get("input_shape")
        if not isinstance(built, list) or len(built) < 2:
            raise Located(
                "config",
                "the Sequential model has no input shape (an unbuilt model: give it a "
                "keras.Input first)",
            )
        shape = built[1:]
    layers = [_layer(f"config.layers[{i}]", layer) for i, layer in entries]
    if not layers:
        raise Located("config.layers", "the model has no layers")
    return {"input_shape": shape, "layers": layers}


def _history(where: str, tensor: Any) -> tuple[str, int, int]:
    config = tensor.get("config") if isinstance(tensor, dict) else None
    history = config.get("keras_history") if isinstance(config, dict) else None
    if not (isinstance(history, list) and len(history) == 3):
        raise Located(where, f"cannot read {tensor!r} as a Keras tensor")
    return str(history[0]), int(history[1]), int(history[2])


def _tensors(where: str, value: Any) -> list[tuple[str, int, int]]:
    """Every Keras tensor in a call argument (a tensor, or a list of them), in order."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [_history(where, value)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(where, item)]
    if value is None:
        return []
    raise Located(where, f"a call argument that is not a tensor ({value!r}) is not supported")


def _call(where: str, node: Any) -> tuple[list[tuple[str, int, int]], dict[str, Any]]:
    """One inbound node: the tensors feeding the call, and the spec arguments it sets."""
    if not isinstance(node, dict) or "args" not in node:
        raise Located(where, "an inbound node in an older (Keras 2) format is not supported")
    tensors = _tensors(f"{where}.args", node["args"])
    kwargs = node.get("kwargs") or {}
    for key, value in kwargs.items():
        known = key in _TENSOR_KWARGS or key in _SPEC_KWARGS
        if not known and not (key in _IGNORED_KWARGS and value == _IGNORED_KWARGS[key]):
            if key != "training":
                raise Located(where, f"the call argument {key}={value!r} is not supported")
    for key in _TENSOR_KWARGS:
        tensors += _tensors(f"{where}.kwargs.{key}", kwargs.get(key))
    return tensors, {key: kwargs[key] for key in _SPEC_KWARGS if key in kwargs}


def _functional(config: dict) -> dict[str, Any]:
    inputs: dict[str, list[Any]] = {}
    calls: dict[tuple[str, int], dict[str, Any]] = {}  # (layer, node) -> kcli layer entry
    feeds: dict[tuple[str, int], list[tuple[str, int, int]]] = {}
    for index, layer in enumerate(config["layers"]):
        where = f"config.layers[{index}]"
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer":
            inputs[str(layer.get("name") or layer["config"].get("name"))] = _input_shape(
                where, layer
            )
            continue
        entry = _layer(where, layer)
        name = str(layer.get("name") or entry.get("name"))
        nodes = layer.get("inbound_nodes") or []
        for k, node in enumerate(nodes):
            tensors, spec_args = _call(f"{layer_label(where, layer)}.inbound_nodes[{k}]", node)
            if k == 0:
                calls[(name, 0)] = {**entry, "name": name, **spec_args}
            else:
                calls[(name, k)] = {"type": "Shared", "shares": name, "name": f"{name}_call_{k}"}
            feeds[(name, k)] = tensors
    single = len(inputs) == 1 and SINGLE_INPUT not in {n for n, _ in calls}
    rename = {next(iter(inputs)): SINGLE_INPUT} if single else {}

    def reference(where: str, history: tuple[str, int, int]) -> str:
        layer, node, tensor = history
        if layer in inputs:
            return rename.get(layer, layer)
        if (layer, node) not in calls:
            raise Located(where, f"a tensor of layer '{layer}' call {node}, which is not there")
        name = calls[(layer, node)]["name"]
        return f"{name}:{tensor}" if tensor else name

    layers = []
    for key in _topological(calls, feeds, inputs):
        entry = dict(calls[key])
        refs = [reference(f"layer '{key[0]}'", h) for h in feeds[key]]
        entry["inputs"] = refs[0] if len(refs) == 1 else refs
        layers.append(entry)
    outputs = [reference("config.output_layers", tuple(h)) for h in _pairs(config, "output_layers")]
    order = [str(h[0]) for h in _pairs(config, "input_layers")]
    shapes = {rename.get(n, n): inputs[n] for n in order if n in inputs}
    section: dict[str, Any] = (
        {"input_shape": shapes[SINGLE_INPUT]} if single else {"inputs": shapes}
    )
    section["layers"] = layers
    section["outputs"] = outputs[0] if len(outputs) == 1 else outputs
    return section


def _pairs(config: dict, key: str) -> list[list[Any]]:
    """input_layers / output_layers: a list of [layer, node, tensor] (or one of them)."""
    value = config.get(key)
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value]
    if not isinstance(value, list) or not value:
        raise Located(f"config.{key}", f"the Functional model has no {key}")
    return value


def _topological(
    calls: dict[tuple[str, int], Any], feeds: dict[tuple[str, int], list], inputs: dict
) -> list[tuple[str, int]]:
    """The calls in an order where every call comes after the ones feeding it (Keras lists
    layers by first use, so a shared layer's later call may need layers listed after it)."""
    order: list[tuple[str, int]] = []
    state: dict[tuple[str, int], str] = {}

    def visit(key: tuple[str, int]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "open":
            raise Located(f"layer '{key[0]}'", "the graph has a cycle")
        state[key] = "open"
        if key[1] > 0:
            visit((key[0], 0))  # a Shared call comes after the layer it shares
        for layer, node, _ in feeds[key]:
            if layer not in inputs and (layer, node) in calls:
                visit((layer, node))
        state[key] = "done"
        order.append(key)

    for key in calls:
        visit(key)
    return order
