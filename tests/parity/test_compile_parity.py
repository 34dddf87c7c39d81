"""Parity of kcli's compile catalog with Keras 3 itself: the same inputs through both.

What this proves, entry by entry of kcli's registries (the cases are in compile_cases.py):
  - losses: the per-sample values (Keras' reduction="none"), the sample-weighted batch loss as
    kcli's trainer reduces it (sum(loss * w) / N, Keras' "sum_over_batch_size") and its gradient
    with respect to the model output, for every argument variant; where the trainer folds the
    final sigmoid/softmax into the loss, kcli gets the logits and Keras the activated output.
    Documented exceptions, marked in the cases: the focal crossentropies on saturated logits
    (kcli computes from logits, Keras from clipped probabilities), ignore_class's per-sample
    values (kcli scales them so that the batch mean is Keras') and CosineDecayRestarts exactly
    at a restart where Keras' float32 period index rounds down (README: where kcli differs);
  - metrics: the streamed result after each of 3 batches (update_state / result), with and
    without sample weights;
  - optimizers: the weights after every one of 50 steps from the same start and gradients;
  - learning-rate schedules: the rate at a grid of steps;
  - regularizers: the penalty and its gradient;
  - initializers: statistics of a large draw (the random generators differ, the distribution must
    not), exact values for the constant ones and the orthogonality property for orthogonal;
  - completeness: every name of each registry (read at test time) and every argument of every
    spec has a case, or a one-line reason in compile_cases.EXEMPT / EXEMPT_FIELDS.

Agreement is 1e-5 relative, 1e-6 absolute near zero, in float32 (what the trainer computes in).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.compile import losses as kcli_losses  # noqa: E402
from kcli.compile import metrics as kcli_metrics  # noqa: E402
from kcli.compile import optimizers as kcli_optimizers  # noqa: E402
from kcli.compile import schedules as kcli_schedules  # noqa: E402
from kcli.model import initializers as kcli_initializers  # noqa: E402
from kcli.model import regularizers as kcli_regularizers  # noqa: E402
from tests.parity import compile_cases as cases  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6

# Keras' own Nadam hands a tensor to np.array (keras/src/backend/torch/core.py); not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(x))


def close(got, want, what: str) -> None:
    np.testing.assert_allclose(_numpy(got), _numpy(want), rtol=RTOL, atol=ATOL, err_msg=what)


def _ids(items):
    return [item.id for item in items]


def _no_duplicate_ids(items) -> None:
    ids = _ids(items)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# -- losses -------------------------------------------------------------------------------------
def _activate(logits: torch.Tensor, link: str | None) -> torch.Tensor:
    """What a Keras model outputs when its last activation is `link` (kept in the graph)."""
    if link is None:
        return logits
    return torch.sigmoid(logits) if link == "sigmoid" else torch.softmax(logits, dim=-1)


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """Keras' reduction="none" values as one per sample, the mean over any other axes."""
    return values.reshape(values.shape[0], -1).mean(1)


@pytest.mark.parametrize("case", cases.LOSS_CASES, ids=_ids(cases.LOSS_CASES))
def test_loss(case: cases.LossCase) -> None:
    y_true, y_pred, weights = cases.LOSS_DATA[case.data]()
    target, w = torch.as_tensor(y_true), torch.as_tensor(weights)
    spec = TypeAdapter(kcli_losses.LossRef).validate_python(case.kcli)
    if case.link is not None:
        # The trainer folds the final activation into the loss only when the spec says so.
        assert spec.folds_link(case.link), f"{case.kcli} does not fold {case.link}"

    ours_in = torch.tensor(y_pred, requires_grad=True)
    ours = spec.build(case.link)(ours_in, target)
    n = ours.shape[0]
    # kcli/fit/steps.py reduces the per-sample loss as Keras' sum_over_batch_size does.
    ours_total = (ours * w).sum() / n
    ours_total.backward()

    if not case.compare:
        # A documented difference (see the case): only kcli's own sanity is asserted.
        assert torch.isfinite(ours).all() and torch.isfinite(ours_total)
        assert torch.isfinite(ours_in.grad).all()
        return

    theirs_in = torch.tensor(y_pred, requires_grad=True)
    theirs_out = _activate(theirs_in, case.link)
    make = getattr(keras.losses, case.keras)
    theirs = make(**case.kwargs, reduction="none")(target, theirs_out.detach())
    # Keras broadcasts a (N,) weight against the LAST axis of the loss values; one weight per
    # sample over values of shape (N, T) is (N, 1) there.
    w_theirs = w.reshape(-1, *([1] * (theirs.ndim - 1)))
    theirs_total = make(**case.kwargs)(target, theirs_out, sample_weight=w_theirs)
    theirs_total.backward()

    assert ours.shape == (n,), f"kcli's loss must give one value per sample, got {ours.shape}"
    if case.per_sample:
        close(ours, _per_sample(theirs), "per-sample loss")
    close(ours_total, theirs_total, "sample-weighted batch loss")
    close(ours_in.grad, theirs_in.grad, "gradient with respect to the output")


# -- metrics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", cases.METRIC_CASES, ids=_ids(cases.METRIC_CASES))
def test_metric(case: cases.MetricCase, weighted: bool) -> None:
    spec = TypeAdapter(kcli_metrics.MetricRef).validate_python(case.kcli)
    # build(), not streaming(): the bare metric, which uses the weights it is given (a run's
    # unweighted `metrics` drop them, as Keras' do; that is the trainer's choice, not the math's).
    ours = spec.build()
    theirs = getattr(keras.metrics, case.keras)(**case.kwargs)
    for i, (y_true, y_pred, weights) in enumerate(cases.METRIC_DATA[case.data]()):
        w = weights if weighted else None
        # kcli's Metric.update takes (y_pred, y_true, sample_weight); Keras' (y_true, y_pred).
        ours.update(torch.as_tensor(y_pred), torch.as_tensor(y_true), _tensor_or_none(w))
        theirs.update_state(y_true, y_pred, sample_weight=w)
        # Every batch, not just the last: the state must stream as Keras' does.
        close(ours.compute(), theirs.result(), f"result after batch {i + 1}")


def _tensor_or_none(x):
    return None if x is None else torch.as_tensor(x)


# -- optimizers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases.OPTIMIZER_CASES, ids=_ids(cases.OPTIMIZER_CASES))
def test_optimizer(case: cases.OptimizerCase) -> None:
    weights, grads = cases.optimizer_inputs(case.grad_scale)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    ours = TypeAdapter(kcli_optimizers.OptimizerRef).validate_python(case.kcli).build(params)
    kwargs = dict(case.kwargs)
    if case.keras_schedule is not None:
        name, schedule_kwargs = case.keras_schedule
        kwargs["learning_rate"] = getattr(keras.optimizers.schedules, name)(**schedule_kwargs)
    theirs = getattr(keras.optimizers, case.keras)(**kwargs)
    variables = [keras.Variable(w) for w in weights]
    for step, step_grads in enumerate(grads, start=1):
        for p, g in zip(params, step_grads, strict=True):
            p.grad = torch.tensor(g)
        ours.step()
        theirs.apply_gradients(zip([torch.tensor(g) for g in step_grads], variables, strict=True))
        for i, (p, v) in enumerate(zip(params, variables, strict=True)):
            close(p, v.value, f"weight {i} after step {step}")


# -- schedules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases.SCHEDULE_CASES, ids=_ids(cases.SCHEDULE_CASES))
def test_schedule(case: cases.ScheduleCase) -> None:
    ours = TypeAdapter(kcli_schedules.ScheduleRef).validate_python(
        {"type": case.keras, **case.kwargs}
    )
    theirs = getattr(keras.optimizers.schedules, case.keras)(**case.kwargs)
    got = [ours(step) for step in case.steps]
    want = [float(_numpy(theirs(step))) for step in case.steps]
    close(np.asarray(got), np.asarray(want), f"rates at steps {case.steps}")


# -- regularizers -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases.REGULARIZER_CASES, ids=_ids(cases.REGULARIZER_CASES))
def test_regularizer(case: cases.RegularizerCase) -> None:
    x = np.random.default_rng(40).normal(0.0, 1.0, (4, 5)).astype(np.float32)
    spec = TypeAdapter(kcli_regularizers.RegularizerRef).validate_python(case.kcli)
    ours_in = torch.tensor(x, requires_grad=True)
    ours = spec.penalty(ours_in)
    theirs_in = torch.tensor(x, requires_grad=True)
    theirs = getattr(keras.regularizers, case.keras)(**case.kwargs)(theirs_in)
    close(ours, theirs, "penalty")
    if ours.requires_grad or theirs.requires_grad:
        grad_ours = torch.autograd.grad(ours, ours_in, allow_unused=True)[0]
        grad_theirs = torch.autograd.grad(theirs, theirs_in, allow_unused=True)[0]
        zeros = torch.zeros_like(ours_in)
        close(
            zeros if grad_ours is None else grad_ours,
            zeros if grad_theirs is None else grad_theirs,
            "penalty gradient",
        )


def test_ambiguous_regularizer_name_is_refused_as_keras_refuses_it() -> None:
    # Keras 3 cannot interpret 'l1_l2'; kcli refuses it too rather than guess the factors.
    with pytest.raises(ValueError):
        keras.regularizers.get("l1_l2")
    with pytest.raises(ValueError):
        TypeAdapter(kcli_regularizers.RegularizerRef).validate_python("l1_l2")


# -- initializers -------------------------------------------------------------------------------
def _draws(case: cases.InitializerCase) -> tuple[np.ndarray, np.ndarray]:
    spec = TypeAdapter(kcli_initializers.InitializerRef).validate_python(case.kcli)
    ours = torch.empty(case.shape)
    # Keras' fans for a 2-D shape (a Dense kernel): fan_in = shape[0], fan_out = shape[1].
    spec.fill_(ours, fan_in=case.shape[0], fan_out=case.shape[1])
    theirs = getattr(keras.initializers, case.keras)(**case.kwargs, **_seed(case))
    return ours.numpy(), _numpy(theirs(case.shape, dtype="float32"))


def _seed(case: cases.InitializerCase) -> dict:
    # Keras' deterministic initializers take no seed.
    return {} if case.kind == "values" else {"seed": case.kcli["seed"]}


def _unbounded(case: cases.InitializerCase) -> bool:
    return case.keras == "RandomNormal" or case.kwargs.get("distribution") == "untruncated_normal"


@pytest.mark.parametrize("case", cases.INITIALIZER_CASES, ids=_ids(cases.INITIALIZER_CASES))
def test_initializer(case: cases.InitializerCase) -> None:
    ours, theirs = _draws(case)
    assert ours.shape == theirs.shape
    if case.kind == "values":
        close(ours, theirs, "values")
        return
    if case.kind == "orthogonal":
        gain = case.kwargs.get("gain", 1.0)
        for name, w in (("kcli", ours), ("keras", theirs)):
            # The shorter side's vectors are orthonormal, scaled by gain.
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            np.testing.assert_allclose(
                gram, gain**2 * np.eye(gram.shape[0]), atol=2e-5 * max(1.0, gain**2), err_msg=name
            )
        return
    # Statistics, not values: the generators differ. 60000 draws: the tolerances are a few
    # standard errors wide, far narrower than any formula slip (a fan_in/fan_avg mix-up or a
    # missing truncation correction moves the std by 10% or more).
    n = ours.size
    m_ours, m_theirs = ours.mean(), theirs.mean()
    s_ours, s_theirs = ours.std(), theirs.std()
    assert abs(m_ours - m_theirs) <= 6 * s_theirs * np.sqrt(2.0 / n), (m_ours, m_theirs)
    assert abs(s_ours / s_theirs - 1.0) <= 0.02, (s_ours, s_theirs)
    # The share beyond two standard deviations separates normal, truncated and uniform draws.
    tail_ours = np.mean(np.abs(ours - m_ours) > 2 * s_ours)
    tail_theirs = np.mean(np.abs(theirs - m_theirs) > 2 * s_theirs)
    assert abs(tail_ours - tail_theirs) <= 0.006, (tail_ours, tail_theirs)
    if not _unbounded(case):
        # Uniform and truncated draws reach their bounds with 60000 samples.
        span = theirs.max() - theirs.min()
        assert abs(ours.max() - theirs.max()) <= 0.01 * span, (ours.max(), theirs.max())
        assert abs(ours.min() - theirs.min()) <= 0.01 * span, (ours.min(), theirs.min())


# -- completeness -------------------------------------------------------------------------------
def _regularizer_names() -> list[str]:
    # Regularizers are not a Registry: the spec's fields are the forms ({l1: a}, {l2: b}), and
    # the bare names the module accepts (if it still has that table) are the shorthands.
    names = list(kcli_regularizers.RegularizerSpec.model_fields)
    names += [n for n in getattr(kcli_regularizers, "_BY_NAME", {}) if n not in names]
    return names


def _case_name(family: str, case) -> str | None:
    """The canonical registry name a case exercises."""
    registry = REGISTRIES[family][0]
    value = case.keras if family == "schedule" else case.kcli
    name = value if isinstance(value, str) else value["type"]
    return registry.canonical(name)


def _case_fields(family: str, case) -> set[str]:
    """The spec arguments a case sets."""
    value = case.kwargs if family == "schedule" else case.kcli
    return set(value) - {"type"} if isinstance(value, dict) else set()


REGISTRIES = {
    "loss": (kcli_losses.loss_registry, cases.LOSS_CASES, kcli_losses.LossSpec),
    "metric": (kcli_metrics.metric_registry, cases.METRIC_CASES, kcli_metrics.MetricSpec),
    "optimizer": (
        kcli_optimizers.optimizer_registry,
        cases.OPTIMIZER_CASES,
        kcli_optimizers.OptimizerSpec,
    ),
    "schedule": (
        kcli_schedules.schedule_registry,
        cases.SCHEDULE_CASES,
        kcli_schedules.ScheduleSpec,
    ),
    "initializer": (
        kcli_initializers.initializer_registry,
        cases.INITIALIZER_CASES,
        kcli_initializers.InitializerSpec,
    ),
}


@pytest.mark.parametrize("family", [*REGISTRIES, "regularizer"])
def test_every_entry_has_a_case_or_a_reason(family: str) -> None:
    exempt = cases.EXEMPT[family]
    if family == "regularizer":
        names = _regularizer_names()
        covered: set[str] = set()
        for case in cases.REGULARIZER_CASES:
            covered |= {case.kcli} if isinstance(case.kcli, str) else set(case.kcli)
    else:
        registry, family_cases, _ = REGISTRIES[family]
        names = registry.names()  # read now: a new catalog entry is seen by this test
        covered = {_case_name(family, case) for case in family_cases}
        assert None not in covered, "a case names something the registry does not know"
        stale = set(exempt) - set(names)
        assert not stale, f"EXEMPT[{family!r}] names entries the registry no longer has: {stale}"
    missing = [n for n in names if n not in covered and n not in exempt]
    assert not missing, f"{family} entries without a parity case (or an EXEMPT reason): {missing}"


@pytest.mark.parametrize("family", [*REGISTRIES, "regularizer"])
def test_every_argument_has_a_case_or_a_reason(family: str) -> None:
    exempt = cases.EXEMPT_FIELDS[family]
    if family == "regularizer":
        # Each form of the penalty is a field (see the names test): nothing more to cover.
        return
    registry, family_cases, base = REGISTRIES[family]
    set_by_cases: dict[str, set[str]] = {}
    for case in family_cases:
        set_by_cases.setdefault(_case_name(family, case), set()).update(_case_fields(family, case))
    everywhere = set().union(*set_by_cases.values())
    missing = []
    for name, spec in registry.specs.items():
        for field in spec.model_fields:
            if field == "type" or field in exempt:
                continue
            # A base-class argument (learning_rate, weight_decay, clipping, seed) runs the same
            # code for every entry: a case on any entry covers it.
            if field in base.model_fields and field in everywhere:
                continue
            if field not in set_by_cases.get(name, set()):
                missing.append(f"{name}.{field}")
    assert not missing, f"{family} arguments no case sets (or EXEMPT_FIELDS): {missing}"


@pytest.mark.parametrize(
    "family_cases",
    [
        cases.LOSS_CASES,
        cases.METRIC_CASES,
        cases.OPTIMIZER_CASES,
        cases.SCHEDULE_CASES,
        cases.REGULARIZER_CASES,
        cases.INITIALIZER_CASES,
    ],
    ids=["loss", "metric", "optimizer", "schedule", "regularizer", "initializer"],
)
def test_case_ids_are_unique(family_cases) -> None:
    _no_duplicate_ids(family_cases)
