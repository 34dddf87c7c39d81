"""The Keras-like progress display: a live bar on a terminal, one line per epoch otherwise.

    Epoch 3/15
    21/47 ━━━━━━━━━              ETA 1s 3ms/step - accuracy: 0.9031 - loss: 0.3311
    47/47 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - accuracy: 0.9123 - loss: 0.3012 - val_loss: ...

While an epoch runs the bar shows the time left in it (ETA, from the time per step so far),
and when it ends the time it took, as Keras does. A line never wraps: it is fitted to the
terminal's width by leaving out metrics (loss and val_loss last), so an 80-column terminal
keeps one line per epoch. The bar redraws at most `refresh_hz` times a second, and only then
reads the running loss (one host sync per redraw, never one per batch).
"""

from __future__ import annotations

import os
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


def eta_text(seconds: float) -> str:
    """Time left as Keras shows it: `7s`, `2:05`, `1:02:05`."""
    seconds = max(int(seconds), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def fitted_logs(logs: dict[str, float], room: int) -> str:
    """` - name: value` for as many logs as fit in `room` characters, in format_logs' order.
    Kept by priority: loss, val_loss, then the others alphabetically, up to the first that
    does not fit; an ellipsis says some were left out."""
    keys = sorted(logs)
    priority = [k for k in ("loss", "val_loss") if k in logs] + [
        k for k in keys if k not in ("loss", "val_loss")
    ]
    kept, used = set(), 0
    for key in priority:
        cost = len(f" - {key}: {format_value(logs[key])}")
        if used + cost > room:
            break  # in priority order: nothing after a metric that did not fit
        kept.add(key)
        used += cost
    text = "".join(f" - {key}: {format_value(logs[key])}" for key in keys if key in kept)
    if len(kept) < len(keys) and used + 2 <= room:
        text += " …"  # some metrics did not fit the terminal
    return text


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
        if end or not self._steps:  # the epoch's last line (or no known length): time taken
            timing = f"{elapsed:.0f}s"
        else:
            timing = f"ETA {eta_text(per_step * (total - done))}"
        text = f"{done}/{total} {bar(done, total)} {timing} {per_step_text(per_step)}"
        # One column short of the width: a line that fills it exactly wraps on some terminals.
        text += fitted_logs(logs, self._columns() - 1 - len(text))
        self._write("\r" + text + "\x1b[K" + end)

    def _columns(self) -> int:
        """The terminal's width now (it may be resized); COLUMNS or 80 when unknown."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            try:
                return int(os.environ.get("COLUMNS", "80"))
            except ValueError:
                return 80

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
