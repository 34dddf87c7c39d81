"""Targets: turning raw labels into numbers, and what the trainer needs to know about them.

Raw y becomes: int64 class indices (integer labels as given; strings via class names sorted
alphabetically, fitted on the train split), or float32 values. `TargetInfo` describes the final
y of every split together, so the trainer can check it against the model's output and the loss
before training starts (`check_output`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kcli.errors import KcliError, Loc

TARGET_KINDS = ("classes", "onehot", "binary", "continuous")


def is_label_strings(y: np.ndarray) -> bool:
    """True when y holds class names (strings) rather than numbers."""
    return y.dtype.kind in "OUS"


def fit_class_names(y: np.ndarray | None, known: list[str] | None) -> list[str] | None:
    """Class names: a source's own (sklearn), or the sorted distinct strings of train y."""
    if known is not None:
        return list(known)
    if y is not None and is_label_strings(y):
        return sorted({str(v) for v in y.ravel()})
    return None


def encode_y(
    y: np.ndarray,
    class_names: list[str] | None,
    where: str,
    loc: Loc,
    row_label: Callable[[int], str] | None = None,
) -> np.ndarray:
    """Raw labels -> int64 class indices or float32 values (see the module doc)."""
    label = row_label or (lambda i: f"sample {i}")
    if is_label_strings(y):
        if class_names is None:
            raise KcliError(f"y of {where} holds strings but the run has no class names", loc=loc)
        index = {name: i for i, name in enumerate(class_names)}
        flat = [str(v) for v in y.ravel()]
        unknown = [i for i, v in enumerate(flat) if v not in index]
        if unknown:
            first = unknown[0]
            raise KcliError(
                f"label '{flat[first]}' ({label(first)} of {where}) is not a class of the train "
                f"split (classes: {', '.join(class_names)})",
                loc=loc,
            )
        return np.array([index[v] for v in flat], dtype=np.int64).reshape(y.shape)
    if y.dtype.kind == "b" or y.dtype.kind in "iu":
        out = y.astype(np.int64)
        if out.size and out.min() < 0:
            first = int(np.argwhere(out.reshape(len(out), -1) < 0)[0][0])
            raise KcliError(
                f"class labels must be >= 0, found {int(out.min())} ({label(first)} of {where})",
                loc=loc,
            )
        return out
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            rows = np.unique(np.argwhere(bad.reshape(len(y), -1))[:, 0])
            shown = ", ".join(label(int(i)) for i in rows[:5]) + (" ..." if len(rows) > 5 else "")
            raise KcliError(f"y of {where} has {int(bad.sum())} NaN/inf value(s): {shown}", loc=loc)
        return y.astype(np.float32)
    raise KcliError(f"y of {where} has dtype {y.dtype}; expected numbers or strings", loc=loc)


@dataclass(frozen=True)
class TargetInfo:
    """What y is, over all splits: kind, classes, per-sample shape and value range.

    kind: "classes" (int64 indices), "onehot" (float rows of 0/1 summing to 1), "binary"
    (floats that are all 0 or 1), "continuous" (any other floats). Integer labels are "classes"
    even when a regression loss will read them as numbers: the loss decides, this only reports.
    """

    kind: str
    n_classes: int | None
    class_names: list[str] | None
    shape: tuple[int, ...]
    value_range: tuple[float, float]
    integer_valued: bool
    loc: Loc = ("data",)

    def check_output(
        self, output_shape: tuple[int, ...], *, sparse: bool, sequence_labels: bool = False
    ) -> None:
        """Raise a KcliError if y cannot be compared with a model output of this shape.

        `output_shape` excludes the batch axis; `sparse` is True for losses taking class
        indices (sparse_categorical_crossentropy); `sequence_labels` for ctc, whose y is one
        row of labels (0 = blank/padding) against an output of shape (time, classes). Labels out
        of range are caught here, before training, instead of as a device-side assertion.
        """
        low, high = self.value_range
        units = output_shape[-1] if output_shape else 1
        if sequence_labels:
            if not self.integer_valued or len(self.shape) != 1:
                raise KcliError(
                    f"the loss takes rows of integer labels (padded with 0) but y is {self.kind} "
                    f"of shape {self.shape} per sample",
                    loc=self.loc,
                )
            if low < 0 or high >= units:
                raise KcliError(
                    f"labels run from {low:g} to {high:g} but the model's output has {units} "
                    f"units, so labels must be in 1..{units - 1} (0 is the blank/padding)",
                    loc=self.loc,
                )
            return
        if sparse:
            if not self.integer_valued:
                raise KcliError(
                    f"the loss takes class indices but y is {self.kind} (not whole numbers)",
                    loc=self.loc,
                )
            if self.shape not in (tuple(output_shape[:-1]), (*output_shape[:-1], 1)):
                raise KcliError(
                    f"the loss takes one class index per output row: y of shape {self.shape} "
                    f"does not fit an output of shape {tuple(output_shape)}",
                    loc=self.loc,
                )
            if low < 0 or high >= units:
                raise KcliError(
                    f"labels run from {low:g} to {high:g} but the model's output has {units} "
                    f"units, so labels must be in 0..{units - 1}",
                    loc=self.loc,
                )
            return
        if self.kind == "classes" and units == 1 and self.shape in ((), (1,)):
            if low < 0 or high > 1:
                raise KcliError(
                    f"a single output unit needs labels 0 or 1, but labels run from {low:g} to "
                    f"{high:g}",
                    loc=self.loc,
                )
            return
        if self.kind == "classes" and units > 1 and self.shape in ((), (1,)):
            raise KcliError(
                f"y holds class indices but the loss expects {units} values per sample: use "
                f"the sparse_ form of the loss, or add the preprocess step {{one_hot: {units}}}",
                loc=self.loc,
            )
        size = math.prod(self.shape)
        if size != math.prod(output_shape):
            raise KcliError(
                f"y has shape {self.shape} per sample but the model's output has shape "
                f"{tuple(output_shape)}",
                loc=self.loc,
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_classes": self.n_classes,
            "class_names": self.class_names,
            "shape": list(self.shape),
            "value_range": list(self.value_range),
            "integer_valued": self.integer_valued,
            "loc": list(self.loc),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetInfo:
        return cls(
            kind=data["kind"],
            n_classes=data["n_classes"],
            class_names=data["class_names"],
            shape=tuple(data["shape"]),
            value_range=(float(data["value_range"][0]), float(data["value_range"][1])),
            integer_valued=bool(data["integer_valued"]),
            loc=tuple(data.get("loc", ("data",))),
        )


def count_classes(ys: list[np.ndarray], class_names: list[str] | None) -> int | None:
    """The number of classes of integer labels over all splits (max label + 1), else None."""
    labels = [y for y in ys if y is not None and y.dtype.kind in "iu" and y.size]
    if not labels:
        return len(class_names) if class_names else None
    count = max(int(y.max()) for y in labels) + 1
    return max(count, len(class_names or ()))


def describe_target(
    ys: list[np.ndarray], class_names: list[str] | None, n_classes: int | None, loc: Loc
) -> TargetInfo:
    """The TargetInfo of the final (preprocessed) y of every split."""
    ys = [y for y in ys if y is not None and len(y)]
    shape = tuple(ys[0].shape[1:])
    low = min(float(y.min()) for y in ys)
    high = max(float(y.max()) for y in ys)
    integer_valued = all(y.dtype.kind in "iu" or bool(np.all(np.floor(y) == y)) for y in ys)
    if ys[0].dtype.kind in "iu":
        kind, classes = "classes", n_classes
    elif all(np.isin(y, (0.0, 1.0)).all() for y in ys):
        one_per_row = len(shape) >= 1 and shape[-1] > 1
        one_per_row = one_per_row and all(np.all(y.sum(axis=-1) == 1) for y in ys)
        kind = "onehot" if one_per_row else "binary"
        classes = shape[-1] if one_per_row else (2 if shape in ((), (1,)) else None)
    else:
        kind, classes = "continuous", None
    names = class_names if kind in ("classes", "onehot") else None
    return TargetInfo(kind, classes, names, shape, (low, high), integer_valued, loc)
