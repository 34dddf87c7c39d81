"""Keras' `model.summary()`: the table of layers, output shapes and parameter counts."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

from kcli.model.graph import GraphPlan
from kcli.model.layers.base import format_shape


@dataclass(frozen=True)
class SummaryRow:
    name: str
    type: str
    output_shape: list[int | None]  # batch excluded
    params: int
    inputs: list[str]


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

    rows = []
    if not plan.sequential:
        for name, shape in plan.inputs.items():
            rows.append(SummaryRow(name, "InputLayer", list(shape), 0, []))
    trainable = non_trainable = 0
    for node in plan.nodes:
        layer_trainable, layer_frozen = count_weights(model.layer(node.name))
        trainable += layer_trainable
        non_trainable += layer_frozen
        rows.append(
            SummaryRow(
                node.name,
                node.type,
                list(node.shape),
                layer_trainable + layer_frozen,
                list(node.inputs),
            )
        )
    return ModelSummary(
        title, plan.sequential, rows, trainable + non_trainable, trainable, non_trainable
    )


def readable_size(n_bytes: float) -> str:
    """Keras' memory size: 1024-based units, two decimals (`37.54 KB`, `0.00 B`)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024 or unit == "TB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


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
        cells = [
            f"{row.name} ({row.type})",
            format_shape(tuple(row.output_shape)),
            f"{row.params:,}",
        ]
        if not summary.sequential:
            cells.append("\n".join(f"{s}[0][0]" for s in row.inputs) or "-")
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
