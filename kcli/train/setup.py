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

from kcli.data.several import items
from kcli.errors import KcliError, Problem
from kcli.fit.steps import Objective
from kcli.model.graph import GraphPlan, plan_graph
from kcli.recipe.load import LoadedRecipe, locate
from kcli.train.adapt import adapt_layers
from kcli.train.start_weights import load_start_weights


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
    objectives: list[Objective]  # one per model output
    metric_specs: list
    y_dtype: Any  # torch dtype of y; several outputs: a mapping output -> dtype
    device: torch.device
    train_weights: Any  # per-sample weights (class_weight x sample_weight); by output if several
    dist: Any = None  # kcli.fit.distributed.DistContext when several processes train
    start_weights: dict | None = None  # what model.weights loaded and skipped (run.json)


def prepare(
    loaded: LoadedRecipe, device_option: str | None, base_dir=None, start_weights: bool = True
) -> Prepared:
    """Load data, build the model, choose the loss form and check they all fit together;
    `start_weights`: load `model.weights` (not on --resume, nor to re-read a run's data)."""
    from kcli.data import load_data
    from kcli.data.text import check_id_ranges, install_idf_weights
    from kcli.fit.distributed import join_process_group, local_device
    from kcli.model.strings import string_inputs

    recipe = loaded.recipe
    seed_everything(recipe.seed)
    device = pick_device(device_option or recipe.fit.device)
    context = join_process_group(device)
    device = local_device(device, context)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        # The plan alone (no weights drawn yet) names the outputs the targets are keyed by,
        # and the string layers whose vocabularies the data adapts on the train split.
        planned = plan_graph(recipe.model)
        outputs = output_names(planned)
        strings = string_inputs(planned)
        base = base_dir or loaded.base_dir
        splits = load_data(recipe.data, base, recipe.seed, outputs, strings)
        check_id_ranges(planned, splits.preprocessing.strings)
    except KcliError as error:
        raise locate(error, loaded) from None
    built = loaded.build_model()
    install_idf_weights(built.model, splits.preprocessing.strings)
    adapt_layers(built, splits.train, loaded)  # preprocessing layers learn on the train split
    main = context is None or context.is_main
    start = load_start_weights(built.model, loaded, main) if start_weights else None
    plan = built.plan
    try:
        _check_inputs(plan, splits.input_shapes)
        _check_trainable(built.model)
        objectives, y_dtype = make_objectives(loaded, plan, splits)
        metric_specs = recipe.compile.logged_metrics(plan.outputs)
        _check_logged_names(loaded, splits, plan)
        weights = train_weights(recipe.fit.class_weight, splits, outputs)
    except KcliError as error:
        raise locate(error, loaded) from None
    try:
        _try_one_batch(built.model, objectives, metric_specs, splits, y_dtype)
    except KcliError as error:
        raise locate(error, loaded) from None
    model = built.model.to(device)
    if recipe.fit.sync_batchnorm and context is not None:
        from kcli.model.nn.normalization import enable_sync_batchnorm

        enable_sync_batchnorm(model)
    return Prepared(
        loaded,
        plan,
        model,
        splits,
        objectives,
        metric_specs,
        y_dtype,
        device,
        weights,
        context,
        start,
    )


def _try_one_batch(model, objectives: list[Objective], metric_specs: list, splits, y_dtype) -> None:
    """Run each output's loss and each metric on two training samples, on the CPU, before
    anything is written: a metric that cannot read these outputs or labels is bad input
    (exit 2), not a crash in the middle of training. Eval mode and no gradients: no weight,
    statistic or random state changes."""
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
    targets = {
        name: torch.as_tensor(np.asarray(values[take])).to(
            y_dtype[name] if isinstance(y_dtype, dict) else y_dtype
        )
        for name, values in items(train.y)
    }
    names = {objective.output: objective.name for objective in objectives}
    model.eval()
    with torch.no_grad():
        outputs, pres, _ = model.forward_train(x)
        for objective in objectives:
            index = objective.output
            head = pres[index] if objective.uses_logits else outputs[index]
            try:
                objective.loss_fn(head.float(), targets[objective.name])
            except (RuntimeError, ValueError, IndexError) as error:
                raise KcliError(
                    Problem(
                        f"the loss cannot read this model's output and labels: {error}",
                        objective.loss_loc,
                    )
                ) from None
        for spec in metric_specs:
            y = targets[names.get(spec.output)]
            try:
                spec.build().update(outputs[spec.output].float(), y)
            except (RuntimeError, ValueError, IndexError) as error:
                hint = ""
                if "top_k" in spec.type and y.dim() == 1 and "sparse" not in spec.type:
                    hint = " (labels are class indices: use sparse_top_k_categorical_accuracy)"
                raise KcliError(
                    Problem(
                        f"{spec.log_name} cannot read this model's output and labels{hint}: "
                        f"{error}",
                        spec.recipe_loc,
                    )
                ) from None
    model.train()


def _check_trainable(model: torch.nn.Module) -> None:
    """Refuse a model with nothing to train (every layer weightless or frozen), which the
    optimizer could not be built for."""
    if not any(p.requires_grad for p in model.parameters()):
        raise KcliError(
            "the model has no trainable weights (its layers are weightless or all have "
            "trainable: false), so there is nothing to train",
            loc=("model",),
        )


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


def output_names(plan: GraphPlan) -> list[str]:
    """The model's outputs as its logs and targets name them."""
    from kcli.compile.outputs import output_log_name

    return [output_log_name(name) for name in plan.outputs]


def make_objectives(loaded: LoadedRecipe, plan: GraphPlan, splits) -> tuple[list[Objective], Any]:
    """Each output's loss, checked against its output and targets; y's dtype (by output when
    the model has several)."""
    heads = loaded.recipe.compile.heads(plan.outputs)
    objectives, dtypes = [], {}
    for head in heads:
        loss = head.loss
        output_shape = plan.output_shapes[head.index]
        target = splits.target_of(head.name)
        where = "" if head.name is None else f"output '{head.name}': "
        problem = loss.check_output(tuple(output_shape), target.n_classes, tuple(target.shape))
        if problem:
            raise KcliError(Problem(where + problem, head.loss_loc))
        sparse = loss.target_kind == "sparse"
        sequence = loss.target_kind == "sequence_labels"
        try:
            target.check_output(tuple(output_shape), sparse=sparse, sequence_labels=sequence)
        except KcliError as error:
            raise KcliError([Problem(where + p.message, p.loc) for p in error.problems]) from None
        link = plan.output_link(plan.outputs[head.index])
        uses_logits = loss.folds_link(link)
        objective = Objective(
            loss.build(link if uses_logits else None),
            uses_logits,
            link if uses_logits else None,
            output=head.index,
            name=head.name,
            weight=head.weight,
            loss_loc=head.loss_loc,
        )
        objectives.append(objective)
        dtypes[head.name] = torch.long if sparse or sequence else torch.float32
    y_dtype = dtypes[None] if None in dtypes else dtypes
    return objectives, y_dtype


def _check_logged_names(loaded: LoadedRecipe, splits, plan: GraphPlan) -> None:
    """`expect:` keys and callback monitors against the splits the data really gave; the
    optional packages the callbacks need (before the run folder exists)."""
    from kcli.recipe.logged import logged_name_problems, missing_package_problems

    problems = logged_name_problems(
        loaded.recipe, splits.validation is not None, splits.test is not None, plan.outputs
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


def train_weights(class_weight: Any, splits, outputs: list[str]) -> Any:
    """Per-sample weights of the train split: class_weight times any given sample weight.

    A model of several outputs gets them by output: `class_weight` is then a mapping output ->
    class weights (an output it leaves out has none), and the sample weights one array for
    every output or a mapping output -> array."""
    train = splits.train
    base = getattr(train, "sample_weight", None)
    if splits.targets is None:
        return _weights_of(class_weight, getattr(train, "y", None), base, ("fit", "class_weight"))
    if class_weight is not None and not _by_output(class_weight):
        raise KcliError(
            Problem(
                f"the model has {len(outputs)} outputs: give class_weight per output, as a "
                f"mapping output -> class weights ({', '.join(outputs)})",
                ("fit", "class_weight"),
            )
        )
    if class_weight is not None:
        from kcli.data.several import check_keys

        check_keys(class_weight, outputs, ("fit", "class_weight"), "class weights", required=False)
    if class_weight is None and not isinstance(base, dict):
        return base
    weights = {}
    for name in outputs:
        own = base.get(name) if isinstance(base, dict) else base
        table = (class_weight or {}).get(name)
        y = train.y[name] if hasattr(train, "y") else None
        value = _weights_of(table, y, own, ("fit", "class_weight", name))
        if value is not None:
            weights[name] = value
    return weights or None


def _by_output(class_weight: Any) -> bool:
    return isinstance(class_weight, dict) and all(isinstance(k, str) for k in class_weight)


def _weights_of(class_weight: Any, labels: Any, base: Any, loc: tuple) -> np.ndarray | None:
    """One output's per-sample weights: its class weights of `labels`, times `base`."""
    if class_weight is None or labels is None:
        return base
    labels = np.asarray(labels)
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
            raise KcliError(Problem(f"class_weight has no weight for class(es) {missing}", loc))
        table = np.array([class_weight[c] for c in range(n_classes)], dtype=np.float64)
    weights = table[labels].astype(np.float32)
    return weights if base is None else (weights * base).astype(np.float32)
