"""Keras' losses: `loss: mse` or `{type: categorical_crossentropy, label_smoothing: 0.1}`.

`LossSpec.build(link)` returns `fn(y_pred, y_true) -> (N,)`: Keras' per-sample loss (reduced over
the last axis, then averaged over any other non-batch axes); the trainer reduces it as Keras does,
`sum(loss * sample_weight) / N`. Targets of shape (N,) against outputs (N, 1) are aligned, never
broadcast into an (N, N) matrix.

Crossentropy on probabilities is Keras': renormalize, clip to [1e-7, 1 - 1e-7], log. When the
model's last activation is the loss's link (softmax for categorical/sparse, sigmoid for binary)
and `from_logits` is false, the trainer hands the LOGITS instead (`folds_link`) and the loss uses
log_softmax / BCE-with-logits: the same value wherever Keras' clip does not bite, and a real
gradient for confidently wrong predictions where Keras' clipped loss is flat at ~16.1.
"""

# Each family module registers its specs when imported; the order is the catalog's order.
from kcli.compile.losses import crossentropy, ctc, regression  # noqa: F401
from kcli.compile.losses.base import EPSILON, LossFn, LossSpec, loss_registry

LossRef = loss_registry.field()
"""The type of `compile.loss`: a name (`mse`) or a `{type: ..., params}` mapping."""

__all__ = ["EPSILON", "LossFn", "LossRef", "LossSpec", "loss_registry"]
