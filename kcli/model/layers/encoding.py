"""Categorical preprocessing layers: CategoryEncoding, Hashing, Discretization.

Weightless (Discretization's learned boundaries are state saved with the weights, but no Keras
weight), with Keras' output modes: `int` (an index per value), `one_hot` (a vector per value,
replacing a last axis of size 1), `multi_hot` and `count` (one vector per
sample: the tokens along the sample's first axis are reduced, as Keras' torch backend
computes it, so (tokens,) gives (depth,) and (tokens, k) gives (k, depth)). The ids may be
stored as floats holding whole numbers. Sparse outputs are refused: kcli's tensors are dense.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kcli.model.layers.base import LayerSpec, Shape, require_rank

if TYPE_CHECKING:
    from torch import nn

OutputMode = Literal["int", "one_hot", "multi_hot", "count"]
UInt64 = Annotated[int, Field(ge=0, lt=2**64)]


def encoded_shape(layer: str, shape: Shape, mode: str, depth: int) -> Shape:
    """The output shape of Keras' encode_categorical_inputs for a sample of `shape`."""
    if mode == "int":
        return shape
    if mode == "one_hot":
        kept = shape[:-1] if shape and shape[-1] == 1 else shape
        return (*kept, depth)
    require_rank(layer, shape, (1, None), f"tokens along the first axis for {mode}")
    return (*shape[1:], depth)


class _Encoding(LayerSpec):
    """Keras' `sparse` argument, accepted only as false."""

    sparse: bool = Field(False, description="Keras' sparse output; refused (dense only).")

    @field_validator("sparse")
    @classmethod
    def _dense_only(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "sparse outputs are not supported (kcli's tensors are dense): leave sparse false"
            )
        return value


class CategoryEncoding(_Encoding):
    """Integer ids in [0, num_tokens) -> one-hot, multi-hot or count vectors (float32).

    An id outside the range encodes as zeros (Keras' torch backend raises for one >= num_tokens).
    """

    type: Literal["CategoryEncoding"] = "CategoryEncoding"
    num_tokens: int = Field(gt=0, description="How many ids: the output's last axis.")
    output_mode: Literal["one_hot", "multi_hot", "count"] = Field(
        "multi_hot", description="one_hot per id, or multi_hot/count per sample."
    )

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return encoded_shape("CategoryEncoding", shape, self.output_mode, self.num_tokens)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.encoding import CategoryEncodingModule

        return CategoryEncodingModule(self.num_tokens, self.output_mode)


class Hashing(_Encoding):
    """Hashes integer values (floats are truncated) into `num_bins` bins, exactly as Keras does:
    FarmHash64 of each value's decimal string, or SipHash-2-4 keyed by `salt`, modulo the bins.

    With `mask_value`, that value goes to bin 0 and the others to 1..num_bins-1. String inputs
    are not supported (kcli's inputs are numeric tensors). `int` mode gives int64.
    """

    type: Literal["Hashing"] = "Hashing"
    num_bins: int = Field(gt=0, lt=2**31, description="How many bins, the mask's included.")
    mask_value: int | None = Field(None, description="A value hashed to bin 0; none by default.")
    salt: UInt64 | tuple[UInt64, UInt64] | None = Field(
        None, description="SipHash's key (one int s means the pair s, s); none: FarmHash64."
    )
    output_mode: OutputMode = Field("int", description="int (the bin), or an encoding of it.")

    def salt_key(self) -> tuple[int, int] | None:
        if self.salt is None:
            return None
        return (self.salt, self.salt) if isinstance(self.salt, int) else tuple(self.salt)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if self.output_mode == "one_hot" and shape and shape[-1] == 1:
            shape = shape[:-1]  # Keras' Hashing drops a last axis of 1, then encodes
        return encoded_shape("Hashing", shape, self.output_mode, self.num_bins)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.encoding import HashingModule

        return HashingModule(self.num_bins, self.mask_value, self.salt_key(), self.output_mode)


class Discretization(_Encoding):
    """Buckets values by `bin_boundaries`: bin i holds the values from boundary i-1 (included)
    up to boundary i, so n boundaries make n + 1 bins. `int` mode gives the bin (int32, as
    Keras does).

    With `num_bins` instead, the boundaries are learned on the train split before training
    (Keras' adapt: its approximate quantiles, accurate to `epsilon`) and saved with the weights.
    """

    type: Literal["Discretization"] = "Discretization"
    bin_boundaries: Annotated[list[float], Field(min_length=1)] | None = Field(
        None, description="The bins' edges, in increasing order; or give num_bins."
    )
    num_bins: int | None = Field(
        None, ge=1, le=2**20, description="How many bins to learn on the train split."
    )
    epsilon: float = Field(
        0.01, gt=0, le=1, description="The quantiles' accuracy when learning num_bins."
    )
    output_mode: OutputMode = Field("int", description="int (the bin), or an encoding of it.")

    @model_validator(mode="after")
    def _boundaries_or_bins(self):
        if self.num_bins is not None and self.bin_boundaries is not None:
            raise ValueError("give bin_boundaries or num_bins, not both")
        if self.num_bins is None and self.bin_boundaries is None:
            raise ValueError(
                "give bin_boundaries (the bins' edges in increasing order) or num_bins (to "
                "learn them on the train split)"
            )
        edges = self.bin_boundaries or []
        if any(b < a for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError(f"bin_boundaries must be in increasing order, got {edges}")
        return self

    def depth(self) -> int:
        """How many bins: given boundaries + 1, or what adapt makes of num_bins: NumPy's
        arange(0, 1, 1/n) that Keras' quantiles step through has n + 1 entries for some n
        (49, 98, ...), and Keras then learns one boundary more."""
        if self.bin_boundaries is not None:
            return len(self.bin_boundaries) + 1
        return math.ceil(1.0 / (1.0 / self.num_bins))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return encoded_shape("Discretization", shape, self.output_mode, self.depth())

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.encoding import DiscretizationModule

        return DiscretizationModule(
            self.bin_boundaries, self.output_mode, self.depth() - 1, self.num_bins, self.epsilon
        )
