"""Keras' CTC loss (connectionist temporal classification) for sequence labelling.

y_pred is (N, time, classes), y_true is (N, max_label_length) integer labels. Keras' semantics,
matched exactly: class 0 is the CTC blank and also the padding of y_true, so a label's length is
its count of non-zero entries (pad at the END: torch reads the first `length` entries of each
row); every sample uses all `time` steps; y_pred always goes through log_softmax (Keras takes
it as logits); the per-sample value is the negative log-likelihood, not divided by the label
length, and inf where no alignment fits (as Keras' is).

No link is folded: Keras applies log_softmax to whatever the model outputs, so after a final
softmax it computes log_softmax(softmax(z)), and so does kcli, to give Keras' numbers. A linear
last layer (logits) is what Keras' docstring asks for and trains better.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from kcli.compile.losses.base import LossSpec, _torch

if TYPE_CHECKING:
    from torch import Tensor

BLANK = 0  # Keras' mask_index: the blank class and the label padding


class CTC(LossSpec):
    """Negative log-likelihood of the label sequence over all CTC alignments (blank = 0)."""

    type: Literal["ctc"] = "ctc"
    target_kind: ClassVar[str] = "sequence_labels"

    def _align(self, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
        labels = y_true.round().long() if y_true.is_floating_point() else y_true.long()
        return y_pred, labels

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        torch = _torch()
        if y_pred.ndim != 3 or y_true.ndim != 2:
            raise ValueError(
                "ctc takes y_pred of shape (batch, time, classes) and y_true of shape "
                f"(batch, max_label_length); got {tuple(y_pred.shape)} and {tuple(y_true.shape)}"
            )
        n, steps = y_pred.shape[0], y_pred.shape[1]
        log_probs = torch.log_softmax(y_pred.float(), dim=-1).transpose(0, 1)  # (T, N, C)
        input_lengths = torch.full((n,), steps, dtype=torch.long, device=y_pred.device)
        label_lengths = (y_true != BLANK).sum(-1)
        return torch.nn.functional.ctc_loss(
            log_probs, y_true, input_lengths, label_lengths, blank=BLANK, reduction="none"
        )

    def check_output(
        self,
        output_shape: tuple,
        n_classes: int | None,
        target_shape: tuple | None = None,
    ) -> str | None:
        if len(output_shape) != 2:
            return (
                f"ctc needs an output of shape (time, classes), got {tuple(output_shape)}: end "
                "the model with a per-time-step Dense (e.g. after a return_sequences RNN)"
            )
        units = output_shape[-1]
        if units < 2:
            return "ctc needs at least 2 output units: class 0 is the blank, labels are 1.."
        if n_classes is not None and n_classes > units:
            return (
                f"labels go up to {n_classes - 1} but the output has {units} units (blank 0 "
                f"plus one per label): give the last layer {n_classes} units"
            )
        if target_shape is not None and len(target_shape) != 1:
            return (
                "ctc expects targets of shape (max_label_length,): integer labels 1.. padded "
                f"with 0 at the end, got targets of shape {tuple(target_shape)}"
            )
        return None
