"""The Keras-like progress display: a live bar on a terminal, one line per epoch otherwise.

    Epoch 3/15
    47/47 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - accuracy: 0.9123 - loss: 0.3012 - val_loss: ...

The bar redraws at most `refresh_hz` times a second, and only then reads the running loss (one
host sync per redraw, never one per batch).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 20


def format_value(value: float) -> str:
    """Keras' log format: 4 decimals, or scientific notation for tiny values."""
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.4e}"
    return f"{value:.4f}"


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{key}: {format_value(logs[key])}" for key in sorted(logs))


def bar(done: int, total: int) -> str:
    filled = BAR_WIDTH if total <= 0 else int(BAR_WIDTH * done / total)
    return "━" * filled + " " * (BAR_WIDTH - filled) if filled < BAR_WIDTH else "━" * BAR_WIDTH


def per_step_text(seconds: float) -> str:
    """Time per step in Keras' units: `2s/step`, `3ms/step`, or `450us/step` under a millisecond."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progress:
    """Prints training progress to `stream`; silent when `quiet`."""

    def __init__(
        self,
        epochs: int,
        stream: TextIO | None = None,
        quiet: bool = False,
        refresh_hz: float = 4,
        live: bool | None = None,
    ) -> None:
        """`live`: a redrawn progress bar; None: when `stream` is a terminal (Keras' "auto")."""
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.live = not quiet and (self.stream.isatty() if live is None else live)
        self.interval = 1.0 / refresh_hz
        self._started = 0.0
        self._last_draw = 0.0
        self._steps: int | None = None
        self._done_before = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def message(self, text: str) -> None:
        if not self.quiet:
            self._write(("\n" if self.live and self._steps is not None else "") + text + "\n")

    def start_epoch(self, epoch: int, steps: int | None, done_before: int = 0) -> None:
        """`done_before`: steps of this epoch run before a resume (not timed here)."""
        self._started = self._last_draw = time.perf_counter()
        self._steps = steps
        self._done_before = done_before
        if self.live:
            self._write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def step(self, done: int, running_logs: Callable[[], dict[str, float]]) -> None:
        """After `done` steps of this epoch; `running_logs` is called only when redrawing."""
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self._draw(done, now - self._started, running_logs())

    def _draw(self, done: int, elapsed: float, logs: dict[str, float], end: str = "") -> None:
        total = self._steps or done
        per_step = elapsed / max(done - self._done_before, 1)
        text = f"{done}/{total} {bar(done, total)} {elapsed:.0f}s {per_step_text(per_step)}"
        if logs:
            text += " - " + format_logs(logs)
        self._write("\r" + text + "\x1b[K" + end)

    def end_epoch(self, epoch: int, done: int, logs: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self._started
        if self.quiet:
            return
        shown = {k: v for k, v in logs.items() if k not in ("lr", "seconds")}
        if self.live:
            self._draw(done, elapsed, shown, end="\n")
        else:
            per_step = elapsed / max(done - self._done_before, 1)
            self._write(
                f"Epoch {epoch + 1}/{self.epochs} - {done} steps - {elapsed:.1f}s "
                f"{per_step_text(per_step)} - {format_logs(shown)}\n"
            )
        self._steps = None
