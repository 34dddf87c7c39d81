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

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    from torch import Tensor

loss_registry = Registry("loss")
EPSILON = 1e-7  # Keras' backend epsilon: the probability clip and the divide guards
LossFn = Callable[["Tensor", "Tensor"], "Tensor"]


class LossSpec(RegisteredSpec):
    """A Keras loss; subclasses give `_values`, the loss reduced over Keras' axis."""

    registry: ClassVar[Registry] = loss_registry
    target_kind: ClassVar[str] = "continuous"  # "sparse" | "onehot" | "binary" | "continuous"
    link: ClassVar[str | None] = None  # the final activation this loss can take logits of

    def folds_link(self, link: str | None) -> bool:
        """True when the loss takes the logits of a final `link` activation (module doc)."""
        return (
            link is not None
            and link == self.link
            and not getattr(self, "from_logits", False)
            and getattr(self, "axis", -1) == -1
        )

    def build(self, link: str | None = None) -> LossFn:
        """fn(y_pred, y_true) -> per-sample loss (N,); logits in y_pred if folds_link(link)."""
        logits = self.folds_link(link) or getattr(self, "from_logits", False)

        def loss(y_pred: Tensor, y_true: Tensor) -> Tensor:
            import torch

            if y_pred.dtype in (torch.float16, torch.bfloat16):
                y_pred = y_pred.float()  # the log and exp need float32's range
            y_pred, y_true = self._align(y_pred, y_true)
            values = self._values(y_pred, y_true, logits)
            return values if values.ndim == 1 else values.flatten(1).mean(1)

        return loss

    def _align(self, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
        """Same rank for both (Keras' squeeze_or_expand_to_same_rank), float targets."""
        if y_pred.ndim == 1:
            y_pred = y_pred.unsqueeze(-1)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true.unsqueeze(-1)
        elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        return y_pred, y_true.to(y_pred.dtype)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        raise NotImplementedError  # every registered loss overrides this

    def check_output(
        self,
        output_shape: tuple,
        n_classes: int | None,
        target_shape: tuple | None = None,
    ) -> str | None:
        """Why this loss cannot fit the model's output, or None when it can.

        `output_shape` excludes the batch axis; `n_classes` is the number of classes the targets
        hold (max label + 1 for class ids, the width of one-hot targets; None when not classes);
        `target_shape`, when known, is one target's shape (batch excluded).
        """
        units = output_shape[-1] if output_shape else 1
        name = self.type
        if self.target_kind == "sparse":
            if units == 1:
                return (
                    f"{name} needs one output unit per class, but the output has 1 unit: use "
                    "binary_crossentropy with a sigmoid output, or give the last layer one unit "
                    "per class"
                )
            # With ignore_class, the largest label may be the ignored one (e.g. 255).
            ignoring = getattr(self, "ignore_class", None) is not None
            if n_classes is not None and n_classes > units and not ignoring:
                return (
                    f"labels go up to {n_classes - 1} but the output has {units} units (one per "
                    f"class): give the last layer {n_classes} units"
                )
            allowed = {(), (1,), tuple(output_shape[:-1]), (*output_shape[:-1], 1)}
            if target_shape is not None and tuple(target_shape) not in allowed:
                return (
                    f"{name} expects integer class labels, got targets of shape "
                    f"{tuple(target_shape)}: use categorical_crossentropy for one-hot targets"
                )
            return None
        scalar_target = target_shape is not None and tuple(target_shape) in ((), (1,))
        if self.target_kind == "onehot":
            if units == 1:
                return f"{name} on a 1-unit output is constant: the output needs one unit per class"
            if scalar_target:
                return (
                    f"{name} expects one-hot targets of shape ({units},), got class labels: use "
                    "sparse_categorical_crossentropy, or the one_hot preprocess step"
                )
            if n_classes is not None and n_classes != units:
                return f"the targets have {n_classes} classes but the output has {units} units"
        elif self.target_kind == "binary":
            if units == 1 and n_classes is not None and n_classes > 2:
                return (
                    f"{name} expects 0/1 labels, found {n_classes} classes: use "
                    f"sparse_categorical_crossentropy with a softmax output of {n_classes} units"
                )
            if units > 1 and (scalar_target or (n_classes is not None and n_classes != units)):
                return (
                    f"{name} on {units} output units needs one 0/1 target per unit, but the "
                    "labels are single classes: use 1 sigmoid unit (two classes) or "
                    "sparse_categorical_crossentropy with softmax"
                )
        if target_shape is not None:
            target, output = tuple(target_shape), tuple(output_shape)
            if target != output and not (scalar_target and output == (1,)):
                return f"{name}: targets of shape {target} do not fit the output shape {output}"
        return None


def _torch():
    import torch

    return torch


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
        k = y_true.shape[self.axis]
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


class MeanSquaredError(LossSpec):
    type: Literal["mean_squared_error"] = "mean_squared_error"
    aliases: ClassVar[tuple[str, ...]] = ("mse",)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        return (y_pred - y_true).square().mean(-1)


class MeanAbsoluteError(LossSpec):
    type: Literal["mean_absolute_error"] = "mean_absolute_error"
    aliases: ClassVar[tuple[str, ...]] = ("mae",)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        return (y_pred - y_true).abs().mean(-1)


class MeanAbsolutePercentageError(LossSpec):
    """100 * mean(|y - p| / max(|y|, 1e-7))."""

    type: Literal["mean_absolute_percentage_error"] = "mean_absolute_percentage_error"
    aliases: ClassVar[tuple[str, ...]] = ("mape",)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        return 100.0 * ((y_true - y_pred).abs() / y_true.abs().clamp_min(EPSILON)).mean(-1)


class MeanSquaredLogarithmicError(LossSpec):
    """mean((log(max(p, eps) + 1) - log(max(y, eps) + 1))^2)."""

    type: Literal["mean_squared_logarithmic_error"] = "mean_squared_logarithmic_error"
    aliases: ClassVar[tuple[str, ...]] = ("msle",)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        first = y_pred.clamp_min(EPSILON).log1p()
        second = y_true.clamp_min(EPSILON).log1p()
        return (first - second).square().mean(-1)


class Huber(LossSpec):
    """0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta); mean over the last axis."""

    type: Literal["huber"] = "huber"
    aliases: ClassVar[tuple[str, ...]] = ("huber_loss",)
    delta: float = Field(1.0, gt=0)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        error = (y_pred - y_true).abs()
        quadratic = 0.5 * error.square()
        linear = self.delta * error - 0.5 * self.delta**2
        return _torch().where(error <= self.delta, quadratic, linear).mean(-1)


class LogCosh(LossSpec):
    """mean(log(cosh(p - y))), computed as x + softplus(-2x) - log 2 (no overflow)."""

    type: Literal["log_cosh"] = "log_cosh"
    aliases: ClassVar[tuple[str, ...]] = ("logcosh",)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        x = y_pred - y_true
        softplus = _torch().nn.functional.softplus(-2.0 * x)
        return (x + softplus - math.log(2.0)).mean(-1)


class KLDivergence(LossSpec):
    """sum(y * log(y / p)) with both clipped to [1e-7, 1]."""

    type: Literal["kl_divergence"] = "kl_divergence"
    aliases: ClassVar[tuple[str, ...]] = ("kld", "kullback_leibler_divergence")

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        y_true = y_true.clamp(EPSILON, 1.0)
        y_pred = y_pred.clamp(EPSILON, 1.0)
        return (y_true * (y_true / y_pred).log()).sum(-1)


class Poisson(LossSpec):
    """mean(p - y * log(p + 1e-7))."""

    type: Literal["poisson"] = "poisson"

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        return (y_pred - y_true * (y_pred + EPSILON).log()).mean(-1)


class CosineSimilarity(LossSpec):
    """-sum(l2_normalize(y) * l2_normalize(p)) over `axis` (so -1 is a perfect match)."""

    type: Literal["cosine_similarity"] = "cosine_similarity"
    axis: int = -1

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        def unit(x: Tensor) -> Tensor:
            return x / x.norm(dim=self.axis, keepdim=True).clamp_min(EPSILON)

        return -(unit(y_true) * unit(y_pred)).sum(dim=self.axis)


def _signed_labels(y_true: Tensor) -> Tensor:
    """Keras' hinge labels: 0/1 targets become -1/1 (checked on the device, no sync)."""
    torch = _torch()
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


class Hinge(LossSpec):
    """mean(max(1 - y * p, 0)) with labels -1/1 (0/1 converted)."""

    type: Literal["hinge"] = "hinge"
    target_kind: ClassVar[str] = "binary"

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        return (1.0 - _signed_labels(y_true) * y_pred).clamp_min(0.0).mean(-1)


class SquaredHinge(LossSpec):
    """mean(max(1 - y * p, 0)^2) with labels -1/1 (0/1 converted)."""

    type: Literal["squared_hinge"] = "squared_hinge"
    target_kind: ClassVar[str] = "binary"

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        return (1.0 - _signed_labels(y_true) * y_pred).clamp_min(0.0).square().mean(-1)


class CategoricalHinge(LossSpec):
    """max(max((1 - y) * p) - sum(y * p) + 1, 0) for one-hot y."""

    type: Literal["categorical_hinge"] = "categorical_hinge"
    target_kind: ClassVar[str] = "onehot"

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        positive = (y_true * y_pred).sum(-1)
        negative = ((1.0 - y_true) * y_pred).amax(-1)
        return (negative - positive + 1.0).clamp_min(0.0)


LossRef = loss_registry.field()
"""The type of `compile.loss`: a name (`mse`) or a `{type: ..., params}` mapping."""
