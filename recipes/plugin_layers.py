"""A plugin for recipes/plugin.yaml: Keras' TokenAndPositionEmbedding as a kcli layer.

The Keras text-classification example (a transformer block on movie reviews) defines this
layer itself: each token id's learned vector plus a learned vector for its position. Here it is
a kcli layer spec: its arguments are pydantic fields, `output_shape` is pure Python (so `kcli
validate` checks shapes without torch) and `build` returns the torch module. Listing the module
in a recipe's `plugins:` makes the layer part of the catalog for that recipe:
`kcli layers --plugins plugin_layers TokenAndPositionEmbedding` (from this folder) describes it.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from kcli.plugin import InitializerRef, LayerSpec, Shape, require_known, require_rank


class TokenAndPositionEmbedding(LayerSpec):
    """A token's learned vector plus its position's: (T,) ids -> (T, embed_dim).

    Weights: `token_embeddings` (vocab_size, embed_dim) and `position_embeddings`
    (T, embed_dim), so vocab_size * embed_dim + T * embed_dim parameters.
    """

    type: Literal["TokenAndPositionEmbedding"] = "TokenAndPositionEmbedding"
    vocab_size: int = Field(gt=0, description="Token ids run from 0 to vocab_size - 1.")
    embed_dim: int = Field(gt=0, description="The size of each vector.")
    embeddings_initializer: InitializerRef = "random_uniform"  # Keras' Embedding default

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self.type, shape, 1, "a sequence of token ids")
        length = require_known(self.type, shape, 0, "sequence length")
        return (length, self.embed_dim)

    def build(self, input_shapes: list[Shape]):
        length = input_shapes[0][0]
        module = TokenAndPositionModule(self.vocab_size, length, self.embed_dim)
        for weight in (module.token_embeddings, module.position_embeddings):
            rows = weight.shape[0]
            self.embeddings_initializer.fill_(weight, fan_in=rows, fan_out=self.embed_dim)
        return module


class TokenAndPositionModule(torch.nn.Module):
    def __init__(self, vocab_size: int, length: int, embed_dim: int) -> None:
        super().__init__()
        self.token_embeddings = torch.nn.Parameter(torch.empty(vocab_size, embed_dim))
        self.position_embeddings = torch.nn.Parameter(torch.empty(length, embed_dim))

    def forward(self, ids):
        return self.token_embeddings[ids.long()] + self.position_embeddings
