"""The arguments and options several `kcli` commands share, as typer annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Where run folders live.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")]
Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Overrides KEY=VALUE (dotted keys, list indices; values as YAML)."),
]
CheckpointOption = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        help="best | last | final; default: the weights the run ended with (as eval.json says).",
    ),
]
DeviceOption = Annotated[
    str | None,
    typer.Option("--device", help="cpu | cuda | cuda:N | mps (default: the run's, if here)."),
]
RunArgument = Annotated[
    str, typer.Argument(help="A run folder, or a recipe name under --runs-dir (its newest run).")
]
