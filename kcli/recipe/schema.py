"""The whole recipe as pydantic models (RECIPE.md). No torch: `kcli validate` stops here.

Each section is declared where its concept lives (layers in kcli/layers, data in kcli/data/spec,
optimizers in kcli/optimizers ...); this module only assembles them into `Recipe`.
"""

from __future__ import annotations

import operator
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kcli.data.spec import DataSpec
from kcli.layers import LayerRef
from kcli.losses import LossRef
from kcli.metrics import MetricRef
from kcli.optimizers import OptimizerRef
from kcli.registry import Spec
from kcli.train.callbacks import CallbackRef

Dim = int | None  # a per-sample dimension; None: not known until data arrives


def _check_dims(dims: list[Dim]) -> list[Dim]:
    if not dims:
        raise ValueError("a shape needs at least one dimension (the batch axis is not included)")
    for dim in dims:
        if dim is not None and dim <= 0:
            raise ValueError(f"dimensions must be > 0 or null (got {dims})")
    return dims


class ModelSpec(Spec):
    """Sequential (`input_shape` + layers) or functional (`inputs` + named, wired layers)."""

    name: str | None = Field(None, description="The model's name; default: the recipe's.")
    input_shape: list[Dim] | None = Field(
        None, description="Per-sample shape of the single input, batch excluded, channels last."
    )
    inputs: dict[str, list[Dim]] | None = Field(
        None, description="Input name -> per-sample shape, for models with named inputs."
    )
    layers: list[LayerRef] = Field(min_length=1, description="The layers, in order.")
    outputs: str | list[str] | None = Field(
        None, description="The layer(s) whose output is the model's; default: the last layer."
    )

    @field_validator("input_shape")
    @classmethod
    def _input_dims(cls, value: list[Dim] | None) -> list[Dim] | None:
        return None if value is None else _check_dims(value)

    @field_validator("inputs")
    @classmethod
    def _inputs_dims(cls, value: dict[str, list[Dim]] | None) -> dict[str, list[Dim]] | None:
        if value is not None:
            if not value:
                raise ValueError("needs at least one input")
            for dims in value.values():
                _check_dims(dims)
        return value

    @model_validator(mode="after")
    def _one_input_form(self) -> ModelSpec:
        if (self.input_shape is None) == (self.inputs is None):
            raise ValueError("give exactly one of input_shape (one input) or inputs (named)")
        return self

    def input_shapes(self) -> dict[str, tuple[Dim, ...]]:
        if self.inputs is not None:
            return {name: tuple(dims) for name, dims in self.inputs.items()}
        return {"input": tuple(self.input_shape or ())}

    def output_names(self) -> list[str] | None:
        if self.outputs is None:
            return None
        return [self.outputs] if isinstance(self.outputs, str) else list(self.outputs)

    @property
    def is_sequential(self) -> bool:
        """A single input and no layer wired by name: shown as Keras shows a Sequential model."""
        return self.input_shape is not None and all(layer.inputs is None for layer in self.layers)


class CompileSpec(Spec):
    """Keras' model.compile: optimizer, loss, metrics."""

    optimizer: OptimizerRef = Field("rmsprop", description="Keras' default is rmsprop.")
    loss: LossRef = Field(description="The training loss.")
    metrics: list[MetricRef] = Field(default_factory=list, description="Logged each epoch.")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class FitSpec(Spec):
    """Keras' model.fit arguments, and how to run them (device, precision, compile)."""

    epochs: int = Field(1, ge=1, description="Epochs to train (Keras' default: 1).")
    batch_size: int = Field(32, ge=1, description="Samples per step, per process.")
    validation_batch_size: int | None = Field(
        None, ge=1, description="Batch size for validation and test; default: 4 x batch_size."
    )
    shuffle: bool = Field(True, description="Shuffle the training data every epoch (seeded).")
    class_weight: Literal["balanced"] | dict[int, float] | None = Field(
        None, description="`balanced` (n / (k * count)) or class index -> weight."
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["32", "bf16-mixed", "16-mixed"] = Field(
        "32", description='"32", bf16-mixed or 16-mixed (torch.autocast; fp16 with a grad scaler).'
    )
    compile: bool = Field(False, description="torch.compile the model.")
    sync_batchnorm: bool = Field(
        False, description="Distributed: synchronise BatchNormalization statistics across ranks."
    )
    callbacks: list[CallbackRef] = Field(default_factory=list, description="Keras' callbacks.")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps (got '{value}')")
        return value

    @field_validator("class_weight")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for label, weight in value.items():
                if label < 0 or weight < 0:
                    raise ValueError(f"class weights must be >= 0 for labels >= 0 (got {value})")
        return value


_GATE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def parse_gate(text: str) -> tuple[str, float]:
    """`">= 0.95"` -> ('>=', 0.95); ValueError for anything else."""
    match = _GATE.match(str(text))
    if not match:
        raise ValueError(f"a gate is '<op> <number>' with op one of >= > <= < == != (got '{text}')")
    return match.group(1), float(match.group(2))


def gate_holds(op: str, threshold: float, value: float) -> bool:
    return bool(_OPERATORS[op](value, threshold))


class Recipe(Spec):
    """A whole recipe file."""

    kcli: Literal[1] = Field(1, description="Recipe format version.")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$",
        description="Names the run folder; default: the recipe file's stem.",
    )
    description: str | None = None
    seed: int = Field(0, ge=0, description="Seeds Python, NumPy, torch and every shuffle.")
    data: DataSpec
    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    expect: dict[str, str] = Field(
        default_factory=dict,
        description="Final metric -> gate, e.g. test_accuracy: '>= 0.95'; exit 1 if one fails.",
    )

    @field_validator("expect", mode="before")
    @classmethod
    def _gates(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, gate in value.items():
                parse_gate(gate)
                if not re.match(r"^(val_|test_)?[A-Za-z0-9_]+$", str(key)):
                    raise ValueError(f"'{key}' is not a metric name (loss, val_*, test_*)")
        return value
