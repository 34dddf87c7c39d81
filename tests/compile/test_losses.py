"""Losses: per-sample values against Keras' formulas worked out by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from kcli.compile.losses import LossRef

ADAPTER = TypeAdapter(LossRef)
CLIP = 1e-7  # Keras' probability clip


def loss(value, link=None):
    return ADAPTER.validate_python(value).build(link)


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def approx(got, want, rel=1e-6):
    assert got.tolist() == pytest.approx(want, rel=rel, abs=1e-9)


def test_names_aliases_and_camel_case():
    for name, canonical in [
        ("mse", "mean_squared_error"),
        ("MeanSquaredError", "mean_squared_error"),
        ("mae", "mean_absolute_error"),
        ("mape", "mean_absolute_percentage_error"),
        ("msle", "mean_squared_logarithmic_error"),
        ("kld", "kl_divergence"),
        ("KLDivergence", "kl_divergence"),
        ("BinaryCrossentropy", "binary_crossentropy"),
        ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"),
        ("CategoricalFocalCrossentropy", "categorical_focal_crossentropy"),
        ("LogCosh", "log_cosh"),
        ("CosineSimilarity", "cosine_similarity"),
    ]:
        assert ADAPTER.validate_python(name).type == canonical
    with pytest.raises(ValidationError, match="did you mean"):
        ADAPTER.validate_python("categorical_crossentropi")


def test_regression_losses():
    y_pred, y_true = t([[1.0, 2.0], [3.0, 5.0]]), t([[1.0, 1.0], [2.0, 3.0]])
    approx(loss("mse")(y_pred, y_true), [0.5, 2.5])  # [(0+1)/2, (1+4)/2]
    approx(loss("mae")(y_pred, y_true), [0.5, 1.5])
    # mape: 100 * mean(|2-1|/2, |4-5|/4) = 100 * (0.5 + 0.25)/2 = 37.5
    approx(loss("mape")(t([[1.0, 5.0]]), t([[2.0, 4.0]])), [37.5])
    # msle: log(1+1) - log(max(0, 1e-7)+1) squared, and 0 for the second element; mean of 2
    want = (math.log(2.0) - math.log1p(1e-7)) ** 2 / 2
    approx(loss("msle")(t([[1.0, 1.0]]), t([[0.0, 1.0]])), [want])
    # huber delta 1: |e| = 0.5 -> 0.5*0.25 = 0.125; |e| = 2 -> 1*2 - 0.5 = 1.5; mean 0.8125
    approx(loss("huber")(t([[0.5, 2.0]]), t([[0.0, 0.0]])), [0.8125])
    # delta 3: both quadratic: (0.125 + 2)/2
    approx(loss({"type": "huber", "delta": 3.0})(t([[0.5, 2.0]]), t([[0.0, 0.0]])), [1.0625])
    want = (math.log(math.cosh(0.5)) + math.log(math.cosh(-1.0))) / 2
    approx(loss("log_cosh")(t([[0.5, -1.0]]), t([[0.0, 0.0]])), [want])
    # log_cosh does not overflow where cosh would: log(cosh(1000)) = 1000 - log 2
    approx(loss("log_cosh")(t([[1000.0]]), t([[0.0]])), [1000 - math.log(2)])
    # poisson: 2 - 1*log(2 + 1e-7)
    approx(loss("poisson")(t([[2.0]]), t([[1.0]])), [2 - math.log(2 + 1e-7)])
    # kld: 0.5*log(0.5/0.25) + 0.5*log(0.5/0.75) (a sum over the axis, not a mean)
    want = 0.5 * math.log(2.0) + 0.5 * math.log(0.5 / 0.75)
    approx(loss("kld")(t([[0.25, 0.75]]), t([[0.5, 0.5]])), [want])
    # cosine_similarity: -(1,0).(1,1)/sqrt2
    approx(loss("cosine_similarity")(t([[1.0, 1.0]]), t([[1.0, 0.0]])), [-1 / math.sqrt(2)])


def test_hinge_losses_convert_zero_one_labels():
    y_pred, y_true = t([[0.3, 0.4]]), t([[0.0, 1.0]])  # labels become -1, 1
    # hinge: max(1 + 0.3, 0) = 1.3, max(1 - 0.4, 0) = 0.6; mean 0.95
    approx(loss("hinge")(y_pred, y_true), [0.95])
    approx(loss("squared_hinge")(y_pred, y_true), [(1.69 + 0.36) / 2])
    approx(loss("hinge")(y_pred, t([[-1.0, 1.0]])), [0.95])  # -1/1 labels as given
    # categorical_hinge: pos = 0.5, neg = max(0.2, 0, 0.3) = 0.3 -> 0.3 - 0.5 + 1 = 0.8
    approx(loss("categorical_hinge")(t([[0.2, 0.5, 0.3]]), t([[0.0, 1.0, 0.0]])), [0.8])


def test_binary_crossentropy_on_probabilities_and_logits():
    p, y = t([[0.8], [0.4]]), t([[1.0], [0.0]])
    want = [-math.log(0.8), -math.log(0.6)]
    approx(loss("binary_crossentropy")(p, y), want)
    logits = torch.logit(p)
    approx(loss({"type": "binary_crossentropy", "from_logits": True})(logits, y), want)
    spec = ADAPTER.validate_python("binary_crossentropy")
    assert spec.folds_link("sigmoid") and not spec.folds_link("softmax")
    approx(spec.build("sigmoid")(logits, y), want)  # folded: the trainer passes logits
    # label_smoothing 0.2: y = 1 -> 0.9: -(0.9 log 0.8 + 0.1 log 0.2)
    smooth = loss({"type": "binary_crossentropy", "label_smoothing": 0.2})
    approx(smooth(t([[0.8]]), t([[1.0]])), [-(0.9 * math.log(0.8) + 0.1 * math.log(0.2))])


def test_categorical_crossentropy_renormalizes_and_smooths():
    y = t([[0.0, 1.0, 0.0]])
    approx(loss("categorical_crossentropy")(t([[0.2, 0.7, 0.1]]), y), [-math.log(0.7)])
    # un-normalized [0.4, 1.4, 0.2] sums to 2: renormalized to the same probabilities
    approx(loss("categorical_crossentropy")(t([[0.4, 1.4, 0.2]]), y), [-math.log(0.7)])
    # label_smoothing 0.3 over K=3: y = [0.1, 0.8, 0.1]
    smooth = loss({"type": "categorical_crossentropy", "label_smoothing": 0.3})
    want = -(0.1 * math.log(0.2) + 0.8 * math.log(0.7) + 0.1 * math.log(0.1))
    approx(smooth(t([[0.2, 0.7, 0.1]]), y), [want])


def test_folded_softmax_equals_keras_clipped_value_on_moderate_probabilities():
    logits = t([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    probs = torch.softmax(logits, -1)
    labels = t([1.0, 0.0])
    onehot = t([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # By hand: -log softmax = logsumexp - logit of the true class
    lse = [math.log(sum(math.exp(v) for v in row)) for row in logits.tolist()]
    want = [lse[0] - 2.0, lse[1] - 0.0]
    for name, target in [
        ("sparse_categorical_crossentropy", labels),
        ("categorical_crossentropy", onehot),
    ]:
        spec = ADAPTER.validate_python(name)
        assert spec.folds_link("softmax")
        approx(spec.build("softmax")(logits, target), want)  # logits in
        approx(spec.build(None)(probs, target), want)  # Keras' path on probabilities
        approx(loss({"type": name, "from_logits": True})(logits, target), want)


def test_keras_clip_caps_the_loss_but_the_folded_path_does_not():
    # True class has probability ~0: Keras' clip gives -log(1e-7) = 16.118.
    probs = t([[1.0, 0.0]])
    y = t([[0.0, 1.0]])
    approx(loss("categorical_crossentropy")(probs, y), [-math.log(CLIP)])
    logits = t([[0.0, -50.0]])
    folded = ADAPTER.validate_python("categorical_crossentropy").build("softmax")
    assert folded(logits, y).item() == pytest.approx(50.0, rel=1e-9)  # the true value


def test_sparse_labels_shapes_and_float_labels():
    probs = t([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    want = [-math.log(0.6), -math.log(0.6)]
    fn = loss("sparse_categorical_crossentropy")
    approx(fn(probs, torch.tensor([1, 2])), want)
    approx(fn(probs, torch.tensor([[1], [2]])), want)
    approx(fn(probs, t([1.0, 2.0])), want)


def test_targets_n_vs_n1_are_not_broadcast():
    y_pred = t([[1.0], [2.0], [3.0], [4.0]])
    y_true = t([1.0, 1.0, 1.0, 1.0])
    out = loss("mse")(y_pred, y_true)
    assert out.shape == (4,)
    approx(out, [0.0, 1.0, 4.0, 9.0])  # not the mean of a (4, 4) matrix
    out = loss("binary_crossentropy")(t([[0.8], [0.4]]), t([1.0, 0.0]))
    approx(out, [-math.log(0.8), -math.log(0.6)])
    out = loss("mse")(t([1.0, 2.0]), t([[0.0], [0.0]]))  # (N,) predictions, (N, 1) targets
    approx(out, [1.0, 4.0])


def test_sample_weight_reduction_is_sum_over_n():
    # Keras: sum(loss * w) / N, weights not renormalized: (0.5*1 + 2.5*3) / 2 = 4.0
    per_sample = loss("mse")(t([[1.0, 2.0], [3.0, 5.0]]), t([[1.0, 1.0], [2.0, 3.0]]))
    weights = t([1.0, 3.0])
    assert ((per_sample * weights).sum() / 2).item() == pytest.approx(4.0)


def test_sequence_outputs_average_the_time_axis():
    # (N=1, T=2, K=2): per step mse [0.5, 2.5], per sample their mean 1.5
    out = loss("mse")(t([[[1.0, 2.0], [3.0, 5.0]]]), t([[[1.0, 1.0], [2.0, 3.0]]]))
    approx(out, [1.5])


def test_focal_crossentropies():
    # binary: y = 1, p = 0.8: p_t = 0.8, (1 - 0.8)^2 * -log 0.8 = 0.04 * 0.223144
    want = 0.04 * -math.log(0.8)
    approx(loss("binary_focal_crossentropy")(t([[0.8]]), t([[1.0]])), [want])
    balanced = loss({"type": "binary_focal_crossentropy", "apply_class_balancing": True})
    approx(balanced(t([[0.8]]), t([[1.0]])), [0.25 * want])
    approx(balanced(t([[0.8]]), t([[0.0]])), [0.75 * 0.64 * -math.log(0.2)])
    spec = ADAPTER.validate_python("binary_focal_crossentropy")
    assert spec.folds_link("sigmoid")
    approx(spec.build("sigmoid")(torch.logit(t([[0.8]])), t([[1.0]])), [want])
    # categorical: alpha 0.25 * (1 - 0.7)^2 * -log 0.7
    want = 0.25 * 0.09 * -math.log(0.7)
    approx(loss("categorical_focal_crossentropy")(t([[0.2, 0.7, 0.1]]), t([[0, 1.0, 0]])), [want])
    spec = ADAPTER.validate_python("categorical_focal_crossentropy")
    logits = torch.log(t([[0.2, 0.7, 0.1]]))
    approx(spec.build("softmax")(logits, t([[0, 1.0, 0]])), [want])


def test_binary_focal_from_logits_in_both_regimes():
    focal = loss({"type": "binary_focal_crossentropy", "from_logits": True})
    # Moderate logits, where Keras' probability clip does not bite: Keras' value exactly.
    # logit 1, y = 1: p = sigmoid(1) = 0.7310586; (1 - p)^2 * -log p = 0.0723295 * 0.3132617.
    p = 1 / (1 + math.exp(-1.0))
    approx(focal(t([[1.0]]), t([[1.0]])), [(1 - p) ** 2 * -math.log(p)])
    # A confidently wrong logit: kcli computes from the logit, -log sigmoid(-30) = softplus(30)
    # = 30.0 (times a focal factor of 1 - 9.4e-14). Keras takes the sigmoid first and clips it to
    # 1e-7, giving -log(1e-7) = 16.118 and a zero gradient; kcli keeps the true value and slope.
    got = focal(t([[-30.0]]), t([[1.0]]))
    approx(got, [30.0])
    assert got.item() > -math.log(1e-7) + 13
    logits = t([[-30.0]]).requires_grad_()
    focal(logits, t([[1.0]])).sum().backward()
    # d/dz [(1 - s)^2 * softplus(-z)] at z = -30 is about -1 (Keras': 0).
    assert logits.grad.item() == pytest.approx(-1.0, abs=1e-6)


def test_sparse_crossentropy_ignore_class_averages_over_the_other_labels():
    # Keras: the ignored positions give 0, and the batch loss is sum / (valid count + 1e-7).
    spec = ADAPTER.validate_python(
        {"type": "sparse_categorical_crossentropy", "ignore_class": -1, "from_logits": True}
    )
    fn = spec.build()
    logits = t([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0], [1.0, 1.0]])
    labels = t([0.0, -1.0, 1.0, -1.0])
    per_sample = fn(logits, labels)
    ce = -torch.log_softmax(logits, -1)
    want_mean = (ce[0, 0] + ce[2, 1]) / (2 + 1e-7)
    # The trainer's reduction is the plain mean of the per-sample values (no sample weights).
    assert per_sample.mean().item() == pytest.approx(want_mean.item(), rel=1e-9)
    assert per_sample[1].item() == 0.0 and per_sample[3].item() == 0.0
    # Sequences: labels (N, T) with padding 0 ignored; the mean runs over the valid steps only.
    seq = ADAPTER.validate_python({"type": "sparse_categorical_crossentropy", "ignore_class": 0})
    probs = t([[[0.2, 0.8], [0.9, 0.1]], [[0.6, 0.4], [0.3, 0.7]]])
    steps = t([[1.0, 0.0], [0.0, 1.0]])  # valid: (0, 0) label 1 and (1, 1) label 1
    got = seq.build()(probs, steps).mean().item()
    assert got == pytest.approx((-math.log(0.8) - math.log(0.7)) / (2 + 1e-7), rel=1e-9)
    # A label equal to the ignored class does not count as "labels go up to ...".
    assert seq.check_output((2, 2), 2) is None
    wide = ADAPTER.validate_python({"type": "sparse_categorical_crossentropy", "ignore_class": 9})
    assert wide.check_output((3,), 10) is None
    assert ADAPTER.validate_python("sparse_categorical_crossentropy").check_output((3,), 10)


def test_folds_link_only_without_from_logits():
    spec = ADAPTER.validate_python({"type": "categorical_crossentropy", "from_logits": True})
    assert not spec.folds_link("softmax")
    assert not ADAPTER.validate_python("mse").folds_link("sigmoid")
    assert not ADAPTER.validate_python("sparse_categorical_crossentropy").folds_link(None)


def test_target_kind():
    kinds = {
        "sparse_categorical_crossentropy": "sparse",
        "categorical_crossentropy": "onehot",
        "binary_crossentropy": "binary",
        "mse": "continuous",
        "hinge": "binary",
    }
    for name, kind in kinds.items():
        assert ADAPTER.validate_python(name).target_kind == kind


def test_check_output():
    sparse = ADAPTER.validate_python("sparse_categorical_crossentropy")
    assert "1 unit" in sparse.check_output((1,), 2)
    assert "labels go up to 9" in sparse.check_output((5,), 10)
    assert sparse.check_output((10,), 10, target_shape=()) is None
    cce = ADAPTER.validate_python("categorical_crossentropy")
    assert "3 classes" in cce.check_output((4,), 3)
    assert "one-hot" in cce.check_output((4,), 4, target_shape=())
    assert cce.check_output((4,), 4, target_shape=(4,)) is None
    bce = ADAPTER.validate_python("binary_crossentropy")
    assert "found 5 classes" in bce.check_output((1,), 5)
    assert "single classes" in bce.check_output((2,), 2, target_shape=())
    assert bce.check_output((1,), 2, target_shape=()) is None
    assert bce.check_output((3,), 3, target_shape=(3,)) is None  # multi-label
    mse = ADAPTER.validate_python("mse")
    assert "do not fit" in mse.check_output((2,), None, target_shape=(3,))
    assert mse.check_output((1,), None, target_shape=()) is None


def test_spec_modules_import_without_torch():
    code = (
        "import sys; import kcli.compile.losses, kcli.compile.metrics, "
        "kcli.compile.optimizers, kcli.compile.schedules; "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
