"""The `model:` section (RECIPE.md): Sequential (`input_shape` + layers) or functional
(named inputs, wired layers, outputs), and the sub-models it calls as layers (`models:`).
Torch-free; `kcli.model.graph.plan_graph` turns it into a GraphPlan.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from kcli.errors import Problem
from kcli.model.layers import LayerRef
from kcli.registry import Spec

Dim = int | None  # a per-sample dimension; None: not known until data arrives
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")  # as a layer's `name` (LayerSpec)


def _check_dims(dims: list[Dim]) -> list[Dim]:
    if not dims:
        raise ValueError("a shape needs at least one dimension (the batch axis is not included)")
    for dim in dims:
        if dim is not None and dim <= 0:
            raise ValueError(f"dimensions must be > 0 or null (got {dims})")
    return dims


class GraphSpec(Spec):
    """A graph of layers: Sequential (`input_shape` + layers) or functional (`inputs` + named,
    wired layers); the model itself, or a sub-model it calls."""

    input_shape: list[Dim] | None = Field(
        None, description="Per-sample shape of the single input, batch excluded, channels last."
    )
    inputs: dict[str, list[Dim]] | None = Field(
        None, description="Input name -> per-sample shape, for models with named inputs."
    )
    layers: list[LayerRef] = Field(min_length=1, description="The layers, in order.")
    outputs: str | list[str] | None = Field(
        None,
        description="The layer(s) whose output is the model's (`layer:k`: its output k); "
        "default: the last layer.",
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

    def start_weights(self) -> StartWeightsSpec | None:
        """`weights` in its long form (a bare path is strict), or None."""
        if isinstance(self.weights, str):
            return StartWeightsSpec(path=self.weights)
        return self.weights

    @model_validator(mode="after")
    def _one_input_form(self) -> GraphSpec:
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


class SubModelSpec(GraphSpec):
    """A model defined once under `model.models` and called as a layer, `{type: Model, model:
    NAME}`, as many times as needed: every call runs the same layers with the same weights."""

    keras_pointers: ClassVar[dict[str, str]] = {
        "models": "every sub-model is defined under the model's own models: (a sub-model may "
        "call any of them)",
        "name": "a sub-model is named by its key under model.models",
    }

    trainable: bool = Field(
        True, description="False freezes every weight of the sub-model, in every call."
    )


class StartWeightsSpec(Spec):
    """`model.weights` in its long form: where the starting weights are, and how strictly
    they must fit the model."""

    path: str = Field(
        min_length=1,
        description="A .safetensors file (kcli's weight names), a .keras file, a run folder or "
        "a checkpoint (.pt) in one; relative to the recipe's folder.",
    )
    strict: bool = Field(
        True,
        description="Every weight of the model present with its shape and none extra; false: "
        "load the weights whose names and shapes match, and report the rest as skipped.",
    )

    def file(self, recipe_dir: Path) -> Path:
        """The path, resolved against the recipe's folder when relative."""
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else Path(recipe_dir) / path


class ModelSpec(GraphSpec):
    """The recipe's model: a graph of layers, and the sub-models its layers may call."""

    name: str | None = Field(None, description="The model's name; default: the recipe's.")
    weights: str | StartWeightsSpec | None = Field(
        None,
        description="Start from saved weights (loaded before training, strictly): a path, or "
        "{path, strict}. --resume continues from the run's checkpoint instead.",
    )
    models: dict[str, SubModelSpec] | None = Field(
        None,
        description="Sub-models by name, each called as a layer {type: Model, model: NAME} "
        "(Keras' calling a Model object): its own inputs, layers and outputs.",
    )

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, SubModelSpec] | None) -> dict | None:
        for name in value or {}:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"'{name}' cannot name a sub-model: use letters, digits, _ and - "
                    "(not first), as for a layer's name"
                )
        return value

    def start_weights(self) -> StartWeightsSpec | None:
        """`weights` in its long form (a bare path is strict), or None."""
        if isinstance(self.weights, str):
            return StartWeightsSpec(path=self.weights)
        return self.weights


def start_weights_problems(model: ModelSpec, recipe_dir: Path) -> list[Problem]:
    """`model.weights` naming nothing that exists (checked by `kcli validate`, without torch)."""
    start = model.start_weights()
    if start is None or start.file(recipe_dir).exists():
        return []
    loc = ("model", "weights") if isinstance(model.weights, str) else ("model", "weights", "path")
    return [Problem(f"{start.file(recipe_dir)}: no such file or folder", loc)]
