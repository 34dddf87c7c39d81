"""`plugins: [my_layers]`: the recipe's own layers, losses, metrics and callbacks, in Python.

A plugin is a module that subclasses kcli's public bases (`kcli.plugin`: LayerSpec, LossSpec,
MetricSpec, CallbackSpec); declaring a subclass registers it, exactly as kcli's own catalog is
filled, so the recipe then validates, trains, resumes and exports with it. Plugins are imported
before the rest of the recipe is validated, which means a recipe with plugins runs the user's
code as soon as it is read (`kcli validate` included), like a `python:` data source.

Where `my_layers` is found, first hit wins: `my_layers.py` beside the recipe, `plugins/
my_layers.py` beside it (where a run folder keeps its copies, so eval, predict and --resume
use the code the run was trained with), then an installed module of that name. A dotted name
(`pkg.layers`) is a path below the recipe's folder (`pkg/layers.py`) or an installed module.

An import that fails, a class that registers a name another spec has, or a spec that lacks what
its family needs (a layer without `output_shape` or `build`) is bad input, exit 2, naming the
plugin file and line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem
from kcli.registry import Registry

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
RUN_PLUGIN_FOLDER = "plugins"  # inside a run folder (and beside a recipe)


@dataclass
class Plugin:
    """One imported plugin module and what it registered."""

    name: str
    path: Path | None  # the file it was imported from (None: a package without one file)
    sha256: str | None
    registered: list[tuple[Registry, str]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What run.json keeps of it."""
        return {
            "name": self.name,
            "file": str(self.path) if self.path else None,
            "sha256": self.sha256,
        }


# Imported plugins by module name: a second recipe naming the same file reuses the import.
_LOADED: dict[str, Plugin] = {}


def _registries() -> list[Registry]:
    from kcli.compile.losses import loss_registry
    from kcli.compile.metrics import metric_registry
    from kcli.fit.callbacks import callback_registry
    from kcli.model.activations import activation_registry
    from kcli.model.layers import layer_registry

    return [layer_registry, activation_registry, loss_registry, metric_registry, callback_registry]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_plugin_file(name: str, base_dir: Path) -> Path | None:
    """The plugin's file beside the recipe or in its plugins/ folder, if there is one."""
    relative = Path(*name.split(".")).with_suffix(".py")
    for candidate in (base_dir / relative, base_dir / RUN_PLUGIN_FOLDER / relative):
        if candidate.is_file():
            return candidate.resolve()
    return None


def load_plugins(names: Any, base_dir: Path) -> list[Plugin]:
    """Import the recipe's plugins; every problem raised as one KcliError (recipe paths)."""
    if not isinstance(names, list):
        return []  # not a list: the schema reports it with the rest of the recipe
    # A recipe sees its own plugins only: those another recipe loaded in this process go.
    for loaded in [plugin for name, plugin in _LOADED.items() if name not in names]:
        _forget(loaded)
    plugins, problems, details = [], [], []
    for index, name in enumerate(names):
        loc = ("plugins", index)
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(Problem(f"a plugin is a Python module name, got {name!r}", loc))
            continue
        try:
            plugins.append(_load(name, Path(base_dir), loc))
        except KcliError as error:
            problems.extend(error.problems)
            details.extend(error.details)
    if problems:
        raise KcliError(problems, details=details)
    return plugins


def _load(name: str, base_dir: Path, loc: tuple) -> Plugin:
    path = find_plugin_file(name, base_dir)
    sha = file_sha256(path) if path is not None else None
    known = _LOADED.get(name)
    if known is not None and (known.path == path or sha is not None) and known.sha256 == sha:
        return known  # the same code (a run's copy of it included): imported once
    if known is not None:  # another file (or changed code) under the same name: replace it
        _forget(known)
    if path is None and importlib.util.find_spec(name.split(".")[0]) is None:
        looked = f"{base_dir / Path(*name.split('.'))}.py, {base_dir / RUN_PLUGIN_FOLDER}/"
        raise KcliError(
            Problem(
                f"no plugin module '{name}' (looked for {looked}, and an installed module)", loc
            )
        )
    before = {id(r): set(r.specs) for r in _registries()}
    try:
        module = _import(name, path)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # the user's code failed (sys.exit too): report it
        _undo(name, before)
        raise _import_failure(name, path, error, loc) from None
    registered = [
        (registry, spec_name)
        for registry in _registries()
        for spec_name in registry.specs
        if spec_name not in before[id(registry)]
    ]
    if path is None:  # an installed module: recorded (and copied) when it is one file
        installed = _module_file(module)
        if installed is not None and installed.suffix == ".py" and installed.name != "__init__.py":
            path, sha = installed, file_sha256(installed)
    plugin = Plugin(name, path, sha, registered)
    problems = _incomplete_specs(plugin)
    if not registered:
        problems.append(
            Problem(
                f"plugin '{name}' defines no layer, loss, metric or callback (subclass "
                "kcli.plugin.LayerSpec, LossSpec, MetricSpec or CallbackSpec, with a "
                "`type: Literal[...]` name)",
                loc,
            )
        )
    if problems:
        _forget(plugin)
        raise KcliError(problems)
    _LOADED[name] = plugin
    return plugin


def _import(name: str, path: Path | None) -> Any:
    if path is None:
        return importlib.import_module(name)
    # The plugin's folder goes on the import path, so it may import modules beside it.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered first: dataclasses and pickling look it up
    spec.loader.exec_module(module)
    return module


def _module_file(module: Any) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _import_failure(name: str, path: Path | None, error: BaseException, loc: tuple) -> KcliError:
    import traceback

    from kcli.data.user_code import describe_failure, user_traceback

    where = str(path) if path else name
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if path is not None and Path(frame.filename).resolve() == path
    ]
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        where = f"{error.filename}:{error.lineno}"
    elif frames:
        where = f"{frames[-1].filename}:{frames[-1].lineno}"
    return KcliError(
        Problem(f"plugin '{name}' failed to import at {where}: {describe_failure(error)}", loc),
        details=user_traceback(error),
    )


def _required_methods() -> dict[str, tuple[type, tuple[str, ...]]]:
    """Per family: its base class, and the methods a spec must define (the base's raise)."""
    from kcli.compile.losses import LossSpec
    from kcli.compile.metrics import MetricSpec
    from kcli.fit.callbacks.base import CallbackSpec
    from kcli.model.activations import ActivationSpec
    from kcli.model.layers.base import LayerSpec

    return {
        "layer type": (LayerSpec, ("output_shape", "build")),
        "loss": (LossSpec, ("_values",)),
        "metric": (MetricSpec, ("build",)),
        "callback": (CallbackSpec, ("build",)),
        "activation": (ActivationSpec, ("build",)),
    }


def _incomplete_specs(plugin: Plugin) -> list[Problem]:
    problems = []
    required = _required_methods()
    for registry, spec_name in plugin.registered:
        cls = registry.specs[spec_name]
        base, methods = required[registry.kind]
        for method in methods:
            if getattr(cls, method, None) is getattr(base, method, None):
                file, line = _source_of(cls)
                problems.append(
                    Problem(
                        f"{registry.kind} {spec_name!r} ({cls.__name__}) defines no {method}(), "
                        f"which every {registry.kind} needs"
                    ).located(file, line, None)
                )
    return problems


def _source_of(cls: type) -> tuple[str | None, int | None]:
    import inspect  # only for a spec that is refused: every recipe load imports this module

    try:
        return inspect.getsourcefile(cls), inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return None, None


def _undo(name: str, before: dict[int, set[str]]) -> None:
    """Forget what a failed import registered, so a corrected file can be imported again."""
    for registry in _registries():
        for spec_name in [n for n in registry.specs if n not in before[id(registry)]]:
            registry.remove(spec_name)
    sys.modules.pop(name, None)


def _forget(plugin: Plugin) -> None:
    for registry, spec_name in plugin.registered:
        registry.remove(spec_name)
    sys.modules.pop(plugin.name, None)
    _LOADED.pop(plugin.name, None)


def changed_plugin_notes(records: list[dict[str, Any]], run_dir: Path) -> list[str]:
    """A note for each plugin whose file changed since the run was trained (the run keeps
    using its own copy in `run_dir/plugins/`)."""
    notes = []
    for record in records:
        file, sha = record.get("file"), record.get("sha256")
        if not file or not sha or not Path(file).is_file():
            continue
        if file_sha256(Path(file)) != sha:
            notes.append(
                f"plugin '{record.get('name')}' ({file}) changed since this run was trained; "
                f"the run uses its own copy in {Path(run_dir) / RUN_PLUGIN_FOLDER}"
            )
    return notes
