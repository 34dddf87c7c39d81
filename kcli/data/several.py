"""Targets of a model with several outputs: y (and sample weights) keyed by output name.

A model of one output has one y array, as always. A model of several outputs has y as a
mapping output name -> array, in the order of `model.outputs`, from:
  - `.npz`: `y: {output: array-name, ...}` or `y: [array-name, ...]` (in output order);
  - `.npy`: `y:` the same forms with .npy paths;
  - `.csv`: `target: {output: column, ...}` or `target: [column, ...]`;
  - `python:` a function returning (x, {output: y, ...}) or (x, [y, ...]).
`sample_weight` is one array for every output, or a mapping output name -> array, as Keras'
fit takes it. A target missing for an output, or given for a name that is not one, is exit 2
naming the output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcli.errors import KcliError, Loc, did_you_mean


def several(outputs: list[str] | None) -> bool:
    return outputs is not None and len(outputs) > 1


def by_output(
    given: Any, outputs: list[str] | None, loc: Loc, what: str, *, required: bool = True
) -> dict[str, Any] | None:
    """A recipe value naming each output's source (a name, a list or a mapping) as a mapping
    output -> name; None when the model has one output and `given` is one name."""
    if given is None:
        return None
    if not several(outputs):
        if isinstance(given, dict | list) and len(given) == 1:
            only = next(iter(given.values())) if isinstance(given, dict) else given[0]
            return {"": only}  # one output: its y, whatever the key says
        if isinstance(given, dict | list):
            raise KcliError(f"names {len(given)} {what}s, but the model has one output", loc=loc)
        return None
    if isinstance(given, list):
        if len(given) != len(outputs):
            raise KcliError(
                f"names {len(given)} {what}s but the model has {len(outputs)} outputs "
                f"({', '.join(outputs)}): one per output, in that order",
                loc=loc,
            )
        return dict(zip(outputs, given, strict=True))
    if isinstance(given, dict):
        check_keys(given, outputs, loc, what, required=required)
        return {name: given[name] for name in outputs if name in given}
    if not required:
        return dict.fromkeys(outputs, given)  # one value for every output
    raise KcliError(
        f"the model has {len(outputs)} outputs ({', '.join(outputs)}): give one {what} per "
        f"output as a mapping output -> {what} (or a list in output order)",
        loc=loc,
    )


def weight_names(given: Any, outputs: list[str] | None, loc: Loc) -> dict[str, str]:
    """`sample_weight:` of a source as output -> name (\"\" for one array for every output)."""
    if given is None:
        return {}
    if isinstance(given, str):
        return {"": given}
    return by_output(given, outputs, loc, "sample weight", required=False) or {}


def single_or_mapping(found: dict[str, Any]) -> Any:
    """What `by_output` keyed `""` (one array for every output) as that array; a mapping by
    output as itself; nothing as None."""
    if not found:
        return None
    return found[""] if set(found) == {""} else found


def check_keys(
    given: dict, outputs: list[str], loc: Loc, what: str, *, required: bool = True
) -> None:
    """Every key an output name; with `required`, every output given."""
    for key in given:
        if key not in outputs:
            raise KcliError(
                f"'{key}' is not an output of the model{did_you_mean(str(key), outputs)}; its "
                f"outputs are {', '.join(outputs)}",
                loc=(*loc, key) if isinstance(key, str) else loc,
            )
    missing = [name for name in outputs if name not in given]
    if required and missing:
        raise KcliError(f"no {what} for output(s) {', '.join(missing)}", loc=loc)


def targets_from_result(y: Any, outputs: list[str] | None, where: str, loc: Loc) -> Any:
    """The y a python function returned, as an array or (several outputs) a mapping."""
    if not several(outputs):
        if isinstance(y, dict) and len(y) == 1:
            return np.asarray(next(iter(y.values())))
        return np.asarray(y)
    if isinstance(y, list | tuple) and len(y) == len(outputs):
        return {name: np.asarray(v) for name, v in zip(outputs, y, strict=True)}
    if isinstance(y, dict):
        check_keys(y, outputs, loc, f"target in what {where} returned")
        return {name: np.asarray(y[name]) for name in outputs}
    raise KcliError(
        f"{where} returned one y, but the model has {len(outputs)} outputs "
        f"({', '.join(outputs)}): return a dict output -> y, or a list in output order",
        loc=loc,
    )


def weights_from_result(w: Any, outputs: list[str] | None, where: str, loc: Loc) -> Any:
    """Sample weights a python function returned: one array, or a mapping output -> array."""
    if w is None:
        return None
    if isinstance(w, dict):
        if not several(outputs):
            raise KcliError(f"{where} returned sample weights by output for one output", loc=loc)
        check_keys(w, outputs, loc, "sample weight", required=False)
        return {name: np.asarray(v, np.float32) for name, v in w.items()}
    return np.asarray(w, np.float32)


def items(values: Any) -> list[tuple[str | None, Any]]:
    """(output name, array) pairs: one pair named None for a single array."""
    if isinstance(values, dict):
        return list(values.items())
    return [(None, values)]
