"""The `data:` stage: a DataSpec -> Splits (train / validation / test, preprocessed) -> batches.

Takes the recipe's `data:` section (spec.py), gives device-resident batches and the fitted
preprocessing a run saves. Entry point: `load.load_data`.

Importing this package is light (no numpy, torch or scikit-learn); the names below load their
module on first use. `spec` and `steps` are the torch- and numpy-free schema `kcli validate` needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataSpec": "kcli.data.spec",
    "SourceSpec": "kcli.data.spec",
    "load_data": "kcli.data.load",
    "Splits": "kcli.data.splits",
    "ArraySplit": "kcli.data.splits",
    "StreamSplit": "kcli.data.splits",
    "Preprocessing": "kcli.data.preprocess",
    "TargetInfo": "kcli.data.targets",
    "RawData": "kcli.data.raw",
    "load_source_arrays": "kcli.data.sources",
    "InMemoryBatches": "kcli.data.batches",
    "StreamBatches": "kcli.data.batches",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kcli.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
