"""Keras' metrics: `metrics: [accuracy, mae, {type: auc, curve: PR}]`.

A spec names a metric and its Keras arguments; `build()` gives a streaming `Metric` whose state
lives on the device of the tensors it sees: `update` launches kernels only (no `.item()`),
`compute` returns a 0-dim tensor, and `state()` returns SUMS (weighted totals, counts, confusion
counts), so a distributed trainer can all-reduce them and `load_state` the result. Metrics see
the model's activated output (probabilities), never logits.

Choices where Keras says nothing or logs non-scalars:
  - the log name is `name` when given, else the metric's short name (`mean_squared_error` and
    `mse` both log `mse`); `accuracy` resolved from the loss keeps the log name `accuracy`;
  - `f1_score` averages over classes (`average: macro`) by default, since we log scalars (Keras'
    default None gives one value per class); on a 1-unit output its default threshold is 0.5;
  - precision, recall, f1_score and auc accept integer labels against a multi-unit output
    (one-hot encoded internally); Keras wants the labels one-hot already.
"""

# Each family module registers its specs when imported; the order is the catalog's order.
from kcli.compile.metrics import accuracy, confusion, regression  # noqa: F401
from kcli.compile.metrics.accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
)
from kcli.compile.metrics.auc import AUCMetric
from kcli.compile.metrics.base import MetricSpec, metric_registry
from kcli.compile.metrics.confusion import AUC, F1Score, Precision, Recall
from kcli.compile.metrics.regression import (
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    R2Score,
    RootMeanSquaredError,
)
from kcli.compile.metrics.streaming import (
    EPSILON,
    ConfusionMetric,
    F1Metric,
    MeanMetric,
    Metric,
    R2Metric,
)

MetricRef = metric_registry.field()
"""The type of an item of `compile.metrics`: a name or a `{type: ..., params}` mapping."""

__all__ = [
    "AUC",
    "AUCMetric",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "ConfusionMetric",
    "EPSILON",
    "F1Metric",
    "F1Score",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanMetric",
    "MeanSquaredError",
    "Metric",
    "MetricRef",
    "MetricSpec",
    "Precision",
    "R2Metric",
    "R2Score",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "metric_registry",
]
