"""Keras' Embedding: a lookup table indexed by integer ids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingModule(nn.Module):
    """ids (N, ...) -> vectors (N, ..., output_dim) from the `embeddings` table.

    Ids may arrive as floats holding whole numbers (data is often float32); they are cast to
    int64, which is a no-op for ids that already are.
    """

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.empty(input_dim, output_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids.long(), self.embeddings)

    def compute_mask(self, inputs, masks) -> torch.Tensor:
        """Keras' mask_zero: the steps whose id is not 0 (the graph asks only with mask_zero)."""
        return inputs[0] != 0
