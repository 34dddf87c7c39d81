"""Confusion-count metric specs: precision, recall, F1 score and AUC."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kcli.compile.metrics.base import MetricSpec
from kcli.compile.metrics.streaming import AUCMetric, ConfusionMetric, F1Metric, Metric


class Precision(MetricSpec):
    """TP / (TP + FP) over all outputs, p > thresholds counting as positive."""

    type: Literal["precision"] = "precision"
    short_name: ClassVar[str] = "precision"
    thresholds: float = Field(0.5, ge=0, le=1)
    top_k: int | None = Field(None, ge=1)
    class_id: int | None = Field(None, ge=0)

    def build(self) -> Metric:
        return ConfusionMetric(self.type, self.thresholds, self.top_k, self.class_id)


class Recall(Precision):
    """TP / (TP + FN) over all outputs, p > thresholds counting as positive."""

    type: Literal["recall"] = "recall"  # type: ignore[assignment]
    short_name: ClassVar[str] = "recall"


class F1Score(MetricSpec):
    """Harmonic mean of precision and recall per class, averaged (`macro` by default)."""

    type: Literal["f1_score"] = "f1_score"
    short_name: ClassVar[str] = "f1_score"
    average: Literal["micro", "macro", "weighted"] = "macro"
    threshold: float | None = Field(None, ge=0, le=1)

    def build(self) -> Metric:
        return F1Metric(self.average, self.threshold)


class AUC(MetricSpec):
    """Area under the ROC or PR curve from num_thresholds confusion counts (Keras' AUC)."""

    type: Literal["auc"] = "auc"
    short_name: ClassVar[str] = "auc"
    num_thresholds: int = Field(200, gt=1)
    curve: Literal["ROC", "PR"] = "ROC"
    summation_method: Literal["interpolation", "minoring", "majoring"] = "interpolation"

    def build(self) -> Metric:
        return AUCMetric(self.num_thresholds, self.curve, self.summation_method)
