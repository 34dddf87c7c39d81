"""Keras' weight and activity regularizers: `{l1: a}`, `{l2: b}`, `{l1: a, l2: b}`.

The penalty is Keras': `l1 * sum|w| + l2 * sum(w**2)` (no factor 1/2). The names `l1` and `l2`
alone mean Keras' default factor 0.01, as in Keras. The names `l1_l2` and `l1l2` are refused:
Keras' docstring gives them 0.01 each, but Keras 3 itself refuses `l1_l2` and gives `l1l2` no
penalty at all, so a recipe that names them could mean either; the message shows the mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field

from kcli.registry import Spec

if TYPE_CHECKING:
    import torch

_KERAS_DEFAULT_FACTOR = 0.01
_BY_NAME = {
    "l1": {"l1": _KERAS_DEFAULT_FACTOR},
    "l2": {"l2": _KERAS_DEFAULT_FACTOR},
}
_AMBIGUOUS = ("l1_l2", "l1l2")


class RegularizerSpec(Spec):
    """An L1/L2 penalty on a weight (or on a layer's output, as an activity regularizer)."""

    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)

    def penalty(self, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.new_zeros(())
        if self.l1:
            total = total + self.l1 * tensor.abs().sum()
        if self.l2:
            total = total + self.l2 * tensor.square().sum()
        return total


def _from_name(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    name = value.lower()
    if name in _BY_NAME:
        return dict(_BY_NAME[name])
    if name in _AMBIGUOUS:
        raise ValueError(
            f"{value!r} is ambiguous (Keras 3 refuses 'l1_l2' and gives 'l1l2' no penalty): "
            "write both factors, e.g. {l1: 0.01, l2: 0.01}"
        )
    raise ValueError(f"unknown regularizer {value!r}: use 'l1', 'l2' or {{l1: a, l2: b}}")


RegularizerRef = Annotated[RegularizerSpec, BeforeValidator(_from_name)]
"""The type of a `*_regularizer:` field."""
