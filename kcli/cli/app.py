"""The `kcli` app and what every command shares: turning kcli's errors into messages and exits.

`KcliError` (bad input) becomes its message lines on stderr and exit 2, never a traceback; a
failed gate or a diverged run exit 1; a refused write (disk full) exit 1 with what to do.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Annotated, Any

import typer

from kcli import __version__
from kcli.errors import ExpectationFailed, KcliError, StorageError, TrainingDiverged

app = typer.Typer(
    name="kcli",
    help="Keras-style declarative training for PyTorch: a YAML recipe in, a reproducible run out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def is_other_rank() -> bool:
    """A distributed process other than rank 0: every rank finds the same bad input, and rank
    0 alone reports it. (torch, which kcli.fit.distributed imports, is only loaded when torch's
    launcher started this process, and then it is loaded already.)"""
    if "WORLD_SIZE" not in os.environ:
        return False
    from kcli.fit.distributed import is_worker_of_other_rank

    return is_worker_of_other_rank()


def reports_errors(command):
    """Turn kcli's exceptions into messages and exit codes (2 bad input, 1 failed gate/NaN)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KcliError as error:
            if not is_other_rank():
                for line in error.lines():
                    err(line)
            raise typer.Exit(error.exit_code) from None
        except (ExpectationFailed, TrainingDiverged) as error:
            err(str(error))
            raise typer.Exit(1) from None
        except StorageError as error:  # disk full, file too large: not bad input
            err(str(error))
            if error.hint:
                err(error.hint)
            raise typer.Exit(error.exit_code) from None

    return wrapper


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=float))


def _version(value: bool) -> None:
    if value:
        print(f"kcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Keras-style declarative training for PyTorch."""
