"""The x preprocess steps' math: fit each on the train x, apply it with the fitted state.

One pair of functions per step type (`X_STEPS`); the states are plain JSON values, kept in the
run's preprocess.json by `kcli.data.preprocess.Preprocessing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from kcli.errors import KcliError, Loc


def _reduce_axes(axis: int | list[int] | None, ndim: int, where: str, loc: Loc) -> tuple:
    """The axes statistics are taken over: all but the kept `axis` (batch axis 0 always)."""
    if axis is None:
        return tuple(range(ndim))
    kept = set()
    for a in [axis] if isinstance(axis, int) else axis:
        if not -ndim < a < ndim or a % ndim == 0:
            raise KcliError(f"axis {a} does not fit {where} of rank {ndim}", loc=(*loc, "axis"))
        kept.add(a % ndim)
    return tuple(i for i in range(ndim) if i not in kept)


def _fit_standardize(step: Any, x: np.ndarray, where: str, loc: Loc) -> dict:
    axes = _reduce_axes(step.axis, x.ndim, where, loc)
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x.std(axis=axes, keepdims=True, dtype=np.float64)
    # A constant feature keeps scale 1 (see Standardize's docstring).
    std = np.where(std < 1e-7 * np.maximum(np.abs(mean), 1.0), 1.0, std)
    return {"mean": mean.tolist(), "std": std.tolist()}


def _apply_standardize(step: Any, state: dict, x: np.ndarray) -> np.ndarray:
    return ((x - np.asarray(state["mean"])) / np.asarray(state["std"])).astype(x.dtype)


def _fit_minmax(step: Any, x: np.ndarray, where: str, loc: Loc) -> dict:
    axes = _reduce_axes(step.axis, x.ndim, where, loc)
    low = x.min(axis=axes, keepdims=True).astype(np.float64)
    high = x.max(axis=axes, keepdims=True).astype(np.float64)
    return {"min": low.tolist(), "max": high.tolist()}


def _apply_minmax(step: Any, state: dict, x: np.ndarray) -> np.ndarray:
    low, high = np.asarray(state["min"]), np.asarray(state["max"])
    span = np.where(high > low, high - low, 1.0)  # a constant feature maps to the low end
    a, b = step.feature_range
    return ((x - low) / span * (b - a) + a).astype(x.dtype)


def _fit_reshape(step: Any, x: np.ndarray, where: str, loc: Loc) -> dict:
    size = math.prod(x.shape[1:])
    known = math.prod(d for d in step.shape if d != -1)
    shape = list(step.shape)
    if -1 in shape and size % known == 0:
        shape[shape.index(-1)] = size // known
    if math.prod(shape) != size or -1 in shape:
        raise KcliError(
            f"reshape {list(step.shape)} does not fit {where}: a sample has shape "
            f"{tuple(x.shape[1:])}, {size} values",
            loc=loc,
        )
    return {"shape": shape}


def _apply_reshape(step: Any, state: dict, x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), *state["shape"])


def _fit_nothing(step: Any, x: np.ndarray, where: str, loc: Loc) -> dict:
    return {}


def _apply_scale(step: Any, state: dict, x: np.ndarray) -> np.ndarray:
    return (x * step.scale + step.offset).astype(x.dtype)


def _apply_cast(step: Any, state: dict, x: np.ndarray) -> np.ndarray:
    return x.astype(step.dtype)


# x steps: type name -> (fit on the train x, apply with the fitted state).
X_STEPS: dict[str, tuple[Callable, Callable]] = {
    "standardize": (_fit_standardize, _apply_standardize),
    "minmax": (_fit_minmax, _apply_minmax),
    "reshape": (_fit_reshape, _apply_reshape),
    "scale": (_fit_nothing, _apply_scale),
    "cast": (_fit_nothing, _apply_cast),
}
