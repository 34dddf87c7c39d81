"""The id half of StringLookup and TextVectorization: Keras' output_mode on vocabulary ids.

The data stage has already turned each sample's strings into ids (kcli.model.layers.text); a
padding or dropped position is -1 in the non-int modes, which `encode` leaves out. tf_idf's
weights are a non-persistent buffer: Keras keeps them outside the layer's weights (its summary
counts 0 parameters), and kcli keeps them in the run's preprocess.json with the vocabulary;
`set_idf_weights` puts them in after the model is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kcli.model.nn.encoding import encode


class LookupModule(nn.Module):
    """Ids (N, T) -> ids (int), one-hot (N, depth) of a single id, or multi-hot, count or
    tf-idf vectors (N, depth) of each sample's ids."""

    def __init__(self, output_mode: str, depth: int | None) -> None:
        super().__init__()
        self.output_mode = output_mode
        self.depth = depth
        if output_mode == "tf_idf":
            self.register_buffer("idf_weights", torch.zeros(depth), persistent=False)

    def set_idf_weights(self, weights: Sequence[float]) -> None:
        """The fitted idf weights, zero-padded to the output's width (as Keras pads them)."""
        values = torch.zeros(self.depth, dtype=torch.float32)
        values[: len(weights)] = torch.tensor(list(weights), dtype=torch.float32)
        self.idf_weights.copy_(values)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.output_mode == "int":
            return ids
        if self.output_mode == "tf_idf":
            return encode(ids.long(), "count", self.depth) * self.idf_weights
        return encode(ids.long(), self.output_mode, self.depth)
