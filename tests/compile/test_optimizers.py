"""Optimizers: the first steps against Keras' update rules worked out in plain Python floats.

Each test runs two weights through 3 steps with fixed gradients and compares with the Keras rule
written element by element below (the rule as KERAS_FACTS.md states it, not our code).
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from kcli.compile.optimizers import OptimizerRef
from kcli.compile.schedules import PiecewiseConstantDecay

W0 = [1.0, -2.0]
GRADS = [[0.5, -1.0], [0.1, 0.3], [-0.2, 0.05]]  # the gradient at steps 1, 2, 3
ADAPTER = TypeAdapter(OptimizerRef)


def spec(value):
    return ADAPTER.validate_python(value)


def run(config, grads=GRADS, w0=W0):
    """Weights after each step of the optimizer built from `config` (float64 for exactness)."""
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = spec(config).build([w])
    out = []
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(w.detach().tolist())
    return out


def close(got, want, rel=1e-9):
    for a, b in zip(got, want, strict=True):
        assert a == pytest.approx(b, rel=rel, abs=1e-12)


def test_keras_defaults():
    # KERAS_FACTS.md "Optimizer defaults": where torch.optim differs, Keras wins.
    assert spec("sgd").learning_rate == 0.01 and spec("sgd").momentum == 0.0
    rms = spec("rmsprop")
    assert (rms.learning_rate, rms.rho, rms.epsilon, rms.centered) == (0.001, 0.9, 1e-7, False)
    ada = spec("adagrad")
    assert (ada.learning_rate, ada.initial_accumulator_value, ada.epsilon) == (0.001, 0.1, 1e-7)
    dlt = spec("adadelta")
    assert (dlt.learning_rate, dlt.rho, dlt.epsilon) == (0.001, 0.95, 1e-7)  # torch: 1.0, 0.9
    for name in ("adam", "adamw", "nadam", "adamax"):
        s = spec(name)
        assert (s.learning_rate, s.beta_1, s.beta_2, s.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert spec("adam").weight_decay is None and spec("adamw").weight_decay == 0.004
    lion = spec("lion")
    assert (lion.learning_rate, lion.beta_1, lion.beta_2) == (0.001, 0.9, 0.99)


def test_sgd_plain_and_momentum_and_nesterov():
    lr, mu = 0.1, 0.9
    want_plain, want_mom, want_nest = [], [], []
    w_p, w_m, w_n = list(W0), list(W0), list(W0)
    m_m, m_n = [0.0, 0.0], [0.0, 0.0]
    for g in GRADS:
        for i in range(2):
            w_p[i] -= lr * g[i]
            m_m[i] = mu * m_m[i] - lr * g[i]  # Keras: lr inside the velocity
            w_m[i] += m_m[i]
            m_n[i] = mu * m_n[i] - lr * g[i]
            w_n[i] += mu * m_n[i] - lr * g[i]  # Keras' Nesterov form
        want_plain.append(list(w_p))
        want_mom.append(list(w_m))
        want_nest.append(list(w_n))
    for got, want in zip(run({"type": "SGD", "learning_rate": lr}), want_plain, strict=True):
        close(got, want)
    got = run({"type": "SGD", "learning_rate": lr, "momentum": mu})
    for a, b in zip(got, want_mom, strict=True):
        close(a, b)
    got = run({"type": "SGD", "learning_rate": lr, "momentum": mu, "nesterov": True})
    for a, b in zip(got, want_nest, strict=True):
        close(a, b)
    # Step 1 by hand: w = 1 - 0.1*0.5 = 0.95; nesterov: 1 + 0.9*(-0.05) - 0.05 = 0.905
    assert want_nest[0][0] == pytest.approx(0.905)


def test_sgd_momentum_under_a_schedule_differs_from_torch():
    # lr 1.0 for step 1, 0.1 afterwards; Keras keeps lr inside the velocity.
    sched = {"type": "PiecewiseConstantDecay", "boundaries": [0], "values": [1.0, 0.1]}
    got = run(
        {"type": "SGD", "learning_rate": sched, "momentum": 0.5}, grads=[[1.0], [1.0]], w0=[0.0]
    )
    # Keras: m1 = -1.0*1 = -1, w1 = -1; m2 = 0.5*(-1) - 0.1*1 = -0.6, w2 = -1.6
    assert got[1][0] == pytest.approx(-1.6)
    # torch.optim.SGD: buf2 = 0.5*1 + 1 = 1.5, w2 = -1 - 0.1*1.5 = -1.15
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=1.0, momentum=0.5)
    for lr in (1.0, 0.1):
        opt.param_groups[0]["lr"] = lr
        w.grad = torch.ones(1)
        opt.step()
    assert w.item() == pytest.approx(-1.15)


def test_rmsprop_epsilon_inside_sqrt_and_centered_momentum():
    lr, rho, eps, mu = 0.01, 0.9, 1e-7, 0.5
    w, v, a, m = list(W0), [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    want = []
    for g in GRADS:
        for i in range(2):
            v[i] = rho * v[i] + (1 - rho) * g[i] ** 2
            a[i] = rho * a[i] + (1 - rho) * g[i]
            m[i] = mu * m[i] + lr * g[i] / math.sqrt(v[i] - a[i] ** 2 + eps)
            w[i] -= m[i]
        want.append(list(w))
    got = run({"type": "RMSprop", "learning_rate": lr, "momentum": mu, "centered": True})
    for a_, b_ in zip(got, want, strict=True):
        close(a_, b_)
    # Plain, tiny gradient: Keras w -= lr*g/sqrt(0.1*g^2 + eps); g = 1e-4 -> v = 1e-9,
    # step = 0.01 * 1e-4 / sqrt(1.01e-7) = 3.1466e-3
    got = run({"type": "RMSprop", "learning_rate": lr}, grads=[[1e-4]], w0=[0.0])
    assert got[0][0] == pytest.approx(-0.01 * 1e-4 / math.sqrt(1e-9 + 1e-7))
    # torch.optim.RMSprop with eps=1e-7 (outside the sqrt) steps ~10x further: ~-0.0240
    w_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    torch_opt = torch.optim.RMSprop([w_t], lr=lr, alpha=0.9, eps=1e-7)
    w_t.grad = torch.tensor([1e-4], dtype=torch.float64)
    torch_opt.step()
    assert w_t.item() == pytest.approx(-0.01 * 1e-4 / (math.sqrt(1e-9) + 1e-7))
    assert abs(w_t.item()) > 5 * abs(got[0][0])


def test_adagrad():
    lr, eps = 0.1, 1e-7
    w, acc, want = list(W0), [0.1, 0.1], []
    for g in GRADS:
        for i in range(2):
            acc[i] += g[i] ** 2
            w[i] -= lr * g[i] / math.sqrt(acc[i] + eps)
        want.append(list(w))
    # Step 1, weight 0: acc = 0.1 + 0.25 = 0.35, w = 1 - 0.05/0.5916 = 0.91548
    assert want[0][0] == pytest.approx(0.915486, rel=1e-5)
    for a, b in zip(run({"type": "Adagrad", "learning_rate": lr}), want, strict=True):
        close(a, b)


def test_adadelta():
    lr, rho, eps = 1.0, 0.95, 1e-7
    w, eg, ed, want = list(W0), [0.0, 0.0], [0.0, 0.0], []
    for g in GRADS:
        for i in range(2):
            eg[i] = rho * eg[i] + (1 - rho) * g[i] ** 2
            d = -math.sqrt(ed[i] + eps) / math.sqrt(eg[i] + eps) * g[i]
            ed[i] = rho * ed[i] + (1 - rho) * d**2
            w[i] += lr * d
        want.append(list(w))
    for a, b in zip(run({"type": "Adadelta", "learning_rate": lr}), want, strict=True):
        close(a, b)


def keras_adam(lr, grads, amsgrad=False, wd=0.0, b1=0.9, b2=0.999, eps=1e-7, w0=W0):
    w, m, v, vh, out = list(w0), [0.0] * len(w0), [0.0] * len(w0), [0.0] * len(w0), []
    for t, g in enumerate(grads, start=1):
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)  # Keras' epsilon-hat form
        for i in range(len(w)):
            w[i] *= 1 - lr * wd  # decoupled weight decay, before the update
            m[i] += (g[i] - m[i]) * (1 - b1)
            v[i] += (g[i] ** 2 - v[i]) * (1 - b2)
            vh[i] = max(vh[i], v[i])
            w[i] -= alpha * m[i] / (math.sqrt(vh[i] if amsgrad else v[i]) + eps)
        out.append(list(w))
    return out


def test_adam_and_amsgrad_and_adamw():
    for got, want in zip(
        run({"type": "Adam", "learning_rate": 0.1}), keras_adam(0.1, GRADS), strict=True
    ):
        close(got, want)
    # amsgrad matters when v shrinks: step 3's gradient is smaller than step 2's.
    grads = [[1.0, 1.0], [0.01, 0.01], [0.01, 0.01]]
    got = run({"type": "Adam", "learning_rate": 0.1, "amsgrad": True}, grads=grads)
    for a, b in zip(got, keras_adam(0.1, grads, amsgrad=True), strict=True):
        close(a, b)
    got = run({"type": "AdamW", "learning_rate": 0.1}, grads=GRADS)
    for a, b in zip(got, keras_adam(0.1, GRADS, wd=0.004), strict=True):
        close(a, b)


def test_adam_epsilon_hat_differs_from_torch_adam():
    # g = 1e-6: Keras step 1 = lr * sqrt(0.001)/0.1 * 1e-7 / (sqrt(1e-15) + 1e-7)
    #         = lr * 0.316228 * 0.759747 = 0.24025 * lr
    got = run({"type": "Adam", "learning_rate": 1.0}, grads=[[1e-6]], w0=[0.0])
    keras = -math.sqrt(0.001) / 0.1 * 1e-7 / (math.sqrt(1e-15) + 1e-7)
    assert got[0][0] == pytest.approx(keras) and keras == pytest.approx(-0.240253, rel=1e-5)
    # torch.optim.Adam(eps=1e-7): lr * m_hat / (sqrt(v_hat) + eps) = 1e-6 / 1.1e-6 = 0.90909
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1.0, eps=1e-7)
    w.grad = torch.tensor([1e-6], dtype=torch.float64)
    opt.step()
    assert w.item() == pytest.approx(-1e-6 / 1.1e-6)


def test_nadam():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    w, m, v, prod, want = list(W0), [0.0, 0.0], [0.0, 0.0], 1.0, []
    for t, g in enumerate(GRADS, start=1):
        u_t = b1 * (1 - 0.5 * 0.96**t)
        u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        prod *= u_t
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = u_next * m[i] / (1 - prod * u_next) + (1 - u_t) * g[i] / (1 - prod)
            v_hat = v[i] / (1 - b2**t)
            w[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        want.append(list(w))
    for a, b in zip(run({"type": "Nadam", "learning_rate": lr}), want, strict=True):
        close(a, b)


def test_adamax():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    w, m, u, want = list(W0), [0.0, 0.0], [0.0, 0.0], []
    for t, g in enumerate(GRADS, start=1):
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            u[i] = max(b2 * u[i], abs(g[i]))
            w[i] -= lr * m[i] / ((1 - b1**t) * (u[i] + eps))
        want.append(list(w))
    for a, b in zip(run({"type": "Adamax", "learning_rate": lr}), want, strict=True):
        close(a, b)


def test_lion():
    # Step 1: sign(0.9*0 + 0.1*g) = sign(g): w = [1 - 0.1, -2 + 0.1]; m = 0.01*g
    # Step 2: c = 0.9*[0.005, -0.01] + 0.1*[0.1, 0.3] = [0.0145, 0.021] -> w -= 0.1*[1, 1]
    # Step 3: m = 0.99*[0.005,-0.01] + 0.01*[0.1,0.3] = [0.00595, -0.0069];
    #         c = 0.9*m + 0.1*[-0.2, 0.05] = [-0.014645, -0.00121] -> w += 0.1*[1, 1]
    got = run({"type": "Lion", "learning_rate": 0.1})
    close(got[0], [0.9, -1.9])
    close(got[1], [0.8, -2.0])
    close(got[2], [0.9, -1.9])


def test_clipnorm_clipvalue_global_clipnorm():
    def first_step(config):
        a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        opt = spec({"type": "SGD", "learning_rate": 1.0, **config}).build([a, b])
        a.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)  # norm 5
        b.grad = torch.tensor([0.3, -0.4], dtype=torch.float64)  # norm 0.5
        opt.step()
        assert a.grad.tolist() == [3.0, 4.0]  # the .grad tensors are left alone
        return a.tolist() + b.tolist()

    # clipnorm 1: a rescaled to norm 1 -> [0.6, 0.8]; b (norm 0.5) unchanged
    close(first_step({"clipnorm": 1.0}), [-0.6, -0.8, -0.3, 0.4])
    # clipvalue 0.35: elementwise clamp
    close(first_step({"clipvalue": 0.35}), [-0.35, -0.35, -0.3, 0.35])
    # global_clipnorm 1: total norm sqrt(25 + 0.25) = 5.024938, everything scaled by 1/5.0249
    k = 1 / math.sqrt(25.25)
    close(first_step({"global_clipnorm": 1.0}), [-3 * k, -4 * k, -0.3 * k, 0.4 * k])


def test_only_one_clip_argument():
    with pytest.raises(ValidationError, match="only one of clipnorm"):
        spec({"type": "Adam", "clipnorm": 1.0, "global_clipnorm": 1.0})


def test_weight_decay_is_decoupled_for_every_optimizer():
    # SGD lr 0.1, wd 0.5, w = 2, g = 1: w = 2 * (1 - 0.1*0.5) - 0.1*1 = 1.8
    got = run({"type": "SGD", "learning_rate": 0.1, "weight_decay": 0.5}, grads=[[1.0]], w0=[2.0])
    assert got[0][0] == pytest.approx(1.8)
    # Lion with zero gradient: sign(0) = 0, so only the decay acts: 2 * (1 - 0.1*0.5) = 1.9
    got = run({"type": "Lion", "learning_rate": 0.1, "weight_decay": 0.5}, grads=[[0.0]], w0=[2.0])
    assert got[0][0] == pytest.approx(1.9)
    # Adam with weight_decay is torch's AdamW-style decay, not an L2 term in the gradient.
    got = run({"type": "Adam", "learning_rate": 0.1, "weight_decay": 0.5})
    for a, b in zip(got, keras_adam(0.1, GRADS, wd=0.5), strict=True):
        close(a, b)


def test_schedule_drives_the_optimizer_per_step():
    sched = {"type": "PiecewiseConstantDecay", "boundaries": [1], "values": [1.0, 0.1]}
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = spec({"type": "SGD", "learning_rate": sched}).build([w])
    rates = []
    for _ in range(3):
        rates.append(opt.current_learning_rate())
        w.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
    # iterations 0 and 1 are <= boundary 1 -> 1.0; iteration 2 -> 0.1
    assert rates == [1.0, 1.0, 0.1]
    assert w.item() == pytest.approx(-2.1)
    assert opt.param_groups[0]["lr"] == 0.1


def test_set_learning_rate_constant_and_scaled_schedule():
    w = torch.zeros(1, requires_grad=True)
    opt = spec("adam").build([w])
    opt.set_learning_rate(0.0005)
    assert opt.current_learning_rate() == 0.0005
    decay = {
        "type": "ExponentialDecay",
        "initial_learning_rate": 1.0,
        "decay_steps": 1,
        "decay_rate": 0.5,
    }
    opt = spec({"type": "SGD", "learning_rate": decay}).build([w])
    w.grad = torch.ones(1)
    opt.step()  # iterations 1: schedule 0.5
    opt.set_learning_rate(0.05)  # ReduceLROnPlateau factor 0.1 -> scale 0.1 on the schedule
    assert opt.current_learning_rate() == pytest.approx(0.05)
    opt.step()
    assert opt.current_learning_rate() == pytest.approx(0.025)  # 0.1 * 0.5**2


def _train(opt, w, n, seed):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        w.grad = torch.randn(w.shape, generator=gen)
        opt.step()


@pytest.mark.parametrize(
    "name", ["sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "nadam", "adamax", "lion"]
)
def test_state_dict_round_trips_through_weights_only_load(name):
    sched = PiecewiseConstantDecay(boundaries=[2], values=[0.1, 0.05]).model_dump()
    config = {"type": name, "learning_rate": sched}
    if name in ("sgd", "rmsprop"):
        config["momentum"] = 0.9
    torch.manual_seed(0)
    w = torch.randn(3, 2, requires_grad=True)
    opt = spec(config).build([w])
    _train(opt, w, 3, seed=1)
    opt.set_learning_rate(opt.current_learning_rate() * 0.5)
    buffer = io.BytesIO()
    torch.save({"w": w.detach().clone(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    _train(opt, w, 2, seed=2)

    w2 = saved["w"].clone().requires_grad_(True)
    opt2 = spec(config).build([w2])
    opt2.load_state_dict(saved["opt"])
    assert opt2.iterations == 3
    assert opt2.current_learning_rate() == pytest.approx(0.025)
    _train(opt2, w2, 2, seed=2)
    assert torch.equal(w, w2)  # bit-identical continuation


def test_param_groups_and_parameters_without_gradients():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = spec({"type": "SGD", "learning_rate": 0.5}).build(
        [{"params": [a]}, {"params": [b], "weight_decay": 0.0}]
    )
    a.grad = torch.ones(2)
    opt.step()  # b has no gradient: untouched
    assert a.tolist() == [0.5, 0.5] and b.tolist() == [1.0, 1.0]
