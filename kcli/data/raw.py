"""What a source gives before anything is fitted: `RawData` arrays, or a `StreamSource` of batches.

Shared by every reader (sources.py, csvfile.py) and by the splitting that follows (splits.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.data.user_code import iterate_user_batches
from kcli.errors import KcliError, Loc


@dataclass
class RawData:
    """Arrays as a source gave them, before encoding and preprocessing.

    `x` is an array, or a dict input-name -> array (multi-input), or, for a CSV (`columns` set),
    a dict column -> values (float64 numbers, or strings for `categorical` and `strings`
    columns). `rows` are the samples' positions in the source, so messages can point at them
    after splitting.
    """

    x: Any
    y: Any  # an array, or a mapping output name -> array (several outputs), or None
    where: str  # names the source in messages: a file path, "sklearn:iris", ...
    loc: Loc  # the recipe path of this source's options, e.g. ("data",) or ("data", "test")
    sample_weight: Any = None  # an array, or a mapping output name -> array
    columns: list[str] | None = None
    categorical: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)  # CSV: string columns, inputs of their own
    class_names: list[str] | None = None
    first_line: int | None = None  # CSV: file line of row 0, so messages say "line N"
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else 0

    def row_label(self, index: int) -> str:
        """How messages name sample `index` of this data: a CSV line, or a sample number."""
        original = int(self.rows[index]) if self.rows is not None else index
        if self.first_line is not None:
            return f"line {original + self.first_line}"
        return f"sample {original}"

    def take(self, index: np.ndarray) -> RawData:
        """The samples at `index` (a split)."""
        return RawData(
            x=take(self.x, index),
            y=None if self.y is None else take(self.y, index),
            where=self.where,
            loc=self.loc,
            sample_weight=None if self.sample_weight is None else take(self.sample_weight, index),
            columns=self.columns,
            categorical=self.categorical,
            strings=self.strings,
            class_names=self.class_names,
            first_line=self.first_line,
            rows=self.rows[index],
        )


@dataclass
class StreamSource:
    """A python source that gave an iterable of (x, y[, sample_weight]) batches.

    `open()` gives a fresh iterator: the first time the iterable the function already returned,
    after that the result of calling the function again.
    """

    call: Callable[[], Any]
    first: Any
    where: str
    loc: Loc
    steps_per_epoch: int | None = None
    outputs: list[str] | None = None  # the model's outputs when several (y keyed by them)

    def open(self) -> Iterator[Any]:
        """The batches; the user's code failing while yielding one is reported as bad input."""
        result, self.first = (self.first, None) if self.first is not None else (self.call(), None)
        if not is_batch_iterable(result):
            raise KcliError(
                f"{self.where} returned {type(result).__name__} when called again; expected an "
                "iterable of (x, y) batches as the first time",
                loc=(*self.loc, "source"),
            )
        return iterate_user_batches(result, self.where, (*self.loc, "source"))


def take(x: Any, index: np.ndarray) -> Any:
    """Rows `index` of an array or of each array of a dict."""
    if isinstance(x, dict):
        return {name: values[index] for name, values in x.items()}
    return x[index]


def n_samples(x: Any) -> int:
    """The length of axis 0 (all inputs of a dict have the same one, checked on reading)."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def check_lengths(raw: RawData) -> RawData:
    """Check that x (every input), y and sample weights have the same number of samples."""
    where, loc = raw.where, raw.loc
    arrays = raw.x if isinstance(raw.x, dict) else {"x": raw.x}
    lengths = {}
    for name, values in arrays.items():
        if np.ndim(values) == 0:
            raise KcliError(f"{where}: x '{name}' is a single value, not samples", loc=(*loc, "x"))
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"'{k}' {v}" for k, v in lengths.items())
        raise KcliError(f"{where}: x inputs have different lengths ({detail})", loc=(*loc, "x"))
    n = next(iter(lengths.values()))
    for what, given in (("y", raw.y), ("sample_weight", raw.sample_weight)):
        # y and the weights may be keyed by output (a model of several outputs).
        named = given.items() if isinstance(given, dict) else [(None, given)]
        for output, values in named:
            if values is not None and (np.ndim(values) == 0 or len(values) != n):
                got = "a single value" if np.ndim(values) == 0 else f"{len(values)} samples"
                key = "target" if raw.columns is not None else "y"
                label = what if output is None else f"{what} of output '{output}'"
                raise KcliError(
                    f"{where}: x has {n} samples but {label} has {got}; they must match",
                    loc=(*loc, key if what == "y" else "source"),
                )
    if n == 0:
        raise KcliError(f"{where} has no samples", loc=(*loc, "source"))
    raw.rows = np.arange(n)
    return raw


def is_batch_iterable(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | dict | np.ndarray)
