"""The math of one training or evaluation step (Keras' train_step / test_step), kept apart from
the loop. Everything stays on the device: losses and metrics accumulate as tensors, and nothing
here calls `.item()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from kcli.model.nn.model import GraphModel


@dataclass
class Objective:
    """How a batch's loss is computed from the model's output."""

    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # -> per-sample loss (N,)
    uses_logits: bool  # the loss takes the output's pre-activation (softmax/sigmoid folded in)
    link: str | None = None  # the output activation folded into the loss, if any


@dataclass
class Accumulator:
    """Sums over an epoch: the batch-size-weighted loss and regularization (float64, on the
    device, so adding a batch never waits for it) and the sample count (a Python int)."""

    loss_sum: torch.Tensor
    penalty_sum: torch.Tensor
    count: int = 0

    @classmethod
    def zeros(cls, device: torch.device) -> Accumulator:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return cls(z, z.clone())

    def add(self, loss: torch.Tensor, penalty: torch.Tensor | None, n: int) -> None:
        # One fused kernel each: the float32 value is promoted and scaled in float64.
        self.loss_sum.add_(loss.detach(), alpha=n)
        if penalty is not None:
            self.penalty_sum.add_(penalty.detach(), alpha=n)
        self.count += n

    def state(self) -> dict[str, torch.Tensor]:
        """The sums as tensors (checkpoints, all-reduce); `load` takes them back."""
        count = torch.tensor(float(self.count), dtype=torch.float64, device=self.loss_sum.device)
        return {"loss_sum": self.loss_sum, "penalty_sum": self.penalty_sum, "count": count}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.loss_sum.copy_(state["loss_sum"])
        self.penalty_sum.copy_(state["penalty_sum"])
        self.count = round(float(state["count"]))


def batch_size_of(y: torch.Tensor) -> int:
    return y.shape[0]


@dataclass
class Stepper:
    """train_step and eval_step for one model, loss, optimizer and precision."""

    model: GraphModel
    objective: Objective
    optimizer: torch.optim.Optimizer | None
    device: torch.device
    precision: str = "32"
    forward_train: Callable = field(init=False)
    scaler: torch.amp.GradScaler | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.runner: torch.nn.Module = self.model  # what the forward pass is called on
        self.forward_train = self.model.forward_train
        if self.precision == "16-mixed":
            self.scaler = torch.amp.GradScaler(self.device.type)

    def _use(self, runner: torch.nn.Module) -> None:
        self.runner = runner
        self.forward_train = lambda x, activate_outputs=True: runner(
            x, train_outputs=True, activate_outputs=activate_outputs
        )

    def compile(self) -> None:
        """Use torch.compile for the forward pass (fit.compile: true)."""
        self._use(torch.compile(self.runner, dynamic=False))

    def distribute(self, device_ids: list[int] | None) -> None:
        """Wrap the model in DistributedDataParallel: gradients averaged across ranks."""
        from torch.nn.parallel import DistributedDataParallel

        self._use(DistributedDataParallel(self.model, device_ids=device_ids))

    def _autocast(self):
        if self.precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16-mixed" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _metrics_read_logits(self, metrics: list) -> bool:
        """True when the training metrics may read the logits instead of the probabilities.

        So when the loss folds the output's softmax in and every metric reads only the order
        of the scores along the class axis (accuracy, top-k): softmax keeps that order, so the
        training pass can skip computing it. (Two logits closer than float32 can tell apart
        after exp are one tie under softmax, two under logits; the accuracies differ only then.)
        """
        return (
            self.objective.link == "softmax"
            and self.model.output_activation_optional
            and all(metric.order_only for metric in metrics)
        )

    def _losses(self, x, y, w, activate_outputs: bool = True):
        """(total loss with penalties, the penalty part or None, the outputs: activated unless
        `activate_outputs` is False, then logits)."""
        with self._autocast():
            outputs, pres, activity = self.forward_train(x, activate_outputs=activate_outputs)
        head = pres[0] if self.objective.uses_logits else outputs[0]
        per_sample = self.objective.loss_fn(head.float(), y)
        n = per_sample.shape[0]
        # Keras' reduction: sum(loss * sample_weight) / N, weights not renormalized.
        loss = per_sample.mean() if w is None else (per_sample * w).sum() / n
        penalty = self.model.weight_penalty()
        if activity is not None:
            penalty = activity if penalty is None else penalty + activity
        total = loss if penalty is None else loss + penalty
        return total, penalty, outputs[0]

    def train_step(self, x, y, w, accumulator: Accumulator, metrics: list) -> None:
        total, penalty, output = self._losses(
            x, y, w, activate_outputs=not self._metrics_read_logits(metrics)
        )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        n = batch_size_of(y)
        accumulator.add(total, penalty, n)
        detached = output.detach().float()
        for metric in metrics:
            metric.update(detached, y, w)

    @torch.no_grad()
    def eval_step(self, x, y, w, accumulator: Accumulator, metrics: list) -> torch.Tensor:
        total, penalty, output = self._losses(x, y, w)
        accumulator.add(total, penalty, batch_size_of(y))
        output = output.float()
        for metric in metrics:
            metric.update(output, y, w)
        return output
