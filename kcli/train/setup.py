"""Before training: seeds, device, data, model, loss and every check that can fail on bad input.

Everything here runs before the run folder exists, so a bad recipe, override or data file leaves
nothing behind.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kcli.errors import KcliError, Problem
from kcli.fit.steps import Objective
from kcli.model.graph import GraphPlan
from kcli.recipe.load import LoadedRecipe, locate


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch seeded; deterministic kernels where torch has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # cuBLAS needs this workspace setting to be deterministic; harmless elsewhere.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def pick_device(requested: str) -> torch.device:
    """`auto` -> cuda, then mps, then cpu; an explicit device must exist (else exit 2)."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise KcliError(Problem("CUDA is not available on this machine", ("fit", "device")))
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise KcliError(
                Problem(
                    f"there is no {requested}: this machine has {torch.cuda.device_count()} GPU(s)",
                    ("fit", "device"),
                )
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise KcliError(Problem("MPS is not available on this machine", ("fit", "device")))
    return device


@dataclass
class Prepared:
    """Everything a run needs, checked."""

    loaded: LoadedRecipe
    plan: GraphPlan
    model: torch.nn.Module
    splits: Any  # kcli.data.splits.Splits
    objective: Objective
    metric_specs: list
    y_dtype: torch.dtype
    device: torch.device
    train_weights: np.ndarray | None  # per-sample weights (class_weight x sample_weight)
    dist: Any = None  # kcli.fit.distributed.DistContext when several processes train


def prepare(loaded: LoadedRecipe, device_option: str | None, base_dir=None) -> Prepared:
    """Load data, build the model, choose the loss form and check they all fit together."""
    from kcli.data import load_data
    from kcli.fit.distributed import join_process_group, local_device

    recipe = loaded.recipe
    seed_everything(recipe.seed)
    device = pick_device(device_option or recipe.fit.device)
    context = join_process_group(device)
    device = local_device(device, context)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        splits = load_data(recipe.data, base_dir or loaded.base_dir, recipe.seed)
    except KcliError as error:
        raise locate(error, loaded) from None
    built = loaded.build_model()
    plan = built.plan
    try:
        _check_inputs(plan, splits.input_shapes)
        objective, y_dtype = make_objective(loaded, plan, splits)
        metric_specs = recipe.compile.logged_metrics()
        _check_logged_names(loaded, splits)
        weights = _train_weights(recipe.fit.class_weight, splits)
    except KcliError as error:
        raise locate(error, loaded) from None
    try:
        _try_one_batch(
            built.model, objective, metric_specs, splits, y_dtype, len(recipe.compile.metrics)
        )
    except KcliError as error:
        raise locate(error, loaded) from None
    model = built.model.to(device)
    if recipe.fit.sync_batchnorm and context is not None:
        from kcli.model.nn.normalization import enable_sync_batchnorm

        enable_sync_batchnorm(model)
    return Prepared(
        loaded, plan, model, splits, objective, metric_specs, y_dtype, device, weights, context
    )


def _try_one_batch(
    model, objective: Objective, metric_specs: list, splits, y_dtype, unweighted: int
) -> None:
    """Run the loss and each metric on two training samples, on the CPU, before anything is
    written: a metric that cannot read these outputs or labels is bad input (exit 2), not a
    crash in the middle of training. Eval mode and no gradients: no weight, statistic or random
    state changes. The first `unweighted` metric specs are `metrics`, the rest weighted_metrics."""
    from kcli.data.splits import ArraySplit

    train = splits.train
    if not isinstance(train, ArraySplit) or train.y is None or len(train) == 0:
        return
    take = slice(0, min(2, len(train)))
    x = train.x
    x = (
        {k: torch.as_tensor(v[take]) for k, v in x.items()}
        if isinstance(x, dict)
        else (torch.as_tensor(x[take]))
    )
    y = torch.as_tensor(np.asarray(train.y[take])).to(y_dtype)
    model.eval()
    with torch.no_grad():
        outputs, pres, _ = model.forward_train(x)
        head = pres[0] if objective.uses_logits else outputs[0]
        try:
            objective.loss_fn(head.float(), y)
        except (RuntimeError, ValueError, IndexError) as error:
            raise KcliError(
                Problem(
                    f"the loss cannot read this model's output and labels: {error}",
                    ("compile", "loss"),
                )
            ) from None
        for index, spec in enumerate(metric_specs):
            try:
                spec.build().update(outputs[0].float(), y)
            except (RuntimeError, ValueError, IndexError) as error:
                hint = ""
                if "top_k" in spec.type and y.dim() == 1 and "sparse" not in spec.type:
                    hint = " (labels are class indices: use sparse_top_k_categorical_accuracy)"
                raise KcliError(
                    Problem(
                        f"{spec.log_name} cannot read this model's output and labels{hint}: "
                        f"{error}",
                        # logged_metrics lists `metrics` first, then `weighted_metrics`.
                        ("compile", "metrics", index)
                        if index < unweighted
                        else ("compile", "weighted_metrics", index - unweighted),
                    )
                ) from None
    model.train()


def _check_inputs(plan: GraphPlan, data_shapes: dict[str, tuple]) -> None:
    model_shapes = plan.inputs
    if len(model_shapes) == 1 and len(data_shapes) == 1:
        pairs = [(next(iter(model_shapes)), next(iter(data_shapes)))]
    else:
        missing = sorted(set(model_shapes) - set(data_shapes))
        if missing:
            raise KcliError(
                Problem(
                    f"the model's input(s) {', '.join(missing)} are not in the data, which has "
                    f"{', '.join(sorted(data_shapes))}",
                    ("model", "inputs"),
                )
            )
        pairs = [(name, name) for name in model_shapes]
    for model_name, data_name in pairs:
        want, got = tuple(model_shapes[model_name]), tuple(data_shapes[data_name])
        fits = len(want) == len(got) and all(
            w is None or w == g for w, g in zip(want, got, strict=True)
        )
        if not fits:
            field = "input_shape" if model_name == "input" else "inputs"
            raise KcliError(
                Problem(
                    f"the data's samples have shape {list(got)} but the model's input "
                    f"'{model_name}' is {list(want)} (a reshape preprocess step may help)",
                    ("model", field),
                )
            )


def make_objective(loaded: LoadedRecipe, plan: GraphPlan, splits) -> tuple[Objective, torch.dtype]:
    loss = loaded.recipe.compile.loss
    if len(plan.outputs) != 1:
        raise KcliError(
            Problem(
                f"compile takes one loss, but the model has {len(plan.outputs)} outputs "
                f"({', '.join(plan.outputs)}); give model.outputs a single layer",
                ("model", "outputs"),
            )
        )
    output_shape = plan.output_shapes[0]
    target = splits.target
    problem = loss.check_output(tuple(output_shape), target.n_classes, tuple(target.shape))
    if problem:
        raise KcliError(Problem(problem, ("compile", "loss")))
    sparse = loss.target_kind == "sparse"
    target.check_output(tuple(output_shape), sparse=sparse)
    link = plan.output_link(plan.outputs[0])
    uses_logits = loss.folds_link(link)
    objective = Objective(
        loss.build(link if uses_logits else None), uses_logits, link if uses_logits else None
    )
    return objective, torch.long if sparse else torch.float32


def _check_logged_names(loaded: LoadedRecipe, splits) -> None:
    """`expect:` keys and callback monitors against the splits the data really gave; the
    optional packages the callbacks need (before the run folder exists)."""
    from kcli.recipe.logged import logged_name_problems, missing_package_problems

    problems = logged_name_problems(
        loaded.recipe, splits.validation is not None, splits.test is not None
    )
    problems += missing_package_problems(loaded.recipe)
    from kcli.data.splits import ArraySplit

    if loaded.recipe.fit.steps_per_epoch is not None and not isinstance(splits.train, ArraySplit):
        problems.append(
            Problem(
                "fit.steps_per_epoch is for data held in memory; a generator source counts its "
                "steps with data.steps_per_epoch",
                ("fit", "steps_per_epoch"),
            )
        )
    if problems:
        raise KcliError(problems)


def _train_weights(class_weight: Any, splits) -> np.ndarray | None:
    """Per-sample weights of the train split: class_weight times any given sample weight."""
    train = splits.train
    base = getattr(train, "sample_weight", None)
    if class_weight is None or not hasattr(train, "y"):
        return base
    labels = np.asarray(train.y)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    labels = labels.reshape(-1).astype(np.int64)
    n_classes = int(labels.max()) + 1
    if class_weight == "balanced":
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        table = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    else:
        missing = sorted(set(range(n_classes)) - set(class_weight))
        if missing:
            raise KcliError(
                Problem(
                    f"class_weight has no weight for class(es) {missing}", ("fit", "class_weight")
                )
            )
        table = np.array([class_weight[c] for c in range(n_classes)], dtype=np.float64)
    weights = table[labels].astype(np.float32)
    return weights if base is None else (weights * base).astype(np.float32)
