"""The loss registry and `LossSpec`, the base of every registered loss (torch-free)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    from torch import Tensor

loss_registry = Registry("loss")
EPSILON = 1e-7  # Keras' backend epsilon: the probability clip and the divide guards
LossFn = Callable[["Tensor", "Tensor"], "Tensor"]


class LossSpec(RegisteredSpec):
    """A Keras loss; subclasses give `_values`, the loss reduced over Keras' axis."""

    registry: ClassVar[Registry] = loss_registry
    target_kind: ClassVar[str] = "continuous"  # "sparse" | "onehot" | "binary" | "continuous"
    link: ClassVar[str | None] = None  # the final activation this loss can take logits of

    def folds_link(self, link: str | None) -> bool:
        """True when the loss takes the logits of a final `link` activation (module doc)."""
        return (
            link is not None
            and link == self.link
            and not getattr(self, "from_logits", False)
            and getattr(self, "axis", -1) == -1
        )

    def build(self, link: str | None = None) -> LossFn:
        """fn(y_pred, y_true) -> per-sample loss (N,); logits in y_pred if folds_link(link)."""
        logits = self.folds_link(link) or getattr(self, "from_logits", False)

        def loss(y_pred: Tensor, y_true: Tensor) -> Tensor:
            import torch

            if y_pred.dtype in (torch.float16, torch.bfloat16):
                y_pred = y_pred.float()  # the log and exp need float32's range
            y_pred, y_true = self._align(y_pred, y_true)
            values = self._values(y_pred, y_true, logits)
            return values if values.ndim == 1 else values.flatten(1).mean(1)

        return loss

    def _align(self, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
        """Same rank for both (Keras' squeeze_or_expand_to_same_rank), float targets."""
        if y_pred.ndim == 1:
            y_pred = y_pred.unsqueeze(-1)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true.unsqueeze(-1)
        elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        return y_pred, y_true.to(y_pred.dtype)

    def _values(self, y_pred: Tensor, y_true: Tensor, logits: bool) -> Tensor:
        raise NotImplementedError  # every registered loss overrides this

    def check_output(
        self,
        output_shape: tuple,
        n_classes: int | None,
        target_shape: tuple | None = None,
    ) -> str | None:
        """Why this loss cannot fit the model's output, or None when it can.

        `output_shape` excludes the batch axis; `n_classes` is the number of classes the targets
        hold (max label + 1 for class ids, the width of one-hot targets; None when not classes);
        `target_shape`, when known, is one target's shape (batch excluded).
        """
        units = output_shape[-1] if output_shape else 1
        name = self.type
        if self.target_kind == "sparse":
            if units == 1:
                return (
                    f"{name} needs one output unit per class, but the output has 1 unit: use "
                    "binary_crossentropy with a sigmoid output, or give the last layer one unit "
                    "per class"
                )
            # With ignore_class, the largest label may be the ignored one (e.g. 255).
            ignoring = getattr(self, "ignore_class", None) is not None
            if n_classes is not None and n_classes > units and not ignoring:
                return (
                    f"labels go up to {n_classes - 1} but the output has {units} units (one per "
                    f"class): give the last layer {n_classes} units"
                )
            allowed = {(), (1,), tuple(output_shape[:-1]), (*output_shape[:-1], 1)}
            if target_shape is not None and tuple(target_shape) not in allowed:
                return (
                    f"{name} expects integer class labels, got targets of shape "
                    f"{tuple(target_shape)}: use categorical_crossentropy for one-hot targets"
                )
            return None
        scalar_target = target_shape is not None and tuple(target_shape) in ((), (1,))
        if self.target_kind == "onehot":
            if units == 1:
                return f"{name} on a 1-unit output is constant: the output needs one unit per class"
            if scalar_target:
                return (
                    f"{name} expects one-hot targets of shape ({units},), got class labels: use "
                    "sparse_categorical_crossentropy, or the one_hot preprocess step"
                )
            if n_classes is not None and n_classes != units:
                return f"the targets have {n_classes} classes but the output has {units} units"
        elif self.target_kind == "binary":
            if units == 1 and n_classes is not None and n_classes > 2:
                return (
                    f"{name} expects 0/1 labels, found {n_classes} classes: use "
                    f"sparse_categorical_crossentropy with a softmax output of {n_classes} units"
                )
            if units > 1 and (scalar_target or (n_classes is not None and n_classes != units)):
                return (
                    f"{name} on {units} output units needs one 0/1 target per unit, but the "
                    "labels are single classes: use 1 sigmoid unit (two classes) or "
                    "sparse_categorical_crossentropy with softmax"
                )
        if target_shape is not None:
            target, output = tuple(target_shape), tuple(output_shape)
            if target != output and not (scalar_target and output == (1,)):
                return f"{name}: targets of shape {target} do not fit the output shape {output}"
        return None


def _torch():
    import torch

    return torch
