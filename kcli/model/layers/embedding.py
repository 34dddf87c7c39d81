"""Embedding: integer ids -> dense vectors from a learned table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import LayerSpec, Shape
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


class Embedding(LayerSpec):
    """Maps each integer id in [0, input_dim) to a learned vector of size `output_dim`.

    Any input shape: (T,) ids per sample give (T, output_dim). Ids may be stored as floats.
    Weights: the `embeddings` table, input_dim * output_dim, initialized uniform(-0.05, 0.05)
    as in Keras (torch's nn.Embedding draws from N(0, 1)). With `mask_zero`, id 0 is padding:
    the output carries the mask ids != 0 to the layers after it (an LSTM skips those steps,
    GlobalAveragePooling1D leaves them out of the mean), as Keras; id 0 still has its row.
    """

    type: Literal["Embedding"] = "Embedding"
    input_dim: int = Field(gt=0, description="Vocabulary size: ids run from 0 to input_dim - 1.")
    output_dim: int = Field(gt=0, description="Size of each embedding vector.")
    embeddings_initializer: InitializerRef = "random_uniform"
    embeddings_regularizer: RegularizerRef | None = None
    mask_zero: bool = Field(
        False, description="Id 0 is padding: mask it for the layers after (RNNs, pooling)."
    )

    input_length: int | None = Field(
        None,
        gt=0,
        description="Deprecated and ignored, as in Keras 3: the input shape gives the length.",
    )

    def masking(self) -> tuple[str, str]:
        return ("", "new") if self.mask_zero else ("", "none")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return (*shape, self.output_dim)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.embedding import EmbeddingModule

        module = EmbeddingModule(self.input_dim, self.output_dim)
        # Keras' fans of a 2-D weight: its rows and its columns.
        self.embeddings_initializer.fill_(
            module.embeddings, fan_in=self.input_dim, fan_out=self.output_dim
        )
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        if self.embeddings_regularizer is None:
            return {}
        return {"embeddings": self.embeddings_regularizer}
