"""Attention layers: MultiHeadAttention, Attention (Luong) and AdditiveAttention (Bahdanau).

Their inputs are listed under `inputs:` in Keras' order, [query, value] or [query, value, key]
(key defaults to value); MultiHeadAttention also takes one input, for self-attention (query =
value = key), so it can stand in a Sequential model. Each input is a (steps, features) sequence.
Keras takes `use_causal_mask` when the layer is called; a recipe gives it as an argument of the
layer, as every call of a recipe's layer is the one in the recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from kcli.errors import ShapeError
from kcli.model.initializers import InitializerRef
from kcli.model.layers.base import (
    LayerSpec,
    MaskIn,
    MaskOut,
    Shape,
    format_shape,
    require_known,
    require_rank,
)
from kcli.model.regularizers import RegularizerRef, RegularizerSpec

if TYPE_CHECKING:
    from torch import nn

# MultiHeadAttention's projections, as Keras names its sublayers (and kcli its submodules).
PROJECTIONS = ("query", "key", "value", "attention_output")
_SEQUENCE = "a sequence (steps, features)"


def _dropout() -> Any:
    return Field(0.0, ge=0, lt=1, description="The fraction of attention probabilities dropped.")


def _causal() -> Any:
    return Field(
        False,
        description="Query step i attends to key steps j <= i only (Keras: an argument of the "
        "call; here of the layer).",
    )


def _count(layer: str, input_shapes: list[Shape], low: int) -> None:
    if not low <= len(input_shapes) <= 3:
        names = "[query], [query, value]" if low == 1 else "[query, value]"
        raise ShapeError(
            f"{layer} takes {names} or [query, value, key], got {len(input_shapes)} inputs"
        )


def _sequences(layer: str, input_shapes: list[Shape]) -> tuple[Shape, Shape, Shape]:
    """(query, value, key) shapes, each a (steps, features) sequence of known features; the
    key defaults to the value, and the two must have the same number of steps."""
    for position, shape in zip(("query", "value", "key"), input_shapes, strict=False):
        require_rank(f"{layer} {position}", shape, 2, _SEQUENCE)
        require_known(f"{layer} {position}", shape, -1, "feature axis")
    query = input_shapes[0]
    value = input_shapes[1] if len(input_shapes) > 1 else query
    key = input_shapes[2] if len(input_shapes) > 2 else value
    if None not in (value[0], key[0]) and value[0] != key[0]:
        raise ShapeError(
            f"{layer} value and key need the same number of steps, got value "
            f"{format_shape(value)} and key {format_shape(key)}"
        )
    return query, value, key


class MultiHeadAttention(LayerSpec):
    """Keras' MultiHeadAttention: num_heads heads of scaled dot-product attention.

    Each head projects the query and key to key_dim and the value to value_dim, attends with
    softmax(q k^T / sqrt(key_dim)) over the key steps, and the heads' results are projected to
    output_shape (default: the query's features). Weights, as Keras': query/key/value kernels
    (features, num_heads, key_dim or value_dim) with biases (num_heads, key_dim or value_dim),
    the attention_output kernel (num_heads, value_dim, *output_shape) with a bias output_shape.
    Attention runs through torch's fused scaled_dot_product_attention.
    """

    model_config = ConfigDict(serialize_by_alias=True)  # output_dims is written output_shape
    type: Literal["MultiHeadAttention"] = "MultiHeadAttention"
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 3)
    # Keras ANDs the query's, value's and key's masks into the attention mask; the output
    # keeps the query's mask.
    mask_in: ClassVar[MaskIn] = "all"
    mask_out: ClassVar[MaskOut] = "pass"
    num_heads: int = Field(gt=0, description="The number of attention heads.")
    key_dim: int = Field(gt=0, description="Each head's size for query and key.")
    value_dim: int | None = Field(
        None, gt=0, description="Each head's size for value; default: key_dim."
    )
    dropout: float = _dropout()
    use_bias: bool = True
    # Keras' `output_shape`, which names a method of every layer spec here: hence the alias.
    output_dims: (
        Annotated[int, Field(gt=0)]
        | Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]
        | None
    ) = Field(
        None,
        alias="output_shape",
        description="The output's shape after the steps; default: the query's features.",
    )
    attention_axes: int | list[int] | None = Field(
        None, description="The axis attended over: only the steps here (null, 1 or -2)."
    )
    use_causal_mask: bool = _causal()
    kernel_initializer: InitializerRef = "glorot_uniform"
    bias_initializer: InitializerRef = "zeros"
    kernel_regularizer: RegularizerRef | None = None
    bias_regularizer: RegularizerRef | None = None

    @field_validator("attention_axes")
    @classmethod
    def _sequence_axis(cls, value: int | list[int] | None) -> int | list[int] | None:
        axes = [value] if isinstance(value, int) else value
        if axes is not None and (len(axes) != 1 or axes[0] not in (1, -2)):
            raise ValueError(
                f"attention_axes {value} is not supported: kcli's MultiHeadAttention attends "
                "over the steps of (steps, features) sequences only (null, 1 or -2); attention "
                "over several axes (images, video) is not available"
            )
        return value

    @model_validator(mode="after")
    def _no_activity_regularizer(self):
        if self.activity_regularizer is not None:
            raise ValueError(
                "activity_regularizer is not supported on MultiHeadAttention: Keras applies it "
                "to each of the four projections' outputs, not to the layer's output"
            )
        return self

    def heads_value_dim(self) -> int:
        return self.value_dim or self.key_dim

    def out_shape(self, query: Shape) -> tuple[int, ...]:
        if self.output_dims is None:
            return (query[-1],)  # type: ignore[return-value]
        return (self.output_dims,) if isinstance(self.output_dims, int) else tuple(self.output_dims)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        _count("MultiHeadAttention", input_shapes, 1)
        query, _, _ = _sequences("MultiHeadAttention", input_shapes)
        return (query[0], *self.out_shape(query))

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.layers.normalization import param_fans
        from kcli.model.nn.attention import MultiHeadAttentionModule

        query, value, key = _sequences("MultiHeadAttention", input_shapes)
        module = MultiHeadAttentionModule(
            (query[-1], value[-1], key[-1]),  # type: ignore[arg-type]
            self.num_heads,
            self.key_dim,
            self.heads_value_dim(),
            self.out_shape(query),
            self.use_bias,
            self.dropout,
            self.use_causal_mask,
        )
        for name in PROJECTIONS:
            projection = getattr(module, name)
            # Keras' EinsumDense fans: the contracted axes in, the projected axes out.
            n_in, n_out = projection.n_in, projection.n_out
            kernel = projection.kernel.view(n_in, n_out)
            self.kernel_initializer.fill_(kernel, fan_in=n_in, fan_out=n_out)
            if projection.bias is not None:
                fan_in, fan_out = param_fans(tuple(projection.bias.shape))
                self.bias_initializer.fill_(projection.bias, fan_in=fan_in, fan_out=fan_out)
        return module

    def regularized_weights(self) -> dict[str, RegularizerSpec]:
        found = {}
        for name in PROJECTIONS:
            if self.kernel_regularizer is not None:
                found[f"{name}.kernel"] = self.kernel_regularizer
            if self.bias_regularizer is not None and self.use_bias:
                found[f"{name}.bias"] = self.bias_regularizer
        return found


class _ScoreAttention(LayerSpec):
    """The shape rule both of Keras' single-head layers share: (Tq, d) attends over (Tv, d)."""

    n_inputs: ClassVar[tuple[int, int | None]] = (2, 3)
    # Keras masks the scores by the value's mask, zeroes the output at the query's masked
    # steps, and the output keeps the query's mask.
    mask_in: ClassVar[MaskIn] = "all"
    mask_out: ClassVar[MaskOut] = "pass"

    def _shapes(self, input_shapes: list[Shape]) -> tuple[Shape, Shape, Shape]:
        layer = self.type  # type: ignore[attr-defined]
        _count(layer, input_shapes, 2)
        query, value, key = _sequences(layer, input_shapes)
        if query[-1] != key[-1]:
            raise ShapeError(
                f"{layer} query and key need the same features, got query "
                f"{format_shape(query)} and key {format_shape(key)}"
            )
        return query, value, key

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        query, value, _ = self._shapes(input_shapes)
        return (query[0], value[-1])


class Attention(_ScoreAttention):
    """Keras' Attention (Luong): softmax(scores) @ value, scores of each query step against each
    key step. score_mode "dot": q k^T, times a learned scalar `scale` with use_scale (through
    torch's fused scaled_dot_product_attention); "concat": concat_score_weight (a learned
    scalar) * sum(tanh(scale * (q + k))) over the features. Weights: scale and
    concat_score_weight, one value each, both starting at 1."""

    type: Literal["Attention"] = "Attention"
    use_scale: bool = Field(False, description="Learn a scalar that scales the scores.")
    score_mode: Literal["dot", "concat"] = Field("dot", description="How scores are computed.")
    dropout: float = _dropout()
    use_causal_mask: bool = _causal()

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.attention import DotAttentionModule

        self._shapes(input_shapes)
        concat = self.score_mode == "concat"
        return DotAttentionModule(self.use_scale, concat, self.dropout, self.use_causal_mask)


class AdditiveAttention(_ScoreAttention):
    """Keras' AdditiveAttention (Bahdanau): scores sum(scale * tanh(q + k)) over the features,
    then softmax(scores) @ value. Weight: `scale`, one value per feature (glorot_uniform, as
    Keras draws it), with use_scale."""

    type: Literal["AdditiveAttention"] = "AdditiveAttention"
    use_scale: bool = Field(True, description="Learn a per-feature scale of the tanh terms.")
    dropout: float = _dropout()
    use_causal_mask: bool = _causal()

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.initializers import GlorotUniform
        from kcli.model.nn.attention import AdditiveAttentionModule

        query, _, _ = self._shapes(input_shapes)
        dim = int(query[-1])  # type: ignore[arg-type]
        module = AdditiveAttentionModule(dim, self.use_scale, self.dropout, self.use_causal_mask)
        if module.scale is not None:
            GlorotUniform().fill_(module.scale, fan_in=dim, fan_out=dim)
        return module
