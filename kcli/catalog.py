"""`kcli layers`: the layer catalog read off the layer specs themselves (no second list)."""

from __future__ import annotations

import io
import typing
from typing import Any

from pydantic_core import PydanticUndefined

from kcli.errors import KcliError, Problem, did_you_mean
from kcli.layers import layer_registry
from kcli.layers.base import LayerSpec

# Arguments every layer takes; listed once in the catalog's footer, not for every layer.
_COMMON = set(LayerSpec.model_fields)


def _summary_line(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _family(cls: type) -> str:
    return cls.__module__.rsplit(".", 1)[-1].replace("_", " ")


def list_layers() -> list[dict[str, str]]:
    return [
        {"type": name, "family": _family(cls), "summary": _summary_line(cls)}
        for name, cls in layer_registry.specs.items()
    ]


def _type_text(annotation: Any) -> str:
    text = (
        str(annotation)
        if typing.get_origin(annotation)
        else getattr(annotation, "__name__", str(annotation))
    )
    text = text.replace("typing.", "").replace("NoneType", "null")
    for long, short in (("kcli.activations.", ""), ("kcli.initializers.", "")):
        text = text.replace(long, short)
    if "Annotated[" in text or "Union[" in text:
        if "Activation" in text:
            return "activation"
        if "Initializer" in text or "GlorotUniform" in text:
            return "initializer"
        if "Regularizer" in text:
            return "regularizer | null"
    return text


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
            default: Any = "(required)"
        elif field.default_factory is not None:
            default = field.default_factory()
        else:
            default = field.default
        if hasattr(default, "model_dump"):
            default = default.model_dump(exclude_none=True).get("type", default)
        bounds = [str(m) for m in field.metadata]
        arguments.append(
            {
                "name": field_name,
                "type": _type_text(field.annotation),
                "default": default,
                "constraints": ", ".join(bounds),
                "description": field.description or "",
            }
        )
    doc = (cls.__doc__ or "").strip()
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


def render_layer(layer: dict[str, Any]) -> str:
    from rich.table import Table

    table = Table(title=f"{layer['type']} ({layer['family']})", title_justify="left")
    for column in ("argument", "type", "default", "constraints", "description"):
        table.add_column(column)
    for arg in layer["arguments"]:
        table.add_row(
            arg["name"], arg["type"], repr(arg["default"]), arg["constraints"], arg["description"]
        )
    buffer = io.StringIO()
    console = _console(buffer)
    if layer["doc"]:
        console.print(layer["doc"], highlight=False)
    console.print(table)
    console.print(f"Also: {', '.join(layer['common'])}.", highlight=False)
    return buffer.getvalue()
