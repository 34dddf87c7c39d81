"""Keras 3 config values <-> kcli recipe values: initializers, regularizers, activations, dtypes.

Keras serializes an object argument as `{module, class_name, config, registered_name}`; a recipe
writes `{type: name, ...arguments}` (RECIPE.md). Both directions live here so the mapping is
said once: `import_*` reads a Keras value (raising `ImportRefused` with what is not supported),
`export_*` writes kcli's spec in the form Keras' `deserialize_keras_object` reads back.
Torch-free.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from kcli.errors import KcliError, Problem

KERAS_INPUT_DTYPES = ("float32", "int32", "int64", "uint8", "int8", "int16")


class ImportRefused(Exception):
    """A Keras value kcli has no form for; the caller adds where in the archive it is."""


def refused(source: str, where: str, what: str) -> KcliError:
    """The exit-2 error of `kcli import`: the file, the place in the archive, what is wrong."""
    return KcliError(Problem(f"{where}: {what}", file=source))


def keras_object(value: Any) -> tuple[str, Any] | None:
    """(class_name, config) of a serialized Keras object, or None for a plain value."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        return str(value["class_name"]), value["config"]
    return None


def is_custom(value: dict) -> bool:
    """True for an object of the user's own class (registered, or outside Keras' modules)."""
    module = str(value.get("module") or "keras")
    registered = value.get("registered_name")
    own = registered not in (None, value.get("class_name")) and ">" in str(registered)
    return own or not (module == "keras" or module.startswith("keras."))


def tidy(value: Any) -> Any:
    """Floats Keras stored from float32 (0.009999999776482582) as the float32 they were (0.01);
    tuples as lists; nested containers alike."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        single = np.float32(value)
        return float(str(single)) if float(single) == value else value
    if isinstance(value, (list, tuple)):
        return [tidy(v) for v in value]
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    return value


def snake_name(class_name: str) -> str:
    """`GlorotUniform` -> `glorot_uniform` (Keras' own registered short names)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


# Keras arguments of initializers kcli's specs do not take, with the value that means what
# kcli does (a fan computed over Keras' default axes).
_INITIALIZER_DEFAULTS = {"input_axes": None, "output_axes": None}


def import_initializer(value: Any) -> Any:
    """A Keras initializer (a name or a serialized object) -> a kcli initializer value."""
    from kcli.model.initializers import initializer_registry

    if isinstance(value, str):
        name, config = value, {}
    elif (found := keras_object(value)) is not None:
        if is_custom(value):
            raise ImportRefused(
                f"the initializer '{found[0]}' is the user's own class: not supported"
            )
        name, config = found
    else:
        raise ImportRefused(f"cannot read {value!r} as an initializer")
    canonical = initializer_registry.canonical(name)
    if canonical is None:
        raise ImportRefused(
            f"the initializer '{name}' is not one of kcli's "
            f"({', '.join(initializer_registry.names())})"
        )
    fields = initializer_registry.specs[canonical].model_fields
    out: dict[str, Any] = {"type": canonical}
    for key, item in (config or {}).items():
        if key in fields:
            if item is not None:
                out[key] = tidy(item)
        elif _INITIALIZER_DEFAULTS.get(key, object()) != item:
            raise ImportRefused(
                f"the initializer {name}'s argument '{key}' = {item!r} is not supported"
            )
    return out if len(out) > 1 else canonical


def import_regularizer(value: Any) -> Any:
    """A Keras L1 / L2 / L1L2 regularizer -> `{l1: a, l2: b}`."""
    found = keras_object(value)
    if isinstance(value, str):
        found = (value, {})
    if found is None or (isinstance(value, dict) and is_custom(value)):
        raise ImportRefused(f"cannot read {value!r} as a regularizer")
    name, config = found
    if name.lower() not in ("l1", "l2", "l1l2", "l1_l2"):
        raise ImportRefused(f"the regularizer '{name}' is not supported (kcli has L1, L2 and L1L2)")
    defaults = {"l1": {"l1": 0.01}, "l2": {"l2": 0.01}}.get(name.lower(), {})
    factors = {**defaults, **(config or {})}
    unknown = [key for key in factors if key not in ("l1", "l2")]
    if unknown:
        raise ImportRefused(f"the regularizer {name}'s argument '{unknown[0]}' is not supported")
    return {key: tidy(float(v)) for key, v in factors.items() if v}


def import_activation(value: Any) -> Any:
    """A Keras activation (its name; a custom function is serialized as an object) -> kcli's."""
    from kcli.model.activations import activation_registry

    if value is None:
        return None
    found = keras_object(value)
    if found is not None:
        name = found[1] if isinstance(found[1], str) else found[0]
        raise ImportRefused(f"the activation '{name}' is not one of Keras' built-in functions")
    canonical = activation_registry.canonical(str(value))
    if canonical is None:
        raise ImportRefused(
            f"the activation '{value}' is not one of kcli's "
            f"({', '.join(activation_registry.names())})"
        )
    return canonical


def check_dtype(value: Any, allowed: tuple[str, ...] = ("float32",)) -> None:
    """Accept a float32 dtype policy (or, for an input, an integer dtype); refuse others."""
    name = value
    if (found := keras_object(value)) is not None:
        name = found[1].get("name") if isinstance(found[1], dict) else found[1]
    if name is not None and str(name) not in allowed:
        raise ImportRefused(
            f"the dtype '{name}' is not supported (kcli takes {', '.join(allowed)})"
        )


# ---- kcli -> Keras


def serialized(module: str, class_name: str, config: Any) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


FLOAT32_POLICY = serialized("keras", "DTypePolicy", {"name": "float32"})


def export_initializer(spec: Any) -> dict[str, Any]:
    """A kcli initializer spec as a serialized Keras initializer."""
    # A seed left at None is not written: Keras' Zeros, Ones and Constant take no seed at all.
    config = spec.model_dump(mode="json", exclude={"type"}, exclude_none=True)
    class_name = "".join(part.title() for part in spec.type.split("_"))
    return serialized("keras.initializers", class_name, config)


def export_regularizer(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    return serialized("keras.regularizers", "L1L2", {"l1": spec.l1, "l2": spec.l2})


def export_activation(spec: Any) -> str:
    """A kcli activation as Keras' name for it; one with non-default arguments has none."""
    if spec is None:
        return "linear"
    if spec != type(spec)():
        arguments = spec.model_dump(mode="json", exclude={"type"})
        raise ValueError(
            f"the activation {spec.type} with arguments {arguments} has no Keras name: use an "
            f"activation layer ({'LeakyReLU' if spec.type == 'leaky_relu' else 'e.g. ReLU'})"
        )
    return spec.type
