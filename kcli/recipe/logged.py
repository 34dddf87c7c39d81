"""What `validate` and `train` check before anything runs, beyond the schema and the graph.

The names a run logs, and the recipe keys that must name one (`expect:`, `monitor:`). A run logs
`loss` and each metric every epoch, their `val_` forms when it has a validation split,
`regularization` (with a weight penalty) and `lr`; after the last epoch, their `test_` forms
when it has a test split. An `expect:` gate or a callback's `monitor` naming anything else is a
typo that would otherwise pass silently (a gate reported missing at the end, an EarlyStopping
that never stops): both are bad input, located, with the close name. `kcli validate` checks
them from the recipe alone; training checks them again with the splits the data gave. And the
optional packages a recipe's callbacks need (TensorBoard), so that a missing one stops a run
before its folder exists.
"""

from __future__ import annotations

from typing import Any

from kcli.compile.outputs import output_loss_names
from kcli.errors import KcliError, Problem, did_you_mean


def known_splits(recipe: Any) -> tuple[bool | None, bool | None]:
    """(has validation, has test) as the recipe says; None where only the data can say.

    A `python:` source may return a dict of splits, so without explicit splits in the recipe
    its validation and test splits are known only once it has run.
    """
    from kcli.data.spec import source_kind

    data = recipe.data
    has_validation = data.validation_split > 0 or data.validation is not None
    has_test = data.test_split > 0 or data.test is not None
    try:
        kind = source_kind(data.source)[0]
    except ValueError:
        kind = None
    if kind == "python":
        return (True if has_validation else None), (True if has_test else None)
    return has_validation, has_test


def metric_names(
    metric_specs: list, has_validation: bool, has_test: bool, output_losses: list[str] = ()
) -> list[str]:
    """Everything a run logs: `loss`, each output's `<output>_loss` when there are several,
    the metrics, their `val_` and `test_` forms."""
    names = ["loss", *output_losses, *(spec.log_name for spec in metric_specs)]
    out = list(names)
    if has_validation:
        out += [f"val_{n}" for n in names]
    if has_test:
        out += [f"test_{n}" for n in names]
    return out


def logged_name_problems(
    recipe: Any,
    has_validation: bool | None,
    has_test: bool | None,
    outputs: list[str] | None = None,
) -> list[Problem]:
    """A Problem for each `expect:` key and callback `monitor` the run would not log.

    None for a split means "not known yet": names that need that split are not judged.
    `outputs` are the model's outputs (plan.outputs).
    """
    try:
        metric_specs = recipe.compile.logged_metrics(outputs)
    except KcliError as error:
        return list(error.problems)
    logged = metric_names(
        metric_specs, bool(has_validation), bool(has_test), output_loss_names(outputs)
    )
    problems = []
    for key in recipe.expect:
        why = _unknown_because(key, logged, has_validation, has_test)
        if why is not None:
            problems.append(Problem(f"'{key}' is not a metric of this run{why}", ("expect", key)))
    # `regularization` (the weight penalty alone) is logged when the model has one.
    per_epoch = [name for name in logged if not name.startswith("test_")] + ["regularization", "lr"]
    for index, callback in enumerate(recipe.fit.callbacks):
        monitor = getattr(callback, "monitor", None)
        if monitor is None or monitor in per_epoch:
            continue
        if monitor.startswith("test_"):
            why = "; test metrics exist only after the last epoch"
        else:
            why = _unknown_because(monitor, per_epoch, has_validation, has_test)
        if why is not None:
            problems.append(
                Problem(
                    f"{callback.type} monitors '{monitor}', which this run does not log{why}",
                    ("fit", "callbacks", index, "monitor"),
                )
            )
    return problems


def _unknown_because(
    name: str, logged: list[str], has_validation: bool | None, has_test: bool | None
) -> str | None:
    """None when `name` is (or may be) logged, else why not, with the close name."""
    if name in logged:
        return None
    if (name.startswith("val_") and has_validation is None) or (
        name.startswith("test_") and has_test is None
    ):
        return None  # the data decides: checked again when it has been read
    why = ""
    if name.startswith("test_") and not has_test:
        why = " (there is no test split: set data.test_split or data.test)"
    elif name.startswith("val_") and not has_validation:
        why = " (there is no validation split: set data.validation_split)"
    return f"{why}{did_you_mean(name, logged)}; it logs {', '.join(logged)}"


def missing_package_problems(recipe: Any) -> list[Problem]:
    """A Problem for each callback whose optional package is not installed."""
    problems = []
    for index, callback in enumerate(recipe.fit.callbacks):
        try:
            callback.check_available()
        except KcliError as error:
            problems += [
                Problem(p.message, ("fit", "callbacks", index, "type")) for p in error.problems
            ]
    return problems


# Classes of the data sets whose labels are known without reading them.
_SKLEARN_CLASSES = {"iris": 3, "digits": 10, "wine": 3, "breast_cancer": 2}
_TWO_CLASS_SYNTHETIC = ("moons", "circles")


def declared_classes(recipe: Any) -> int | None:
    """How many classes the recipe's data has, when the recipe alone says; else None."""
    from kcli.data.spec import source_kind

    data = recipe.data
    if any(getattr(step, "type", None) == "one_hot" for step in data.preprocess):
        return None  # the targets' form changes: training checks them once they exist
    try:
        kind, name = source_kind(data.source)
    except ValueError:
        return None
    if kind == "sklearn":
        return _SKLEARN_CLASSES.get(name)
    if kind == "synthetic" and name != "regression":
        return 2 if name in _TWO_CLASS_SYNTHETIC else int(data.params.get("n_classes", 2))
    return None


def output_problems(recipe: Any, plan: Any) -> list[Problem]:
    """Each output's loss against the output, as far as the recipe alone tells (no data read);
    a loss, loss_weights or metrics mapping or list that does not fit the outputs."""
    try:
        heads = recipe.compile.heads(plan.outputs)
    except KcliError as error:
        return list(error.problems)
    classes = declared_classes(recipe) if len(heads) == 1 else None
    problems = []
    for head in heads:
        problem = head.loss.check_output(tuple(plan.output_shapes[head.index]), classes)
        if problem:
            where = "" if head.name is None else f"output '{head.name}': "
            problems.append(Problem(where + problem, head.loss_loc))
    return problems
