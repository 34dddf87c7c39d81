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
    """How a batch's loss is computed from one of the model's outputs."""

    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # -> per-sample loss (N,)
    uses_logits: bool  # the loss takes the output's pre-activation (softmax/sigmoid folded in)
    link: str | None = None  # the output activation folded into the loss, if any
    output: int = 0  # which model output (its position in model.outputs)
    name: str | None = None  # its log name when the model has several outputs (y is keyed by it)
    weight: float = 1.0  # Keras' loss_weights: its share of the total loss
    loss_loc: tuple = ("compile", "loss")  # where the recipe gives its loss (for messages)


def part_of(values, name: str | None):
    """One output's targets or weights: y and sample weights are keyed by output name when
    the model has several outputs; a single array applies to every output."""
    if name is None or not isinstance(values, dict):
        return values
    return values.get(name)


@dataclass
class Accumulator:
    """Sums over an epoch: the batch-size-weighted loss and regularization (float64, on the
    device, so adding a batch never waits for it), each output's own loss when there are
    several, and the sample count (a Python int)."""

    loss_sum: torch.Tensor
    penalty_sum: torch.Tensor
    output_sums: list[torch.Tensor] = field(default_factory=list)
    count: int = 0

    @classmethod
    def zeros(cls, device: torch.device, outputs: int = 1) -> Accumulator:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return cls(z, z.clone(), [z.clone() for _ in range(outputs if outputs > 1 else 0)])

    def add(
        self,
        loss: torch.Tensor,
        penalty: torch.Tensor | None,
        n: int,
        per_output: list[torch.Tensor] = (),
    ) -> None:
        # One fused kernel each: the float32 value is promoted and scaled in float64.
        self.loss_sum.add_(loss.detach(), alpha=n)
        if penalty is not None:
            self.penalty_sum.add_(penalty.detach(), alpha=n)
        for total, value in zip(self.output_sums, per_output, strict=False):
            total.add_(value.detach(), alpha=n)
        self.count += n

    def state(self) -> dict[str, torch.Tensor]:
        """The sums as tensors (checkpoints, all-reduce); `load` takes them back."""
        count = torch.tensor(float(self.count), dtype=torch.float64, device=self.loss_sum.device)
        state = {"loss_sum": self.loss_sum, "penalty_sum": self.penalty_sum, "count": count}
        state.update({f"output_{i}_sum": total for i, total in enumerate(self.output_sums)})
        return state

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.loss_sum.copy_(state["loss_sum"])
        self.penalty_sum.copy_(state["penalty_sum"])
        for i, total in enumerate(self.output_sums):
            total.copy_(state[f"output_{i}_sum"])
        self.count = round(float(state["count"]))


def batch_size_of(y) -> int:
    if isinstance(y, dict):
        y = next(iter(y.values()))
    return y.shape[0]


@dataclass
class Stepper:
    """train_step and eval_step for one model, loss, optimizer and precision."""

    model: GraphModel
    objectives: list[Objective]  # one per model output
    optimizer: torch.optim.Optimizer | None
    device: torch.device
    precision: str = "32"
    forward_train: Callable = field(init=False)
    scaler: torch.amp.GradScaler | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if isinstance(self.objectives, Objective):
            self.objectives = [self.objectives]
        self._names = {objective.output: objective.name for objective in self.objectives}
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
            len(self.objectives) == 1
            and self.objectives[0].link == "softmax"
            and self.model.output_activation_optional
            and all(metric.order_only for metric in metrics)
        )

    def _losses(self, x, y, w, activate_outputs: bool = True):
        """(total loss with penalties, the penalty part or None, the outputs: activated unless
        `activate_outputs` is False, then logits; each output's own loss when there are several).

        The total is Keras': sum over outputs of loss weight * loss, plus the penalties."""
        with self._autocast():
            outputs, pres, activity = self.forward_train(x, activate_outputs=activate_outputs)
        per_output = []
        loss = None
        for objective in self.objectives:
            index = objective.output
            head = pres[index] if objective.uses_logits else outputs[index]
            per_sample = objective.loss_fn(head.float(), part_of(y, objective.name))
            weights = part_of(w, objective.name)
            n = per_sample.shape[0]
            # Keras' reduction: sum(loss * sample_weight) / N, weights not renormalized.
            value = per_sample.mean() if weights is None else (per_sample * weights).sum() / n
            per_output.append(value)
            weighted = value if objective.weight == 1.0 else value * objective.weight
            loss = weighted if loss is None else loss + weighted
        penalty = self.model.weight_penalty()
        if activity is not None:
            penalty = activity if penalty is None else penalty + activity
        total = loss if penalty is None else loss + penalty
        return total, penalty, outputs, per_output if len(per_output) > 1 else ()

    def _update_metrics(self, metrics: list, outputs, y, w) -> None:
        for metric in metrics:
            name = self._names.get(metric.output)
            output = outputs[metric.output].detach().float()
            metric.update(output, part_of(y, name), part_of(w, name))

    def train_step(self, x, y, w, accumulator: Accumulator, metrics: list) -> None:
        total, penalty, outputs, per_output = self._losses(
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
        accumulator.add(total, penalty, batch_size_of(y), per_output)
        self._update_metrics(metrics, outputs, y, w)

    @torch.no_grad()
    def eval_step(self, x, y, w, accumulator: Accumulator, metrics: list) -> list[torch.Tensor]:
        """One evaluation batch; returns the model's outputs (float32), in output order."""
        total, penalty, outputs, per_output = self._losses(x, y, w)
        accumulator.add(total, penalty, batch_size_of(y), per_output)
        outputs = [output.float() for output in outputs]
        self._update_metrics(metrics, outputs, y, w)
        return outputs
