"""A finished (or checkpointed) run as a usable model: Keras' `load_model` for run folders.

A run folder holds the resolved recipe, the fitted preprocessing and the weights; together they
are the whole saved model. `load_run_model` rebuilds the graph from recipe.yaml, loads the
weights of checkpoints/best.pt (or last.pt) with `weights_only=True`, and returns the
preprocessing that turns raw data into what the model takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem
from kcli.model.graph import GraphPlan
from kcli.recipe.load import LoadedRecipe, load_recipe

CHECKPOINTS = ("best", "last", "final")


@dataclass
class RunModel:
    run_dir: Path
    loaded: LoadedRecipe
    plan: GraphPlan
    model: Any  # GraphModel, in eval mode
    preprocessing: Any  # kcli.data.preprocess.Preprocessing
    target: Any  # kcli.data.targets.TargetInfo
    checkpoint: str
    recipe_dir: Path  # the folder the recipe's relative data paths resolve against

    @property
    def class_names(self) -> list[str] | None:
        return self.target.class_names if self.target is not None else None

    @property
    def output_names(self) -> list[str]:
        """The model's outputs as its logs, targets and predictions name them."""
        from kcli.compile.outputs import output_log_name

        return [output_log_name(name) for name in self.plan.outputs]

    def class_names_of(self, output: str | None) -> list[str] | None:
        """The class names of one output (None: the model's only output)."""
        by_output = getattr(self.preprocessing, "output_class_names", None)
        if output is None or by_output is None:
            return self.class_names
        return by_output.get(output)


def default_checkpoint(run_dir: Path) -> str:
    """The checkpoint holding the weights the run ended with (eval.json says), else best."""
    try:
        return json.loads((run_dir / "eval.json").read_text()).get("checkpoint") or "best"
    except (OSError, ValueError):
        return "best"


def checkpoint_path(run_dir: Path, which: str | None) -> Path:
    which = which or default_checkpoint(run_dir)
    if which not in CHECKPOINTS:
        raise KcliError(Problem(f"--checkpoint must be best, last or final (got '{which}')"))
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file() and which == "best":
        path = run_dir / "checkpoints" / "last.pt"  # a run without validation may have no best
    if not path.is_file():
        raise KcliError(
            Problem(
                f"{run_dir} has no checkpoint yet (still running, or it failed before its first "
                "epoch ended)"
            )
        )
    return path


def load_run_model(run_dir: Path, which: str | None = None, device: str = "cpu") -> RunModel:
    """Rebuild a run's model with its trained weights and its fitted preprocessing.

    Every file is checked on the way (run.json, recipe.yaml, the checkpoint against the model
    the recipe builds, preprocess.json): a damaged or foreign one is a KcliError naming it.
    """
    import torch

    from kcli.data.text import install_idf_weights
    from kcli.fit.checkpoint import load_checkpoint, load_model_weights
    from kcli.memory import settle_memory
    from kcli.runs import PREPROCESS_FILE, read_preprocessing, read_run_record

    record = read_run_record(run_dir)
    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        raise KcliError(Problem(f"{run_dir}: damaged run folder: it has no recipe.yaml"))
    loaded = load_recipe(recipe_file)
    which = which or default_checkpoint(run_dir)
    weights_file = checkpoint_path(run_dir, which)
    state = load_checkpoint(weights_file)
    built = loaded.build_model()
    load_model_weights(built.model, state, weights_file)
    built.model.to(torch.device(device)).eval()
    settle_memory()  # torch and the model are loaded: collect garbage from here on
    preprocessing, target = read_preprocessing(run_dir / PREPROCESS_FILE)
    # tf-idf weights live with the vocabulary in preprocess.json, not in the checkpoint.
    install_idf_weights(built.model, getattr(preprocessing, "strings", None))
    recipe_dir = Path(getattr(record, "recipe_dir", None) or run_dir)
    return RunModel(
        run_dir, loaded, built.plan, built.model, preprocessing, target, which, recipe_dir
    )
