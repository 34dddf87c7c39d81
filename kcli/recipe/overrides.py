"""`KEY=VALUE` overrides from the command line, applied to the raw recipe before validation."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from kcli.errors import KcliError, Loc, Problem
from kcli.recipe.source import SourceMap

_SEGMENT = re.compile(r"[^.\[\]]+|\[[0-9]+\]")


def parse_override(text: str) -> tuple[Loc, Any]:
    """`model.layers.0.units=256` -> (('model', 'layers', 0, 'units'), 256)."""
    key, sep, value_text = text.partition("=")
    if not sep or not key.strip():
        raise KcliError(Problem("an override is KEY=VALUE, e.g. fit.epochs=5", origin=text))
    key = key.strip()
    if not re.fullmatch(r"(?:[^.\[\]]+|\[[0-9]+\])(?:\.?(?:[^.\[\]]+|\[[0-9]+\]))*", key):
        raise KcliError(Problem(f"cannot read the key path '{key}'", origin=f"override {text}"))
    path: list[str | int] = []
    for segment in _SEGMENT.findall(key):
        if segment.startswith("["):
            path.append(int(segment[1:-1]))
        elif segment.isascii() and segment.isdigit():  # not '¹' or '٣': int() refuses those
            path.append(int(segment))
        else:
            path.append(segment)
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as err:
        detail = str(err).splitlines()[0]
        raise KcliError(
            Problem(f"the value is not valid YAML: {detail}", origin=f"override {text}")
        ) from None
    return tuple(path), value


def apply_overrides(data: Any, overrides: list[str], source: SourceMap) -> Any:
    """A copy of `data` with each override set; the source map records where they came from."""
    data = copy.deepcopy(data) if data is not None else {}
    problems = []
    for text in overrides:
        try:
            path, value = parse_override(text)
            data = _set(data, path, value, text)
        except KcliError as err:
            problems.extend(err.problems)
            continue
        source.overrides[path] = text
    if problems:
        raise KcliError(problems)
    return data


def _set(data: Any, path: Loc, value: Any, text: str) -> Any:
    if not isinstance(data, dict):
        raise KcliError(Problem("the recipe is not a mapping", origin=f"override {text}"))
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        here = path[: depth + 1]
        child = _child(node, part, here, text)
        if child is None:
            if isinstance(part, int):
                raise KcliError(Problem("no such list item", loc=here, origin=f"override {text}"))
            child = {}
            node[part] = child
        node = child
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            raise KcliError(
                Problem(
                    f"index {last} is out of range (the list has {len(node)} items)",
                    loc=path,
                    origin=f"override {text}",
                )
            )
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise KcliError(
            Problem(
                f"cannot set a key inside a {type(node).__name__}",
                loc=path[:-1],
                origin=f"override {text}",
            )
        )
    return data


def _child(node: Any, part: str | int, here: Loc, text: str) -> Any:
    if isinstance(node, list):
        if not isinstance(part, int):
            raise KcliError(
                Problem("a list is indexed by a number", loc=here, origin=f"override {text}")
            )
        if not -len(node) <= part < len(node):
            raise KcliError(
                Problem(
                    f"index {part} is out of range (the list has {len(node)} items)",
                    loc=here,
                    origin=f"override {text}",
                )
            )
        return node[part]
    if isinstance(node, dict):
        return node.get(part)
    raise KcliError(
        Problem(
            f"cannot set a key inside a {type(node).__name__}",
            loc=here[:-1],
            origin=f"override {text}",
        )
    )


def split_overrides(
    arguments: list[str], *, all_files: bool = False
) -> tuple[list[str], list[str]]:
    """Recipe files, then KEY=VALUE overrides.

    A recipe file is an existing file or a name ending in .yaml/.yml, and, with `all_files`
    (`kcli validate`, whose arguments are files), anything without `=`. Otherwise anything else
    is an override, so a mistyped one (`fit.epochs`) is reported as an override without `=`,
    not as a missing file.
    """

    def is_recipe(argument: str) -> bool:
        if Path(argument).is_file():
            return True
        if "=" in argument:
            return False
        return all_files or argument.lower().endswith((".yaml", ".yml"))

    recipes = [a for a in arguments if is_recipe(a)]
    return recipes, [a for a in arguments if not is_recipe(a)]
