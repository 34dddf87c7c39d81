"""`kcli catalog` and `kcli layers`: every catalog read off the specs themselves (no second list).

Kinds: layers, activations, initializers, regularizers, optimizers, schedules, losses, metrics,
callbacks, preprocess steps and data sources (scikit-learn's and the synthetic generators, with
their parameters). `kcli layers` is the layers' view of the same tables.
"""

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
from kcli.registry import Registry

REQUIRED = "(required)"  # the `default` of an argument a recipe must give (kept in --json)
KINDS = (
    "layers",
    "activations",
    "initializers",
    "regularizers",
    "optimizers",
    "schedules",
    "losses",
    "metrics",
    "callbacks",
    "preprocess",
    "sources",
)
SINGULAR = {
    "layers": "layer",
    "activations": "activation",
    "initializers": "initializer",
    "regularizers": "regularizer",
    "optimizers": "optimizer",
    "schedules": "learning rate schedule",
    "losses": "loss",
    "metrics": "metric",
    "callbacks": "callback",
    "preprocess": "preprocess step",
    "sources": "data source",
}


def entries(kind: str) -> dict[str, type | None]:
    """Name -> spec class (None: a name without arguments) of one catalog."""
    kind = canonical_kind(kind)
    if kind == "sources":
        from kcli.data.spec import SKLEARN_DATASETS
        from kcli.data.synthetic import SYNTHETIC_PARAMS

        found: dict[str, type | None] = {f"sklearn:{n}": None for n in SKLEARN_DATASETS}
        return found | {f"synthetic:{n}": cls for n, cls in SYNTHETIC_PARAMS.items()}
    if kind == "regularizers":
        from kcli.model.regularizers import RegularizerSpec

        # One spec serves both names: `l1`/`l2` alone, or a mapping with either factor.
        return {"l1": RegularizerSpec, "l2": RegularizerSpec}
    return dict(registry_of(kind).specs)


def registry_of(kind: str) -> Registry:
    import importlib

    module, name = {
        "layers": ("kcli.model.layers", "layer_registry"),
        "activations": ("kcli.model.activations", "activation_registry"),
        "initializers": ("kcli.model.initializers", "initializer_registry"),
        "optimizers": ("kcli.compile.optimizers", "optimizer_registry"),
        "schedules": ("kcli.compile.schedules", "schedule_registry"),
        "losses": ("kcli.compile.losses", "loss_registry"),
        "metrics": ("kcli.compile.metrics", "metric_registry"),
        "callbacks": ("kcli.fit.callbacks", "callback_registry"),
        "preprocess": ("kcli.data.steps", "preprocess_registry"),
    }[kind]
    return getattr(importlib.import_module(module), name)


def canonical_kind(kind: str) -> str:
    """`optimizer`, `Optimizers` -> `optimizers`; KcliError with the kinds for anything else."""
    text = kind.lower().strip()
    for known in KINDS:
        if text in (known, known.removesuffix("s"), known.removesuffix("es")):
            return known
    raise KcliError(
        Problem(f"unknown catalog '{kind}'{did_you_mean(kind, KINDS)}; kinds: {', '.join(KINDS)}")
    )


def _lookup(kind: str, name: str) -> str | None:
    """The catalog's own spelling of `name` (loose, as recipes match names), or None."""
    names = entries(kind)
    if kind in ("sources", "regularizers"):
        lowered = {n.lower(): n for n in names}
        return lowered.get(name.lower())
    return registry_of(kind).canonical(name)


def find_entry(name: str) -> list[tuple[str, str]]:
    """(kind, canonical name) of every catalog that has `name`."""
    return [(kind, found) for kind in KINDS if (found := _lookup(kind, name)) is not None]


def _summary_line(cls: type | None, name: str) -> str:
    if cls is None:
        return f"scikit-learn's bundled {name.partition(':')[2]} data set (no parameters)"
    doc = inspect.cleandoc(cls.__doc__ or "")
    return doc.splitlines()[0] if doc else ""


def _family(cls: type | None) -> str:
    if cls is None:
        return "sklearn"
    if not cls.__module__.startswith("kcli."):
        return f"plugin {cls.__module__}"  # a recipe's own module (kcli.recipe.plugins)
    return cls.__module__.rsplit(".", 1)[-1].replace("_", " ")


def list_entries(kind: str) -> list[dict[str, str]]:
    return [
        {"type": name, "family": _family(cls), "summary": _summary_line(cls, name)}
        for name, cls in entries(kind).items()
    ]


def list_layers() -> list[dict[str, str]]:
    return list_entries("layers")


def common_arguments(kind: str) -> set[str]:
    """Arguments every entry of a catalog takes (listed once, not for each entry)."""
    classes = [cls for cls in entries(kind).values() if cls is not None]
    if kind == "sources" or len(classes) < 2:
        return {"type"}
    shared = set(classes[0].model_fields)
    for cls in classes[1:]:
        shared &= set(cls.model_fields)
    return shared | {"type"}


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


def describe_entry(kind: str, name: str) -> dict[str, Any]:
    kind = canonical_kind(kind)
    canonical = _lookup(kind, name)
    if canonical is None:
        elsewhere = [f"kcli catalog {k} {n}" for k, n in find_entry(name)]
        hint = f" (it is in another catalog: {', '.join(elsewhere)})" if elsewhere else ""
        singular = "layer type" if kind == "layers" else SINGULAR[kind]
        raise KcliError(
            Problem(f"unknown {singular} '{name}'{hint or did_you_mean(name, list(entries(kind)))}")
        )
    cls = entries(kind)[canonical]
    common = common_arguments(kind)
    arguments = []
    for field_name, field in (cls.model_fields if cls is not None else {}).items():
        if field_name in common:
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
                "name": field.alias or field_name,  # the key a recipe writes
                "type": _registry_kind(field.metadata) or _type_text(field.annotation),
                "default": default,
                "constraints": _constraints(field.metadata),
                "description": field.description or "",
            }
        )
    doc = inspect.cleandoc(cls.__doc__ or "") if cls is not None else _summary_line(None, name)
    return {
        "type": canonical,
        "kind": kind,
        "family": _family(cls),
        "doc": doc,
        "arguments": arguments,
        "common": sorted(common - {"type"}),
    }


def describe_layer(name: str) -> dict[str, Any]:
    return describe_entry("layers", name)


def _console(buffer: io.StringIO):
    from rich.console import Console

    return Console(file=buffer, width=110, color_system=None, force_terminal=False)


def render_entries(kind: str, catalog: list[dict[str, str]]) -> str:
    from rich.table import Table

    title = {"layers": "kcli layers (Keras names)"}.get(kind, f"kcli catalog {kind}")
    table = Table(title=title, title_justify="left")
    for column in ("type", "family", "summary"):
        table.add_column(column)
    for row in catalog:
        table.add_row(row["type"], row["family"], row["summary"])
    buffer = io.StringIO()
    console = _console(buffer)
    console.print(table)
    common = ", ".join(sorted(common_arguments(kind) - {"type"}))
    what = "layer" if kind == "layers" else "entry"
    also = f"Every {what} also takes: {common}. " if common else ""
    command = "kcli layers NAME" if kind == "layers" else f"kcli catalog {kind} NAME"
    console.print(f"{also}`{command}` shows one.", highlight=False)
    return buffer.getvalue()


def render_layers(catalog: list[dict[str, str]]) -> str:
    return render_entries("layers", catalog)


def render_kinds() -> str:
    """`kcli catalog`: the kinds and how many entries each has."""
    lines = ["kcli catalog KIND [NAME]: the names a recipe can use, with their arguments."]
    lines += [f"  {kind:<13} {len(entries(kind)):>3}" for kind in KINDS]
    return "\n".join(lines) + "\n"


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
    kind = layer.get("kind", "layers")
    if kind == "layers":
        heading = f"{layer['type']} ({layer['family']} layer)"
    elif kind == "sources":
        heading = f"{layer['type']} ({layer['family']} data source)"
    else:
        heading = f"{layer['type']} ({SINGULAR[kind]})"
    console.print(heading, highlight=False)
    if layer["doc"]:
        console.print(layer["doc"], highlight=False)
    console.print(table if layer["arguments"] else "(no arguments of its own)", highlight=False)
    if layer["common"]:
        console.print(f"Also: {', '.join(layer['common'])}.", highlight=False)
    return buffer.getvalue()
