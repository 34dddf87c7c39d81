"""Which training batches each epoch takes: one whole pass, or Keras' `steps_per_epoch` windows.

With `steps_per_epoch`, Keras keeps one iterator over the shuffled data across epochs: each
epoch takes the next `steps_per_epoch` batches of the current pass, an epoch that reaches the
end of the pass stops there (shorter), and the next epoch starts a new, freshly shuffled pass.
The window of epoch e follows from e alone, so a resumed run (or one with `initial_epoch`)
trains on the batches an uninterrupted run from epoch 0 would have.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpochWindow:
    pass_index: int  # which pass over the data (the seeded shuffle of that index)
    first: int  # the first batch of that pass this epoch trains on
    steps: int  # how many batches it takes


def epoch_window(epoch: int, batches_per_pass: int, steps_per_epoch: int | None) -> EpochWindow:
    """The batches epoch `epoch` (0-based) trains on."""
    if steps_per_epoch is None:
        return EpochWindow(epoch, 0, batches_per_pass)
    pass_index, first = 0, 0
    for _ in range(epoch):
        first += min(steps_per_epoch, batches_per_pass - first)
        if first >= batches_per_pass:
            pass_index, first = pass_index + 1, 0
    return EpochWindow(pass_index, first, min(steps_per_epoch, batches_per_pass - first))
