"""Schedules: values at chosen steps against Keras 3's formulas, worked out by hand."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError

from kcli.compile.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
    ScheduleRef,
)


def test_exponential_decay():
    s = ExponentialDecay(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == pytest.approx(0.1)
    assert s(5) == pytest.approx(0.1 * 0.5**0.5)  # 0.0707107
    assert s(20) == pytest.approx(0.025)  # 0.1 * 0.5**2
    stairs = s.model_copy(update={"staircase": True})
    assert stairs(15) == pytest.approx(0.05)  # floor(1.5) = 1 -> 0.1 * 0.5


def test_inverse_time_decay():
    s = InverseTimeDecay(initial_learning_rate=0.1, decay_steps=10, decay_rate=1.0)
    assert s(5) == pytest.approx(0.1 / 1.5)  # 0.1 / (1 + 1.0 * 0.5)
    stairs = s.model_copy(update={"staircase": True})
    assert stairs(15) == pytest.approx(0.05)  # 0.1 / (1 + floor(1.5))


def test_piecewise_constant_decay_boundary_steps_keep_the_old_value():
    s = PiecewiseConstantDecay(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    assert [s(0), s(10), s(11), s(20), s(21), s(1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


def test_piecewise_constant_decay_needs_one_more_value():
    with pytest.raises(ValidationError, match="one more entry"):
        PiecewiseConstantDecay(boundaries=[10, 20], values=[1.0, 0.5])


def test_polynomial_decay():
    s = PolynomialDecay(
        initial_learning_rate=0.1, decay_steps=10, end_learning_rate=0.01, power=2.0
    )
    assert s(5) == pytest.approx(0.09 * 0.5**2 + 0.01)  # 0.0325
    assert s(20) == pytest.approx(0.01)  # clamped at decay_steps
    cyc = s.model_copy(update={"cycle": True})
    assert cyc(0) == pytest.approx(0.1)
    # step 15: the horizon becomes 10 * ceil(1.5) = 20, (1 - 15/20)^2 = 0.0625
    assert cyc(15) == pytest.approx(0.09 * 0.0625 + 0.01)
    assert PolynomialDecay(initial_learning_rate=1.0, decay_steps=4)(2) == pytest.approx(
        (1.0 - 1e-4) * 0.5 + 1e-4  # Keras defaults: end 1e-4, power 1
    )


def test_cosine_decay():
    s = CosineDecay(initial_learning_rate=1.0, decay_steps=10, alpha=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi / 2)) + 0.1)  # 0.55
    assert s(10) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.1)  # stays at alpha * initial after decay_steps


def test_cosine_decay_linear_warmup_to_target():
    s = CosineDecay(initial_learning_rate=0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert s(0) == pytest.approx(0.0)
    assert s(2) == pytest.approx(0.5)  # 0 + (1 - 0) * 2/4
    assert s(4) == pytest.approx(1.0)  # decay starts from the target
    assert s(9) == pytest.approx(0.5)  # 5 of 10 decay steps: 0.5 * (1 + cos(pi/2))
    assert s(100) == pytest.approx(0.0)


def test_cosine_decay_warmup_steps_without_target_do_nothing_as_in_keras():
    s = CosineDecay(initial_learning_rate=0.1, decay_steps=1000, warmup_steps=100)
    assert s(0) == pytest.approx(0.1)
    assert s(500) == pytest.approx(0.05)


def test_cosine_decay_restarts():
    s = CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=10, m_mul=0.5)
    assert s(5) == pytest.approx(0.5)  # half way through period 1: 0.5 * (1 + cos(pi/2))
    assert s(10) == pytest.approx(0.5)  # restart 1 at peak m_mul**1 = 0.5
    # step 20: period 2 is 20 steps long (t_mul 2), 10 of them done: 0.5 * 0.5 * (1 + 0)
    assert s(20) == pytest.approx(0.25)
    assert s(30) == pytest.approx(0.25)  # restart 2 at peak 0.25
    flat = CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=10, t_mul=1.0)
    assert flat(15) == pytest.approx(0.5)  # period 2, half way, peak 1
    assert flat(10) == pytest.approx(1.0)


def test_cosine_decay_restarts_exactly_at_a_restart_starts_the_new_period():
    # Periods of 8 and 12 steps (t_mul 1.5): step 20 is the first step of period 3, whose peak
    # is m_mul**2 = 0.25: 0.1 * ((1 - 0.1) * 0.25 + 0.1) = 0.0325. Keras computes the period in
    # float32, where log(2.25) / log(1.5) falls just below 2, and gives the end of period 2,
    # 0.1 * 0.1 = 0.01, at such steps; kcli keeps the exact value (README: where kcli differs).
    s = CosineDecayRestarts(
        initial_learning_rate=0.1, first_decay_steps=8, t_mul=1.5, m_mul=0.5, alpha=0.1
    )
    assert s(20) == pytest.approx(0.0325)
    assert s(19) == pytest.approx(0.1 * (0.9 * 0.5 * 0.5 * (1 + math.cos(math.pi * 11 / 12)) + 0.1))


def test_schedule_ref_accepts_loose_names():
    adapter = TypeAdapter(ScheduleRef)
    s = adapter.validate_python(
        {
            "type": "exponential_decay",
            "initial_learning_rate": 1.0,
            "decay_steps": 1,
            "decay_rate": 0.5,
        }
    )
    assert isinstance(s, ExponentialDecay) and s(2) == pytest.approx(0.25)
    with pytest.raises(ValidationError, match="did you mean"):
        adapter.validate_python({"type": "CosineDecy", "initial_learning_rate": 1.0})
