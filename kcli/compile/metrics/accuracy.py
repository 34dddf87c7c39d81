"""Accuracy-like metric specs: exact, binary, categorical and top-k accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.compile.metrics.base import MetricSpec
from kcli.compile.metrics.streaming import (
    MeanMetric,
    Metric,
    _categorical_match,
    _exact_match,
    _in_top_k,
    _labels,
    _sparse_match,
)

if TYPE_CHECKING:
    from torch import Tensor

    from kcli.compile.losses import LossSpec


class Accuracy(MetricSpec):
    """Exact equality; in `compile.metrics` resolved from the loss as Keras does."""

    type: Literal["accuracy"] = "accuracy"
    aliases: ClassVar[tuple[str, ...]] = ("acc",)
    short_name: ClassVar[str] = "accuracy"

    def resolve(self, loss: LossSpec) -> MetricSpec:
        """sparse labels -> sparse_categorical_accuracy, one-hot -> categorical, 0/1 -> binary."""
        resolved = {
            "sparse": SparseCategoricalAccuracy,
            "onehot": CategoricalAccuracy,
            "binary": BinaryAccuracy,
        }.get(loss.target_kind)
        return self if resolved is None else resolved(name=self.log_name)

    def build(self) -> Metric:
        return MeanMetric(_exact_match)


class BinaryAccuracy(MetricSpec):
    """Share of outputs where (p > threshold) equals the 0/1 label."""

    type: Literal["binary_accuracy"] = "binary_accuracy"
    short_name: ClassVar[str] = "binary_accuracy"
    threshold: float = 0.5

    def build(self) -> Metric:
        def match(y_pred: Tensor, y_true: Tensor) -> Tensor:
            return _exact_match((y_pred > self.threshold).to(y_pred.dtype), y_true)

        return MeanMetric(match)


class CategoricalAccuracy(MetricSpec):
    type: Literal["categorical_accuracy"] = "categorical_accuracy"
    short_name: ClassVar[str] = "categorical_accuracy"

    def build(self) -> Metric:
        return MeanMetric(_categorical_match, order_only=True)


class SparseCategoricalAccuracy(MetricSpec):
    type: Literal["sparse_categorical_accuracy"] = "sparse_categorical_accuracy"
    short_name: ClassVar[str] = "sparse_categorical_accuracy"

    def build(self) -> Metric:
        return MeanMetric(_sparse_match, order_only=True)


class TopKCategoricalAccuracy(MetricSpec):
    """Share of samples whose one-hot class is among the k highest scores."""

    type: Literal["top_k_categorical_accuracy"] = "top_k_categorical_accuracy"
    short_name: ClassVar[str] = "top_k_categorical_accuracy"
    k: int = Field(5, ge=1)

    def build(self) -> Metric:
        return MeanMetric(
            lambda y_pred, y_true: _in_top_k(y_pred, y_true.argmax(-1), self.k), order_only=True
        )


class SparseTopKCategoricalAccuracy(MetricSpec):
    """Share of samples whose integer label is among the k highest scores."""

    type: Literal["sparse_top_k_categorical_accuracy"] = "sparse_top_k_categorical_accuracy"
    short_name: ClassVar[str] = "sparse_top_k_categorical_accuracy"
    k: int = Field(5, ge=1)

    def build(self) -> Metric:
        return MeanMetric(
            lambda y_pred, y_true: _in_top_k(y_pred, _labels(y_pred, y_true), self.k),
            order_only=True,
        )
