"""The `compile:` section (Keras' model.compile): optimizer, loss, metrics. Torch-free."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kcli.compile.losses import LossRef
from kcli.compile.metrics import MetricRef
from kcli.compile.optimizers import OptimizerRef
from kcli.compile.outputs import metrics_by_output, metrics_field, output_heads, per_output
from kcli.registry import Spec

if TYPE_CHECKING:
    from kcli.compile.metrics.base import MetricSpec
    from kcli.compile.outputs import OutputHead


def _any_form(schema: dict) -> None:
    """The JSON Schema of a per-output field: `anyOf` its forms, not pydantic's `oneOf`, since a
    value may fit two forms alike (`{type: mse}` is one loss and also a mapping whose value is
    a loss name; `[]` is both an empty list and an empty list of lists)."""
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")


class CompileSpec(Spec):
    """Keras' model.compile: optimizer, loss, loss_weights, metrics, weighted_metrics."""

    optimizer: OptimizerRef = Field("rmsprop", description="Keras' default is rmsprop.")
    loss: per_output(LossRef) = Field(
        description="The training loss: one for every output, or a mapping output name -> loss "
        "(every output), or a list in the order of model.outputs.",
        json_schema_extra=_any_form,
    )
    loss_weights: per_output(float) | None = Field(
        None,
        description="Several outputs: each output loss's weight in the total (a number, a "
        "mapping output name -> number, or a list in output order; default 1).",
    )
    metrics: metrics_field(MetricRef) = Field(
        default_factory=list,
        description="Logged each epoch, unweighted (sample and class weights do not apply): a "
        "list for every output, a mapping output name -> list, or a list of lists in output "
        "order.",
        json_schema_extra=_any_form,
    )
    weighted_metrics: metrics_field(MetricRef) = Field(
        default_factory=list,
        description="Logged each epoch, weighted by the sample and class weights (as Keras); "
        "the same forms as metrics.",
        json_schema_extra=_any_form,
    )

    def heads(self, outputs: list[str] | None = None) -> list[OutputHead]:
        """Each output's loss and weight, in the order of `outputs` (the model's output names;
        None for a model of one output)."""
        return output_heads(self, outputs or ["output"])

    def logged_metrics(self, outputs: list[str] | None = None) -> list[MetricSpec]:
        """Every metric a run computes, in the order it logs them, named as Keras names them.

        `metrics` first (unweighted), then `weighted_metrics`; within each, output by output.
        `accuracy` becomes the form the output's loss needs. With several outputs a name is
        prefixed `<output>_`. A name met again gets `_1`, `_2` ...; a weighted metric whose name
        an unweighted one already has is logged as `[<output>_]weighted_<name>`.
        """
        outputs = outputs or ["output"]
        heads = output_heads(self, outputs)
        seen: dict[str, int] = {}
        logged = []
        for weighted, key in ((False, "metrics"), (True, "weighted_metrics")):
            per_output = metrics_by_output(getattr(self, key), outputs, key)
            for head, specs in zip(heads, per_output, strict=True):
                prefix = f"{head.name}_" if head.name else ""
                for spec, loc in specs:
                    resolved = spec.resolve(head.loss)
                    name = prefix + resolved.log_name
                    if weighted and name in seen:
                        name = f"{prefix}weighted_{resolved.log_name}"
                    base = name
                    while name in seen:
                        name = f"{base}_{seen[base]}"
                        seen[base] += 1
                    seen[name] = 1
                    logged.append(resolved.as_logged(name, weighted, head.index, loc))
        return logged
