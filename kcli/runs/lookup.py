"""Finding runs again: the run folder a RUN argument (a folder or a recipe name) means.

A name means that recipe's newest run (`resolve_run`).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from kcli.errors import KcliError, did_you_mean
from kcli.runs.folder import LAST_CHECKPOINT, RUN_FILE, RUN_ID
from kcli.runs.record import RunRecord, read_run_record


def _started_key(run_dir: Path, started: str | None) -> tuple[float, str]:
    """Newest-first sort key: the recorded start time, else the time in the folder's name."""
    stamp = None
    if started is not None:
        try:
            stamp = datetime.fromisoformat(started).timestamp()
        except ValueError:
            stamp = None
    if stamp is None and RUN_ID.match(run_dir.name):
        stamp = datetime.strptime(run_dir.name[:15], "%Y%m%d-%H%M%S").timestamp()
    return (stamp if stamp is not None else 0.0, run_dir.name)


def _runs_under(recipe_folder: Path) -> list[tuple[Path, RunRecord]]:
    """The readable runs directly under a recipe's folder, newest first."""
    found = []
    for child in recipe_folder.iterdir():
        if child.is_dir() and (child / RUN_FILE).is_file():
            try:
                found.append((child, read_run_record(child)))
            except KcliError:
                continue  # a broken run cannot be resolved; `kcli runs` shows it as broken
    found.sort(key=lambda pair: _started_key(pair[0], pair[1].started), reverse=True)
    return found


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / LAST_CHECKPOINT).is_file()


def _pick_run(recipe_folder: Path, require_checkpoint: bool, prefer_completed: bool) -> Path | None:
    runs = _runs_under(recipe_folder)
    usable = [(d, r) for d, r in runs if not require_checkpoint or _has_checkpoint(d)]
    if prefer_completed:
        usable = [p for p in usable if p[1].status == "completed"] or usable
    if usable:
        return usable[0][0]
    if not runs:
        return None
    listing = ", ".join(
        f"{d.name} ({r.status}{'' if _has_checkpoint(d) else ', no checkpoint'})" for d, r in runs
    )
    raise KcliError(
        f"{recipe_folder}: no run with a checkpoint ({LAST_CHECKPOINT.as_posix()}); "
        f"the runs there stopped before finishing an epoch: {listing}"
    )


_ID_PREFIX = re.compile(r"^\d{8}(-\d{0,6}(-[0-9a-f]{0,6})?)?$")


def _run_with_id(text: str, runs_dir: Path) -> Path | None:
    """The run whose id is `text` or starts with it (`20261202-1553`); None if no id matches.

    Several matches are a KcliError listing them: a prefix must be unique.
    """
    if not _ID_PREFIX.match(text) or not runs_dir.is_dir():
        return None
    found = sorted(
        run
        for recipe_folder in runs_dir.iterdir()
        if recipe_folder.is_dir()
        for run in recipe_folder.iterdir()
        if run.name.startswith(text) and (run / RUN_FILE).is_file()
    )
    if len(found) > 1:
        shown = ", ".join(f"{run.parent.name}/{run.name}" for run in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        raise KcliError(
            f"run id '{text}' matches {len(found)} runs: {shown}{more}; give more of it"
        )
    return found[0] if found else None


def resolve_run(
    arg: str,
    runs_dir: Path,
    *,
    require_checkpoint: bool = False,
    prefer_completed: bool = False,
) -> Path:
    """The run folder a RUN argument means: a run folder, a recipe name (its newest run), or a
    run id or a unique prefix of one (`20261202-155305-d4be2a`, `20261202-1553`).

    - A folder holding run.json is that run (its run.json must be readable).
    - A folder of runs (e.g. `runs/digits-mlp`) or a name under `runs_dir` means its newest
      run, by start time, of any status (CLI.md: "its newest run"), so `--resume NAME`
      continues the run just interrupted. With `prefer_completed`, the newest completed run
      wins when there is one (for commands that want a finished model).
    - With `require_checkpoint`, only runs that wrote checkpoints/last.pt count.
    Nothing matching is a KcliError naming what exists.
    """
    runs_dir = Path(runs_dir)
    path = Path(arg)
    if (path / RUN_FILE).is_file():
        read_run_record(path)  # a damaged run.json is a KcliError naming it, for every command
        if require_checkpoint and not _has_checkpoint(path):
            raise KcliError(
                f"{path}: the run has no checkpoint ({LAST_CHECKPOINT.as_posix()}); it stopped "
                "before finishing an epoch"
            )
        return path
    for folder in (path, runs_dir / arg):
        if folder.is_dir():
            picked = _pick_run(folder, require_checkpoint, prefer_completed)
            if picked is not None:
                return picked
    by_id = _run_with_id(arg, runs_dir)
    if by_id is not None:
        return resolve_run(str(by_id), runs_dir, require_checkpoint=require_checkpoint)
    names = (
        sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and _runs_under(p))
        if runs_dir.is_dir()
        else []
    )
    if path.is_dir():
        where = f"{path}: not a run folder (no {RUN_FILE}) and no runs in it"
    else:
        where = f"no run {arg!r}: not a run folder, nor a recipe name with runs in {runs_dir}"
    if names:
        raise KcliError(f"{where}{did_you_mean(arg, names)}; runs exist for: {', '.join(names)}")
    raise KcliError(f"{where}; {runs_dir} holds no runs yet (train one with `kcli train`)")
