"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate.

Each takes two or more inputs (Subtract exactly two), listed under `inputs:`. The elementwise
ones broadcast as Keras does: sizes must match axis by axis from the last, where a 1 stretches
to the other size, and an input of lower rank gets size-1 axes after the batch axis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, MaskIn, MaskOut, Shape, format_shape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import torch
    from torch import nn


def _list_shapes(input_shapes: list[Shape]) -> str:
    return ", ".join(format_shape(s) for s in input_shapes)


def _require_count(layer: str, counts: tuple[int, int | None], input_shapes: list[Shape]) -> None:
    low, high = counts
    n = len(input_shapes)
    if n < low or (high is not None and n > high):
        want = str(low) if low == high else f"at least {low}"
        raise ShapeError(
            f"{layer} takes {want} inputs, got {n}: {_list_shapes(input_shapes) or 'none'}"
        )


def broadcast_shapes(layer: str, input_shapes: list[Shape]) -> Shape:
    """The elementwise result shape of these inputs, aligned on their last axes."""
    rank = max(len(s) for s in input_shapes)
    out: list[int | None] = []
    for position in range(-rank, 0):
        sizes = [s[position] for s in input_shapes if len(s) >= -position]
        fixed = {d for d in sizes if d is not None and d != 1}
        if len(fixed) > 1:
            raise ShapeError(
                f"{layer} inputs have incompatible shapes {_list_shapes(input_shapes)}: "
                f"sizes {sorted(fixed)} on axis {position} (they must be equal, or 1)"
            )
        if None in sizes and not fixed:
            out.append(None)  # unknown until data arrives
        else:
            out.append(fixed.pop() if fixed else 1)
    return tuple(out)


class _Elementwise(LayerSpec):
    """Base of the elementwise merges: shape rule and module; subclasses give the operation."""

    n_inputs: ClassVar[tuple[int, int | None]] = (2, None)
    # Keras' Merge.compute_mask: the OR of the inputs' masks, or none if one has none.
    mask_out: ClassVar[MaskOut] = "module"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        _require_count(self.type, self.n_inputs, input_shapes)
        return broadcast_shapes(self.type, input_shapes)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.merge import ElementwiseMerge

        rank = max(len(s) for s in input_shapes)
        expand = tuple(rank - len(s) for s in input_shapes)
        return ElementwiseMerge(self._op(), expand, self._scale(len(input_shapes)))

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        raise NotImplementedError  # every registered merge overrides this

    def _scale(self, n_inputs: int) -> float | None:
        return None


class Add(_Elementwise):
    """The elementwise sum of the inputs."""

    type: Literal["Add"] = "Add"

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch

        return torch.add


class Subtract(_Elementwise):
    """The first input minus the second (exactly two inputs)."""

    type: Literal["Subtract"] = "Subtract"
    n_inputs: ClassVar[tuple[int, int | None]] = (2, 2)

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch

        return torch.sub


class Multiply(_Elementwise):
    """The elementwise product of the inputs."""

    type: Literal["Multiply"] = "Multiply"

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch

        return torch.mul


class Average(_Elementwise):
    """The elementwise mean of the inputs."""

    type: Literal["Average"] = "Average"

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch

        return torch.add

    def _scale(self, n_inputs: int) -> float | None:
        return 1.0 / n_inputs


class Maximum(_Elementwise):
    """The elementwise maximum of the inputs."""

    type: Literal["Maximum"] = "Maximum"
    mask_in: ClassVar[MaskIn] = "all"  # Keras leaves masked entries out of the maximum

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch

        return torch.maximum


class Minimum(_Elementwise):
    """The elementwise minimum of the inputs."""

    type: Literal["Minimum"] = "Minimum"
    mask_in: ClassVar[MaskIn] = "all"  # Keras leaves masked entries out of the minimum

    def _op(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch

        return torch.minimum


class Concatenate(LayerSpec):
    """Joins the inputs along `axis`; they must have one rank and equal sizes elsewhere."""

    type: Literal["Concatenate"] = "Concatenate"
    n_inputs: ClassVar[tuple[int, int | None]] = (2, None)
    # Keras' Concatenate.compute_mask: the masks joined (all kept for an unmasked input).
    mask_out: ClassVar[MaskOut] = "module"
    axis: int = Field(-1, description="The axis to join along (batch axis = 0); -1: the last.")

    def _axis(self, input_shapes: list[Shape]) -> int:
        """The join axis as a positive index in the batched tensor, after checking the shapes."""
        _require_count("Concatenate", self.n_inputs, input_shapes)
        shapes = _list_shapes(input_shapes)
        ranks = {len(s) for s in input_shapes}
        if len(ranks) > 1:
            raise ShapeError(f"Concatenate needs inputs of one rank, got shapes {shapes}")
        rank = ranks.pop() + 1  # with the batch axis
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ShapeError(
                f"Concatenate axis {self.axis} is not a feature axis of shapes {shapes} "
                f"(allowed: 1..{rank - 1} or -{rank - 1}..-1; 0 is the batch axis)"
            )
        axis = self.axis % rank
        for position in range(1, rank):
            known = {s[position - 1] for s in input_shapes} - {None}
            if position != axis and len(known) > 1:
                raise ShapeError(
                    f"Concatenate on axis {self.axis} needs equal sizes on every other axis, "
                    f"got shapes {shapes} (axis {position} differs: {sorted(known)})"
                )
        return axis

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        axis = self._axis(input_shapes)
        out = [_first_known(s[i] for s in input_shapes) for i in range(len(input_shapes[0]))]
        sizes = [s[axis - 1] for s in input_shapes]
        out[axis - 1] = None if None in sizes else sum(sizes)
        return tuple(out)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.merge import ConcatenateModule

        return ConcatenateModule(self._axis(input_shapes))


def _first_known(sizes: Iterable[int | None]) -> int | None:
    return next((d for d in sizes if d is not None), None)


class Dot(LayerSpec):
    """The dot product of two inputs along one axis of each, per sample (Keras' Dot).

    `axes` counts the batch axis, as in Keras: for two (N, d) vectors `axes: 1` gives (N, 1);
    for (N, T, d) and (N, S, d), `axes: 2` gives the (N, T, S) similarity matrix; a pair names
    each input's axis; negative axes count from the end. `normalize` L2-normalizes both along
    their axis first, so the result is the cosine similarity.
    """

    type: Literal["Dot"] = "Dot"
    n_inputs: ClassVar[tuple[int, int | None]] = (2, 2)
    axes: int | tuple[int, int] = Field(description="The axis of each input to contract.")
    normalize: bool = Field(False, description="L2-normalize both inputs first (cosine).")

    def axis_pair(self, input_shapes: list[Shape]) -> tuple[int, int]:
        """Each input's axis, counted with the batch axis and made positive."""
        ranks = [len(shape) + 1 for shape in input_shapes]
        given = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        pair = tuple(
            axis % rank if axis < 0 else axis for axis, rank in zip(given, ranks, strict=True)
        )
        for axis, rank in zip(pair, ranks, strict=True):
            if not 1 <= axis < rank:
                raise ShapeError(
                    f"Dot: axes {self.axes} do not fit inputs {_list_shapes(input_shapes)} "
                    "(axis 0 is the batch; axes count it)"
                )
        return pair  # type: ignore[return-value]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        _require_count(self.type, self.n_inputs, input_shapes)
        first, second = input_shapes
        a1, a2 = self.axis_pair(input_shapes)
        size1, size2 = first[a1 - 1], second[a2 - 1]
        if size1 is not None and size2 is not None and size1 != size2:
            raise ShapeError(
                f"Dot: axis {a1} of the first input ({size1}) and axis {a2} of the second "
                f"({size2}) must have the same size; inputs {_list_shapes(input_shapes)}"
            )
        rest = [d for i, d in enumerate(first) if i != a1 - 1]
        rest += [d for i, d in enumerate(second) if i != a2 - 1]
        return tuple(rest) if rest else (1,)

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.merge import DotModule

        ranks = (len(input_shapes[0]) + 1, len(input_shapes[1]) + 1)
        return DotModule(self.axis_pair(input_shapes), ranks, self.normalize)
