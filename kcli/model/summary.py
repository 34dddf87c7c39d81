"""Keras' `model.summary()`: the table of layers, output shapes and parameter counts.

A sub-model is one row, as Keras shows a nested Model: named after it, typed `Functional` (or
`Sequential` for one in the input_shape-and-layers form), its weights counted once however
often it is called, connected to every call's inputs; a consumer of its k-th call is connected
to `encoder[k][0]` (calls numbered as Keras makes them: those inside sub-models first, then the
model's, each graph's in recipe order). Its own rows are kept under it (`layers`), shown with
`--expand` as Keras' `expand_nested=True` shows them: indented with `└`, not connected (but
for a sub-model the model calls too, which Keras connects as at its row in the model).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import asdict, dataclass, field

from kcli.limits import readable_bytes
from kcli.model.graph import GraphPlan, Node, layer_of
from kcli.model.layers.base import format_shape
from kcli.model.nested import reached_models

# Keras prefixes a nested layer's name with three spaces per level and this mark.
NESTED_MARK = "└ "


@dataclass(frozen=True)
class SummaryRow:
    name: str
    type: str
    output_shape: list[int | None]  # batch excluded
    params: int
    inputs: list[str]
    # Every output's shape, for a layer with several (an RNN with return_state); else None.
    output_shapes: list[list[int | None]] | None = None
    # A sub-model's row: the layers of the recipe that call it, and its own rows.
    calls: list[str] | None = None
    layers: list[SummaryRow] | None = None
    connected_to: list[str] = field(default_factory=list)  # Keras' `layer[node][k]`, for text


def _row_json(row: SummaryRow, expand: bool) -> dict:
    data = asdict(row)
    del data["connected_to"]
    for key in ("calls", "layers"):
        if data[key] is None:
            del data[key]
    if row.layers is not None:
        if expand:
            data["layers"] = [_row_json(inner, expand) for inner in row.layers]
        else:
            del data["layers"]
    return data


@dataclass(frozen=True)
class ModelSummary:
    title: str
    sequential: bool
    layers: list[SummaryRow]
    total_params: int
    trainable_params: int
    non_trainable_params: int

    def to_json(self, expand: bool = False) -> dict:
        """The `summarize --json` document of CLI.md (sub-models' rows under theirs with
        `expand`)."""
        return {
            "name": self.title,
            "layers": [_row_json(row, expand) for row in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
        }


def summarize_model(plan: GraphPlan, model, title: str) -> ModelSummary:
    """Rows and totals for a built GraphModel; counts are Keras' (see kcli.model.nn.counting)."""
    from kcli.model.nn.counting import count_weights

    # Every module, a sub-model's too, is the GraphModel's once: its counts are the totals.
    trainable, non_trainable = count_weights(model)
    calls_of = {name: set(_calls_by_model(sub)) for name, sub in plan.models.items()}
    # Keras numbers a layer's calls in the order they are made: those inside the sub-models
    # (each built before the models using it) come before the model's own.
    made_before: Counter[str] = Counter()
    for sub in plan.models.values():
        made_before.update({name: len(calls) for name, calls in _calls_by_model(sub).items()})
    models = _Models(plan.models, model._models, calls_of)
    rows = _graph_rows(plan, model, models, made_before, None)
    return ModelSummary(
        title, plan.sequential, rows, trainable + non_trainable, trainable, non_trainable
    )


@dataclass(frozen=True)
class _Models:
    """Every sub-model of the model: plans, modules (the GraphModel's) and which calls which."""

    plans: dict[str, GraphPlan]
    modules: dict
    calls_of: dict[str, set[str]]


def _calls_by_model(plan: GraphPlan) -> dict[str, list[Node]]:
    """Sub-model -> the nodes calling it, in recipe order (Keras numbers a layer's calls so)."""
    calls: dict[str, list[Node]] = {}
    for node in sorted(plan.nodes, key=lambda n: n.loc[-1]):
        if node.submodel is not None:
            calls.setdefault(node.spec.model, []).append(node)
    return calls


def _graph_rows(
    plan: GraphPlan,
    graph,
    models: _Models,
    made_before: Counter[str],
    outer: dict[str, list[str]] | None,
) -> list[SummaryRow]:
    """One graph's rows in Keras' order; `graph` is its module (a GraphModel or NestedModel).

    The model's rows are connected (`outer` None); a sub-model's rows are not, but for those
    of sub-models the model calls too, which Keras connects as in the model (`outer`).
    """
    from kcli.model.nn.counting import count_weights

    calls = _calls_by_model(plan)
    call_number = {
        node.name: (model, made_before[model] + k)
        for model, nodes in calls.items()
        for k, node in enumerate(nodes)
    }

    def connection(reference: str) -> str:
        """Keras' `layer[node][k]`: output k of a layer's node-th call (`encoder:1` ->
        `encoder[0][1]`; a sub-model's second call `encoder_1` -> `encoder[1][0]`)."""
        name = layer_of(reference)
        index = reference[len(name) + 1 :] or "0"
        model, k = call_number.get(name, (name, 0))
        return f"{model}[{k}][{index}]"

    def connections(references: list[str]) -> list[str]:
        return [connection(s) for s in references] if outer is None else []

    model_connections = {
        model: [connection(s) for node in nodes for s in node.inputs]
        for model, nodes in calls.items()
    }
    rows: dict[str, SummaryRow] = {}
    if not plan.sequential:
        for name, shape in plan.inputs.items():
            rows[name] = SummaryRow(name, "InputLayer", list(shape), 0, [])
    for node in plan.nodes:
        if node.submodel is not None:
            continue
        # A Shared call's weights are its shared layer's: counted once, there (as Keras does).
        params = 0 if node.shares else sum(count_weights(graph.layer(node.name)))
        rows[node.name] = SummaryRow(
            node.name,
            f"{node.type}, shares {node.shares}" if node.shares else node.type,
            list(node.shape),
            params,
            list(node.inputs),
            [list(shape) for shape in node.shapes] if node.shapes else None,
            connected_to=connections(list(node.inputs)),
        )
    for model, nodes in calls.items():
        sub, last = models.plans[model], nodes[-1]  # Keras shows the shape of the last call
        # Its weights and those of the sub-models it calls, each once.
        reached = reached_models({model}, models.calls_of)
        inner = _graph_rows(
            sub, models.modules[model], models, Counter(), outer or model_connections
        )
        rows[model] = SummaryRow(
            model,
            "Sequential" if sub.sequential else "Functional",
            list(last.shape),
            sum(sum(count_weights(models.modules[name])) for name in reached),
            [source for node in nodes for source in node.inputs],
            [list(shape) for shape in last.shapes] if last.shapes else None,
            calls=[node.name for node in nodes],
            layers=inner,
            connected_to=model_connections[model] if outer is None else outer.get(model, []),
        )
    return [rows[name] for name in keras_layer_order(plan) if name in rows]


def keras_layer_order(plan: GraphPlan) -> list[str]:
    """Inputs and layers in the order Keras' functional `model.layers` (and summary) has them.

    Keras walks the graph depth-first from the outputs (each call's inputs in order), numbering
    layers as first reached and listing the calls as finished; a call's depth is one more than
    the deepest call it feeds, raised to its layer's depth so far (the calls of one sub-model
    are one layer), walking back from the last finished. Layers are listed by decreasing depth,
    ties by that number. A sequential model keeps its recipe order.
    """
    layer_of_call = {n.name: n.spec.model for n in plan.nodes if n.submodel is not None}
    if plan.sequential:
        names = [layer_of_call.get(node.name, node.name) for node in plan.nodes]
        return list(dict.fromkeys([*plan.inputs, *names]))
    feeds = {node.name: tuple(layer_of(s) for s in node.inputs) for node in plan.nodes}
    number: dict[str, int] = {}  # layer -> when first reached
    finished: list[str] = []  # calls, each after those feeding it
    visited: set[str] = set()
    for output in plan.outputs:  # iterative: a deep model must not hit the recursion limit
        stack = [(layer_of(output), False)]
        while stack:
            call, done = stack.pop()
            if done:
                finished.append(call)
                continue
            if call in visited:
                continue
            visited.add(call)
            number.setdefault(layer_of_call.get(call, call), len(number))
            stack.append((call, True))
            stack.extend((source, False) for source in reversed(feeds.get(call, ())))
    call_depth: dict[str, int] = {}
    depth: dict[str, int] = {}  # by layer
    for call in reversed(finished):
        layer = layer_of_call.get(call, call)
        here = max(call_depth.get(call, 0), depth.get(layer, 0))
        depth[layer] = call_depth[call] = here
        for source in feeds.get(call, ()):
            call_depth[source] = max(call_depth.get(source, 0), here + 1)
    for name in plan.inputs:  # an input no output needs: Keras lists it at depth 0, first
        if name not in number:
            number[name], depth[name] = -1, 0
    return sorted(number, key=lambda name: (-depth[name], number[name]))


# Keras' memory size of a count of float32 weights (the same format kcli's size limits print).
readable_size = readable_bytes


def _count_line(label: str, count: int) -> str:
    # Keras counts 4 bytes per (float32) weight.
    return f" {label}: {count:,} ({readable_size(count * 4)})"


def _cells(row: SummaryRow, level: int, connected: bool) -> list[str]:
    shape = format_shape(tuple(row.output_shape))
    if row.output_shapes:  # as Keras prints a layer of several outputs: a list of shapes
        shape = "[" + ", ".join(format_shape(tuple(s)) for s in row.output_shapes) + "]"
    prefix = "   " * level + NESTED_MARK if level else ""
    cells = [f"{prefix}{row.name} ({row.type})", shape, f"{row.params:,}"]
    if connected:  # a nested row is not connected in the model's graph (`-`), as in Keras
        cells.append("\n".join(row.connected_to) or "-")
    return cells


def _table_rows(rows: list[SummaryRow], level: int, expand: bool, connected: bool):
    for row in rows:
        yield _cells(row, level, connected)
        if expand and row.layers:
            yield from _table_rows(row.layers, level + 1, expand, connected)


def render_summary(summary: ModelSummary, width: int = 100, expand: bool = False) -> str:
    """The summary as Keras prints it (a rich table), as plain text; with `expand`, each
    sub-model's layers below its row, as Keras' `expand_nested=True`."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.HEAVY_HEAD, show_lines=False, title_justify="left")
    table.add_column("Layer (type)", no_wrap=True)
    table.add_column("Output Shape", no_wrap=True)
    table.add_column("Param #", justify="right")
    if not summary.sequential:
        table.add_column("Connected to")
    for cells in _table_rows(summary.layers, 0, expand, not summary.sequential):
        table.add_row(*cells)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(f'Model: "{summary.title}"')
    console.print(table)
    console.print(_count_line("Total params", summary.total_params), highlight=False)
    console.print(_count_line("Trainable params", summary.trainable_params), highlight=False)
    console.print(
        _count_line("Non-trainable params", summary.non_trainable_params), highlight=False
    )
    return buffer.getvalue()
