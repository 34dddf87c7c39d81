"""Shape arithmetic shared by the windowed layers (convolutions, pooling, padding): Keras'
int-or-tuple arguments and the output length of one axis. Pure Python, no torch.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Size = PositiveInt | list[PositiveInt]
"""Keras' int-or-tuple arguments: one int for every spatial axis, or one per axis."""


def as_tuple(value: int | list[int], rank: int) -> tuple[int, ...]:
    """An int-or-list argument as one int per spatial axis."""
    return (value,) * rank if isinstance(value, int) else tuple(value)


def check_rank(name: str, value: int | list[int] | None, rank: int) -> None:
    """Raise (for pydantic) unless a list argument has one value per spatial axis."""
    if isinstance(value, list) and len(value) != rank:
        axes = "axis" if rank == 1 else "axes"
        raise ValueError(
            f"{name} needs one int or {rank} ints (one per spatial {axes}), got {value}"
        )


def conv_output_length(n: int | None, kernel: int, stride: int, dilation: int, padding: str):
    """Keras' output length of one axis: valid floor((n-d(k-1)-1)/s)+1, same/causal ceil(n/s)."""
    if n is None:
        return None
    if padding == "valid":
        return (n - dilation * (kernel - 1) - 1) // stride + 1
    return math.ceil(n / stride)
