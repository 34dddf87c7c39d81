"""Preprocessing fitted on the train split, kept as plain JSON, re-applied to any new data.

`Preprocessing` holds everything learned from the train split: the categories of CSV columns
(one-hot encoded in place, unseen categories give all-zero rows), the class names of string
labels, and each recipe step with its fitted state (means, scales, min/max, shapes). Steps run
in recipe order; each is fitted on the train x as the steps before it left it. With a
multi-input x, a step applies to every input (each with its own statistics) or to `input`.
CSV string columns (`data.strings`) are inputs of their own, encoded to ids with the vocabulary
their model layer adapted on the train split (kcli.data.text); the numeric columns beside them
form the input `features`, which the steps apply to.
`to_json()` / `from_json()` round-trip it exactly, so `eval`/`predict` transform new data the
way training did (the run's `preprocess.json`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from kcli.data.steps import PreprocessStep, StepRef
from kcli.data.targets import TargetInfo, encode_y
from kcli.data.x_steps import X_STEPS
from kcli.errors import KcliError, Loc

SINGLE_INPUT = "input"  # the name of x when it is one array (RECIPE.md's default input name)
FEATURES_INPUT = "features"  # a CSV's numeric columns beside string columns (data.strings)
_STEP_ADAPTER = TypeAdapter(StepRef)
_FORMAT = 1


def one_hot(y: np.ndarray, num_classes: int, where: str, loc: Loc) -> np.ndarray:
    """Class indices -> float32 one-hot rows (a trailing axis of size 1 is dropped first)."""
    if y.dtype.kind not in "iu":
        raise KcliError(f"one_hot needs integer class labels; y of {where} is {y.dtype}", loc=loc)
    if y.ndim >= 2 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise KcliError(
            f"labels of {where} run from {int(y.min())} to {int(y.max())}, outside one_hot's "
            f"{num_classes} classes (0..{num_classes - 1})",
            loc=loc,
        )
    return np.eye(num_classes, dtype=np.float32)[y]


def check_finite(
    x: np.ndarray,
    name: str,
    where: str,
    loc: Loc,
    row_label: Callable[[int], str],
    columns: list[str] | None = None,
) -> None:
    """Raise a KcliError saying how many NaN/inf values x has and where the first ones are."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    spots = []
    for position in np.argwhere(bad)[:5]:
        row, rest = int(position[0]), tuple(int(p) for p in position[1:])
        if columns is not None and len(rest) == 1:
            spots.append(f"{row_label(row)} column '{columns[rest[0]]}'")
        else:
            spots.append(f"{row_label(row)} at {rest}" if rest else row_label(row))
    more = " ..." if int(bad.sum()) > 5 else ""
    counts = " and ".join(
        f"{n} {what}" for n, what in ((n_nan, "NaN (missing)"), (n_inf, "inf")) if n
    )
    label = "x" if name == SINGLE_INPUT else f"x '{name}'"
    raise KcliError(f"{label} of {where} has {counts} value(s): {'; '.join(spots)}{more}", loc=loc)


class Preprocessing:
    """The fitted transform of x and y; build with `fit`, save with `to_json`."""

    def __init__(
        self,
        steps: list[PreprocessStep],
        states: list[dict[str, dict]],
        *,
        inputs: list[str] | None,
        raw_shapes: dict[str, tuple[int, ...]],
        table: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        target: TargetInfo | None = None,
        output_class_names: dict[str, list[str] | None] | None = None,
        targets: dict[str, TargetInfo] | None = None,
        strings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.steps = steps
        self.states = states  # per step: input name (or "y") -> fitted state
        self.inputs = inputs  # None: x is one array
        self.raw_shapes = raw_shapes
        self.table = table  # CSV: {"columns": [...], "categories": {column: [values]}}
        self.class_names = class_names
        self.target = target
        # A model of several outputs: y is keyed by output, each with its own class names
        # and target (kcli.data.several); `class_names` and `target` are then None.
        self.output_class_names = output_class_names
        self.targets = targets
        # String columns (kcli.data.text): input -> its layer's fitted vocabulary.
        self.strings = strings

    @classmethod
    def fit(
        cls,
        steps: list[PreprocessStep],
        x: Any,
        y: np.ndarray | None,
        *,
        columns: list[str] | None = None,
        categorical: Sequence[str] = (),
        class_names: list[str] | None = None,
        n_classes: int | None = None,
        where: str = "the train split",
        loc: Loc = ("data",),
        row_label: Callable[[int], str] | None = None,
        strings: dict[str, dict[str, Any]] | None = None,
    ) -> Preprocessing:
        """Fit on the train split: `x` raw, `y` already encoded (see targets.encode_y);
        `strings` the string columns' fitted state (kcli.data.text.fit_strings)."""
        table = None
        if columns is not None:
            categories = {c: sorted({str(v) for v in x[c]}) for c in categorical}
            table = {"columns": list(columns), "categories": categories}
        inputs = sorted(x) if isinstance(x, dict) and table is None else None
        prep = cls(
            [],
            [],
            inputs=inputs,
            raw_shapes={},
            table=table,
            class_names=class_names,
            strings=strings or None,
        )
        arrays = prep._encode_x(x, where, (*loc, "source"))
        prep.raw_shapes = {name: tuple(a.shape[1:]) for name, a in arrays.items()}
        if prep.strings:
            from kcli.data.text import STRING_SHAPE

            names = [*arrays, *prep.strings]
            prep.inputs = sorted(names) if len(names) > 1 else None
            prep.raw_shapes.update(dict.fromkeys(prep.strings, STRING_SHAPE))
        label = row_label or (lambda i: f"sample {i}")
        for name, values in arrays.items():
            check_finite(values, name, where, (*loc, "source"), label, prep.feature_names())
        for index, step in enumerate(steps):
            step_loc = (*loc, "preprocess", index)
            if step.target:
                if y is None:
                    raise KcliError("one_hot needs y, and this data has none", loc=step_loc)
                count = step.num_classes or n_classes
                if count is None:
                    raise KcliError(
                        f"one_hot needs integer class labels; y of {where} is {y.dtype}",
                        loc=step_loc,
                    )
                y = one_hot(y, count, where, step_loc)
                prep.steps.append(step)
                prep.states.append({"y": {"num_classes": count}})
                continue
            fit, apply = X_STEPS[step.type]
            state = {}
            for name in prep._step_inputs(step, arrays, step_loc):
                state[name] = fit(step, arrays[name], f"x of {where}", step_loc)
                arrays[name] = apply(step, state[name], arrays[name])
            prep.steps.append(step)
            prep.states.append(state)
        return prep

    def _step_inputs(self, step: Any, arrays: dict[str, np.ndarray], loc: Loc) -> list[str]:
        if step.input is None and not arrays and self.strings:
            raise KcliError(
                f"{step.type} has no numeric input to apply to: the string columns "
                f"({', '.join(self.strings)}) are encoded by their layer",
                loc=loc,
            )
        if step.input is None:
            return list(arrays)
        if step.input not in arrays:
            raise KcliError(
                f"no input '{step.input}' (inputs: {', '.join(arrays)})", loc=(*loc, "input")
            )
        return [step.input]

    def _encode_x(self, x: Any, where: str, loc: Loc) -> dict[str, np.ndarray]:
        """Raw x -> float32 arrays by input name (CSV columns one-hot encoded as fitted)."""
        if self.table is not None:
            if not self.table["columns"]:  # only string columns: no numeric input
                return {}
            name = FEATURES_INPUT if self.strings else SINGLE_INPUT
            return {name: self._encode_table(x, where, loc)}
        if self.inputs is not None:
            if not isinstance(x, dict) or sorted(x) != self.inputs:
                got = sorted(x) if isinstance(x, dict) else "one array"
                raise KcliError(
                    f"x of {where} must have the inputs {self.inputs}, got {got}", loc=loc
                )
            return {name: _as_float(x[name], f"x '{name}' of {where}", loc) for name in x}
        if isinstance(x, dict):
            raise KcliError(f"x of {where} must be one array, got inputs {sorted(x)}", loc=loc)
        return {SINGLE_INPUT: _as_float(x, f"x of {where}", loc)}

    def _encode_table(self, x: Any, where: str, loc: Loc) -> np.ndarray:
        columns, categories = self.table["columns"], self.table["categories"]
        missing = [c for c in columns if not isinstance(x, dict) or c not in x]
        if missing:
            raise KcliError(f"{where} has no column(s) {', '.join(missing)}", loc=loc)
        parts = []
        for column in columns:
            values = np.asarray(x[column])
            if column in categories:
                known = {v: i for i, v in enumerate(categories[column])}
                codes = np.array([known.get(str(v), -1) for v in values])
                block = np.zeros((len(values), len(known)), dtype=np.float32)
                hit = codes >= 0  # an unseen category is an all-zero row
                block[np.flatnonzero(hit), codes[hit]] = 1.0
                parts.append(block)
            else:
                parts.append(_as_float(values, f"column '{column}' of {where}", loc)[:, None])
        return np.concatenate(parts, axis=1)

    def feature_names(self) -> list[str] | None:
        """CSV: the names of the encoded x columns (`color=red` for one-hot ones)."""
        if self.table is None:
            return None
        names = []
        for column in self.table["columns"]:
            cats = self.table["categories"].get(column)
            names += [f"{column}={c}" for c in cats] if cats is not None else [column]
        return names

    def transform_x(
        self,
        x: Any,
        where: str = "the input",
        loc: Loc = ("data",),
        row_label: Callable[[int], str] | None = None,
    ) -> Any:
        """Raw x -> what the model takes: an array, or a dict by input name (multi-input)."""
        arrays = self._encode_x(x, where, (*loc, "source"))
        label = row_label or (lambda i: f"sample {i}")
        for name, values in arrays.items():
            if tuple(values.shape[1:]) != self.raw_shapes[name]:
                raise KcliError(
                    f"x{'' if name == SINGLE_INPUT else f' {name!r}'} of {where} has samples of "
                    f"shape {tuple(values.shape[1:])}; the run was fitted on "
                    f"{self.raw_shapes[name]}",
                    loc=(*loc, "source"),
                )
            check_finite(values, name, where, (*loc, "source"), label, self.feature_names())
        for index, (step, state) in enumerate(zip(self.steps, self.states, strict=True)):
            if step.target:
                continue
            step_loc = ("data", "preprocess", index)
            fit, apply = X_STEPS[step.type]
            for name in self._step_inputs(step, arrays, step_loc):
                if step.type == "reshape":  # re-check: new data may not fit the shape
                    fit(step, arrays[name], f"x of {where}", step_loc)
                arrays[name] = apply(step, state[name], arrays[name])
        if self.strings:
            from kcli.data.text import encode_strings

            arrays.update(encode_strings(self.strings, x, where, (*loc, "source"), label))
        return next(iter(arrays.values())) if self.inputs is None else arrays

    def transform_y(
        self,
        y: np.ndarray,
        where: str = "the input",
        loc: Loc = ("data",),
        row_label: Callable[[int], str] | None = None,
    ) -> np.ndarray:
        """Raw labels -> int64 class indices or float32 values, then the y steps (one_hot).

        Several outputs: y is a mapping output -> labels, each encoded with its own classes."""
        if self.output_class_names is not None:
            return self._transform_several(y, where, loc, row_label)
        y = encode_y(np.asarray(y), self.class_names, where, loc, row_label)
        for index, (step, state) in enumerate(zip(self.steps, self.states, strict=True)):
            if step.target:
                y = one_hot(y, state["y"]["num_classes"], where, ("data", "preprocess", index))
        return y

    def _transform_several(self, y: Any, where: str, loc: Loc, row_label: Any) -> dict:
        outputs = list(self.output_class_names)
        if not isinstance(y, dict) or set(y) != set(outputs):
            given = sorted(y) if isinstance(y, dict) else "one array"
            raise KcliError(
                f"{where} gives targets {given}, but the model's outputs are {', '.join(outputs)}",
                loc=loc,
            )
        return {
            name: encode_y(
                np.asarray(y[name]),
                self.output_class_names[name],
                f"{where} (output '{name}')",
                loc,
                row_label,
            )
            for name in outputs
        }

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """The per-sample shape of each input after the steps (batch excluded)."""
        strings = self.strings or {}
        probe = {
            name: np.zeros((1, *shape), np.float32)
            for name, shape in self.raw_shapes.items()
            if name not in strings
        }
        for step, state in zip(self.steps, self.states, strict=True):
            if not step.target:
                _, apply = X_STEPS[step.type]
                for name in state:
                    probe[name] = apply(step, state[name], probe[name])
        shapes = {name: tuple(a.shape[1:]) for name, a in probe.items()}
        return {**shapes, **{name: self.raw_shapes[name] for name in strings}}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data: exactly what `from_json` needs to rebuild this transform."""
        return {
            "format": _FORMAT,
            "inputs": self.inputs,
            "raw_shapes": {k: list(v) for k, v in self.raw_shapes.items()},
            "table": self.table,
            "class_names": self.class_names,
            "steps": [
                {"step": step.model_dump(mode="json"), "state": state}
                for step, state in zip(self.steps, self.states, strict=True)
            ],
            "target": None if self.target is None else self.target.to_json(),
            "output_class_names": self.output_class_names,
            "targets": None
            if self.targets is None
            else {name: info.to_json() for name, info in self.targets.items()},
            "strings": self.strings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessing:
        if data.get("format") != _FORMAT:
            raise KcliError(f"unknown preprocessing format {data.get('format')!r}")
        return cls(
            [_STEP_ADAPTER.validate_python(item["step"]) for item in data["steps"]],
            [item["state"] for item in data["steps"]],
            inputs=data["inputs"],
            raw_shapes={k: tuple(v) for k, v in data["raw_shapes"].items()},
            table=data["table"],
            class_names=data["class_names"],
            target=None if data["target"] is None else TargetInfo.from_json(data["target"]),
            output_class_names=data.get("output_class_names"),
            targets=None
            if data.get("targets") is None
            else {name: TargetInfo.from_json(info) for name, info in data["targets"].items()},
            strings=data.get("strings"),
        )


def _as_float(values: Any, what: str, loc: Loc) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise KcliError(f"{what} has dtype {array.dtype}; expected numbers", loc=loc)
    if array.ndim == 0:
        raise KcliError(f"{what} is a single value, not samples", loc=loc)
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        # float64 values past float32's range would become inf in the cast (numpy only warns).
        limit = float(np.finfo(np.float32).max)
        beyond = np.isfinite(array) & (np.abs(array) > limit)
        if beyond.any():
            first = np.argwhere(beyond)[0]
            raise KcliError(
                f"{what} holds {array[tuple(first)]:g} (sample {int(first[0])}), beyond the "
                f"float32 range of the model (+-{limit:.4g}): it would become inf",
                loc=loc,
            )
    return array.astype(np.float32, copy=False)
