"""The `cli` stage: the `kcli` command line, and the only place that prints.

Takes the command line, gives exit codes (0 done, 1 a failed gate / diverged / disk full, 2 bad
input, 130 interrupted). Entry point: `main()` (the `kcli` script); `app` is the typer app.
Modules: `app` (the app, error handling), `options` (shared options), `commands` (training and
runs), `describe` (catalog, layers, schema).
"""

from __future__ import annotations

import os

from kcli.cli import commands, describe  # noqa: F401  (their @app.command()s register them)
from kcli.cli.app import app
from kcli.memory import pause_collection

__all__ = ["app", "main"]


def main() -> None:
    pause_collection()  # until the heavy work is loaded: see kcli/memory.py
    # kcli uses no pydantic plugins; looking for them scans every installed package's entry
    # points (a tenth of `kcli validate`'s time).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app()
