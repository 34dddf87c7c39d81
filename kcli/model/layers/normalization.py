"""Normalization layers: Batch-, Layer-, Group- and UnitNormalization, with Keras' defaults.

Keras' defaults differ from torch's: momentum 0.99 (torch's 0.01 weighs the other term),
epsilon 1e-3 (torch 1e-5), and the moving variance moves with the biased batch variance.
Axes are counted as Keras counts them, batch axis included: -1 (the default) is the channels of
a channels-last tensor, 1 is the first axis after the batch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from kcli.errors import ShapeError
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import LayerSpec, MaskIn, MaskOut, Shape, format_shape
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn


def resolve_axis(layer: str, axis: int, shape: Shape) -> int:
    """A Keras axis (batch axis included, negatives from the end) as a positive index >= 1."""
    rank = len(shape) + 1
    if not -rank <= axis < rank or axis % rank == 0:
        raise ShapeError(
            f"{layer} axis {axis} is not a feature axis of input shape {format_shape(shape)} "
            f"(allowed: 1..{rank - 1} or -{rank - 1}..-1; 0 is the batch axis)"
        )
    return axis % rank


def param_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape, as Keras computes them for initializers."""
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _weight_regularizers(spec: LayerSpec) -> dict[str, RegularizerSpec]:
    found = {"gamma": spec.gamma_regularizer, "beta": spec.beta_regularizer}
    return {name: reg for name, reg in found.items() if reg is not None}


class BatchNormalization(LayerSpec):
    """Normalizes each feature with the batch's statistics in training, moving ones otherwise.

    Training: `y = gamma * (x - mean) / sqrt(var + epsilon) + beta` with the batch mean and
    biased variance over every axis but `axis`, and `moving = moving * momentum + batch *
    (1 - momentum)`. Inference, or `trainable: false` (as in Keras): the moving statistics.
    Weights: gamma and beta trainable, moving mean and variance non-trainable (4*C in all).
    """

    type: Literal["BatchNormalization"] = "BatchNormalization"
    # Keras: the batch statistics of a masked sequence are over its unmasked steps.
    mask_in: ClassVar[MaskIn] = "first"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    axis: int = Field(-1, description="The feature axis (batch axis = 0); -1: channels-last.")
    momentum: float = Field(
        0.99, ge=0, le=1, description="Weight of the old value in the moving statistics."
    )
    epsilon: float = Field(1e-3, gt=0, description="Added to the variance before its root.")
    center: bool = Field(True, description="Learn an offset beta.")
    scale: bool = Field(True, description="Learn a factor gamma.")
    beta_initializer: InitializerRef = "zeros"
    gamma_initializer: InitializerRef = "ones"
    moving_mean_initializer: InitializerRef = "zeros"
    moving_variance_initializer: InitializerRef = "ones"
    beta_regularizer: RegularizerRef | None = None
    gamma_regularizer: RegularizerRef | None = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        axis = resolve_axis("BatchNormalization", self.axis, shape)
        if shape[axis - 1] is None:
            raise ShapeError(
                f"BatchNormalization needs a known size on axis {self.axis}, "
                f"got input shape {format_shape(shape)}"
            )
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.normalization import BatchNormModule

        (shape,) = input_shapes
        axis = resolve_axis("BatchNormalization", self.axis, shape)
        features = shape[axis - 1]
        module = BatchNormModule(
            features,
            axis,
            len(shape) + 1,
            self.momentum,
            self.epsilon,
            self.center,
            self.scale,
            frozen=not self.trainable,
        )
        fans = param_fans((features,))
        if module.gamma is not None:
            self.gamma_initializer.fill_(module.gamma, *fans)
        if module.beta is not None:
            self.beta_initializer.fill_(module.beta, *fans)
        self.moving_mean_initializer.fill_(module.moving_mean, *fans)
        self.moving_variance_initializer.fill_(module.moving_variance, *fans)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        return _weight_regularizers(self)


class LayerNormalization(LayerSpec):
    """Normalizes each sample over `axis` (default the last): no batch statistics.

    `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, with the sample's mean and biased
    variance over the given axes; gamma and beta have the shape of those axes.
    """

    type: Literal["LayerNormalization"] = "LayerNormalization"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    axis: int | list[int] = Field(
        -1, description="The axis or axes to normalize over (batch axis = 0)."
    )
    epsilon: float = Field(1e-3, gt=0, description="Added to the variance before its root.")
    center: bool = Field(True, description="Learn an offset beta.")
    scale: bool = Field(True, description="Learn a factor gamma.")
    beta_initializer: InitializerRef = "zeros"
    gamma_initializer: InitializerRef = "ones"
    beta_regularizer: RegularizerRef | None = None
    gamma_regularizer: RegularizerRef | None = None

    def _axes(self, shape: Shape) -> tuple[int, ...]:
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        resolved = sorted({resolve_axis("LayerNormalization", a, shape) for a in axes})
        if len(resolved) != len(axes):
            raise ShapeError(
                f"LayerNormalization axis {self.axis} names an axis twice for input shape "
                f"{format_shape(shape)}"
            )
        unknown = [a for a in resolved if shape[a - 1] is None]
        if unknown:
            raise ShapeError(
                f"LayerNormalization needs known sizes on axis {self.axis}, "
                f"got input shape {format_shape(shape)}"
            )
        return tuple(resolved)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self._axes(shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.normalization import LayerNormModule

        (shape,) = input_shapes
        axes = self._axes(shape)
        param_shape = tuple(int(shape[a - 1]) for a in axes)
        module = LayerNormModule(
            param_shape, axes, len(shape) + 1, self.epsilon, self.center, self.scale
        )
        fans = param_fans(param_shape)
        if module.gamma is not None:
            self.gamma_initializer.fill_(module.gamma, *fans)
        if module.beta is not None:
            self.beta_initializer.fill_(module.beta, *fans)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        return _weight_regularizers(self)


class GroupNormalization(LayerSpec):
    """Normalizes each sample over groups of channels (Wu and He, 2018): no batch statistics.

    The `axis` channels are split into `groups` groups of consecutive channels; each sample's
    group is normalized with its mean and biased variance over those channels and every other
    non-batch axis, `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, with gamma and beta
    one per channel. `groups: -1` is one group per channel (instance normalization).
    """

    type: Literal["GroupNormalization"] = "GroupNormalization"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    groups: int = Field(
        32, description="Channel groups; the channels divide by it (-1: one per channel)."
    )
    axis: int = Field(-1, description="The channel axis (batch axis = 0); -1: channels-last.")
    epsilon: float = Field(1e-3, gt=0, description="Added to the variance before its root.")
    center: bool = Field(True, description="Learn an offset beta.")
    scale: bool = Field(True, description="Learn a factor gamma.")
    beta_initializer: InitializerRef = "zeros"
    gamma_initializer: InitializerRef = "ones"
    beta_regularizer: RegularizerRef | None = None
    gamma_regularizer: RegularizerRef | None = None

    @field_validator("groups")
    @classmethod
    def _positive_or_instance(cls, value: int) -> int:
        if value <= 0 and value != -1:
            raise ValueError(
                f"groups must be a positive int, or -1 for one group per channel, got {value}"
            )
        return value

    def _channels(self, shape: Shape) -> tuple[int, int, int]:
        """(axis, channels, groups) for this input shape; ShapeError when they do not divide."""
        axis = resolve_axis("GroupNormalization", self.axis, shape)
        channels = shape[axis - 1]
        if channels is None:
            raise ShapeError(
                f"GroupNormalization needs a known size on axis {self.axis}, "
                f"got input shape {format_shape(shape)}"
            )
        groups = channels if self.groups == -1 else self.groups
        if channels < groups or channels % groups:
            raise ShapeError(
                f"GroupNormalization: the {channels} channels of axis {self.axis} do not split "
                f"into {groups} groups of equal size; input shape {format_shape(shape)}"
            )
        return axis, channels, groups

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self._channels(shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.normalization import GroupNormModule

        axis, channels, groups = self._channels(input_shapes[0])
        module = GroupNormModule(channels, groups, axis, self.epsilon, self.center, self.scale)
        fans = param_fans((channels,))
        if module.gamma is not None:
            self.gamma_initializer.fill_(module.gamma, *fans)
        if module.beta is not None:
            self.beta_initializer.fill_(module.beta, *fans)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        return _weight_regularizers(self)


class UnitNormalization(LayerSpec):
    """Scales each sample to unit L2 norm over `axis` (Keras': x * min(1/||x||, 1e12))."""

    type: Literal["UnitNormalization"] = "UnitNormalization"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    axis: int | list[int] = Field(-1, description="The axis (or axes) the norm is taken over.")

    def _axes(self, shape: Shape) -> tuple[int, ...]:
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        return tuple(sorted({resolve_axis("UnitNormalization", a, shape) for a in axes}))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self._axes(shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.merge import UnitNormalizationModule

        (shape,) = input_shapes
        return UnitNormalizationModule(self._axes(shape))
