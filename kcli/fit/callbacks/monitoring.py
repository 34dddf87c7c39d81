"""What the callbacks that watch one logged value share: mode, improvement test, base class.

`monitor_mode` resolves mode "auto" from the monitored name, `improved` compares a value with a
reference, and `_Monitoring` reads the watched value from the logs (warning once when it is
missing). Torch-free.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from kcli.fit.callbacks.base import Callback

Mode = Literal["auto", "min", "max"]
# Names that get better as they grow, for mode "auto" (looked for after stripping "val_").
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "r2")


def monitor_mode(monitor: str, mode: Mode) -> Literal["min", "max"]:
    """Resolve mode "auto": max for accuracy-like names (acc, auc, precision ...), else min."""
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_").lower()
    return "max" if any(hint in name for hint in _HIGHER_IS_BETTER) else "min"


def improved(current: float, reference: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `current` beats `reference` by more than `min_delta` (NaN never does)."""
    if mode == "min":
        return current < reference - abs(min_delta)
    return current > reference + abs(min_delta)


class _Monitoring(Callback):
    """A callback that watches one logged value and warns once when it is missing."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.monitor: str = spec.monitor
        self.mode = monitor_mode(spec.monitor, spec.mode)
        self._warned = False

    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _validated(self) -> bool:
        """Whether the epoch that just ended ran validation (not with fit.validation_freq)."""
        return getattr(self.trainer, "validated", True)

    def monitored(self, logs: dict[str, float]) -> float | None:
        value = logs.get(self.monitor)
        if value is None and self.monitor.startswith("val_") and not self._validated():
            return None  # an epoch without validation (fit.validation_freq): nothing to judge
        if value is None:
            if not self._warned:
                self._warned = True
                self.trainer.log(
                    f"{self.spec.type}: '{self.monitor}' is not among the logged values "
                    f"({', '.join(sorted(logs))}); skipping it"
                )
            return None
        return float(value)
