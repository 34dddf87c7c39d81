"""Keras' weight and activity regularizers: `{l1: a}`, `{l2: b}`, `{l1: a, l2: b}`.

The penalty is Keras': `l1 * sum|w| + l2 * sum(w**2)` (no factor 1/2). The names `l1`, `l2` and
`l1_l2` alone mean Keras' default factor 0.01.
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
    "l1_l2": {"l1": _KERAS_DEFAULT_FACTOR, "l2": _KERAS_DEFAULT_FACTOR},
    "l1l2": {"l1": _KERAS_DEFAULT_FACTOR, "l2": _KERAS_DEFAULT_FACTOR},
}


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
    if isinstance(value, str) and value.lower() in _BY_NAME:
        return dict(_BY_NAME[value.lower()])
    return value


RegularizerRef = Annotated[RegularizerSpec, BeforeValidator(_from_name)]
"""The type of a `*_regularizer:` field."""
