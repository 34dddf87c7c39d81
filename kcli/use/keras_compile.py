"""A Keras 3 `compile_config` <-> the recipe's `compile:` section.

Import: the optimizer (and a learning-rate schedule), the loss(es), loss_weights, metrics and
weighted_metrics, by Keras' names, which are kcli's (RECIPE.md). Left out, as not part of a
recipe: the optimizer's and objects' `name`, run_eagerly / steps_per_execution / jit_compile
(how Keras runs its loop), a loss's `reduction` when it is Keras' default, and the optimizer's
EMA and loss-scaling arguments when off. Anything else kcli lacks is an ImportRefused naming it.
Export: the recipe's compile section in the form `keras.Model.compile_from_config` reads.
Torch-free.
"""

from __future__ import annotations

from typing import Any

from kcli.use.keras_layers import minimal
from kcli.use.keras_values import ImportRefused, is_custom, keras_object, serialized, tidy

# Optimizer arguments kcli has no field for, at the value that means what kcli computes.
_OPTIMIZER_OFF = {
    "use_ema": False,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "is_legacy_optimizer": False,
}
_OBJECT_OFF = {"name": None, "dtype": None, "reduction": "sum_over_batch_size"}


def import_compile(compile_config: dict) -> dict[str, Any]:
    """The recipe's compile mapping from Keras' compile_config; ImportRefused says what not."""
    section: dict[str, Any] = {}
    optimizer = compile_config.get("optimizer")
    if optimizer is not None:
        section["optimizer"] = _located("optimizer", lambda: import_optimizer(optimizer))
    loss = compile_config.get("loss")
    if loss is not None:
        section["loss"] = _located("loss", lambda: _per_output(loss, "loss"))
    if compile_config.get("loss_weights") is not None:
        section["loss_weights"] = tidy(compile_config["loss_weights"])
    for key in ("metrics", "weighted_metrics"):
        value = compile_config.get(key)
        if value:
            section[key] = _located(key, lambda v=value: _per_output(v, "metric"))
    return section


def _located(key: str, read: Any) -> Any:
    try:
        return read()
    except ImportRefused as refusal:
        raise ImportRefused(f"compile_config.{key}: {refusal}") from None


def import_optimizer(value: Any) -> Any:
    from kcli.compile.optimizers import optimizer_registry

    if isinstance(value, str):
        name, config = value, {}
    elif (found := keras_object(value)) is not None and not is_custom(value):
        name, config = found
    else:
        raise ImportRefused(f"cannot read {value!r} as one of Keras' optimizers")
    canonical = optimizer_registry.canonical(name)
    if canonical is None:
        raise ImportRefused(f"the optimizer '{name}' is not one of kcli's")
    fields = optimizer_registry.specs[canonical].model_fields
    out: dict[str, Any] = {"type": canonical}
    use_ema = bool((config or {}).get("use_ema"))
    for key, item in (config or {}).items():
        if key in fields:
            if item is not None:
                out[key] = _schedule(item) if key == "learning_rate" else tidy(item)
        elif not _optimizer_extra_ok(key, item, use_ema):
            raise ImportRefused(f"{canonical}'s argument '{key}' = {item!r} is not supported")
    cls = optimizer_registry.specs[canonical]
    try:
        out = minimal(cls, out)
    except ImportRefused as refusal:
        raise ImportRefused(f"{canonical}: {refusal}") from None
    return canonical if out == {"type": canonical} else out


def _optimizer_extra_ok(key: str, item: Any, use_ema: bool) -> bool:
    if key == "name":
        return True  # a label only
    if key in ("ema_momentum", "ema_overwrite_frequency"):
        return not use_ema  # only read with use_ema (itself refused when on)
    return key in _OPTIMIZER_OFF and _OPTIMIZER_OFF[key] == item


def _schedule(value: Any) -> Any:
    from kcli.compile.schedules import schedule_registry

    found = keras_object(value)
    if found is None:
        return tidy(value)
    name, config = found
    canonical = schedule_registry.canonical(name)
    if canonical is None or is_custom(value):
        raise ImportRefused(f"the learning-rate schedule '{name}' is not one of kcli's")
    fields = schedule_registry.specs[canonical].model_fields
    out: dict[str, Any] = {"type": canonical}
    for key, item in (config or {}).items():
        if key in fields:
            if item is not None:
                out[key] = tidy(item)
        elif key != "name":
            raise ImportRefused(f"the schedule {canonical}'s argument '{key}' is not supported")
    return minimal(schedule_registry.specs[canonical], out)


def _per_output(value: Any, kind: str) -> Any:
    """A loss or metric value as Keras stores it: one, a list, or a mapping per output."""
    if isinstance(value, dict) and keras_object(value) is None:
        return {str(k): _per_output(v, kind) for k, v in value.items()}
    if isinstance(value, list):
        return [_per_output(v, kind) for v in value]
    return _one(value, kind)


def _one(value: Any, kind: str) -> Any:
    from kcli.compile.losses import loss_registry
    from kcli.compile.metrics import metric_registry

    registry = loss_registry if kind == "loss" else metric_registry
    if value is None:
        return None
    if isinstance(value, str):
        name, config = value, {}
    elif (found := keras_object(value)) is not None and not is_custom(value):
        name, config = found
        if name == "function" and isinstance(config, str):
            name, config = config, {}  # a loss function, serialized by its name
    else:
        raise ImportRefused(f"cannot read {value!r} as one of Keras' {kind}es")
    canonical = registry.canonical(name)
    if canonical is None:
        raise ImportRefused(f"the {kind} '{name}' is not one of kcli's")
    fields = registry.specs[canonical].model_fields
    out: dict[str, Any] = {"type": canonical}
    for key, item in (config or {}).items():
        if key in fields and key != "name":
            if item is not None:
                out[key] = tidy(item)
        elif key in _OBJECT_OFF and _OBJECT_OFF[key] in (None, item):
            continue
        else:
            raise ImportRefused(
                f"the {kind} {canonical}'s argument '{key}' = {item!r} is not supported"
            )
    return _shortest(registry, out)


def _shortest(registry: Any, value: dict[str, Any]) -> Any:
    """`{type: mse}` with only defaults -> `mse`, as a user writes it."""
    cls = registry.specs[value["type"]]
    return value["type"] if cls.model_validate(value) == cls() else value


# ---- kcli -> Keras


def export_compile(compile_spec: Any) -> dict[str, Any]:
    """The recipe's compile section as Keras' compile_config."""
    return {
        "optimizer": _export_optimizer(compile_spec.optimizer),
        "loss": _export_per_output(compile_spec.loss, "keras.losses"),
        "loss_weights": compile_spec.loss_weights,
        "metrics": _export_per_output(compile_spec.metrics, "keras.metrics") or None,
        "weighted_metrics": _export_per_output(compile_spec.weighted_metrics, "keras.metrics")
        or None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _export_optimizer(spec: Any) -> dict[str, Any]:
    config = spec.model_dump(mode="json", exclude={"type"})
    rate = spec.learning_rate
    if not isinstance(rate, float | int):
        config["learning_rate"] = serialized(
            "keras.optimizers.schedules",
            rate.type,
            rate.model_dump(mode="json", exclude={"type"}),
        )
    return serialized("keras.optimizers", spec.type, config)


def _export_per_output(value: Any, module: str) -> Any:
    if isinstance(value, dict):
        return {k: _export_per_output(v, module) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_export_per_output(v, module) for v in value]
    if value is None:
        return None
    arguments = value.model_dump(mode="json", exclude={"type"}, exclude_none=True)
    if value == type(value)():
        return value.type  # Keras' own name for it: `mse`, `accuracy`
    return serialized(module, _camel(value.type), arguments)


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))
