"""What a plugin module builds on: kcli's own bases for layers, losses, metrics and callbacks.

A recipe's `plugins: [my_layers]` imports `my_layers.py` (beside the recipe) before the recipe is
validated. Every subclass with a `type: Literal["Name"]` field registers under that name, as
kcli's built-in catalog does, and is then a first-class part of the catalog: validated with
file:line errors, listed by `kcli layers --plugins my_layers`, summarized, trained, resumed,
evaluated and exported (where torch can export its module).

    from typing import Literal
    from kcli.plugin import LayerSpec, Shape

    class Scale(LayerSpec):
        "Multiplies its input by a learned scalar."
        type: Literal["Scale"] = "Scale"
        initial: float = 1.0                      # an argument, as a pydantic field

        def output_shape(self, input_shapes: list[Shape]) -> Shape:
            return input_shapes[0]                # pure Python: `kcli validate` needs no torch

        def build(self, input_shapes: list[Shape]):
            import torch
            return ScaleModule(self.initial)      # an nn.Module; weights as its Parameters

A layer spec may also give `regularized_weights()` (module attribute -> regularizer) and an
`activation` field (ActivatedLayer). A loss defines `_values(y_pred, y_true, logits)` (the
per-sample loss before Keras' reduction), a metric `build()` returning a streaming `Metric`
(MeanMetric(fn) averages fn(y_pred, y_true) per sample; `align_targets(y_pred, y_true)` gives
(N,) targets an (N, 1) output's rank), a callback spec `build()` returning a
`Callback` with Keras' hook methods. A plugin runs as the user's own code: see the README.

Takes nothing; gives the public bases. Entry point: the classes above, subclassed by a plugin
module (kcli.recipe.plugins imports it).
"""

from __future__ import annotations

from kcli.compile.losses import LossSpec
from kcli.compile.metrics import MeanMetric, Metric, MetricSpec
from kcli.compile.metrics.streaming import align_targets
from kcli.errors import ShapeError
from kcli.fit.callbacks.base import Callback, CallbackSpec
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import (
    ActivatedLayer,
    LayerSpec,
    Shape,
    format_shape,
    require_known,
    require_rank,
)
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

__all__ = [
    "ActivatedLayer",
    "Callback",
    "CallbackSpec",
    "InitializerRef",
    "LayerSpec",
    "LossSpec",
    "MeanMetric",
    "Metric",
    "MetricSpec",
    "RegularizerRef",
    "RegularizerSpec",
    "align_targets",
    "Shape",
    "ShapeError",
    "format_shape",
    "require_known",
    "require_rank",
]
