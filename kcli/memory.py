"""Garbage collection around start-up: paused while the long-lived objects are made.

A kcli process creates about a million objects that live as long as it does (torch,
scikit-learn, pydantic's schemas), and every full garbage collection while they are being made
walks all of them: 0.8 s of a small training run. So `kcli`'s entry point pauses collection, and
`settle_memory` ends the pause once the heavy work is loaded (training: model and data ready;
eval, predict, export: the run's model rebuilt), freezing what exists so later collections skip
it. A process that calls kcli's functions itself (tests, a notebook) never paused collection,
and `settle_memory` leaves it as it is.
"""

from __future__ import annotations

import gc


def pause_collection() -> None:
    """Turn garbage collection off until `settle_memory` (called by the `kcli` entry point)."""
    gc.disable()


def settle_memory() -> None:
    """Exempt every object alive now from garbage collection, and turn collection back on.

    Only after `pause_collection`: a host process keeps its own garbage collection as it is.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
