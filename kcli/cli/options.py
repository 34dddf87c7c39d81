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

# `kcli train`'s own options.
ResumeOption = Annotated[
    str | None,
    typer.Option("--resume", help="Continue a run (folder or name) from its last checkpoint."),
]
TrainDeviceOption = Annotated[
    str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps")
]
NprocOption = Annotated[
    int, typer.Option("--nproc-per-node", min=1, help="Processes (DistributedDataParallel).")
]
NnodesOption = Annotated[int, typer.Option("--nnodes", min=1, help="Machines taking part.")]
NodeRankOption = Annotated[int, typer.Option("--node-rank", min=0, help="This machine's rank.")]
RendezvousOption = Annotated[
    str | None, typer.Option("--rdzv-endpoint", help="HOST:PORT of the rendezvous (nnodes>1).")
]
PluginsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugins",
        help="A plugin module to load first (MODULE.py in this folder, or installed); repeatable.",
    ),
]
