"""YAML text -> plain data, remembering where every key and value came from.

PyYAML's composer keeps a start mark on every node; we build the Python data from the node tree
ourselves so each path (`('model', 'layers', 2, 'units')`) can be mapped back to its line and
column. Only YAML's safe tags are constructed (the scalars go through SafeLoader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kcli.errors import KcliError, Loc, Problem

# Lists whose items, and keys whose value, may use the one-key form `- Dense: {units: 8}`.
_SUGAR_LISTS = {"layers", "callbacks"}
_SUGAR_KEYS = {"layer"}


@dataclass
class SourceMap:
    """Where each path of a recipe came from: a file position, or an override."""

    file: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    overrides: dict[Loc, str] = field(default_factory=dict)
    # Recipes merged from several files: the file of each position that is not `file`'s.
    files: dict[Loc, str] = field(default_factory=dict)

    def locate(self, problem: Problem, *, at_key: bool = False) -> Problem:
        """The problem with its file, line and column (or override) filled in."""
        loc = problem.loc
        for depth in range(len(loc), -1, -1):
            origin = self.overrides.get(loc[:depth])
            if origin is not None:
                return Problem(problem.message, loc, file=self.file, origin=f"override {origin}")
        table = self.keys if at_key and loc in self.keys else self.values
        for depth in range(len(loc), -1, -1):
            position = table.get(loc[:depth]) or self.values.get(loc[:depth])
            if position is not None:
                return problem.located(self.files.get(loc[:depth], self.file), *position)
        return problem.located(self.file, None, None)

    def merge(self, later: SourceMap, replaced: list[Loc]) -> None:
        """Take `later`'s positions (a recipe file merged over this one); the subtrees at
        `replaced` no longer come from here."""
        for table in (self.values, self.keys, self.files):
            for loc in [loc for loc in table if any(loc[: len(r)] == r for r in replaced)]:
                del table[loc]
        for loc in (*later.values, *later.keys):
            self.files[loc] = later.file
        self.values.update(later.values)
        self.keys.update(later.keys)


def merge_recipes(base: dict, later: dict, source: SourceMap, later_source: SourceMap) -> dict:
    """`later` over `base`: mappings merge key by key, anything else (lists too) is replaced."""
    replaced: list[Loc] = []

    def merge(a: Any, b: Any, loc: Loc) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for key, value in b.items():
                if key in a and isinstance(a[key], dict) and isinstance(value, dict):
                    out[key] = merge(a[key], value, (*loc, key))
                else:
                    replaced.append((*loc, key))
                    out[key] = value
            return out
        return b

    merged = merge(base, later, ())
    source.merge(later_source, replaced)
    return merged


def one_key_sugar(value: Any) -> tuple[str, Any] | None:
    """`{Dense: {units: 8}}` -> ('Dense', {units: 8}); anything else -> None."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, body),) = value.items()
        if isinstance(name, str) and name != "type" and (body is None or isinstance(body, dict)):
            return name, body or {}
    return None


def desugar(data: Any, parent_key: Any = None) -> Any:
    """Rewrite every one-key layer/callback mapping into the `{type: Name, ...}` form."""
    if isinstance(data, dict):
        out = {key: desugar(value, key) for key, value in data.items()}
        for key in _SUGAR_KEYS & out.keys():
            sugar = one_key_sugar(out[key])
            if sugar:
                out[key] = {"type": sugar[0], **desugar(sugar[1])}
        return out
    if isinstance(data, list):
        items = [desugar(item) for item in data]
        if parent_key in _SUGAR_LISTS:
            items = [
                {"type": s[0], **desugar(s[1])} if (s := one_key_sugar(item)) else item
                for item in items
            ]
        return items
    return data


MAX_VALUES = 100_000  # far beyond any real recipe (a large one has a few thousand)


class _Builder:
    """Builds plain data from a composed node tree, recording positions as it goes."""

    def __init__(self, loader: yaml.SafeLoader, source: SourceMap) -> None:
        self.loader = loader
        self.source = source
        self.problems: list[Problem] = []
        self.built = 0  # values built so far: aliases repeat a node each time they are used

    def build(self, node: yaml.Node, loc: Loc, parent_key: Any = None) -> Any:
        self.built += 1
        if self.built > MAX_VALUES:
            # Aliases of aliases (a "billion laughs") would expand to far more than any recipe
            # holds: stop at the first value past the bound instead of expanding it.
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
            raise KcliError(
                Problem(
                    f"the recipe expands to more than {MAX_VALUES:,} values; YAML aliases "
                    "(*name) repeated inside each other?",
                    loc,
                    self.source.file,
                    line,
                    col,
                )
            )
        self.source.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc, parent_key)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, child in enumerate(node.value):
                if parent_key in _SUGAR_LISTS:
                    items.append(self._maybe_sugar(child, (*loc, index)))
                else:
                    items.append(self.build(child, (*loc, index)))
            return items
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, loc: Loc, parent_key: Any) -> dict:
        self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out: dict = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            child = (*loc, key)
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                self.problems.append(
                    Problem(f"duplicate key '{key}'", child, self.source.file, line, col)
                )
            self.source.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in _SUGAR_KEYS:
                out[key] = self._maybe_sugar(value_node, child)
            else:
                out[key] = self.build(value_node, child, key)
        return out

    def _maybe_sugar(self, node: yaml.Node, loc: Loc) -> Any:
        if (
            isinstance(node, yaml.MappingNode)
            and len(node.value) == 1
            and isinstance(node.value[0][1], yaml.MappingNode | yaml.ScalarNode)
        ):
            key_node, body_node = node.value[0]
            name = self.loader.construct_object(key_node, deep=True)
            is_null = isinstance(body_node, yaml.ScalarNode) and body_node.tag.endswith(":null")
            if name != "type" and (isinstance(body_node, yaml.MappingNode) or is_null):
                self.source.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
                self.source.values[(*loc, "type")] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                body = {} if is_null else self._mapping(body_node, loc, None)
                return {"type": name, **body}
        return self.build(node, loc)


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain data and its SourceMap; syntax errors become KcliErrors."""
    source = SourceMap(file)
    try:
        loader = yaml.SafeLoader(text)  # reads the first characters: may raise a ReaderError
    except yaml.YAMLError as err:
        raise KcliError(Problem(f"YAML error: {err}", (), file)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, source
        builder = _Builder(loader, source)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise KcliError(Problem(f"YAML syntax error: {what}", (), file, line, col)) from None
    except yaml.YAMLError as err:
        raise KcliError(Problem(f"YAML error: {err}", (), file)) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise KcliError(builder.problems)
    return data, source
