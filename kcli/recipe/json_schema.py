"""`kcli schema`: the recipe's JSON Schema, accepting exactly the spellings kcli accepts.

pydantic writes each spec's `type` as one exact string and the bare-name shorthand as a list of
a few spellings, but kcli matches names loosely (any case, `_` and `-` anywhere: `Conv2d`,
`dense`, `max_pooling_2d`) and takes each spec's aliases (`MaxPool2D`, `mse`). An editor using
the schema would flag recipes `kcli validate` passes. So every name keeps its exact spelling
(what completion offers) and gains a pattern that matches its loose forms, and the OpenAPI
`discriminator` (exact strings only, and not JSON Schema) is left out: `oneOf` decides.
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

    def names_of(registry: Registry, name: str) -> list[str]:
        return [name, *getattr(registry.specs[name], "aliases", ())]

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
            registry = by_name[name]
            pattern = loose_pattern(names_of(registry, name))
            value["properties"]["type"] = {
                "anyOf": [{"const": name}, {"type": "string", "pattern": pattern}],
                "default": name,
                "title": "Type",
                # Shown by editors built on vscode-json-languageservice (the YAML language
                # server among them) instead of "does not match": the whole list, whichever
                # alternative of the oneOf the editor reports on.
                "errorMessage": f"unknown {registry.kind}; one of: {', '.join(registry.names())}",
            }
        enum = value.get("enum")
        registry = None
        if isinstance(enum, list) and all(isinstance(e, str) for e in enum):
            registry = spellings.get(frozenset(enum)) or canonical_sets.get(frozenset(enum))
        if registry is not None:
            every = [n for name in registry.names() for n in names_of(registry, name)]
            listed = {"enum": value.pop("enum"), "type": value.pop("type", "string")}
            value["anyOf"] = [listed, {"type": "string", "pattern": loose_pattern(every)}]
        for child in children:
            visit(child)

    visit(node)
