"""Recipe file (+ overrides) -> validated `Recipe`, with every problem located in the file.

    loaded = load_recipe("recipe.yaml", ["fit.epochs=5"])
    loaded.recipe        # the validated Recipe
    loaded.resolved_yaml()  # defaults filled in, overrides applied: what a run records

All problems of a recipe are reported together as one KcliError, each as
`file:line:col: path: what is wrong (did you mean ...)`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from kcli.errors import KcliError, Loc, Problem, did_you_mean
from kcli.recipe.overrides import apply_overrides
from kcli.recipe.source import SourceMap, desugar, merge_recipes, parse_yaml

if TYPE_CHECKING:
    from kcli.model.build import BuiltModel


@dataclass
class LoadedRecipe:
    """A validated recipe and where it came from."""

    recipe: Any  # kcli.recipe.schema.Recipe (imported lazily: pydantic schema build is not free)
    path: Path
    source: SourceMap
    overrides: list[str]
    plugins: list = field(default_factory=list)  # kcli.recipe.plugins.Plugin, imported

    @property
    def name(self) -> str:
        return self.recipe.name or self.path.stem

    @property
    def base_dir(self) -> Path:
        """The folder relative data paths and `python:` sources resolve against."""
        return self.path.parent

    def resolved(self) -> dict:
        """The recipe with defaults filled in and the name set: re-running it reproduces it."""
        data = self.recipe.model_dump(mode="json", exclude_none=True)
        data["name"] = self.name
        return data

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.resolved(), sort_keys=False, default_flow_style=None)

    def recipe_hash(self) -> str:
        return hashlib.sha256(self.resolved_yaml().encode()).hexdigest()

    def build_model(self) -> BuiltModel:
        """The recipe's model, planned and built from its seed; errors point into the file."""
        from kcli.model.build import build_model_from_spec

        try:
            return build_model_from_spec(self.recipe.model, self.recipe.seed)
        except KcliError as error:
            raise locate(error, self) from None


def read_recipe_text(path: Path) -> str:
    if not path.exists():
        raise KcliError(Problem(f"no such recipe file: {path}"))
    if path.is_dir():
        raise KcliError(Problem(f"{path} is a folder, not a recipe file"))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise KcliError(Problem(f"cannot read {path}: {err}")) from None


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, merged: list[str | Path] | None = None
) -> LoadedRecipe:
    """Read, merge the `merged` files over it in order, apply overrides, validate; raise one
    KcliError listing every problem (each located in the file it came from)."""
    from kcli.recipe.schema import Recipe

    path = Path(path)
    overrides = list(overrides or [])
    data, source = _read_mapping(path)
    for later_path in merged or []:
        later, later_source = _read_mapping(Path(later_path))
        data = merge_recipes(data, later, source, later_source)
    try:
        data = desugar(apply_overrides(data, overrides, source))
    except KcliError as error:
        located = [p if p.file else p.located(str(path), None, None) for p in error.problems]
        raise KcliError(located) from None
    plugins = _import_plugins(data, path.parent, source)
    return LoadedRecipe(validate_all(Recipe, data, source), path, source, overrides, plugins)


def _import_plugins(data: dict, base_dir: Path, source: SourceMap) -> list:
    """The recipe's plugin modules, imported before validation (they add catalog entries)."""
    from kcli.recipe.plugins import load_plugins

    if not data.get("plugins"):
        return load_plugins([], base_dir)  # forgets another recipe's plugins, if any

    try:
        return load_plugins(data["plugins"], base_dir)
    except KcliError as error:
        located = [p if p.file else source.locate(p) for p in error.problems]
        raise KcliError(located, details=error.details) from None


def _read_mapping(path: Path) -> tuple[dict, SourceMap]:
    data, source = parse_yaml(read_recipe_text(path), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KcliError(
            Problem("a recipe is a mapping of keys (data, model, compile ...)").located(
                str(path), 1, 1
            )
        )
    return data, source


def validate_all(model: Any, data: Any, source: SourceMap, rounds: int = 5) -> Any:
    """Validate, reporting every problem at once.

    An unknown key makes pydantic skip the rest of its mapping, which would hide the mapping's
    other mistakes until the key is fixed. So after reporting unknown keys, validate again
    without them, and add what that finds.
    """
    problems: list[Problem] = []
    attempt = data
    for _ in range(rounds):
        try:
            result = model.model_validate(attempt)
        except ValidationError as err:
            for problem in problems_from_validation(err, attempt, source):
                if problem not in problems:
                    problems.append(problem)
            unknown = _unknown_keys(err, attempt)
            if not unknown:
                break
            attempt = _without(attempt, unknown)
            continue
        if not problems:
            return result
        break
    raise KcliError(problems)


def _unknown_keys(err: ValidationError, data: Any) -> list[tuple[Loc, str]]:
    found = []
    for error in err.errors(include_url=False):
        if error["type"] == "unknown_keys":
            base = _data_path(error["loc"], data, False)
            found.extend((base, key) for key in error["ctx"]["keys"])
    return found


def _without(data: Any, keys: list[tuple[Loc, str]]) -> Any:
    """A copy of `data` with the given keys removed."""
    import copy

    data = copy.deepcopy(data)
    for path, key in keys:
        node = _value_at(data, path)
        if isinstance(node, dict):
            node.pop(key, None)
    return data


def check_recipe(
    path: str | Path, overrides: list[str] | None = None, merged: list[str] | None = None
) -> LoadedRecipe:
    """load_recipe, then the graph's checks (wiring, cycles, shapes) and the names `expect:`
    and callback monitors use, still without torch."""
    from kcli.model.graph import plan_graph
    from kcli.model.spec import start_weights_problems
    from kcli.model.strings import string_input_problems
    from kcli.recipe.logged import (
        known_splits,
        logged_name_problems,
        missing_package_problems,
        output_problems,
    )

    loaded = load_recipe(path, overrides, merged)
    try:
        plan = plan_graph(loaded.recipe.model)
    except KcliError as err:
        raise locate(err, loaded) from None
    problems = output_problems(loaded.recipe, plan)
    problems += string_input_problems(plan)[1]
    for problem in logged_name_problems(loaded.recipe, *known_splits(loaded.recipe), plan.outputs):
        if problem not in problems:  # a loss mapping that does not fit the outputs: said once
            problems.append(problem)
    problems += missing_package_problems(loaded.recipe)
    problems += start_weights_problems(loaded.recipe.model, loaded.base_dir)
    if problems:
        raise locate(KcliError(problems), loaded)
    return loaded


def locate(err: KcliError, loaded: LoadedRecipe) -> KcliError:
    """The same error with its recipe paths mapped to file positions."""
    located = [loaded.source.locate(p) if p.file is None else p for p in err.problems]
    return KcliError(located, details=err.details)


# ---- pydantic errors -> located problems ---------------------------------------------------

_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True)
    text = text.strip().removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _data_path(loc: tuple, data: Any, keep_missing_tail: bool) -> Loc:
    """Map a pydantic error loc onto the recipe's own keys, dropping union/validator labels."""
    path: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and keep_missing_tail and isinstance(node, dict) and isinstance(part, str):
            path.append(part)
        # else: a discriminator tag or union member label: not part of the recipe's path
    return tuple(path)


def problems_from_validation(err: ValidationError, data: Any, source: SourceMap) -> list[Problem]:
    """One located Problem per distinct place, with messages a recipe author can act on."""
    by_place: dict[tuple[Loc, bool], list[tuple[str, str | None]]] = {}
    for error in err.errors(include_url=False):
        kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
        if kind == "unknown_keys":
            base = _data_path(error["loc"], data, False)
            for key in ctx["keys"]:
                pointer = (ctx.get("pointers") or {}).get(key)
                hint = f": {pointer}" if pointer else did_you_mean(key, ctx["known"])
                message = f"unknown key '{key}'{hint}"
                by_place.setdefault(((*base, key), True), []).append((message, None))
            continue
        path = _data_path(error["loc"], data, kind == "missing")
        if kind == "unknown_name" and ctx.get("field"):
            parent = _value_at(data, path)
            if isinstance(parent, dict) and ctx["field"] in parent:
                path = (*path, ctx["field"])
        requirement, message = _describe(kind, ctx, given, error["msg"], path)
        by_place.setdefault((path, False), []).append((message, requirement))

    problems = []
    for (path, at_key), entries in by_place.items():
        requirements = [r for _, r in entries if r]
        if len(requirements) == len(entries) and len(entries) > 1:
            # A union said "must be a number" and "must be a mapping": say both once.
            given = _show(_value_at(data, path))
            message = f"must be {' or '.join(dict.fromkeys(requirements))} (got {given})"
        else:
            message = next((m for m, r in entries if r is None), entries[0][0])
        problems.append(source.locate(Problem(message, path), at_key=at_key))
    return problems


def _value_at(data: Any, path: Loc) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _describe(
    kind: str, ctx: dict, given: Any, pydantic_msg: str, path: Loc
) -> tuple[str | None, str]:
    """(a 'must be ...' requirement if the error is a type/bound error, the full message)."""
    if kind == "missing":
        return None, f"missing required key '{path[-1]}'" if path else "missing required key"
    if kind in _TYPE_WORDS:
        word = _TYPE_WORDS[kind]
        return word, f"must be {word} (got {_show(given)})"
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        requirement = f"{symbol} {ctx.get(key)}"
        return None, f"must be {requirement} (got {_show(given)})"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(given), options) if isinstance(given, str) else ""
        return None, f"must be one of {expected} (got {_show(given)}){hint}"
    if kind == "too_short":
        return None, f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return None, f"{_show(given)} is not a valid name (letters, digits, _ and -)"
    if kind in ("value_error", "assertion_error"):
        return None, pydantic_msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return None, pydantic_msg[0].lower() + pydantic_msg[1:]
