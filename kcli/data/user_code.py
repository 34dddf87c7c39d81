"""Running a `python:` source's code: its failures become KcliErrors with the user's traceback.

A `python:` data source runs the user's own code (importing their module, calling their
function, iterating the batches it yields). Whatever goes wrong in there is that source's
failure: reported as bad input (exit 2) located at the recipe key that named the source, with
the traceback lines of the user's own frames shown under the message (kcli's frames left out).
A `sys.exit()` in user code is reported the same way, so it cannot change kcli's exit code; only
Ctrl-C (KeyboardInterrupt) goes through untouched.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kcli.errors import KcliError, Loc

T = TypeVar("T")

_KCLI_FOLDER = str(Path(__file__).resolve().parents[1])
MAX_TRACEBACK_FRAMES = 8  # the innermost ones: where the user's code failed


def describe_failure(error: BaseException) -> str:
    """`ValueError: bad shape`, or `sys.exit(3)` for a SystemExit."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r})"
    text = str(error).strip()
    return f"raised {type(error).__name__}: {text}" if text else f"raised {type(error).__name__}"


def user_traceback(error: BaseException) -> list[str]:
    """The traceback lines of the frames outside kcli and Python's import machinery."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(_KCLI_FOLDER) and not frame.filename.startswith("<frozen")
    ][-MAX_TRACEBACK_FRAMES:]
    lines = ["Traceback (the source's own frames):"]
    for text in traceback.format_list(frames):
        lines.extend(line for line in text.rstrip("\n").split("\n"))
    lines.extend(traceback.format_exception_only(type(error), error)[-1:])
    return [line.rstrip("\n") for line in lines] if frames else []


def source_failure(error: BaseException, where: str, loc: Loc, doing: str = "") -> KcliError:
    """The KcliError reporting that user code failed (`doing`: e.g. ` while yielding batch 3`)."""
    return KcliError(
        f"{where}{doing} {describe_failure(error)}", loc=loc, details=user_traceback(error)
    )


def run_user_code(call: Callable[[], T], where: str, loc: Loc, doing: str = "") -> T:
    """`call()`, with any failure of the user's code reported as `source_failure`."""
    try:
        return call()
    except KcliError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit too: user code must not set kcli's exit code
        raise source_failure(error, where, loc, doing) from None


def iterate_user_batches(batches: Iterable[Any], where: str, loc: Loc) -> Iterator[Any]:
    """Iterate a user's iterable of batches; a failure names the batch it happened at."""
    iterator = run_user_code(lambda: iter(batches), where, loc)
    number = 0
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except KcliError:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            raise source_failure(error, where, loc, f" (batch {number})") from None
        yield batch
        number += 1
