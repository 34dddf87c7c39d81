"""Metrics: streaming values against hand-computed ones; AUC against a small numpy trapezoid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from kcli.compile.losses import LossRef
from kcli.compile.metrics import MetricRef

ADAPTER = TypeAdapter(MetricRef)


def metric(value):
    return ADAPTER.validate_python(value)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def value(spec, y_pred, y_true, sample_weight=None):
    m = metric(spec).build()
    m.update(y_pred, y_true, sample_weight)
    return m.compute().item()


def test_log_names():
    assert metric("accuracy").log_name == "accuracy"
    assert metric("mse").log_name == "mse"
    assert metric("mean_squared_error").log_name == "mse"
    assert metric("MeanAbsoluteError").log_name == "mae"
    assert metric("rmse").log_name == "rmse"
    assert metric("AUC").log_name == "auc"
    assert metric({"type": "auc", "name": "pr_auc", "curve": "PR"}).log_name == "pr_auc"


def test_accuracy_resolves_from_the_loss():
    losses = TypeAdapter(LossRef)
    for loss, resolved in [
        ("sparse_categorical_crossentropy", "sparse_categorical_accuracy"),
        ("categorical_crossentropy", "categorical_accuracy"),
        ("binary_crossentropy", "binary_accuracy"),
        ("mse", "accuracy"),
    ]:
        spec = metric("accuracy").resolve(losses.validate_python(loss))
        assert spec.type == resolved and spec.log_name == "accuracy"
    mae = metric("mae")
    assert mae.resolve(losses.validate_python("binary_crossentropy")) is mae


def test_binary_accuracy_streams_with_sample_weights():
    p = t([[0.6], [0.4], [0.5], [0.9]])  # > 0.5 -> 1, 0, 0, 1 (0.5 is not > 0.5)
    y = t([1.0, 0.0, 1.0, 0.0])  # matches: 1, 1, 0, 0
    assert value("binary_accuracy", p, y) == pytest.approx(0.5)
    # weights 1, 2, 3, 4: (1 + 2) / 10
    assert value("binary_accuracy", p, y, t([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.3)
    m = metric("binary_accuracy").build()
    m.update(p[:2], y[:2])
    m.update(p[2:], y[2:])
    assert m.compute().item() == pytest.approx(0.5)
    m.reset()
    m.update(p[:1], y[:1])
    assert m.compute().item() == 1.0
    assert value({"type": "binary_accuracy", "threshold": 0.45}, p, y) == pytest.approx(0.75)


def test_categorical_sparse_and_top_k_accuracy():
    p = t([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    labels = t([1.0, 2.0, 1.0])  # argmax 1, 0, 2 -> right, wrong, wrong
    onehot = torch.nn.functional.one_hot(labels.long(), 3).float()
    assert value("categorical_accuracy", p, onehot) == pytest.approx(1 / 3)
    assert value("sparse_categorical_accuracy", p, labels) == pytest.approx(1 / 3)
    assert value("sparse_categorical_accuracy", p, labels.reshape(3, 1)) == pytest.approx(1 / 3)
    # top 2: sample 2's label 2 (0.3) is 2nd -> in; sample 3's label 1 (0.3) is 2nd -> in
    assert value({"type": "sparse_top_k_categorical_accuracy", "k": 2}, p, labels) == 1.0
    assert value({"type": "top_k_categorical_accuracy", "k": 1}, p, onehot) == pytest.approx(1 / 3)
    # ties count as in: label 0 scores 0.2 and ties with the 2nd best 0.2 (k = 2)
    assert (
        value({"type": "sparse_top_k_categorical_accuracy", "k": 2}, t([[0.6, 0.2, 0.2]]), t([2.0]))
        == 1.0
    )
    assert value("sparse_top_k_categorical_accuracy", p, labels) == 1.0  # k 5 > 3 classes


def test_precision_and_recall():
    p = t([[0.9], [0.6], [0.3], [0.8]])  # > 0.5: 1, 1, 0, 1
    y = t([1.0, 0.0, 1.0, 0.0])  # tp 1 (first), fp 2, fn 1
    assert value("precision", p, y) == pytest.approx(1 / 3)
    assert value("recall", p, y) == pytest.approx(1 / 2)
    # weights 2, 1, 1, 1: tp 2, fp 2, fn 1
    w = t([2.0, 1.0, 1.0, 1.0])
    assert value("precision", p, y, w) == pytest.approx(0.5)
    assert value("recall", p, y, w) == pytest.approx(2 / 3)
    assert value("precision", t([[0.1]]), t([1.0])) == 0.0  # 0/0 -> 0
    # class_id on a softmax output with integer labels (one-hot internally)
    probs = t([[0.7, 0.3], [0.4, 0.6], [0.8, 0.2]])
    labels = t([0.0, 0.0, 1.0])  # class 1 predicted for sample 2 only (a false positive)
    assert value({"type": "recall", "class_id": 0}, probs, labels) == pytest.approx(0.5)
    assert value({"type": "precision", "class_id": 1}, probs, labels) == 0.0


def test_precision_and_recall_top_k_ignore_the_threshold_by_default():
    # Keras: with top_k and no thresholds, the threshold is -inf, so a row's k best scores
    # are its positives whatever their value. Issue 21's reproducer: 0.3 is the top score.
    p, y = t([[0.1, 0.3, 0.2]]), t([[0.0, 1.0, 0.0]])
    assert value({"type": "precision", "top_k": 1}, p, y) == 1.0  # tp 1, fp 0
    assert value({"type": "recall", "top_k": 1}, p, y) == 1.0
    # top 2 of [0.1, 0.3, 0.2] are classes 1 and 2: tp 1, fp 1 -> precision 1/2; recall 1.
    assert value({"type": "precision", "top_k": 2}, p, y) == pytest.approx(0.5)
    # An explicit threshold still applies on top of top_k: 0.3 > 0.5 is false -> 0/0 = 0.
    assert value({"type": "precision", "top_k": 1, "thresholds": 0.5}, p, y) == 0.0
    # Ties: exactly k scores count (torch.topk's pick, as in Keras), not every tied one.
    tied = t([[0.4, 0.4, 0.2]])
    assert value({"type": "recall", "top_k": 1}, tied, t([[1.0, 1.0, 0.0]])) == 0.5


def test_confusion_counts_with_weights_and_thresholds():
    p = t([[0.9], [0.6], [0.3], [0.8]])  # > 0.5: 1, 1, 0, 1
    y = t([1.0, 0.0, 1.0, 0.0])
    w = t([2.0, 1.0, 1.0, 1.0])
    # TP: sample 0 (weight 2); FP: samples 1 and 3; TN: none; FN: sample 2.
    assert value("TruePositives", p, y, w) == 2.0
    assert value("false_positives", p, y, w) == 2.0
    assert value("true_negatives", p, y, w) == 0.0
    assert value("false_negatives", p, y, w) == 1.0
    # At 0.7: predicted 1, 0, 0, 1 -> TP 2, FP 1 (sample 3), TN 1 (sample 1), FN 1.
    cells = ("true_positives", "false_positives", "true_negatives", "false_negatives")
    counts = [value({"type": name, "thresholds": 0.7}, p, y, w) for name in cells]
    assert counts == [2.0, 1.0, 1.0, 1.0]
    assert sum(counts) == float(w.sum())  # every element falls in one cell
    assert metric("true_positives").log_name == "true_positives"


def test_f1_score_macro_micro_and_binary():
    p = t([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6]])
    labels = t([0.0, 1.0, 2.0, 2.0])  # predicted (argmax) 0, 1, 1, 2
    # class 0: tp 1 fp 0 fn 0 -> 1; class 1: tp 1 fp 1 fn 0 -> p .5 r 1 -> 2/3;
    # class 2: tp 1 fp 0 fn 1 -> p 1 r .5 -> 2/3; macro = (1 + 2/3 + 2/3)/3 = 7/9
    assert value("f1_score", p, labels) == pytest.approx(7 / 9, rel=1e-5)
    # micro: tp 3, fp 1, fn 1 -> 0.75
    assert value({"type": "f1_score", "average": "micro"}, p, labels) == pytest.approx(0.75, 1e-5)
    # weighted by class support 1, 1, 2: (1 + 2/3 + 2*2/3)/4 = 0.75
    got = value({"type": "f1_score", "average": "weighted"}, p, labels)
    assert got == pytest.approx(0.75, rel=1e-5)
    # one sigmoid unit: threshold 0.5 -> predicted 1, 0, 1 vs 1, 1, 1: p 1, r 2/3 -> 0.8
    got = value("f1_score", t([[0.9], [0.2], [0.7]]), t([1.0, 1.0, 1.0]))
    assert got == pytest.approx(0.8, rel=1e-5)


def keras_auc(scores, labels, n=200, curve="ROC"):
    """Keras' thresholds -eps, 1/(n-1) ... (n-2)/(n-1), 1+eps; counts at p > threshold."""
    thresholds = [-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7]
    scores, labels = np.asarray(scores), np.asarray(labels)
    tp = np.array([np.sum((scores > th) & (labels == 1)) for th in thresholds], float)
    fp = np.array([np.sum((scores > th) & (labels == 0)) for th in thresholds], float)
    fn = labels.sum() - tp
    tn = (1 - labels).sum() - fp
    recall = tp / (tp + fn)
    if curve == "ROC":
        x, y = fp / (fp + tn), recall
    else:  # minoring-free plain trapezoid of precision over recall (precision 0 where 0/0)
        x, y = recall, np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2))


def test_auc_roc_against_a_numpy_trapezoid():
    scores = [0.91, 0.12, 0.55, 0.43, 0.77, 0.31, 0.66, 0.08, 0.49, 0.83]
    labels = [1, 0, 1, 0, 1, 0, 0, 0, 1, 1]
    want = keras_auc(scores, labels)
    # 5 positives x 5 negatives: positives 0.55 and 0.49 rank below negative 0.66, so 2 of
    # 25 pairs are misordered -> exact AUC 23/25 (fine thresholds separate every score)
    assert want == pytest.approx(0.92, abs=1e-9)
    m = metric("auc").build()
    m.update(t(scores[:6]).unsqueeze(-1), t(labels[:6]))  # streamed over two batches
    m.update(t(scores[6:]).unsqueeze(-1), t(labels[6:]))
    assert m.compute().item() == pytest.approx(want, abs=1e-6)
    # coarse thresholds: Keras' interpolation between 5 thresholds, not the exact 0.92
    want5 = keras_auc(scores, labels, n=5)
    assert value({"type": "auc", "num_thresholds": 5}, t(scores), t(labels)) == pytest.approx(
        want5, abs=1e-6
    )
    assert want5 != pytest.approx(0.92)
    # PR with trapezoid summation ("interpolation" for PR is Davis-Goadrich, below)
    got = value(
        {"type": "auc", "curve": "PR", "summation_method": "majoring"}, t(scores), t(labels)
    )
    assert 0.9 < got <= 1.0


def test_auc_pr_interpolation_by_hand():
    # Two thresholds only (n=3: -eps, 0.5, 1+eps). Scores 0.9 (pos), 0.2 (neg), 0.8 (neg).
    # Counts: th -eps: tp 1 fp 2; th 0.5: tp 1 fp 1; th 1+eps: tp 0 fp 0; fn = 1 - tp.
    # Interval 1: dtp 0, dp 1 -> slope 0, no increment.
    # Interval 2: dtp 1, dp 2, slope 0.5, intercept tp - slope*p = 0 - 0 = 0; p ratio: p[2]=0
    #   so ratio 1 -> increment slope*(dtp + 0) / (tp + fn at the end = 1) = 0.5.
    got = value(
        {"type": "auc", "curve": "PR", "num_thresholds": 3},
        t([[0.9], [0.2], [0.8]]),
        t([1.0, 0.0, 0.0]),
    )
    assert got == pytest.approx(0.5)


def test_regression_metrics():
    p, y = t([[1.0], [2.0], [4.0]]), t([2.0, 2.0, 2.0])  # errors -1, 0, 2
    assert value("mse", p, y) == pytest.approx(5 / 3)
    assert value("mae", p, y) == pytest.approx(1.0)
    assert value("rmse", p, y) == pytest.approx(math.sqrt(5 / 3))
    assert value("mape", p, y) == pytest.approx(100 * (0.5 + 0 + 1) / 3)
    w = t([1.0, 1.0, 2.0])  # weighted mse: (1 + 0 + 2*4) / 4
    assert value("mse", p, y, w) == pytest.approx(9 / 4)


def test_auc_keras_arguments_multi_label_label_weights_thresholds_from_logits():
    # Two labels, two samples, thresholds [-eps, 0.5, 1 + eps] (thresholds: [0.5]).
    # Label A: scores [0.9, 0.2], truth [1, 0] -> ROC points (1, 1), (0, 1), (0, 0): area 1.
    # Label B: scores [0.9, 0.2], truth [0, 1] -> points (1, 1), (1, 0), (0, 0): area 0.
    p, y = t([[0.9, 0.9], [0.2, 0.2]]), t([[1.0, 0.0], [0.0, 1.0]])
    base = {"type": "auc", "thresholds": [0.5]}
    assert value(base | {"multi_label": True}, p, y) == pytest.approx(0.5)  # mean of 1 and 0
    weighted = base | {"multi_label": True, "label_weights": [3.0, 1.0]}
    assert value(weighted, p, y) == pytest.approx(0.75)  # (3 * 1 + 1 * 0) / 4
    # Pooled (multi_label false): 4 scores; at 0.5 tp 1 of 2, fp 1 of 2 -> points (1, 1),
    # (.5, .5), (0, 0): trapezoids .5 * .75 + .5 * .25 = 0.5.
    assert value(base, p, y) == pytest.approx(0.5)
    # Pooled with label weights 3 (A) and 1 (B): at 0.5 tpr 3/4, fpr 1/4 ->
    # .75 * (1 + .75) / 2 + .25 * .75 / 2 = 0.75.
    assert value(base | {"label_weights": [3.0, 1.0]}, p, y) == pytest.approx(0.75)
    # from_logits: a sigmoid first; logits 2.2 and -1.4 are 0.90 and 0.20: the same areas.
    logits = t([[2.2, 2.2], [-1.4, -1.4]])
    assert value(weighted | {"from_logits": True}, logits, y) == pytest.approx(0.75)
    # num_labels belongs to multi_label, and must match the output when given.
    with pytest.raises(ValueError, match="only when multi_label"):
        metric({"type": "auc", "num_labels": 2})
    with pytest.raises(ValueError, match="num_labels is 3"):
        value({"type": "auc", "multi_label": True, "num_labels": 3}, p, y)


def test_r2_score():
    y = t([1.0, 2.0, 3.0, 4.0])
    p = t([[1.5], [2.0], [2.5], [4.0]])
    # SS_res = 0.25 + 0 + 0.25 + 0 = 0.5; SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5; R2 = 0.9
    assert value("r2_score", p, y) == pytest.approx(0.9, rel=1e-6)
    m = metric("r2_score").build()
    m.update(p[:2], y[:2])
    m.update(p[2:], y[2:])
    assert m.compute().item() == pytest.approx(0.9, rel=1e-6)
    # two outputs, uniform average: output 2 predicted perfectly -> (0.9 + 1) / 2
    p2, y2 = torch.cat([p, y[:, None]], 1), torch.stack([y, y], 1)
    assert value("r2_score", p2, y2) == pytest.approx(0.95, rel=1e-6)


def test_r2_score_keras_arguments():
    y = t([1.0, 2.0, 3.0, 4.0])
    p = t([[1.5], [2.0], [2.5], [4.0]])
    # Keras' name for the variance-weighted average, and kcli's older spelling of it.
    for name in ("variance_weighted_average", "variance_weighted"):
        assert metric({"type": "r2_score", "class_aggregation": name}).class_aggregation == (
            "variance_weighted_average"
        )
    # Two outputs: output 1 R2 0.9 with SS_tot 5, output 2 (y * 2, predicted exactly) R2 1 with
    # SS_tot 20: weighted by variance (5 * 0.9 + 20 * 1) / 25 = 0.98.
    p2, y2 = torch.cat([p, 2 * y[:, None]], 1), torch.stack([y, 2 * y], 1)
    weighted = {"type": "r2_score", "class_aggregation": "variance_weighted_average"}
    assert value(weighted, p2, y2) == pytest.approx(0.98, rel=1e-6)
    # Adjusted R2 with p = 1 regressor and n = 4 values: 1 - (1 - 0.9) * 3 / 2 = 0.85.
    assert value({"type": "r2_score", "num_regressors": 1}, p, y) == pytest.approx(0.85, rel=1e-6)
    # n counts target values (4 samples x 2 outputs = 8, as Keras counts them):
    # 1 - (1 - 0.95) * 7 / 6 on the uniform average.
    adjusted = value({"type": "r2_score", "num_regressors": 1}, p2, y2)
    assert adjusted == pytest.approx(1 - (1 - 0.95) * 7 / 6, rel=1e-6)
    # p >= n - 1 leaves the plain R2 (the adjustment would divide by zero or flip sign).
    assert value({"type": "r2_score", "num_regressors": 3}, p, y) == pytest.approx(0.9, rel=1e-6)


@pytest.mark.parametrize("name", ["accuracy", "precision", "f1_score", "auc", "r2_score"])
def test_state_is_sums_that_merge_like_an_all_reduce(name):
    spec = metric(name)
    if name == "accuracy":
        spec = spec.resolve(TypeAdapter(LossRef).validate_python("binary_crossentropy"))
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(20, 1, generator=gen)
    y = (torch.rand(20, generator=gen) > 0.5).float()
    whole = spec.build()
    whole.update(p, y)
    a, b = spec.build(), spec.build()
    a.update(p[:8], y[:8])
    b.update(p[8:], y[8:])
    merged = {k: v + b.state()[k] for k, v in a.state().items()}  # what all_reduce(SUM) does
    c = spec.build()
    c.load_state(merged)
    assert c.compute().item() == pytest.approx(whole.compute().item(), rel=1e-5)
    assert all(isinstance(v, torch.Tensor) for v in merged.values())
