"""Confusion-count metric specs: precision, recall, the four counts, F1 score and AUC."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from kcli.compile.metrics.auc import AUCMetric
from kcli.compile.metrics.base import MetricSpec
from kcli.compile.metrics.streaming import ConfusionMetric, CountMetric, F1Metric, Metric


class Precision(MetricSpec):
    """TP / (TP + FP) over all outputs, p > thresholds counting as positive.

    As in Keras, `thresholds` defaults to 0.5, or, with `top_k`, to no threshold at all: then
    each row's k highest scores are its positives, whatever their value.
    """

    type: Literal["precision"] = "precision"
    short_name: ClassVar[str] = "precision"
    thresholds: float | None = Field(
        None, ge=0, le=1, description="0.5 by default; none with top_k (the ranking decides)."
    )
    top_k: int | None = Field(None, ge=1)
    class_id: int | None = Field(None, ge=0)

    def threshold(self) -> float:
        if self.thresholds is not None:
            return self.thresholds
        return 0.5 if self.top_k is None else -math.inf

    def build(self) -> Metric:
        return ConfusionMetric(self.type, self.threshold(), self.top_k, self.class_id)


class Recall(Precision):
    """TP / (TP + FN) over all outputs, p > thresholds counting as positive (as precision)."""

    type: Literal["recall"] = "recall"  # type: ignore[assignment]
    short_name: ClassVar[str] = "recall"


class _Count(MetricSpec):
    """A confusion count over all outputs, p > thresholds counting as a positive prediction."""

    # Which cell: (predicted positive, actually positive).
    cell: ClassVar[tuple[bool, bool]] = (True, True)
    thresholds: float = Field(0.5, ge=0, le=1, description="Scores above it are positives.")

    def build(self) -> Metric:
        return CountMetric(*self.cell, self.thresholds)


class TruePositives(_Count):
    """The (sample-weighted) count of positive labels predicted positive (Keras')."""

    type: Literal["true_positives"] = "true_positives"
    short_name: ClassVar[str] = "true_positives"


class FalsePositives(_Count):
    """The (sample-weighted) count of negative labels predicted positive (Keras')."""

    type: Literal["false_positives"] = "false_positives"
    short_name: ClassVar[str] = "false_positives"
    cell: ClassVar[tuple[bool, bool]] = (True, False)


class TrueNegatives(_Count):
    """The (sample-weighted) count of negative labels predicted negative (Keras')."""

    type: Literal["true_negatives"] = "true_negatives"
    short_name: ClassVar[str] = "true_negatives"
    cell: ClassVar[tuple[bool, bool]] = (False, False)


class FalseNegatives(_Count):
    """The (sample-weighted) count of positive labels predicted negative (Keras')."""

    type: Literal["false_negatives"] = "false_negatives"
    short_name: ClassVar[str] = "false_negatives"
    cell: ClassVar[tuple[bool, bool]] = (False, True)


class F1Score(MetricSpec):
    """Harmonic mean of precision and recall per class, averaged (`macro` by default)."""

    type: Literal["f1_score"] = "f1_score"
    short_name: ClassVar[str] = "f1_score"
    average: Literal["micro", "macro", "weighted"] = "macro"
    threshold: float | None = Field(None, ge=0, le=1)

    def build(self) -> Metric:
        return F1Metric(self.average, self.threshold)


class AUC(MetricSpec):
    """Area under the ROC or PR curve from confusion counts at thresholds (Keras' AUC).

    `num_thresholds` evenly spaced thresholds, or the given `thresholds` (0 and 1 added);
    `multi_label` keeps one curve per output unit and averages their areas (weighted by
    `label_weights`); without it, all units' scores are pooled (`label_weights` then weight
    each unit's scores). `from_logits` applies a sigmoid first.
    """

    type: Literal["auc"] = "auc"
    short_name: ClassVar[str] = "auc"
    num_thresholds: int = Field(200, gt=1)
    curve: Literal["ROC", "PR"] = "ROC"
    summation_method: Literal["interpolation", "minoring", "majoring"] = "interpolation"
    thresholds: list[Annotated[float, Field(ge=0, le=1)]] | None = Field(
        None, description="Thresholds in [0, 1]; replaces num_thresholds."
    )
    multi_label: bool = False
    num_labels: int | None = Field(None, ge=1, description="With multi_label: the unit count.")
    label_weights: list[Annotated[float, Field(ge=0)]] | None = None
    from_logits: bool = False

    @model_validator(mode="after")
    def _num_labels_needs_multi_label(self):
        if self.num_labels is not None and not self.multi_label:
            raise ValueError("num_labels is needed only when multi_label is true (as in Keras)")
        if (
            self.num_labels is not None
            and self.label_weights is not None
            and len(self.label_weights) != self.num_labels
        ):
            raise ValueError(
                f"label_weights has {len(self.label_weights)} values for {self.num_labels} labels"
            )
        return self

    def build(self) -> Metric:
        return AUCMetric(
            self.num_thresholds,
            self.curve,
            self.summation_method,
            thresholds=self.thresholds,
            multi_label=self.multi_label,
            num_labels=self.num_labels,
            label_weights=self.label_weights,
            from_logits=self.from_logits,
        )
