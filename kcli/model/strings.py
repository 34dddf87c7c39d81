"""Which model inputs carry strings: those read by a StringLookup or TextVectorization layer.

The data stage encodes such an input's strings to ids with that layer's vocabulary
(kcli.data.text), so the wiring has rules the shapes alone do not show: a string layer reads a
model input directly (nothing before it could pass strings on), an input holding strings feeds
string layers only (another layer would get ids it cannot mean), and one string layer per
input (its ids are made for that layer's vocabulary). Torch-free: `kcli validate` checks them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kcli.errors import KcliError, Problem
from kcli.model.layers.text import STRING_LAYERS
from kcli.model.wiring import layer_of

if TYPE_CHECKING:
    from kcli.model.graph import GraphPlan, Node


def string_input_problems(plan: GraphPlan) -> tuple[dict[str, Node], list[Problem]]:
    """(model input -> the string layer's node reading it, the wiring problems found)."""
    problems: list[Problem] = []
    found: dict[str, Node] = {}
    for inner in plan.models.values():
        for node in inner.nodes:
            if node.type in STRING_LAYERS:
                problems.append(
                    Problem(
                        f"{node.type} '{node.name}' is in a sub-model; a string layer must read "
                        "one of the top model's inputs (a CSV column under data.strings)",
                        node.loc,
                    )
                )
    for node in plan.nodes:
        if node.type not in STRING_LAYERS:
            continue
        source = layer_of(node.inputs[0])
        if source not in plan.inputs:
            problems.append(
                Problem(
                    f"{node.type} '{node.name}' reads strings, so it must take a model input (a "
                    f"CSV column under data.strings) directly; it is fed by '{source}'",
                    node.loc,
                )
            )
        elif source in found:
            problems.append(
                Problem(
                    f"the input '{source}' feeds two string layers, '{found[source].name}' and "
                    f"'{node.name}'; its strings are encoded for one vocabulary: read it with one",
                    node.loc,
                )
            )
        else:
            found[source] = node
    for node in plan.nodes:
        if node.type in STRING_LAYERS:
            continue
        for source in {layer_of(name) for name in node.inputs} & set(found):
            problems.append(
                Problem(
                    f"{node.type} '{node.name}' reads the string input '{source}', which only "
                    "StringLookup or TextVectorization can take (put one of them before it)",
                    node.loc,
                )
            )
    return found, problems


def string_inputs(plan: GraphPlan) -> dict[str, Node]:
    """Model input -> the StringLookup/TextVectorization node reading it; a KcliError listing
    every wiring problem (each at its layer) otherwise."""
    found, problems = string_input_problems(plan)
    if problems:
        raise KcliError(problems)
    return found
