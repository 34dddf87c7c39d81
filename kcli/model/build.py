"""ModelSpec -> a planned graph and a GraphModel with its weights drawn (the model stage's entry).

`summarize`, `train`, `eval` and `export` all build a model through `build_model_from_spec`
(a recipe's errors are located in its file by `LoadedRecipe.build_model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcli.model.graph import GraphPlan, plan_graph

if TYPE_CHECKING:
    from kcli.model.nn.model import GraphModel
    from kcli.model.spec import ModelSpec


@dataclass
class BuiltModel:
    plan: GraphPlan
    model: GraphModel


def build_model_from_spec(spec: ModelSpec, seed: int) -> BuiltModel:
    """Plan and build the model, weights drawn from `seed` (the recipe's)."""
    import torch

    from kcli.model.nn.model import build_model

    plan = plan_graph(spec)
    torch.manual_seed(seed)
    return BuiltModel(plan, build_model(plan))
