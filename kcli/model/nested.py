"""Sub-models (`model.models`) for the planner: which calls which, in what order, and a call's
shape rule. Torch-free; `kcli.model.graph.plan_graph` plans each sub-model with these.

A sub-model is planned once, for the input shapes it declares (its weights are built for those),
before the graphs that call it. A call must give it as many inputs as it declares, each fitting
the declared shape (the same rank; a known dimension equal, a null one anything); its outputs
are the sub-model's, re-planned for the shapes the call gives where those say more than the
declared ones (a known sequence length where the sub-model leaves it null), as Keras infers
them per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kcli.errors import Problem, ShapeError, did_you_mean
from kcli.model.layers.base import LayerSpec, Shape, format_shape

if TYPE_CHECKING:
    from kcli.model.spec import GraphSpec, SubModelSpec

Loc = tuple[str | int, ...]


def is_call(layer: LayerSpec) -> bool:
    """Whether a layer is a call of a sub-model (`{type: Model, model: NAME}`)."""
    from kcli.model.layers.submodel import Model

    return isinstance(layer, Model)


def calls_in(spec: GraphSpec) -> dict[int, str]:
    """Layer index -> the sub-model it calls, for the graph's Model calls."""
    return {i: layer.model for i, layer in enumerate(spec.layers) if is_call(layer)}


def submodel_order(models: dict[str, SubModelSpec], problems: list[Problem]) -> list[str]:
    """The sub-models in an order where each comes after those it calls; a sub-model that
    calls itself, directly or through others, is reported at the call that closes the loop
    and left out (with every sub-model that calls it)."""
    order: list[str] = []
    done: set[str] = set()
    refused: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        path.append(name)
        for index, callee in calls_in(models[name]).items():
            if callee not in models or callee in done:
                continue  # an unknown name is reported where the call is planned
            if callee in path:
                loop = " -> ".join([*path[path.index(callee) :], callee])
                what = "itself" if callee == name else f"'{callee}', which contains it ({loop})"
                problems.append(
                    Problem(
                        f"sub-model '{name}' calls {what}: a model cannot contain itself",
                        ("model", "models", name, "layers", index, "model"),
                    )
                )
                refused.update(path[path.index(callee) :])
                continue
            if callee not in refused:
                visit(callee, path)
            if callee in refused:
                refused.add(name)
        path.pop()
        done.add(name)
        if name not in refused:
            order.append(name)

    for name in models:
        if name not in done:
            visit(name, [])
    return order


def unknown_model(called: str, defined: list[str]) -> str:
    """The message for a call of a sub-model that `model.models` does not define."""
    if not defined:
        return f"'{called}' is not a sub-model: define it under model.models (inputs, layers)"
    return (
        f"'{called}' is not a sub-model (model.models has {', '.join(defined)})"
        f"{did_you_mean(called, defined)}"
    )


def reached_models(called: set[str], calls_of: dict[str, set[str]]) -> list[str]:
    """Every sub-model reached from `called`, directly or through other sub-models."""
    seen: list[str] = []
    stack = sorted(called, reverse=True)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.append(name)
        stack.extend(sorted(calls_of.get(name, ()), reverse=True))
    return seen


def call_output_shapes(
    model: str,
    declared: dict[str, Shape],
    declared_outputs: list[Shape],
    given: list[Shape],
    replan: Callable[[dict[str, Shape]], list[Shape]],
) -> list[Shape]:
    """The shapes a call of sub-model `model` outputs for its inputs' shapes `given`.

    Raises ShapeError when the count or a shape does not fit what the sub-model declares.
    `replan(input shapes)` gives the sub-model's outputs for more specific input shapes.
    """
    names = list(declared)
    if len(given) != len(names):
        raise ShapeError(
            f"sub-model '{model}' takes {len(names)} input(s) ({', '.join(names)}), "
            f"got {len(given)}"
        )
    specific: dict[str, Shape] = {}
    for name, want, got in zip(names, declared.values(), given, strict=True):
        fits = len(want) == len(got) and all(
            w is None or g is None or w == g for w, g in zip(want, got, strict=True)
        )
        if not fits:
            raise ShapeError(
                f"sub-model '{model}' takes input '{name}' of shape {format_shape(want)}, "
                f"got {format_shape(got)}"
            )
        # The call's own sizes where the sub-model leaves a dimension null.
        specific[name] = tuple(g if w is None else w for w, g in zip(want, got, strict=True))
    if specific == dict(declared):
        return declared_outputs
    return replan(specific)


def name_problems(
    spec: GraphSpec, names: list[str], models: set[str], at: Loc, top: bool
) -> list[Problem]:
    """Names a graph cannot give a layer or input because a sub-model has it.

    A sub-model's summary row and (at the top, where every sub-model's weights are kept) its
    module go by its name, so only its own calls may take it; in a sub-model, the sub-models
    it calls are the ones that count.
    """
    called = set(calls_in(spec).values())
    problems = []
    for index, (layer, name) in enumerate(zip(spec.layers, names, strict=True)):
        owner = models if top else called
        if name in owner and not (is_call(layer) and layer.model == name):
            problems.append(
                Problem(
                    f"the name '{name}' is sub-model model.models.{name}'s: only a call of it "
                    "may have it",
                    (*at, "layers", index, "name"),
                )
            )
    for name in spec.input_shapes():
        if name in called:
            field = ("inputs", name) if spec.inputs is not None else ("input_shape",)
            problems.append(
                Problem(
                    f"the input name '{name}' is sub-model model.models.{name}'s: rename one",
                    (*at, *field),
                )
            )
    return problems
