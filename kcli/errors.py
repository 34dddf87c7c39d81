"""The errors kcli shows to users, and how they become exit codes.

A `KcliError` is bad input (exit 2): a recipe, an override, a path, a data file or an argument.
It may carry several `Problem`s, each located in the recipe by a path (`model.layers[2].units`)
and, once the loader has mapped it, a file position. The CLI prints one line per problem and never
a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

Loc = tuple[str | int, ...]


DISTRIBUTION = "kcli-keras"  # kcli's name on PyPI ("kcli" there is another project)


def install_hint(extra: str) -> str:
    """The command that installs an optional part, for an installed copy and for a checkout."""
    return f'pip install "{DISTRIBUTION}[{extra}]" (in a checkout: pip install -e ".[{extra}]")'


def format_loc(loc: Loc) -> str:
    """`('model', 'layers', 2, 'units')` -> `model.layers[2].units`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a close option exists, else ``."""
    options = [str(o) for o in options]
    lowered = {o.lower(): o for o in options}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, where it is, and what was wrong."""

    message: str
    loc: Loc = ()
    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    origin: str | None = None  # e.g. "override fit.epochs=abc" when not from the file

    def located(self, file: str | None, line: int | None, col: int | None) -> Problem:
        return replace(self, file=file, line=line, col=col)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
            if self.line is not None:
                where.append(str(self.line))
                if self.col is not None:
                    where.append(str(self.col))
        prefix = ":".join(where)
        parts = [prefix] if prefix else []
        if self.origin:
            parts.append(self.origin)
        if self.loc:
            parts.append(format_loc(self.loc))
        parts.append(self.message)
        return ": ".join(parts)


class KcliError(Exception):
    """Bad input: exit code 2, one printed line per problem, no traceback."""

    exit_code = 2

    def __init__(
        self,
        problems: str | Problem | Sequence[Problem],
        *,
        loc: Loc = (),
        details: Sequence[str] = (),
    ) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems, loc=loc)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        # Lines shown under the problems, e.g. the user's own traceback from a python: source.
        self.details: list[str] = list(details)
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        """What the CLI prints: one line per problem, then the details, indented."""
        return [*(str(p) for p in self.problems), *(f"  {line}" for line in self.details)]


class ShapeError(KcliError):
    """A layer cannot take the shapes it is fed (raised by shape rules, located by the graph)."""


class ExpectationFailed(Exception):
    """Training finished but an `expect` gate did not hold: exit code 1."""

    exit_code = 1


class TrainingDiverged(Exception):
    """The loss became NaN or inf: the run is marked failed, exit code 1."""

    exit_code = 1


class StorageError(Exception):
    """A file could not be written (disk full, file too large, no permission): exit code 1.

    Not bad input: the run that hit it is marked failed, with its last whole checkpoint kept.
    """

    exit_code = 1

    def __init__(self, path: object, error: OSError) -> None:
        self.path = path
        self.reason = error.strerror or str(error)
        self.hint: str | None = None  # what the user can do, added by whoever knows (training)
        super().__init__(f"cannot write {path}: {self.reason}")
