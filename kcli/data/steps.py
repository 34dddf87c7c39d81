"""The preprocess steps of a recipe's `data.preprocess` list, as specs (no numpy, no torch).

Each step is a registered spec (`standardize`, `minmax`, `scale`, `reshape`, `one_hot`, `cast`);
kcli.data.preprocess fits and applies them. Recipe forms: `name`, `{name: value}` (the step's
primary argument), `{name: {args}}`; `StepRef` is the field type that accepts all three.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from kcli.registry import RegisteredSpec, Registry

preprocess_registry = Registry("preprocess step")


class PreprocessStep(RegisteredSpec):
    """One preprocess step. Recipe forms: `name`, `{name: value}`, `{name: {args}}`.

    `primary` names the argument the short form `{name: value}` sets (`{scale: 0.5}`).
    `target` steps transform y; the others transform x.
    """

    registry: ClassVar[Registry] = preprocess_registry
    primary: ClassVar[str | None] = None
    target: ClassVar[bool] = False


class InputStep(PreprocessStep):
    """A step on x; with a multi-input x, `input` picks the one input it applies to."""

    input: str | None = Field(None, description="Multi-input x: the input to apply to (all).")


class _AxisStep(InputStep):
    """A step with statistics per `axis` (kept, as in Keras' Normalization layer)."""

    axis: int | list[int] | None = -1

    @field_validator("axis")
    @classmethod
    def _not_batch(cls, value: int | list[int] | None) -> int | list[int] | None:
        if value == 0 or (isinstance(value, list) and 0 in value):
            raise ValueError("axis 0 is the batch axis; statistics are always taken over it")
        return value


class Standardize(_AxisStep):
    """(x - mean) / std, mean and std (population) of the train split.

    `axis` is kept, as in Keras' Normalization layer: statistics are taken over every other
    axis (the batch axis is axis 0, so -1, the default, means one mean per last-axis feature;
    null means one mean and std for everything). A constant feature (std 0) is only centered:
    dividing by Keras' 1e-7 floor would blow any unseen value up by 1e7.
    """

    type: Literal["standardize"] = "standardize"
    aliases: ClassVar[tuple[str, ...]] = ("normalize", "normalization")


class MinMax(_AxisStep):
    """Rescale each feature so the train split spans `feature_range` (default [0, 1])."""

    type: Literal["minmax"] = "minmax"
    aliases: ClassVar[tuple[str, ...]] = ("min_max",)
    feature_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("feature_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {list(value)}")
        return value


class Scale(InputStep):
    """x * scale + offset, as Keras' Rescaling layer (`{scale: 0.00392}` maps 0..255 to 0..1)."""

    type: Literal["scale"] = "scale"
    aliases: ClassVar[tuple[str, ...]] = ("rescale", "rescaling")
    primary: ClassVar[str | None] = "scale"
    scale: float
    offset: float = 0.0


class Reshape(InputStep):
    """Reshape each sample (batch axis excluded); one dimension may be -1 (inferred)."""

    type: Literal["reshape"] = "reshape"
    primary: ClassVar[str | None] = "shape"
    shape: list[int] = Field(min_length=1)

    @field_validator("shape")
    @classmethod
    def _dims(cls, value: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in value) or value.count(-1) > 1:
            raise ValueError(f"dimensions must be > 0, with at most one -1; got {value}")
        return value


class OneHot(PreprocessStep):
    """Class indices (y) -> one-hot float rows; `num_classes` defaults to the data's count."""

    type: Literal["one_hot"] = "one_hot"
    aliases: ClassVar[tuple[str, ...]] = ("onehot", "to_categorical")
    primary: ClassVar[str | None] = "num_classes"
    target: ClassVar[bool] = True
    num_classes: int | None = Field(None, gt=1)


class Cast(InputStep):
    """Change x's dtype (x is float32 otherwise)."""

    type: Literal["cast"] = "cast"
    primary: ClassVar[str | None] = "dtype"
    dtype: Literal["float16", "float32", "float64", "int32", "int64"] = "float32"


def _step_short_form(value: Any) -> Any:
    """`{scale: 0.5, offset: 0}` -> `{type: scale, scale: 0.5, offset: 0}`; `{standardize: {..}}`.

    A mapping without `type` names its step by the one key that is a step name; the value of
    that key is the step's arguments, or its `primary` argument; other keys are arguments too.
    """
    if not isinstance(value, dict) or "type" in value or not value:
        return value
    named = [k for k in value if preprocess_registry.canonical(str(k)) is not None]
    if len(named) != 1:
        if len(value) == 1:  # one unknown name: the registry says so, with a suggestion
            return preprocess_registry.normalize({"type": next(iter(value))})
        return value  # the registry reports the missing type
    name = named[0]
    canonical = preprocess_registry.canonical(str(name))
    body = value[name]
    rest = {k: v for k, v in value.items() if k != name}
    if body is None or isinstance(body, dict):
        return {"type": canonical, **(body or {}), **rest}
    primary = preprocess_registry.specs[canonical].primary
    if primary is None:
        message = f"'{canonical}' takes no value (write '{canonical}' or {canonical}: {{...}})"
        raise PydanticCustomError("no_short_form", message)
    return {"type": canonical, **rest, primary: body}


# For editors, besides a step name or a full step: a short mapping (`{reshape: [8, 8, 1]}`,
# `{scale: 0.5, offset: 0}`) that _step_short_form rewrites.
StepRef = preprocess_registry.field(before=_step_short_form, also_accepts=dict[str, Any])
