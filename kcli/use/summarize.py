"""`kcli summarize`: the model of a recipe, or of a run, as Keras' `model.summary()` shows it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kcli.errors import KcliError, Problem
from kcli.recipe.load import load_recipe

if TYPE_CHECKING:
    from kcli.model.summary import ModelSummary


def recipe_path_of(target: str, runs_dir: Path) -> Path:
    """A recipe file as given, or the recipe.yaml of a run (folder or name under runs_dir)."""
    path = Path(target)
    if path.is_file():
        return path
    if path.is_dir() and not (path / "run.json").exists():
        recipe = path / "recipe.yaml"
        if not recipe.is_file():
            raise KcliError(Problem(f"{path} is not a run folder (it has no recipe.yaml)"))
        return recipe
    from kcli.runs import resolve_run

    recipe = resolve_run(target, runs_dir) / "recipe.yaml"
    if not recipe.is_file():
        raise KcliError(Problem(f"{recipe.parent}: damaged run folder: it has no recipe.yaml"))
    return recipe


def summarize_recipe(
    target: str, overrides: list[str], runs_dir: Path, merged: list[str] | None = None
) -> ModelSummary:
    """What `kcli summarize` prints, for a recipe (with `merged` files over it) or a run."""
    from kcli.model.summary import summarize_model

    loaded = load_recipe(recipe_path_of(target, runs_dir), overrides, merged)
    built = loaded.build_model()
    title = loaded.recipe.model.name or loaded.name
    return summarize_model(built.plan, built.model, title)
