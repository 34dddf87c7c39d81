"""Size limits, checked before anything big is allocated.

A recipe can ask for more memory than any machine has (`units: 1000000000`, a synthetic source
of 10^10 samples); numpy or torch would then fail deep inside with a MemoryError traceback, or
the system would start swapping. So the places that allocate in proportion to a recipe's
numbers (the model's weights, generated data) first ask `check_memory` with the bytes they are
about to take, and a request over the limit is refused up front, naming the size it would need.

The limit is this machine's physical memory; `KCLI_MAX_MEMORY` overrides it (`64GB`, `512MB`,
a number of bytes, or `none` for no limit).
"""

from __future__ import annotations

import os
import re

from kcli.errors import KcliError, Loc

MEMORY_LIMIT_VARIABLE = "KCLI_MAX_MEMORY"
_UNITS = {"": 1, "B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}
FALLBACK_LIMIT = 64 * 2**30  # where the physical memory cannot be read


def readable_bytes(n_bytes: float) -> str:
    """A size as Keras' summary prints it: 1024-based units up to TB, two decimals (`37.54 KB`)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024 or unit == "TB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX, or not reported
        return FALLBACK_LIMIT


def memory_limit() -> int | None:
    """The most bytes one allocation may ask for; None when the user lifted the limit."""
    text = os.environ.get(MEMORY_LIMIT_VARIABLE, "").strip()
    if not text:
        return physical_memory()
    if text.lower() in ("none", "off", "0"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?B?)", text.upper())
    if match is None or match.group(2) not in _UNITS:
        raise KcliError(
            f"{MEMORY_LIMIT_VARIABLE}={text!r}: expected a size like 16GB, 512MB, a number of "
            "bytes, or none"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def check_memory(n_bytes: int, what: str, loc: Loc = ()) -> None:
    """Refuse (KcliError at `loc`) an allocation of `n_bytes` over the limit; `what` says which."""
    limit = memory_limit()
    if limit is not None and n_bytes > limit:
        raise KcliError(
            f"{what} would need {readable_bytes(n_bytes)} of memory, more than the "
            f"{readable_bytes(limit)} allowed here (this machine's memory; set "
            f"{MEMORY_LIMIT_VARIABLE} to change the limit)",
            loc=loc,
        )
