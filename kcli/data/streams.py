"""Generator sources: fit the preprocessing on the first batches, then stream the rest.

A `python:` function that returns an iterable of (x, y[, sample_weight]) batches (Keras' custom
data generator) cannot be split by fraction: its validation and test data come from explicit
`validation:` / `test:` sources. Statistics (standardize, minmax, class names) are fitted on the
first `FIT_BATCHES` batches of one pass (fewer with a smaller `steps_per_epoch`); training then
calls the function again, so that pass is not lost. A generator's position is not checkpointed:
a resumed run calls the function afresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcli.data.raw import RawData, StreamSource, check_lengths
from kcli.data.spec import DataSpec
from kcli.data.splits import FIT_BATCHES, Splits, StreamSplit, fit_and_transform, unpack_batch
from kcli.errors import KcliError


def _concatenate(values: list[Any], what: str, source: StreamSource) -> Any:
    try:
        if isinstance(values[0], dict):
            return {k: np.concatenate([v[k] for v in values]) for k in values[0]}
        return np.concatenate(values)
    except (ValueError, KeyError, TypeError) as err:
        raise KcliError(
            f"{source.where}: the batches' {what} do not fit together ({err})",
            loc=(*source.loc, "source"),
        ) from None


def load_stream(spec: DataSpec, source: StreamSource, extra: dict[str, Any]) -> Splits:
    """Splits whose train split streams from `source`; validation/test from `extra`."""
    for name in ("validation_split", "test_split"):
        if getattr(spec, name):
            raise KcliError(
                f"{source.where} yields batches, which cannot be split by fraction; give a "
                f"{name.removesuffix('_split')}: source instead",
                loc=("data", name),
            )
    limit = min(source.steps_per_epoch or FIT_BATCHES, FIT_BATCHES)
    batches = []
    for number, batch in enumerate(source.open()):
        x, y, weight = unpack_batch(batch, source, number)
        check_lengths(RawData(x, y, f"{source.where} batch {number}", source.loc, weight))
        batches.append((x, y, weight))
        if len(batches) == limit:
            break
    if not batches:
        raise KcliError(f"{source.where} yielded no batches", loc=(*source.loc, "source"))
    x = _concatenate([b[0] for b in batches], "x", source)
    y = _concatenate([b[1] for b in batches], "y", source)
    where = f"{source.where} (first {len(batches)} batches)"
    sample = check_lengths(RawData(x, y, where=where, loc=source.loc))
    splits = fit_and_transform(spec, {"train": sample, **extra})
    splits.train = StreamSplit(source, splits.preprocessing)
    return splits
