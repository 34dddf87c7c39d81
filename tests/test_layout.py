"""The package layout holds its promises (README, "How the code is laid out"): imports go one
way down the stages, no module imports itself back through others, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kcli"

# The stages in import order: a module imports only from its own stage and the ones above it.
# The foundation is what every stage may use (errors, the spec registry, atomic file writes,
# size limits).
FOUNDATION = {"kcli", "kcli.errors", "kcli.registry", "kcli.files", "kcli.memory", "kcli.limits"}
STAGES = [
    ("foundation", FOUNDATION),
    ("model", {"kcli.model"}),
    ("compile", {"kcli.compile"}),
    ("data", {"kcli.data"}),
    ("fit", {"kcli.fit"}),
    ("plugin", {"kcli.plugin"}),
    ("recipe", {"kcli.recipe"}),
    ("runs", {"kcli.runs"}),
    ("plots", {"kcli.plots"}),
    ("train", {"kcli.train"}),
    ("use", {"kcli.use"}),
    ("cli", {"kcli.cli", "kcli.__main__"}),
]
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str) -> set[str]:
    """Every kcli module `name` imports, at the top or inside a function (lazy imports count)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1]]
                    + ([base] if base else [])
                )
            # `from kcli.x import y` imports the module kcli.x.y when y is one
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


IMPORTS = {name: imported_modules(name) for name in MODULES}


def stage_of(name: str) -> int:
    for index, (_, prefixes) in enumerate(STAGES):
        if name in prefixes or any(name.startswith(p + ".") for p in prefixes if p != "kcli"):
            return index
    raise AssertionError(f"{name} belongs to no stage: add it to STAGES and the README's map")


def test_every_module_belongs_to_a_stage():
    for name in MODULES:
        stage_of(name)


def test_imports_go_one_way_down_the_stages():
    backwards = [
        f"{name} ({STAGES[stage_of(name)][0]}) imports {target} ({STAGES[stage_of(target)][0]})"
        for name, targets in IMPORTS.items()
        for target in sorted(targets)
        if stage_of(target) > stage_of(name)
    ]
    assert backwards == []


def find_cycle() -> list[str] | None:
    """One import cycle among kcli's modules (package __init__ re-exports included), if any."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(IMPORTS[name]):
            # a package's __init__ importing its own submodules is how re-exports work
            if name != "kcli" and target.startswith(name + "."):
                continue
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[name] = "done"
        return None

    for name in MODULES:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle() is None


def test_the_checker_sees_a_cycle(monkeypatch):
    # the cycle finder must not be blind: a made-up a -> b -> a is found
    monkeypatch.setitem(IMPORTS, "kcli.data.raw", IMPORTS["kcli.data.raw"] | {"kcli.data.load"})
    assert find_cycle() is not None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines; split it along a family line"


def test_each_stage_package_says_what_it_takes_and_gives():
    for _, prefixes in STAGES[1:-1]:
        for package in prefixes:
            docstring = ast.get_docstring(ast.parse(MODULES[package].read_text())) or ""
            assert "Entry point" in docstring, f"{package}/__init__.py names no entry point"
