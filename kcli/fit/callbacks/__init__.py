"""Keras' callbacks: a spec per name (torch-free, in recipes' `fit.callbacks`) and what it builds.

`CallbackSpec.build()` gives a `Callback`: an object with no-op hooks that the trainer calls
(`on_train_begin`, `on_epoch_begin(epoch)`, `on_epoch_end(epoch, logs)`, `on_train_end`;
`epoch` is 0-based as in Keras). A callback reaches the run through `self.trainer`, which
offers `model`, `run_dir`, `stop_training`, `get_learning_rate()`, `set_learning_rate(v)`,
`checkpoint_state()` and `log(message)`. Its counters and best values live from construction
on and travel in checkpoints through `state_dict()` / `load_state_dict()`, so a resumed run
counts on exactly as an uninterrupted one. Torch is imported inside methods only.

Modules: `base` (Callback, CallbackSpec, the registry), `monitoring` (mode "auto", improvement
test), `plateau` (EarlyStopping, ReduceLROnPlateau), `model_checkpoint` (ModelCheckpoint),
`control` (LearningRateScheduler, TerminateOnNaN), `loggers` (CSVLogger, TensorBoard).
"""

# Each module registers its specs when imported; the order is the catalog's order (the one the
# single-file module had), so the sorter must leave these lines as they are.
# isort: off
from kcli.fit.callbacks import plateau  # noqa: F401
from kcli.fit.callbacks import model_checkpoint  # noqa: F401
from kcli.fit.callbacks import control  # noqa: F401
from kcli.fit.callbacks import loggers  # noqa: F401

# isort: on
from kcli.fit.callbacks.base import Callback, CallbackSpec, callback_registry
from kcli.fit.callbacks.control import (
    LearningRateScheduler,
    LearningRateSchedulerCallback,
    TerminateOnNaN,
    TerminateOnNaNCallback,
)
from kcli.fit.callbacks.loggers import (
    CSVLogger,
    CSVLoggerCallback,
    TensorBoard,
    TensorBoardCallback,
)
from kcli.fit.callbacks.model_checkpoint import ModelCheckpoint, ModelCheckpointCallback
from kcli.fit.callbacks.monitoring import Mode, improved, monitor_mode
from kcli.fit.callbacks.plateau import (
    EarlyStopping,
    EarlyStoppingCallback,
    ReduceLROnPlateau,
    ReduceLROnPlateauCallback,
)

CallbackRef = callback_registry.field()
"""The type of a `fit.callbacks` entry: a name or a `{type: ..., params}` mapping."""

__all__ = [
    "CSVLogger",
    "CSVLoggerCallback",
    "Callback",
    "CallbackRef",
    "CallbackSpec",
    "EarlyStopping",
    "EarlyStoppingCallback",
    "LearningRateScheduler",
    "LearningRateSchedulerCallback",
    "Mode",
    "ModelCheckpoint",
    "ModelCheckpointCallback",
    "ReduceLROnPlateau",
    "ReduceLROnPlateauCallback",
    "TensorBoard",
    "TensorBoardCallback",
    "TerminateOnNaN",
    "TerminateOnNaNCallback",
    "callback_registry",
    "improved",
    "monitor_mode",
]
