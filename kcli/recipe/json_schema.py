"""`kcli schema`: the recipe's JSON Schema, accepting exactly the spellings kcli accepts.

pydantic writes each spec's `type` as one exact string and the bare-name shorthand as a list of
a few spellings, but kcli matches names loosely (any case, `_` and `-` anywhere: `Conv2d`,
`dense`, `max_pooling_2d`) and takes each spec's aliases (`MaxPool2D`, `mse`). An editor using
the schema would flag recipes `kcli validate` passes. So every name keeps its exact spelling
(what completion offers) and gains a pattern that matches its loose forms, and the OpenAPI
`discriminator` (exact strings only, and not JSON Schema) is left out: `oneOf` decides.

An unknown name must read as one message that lists the names, in the YAML language server
(yaml-language-server 1.25, checked by tests/recipe/test_language_server.py) too. That server
shows a keyword's `errorMessage` only for a failure of that keyword itself, never for a failed
`anyOf`, and of the `oneOf` alternatives that fit a mapping equally well it merges their
`const` failures into `Value must be "Dense" | "LSTM"`: the types that happen to take the keys
written, not the list. So each spec's `type` takes its own spellings or any *unknown* name, and
beside that `anyOf`, a pattern of every name of the family (`$defs/KnownLayerType`, ...) that
carries the message refuses the unknown ones: what is accepted is unchanged, and an unknown
name fails every alternative alike, once, with that message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kcli.registry import Registry, loose_key


def loose_pattern(names: Iterable[str]) -> str:
    """A regex matching what `Registry.canonical` matches for `names`: any case, `_-` anywhere."""
    alternatives = []
    for name in dict.fromkeys(loose_key(n) for n in names):
        chars = [f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name]
        alternatives.append("[_-]*".join(chars))
    return "^[_-]*(?:" + "|".join(alternatives) + ")[_-]*$"


def _registries() -> list[Registry]:
    from kcli.recipe.catalog import KINDS, registry_of

    return [registry_of(kind) for kind in KINDS if kind not in ("sources", "regularizers")]


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema of recipes, for editors' YAML language servers."""
    from kcli.recipe.schema import Recipe

    document = Recipe.model_json_schema()
    _loosen(document, _registries())
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "kcli recipe"
    return document


def _loosen(node: Any, registries: list[Registry]) -> None:
    spellings = {frozenset(r.spellings()): r for r in registries}
    canonical_sets = {frozenset(r.names()): r for r in registries}
    by_name = {name: r for r in registries for name in r.names()}
    defs = node.setdefault("$defs", {})
    # A name two families share (the loss and the metric `mean_squared_error`) is told apart by
    # its spec's $defs key: the class name, or module and class name where those collide.
    by_def = {}
    for registry in registries:
        for cls in registry.specs.values():
            for key in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}".replace(".", "__")):
                by_def.setdefault(key, registry)
    owners = {id(spec): by_def[key] for key, spec in defs.items() if key in by_def}
    known_defs: dict[str, dict[str, Any]] = {}  # added to $defs once the walk is done

    def names_of(registry: Registry, name: str) -> list[str]:
        return [name, *getattr(registry.specs[name], "aliases", ())]

    def message(registry: Registry) -> str:
        return f"unknown {registry.kind}; one of: {', '.join(registry.names())}"

    def known(registry: Registry) -> dict[str, str]:
        """A $ref to the family's every name and alias, loosely; failing, it lists the names."""
        key = "Known" + "".join(word.capitalize() for word in registry.kind.split())
        if key not in known_defs:
            assert key not in defs, key
            every = [n for name in registry.names() for n in names_of(registry, name)]
            known_defs[key] = {
                "type": "string",
                "pattern": loose_pattern(every),
                # Shown by the YAML language server (and other editors built on
                # vscode-json-languageservice) instead of "does not match the pattern".
                "errorMessage": message(registry),
                "title": f"a {registry.kind}",
            }
        return {"$ref": f"#/$defs/{key}"}

    def visit(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                visit(item)
            return
        if not isinstance(value, dict):
            return
        children = list(value.values())  # before the rewrites below: those need no visit
        value.pop("discriminator", None)
        kind = value.get("properties", {}).get("type")
        if isinstance(kind, dict) and kind.get("const") in by_name:
            name = kind["const"]
            registry = owners.get(id(value))
            if registry is None or name not in registry.specs:
                registry = by_name[name]
            value["properties"]["type"] = {
                # This spec's name, exact (what completion offers) or loose, or a name of no
                # spec at all: that one the `allOf` refuses, with the list, in every
                # alternative alike (see the module's docstring).
                "anyOf": [
                    {"const": name},
                    {"type": "string", "pattern": loose_pattern(names_of(registry, name))},
                    {"type": "string", "not": known(registry)},
                ],
                "allOf": [known(registry)],
                # The same list for readers of this node; the server shows the $ref'd one.
                "errorMessage": message(registry),
                "default": name,
                "title": "Type",
            }
        enum = value.get("enum")
        registry = None
        if isinstance(enum, list) and all(isinstance(e, str) for e in enum):
            registry = spellings.get(frozenset(enum)) or canonical_sets.get(frozenset(enum))
        if registry is not None:
            listed = {"enum": value.pop("enum"), "type": value.pop("type", "string")}
            value["anyOf"] = [listed, known(registry)]
        for child in children:
            visit(child)

    visit(node)
    defs.update(known_defs)
