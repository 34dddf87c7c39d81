"""The callback base classes: `Callback` (the hooks the trainer calls) and `CallbackSpec`.

`callback_registry` is filled by subclassing `CallbackSpec`. `_inside_run_folder` is the check
the specs that name a file share: a run writes only in its own folder. Torch-free.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar

from kcli.registry import RegisteredSpec, Registry

callback_registry = Registry("callback")


class Callback:
    """Base of callback implementations: every hook does nothing until overridden."""

    trainer: Any = None

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict[str, float]) -> None:
        """Before the first epoch of this `fit` (after `load_state_dict` when resuming)."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Before epoch `epoch` (0-based) trains."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After epoch `epoch` trained and validated; `logs` holds loss, metrics, val_*, lr."""

    def on_train_end(self, logs: dict[str, float]) -> None:
        """After the last epoch (or an early stop); `logs` are the last epoch's."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue: numbers, strings, lists, dicts, tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back a `state_dict()` from a checkpoint."""


class CallbackSpec(RegisteredSpec):
    """A callback as a recipe names it; `build()` makes a fresh `Callback` for one run."""

    registry: ClassVar[Registry] = callback_registry

    def build(self) -> Callback:
        raise NotImplementedError  # every registered callback overrides this

    def check_available(self) -> None:
        """KcliError when an optional package the callback needs is missing (without torch).

        Checked by `kcli validate` and before a run folder is made, not only at `build()`.
        """


def _inside_run_folder(value: str) -> str:
    """A path relative to the run folder that stays in it (a run writes only in its folder)."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or value.startswith("~"):
        raise ValueError(
            f"must be a path inside the run folder, like 'checkpoints/x.pt' (got {value!r})"
        )
    return value
