"""Confusion matrices for `kcli eval`: counted on the device, printed with rich.

A classification output (one class decision per sample) gets a confusion matrix and its
per-class precision and recall; a model of several outputs gets one per classification output.
"""

from __future__ import annotations

import math
from typing import Any

CLASS_TARGETS = ("sparse", "onehot", "binary")  # loss target kinds that make a classifier


def is_classifier(loss: Any) -> bool:
    """True when the run's loss compares class labels (crossentropy, hinge ...)."""
    return loss.target_kind in CLASS_TARGETS


def binary_threshold(loss: Any) -> float:
    """Where a one-unit output splits class 0 from 1: 0 for logits and hinge scores, else 0.5."""
    return 0.0 if getattr(loss, "from_logits", False) or "hinge" in loss.type else 0.5


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


class Confusion:
    """A confusion matrix counted on the device, batch by batch (no host sync per batch)."""

    def __init__(self, n_classes: int, threshold: float, device: Any) -> None:
        import torch

        self.n = n_classes
        self.threshold = threshold
        self.counts = torch.zeros(n_classes * n_classes, dtype=torch.long, device=device)

    def add(self, output: Any, y: Any) -> None:
        import torch

        if self.n > 2 or output.shape[-1] > 1:
            predicted = output.argmax(-1).reshape(-1)
            truth = y.argmax(-1) if y.is_floating_point() and y.shape == output.shape else y
        else:  # one unit: class 1 above the threshold; labels 0/1 (or -1/1 for hinge)
            predicted = (output > self.threshold).long().reshape(-1)
            truth = y >= 0.5
        truth = truth.long().reshape(-1)
        self.counts += torch.bincount(truth * self.n + predicted, minlength=self.n * self.n)

    def matrix(self) -> list[list[int]]:
        return self.counts.reshape(self.n, self.n).tolist()


def confusion_for(prepared: Any, head: Any) -> Confusion | None:
    """A counter when `head`'s output is one class decision per sample; None otherwise."""
    loss = head.loss
    shape = tuple(prepared.plan.output_shapes[head.index])
    if not is_classifier(loss) or len(shape) != 1:
        return None
    units = shape[0]
    if loss.target_kind == "binary" and units > 1:
        return None  # several independent 0/1 labels per sample: no single class to count
    return Confusion(max(units, 2), binary_threshold(loss), prepared.device)


def print_confusion(console: Any, evaluation: Any, output: str | None) -> None:
    """One classification output's confusion matrix and per-class scores."""
    from rich.table import Table

    names, confusion = (
        (evaluation.class_names, evaluation.confusion)
        if output is None
        else evaluation.by_output[output]
    )
    names = names or []
    of = "" if output is None else f" of output '{output}'"
    matrix = Table(
        title=f"confusion matrix{of} (rows: true class, columns: predicted)", title_justify="left"
    )
    matrix.add_column("true \\ predicted")
    for name in names:
        matrix.add_column(name, justify="right")
    for name, row in zip(names, confusion, strict=True):
        matrix.add_row(name, *(str(v) for v in row))
    console.print(matrix)
    scores = Table(title=f"per class{of}", title_justify="left")
    for column in ("class", "precision", "recall", "support"):
        scores.add_column(column, justify="left" if column == "class" else "right")
    for row in evaluation.per_class(output):
        scores.add_row(
            row["class"], number(row["precision"]), number(row["recall"]), str(row["support"])
        )
    console.print(scores)
