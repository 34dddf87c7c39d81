"""The metric registry and `MetricSpec`, the base of every registered metric (torch-free)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, PrivateAttr

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
    # Whether the run's sample and class weights weight this metric: only for Keras'
    # `weighted_metrics` (CompileSpec.logged_metrics sets it); `metrics` are unweighted.
    _sample_weighted: bool = PrivateAttr(False)
    # Which of the model's outputs it reads (its position in model.outputs), and where the
    # recipe gives it (for messages): set by CompileSpec.logged_metrics.
    _output: int = PrivateAttr(0)
    _recipe_loc: tuple = PrivateAttr(("compile", "metrics"))

    @property
    def log_name(self) -> str:
        return self.name or self.short_name or self.type

    def resolve(self, loss: LossSpec) -> MetricSpec:
        """This metric for `loss` (only `accuracy` changes: see Accuracy)."""
        return self

    def build(self) -> Metric:
        raise NotImplementedError  # every registered metric overrides this

    @property
    def sample_weighted(self) -> bool:
        return self._sample_weighted

    @property
    def output(self) -> int:
        return self._output

    @property
    def recipe_loc(self) -> tuple:
        return self._recipe_loc

    def as_logged(
        self, name: str, sample_weighted: bool, output: int = 0, loc: tuple | None = None
    ) -> MetricSpec:
        """A copy logged as `name`, weighted by the run's sample weights or not, reading
        output number `output`."""
        copy = self.model_copy(update={"name": name})
        copy._sample_weighted = sample_weighted
        copy._output = output
        if loc is not None:
            copy._recipe_loc = tuple(loc)
        return copy

    def streaming(self) -> Metric:
        """A fresh streaming metric for a run: it ignores sample weights unless weighted."""
        metric = self.build()
        metric.sample_weighted = self._sample_weighted
        metric.output = self._output
        return metric
