"""The `compile:` section (Keras' model.compile): optimizer, loss, metrics. Torch-free."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kcli.compile.losses import LossRef
from kcli.compile.metrics import MetricRef
from kcli.compile.optimizers import OptimizerRef
from kcli.registry import Spec

if TYPE_CHECKING:
    from kcli.compile.metrics.base import MetricSpec


class CompileSpec(Spec):
    """Keras' model.compile: optimizer, loss, metrics, weighted_metrics."""

    optimizer: OptimizerRef = Field("rmsprop", description="Keras' default is rmsprop.")
    loss: LossRef = Field(description="The training loss.")
    metrics: list[MetricRef] = Field(
        default_factory=list,
        description="Logged each epoch, unweighted (sample and class weights do not apply).",
    )
    weighted_metrics: list[MetricRef] = Field(
        default_factory=list,
        description="Logged each epoch, weighted by the sample and class weights (as Keras).",
    )

    def logged_metrics(self) -> list[MetricSpec]:
        """Every metric a run computes, in the order it logs them, named as Keras names them.

        `metrics` first (unweighted), then `weighted_metrics`. `accuracy` becomes the form the
        loss's targets need. A name met again gets `_1`, `_2` ...; a weighted metric whose name
        an unweighted one already has is logged as `weighted_<name>`.
        """
        seen: dict[str, int] = {}
        logged = []
        for weighted, specs in ((False, self.metrics), (True, self.weighted_metrics)):
            for spec in specs:
                resolved = spec.resolve(self.loss)
                name = resolved.log_name
                if weighted and name in seen:
                    name = f"weighted_{name}"
                base = name
                while name in seen:
                    name = f"{base}_{seen[base]}"
                    seen[base] += 1
                seen[name] = 1
                logged.append(resolved.as_logged(name, weighted))
        return logged
