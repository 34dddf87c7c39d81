"""The `compile:` section (Keras' model.compile): optimizer, loss, metrics. Torch-free."""

from __future__ import annotations

from pydantic import Field

from kcli.compile.losses import LossRef
from kcli.compile.metrics import MetricRef
from kcli.compile.optimizers import OptimizerRef
from kcli.registry import Spec


class CompileSpec(Spec):
    """Keras' model.compile: optimizer, loss, metrics."""

    optimizer: OptimizerRef = Field("rmsprop", description="Keras' default is rmsprop.")
    loss: LossRef = Field(description="The training loss.")
    metrics: list[MetricRef] = Field(default_factory=list, description="Logged each epoch.")
