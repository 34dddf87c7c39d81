"""Recipe -> built model: the steps `summarize`, `train`, `eval` and `export` share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kcli.errors import KcliError, Problem
from kcli.graph import GraphPlan, plan_graph
from kcli.recipe.load import LoadedRecipe, load_recipe, locate

if TYPE_CHECKING:
    from kcli.nn.model import GraphModel
    from kcli.summary import ModelSummary


@dataclass
class BuiltModel:
    loaded: LoadedRecipe
    plan: GraphPlan
    model: GraphModel


def build_from_recipe(loaded: LoadedRecipe) -> BuiltModel:
    """Plan and build the recipe's model, weights drawn from the recipe's seed."""
    import torch

    from kcli.nn.model import build_model

    try:
        plan = plan_graph(loaded.recipe.model)
    except KcliError as error:
        raise locate(error, loaded) from None
    torch.manual_seed(loaded.recipe.seed)
    return BuiltModel(loaded, plan, build_model(plan))


def recipe_path_of(target: str, runs_dir: Path) -> Path:
    """A recipe file as given, or the recipe.yaml of a run (folder or name under runs_dir)."""
    path = Path(target)
    if path.is_file():
        return path
    if path.is_dir():
        recipe = path / "recipe.yaml"
        if not recipe.is_file():
            raise KcliError(Problem(f"{path} is not a run folder (it has no recipe.yaml)"))
        return recipe
    from kcli.runs import resolve_run

    return resolve_run(target, runs_dir) / "recipe.yaml"


def summarize_recipe(target: str, overrides: list[str], runs_dir: Path) -> ModelSummary:
    """What `kcli summarize` prints, for a recipe or a run."""
    from kcli.summary import summarize_model

    loaded = load_recipe(recipe_path_of(target, runs_dir), overrides)
    built = build_from_recipe(loaded)
    title = loaded.recipe.model.name or loaded.name
    return summarize_model(built.plan, built.model, title)
