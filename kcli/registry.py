"""Spec: the pydantic base of every recipe object; Registry: name -> spec class, by subclassing.

Every named concept of a recipe (layer, activation, initializer, regularizer, optimizer, schedule,
loss, metric, callback) is a `Spec` subclass with a `type: Literal["Name"]` field. Declaring the
class registers it in its family's `Registry`; `Registry.field()` then gives the annotated union
type that recipe fields use, which:
  - accepts the bare name as shorthand (`optimizer: adam` == `{type: Adam}`),
  - matches names loosely (case, underscores: `adam`, `Adam`; `MeanSquaredError`,
    `mean_squared_error`) plus each class's `aliases` (`mse`), and stores the canonical name,
  - reports an unknown name with the close matches.
Nothing here imports torch.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SerializeAsAny,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kcli.errors import did_you_mean


def loose_key(name: str) -> str:
    """The form two names are compared in: case and underscores ignored."""
    return name.replace("_", "").replace("-", "").lower()


class Spec(BaseModel):
    """A frozen, strict recipe object. Unknown keys are errors that name the known ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)
    # Keys a Keras user writes here that a recipe spells elsewhere: key -> where it goes.
    keras_pointers: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        # pydantic's own extra="forbid" error does not know the allowed names; this one does,
        # so the message can say "did you mean". The loader turns ctx['keys'] into one problem
        # per key, located at the key itself.
        if isinstance(data, dict):
            known = recipe_keys(cls)
            unknown = [k for k in data if k not in known]
            if unknown:
                pointers = {k: cls.keras_pointers[k] for k in unknown if k in cls.keras_pointers}
                raise PydanticCustomError(
                    "unknown_keys",
                    "unknown key(s) {keys}",
                    {"keys": unknown, "known": sorted(known), "pointers": pointers},
                )
        return data


def recipe_keys(cls: type[BaseModel]) -> set[str]:
    """The keys a recipe writes for `cls`'s fields: a field's alias where it has one (a Keras
    argument whose name the class needs for a method, as `output_shape` on a layer)."""
    return {field.alias or name for name, field in cls.model_fields.items()}


class Registry:
    """The specs of one family, by canonical name, filled by subclassing `base`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # e.g. "layer type", "activation": used in messages
        self.specs: dict[str, type[Spec]] = {}
        self._lookup: dict[str, str] = {}
        # Names a Keras user writes that a recipe says otherwise: name -> what to write.
        self.pointers: dict[str, str] = {}

    def add(self, cls: type[Spec]) -> None:
        name = spec_type_name(cls)
        if name is None:  # an abstract intermediate class, no Literal type of its own
            return
        if name in self.specs:
            other = self.specs[name]
            raise RuntimeError(
                f"{self.kind} {name!r} is defined twice: by {other.__module__}."
                f"{other.__qualname__} and by {cls.__module__}.{cls.__qualname__}; give one "
                "another name"
            )
        spellings = [loose_key(alias) for alias in (name, *getattr(cls, "aliases", ()))]
        taken = [key for key in spellings if self._lookup.get(key, name) != name]
        if taken:
            raise RuntimeError(
                f"{self.kind} {name!r} ({cls.__module__}.{cls.__qualname__}) takes the "
                f"spelling of {self._lookup[taken[0]]!r}; give it another name or alias"
            )
        self.specs[name] = cls
        for key in spellings:
            self._lookup[key] = name

    def remove(self, name: str) -> None:
        """Forget a spec (a plugin module that is re-imported, or whose import failed)."""
        self.specs.pop(name, None)
        self._lookup = {key: value for key, value in self._lookup.items() if value != name}

    def names(self) -> list[str]:
        return list(self.specs)

    def spellings(self) -> tuple[str, ...]:
        """Every name an editor should offer: canonical names, aliases, and their Keras-style
        lower/snake-case spellings (`Adam`, `adam`; `MeanSquaredError`, `mse`)."""
        found: dict[str, None] = {}
        for name, cls in self.specs.items():
            for spelling in (name, *getattr(cls, "aliases", ())):
                found[spelling] = None
                found[spelling.lower()] = None
        return tuple(found)

    def canonical(self, name: str) -> str | None:
        return self._lookup.get(loose_key(str(name)))

    def get(self, name: str) -> type[Spec]:
        canonical = self.canonical(name)
        if canonical is None:
            raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}")
        return self.specs[canonical]

    def normalize(self, value: Any) -> Any:
        """A name or `{type: name, ...}` -> `{type: canonical, ...}`; unknown names raise."""
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            return value  # let pydantic say what type was expected
        if "type" not in value:
            raise PydanticCustomError(
                "missing_type",
                "needs a 'type' (one of {options})",
                {"options": ", ".join(self.names())},
            )
        canonical = self.canonical(value["type"])
        pointer = self.pointers.get(loose_key(str(value["type"])))
        if canonical is None and pointer is not None:
            raise PydanticCustomError(
                "unknown_name",
                "'{name}': {pointer}",
                {"name": str(value["type"]), "pointer": pointer, "field": "type"},
            )
        if canonical is None:
            raise PydanticCustomError(
                "unknown_name",
                "unknown {kind} '{name}'{hint}",
                {
                    "kind": self.kind,
                    "name": str(value["type"]),
                    "hint": did_you_mean(str(value["type"]), self.names()),
                    "field": "type",
                },
            )
        return {**value, "type": canonical}

    def field(
        self,
        *,
        shorthand: bool = True,
        one_key: bool = False,
        before: Callable[[Any], Any] | None = None,
        also_accepts: Any = None,
    ) -> Any:
        """The annotated type for a recipe field holding one of this family's specs.

        Validation goes to the one class the `type` names (`validate_spec`), so a recipe builds
        the pydantic schemas of the specs it uses, not of the whole catalog; dumping uses each
        value's own class. The JSON Schema shows the union of every spec (`accepted_type`).
        `before` rewrites a value first (a short form); `also_accepts` is the type of what it
        takes, for the JSON Schema.
        """

        def validate(value: Any) -> Spec:
            return self.validate_spec(before(value) if before is not None else value)

        return Annotated[
            SerializeAsAny[RegisteredSpec],
            PlainValidator(validate),
            _UnionJsonSchema(self, shorthand, one_key, also_accepts),
        ]

    def accepted_type(self, shorthand: bool, one_key: bool, also_accepts: Any = None) -> Any:
        """The type the JSON Schema shows: the specs' union (discriminated by `type`).

        `shorthand`: the bare name is accepted (`optimizer: adam`). `one_key`: also the one-key
        form the loader rewrites (`- Dense: {units: 8}`), so editors do not flag it.
        """
        classes = tuple(self.specs.values())
        union = classes[0] if len(classes) == 1 else Union[classes]  # noqa: UP007
        accepted: Any = Annotated[union, Field(discriminator="type")] if len(classes) > 1 else union
        if shorthand:
            accepted = Union[Literal[self.spellings()], accepted]  # noqa: UP007
        if one_key:
            names = tuple(self.specs)
            one_key_form = Annotated[dict[Literal[names], Any], Field(min_length=1, max_length=1)]
            accepted = Union[accepted, one_key_form]  # noqa: UP007
        if also_accepts is not None:
            accepted = Union[accepted, also_accepts]  # noqa: UP007
        return accepted

    def validate_spec(self, value: Any) -> Spec:
        """A recipe value -> the spec of its type, validated by that class alone."""
        if isinstance(value, tuple(self.specs.values())):
            return value
        value = self.normalize(value)
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "model_type",
                "expected a name or a mapping with a 'type' (got {got})",
                {"got": type(value).__name__},
            )
        return self.specs[value["type"]].model_validate(value)


class _UnionJsonSchema:
    """A registry field's JSON Schema, made only when a schema is asked for (`kcli schema`)."""

    def __init__(self, registry: Registry, shorthand: bool, one_key: bool, also: Any) -> None:
        self.registry, self.shorthand, self.one_key, self.also = registry, shorthand, one_key, also

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        accepted = self.registry.accepted_type(self.shorthand, self.one_key, self.also)
        return handler(TypeAdapter(accepted).core_schema)


def spec_type_name(cls: type[BaseModel]) -> str | None:
    """The Literal value of a spec class's `type` field, or None for abstract bases."""
    field = cls.model_fields.get("type")
    if field is None:
        return None
    if typing.get_origin(field.annotation) is Literal:
        (name,) = typing.get_args(field.annotation)
        return name
    return None


class RegisteredSpec(Spec):
    """Base of a family's specs: subclasses with a `type: Literal[...]` register themselves."""

    registry: ClassVar[Registry]
    aliases: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.registry.add(cls)
