"""Regression metric specs: mean squared/absolute (percentage) errors, RMSE and R2."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from kcli.compile.metrics.base import MetricSpec
from kcli.compile.metrics.streaming import (
    MeanMetric,
    Metric,
    R2Metric,
    _absolute_error,
    _percentage_error,
    _squared_error,
)


class MeanSquaredError(MetricSpec):
    type: Literal["mean_squared_error"] = "mean_squared_error"
    aliases: ClassVar[tuple[str, ...]] = ("mse",)
    short_name: ClassVar[str] = "mse"

    def build(self) -> Metric:
        return MeanMetric(_squared_error)


class RootMeanSquaredError(MetricSpec):
    type: Literal["root_mean_squared_error"] = "root_mean_squared_error"
    aliases: ClassVar[tuple[str, ...]] = ("rmse",)
    short_name: ClassVar[str] = "rmse"

    def build(self) -> Metric:
        return MeanMetric(_squared_error, root=True)


class MeanAbsoluteError(MetricSpec):
    type: Literal["mean_absolute_error"] = "mean_absolute_error"
    aliases: ClassVar[tuple[str, ...]] = ("mae",)
    short_name: ClassVar[str] = "mae"

    def build(self) -> Metric:
        return MeanMetric(_absolute_error)


class MeanAbsolutePercentageError(MetricSpec):
    type: Literal["mean_absolute_percentage_error"] = "mean_absolute_percentage_error"
    aliases: ClassVar[tuple[str, ...]] = ("mape",)
    short_name: ClassVar[str] = "mape"

    def build(self) -> Metric:
        return MeanMetric(_percentage_error)


def _keras_aggregation_name(value: object) -> object:
    # kcli once spelled Keras' "variance_weighted_average" as "variance_weighted": keep both.
    return "variance_weighted_average" if value == "variance_weighted" else value


class R2Score(MetricSpec):
    """Coefficient of determination per output, averaged uniformly or by variance, optionally
    adjusted for the number of regressors (Keras' R2Score)."""

    type: Literal["r2_score"] = "r2_score"
    short_name: ClassVar[str] = "r2_score"
    class_aggregation: Annotated[
        Literal["uniform_average", "variance_weighted_average"],
        BeforeValidator(_keras_aggregation_name),
    ] = "uniform_average"
    num_regressors: int = Field(
        0, ge=0, description="Predictors for the adjusted R2 (0: plain R2), as Keras."
    )

    def build(self) -> Metric:
        return R2Metric(self.class_aggregation, self.num_regressors)
