"""A run's model with its fitted preprocessing folded in: what `kcli export` traces.

Each x preprocess step of preprocess.json becomes a torch module computing what its numpy code
computes (kcli.data.preprocess): standardize and minmax in float64 and back to the input's dtype,
scale in the input's dtype, reshape per sample, cast. `DeployModel` runs them before the model,
so an exported artifact takes the raw features the run's data held.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kcli.errors import KcliError, Problem


class _Standardize(nn.Module):
    """(x - mean) / std in float64, back to x's dtype: preprocess.json's numpy arithmetic."""

    def __init__(self, mean: Any, std: Any) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float64))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean) / self.std).to(x.dtype)


class _MinMax(nn.Module):
    """(x - min) / span * (b - a) + a in float64 (a constant feature's span is 1)."""

    def __init__(self, low: Any, high: Any, feature_range: tuple[float, float]) -> None:
        super().__init__()
        low_t = torch.tensor(low, dtype=torch.float64)
        high_t = torch.tensor(high, dtype=torch.float64)
        self.register_buffer("low", low_t)
        self.register_buffer("span", torch.where(high_t > low_t, high_t - low_t, 1.0))
        self.a, self.b = float(feature_range[0]), float(feature_range[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.low) / self.span * (self.b - self.a) + self.a).to(x.dtype)


class _Scale(nn.Module):
    """x * scale + offset in x's dtype (numpy keeps float32 for a Python float factor)."""

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


class _Reshape(nn.Module):
    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, *self.shape)


class _Cast(nn.Module):
    def __init__(self, dtype: str) -> None:
        super().__init__()
        self.dtype = getattr(torch, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


def _fold(step: Any, state: dict) -> nn.Module:
    """A preprocess step with its fitted state as a torch module."""
    if step.type == "standardize":
        return _Standardize(state["mean"], state["std"])
    if step.type == "minmax":
        return _MinMax(state["min"], state["max"], step.feature_range)
    if step.type == "scale":
        return _Scale(step.scale, step.offset)
    if step.type == "reshape":
        return _Reshape(state["shape"])
    if step.type == "cast":
        return _Cast(step.dtype)
    raise KcliError(Problem(f"the preprocess step '{step.type}' cannot be folded into an export"))


class DeployModel(nn.Module):
    """Raw features in (one tensor per model input, in order), the run's outputs out."""

    def __init__(self, model: nn.Module, chains: list[nn.Module], folded: list[str]) -> None:
        super().__init__()
        self.model = model
        self.chains = nn.ModuleList(chains)
        self.folded = folded

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.model([chain(x) for chain, x in zip(self.chains, inputs, strict=True)])

    @classmethod
    def from_run(cls, run_model: Any) -> DeployModel:
        """The run's model behind its fitted x preprocess steps."""
        prep = run_model.preprocessing
        names = list(run_model.plan.inputs)
        chains: dict[str, list[nn.Module]] = {name: [] for name in names}
        folded = []
        for step, state in zip(prep.steps, prep.states, strict=True):
            if step.target:
                continue  # y steps (one_hot) do not touch what the model takes
            for prep_name, fitted in state.items():
                chains[names[0] if prep.inputs is None else prep_name].append(_fold(step, fitted))
            folded.append(step.type if step.input is None else f"{step.type} ({step.input})")
        model = run_model.model.eval()
        return cls(model, [nn.Sequential(*chains[name]) for name in names], folded).eval()
