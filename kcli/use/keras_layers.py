"""One Keras 3 layer config -> one kcli layer (a recipe mapping), or an error naming what.

kcli's layer specs take Keras' argument names (kcli/model/layers), so most arguments pass
through; object arguments are read by kcli.use.keras_values. What is left out of the recipe:
  - arguments equal to kcli's default (the recipe says only what differs, as a user writes it);
  - `dtype`: checked to be a float32 policy, which is all kcli computes in;
  - Keras arguments kcli has no field for, when they hold the value that means what kcli
    does (`KERAS_ONLY`: no constraint, channels_last, not stateful ...).
Anything else (an unknown class, a constraint, channels_first, a custom activation) is an
ImportRefused that the caller turns into an exit-2 error at the layer's place in the archive.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from kcli.errors import did_you_mean, format_loc
from kcli.model.layers import layer_registry
from kcli.registry import recipe_keys
from kcli.use.keras_values import (
    ImportRefused,
    check_dtype,
    import_activation,
    import_initializer,
    import_regularizer,
    is_custom,
    keras_object,
    tidy,
)


def _always(value: Any) -> bool:
    return True


def _equals(expected: Any) -> Callable[[Any], bool]:
    return lambda value: value == expected


# Keras arguments without a kcli field -> whether a value may be dropped (it means what kcli
# computes). `unroll` and the RNN/attention `seed` only change how (or which dropout mask) is
# drawn, never a prediction; `zero_output_for_mask` only acts on masked steps; the rest must
# hold Keras' default.
KERAS_ONLY: dict[str, Callable[[Any], bool]] = {
    "data_format": _equals("channels_last"),
    "quantization_config": _equals(None),
    "stateful": _equals(False),
    "unroll": _always,
    "zero_output_for_mask": _always,
    "seed": _always,
    "synchronized": _equals(False),
    "renorm": _equals(False),
    "renorm_clipping": _equals(None),
    "renorm_momentum": _always,  # only read with renorm, refused above when on
    "rms_scaling": _equals(False),
    "mask_zero": _equals(False),
    "use_gate": _equals(False),
    "sliding_window": _equals(None),
    "lora_rank": _equals(None),
    "lora_alpha": _equals(None),
    "input_length": _always,  # Keras 2's Embedding argument, ignored by Keras 3 too
}
NESTED_MODELS = ("Sequential", "Functional", "Model")


def layer_label(where: str, layer: dict) -> str:
    """`config.layers[3] (Dense 'dense_1')`: how errors name a layer of the archive."""
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    return f"{where} ({layer.get('class_name')} '{config.get('name', '?')}')"


def layer_class(layer: dict) -> type:
    """kcli's spec class for a serialized Keras layer; ImportRefused names an unknown one."""
    name = str(layer.get("class_name"))
    if is_custom(layer):
        registered = layer.get("registered_name") or layer.get("module")
        raise ImportRefused(
            f"the layer class '{name}' is the user's own ({registered}), not one of Keras' "
            "layers kcli has"
        )
    if name in NESTED_MODELS:
        raise ImportRefused(
            f"a nested {name} (a model used as a layer) is not imported yet: save the inner "
            "model's layers in the outer model, or write it under model.models by hand"
        )
    canonical = layer_registry.canonical(name)
    if canonical is None or canonical in ("Shared", "Model"):
        hint = did_you_mean(name, layer_registry.names())
        raise ImportRefused(f"the layer type '{name}' is not in kcli's catalog{hint}")
    return layer_registry.specs[canonical]


def import_layer(layer: dict) -> dict[str, Any]:
    """A serialized Keras layer -> a minimal kcli layer mapping (type, name, arguments)."""
    cls = layer_class(layer)
    config = layer.get("config")
    if not isinstance(config, dict):
        raise ImportRefused("the layer has no config mapping")
    known = recipe_keys(cls)
    arguments: dict[str, Any] = {"type": _type_of(cls)}
    for key, value in config.items():
        if key == "dtype":
            _checked(key, value, check_dtype)
        elif key == "layer" and key in known:
            arguments[key] = _wrapped(value)
        elif key in known:
            arguments[key] = _checked(key, value, lambda v, k=key: import_argument(k, v))
        elif key.endswith("_constraint") and value is None:
            continue
        elif key == "backward_layer" and _type_of(cls) == "Bidirectional":
            continue  # checked against `layer` by _check_backward, below
        elif key in KERAS_ONLY and KERAS_ONLY[key](value):
            continue
        else:
            raise ImportRefused(f"argument '{key}' = {_show(value)} is not supported by kcli")
    if _type_of(cls) == "Bidirectional":
        _check_backward(arguments, config.get("backward_layer"))
    arguments = {k: v for k, v in arguments.items() if not _linear_default(cls, k, v)}
    return minimal(cls, arguments)


def _type_of(cls: type) -> str:
    return cls.model_fields["type"].default


def _checked(key: str, value: Any, read: Callable[[Any], Any]) -> Any:
    try:
        return read(value)
    except ImportRefused as refusal:
        raise ImportRefused(f"argument '{key}': {refusal}") from None


def _wrapped(value: Any) -> dict[str, Any]:
    """A wrapper's layer (Bidirectional, TimeDistributed), without its name (kcli names the
    wrapper only); a refusal says it is the inner layer's."""
    try:
        return {k: v for k, v in import_layer(value).items() if k != "name"}
    except ImportRefused as refusal:
        raise ImportRefused(
            f"argument 'layer' {layer_label('', value).strip()}: {refusal}"
        ) from None


def import_argument(key: str, value: Any) -> Any:
    """One argument's value in recipe form, by what the key holds (Keras' naming)."""
    if key.endswith("_initializer"):
        return import_initializer(value)
    if key.endswith("_regularizer"):
        return None if value is None else import_regularizer(value)
    if key in ("activation", "recurrent_activation"):
        return import_activation(value)
    if keras_object(value) is not None:
        raise ImportRefused(f"the Keras object {value['class_name']} is not supported")
    if key == "axis" and isinstance(value, (list, tuple)) and len(value) == 1:
        return tidy(value[0])  # Keras stores Normalization's axis -1 as (-1,)
    return tidy(value)


def _check_backward(arguments: dict[str, Any], backward: Any) -> None:
    """Keras stores Bidirectional's backward copy; kcli makes it from `layer` (go_backwards
    flipped), so only that copy is accepted."""
    if backward is None:
        return
    forward = dict(arguments["layer"])
    theirs = import_layer(backward)
    forward["go_backwards"] = not forward.get("go_backwards", False)
    same = {k: v for k, v in forward.items() if k != "name" and v is not False}
    other = {k: v for k, v in theirs.items() if k != "name" and v is not False}
    if same != other:
        raise ImportRefused(
            "argument 'backward_layer': a backward layer unlike the forward one is not supported"
        )


def _linear_default(cls: type, key: str, value: Any) -> bool:
    """`activation: linear` where kcli's default is none (the same function)."""
    field = cls.model_fields.get(key)
    return value == "linear" and field is not None and field.default is None


def minimal(cls: type, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments validated by `cls`, without those that equal its defaults."""
    full = validated(cls, arguments)
    kept = dict(arguments)
    for key in list(arguments):
        if key in ("type", "name"):
            continue
        trial = {k: v for k, v in kept.items() if k != key}
        try:
            if cls.model_validate(trial) == full:
                kept = trial
        except ValidationError:
            continue
    return kept


def validated(cls: type, arguments: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(arguments)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = format_loc(tuple(first["loc"]))
        raise ImportRefused(f"{where + ': ' if where else ''}{first['msg']}") from None


def _show(value: Any) -> str:
    found = keras_object(value)
    text = found[0] if found is not None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
