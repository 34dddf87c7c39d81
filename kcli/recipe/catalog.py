"""`kcli layers`: the layer catalog read off the layer specs themselves (no second list)."""

from __future__ import annotations

import inspect
import io
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from kcli.errors import KcliError, Problem, did_you_mean
from kcli.model.layers import layer_registry
from kcli.model.layers.base import LayerSpec
from kcli.registry import Registry

# Arguments every layer takes; listed once in the catalog's footer, not for every layer.
_COMMON = set(LayerSpec.model_fields)
REQUIRED = "(required)"  # the `default` of an argument a recipe must give (kept in --json)


def _summary_line(cls: type) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return doc.splitlines()[0] if doc else ""


def _family(cls: type) -> str:
    return cls.__module__.rsplit(".", 1)[-1].replace("_", " ")


def list_layers() -> list[dict[str, str]]:
    return [
        {"type": name, "family": _family(cls), "summary": _summary_line(cls)}
        for name, cls in layer_registry.specs.items()
    ]


def _type_text(annotation: Any) -> str:
    """A field's type as a recipe author reads it: `int | list[int]`, `activation | null`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _registry_kind(list(args[1:])) or _type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(_type_text(arg) for arg in args))
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(_type_text(a) for a in args if a is not Ellipsis)}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__.removesuffix("Spec").lower()
    return getattr(annotation, "__name__", str(annotation))


def _registry_kind(metadata: list) -> str | None:
    """`initializer` for a field validated by a registry (pydantic moves that to metadata)."""
    for meta in metadata:
        owner = getattr(meta, "registry", None)  # what Registry.field() annotates its type with
        if isinstance(owner, Registry):
            return owner.kind
    return None


_BOUND_SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "length >="}


def _constraints(metadata: list) -> str:
    """`> 0, < 1` from a field's annotated_types bounds; other metadata is not for users."""
    found = []
    for item in metadata:
        for attribute, symbol in _BOUND_SYMBOLS.items():
            value = getattr(item, attribute, None)
            if value is not None and type(item).__module__.startswith("annotated_types"):
                found.append(f"{symbol} {value}")
    return ", ".join(found)


def describe_layer(name: str) -> dict[str, Any]:
    canonical = layer_registry.canonical(name)
    if canonical is None:
        raise KcliError(
            Problem(f"unknown layer type '{name}'{did_you_mean(name, layer_registry.names())}")
        )
    cls = layer_registry.specs[canonical]
    arguments = []
    for field_name, field in cls.model_fields.items():
        if field_name == "type" or field_name in _COMMON:
            continue
        if field.default is PydanticUndefined and field.default_factory is None:
            default: Any = REQUIRED
        elif field.default_factory is not None:
            default = field.default_factory()
        else:
            default = field.default
        if hasattr(default, "model_dump"):
            default = default.model_dump(exclude_none=True).get("type", default)
        arguments.append(
            {
                "name": field_name,
                "type": _registry_kind(field.metadata) or _type_text(field.annotation),
                "default": default,
                "constraints": _constraints(field.metadata),
                "description": field.description or "",
            }
        )
    doc = inspect.cleandoc(cls.__doc__ or "")
    return {
        "type": canonical,
        "family": _family(cls),
        "doc": doc,
        "arguments": arguments,
        "common": sorted(_COMMON - {"type"}),
    }


def _console(buffer: io.StringIO):
    from rich.console import Console

    return Console(file=buffer, width=110, color_system=None, force_terminal=False)


def render_layers(catalog: list[dict[str, str]]) -> str:
    from rich.table import Table

    table = Table(title="kcli layers (Keras names)", title_justify="left")
    for column in ("type", "family", "summary"):
        table.add_column(column)
    for row in catalog:
        table.add_row(row["type"], row["family"], row["summary"])
    buffer = io.StringIO()
    console = _console(buffer)
    console.print(table)
    common = ", ".join(sorted(_COMMON - {"type"}))
    console.print(f"Every layer also takes: {common}. `kcli layers NAME` shows one layer.")
    return buffer.getvalue()


def yaml_spelling(value: Any) -> str:
    """A default as a recipe would write it: `null`, `true`, `glorot_uniform`, `[1, 1]`."""
    if value == REQUIRED:
        return "required"
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def render_layer(layer: dict[str, Any]) -> str:
    """The heading, the layer's docstring, then its arguments as a table."""
    from rich.table import Table

    table = Table()
    for column in ("argument", "type", "default", "constraints", "description"):
        table.add_column(column)
    for arg in layer["arguments"]:
        table.add_row(
            arg["name"],
            arg["type"],
            yaml_spelling(arg["default"]),
            arg["constraints"],
            arg["description"],
        )
    buffer = io.StringIO()
    console = _console(buffer)
    console.print(f"{layer['type']} ({layer['family']} layer)", highlight=False)
    if layer["doc"]:
        console.print(layer["doc"], highlight=False)
    console.print(table)
    console.print(f"Also: {', '.join(layer['common'])}.", highlight=False)
    return buffer.getvalue()
