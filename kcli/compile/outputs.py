"""Several outputs (Keras' compile for multi-output models): which loss, loss weight and metrics
each output gets, and the names it logs. Torch-free.

A compile field that varies by output takes one value for every output, a mapping output name
-> value, or a list in the order of `model.outputs`, as Keras' compile does. What the forms mean:
  - `loss`: one loss for every output, or one per output (a mapping must name every output, as
    Keras requires);
  - `loss_weights`: one number, or one per output (default 1); the training loss is the
    weighted sum of the outputs' losses plus the regularization penalties;
  - `metrics`, `weighted_metrics`: a list for every output, a mapping output name -> list (an
    output left out gets none), or a list of lists in output order. (Keras reads a flat list
    whose length happens to equal the number of outputs as one metric per output; kcli applies a
    flat list to every output, and the list-of-lists form is the per-output one.)
With several outputs the run logs `loss` (the total), `<output>_loss` (each output's own loss,
before its weight, as Keras logs it) and `<output>_<metric>`; with one output, `loss` and
`<metric>` as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

from kcli.errors import KcliError, Loc, Problem, did_you_mean

if TYPE_CHECKING:
    from kcli.compile.losses import LossSpec


def _form(value: Any) -> str:
    """Which form a per-output field holds: a mapping by output name, a list, or one value.

    A mapping with a `type` key is one spec written in full (`{type: mse}`), not a mapping."""
    if isinstance(value, dict) and "type" not in value:
        return "by_output"
    if isinstance(value, list):
        return "in_order"
    return "one"


def per_output(ref: Any) -> Any:
    """The type of a field holding one `ref`, a mapping output name -> `ref`, or a list of them."""
    return Annotated[
        Union[  # noqa: UP007 (a tagged union needs the Union form)
            Annotated[ref, Tag("one")],
            Annotated[dict[str, ref], Tag("by_output")],
            Annotated[list[ref], Tag("in_order")],
        ],
        Discriminator(_form),
    ]


def _metrics_form(value: Any) -> str:
    if isinstance(value, dict):
        return "by_output"
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return "in_order"
    return "every_output"


def _one_or_list(value: Any) -> str:
    return "list" if isinstance(value, list) else "one"


def metrics_field(ref: Any) -> Any:
    """The type of `metrics` / `weighted_metrics`: a list, a mapping output -> list (or one
    metric), or a list of lists in output order."""
    one_or_list = Annotated[
        Union[Annotated[list[ref], Tag("list")], Annotated[ref, Tag("one")]],  # noqa: UP007
        Discriminator(_one_or_list),
    ]
    return Annotated[
        Union[  # noqa: UP007
            Annotated[list[ref], Tag("every_output")],
            Annotated[dict[str, one_or_list], Tag("by_output")],
            Annotated[list[list[ref]], Tag("in_order")],
        ],
        Discriminator(_metrics_form),
    ]


def output_log_name(output: str) -> str:
    """The name an output's logs carry: the layer's name (`layer_1` for `layer:1`)."""
    return output.replace(":", "_")


def output_loss_names(outputs: list[str] | None) -> list[str]:
    """`<output>_loss` for each output of a model with several (Keras' names), else none."""
    if outputs is None or len(outputs) < 2:
        return []
    return [f"{output_log_name(name)}_loss" for name in outputs]


@dataclass(frozen=True)
class OutputHead:
    """One output's part of the training objective."""

    index: int  # the output's position in model.outputs
    name: str | None  # its log name; None when the model has one output (no prefixes)
    loss: LossSpec
    weight: float  # its loss weight
    loss_loc: Loc  # where the recipe gives its loss


def spread(
    value: Any, outputs: list[str], key: str, *, default: Any, whole: bool = False
) -> list[tuple[Any, Loc]]:
    """A per-output field as one (value, recipe path) per output, in output order.

    A mapping must use the outputs' names; with `whole`, it must name every output (Keras'
    rule for a loss mapping), else an output it leaves out gets `default`. A list must have one
    entry per output. Anything else is the value of every output.
    """
    loc: Loc = ("compile", key)
    if isinstance(value, dict):
        unknown = [name for name in value if name not in outputs]
        problems = [
            Problem(
                f"'{name}' is not an output of the model{did_you_mean(name, outputs)}; its "
                f"outputs are {', '.join(outputs)}",
                (*loc, name),
            )
            for name in unknown
        ]
        missing = [name for name in outputs if name not in value]
        if whole and missing:
            problems.append(
                Problem(
                    f"gives no loss for output(s) {', '.join(missing)}: a loss mapping names "
                    "every output of the model, as in Keras",
                    loc,
                )
            )
        if problems:
            raise KcliError(problems)
        return [
            (value[name], (*loc, name)) if name in value else (default, loc) for name in outputs
        ]
    if isinstance(value, list):
        if len(value) != len(outputs):
            raise KcliError(
                Problem(
                    f"has {len(value)} entries but the model has {len(outputs)} output(s) "
                    f"({', '.join(outputs)}): give one per output, in that order",
                    loc,
                )
            )
        return [(item, (*loc, index)) for index, item in enumerate(value)]
    return [(value, loc) for _ in outputs]


def output_heads(compile_spec: Any, outputs: list[str]) -> list[OutputHead]:
    """Each output's loss and loss weight; a mapping or list that does not fit is exit 2."""
    logged = [output_log_name(name) for name in outputs]
    for index, name in enumerate(logged):
        if len(outputs) > 1 and name in logged[:index]:
            raise KcliError(
                Problem(
                    f"outputs '{outputs[logged.index(name)]}' and '{outputs[index]}' would both "
                    f"be logged as '{name}'; name the layers apart",
                    ("model", "outputs"),
                )
            )
    losses = spread(compile_spec.loss, outputs, "loss", default=None, whole=True)
    weights = spread(compile_spec.loss_weights, outputs, "loss_weights", default=1.0)
    several = len(outputs) > 1
    return [
        OutputHead(
            index,
            output_log_name(name) if several else None,
            loss,
            1.0 if weight is None else float(weight),
            loss_loc,
        )
        for index, (name, (loss, loss_loc), (weight, _)) in enumerate(
            zip(outputs, losses, weights, strict=True)
        )
    ]


def metrics_by_output(metrics: Any, outputs: list[str], key: str) -> list[list[tuple[Any, Loc]]]:
    """Per output, its metric specs with their recipe paths (see the module doc for the forms)."""
    loc: Loc = ("compile", key)
    if isinstance(metrics, dict):
        spread_out = spread(metrics, outputs, key, default=[])
        result = []
        for value, value_loc in spread_out:
            items = value if isinstance(value, list) else [value]
            if isinstance(value, list):
                result.append([(m, (*value_loc, i)) for i, m in enumerate(items)])
            else:
                result.append([(m, value_loc) for m in items])
        return result
    if metrics and all(isinstance(item, list) for item in metrics):
        spread_out = spread(metrics, outputs, key, default=[])
        return [[(m, (*place, i)) for i, m in enumerate(value)] for value, place in spread_out]
    return [[(m, (*loc, i)) for i, m in enumerate(metrics)] for _ in outputs]
