"""The metric registry and `MetricSpec`, the base of every registered metric (torch-free)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from kcli.registry import RegisteredSpec, Registry

if TYPE_CHECKING:
    from kcli.compile.losses import LossSpec
    from kcli.compile.metrics.streaming import Metric

metric_registry = Registry("metric")


class MetricSpec(RegisteredSpec):
    """A metric; `log_name` is what the trainer logs it as (`val_` prefixed on validation)."""

    registry: ClassVar[Registry] = metric_registry
    short_name: ClassVar[str] = ""

    name: str | None = Field(None, description="The logged name; default: the short name.")

    @property
    def log_name(self) -> str:
        return self.name or self.short_name or self.type

    def resolve(self, loss: LossSpec) -> MetricSpec:
        """This metric for `loss` (only `accuracy` changes: see Accuracy)."""
        return self

    def build(self) -> Metric:
        raise NotImplementedError  # every registered metric overrides this
