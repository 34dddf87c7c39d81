"""The streaming metrics: device-side sums updated per batch, and the math they accumulate.

Torch is imported inside functions only, so the spec modules can import these names while
`kcli validate` stays torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

EPSILON = 1e-7  # Keras' backend epsilon


def _torch():
    import torch

    return torch


# -- the streaming metrics ----------------------------------------------------------------------
class Metric:
    """Streaming state of sums on the device; subclasses give `_add` and `compute`."""

    # True when `_add` takes sample_weight=None as all ones (it then skips the multiply).
    weights_optional = False
    # False for a run's unweighted metrics (Keras' `metrics`, as opposed to `weighted_metrics`):
    # `update` then drops the sample weights it is given.
    sample_weighted = True
    # True when the result depends only on the order of the scores along the last axis, so
    # logits give what softmax probabilities give (the trainer may then skip the softmax).
    order_only = False
    # Which model output it reads (a multi-output run's metrics each follow one output).
    output = 0

    def __init__(self) -> None:
        self._state: dict[str, Tensor] = {}

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        raise NotImplementedError  # every metric overrides this

    def update(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor | None = None) -> None:
        """Add a batch: y_pred (N, ...) probabilities, y_true labels, sample_weight (N,)."""
        torch = _torch()
        y_pred = y_pred.detach()
        y_pred = y_pred.float() if y_pred.dtype != torch.float64 else y_pred
        if y_pred.ndim == 1:
            y_pred = y_pred.unsqueeze(-1)
        y_true = y_true.to(y_pred.device)
        if not self.sample_weighted:
            sample_weight = None
        if sample_weight is None and not self.weights_optional:
            sample_weight = torch.ones(y_pred.shape[0], device=y_pred.device, dtype=y_pred.dtype)
        if sample_weight is not None:
            sample_weight = sample_weight.detach().to(y_pred.device, y_pred.dtype).reshape(-1)
        width = y_pred.shape[-1]
        if not self._state:
            self._state = self._initial(y_pred, width)
        elif next(iter(self._state.values())).device != y_pred.device:
            self._state = {k: v.to(y_pred.device) for k, v in self._state.items()}
        self._add(y_pred, y_true, sample_weight)

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> None:
        raise NotImplementedError  # every metric overrides this

    def compute(self) -> Tensor:
        raise NotImplementedError  # every metric overrides this

    def reset(self) -> None:
        self._state = {}

    def state(self) -> dict[str, Tensor]:
        """The running sums (empty before the first update)."""
        return dict(self._state)

    def load_state(self, state: dict[str, Tensor]) -> None:
        self._state = {k: v.detach().clone() for k, v in state.items()}


def _divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den, 0 where den is 0 (Keras' divide_no_nan)."""
    torch = _torch()
    return torch.where(den == 0, torch.zeros_like(num), num / torch.where(den == 0, 1.0, den))


def _aligned(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Targets at y_pred's rank: (N,) against (N, 1) gains the axis instead of broadcasting."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true.unsqueeze(-1)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return y_true.squeeze(-1)
    return y_true


align_targets = _aligned  # the public name plugin metrics use (kcli.plugin)


def _labels(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Integer class labels at y_pred's rank minus one (from (N,) or (N, 1) targets)."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return y_true.round().long() if y_true.is_floating_point() else y_true.long()


def _dense_targets(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Float targets shaped like y_pred; class labels against K > 1 units become one-hot."""
    torch = _torch()
    if (
        y_pred.shape[-1] > 1
        and y_true.ndim < y_pred.ndim
        or (y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1 and y_pred.shape[-1] > 1)
    ):
        labels = _labels(y_pred, y_true)
        return torch.nn.functional.one_hot(labels, y_pred.shape[-1]).to(y_pred.dtype)
    return _aligned(y_pred, y_true).to(y_pred.dtype)


def _per_sample(values: Tensor) -> Tensor:
    return values if values.ndim == 1 else values.flatten(1).mean(1)


def _in_top_k(y_pred: Tensor, labels: Tensor, k: int) -> Tensor:
    """1.0 where the label's score is at least the k-th largest (ties count as in, as Keras)."""
    k = min(k, y_pred.shape[-1])
    kth = y_pred.topk(k, dim=-1).values[..., -1]
    target = y_pred.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (target >= kth).to(y_pred.dtype)


class MeanMetric(Metric):
    """The sample-weighted mean of a per-sample value (sqrt of it for rmse)."""

    def __init__(self, values, root: bool = False, order_only: bool = False) -> None:
        super().__init__()
        self._values, self._root = values, root
        self.order_only = order_only

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        return {"total": like.new_zeros(()), "count": like.new_zeros(())}

    weights_optional = True

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor | None) -> None:
        values = _per_sample(self._values(y_pred, y_true))
        if sample_weight is None:  # the same sums as with weights of 1.0, two kernels fewer
            self._state["total"] += values.sum()
            self._state["count"] += values.shape[0]
            return
        self._state["total"] += (values * sample_weight).sum()
        self._state["count"] += sample_weight.sum()

    def compute(self) -> Tensor:
        if not self._state:
            return _torch().zeros(())
        mean = _divide(self._state["total"], self._state["count"])
        return mean.sqrt() if self._root else mean


class ConfusionMetric(Metric):
    """Precision or recall at one threshold, over all elements (Keras' confusion counts)."""

    def __init__(self, kind: str, threshold: float, top_k: int | None, class_id: int | None):
        super().__init__()
        self._kind, self._threshold, self._top_k, self._class_id = kind, threshold, top_k, class_id

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        return {
            k: like.new_zeros(()) for k in ("true_positives", "false_positives", "false_negatives")
        }

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> None:
        torch = _torch()
        y_true = _dense_targets(y_pred, y_true)
        if self._top_k is not None:
            # Only each row's top-k scores may count as positive: exactly k of them, chosen by
            # torch.topk as Keras does (ties broken by position, not all let in).
            top = y_pred.topk(min(self._top_k, y_pred.shape[-1]), dim=-1).indices
            kept = torch.zeros_like(y_pred, dtype=torch.bool).scatter_(-1, top, True)
            y_pred = torch.where(kept, y_pred, torch.full_like(y_pred, -torch.inf))
        weight = sample_weight.reshape(-1, *([1] * (y_pred.ndim - 1))).expand_as(y_pred)
        if self._class_id is not None:
            y_true, y_pred, weight = (t[..., self._class_id] for t in (y_true, y_pred, weight))
        predicted = (y_pred > self._threshold).to(weight.dtype)
        actual = (y_true != 0).to(weight.dtype)
        self._state["true_positives"] += (weight * predicted * actual).sum()
        self._state["false_positives"] += (weight * predicted * (1 - actual)).sum()
        self._state["false_negatives"] += (weight * (1 - predicted) * actual).sum()

    def compute(self) -> Tensor:
        if not self._state:
            return _torch().zeros(())
        tp = self._state["true_positives"]
        other = self._state["false_positives" if self._kind == "precision" else "false_negatives"]
        return _divide(tp, tp + other)


class CountMetric(Metric):
    """One cell of the confusion counts over all elements (Keras' TruePositives ...): the
    sample-weighted number of elements with p > threshold (predicted positive) or not, and a
    label that is nonzero (actual positive) or not."""

    def __init__(self, predicted_positive: bool, actually_positive: bool, threshold: float):
        super().__init__()
        self._predicted, self._actual, self._threshold = (
            predicted_positive,
            actually_positive,
            threshold,
        )

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        return {"count": like.new_zeros(())}

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> None:
        y_true = _dense_targets(y_pred, y_true)
        weight = sample_weight.reshape(-1, *([1] * (y_pred.ndim - 1))).expand_as(y_pred)
        predicted = (y_pred > self._threshold) == self._predicted
        actual = (y_true != 0) == self._actual
        self._state["count"] += (weight * (predicted & actual).to(weight.dtype)).sum()

    def compute(self) -> Tensor:
        return self._state["count"] if self._state else _torch().zeros(())


class F1Metric(Metric):
    """Keras' F1Score: per-class counts, F1 per class, then averaged (micro/macro/weighted)."""

    def __init__(self, average: str, threshold: float | None) -> None:
        super().__init__()
        self._average, self._threshold = average, threshold

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        names = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")
        return {k: like.new_zeros(width) for k in names}

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> None:
        y_true = _dense_targets(y_pred, y_true).reshape(-1, y_pred.shape[-1])
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
        weight = sample_weight.repeat_interleave(y_pred.shape[0] // sample_weight.shape[0])
        weight = weight.unsqueeze(-1)
        threshold = self._threshold
        if threshold is None and y_pred.shape[-1] == 1:
            threshold = 0.5  # argmax of one unit would call every sample positive
        if threshold is None:
            top = y_pred.amax(-1, keepdim=True)
            predicted = ((y_pred >= top) & (y_pred.abs() > 1e-9)).to(y_pred.dtype)
        else:
            predicted = (y_pred > threshold).to(y_pred.dtype)
        self._state["true_positives"] += (weight * predicted * y_true).sum(0)
        self._state["false_positives"] += (weight * predicted * (1 - y_true)).sum(0)
        self._state["false_negatives"] += (weight * (1 - predicted) * y_true).sum(0)
        self._state["intermediate_weights"] += (weight * y_true).sum(0)

    def compute(self) -> Tensor:
        if not self._state:
            return _torch().zeros(())
        tp, fp, fn = (
            self._state[k] for k in ("true_positives", "false_positives", "false_negatives")
        )
        if self._average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        f1 = 2 * precision * recall / (precision + recall + EPSILON)
        if self._average == "weighted":
            weights = self._state["intermediate_weights"]
            return (f1 * weights / (weights.sum() + EPSILON)).sum()
        return f1.mean()


class R2Metric(Metric):
    """Keras' R2Score: 1 - SS_res / SS_tot per output, averaged over outputs, optionally
    adjusted for `num_regressors` predictors: 1 - (1 - R2) * (n - 1) / (n - p - 1), where n
    counts target values (samples times outputs, as Keras counts them). When p >= n - 1 the
    adjustment is undefined and the plain R2 is kept (Keras warns and does the same)."""

    def __init__(self, class_aggregation: str, num_regressors: int = 0) -> None:
        super().__init__()
        self._aggregation = class_aggregation
        self._regressors = num_regressors

    def _initial(self, like: Tensor, width: int) -> dict[str, Tensor]:
        size = like[0].numel()
        sums = {k: like.new_zeros(size) for k in ("sum", "squared_sum", "total_mse", "count")}
        return sums | {"num_samples": like.new_zeros(())}

    def _add(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> None:
        y_true = _aligned(y_pred, y_true).to(y_pred.dtype).reshape(y_pred.shape[0], -1)
        y_pred = y_pred.reshape(y_pred.shape[0], -1)
        weight = sample_weight.unsqueeze(-1)
        self._state["sum"] += (weight * y_true).sum(0)
        self._state["squared_sum"] += (weight * y_true.square()).sum(0)
        self._state["total_mse"] += (weight * (y_true - y_pred).square()).sum(0)
        self._state["count"] += weight.sum(0).expand_as(self._state["count"])
        self._state["num_samples"] += y_true.numel()

    def compute(self) -> Tensor:
        torch = _torch()
        if not self._state:
            return torch.zeros(())
        mean = self._state["sum"] / self._state["count"]
        total = self._state["squared_sum"] - self._state["sum"] * mean
        scores = 1 - self._state["total_mse"] / total
        scores = torch.where(torch.isinf(scores), torch.zeros_like(scores), scores)
        if self._aggregation == "variance_weighted_average":
            score = (scores * total / total.sum()).sum()
        else:
            score = scores.mean()
        n, p = self._state.get("num_samples"), self._regressors
        if p and n is not None and p < n - 1:
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return score


# -- per-sample values of the mean metrics ------------------------------------------------------
def _exact_match(y_pred: Tensor, y_true: Tensor) -> Tensor:
    return (_aligned(y_pred, y_true).to(y_pred.dtype) == y_pred).to(y_pred.dtype).mean(-1)


def _categorical_match(y_pred: Tensor, y_true: Tensor) -> Tensor:
    return (y_true.argmax(-1) == y_pred.argmax(-1)).to(y_pred.dtype)


def _sparse_match(y_pred: Tensor, y_true: Tensor) -> Tensor:
    return (_labels(y_pred, y_true) == y_pred.argmax(-1)).to(y_pred.dtype)


def _errors(y_pred: Tensor, y_true: Tensor) -> Tensor:
    return y_pred - _aligned(y_pred, y_true).to(y_pred.dtype)


def _squared_error(y_pred: Tensor, y_true: Tensor) -> Tensor:
    return _errors(y_pred, y_true).square().mean(-1)


def _absolute_error(y_pred: Tensor, y_true: Tensor) -> Tensor:
    return _errors(y_pred, y_true).abs().mean(-1)


def _percentage_error(y_pred: Tensor, y_true: Tensor) -> Tensor:
    scale = _aligned(y_pred, y_true).to(y_pred.dtype).abs().clamp_min(EPSILON)
    return 100.0 * (_errors(y_pred, y_true).abs() / scale).mean(-1)
