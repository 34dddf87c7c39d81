"""The crossentropy losses: binary, categorical, sparse categorical and the focal forms."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.compile.losses.base import EPSILON, LossSpec, _torch

if TYPE_CHECKING:
    from torch import Tensor


def _log_probs(y_pred: Tensor, logits: bool, axis: int) -> Tensor:
    """log p over `axis`: log_softmax of logits, or Keras' renormalized, clipped log."""
    torch = _torch()
    if logits:
        return torch.log_softmax(y_pred, dim=axis)
    probs = y_pred / y_pred.sum(dim=axis, keepdim=True)
    return torch.log(probs.clamp(EPSILON, 1.0 - EPSILON))


def _binary_ce(y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
    """Elementwise binary crossentropy, from logits (stable) or clipped probabilities."""
    torch = _torch()
    if logits:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            y_pred, y_true, reduction="none"
        )
    p = y_pred.clamp(EPSILON, 1.0 - EPSILON)
    return -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p))


class BinaryCrossentropy(LossSpec):
    """-(y log p + (1-y) log(1-p)), mean over the last axis; labels smoothed toward 0.5."""

    type: Literal["binary_crossentropy"] = "binary_crossentropy"
    target_kind: ClassVar[str] = "binary"
    link: ClassVar[str | None] = "sigmoid"
    from_logits: bool = False
    label_smoothing: float = Field(0.0, ge=0, le=1)
    axis: int = -1

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return _binary_ce(y_pred, y_true, logits).mean(dim=self.axis)


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Binary crossentropy times (1 - p_t) ** gamma; class weights alpha if balancing."""

    type: Literal["binary_focal_crossentropy"] = "binary_focal_crossentropy"  # type: ignore[assignment]
    apply_class_balancing: bool = False
    alpha: float = Field(0.25, ge=0, le=1)
    gamma: float = Field(2.0, ge=0)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        probs = y_pred.sigmoid() if logits else y_pred
        p_t = y_true * probs + (1.0 - y_true) * (1.0 - probs)
        focal = (1.0 - p_t) ** self.gamma * _binary_ce(y_pred, y_true, logits)
        if self.apply_class_balancing:
            focal = (y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)) * focal
        return focal.mean(dim=self.axis)


class CategoricalCrossentropy(LossSpec):
    """-sum(y * log p) over the class axis; one-hot labels smoothed toward 1/K."""

    type: Literal["categorical_crossentropy"] = "categorical_crossentropy"
    target_kind: ClassVar[str] = "onehot"
    link: ClassVar[str | None] = "softmax"
    from_logits: bool = False
    label_smoothing: float = Field(0.0, ge=0, le=1)
    axis: int = -1

    def _smooth(self, y_true: Tensor) -> Tensor:
        # Keras smooths toward 1 / (the size of the LAST axis), whatever `axis` names; kcli
        # does the same so that `axis` with label_smoothing gives Keras' numbers.
        k = y_true.shape[-1]
        return y_true * (1.0 - self.label_smoothing) + self.label_smoothing / k

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        log_p = _log_probs(y_pred, logits, self.axis)
        return -(self._smooth(y_true) * log_p).sum(dim=self.axis)


class CategoricalFocalCrossentropy(CategoricalCrossentropy):
    """sum(alpha * (1 - p) ** gamma * -y log p) over the class axis."""

    type: Literal["categorical_focal_crossentropy"] = "categorical_focal_crossentropy"  # type: ignore[assignment]
    alpha: float = Field(0.25, ge=0)
    gamma: float = Field(2.0, ge=0)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        log_p = _log_probs(y_pred, logits, self.axis)
        weight = self.alpha * (1.0 - log_p.exp()) ** self.gamma
        return -(weight * self._smooth(y_true) * log_p).sum(dim=self.axis)


class SparseCategoricalCrossentropy(LossSpec):
    """-log p[label] for integer labels (shape (N,) or (N, 1), ints or integral floats).

    `ignore_class` (Keras' argument, e.g. a padding label such as -1 or 255) leaves that
    label out: its positions add nothing and the batch's loss is the mean over the others.
    """

    type: Literal["sparse_categorical_crossentropy"] = "sparse_categorical_crossentropy"
    target_kind: ClassVar[str] = "sparse"
    link: ClassVar[str | None] = "softmax"
    from_logits: bool = False
    ignore_class: int | None = Field(
        None, description="A label left out of the loss (its positions weigh nothing)."
    )
    axis: int = -1

    def _align(self, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
        if self.axis not in (-1, y_pred.ndim - 1):
            y_pred = y_pred.movedim(self.axis, -1)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        labels = y_true.round().long() if y_true.is_floating_point() else y_true.long()
        return y_pred, labels

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        if self.ignore_class is None:
            return self._crossentropy(y_pred, y_true, logits)
        torch = _torch()
        valid = y_true != self.ignore_class
        values = self._crossentropy(y_pred, torch.where(valid, y_true, 0), logits)
        # Keras reduces a masked loss to sum(valid values) / (count of valid + 1e-7): scaling
        # each kept value by total / (valid + 1e-7) makes the trainer's plain mean give that.
        scale = valid.numel() / (valid.sum().to(values.dtype) + EPSILON)
        return torch.where(valid, values * scale, torch.zeros_like(values))

    def _crossentropy(self, y_pred: Tensor, labels: Tensor, logits: bool) -> Tensor:
        if logits and y_pred.ndim == 2:
            # torch's fused log_softmax + nll_loss: the same -log p[label], fewer kernels.
            return _torch().nn.functional.cross_entropy(y_pred, labels, reduction="none")
        log_p = _log_probs(y_pred, logits, -1)
        return -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
