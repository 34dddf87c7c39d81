"""Torch optimizers applying Keras 3's update rules (built by kcli.compile.optimizers specs).

Each step runs Keras' order: clip the gradients (clipnorm per tensor, clipvalue elementwise,
global_clipnorm over all), apply decoupled weight decay `w *= 1 - lr * wd`, apply the rule, count
the step. The learning rate is `base(iterations) * lr_scale`: `base` is the constant or schedule
of the spec, `iterations` the number of completed steps, evaluated in Python each step, so a
step launches torch._foreach_* kernels only and never waits on the device.

`set_learning_rate(value)` (ReduceLROnPlateau) replaces a constant rate. Under a schedule it
sets `lr_scale = value / schedule(iterations)`: the schedule keeps its shape, scaled down by the
callback's factor (Keras refuses to set a scheduled rate; we choose to scale it). The counter, the
scale and every moment are in `state_dict()`, which holds only tensors and Python numbers (so
`torch.load(weights_only=True)` reads it) and restores a run bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

Rate = float | Callable[[int], float]


class KerasOptimizer(torch.optim.Optimizer):
    """Base: learning rate, clipping, weight decay and the step counter; subclasses: the rule."""

    state_names: tuple[str, ...] = ()  # per-weight slots, created on the first step

    def __init__(
        self,
        params: Iterable[Any],
        *,
        learning_rate: Rate,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **hyperparameters: Any,
    ) -> None:
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm can be set")
        self._schedule = None if isinstance(learning_rate, int | float) else learning_rate
        self._base_lr = float(learning_rate) if self._schedule is None else None
        self._lr_scale = 1.0
        self.iterations = 0
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        defaults = {"lr": 0.0, "weight_decay": weight_decay or 0.0, **hyperparameters}
        super().__init__(params, defaults)
        self._sync_group_lr()

    # -- learning rate -------------------------------------------------------------------------
    def current_learning_rate(self) -> float:
        """The rate the next step uses: base(iterations) * scale."""
        base = self._base_lr if self._schedule is None else self._schedule(self.iterations)
        return base * self._lr_scale

    def set_learning_rate(self, value: float) -> None:
        """Make the current rate `value`: replaces a constant, scales a schedule (module doc)."""
        if self._schedule is None:
            self._base_lr, self._lr_scale = float(value), 1.0
        else:
            scheduled = self._schedule(self.iterations)
            # A schedule at 0 cannot be scaled to anything else; it stays 0 whatever the scale.
            if scheduled != 0:
                self._lr_scale = float(value) / scheduled
        self._sync_group_lr()

    def _sync_group_lr(self) -> None:
        # Mirrored into param_groups so code that reads torch's usual "lr" sees the real rate.
        lr = self.current_learning_rate()
        for group in self.param_groups:
            group["lr"] = lr

    # -- state dict ----------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, float | int | None]:
        return {"iterations": self.iterations, "lr_scale": self._lr_scale, "base_lr": self._base_lr}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.iterations = int(extra["iterations"])
        self._lr_scale = float(extra["lr_scale"])
        if self._schedule is None and extra["base_lr"] is not None:
            self._base_lr = float(extra["base_lr"])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["keras"] = self._extra_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("keras")
        super().load_state_dict(state_dict)
        self._load_extra_state(extra)
        self._sync_group_lr()

    # -- the step ------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Keras update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lr = self.current_learning_rate()
        groups = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if params:
                groups.append((group, params, [p.grad for p in params]))
        if not groups:
            return loss
        clipped = self._clip([grads for _, _, grads in groups])
        t = self.iterations + 1  # Keras' local_step: this update's 1-based number
        self._prepare_step(t)
        for (group, params, _), grads in zip(groups, clipped, strict=True):
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1.0 - lr * group["weight_decay"])
            slots = self._slots(group, params)
            self._update(group, params, grads, slots, lr, t)
        self.iterations = t
        self._sync_group_lr()
        return loss

    def _clip(self, grads_by_group: list[list[Tensor]]) -> list[list[Tensor]]:
        """The gradients after Keras' clipping (new tensors: `.grad` is left as it was)."""
        if self.clipvalue is not None:
            v = self.clipvalue
            return [[g.clamp(-v, v) for g in grads] for grads in grads_by_group]
        if self.clipnorm is not None:
            c = self.clipnorm
            out = []
            for grads in grads_by_group:
                # g * c / max(||g||, c): unchanged when ||g|| <= c, rescaled to norm c otherwise.
                factors = torch._foreach_maximum(torch._foreach_norm(grads), c)
                torch._foreach_reciprocal_(factors)
                torch._foreach_mul_(factors, c)
                out.append(list(torch._foreach_mul(grads, factors)))
            return out
        if self.global_clipnorm is not None:
            c = self.global_clipnorm
            flat = [g for grads in grads_by_group for g in grads]
            device = flat[0].device
            norms = [n.to(device) for n in torch._foreach_norm(flat)]
            total = torch.linalg.vector_norm(torch.stack(norms))
            factor = c / torch.clamp(total, min=c)
            return [
                list(torch._foreach_mul(grads, factor.to(grads[0].device)))
                for grads in grads_by_group
            ]
        return grads_by_group

    def _slot_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The slots this group's settings need (no momentum buffer without momentum ...)."""
        return self.state_names

    def _slots(self, group: dict[str, Any], params: list[Tensor]) -> dict[str, list[Tensor]]:
        """Each per-weight slot (m, v, ...) as a list aligned with `params`, created if new."""
        names = self._slot_names(group)
        for p in params:
            state = self.state[p]
            if not state:
                for name in names:
                    state[name] = self._initial_slot(name, p)
        return {name: [self.state[p][name] for p in params] for name in names}

    def _initial_slot(self, name: str, param: Tensor) -> Tensor:
        return torch.zeros_like(param, memory_format=torch.preserve_format)

    def _prepare_step(self, t: int) -> None:
        """Per-step (not per-weight) quantities, computed once before the groups are updated."""

    def _update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        slots: dict[str, list[Tensor]],
        lr: float,
        t: int,
    ) -> None:
        raise NotImplementedError  # every optimizer overrides this


class SGD(KerasOptimizer):
    """m = mu*m - lr*g; w += m (nesterov: w += mu*m - lr*g); w -= lr*g without momentum."""

    state_names = ("momentum",)

    def _slot_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum",) if group["momentum"] else ()

    def _update(self, group, params, grads, slots, lr, t) -> None:
        mu = group["momentum"]
        if not mu:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        m = slots["momentum"]
        torch._foreach_mul_(m, mu)
        torch._foreach_add_(m, grads, alpha=-lr)
        if group["nesterov"]:
            torch._foreach_add_(params, m, alpha=mu)
            torch._foreach_add_(params, grads, alpha=-lr)
        else:
            torch._foreach_add_(params, m)


class RMSprop(KerasOptimizer):
    """v = rho*v + (1-rho)*g^2; w -= lr*g / sqrt(v + eps) (centered: v - mean(g)^2 + eps)."""

    state_names = ("velocity", "momentum", "average_gradient")

    def _slot_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        wanted = (True, bool(group["momentum"]), group["centered"])
        return tuple(name for name, want in zip(self.state_names, wanted, strict=True) if want)

    def _update(self, group, params, grads, slots, lr, t) -> None:
        rho, eps = group["rho"], group["epsilon"]
        v = slots["velocity"]
        torch._foreach_mul_(v, rho)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - rho)
        if group["centered"]:
            avg = slots["average_gradient"]
            torch._foreach_lerp_(avg, grads, 1.0 - rho)
            denominator = torch._foreach_addcmul(v, avg, avg, value=-1.0)
            torch._foreach_add_(denominator, eps)
        else:
            denominator = torch._foreach_add(v, eps)
        torch._foreach_sqrt_(denominator)
        increment = torch._foreach_div(grads, denominator)
        torch._foreach_mul_(increment, lr)
        if group["momentum"]:
            m = slots["momentum"]
            torch._foreach_mul_(m, group["momentum"])
            torch._foreach_add_(m, increment)
            torch._foreach_sub_(params, m)
        else:
            torch._foreach_sub_(params, increment)


class Adagrad(KerasOptimizer):
    """acc += g^2; w -= lr*g / sqrt(acc + eps), acc starting at initial_accumulator_value."""

    state_names = ("accumulator",)

    def _initial_slot(self, name: str, param: Tensor) -> Tensor:
        return torch.full_like(param, self.defaults["initial_accumulator_value"])

    def _update(self, group, params, grads, slots, lr, t) -> None:
        acc = slots["accumulator"]
        torch._foreach_addcmul_(acc, grads, grads)
        denominator = torch._foreach_add(acc, group["epsilon"])
        torch._foreach_sqrt_(denominator)
        torch._foreach_addcdiv_(params, grads, denominator, value=-lr)


class Adadelta(KerasOptimizer):
    """Eg2 = rho*Eg2 + (1-rho)g^2; d = -sqrt(Ed2+eps)/sqrt(Eg2+eps)*g; Ed2 += ...; w += lr*d."""

    state_names = ("accumulated_grad", "accumulated_delta_var")

    def _update(self, group, params, grads, slots, lr, t) -> None:
        rho, eps = group["rho"], group["epsilon"]
        acc_grad, acc_delta = slots["accumulated_grad"], slots["accumulated_delta_var"]
        torch._foreach_mul_(acc_grad, rho)
        torch._foreach_addcmul_(acc_grad, grads, grads, value=1.0 - rho)
        rms_delta = torch._foreach_add(acc_delta, eps)
        torch._foreach_sqrt_(rms_delta)
        rms_grad = torch._foreach_add(acc_grad, eps)
        torch._foreach_sqrt_(rms_grad)
        delta = torch._foreach_mul(rms_delta, grads)
        torch._foreach_div_(delta, rms_grad)
        torch._foreach_neg_(delta)
        torch._foreach_mul_(acc_delta, rho)
        torch._foreach_addcmul_(acc_delta, delta, delta, value=1.0 - rho)
        torch._foreach_add_(params, delta, alpha=lr)


class Adam(KerasOptimizer):
    """m, v moving averages; w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)."""

    state_names = ("momentum", "velocity", "velocity_hat")

    def _slot_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self.state_names if group["amsgrad"] else self.state_names[:2]

    def _update(self, group, params, grads, slots, lr, t) -> None:
        b1, b2 = group["beta_1"], group["beta_2"]
        m, v = slots["momentum"], slots["velocity"]
        torch._foreach_lerp_(m, grads, 1.0 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - b2)
        if group["amsgrad"]:
            v_hat = slots["velocity_hat"]
            torch._foreach_maximum_(v_hat, v)
            v = v_hat
        # Keras' "epsilon hat" form: bias corrections folded into the step size, eps unscaled.
        alpha = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        denominator = torch._foreach_sqrt(v)
        torch._foreach_add_(denominator, group["epsilon"])
        torch._foreach_addcdiv_(params, m, denominator, value=-alpha)


class AdamW(Adam):
    """Adam; the decoupled weight decay (default 0.004) is the base class's."""


class Nadam(KerasOptimizer):
    """Adam with Nesterov momentum under Keras' schedule u_t = b1 * (1 - 0.5 * 0.96**t)."""

    state_names = ("momentum", "velocity")

    def __init__(self, params: Iterable[Any], **kwargs: Any) -> None:
        self._u_product = 1.0  # product of u_1..u_t over the completed steps
        super().__init__(params, **kwargs)

    def _u(self, t: int) -> float:
        return self.defaults["beta_1"] * (1.0 - 0.5 * 0.96**t)

    def _prepare_step(self, t: int) -> None:
        self._u_t, self._u_next = self._u(t), self._u(t + 1)
        self._u_product_t = self._u_product * self._u_t
        self._u_product = self._u_product_t

    def _update(self, group, params, grads, slots, lr, t) -> None:
        b1, b2 = group["beta_1"], group["beta_2"]
        m, v = slots["momentum"], slots["velocity"]
        torch._foreach_lerp_(m, grads, 1.0 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - b2)
        u_t, u_next, u_prod = self._u_t, self._u_next, self._u_product_t
        # denominator = sqrt(v / (1 - b2^t)) + eps; m_hat mixes the next momentum and g.
        denominator = torch._foreach_div(v, 1.0 - b2**t)
        torch._foreach_sqrt_(denominator)
        torch._foreach_add_(denominator, group["epsilon"])
        torch._foreach_addcdiv_(params, m, denominator, value=-lr * u_next / (1 - u_prod * u_next))
        torch._foreach_addcdiv_(params, grads, denominator, value=-lr * (1 - u_t) / (1 - u_prod))

    def _extra_state(self) -> dict[str, float | int | None]:
        return {**super()._extra_state(), "u_product": self._u_product}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        super()._load_extra_state(extra)
        self._u_product = float(extra["u_product"])


class Adamax(KerasOptimizer):
    """m moving average, u = max(b2*u, |g|); w -= lr/(1-b1^t) * m / (u + eps)."""

    state_names = ("momentum", "norm")

    def _update(self, group, params, grads, slots, lr, t) -> None:
        b1, b2 = group["beta_1"], group["beta_2"]
        m, u = slots["momentum"], slots["norm"]
        torch._foreach_lerp_(m, grads, 1.0 - b1)
        torch._foreach_mul_(u, b2)
        torch._foreach_maximum_(u, torch._foreach_abs(grads))
        denominator = torch._foreach_add(u, group["epsilon"])
        torch._foreach_addcdiv_(params, m, denominator, value=-lr / (1.0 - b1**t))


class Lion(KerasOptimizer):
    """w -= lr * sign(b1*m + (1-b1)*g); then m = b2*m + (1-b2)*g."""

    state_names = ("momentum",)

    def _update(self, group, params, grads, slots, lr, t) -> None:
        m = slots["momentum"]
        direction = torch._foreach_lerp(m, grads, 1.0 - group["beta_1"])
        torch._foreach_sign_(direction)
        torch._foreach_add_(params, direction, alpha=-lr)
        torch._foreach_lerp_(m, grads, 1.0 - group["beta_2"])
