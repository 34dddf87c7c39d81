"""Keras' `model.summary()`: the table of layers, output shapes and parameter counts."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

from kcli.limits import readable_bytes
from kcli.model.graph import GraphPlan, layer_of
from kcli.model.layers.base import format_shape


@dataclass(frozen=True)
class SummaryRow:
    name: str
    type: str
    output_shape: list[int | None]  # batch excluded
    params: int
    inputs: list[str]
    # Every output's shape, for a layer with several (an RNN with return_state); else None.
    output_shapes: list[list[int | None]] | None = None


@dataclass(frozen=True)
class ModelSummary:
    title: str
    sequential: bool
    layers: list[SummaryRow]
    total_params: int
    trainable_params: int
    non_trainable_params: int

    def to_json(self) -> dict:
        """The `summarize --json` document of CLI.md."""
        return {
            "name": self.title,
            "layers": [asdict(row) for row in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
        }


def summarize_model(plan: GraphPlan, model, title: str) -> ModelSummary:
    """Rows and totals for a built GraphModel; counts are Keras' (see kcli.model.nn.counting)."""
    from kcli.model.nn.counting import count_weights

    rows: dict[str, SummaryRow] = {}
    if not plan.sequential:
        for name, shape in plan.inputs.items():
            rows[name] = SummaryRow(name, "InputLayer", list(shape), 0, [])
    trainable = non_trainable = 0
    for node in plan.nodes:
        # A Shared call's weights are its shared layer's: counted once, there (as Keras does).
        layer_trainable, layer_frozen = (
            (0, 0) if node.shares else count_weights(model.layer(node.name))
        )
        trainable += layer_trainable
        non_trainable += layer_frozen
        rows[node.name] = SummaryRow(
            node.name,
            f"{node.type}, shares {node.shares}" if node.shares else node.type,
            list(node.shape),
            layer_trainable + layer_frozen,
            list(node.inputs),
            [list(shape) for shape in node.shapes] if node.shapes else None,
        )
    ordered = [rows[name] for name in keras_layer_order(plan) if name in rows]
    return ModelSummary(
        title, plan.sequential, ordered, trainable + non_trainable, trainable, non_trainable
    )


def keras_layer_order(plan: GraphPlan) -> list[str]:
    """Inputs and layers in the order Keras' functional `model.layers` (and summary) has them.

    Keras walks the graph depth-first from the outputs (each layer's inputs in order), numbering
    layers as first reached; a layer's depth is its longest path to an output. Layers are listed
    by decreasing depth, ties by that number. A sequential model keeps its recipe order.
    """
    if plan.sequential:
        return [*plan.inputs, *(node.name for node in plan.nodes)]
    feeds = {node.name: tuple(layer_of(s) for s in node.inputs) for node in plan.nodes}
    first_reached: dict[str, int] = {}

    def walk(name: str) -> None:  # iterative: a deep model must not hit the recursion limit
        stack = [name]
        while stack:
            current = stack.pop()
            if current in first_reached:
                continue
            first_reached[current] = len(first_reached)
            stack.extend(reversed(feeds.get(current, ())))

    for output in plan.outputs:
        walk(output)
    depth = dict.fromkeys(first_reached, 0)
    for node in reversed(plan.nodes):  # consumers before producers: depths are final when read
        for source in feeds[node.name]:
            depth[source] = max(depth[source], depth[node.name] + 1)
    for name in plan.inputs:  # an input no output needs: Keras lists it at depth 0, first
        if name not in first_reached:
            first_reached[name], depth[name] = -1, 0
    return sorted(first_reached, key=lambda name: (-depth[name], first_reached[name]))


# Keras' memory size of a count of float32 weights (the same format kcli's size limits print).
readable_size = readable_bytes


def _connection(reference: str) -> str:
    """Keras' `layer[0][k]` for output k of a layer (`encoder:1` -> `encoder[0][1]`)."""
    name = layer_of(reference)
    index = reference[len(name) + 1 :] or "0"
    return f"{name}[0][{index}]"


def _count_line(label: str, count: int) -> str:
    # Keras counts 4 bytes per (float32) weight.
    return f" {label}: {count:,} ({readable_size(count * 4)})"


def render_summary(summary: ModelSummary, width: int = 100) -> str:
    """The summary as Keras prints it (a rich table), as plain text."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.HEAVY_HEAD, show_lines=False, title_justify="left")
    table.add_column("Layer (type)", no_wrap=True)
    table.add_column("Output Shape", no_wrap=True)
    table.add_column("Param #", justify="right")
    if not summary.sequential:
        table.add_column("Connected to")
    for row in summary.layers:
        shape = format_shape(tuple(row.output_shape))
        if row.output_shapes:  # as Keras prints a layer of several outputs: a list of shapes
            shape = "[" + ", ".join(format_shape(tuple(s)) for s in row.output_shapes) + "]"
        cells = [f"{row.name} ({row.type})", shape, f"{row.params:,}"]
        if not summary.sequential:
            cells.append("\n".join(_connection(s) for s in row.inputs) or "-")
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
