"""Regression, distribution and hinge losses: mse, mae, huber, log_cosh, kl_divergence ..."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.compile.losses.base import EPSILON, LossSpec, _torch

if TYPE_CHECKING:
    from torch import Tensor


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
