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
    check_model_size(plan)
    torch.manual_seed(seed)
    return BuiltModel(plan, build_model(plan))


def check_model_size(plan: GraphPlan) -> None:
    """Refuse a model whose float32 weights would not fit in memory, before drawing any.

    The error points at the largest layer, which is nearly always the one with a typo.
    """
    from kcli.limits import check_memory
    from kcli.model.nn.counting import planned_weight_counts

    counts = planned_weight_counts(plan)
    total = sum(counts.values())
    if not counts:
        return
    largest = max(counts, key=counts.__getitem__)
    node = plan.node(largest)
    check_memory(
        4 * total,  # float32 weights; training needs a few times more (gradients, optimizer)
        f"the model's {total:,} weights (layer '{largest}' alone has {counts[largest]:,})",
        loc=node.loc,
    )
