"""The commands that describe what a recipe can say: catalog, layers, schema (all torch-free)."""

from __future__ import annotations

from typing import Annotated

import typer

from kcli.cli.app import app, print_json, reports_errors
from kcli.cli.options import JsonFlag, PluginsOption


def _load_plugins(names: list[str] | None) -> None:
    """`--plugins`: import the modules (from the current folder first), as a recipe would."""
    if names:
        from pathlib import Path

        from kcli.recipe.plugins import load_plugins

        load_plugins(list(names), Path.cwd())


@app.command()
@reports_errors
def layers(
    name: Annotated[str | None, typer.Argument(help="A layer type to describe.")] = None,
    as_json: JsonFlag = False,
    plugins: PluginsOption = None,
) -> None:
    """The layer catalog, or one layer's arguments with their types and defaults."""
    from kcli.recipe.catalog import describe_layer, list_layers, render_layer, render_layers

    _load_plugins(plugins)

    if name is None:
        catalog = list_layers()
        print_json(catalog) if as_json else print(render_layers(catalog), end="")
    else:
        layer = describe_layer(name)
        print_json(layer) if as_json else print(render_layer(layer), end="")


@app.command()
@reports_errors
def catalog(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="layers, optimizers, losses, metrics, callbacks, sources ... or a name."
        ),
    ] = None,
    name: Annotated[str | None, typer.Argument(help="One entry to describe.")] = None,
    as_json: JsonFlag = False,
    plugins: PluginsOption = None,
) -> None:
    """Every name a recipe can use (layers, optimizers, losses ...), or one with its arguments."""
    from kcli.errors import KcliError
    from kcli.recipe import catalog as catalogs

    _load_plugins(plugins)

    if kind is None:
        if as_json:
            print_json({k: list(catalogs.entries(k)) for k in catalogs.KINDS})
        else:
            print(catalogs.render_kinds(), end="")
        return
    try:
        kind = catalogs.canonical_kind(kind)
    except KcliError:
        found = catalogs.find_entry(kind)  # `kcli catalog Adam`: a name, whatever its kind
        if not found:
            raise
        kind, name = found[0]
    if name is None:
        rows = catalogs.list_entries(kind)
        print_json(rows) if as_json else print(catalogs.render_entries(kind, rows), end="")
    else:
        entry = catalogs.describe_entry(kind, name)
        print_json(entry) if as_json else print(catalogs.render_layer(entry), end="")


@app.command()
@reports_errors
def schema(plugins: PluginsOption = None) -> None:
    """The JSON Schema of recipes, for editors' YAML language servers."""
    from kcli.recipe.json_schema import recipe_json_schema

    _load_plugins(plugins)

    print_json(recipe_json_schema())
