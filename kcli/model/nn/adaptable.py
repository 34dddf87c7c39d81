"""AdaptableModule: a layer's module whose state is learned from data before training (Keras'
`adapt`), in Keras' three steps: `reset_state`, `update_state` per batch, `finalize_state`.

kcli.train.adapt feeds `update_state` the layer's *input* values over the train split, batch by
batch, then calls `finalize_state`, which writes what was learned into persistent buffers: they
are saved in every checkpoint and in the run's weights, so eval, predict, export and --resume
restore them with the rest of the weights and never adapt again. A module whose state the recipe
gives (Normalization's mean and variance, Discretization's bin_boundaries, IntegerLookup's
vocabulary) has `adapts` False and is left alone.

`keras_weight_buffers` names exactly which of the module's own buffers are Keras weights (see
kcli.model.nn.counting): Normalization's mean, variance and integer count are; Discretization's
learned boundaries and IntegerLookup's vocabulary are state Keras keeps outside its weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class AdaptableModule(nn.Module):
    """The base of every module kcli.train.adapt runs over the train split."""

    keras_weight_buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, adapts: bool) -> None:
        super().__init__()
        self.adapts = adapts

    def reset_state(self) -> None:
        """Forget what earlier batches taught (the start of an adapt pass)."""
        raise NotImplementedError  # every adaptable module overrides this

    def update_state(self, x: torch.Tensor) -> None:
        """Learn from one batch of the layer's inputs (batch axis first)."""
        raise NotImplementedError  # every adaptable module overrides this

    def finalize_state(self) -> None:
        """Write what was learned into the buffers; ValueError when the data cannot make it."""
        raise NotImplementedError  # every adaptable module overrides this
