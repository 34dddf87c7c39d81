"""A run's model (its plan and fitted preprocessing) -> a Keras 3 Functional model config.

Every model is written as Functional (a Sequential recipe is the same graph). The inputs take
the run's raw features: the preprocess steps Keras has as layers go in front of the model, per
input: standardize -> Normalization (mean, variance = std**2), minmax and scale -> Rescaling,
reshape -> Reshape, cast to float32 -> nothing; any other step is refused by name. Each kcli
layer is its Keras layer with the arguments that differ from the defaults (kcli's defaults are
Keras'), object arguments serialized by kcli.use.keras_values; a Shared call is another
inbound node of the layer it shares. Torch-free: works on the plan and the preprocessing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem
from kcli.use.keras_values import (
    FLOAT32_POLICY,
    export_activation,
    export_initializer,
    export_regularizer,
    serialized,
)

# kcli arguments Keras takes when the layer is called, not when it is made.
_CALL_ARGUMENTS = ("use_causal_mask",)
# How a layer of several inputs takes them in Keras: one list (merge layers, Attention), or
# positionally (MultiHeadAttention's query, value, key), or as initial_state (RNNs).
_POSITIONAL = ("MultiHeadAttention",)
_STATEFUL = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def _refuse(what: str) -> KcliError:
    return KcliError(Problem(f"cannot export to Keras: {what}"))


def layer_config(spec: Any, name: str | None) -> dict[str, Any]:
    """A kcli layer spec as a serialized Keras layer.

    Every argument is written (some Keras layers' from_config read keys without a default,
    as Rescaling's offset) but those left at None, kcli's "not given", which Keras' own
    configs may not know (a kcli-only option off).
    """
    config: dict[str, Any] = {"name": name} if name else {}
    for key, info in type(spec).model_fields.items():
        value = getattr(spec, key)
        if key in ("type", "name", "inputs") or key in _CALL_ARGUMENTS:
            continue
        if value is None:
            if key in ("activation", "recurrent_activation") and info.default is not None:
                config[key] = "linear"  # null is linear in kcli; Keras' default is not
            continue
        config[info.alias or key] = _value(key, value)
    config["dtype"] = FLOAT32_POLICY
    return serialized("keras.layers", spec.type, config)


def _value(key: str, value: Any) -> Any:
    if key.endswith("_initializer"):
        return export_initializer(value)
    if key.endswith("_regularizer"):
        return export_regularizer(value)
    if key in ("activation", "recurrent_activation"):
        try:
            return export_activation(value)
        except ValueError as error:
            raise _refuse(str(error)) from None
    if key == "layer":
        return layer_config(value, None)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return list(value) if isinstance(value, tuple) else value


def _tensor(history: tuple[str, int, int], shape: tuple) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {
            "shape": [None, *shape],
            "dtype": "float32",
            "keras_history": list(history),
        },
    }


def _node(spec: Any, tensors: list[dict[str, Any]]) -> dict[str, Any]:
    """One inbound node: the call's tensors in the form the Keras layer takes them."""
    kwargs = {key: getattr(spec, key) for key in _CALL_ARGUMENTS if hasattr(spec, key)}
    if spec.type in _STATEFUL:
        if len(tensors) > 1:
            kwargs["initial_state"] = tensors[1:]
        return {"args": tensors[:1], "kwargs": kwargs}
    if spec.type in _POSITIONAL:  # self-attention: the one input is query and value
        if len(tensors) > 2:
            kwargs["key"] = tensors[2]
        return {"args": (tensors * 2)[:2], "kwargs": kwargs}
    if len(tensors) == 1:
        return {"args": tensors, "kwargs": kwargs}
    return {"args": [tensors], "kwargs": kwargs}  # merge layers, Attention: one list


def _preprocess_layers(prep: Any, input_name: str, shape: tuple) -> list[tuple[str, dict, tuple]]:
    """(Keras class, config, output shape) of each x step applied to one input, in order."""
    layers = []
    for index, (step, state) in enumerate(zip(prep.steps, prep.states, strict=True)):
        if step.target:
            continue
        key = input_name if prep.inputs is not None else "input"
        if key not in state:
            continue
        fitted = state[key]
        name = f"{input_name}_{step.type}_{index}"
        if step.type == "standardize":
            axes = _kept(step.axis, len(shape) + 1)
            mean, std = (np.asarray(fitted[k], np.float64) for k in ("mean", "std"))
            kept = [shape[a - 1] for a in axes]
            config = {
                "axis": None if step.axis is None else list(axes),
                "invert": False,
                "mean": mean.reshape(kept).tolist(),
                "variance": np.square(std).reshape(kept).tolist(),
            }
            layers.append(("Normalization", {"name": name, **config}, shape))
        elif step.type in ("minmax", "scale"):
            layers.append(("Rescaling", {"name": name, **_rescaling(step, fitted, shape)}, shape))
        elif step.type == "reshape":
            shape = tuple(fitted["shape"])
            layers.append(("Reshape", {"name": name, "target_shape": list(shape)}, shape))
        elif step.type == "cast" and step.dtype == "float32":
            continue
        else:
            raise _refuse(f"the preprocess step '{step.type}' has no Keras layer")
    return layers


def _kept(axis: Any, ndim: int) -> list[int]:
    if axis is None:
        return []
    return sorted(a % ndim for a in ([axis] if isinstance(axis, int) else axis))


def _rescaling(step: Any, fitted: dict, shape: tuple) -> dict[str, Any]:
    if step.type == "scale":
        return {"scale": float(step.scale), "offset": float(step.offset)}
    low, high = (np.asarray(fitted[k], np.float64) for k in ("min", "max"))
    span = np.where(high > low, high - low, 1.0)
    a, b = step.feature_range
    scale, offset = (b - a) / span, a - low * (b - a) / span
    kept = _kept(step.axis, len(shape) + 1)
    if kept and kept != [len(shape)]:
        raise _refuse("a minmax over other axes than the last has no Keras Rescaling form")
    if not kept:
        return {"scale": float(scale.reshape(())), "offset": float(offset.reshape(()))}
    return {"scale": scale.reshape(-1).tolist(), "offset": offset.reshape(-1).tolist()}


def keras_model_config(run_model: Any) -> dict[str, Any]:
    """The run's model, raw features in, as a Keras Functional model's config."""
    plan, prep = run_model.plan, run_model.preprocessing
    if plan.models:
        raise _refuse("a model calling sub-models (model.models) is not exported yet")
    layers: list[dict[str, Any]] = []
    calls: dict[str, tuple[str, int]] = {}  # kcli reference -> (Keras layer, node)
    shapes: dict[str, tuple] = {}
    for name in plan.inputs:
        raw = tuple(prep.raw_shapes[name if prep.inputs is not None else "input"])
        input_config = {"batch_shape": [None, *raw], "dtype": "float32", "sparse": False}
        layers.append(
            {
                **serialized("keras.layers", "InputLayer", {**input_config, "name": name}),
                "name": name,
                "inbound_nodes": [],
            }
        )
        last, shape = (name, 0), raw
        for class_name, config, out_shape in _preprocess_layers(prep, name, raw):
            config["dtype"] = FLOAT32_POLICY
            node = {"args": [_tensor((*last, 0), shape)], "kwargs": {}}
            entry = serialized("keras.layers", class_name, config)
            layers.append({**entry, "name": config["name"], "inbound_nodes": [node]})
            last, shape = (config["name"], 0), out_shape
        calls[name], shapes[name] = last, shape
    by_name: dict[str, dict[str, Any]] = {}
    for node in plan.nodes:
        tensors = [_reference(ref, calls, shapes, plan) for ref in node.inputs]
        inbound = _node(node.spec, tensors)
        if node.shares is not None:
            owner = by_name[node.shares]
            calls[node.name] = (node.shares, len(owner["inbound_nodes"]))
            owner["inbound_nodes"].append(inbound)
        else:
            entry = {**layer_config(node.spec, node.name), "name": node.name}
            entry["inbound_nodes"] = [inbound]
            layers.append(entry)
            by_name[node.name] = entry
            calls[node.name] = (node.name, 0)
    outputs = [[*calls[_layer(ref)], _index(ref)] for ref in plan.outputs]
    config = {
        "name": run_model.loaded.recipe.model.name or run_model.loaded.name,
        "trainable": True,
        "layers": layers,
        # One input (output) is written bare, as Keras writes it: a list would make Keras
        # expect (return) a list of one.
        "input_layers": _one_or_list([[name, 0, 0] for name in plan.inputs]),
        "output_layers": _one_or_list(outputs),
    }
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": config,
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
    }


def _one_or_list(items: list[list[Any]]) -> list[Any]:
    return items[0] if len(items) == 1 else items


def _layer(reference: str) -> str:
    return reference.partition(":")[0]


def _index(reference: str) -> int:
    _, _, index = reference.partition(":")
    return int(index) if index else 0


def _reference(ref: str, calls: dict, shapes: dict, plan: Any) -> dict[str, Any]:
    name = _layer(ref)
    shape = shapes[name] if name in shapes else plan.shape_of(ref)
    return _tensor((*calls[name], _index(ref)), tuple(shape))
