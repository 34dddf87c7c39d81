"""Keras' AUC as a streaming metric: confusion counts at thresholds, then the area."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kcli.compile.metrics.streaming import EPSILON, Metric, _dense_targets, _divide, _torch

if TYPE_CHECKING:
    from torch import Tensor


def _evenly_spaced(thresholds: list[float]) -> bool:
    """True when thresholds (0 and 1 included) are i/(n-1), as Keras tests it (numpy's
    allclose with atol 1e-7 and its default rtol 1e-5)."""
    n = len(thresholds)
    if n < 3:
        return False
    return all(
        abs(t - i / (n - 1)) <= EPSILON + 1e-5 * i / (n - 1) for i, t in enumerate(thresholds)
    )


class AUCMetric(Metric):
    """Keras' AUC: confusion counts at a list of thresholds, then a Riemann sum (or, for PR
    with interpolation, Davis & Goadrich's formula). With `multi_label`, counts are kept per
    label (output unit) and the per-label AUCs averaged, weighted by `label_weights` if given;
    without it, every unit's scores are pooled (each weighted by its label weight)."""

    def __init__(
        self,
        num_thresholds: int,
        curve: str,
        summation_method: str,
        thresholds: list[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: list[float] | None = None,
        from_logits: bool = False,
    ) -> None:
        super().__init__()
        self._curve, self._summation = curve, summation_method
        self._multi_label, self._num_labels = multi_label, num_labels
        self._label_weights, self._from_logits = label_weights, from_logits
        if thresholds is None:
            self._n, self._inner, self._evenly = num_thresholds, None, True
        else:
            inner = sorted(thresholds)
            self._n, self._inner = len(inner) + 2, inner
            self._evenly = _evenly_spaced([0.0, *inner, 1.0])

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        names = ("true_positives", "false_positives", "true_negatives", "false_negatives")
        shape = (self._n, width) if self._multi_label else (self._n,)
        return {k: like.new_zeros(shape) for k in names}

    def _buckets(self, y_pred: Tensor) -> Tensor:
        """For each score, the index of the last threshold it exceeds (the counts at
        thresholds 0..index all include it)."""
        torch = _torch()
        if self._evenly:
            # Thresholds -eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps: p exceeds threshold i exactly
            # when ceil(p*(n-1)) - 1 (>= 0) is >= i.
            return (torch.ceil(y_pred.clamp(0, 1) * (self._n - 1)) - 1).clamp_min(0).long()
        edges = y_pred.new_tensor([-EPSILON, *self._inner, 1.0 + EPSILON])
        # searchsorted (left) counts the thresholds strictly below each score.
        return torch.searchsorted(edges, y_pred.clamp(0, 1).contiguous()) - 1

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> None:
        torch = _torch()
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred)
        width = y_pred.shape[-1]
        if self._multi_label and self._num_labels not in (None, width):
            raise ValueError(f"num_labels is {self._num_labels} but the output has {width} units")
        y_true = _dense_targets(y_pred, y_true)
        weight = sample_weight.reshape(-1, *([1] * (y_pred.ndim - 1))).expand_as(y_pred)
        if self._label_weights is not None and len(self._label_weights) != width:
            raise ValueError(
                f"label_weights has {len(self._label_weights)} values but the output has "
                f"{width} units"
            )
        if self._label_weights is not None and not self._multi_label:
            weight = weight * y_pred.new_tensor(self._label_weights)
        columns = width if self._multi_label else 1
        y_pred, y_true, weight = (t.reshape(-1, columns) for t in (y_pred, y_true, weight))
        # One scatter per batch into (threshold, label) cells, then a reversed cumulative sum
        # gives the counts at every threshold.
        cells = self._buckets(y_pred) * columns + torch.arange(columns, device=y_pred.device)
        cells = cells.reshape(-1)
        size = self._n * columns
        positives = y_pred.new_zeros(size).scatter_add_(0, cells, (y_true * weight).reshape(-1))
        negatives = y_pred.new_zeros(size).scatter_add_(
            0, cells, ((1 - y_true) * weight).reshape(-1)
        )
        shape = self._state["true_positives"].shape
        tp = positives.reshape(self._n, columns).flip(0).cumsum(0).flip(0).reshape(shape)
        fp = negatives.reshape(self._n, columns).flip(0).cumsum(0).flip(0).reshape(shape)
        self._state["true_positives"] += tp
        self._state["false_positives"] += fp
        self._state["false_negatives"] += tp[0] - tp
        self._state["true_negatives"] += fp[0] - fp

    def compute(self) -> Tensor:
        torch = _torch()
        if not self._state:
            return torch.zeros(())
        tp, fp = self._state["true_positives"], self._state["false_positives"]
        tn, fn = self._state["true_negatives"], self._state["false_negatives"]
        if self._curve == "PR" and self._summation == "interpolation":
            return self._over_labels(self._interpolated_pr(tp, fp, fn))
        recall = _divide(tp, tp + fn)
        if self._curve == "ROC":
            x, y = _divide(fp, fp + tn), recall
        else:
            x, y = recall, _divide(tp, tp + fp)
        if self._summation == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self._summation == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._over_labels((x[:-1] - x[1:]) * heights)

    def _over_labels(self, terms: Tensor) -> Tensor:
        """The AUC from its per-threshold terms: summed, then (multi_label) averaged."""
        by_label = terms.sum(0)
        if not self._multi_label:
            return by_label
        if self._label_weights is None:
            return by_label.mean()
        weights = by_label.new_tensor(self._label_weights)
        return _divide((by_label * weights).sum(), weights.sum())

    @staticmethod
    def _interpolated_pr(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        """Davis & Goadrich's PR-AUC increments: precision interpolated between thresholds."""
        torch = _torch()
        d_tp = tp[:-1] - tp[1:]
        p = tp + fp
        d_p = p[:-1] - p[1:]
        slope = _divide(d_tp, d_p.clamp_min(0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = torch.where(both, _divide(p[:-1], p[1:].clamp_min(0)), torch.ones_like(p[1:]))
        return _divide(slope * (d_tp + intercept * ratio.log()), (tp[1:] + fn[1:]).clamp_min(0))
