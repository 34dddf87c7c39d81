"""Layers that learn from the train split before training (Keras' `adapt`): Normalization and
IntegerLookup (Discretization's `num_bins` is in encoding.py).

kcli adapts them itself, on the train split only (never validation or test), right after the
model is built: each one's inputs are computed by the layers before it in inference mode, batch
by batch, and what it learns is saved with the weights (kcli.train.adapt). Given in the recipe
(Normalization's mean and variance, IntegerLookup's vocabulary), nothing is learned.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kcli.errors import ShapeError
from kcli.model.layers.base import LayerSpec, MaskOut, Shape, format_shape, require_rank
from kcli.model.layers.encoding import UInt64, _Encoding, encoded_shape

if TYPE_CHECKING:
    from torch import nn

Nested = float | list[Any]


def _array_shape(value: Nested) -> tuple[int, ...]:
    """The shape of a number or a regular nested list of numbers; ValueError if ragged."""
    if not isinstance(value, list):
        return ()
    inner = {_array_shape(item) for item in value}
    if len(inner) > 1:
        raise ValueError(f"a ragged nested list: {value}")
    return (len(value), *(inner.pop() if inner else ()))


class Normalization(LayerSpec):
    """Shifts and scales its input to mean 0 and standard deviation 1: (x - mean) /
    max(sqrt(variance), 1e-7) per index of the `axis` axes (Keras' axis counts the batch axis:
    -1 is the last; a list keeps several; null normalizes by one scalar mean and variance).

    mean and variance are learned on the train split (only) before training, as Keras' adapt:
    the population variance. They are Keras' non-trainable weights mean, variance and count
    (2 * kept values + 1), saved with the run's weights. Given in the recipe (a number or a
    nested list, broadcast to the kept axes from the right), they are constants: no weights.
    invert: true maps a normalized value back (mean + x * max(sqrt(variance), 1e-7)).
    """

    type: Literal["Normalization"] = "Normalization"
    mask_out: ClassVar[MaskOut] = "pass"  # Keras passes the mask on (supports_masking)
    axis: int | list[int] | None = Field(
        -1, description="The axis (or axes) with their own mean and variance; null: one for all."
    )
    mean: Nested | None = Field(None, description="Given mean (with variance); default: learned.")
    variance: Nested | None = Field(None, description="Given variance (with mean).")
    invert: bool = Field(False, description="Undo a normalization instead.")

    @model_validator(mode="after")
    def _mean_with_variance(self):
        if (self.mean is None) != (self.variance is None):
            raise ValueError("give mean and variance together, or neither (to learn them)")
        if self.mean is not None:
            shapes = _array_shape(self.mean), _array_shape(self.variance)
            if shapes[0] != shapes[1]:
                raise ValueError(f"mean has shape {shapes[0]} but variance {shapes[1]}")
            if len(shapes[0]) > len(self.axes()):
                raise ValueError(
                    f"mean of rank {len(shapes[0])} for {len(self.axes())} axis (axes) "
                    f"{list(self.axes())}: its rank must not exceed the number of axes"
                )
        return self

    def axes(self) -> tuple[int, ...]:
        if self.axis is None:
            return ()
        return (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)

    def kept_axes(self, shape: Shape) -> tuple[int, ...]:
        """The kept axes of the batched input (batch = 0), sorted; ShapeError if one is bad."""
        ndim = len(shape) + 1
        for a in self.axes():
            if not -ndim <= a < ndim:
                raise ShapeError(
                    f"Normalization axis {a} is outside the input's axes -{ndim}..{ndim - 1} "
                    f"(input shape {format_shape(shape)}, batch included)"
                )
        keep = tuple(sorted({a % ndim for a in self.axes()}))
        if 0 in keep:
            raise ShapeError(
                f"Normalization axis {self.axis} keeps the batch axis of input "
                f"{format_shape(shape)}: give a feature axis (-1 is the last) or null"
            )
        for d in keep:
            if shape[d - 1] is None:
                raise ShapeError(
                    f"Normalization needs a known size on kept axis {d}, got input shape "
                    f"{format_shape(shape)}"
                )
        return keep

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        keep = self.kept_axes(shape)
        if self.mean is not None:
            given = _array_shape(self.mean)
            for i in range(1, len(given) + 1):
                size = shape[keep[-i] - 1]
                if given[-i] not in (1, size):
                    raise ShapeError(
                        f"Normalization's mean of shape {list(given)} does not broadcast to "
                        f"axis {keep[-i]} of size {size} (input shape {format_shape(shape)})"
                    )
        return shape

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.adapted import NormalizationModule

        (shape,) = input_shapes
        keep = self.kept_axes(shape)
        return NormalizationModule(shape, keep, self.mean, self.variance, self.invert)


class IntegerLookup(_Encoding):
    """Integer tokens -> contiguous indices through a vocabulary (Keras' IntegerLookup).

    Indices: 0 for `mask_token` (int mode, when set), then `num_oov_indices` indices for tokens
    not in the vocabulary (token mod n, or its FarmHash64 with oov_method farmhash), then the
    vocabulary. Without `vocabulary` it is learned on the train split (only) before training:
    the most frequent tokens first, ties by the larger token, the mask and OOV tokens left out,
    at most max_tokens indices in all (kcli needs max_tokens then, so the saved vocabulary has
    a known size, and pad_to_max_tokens for the vector modes, so the output width is known).
    tf_idf: counts times idf weights, log(1 + documents / (1 + documents with the token)),
    each sample a document, the OOV slots weighing the vocabulary's mean. invert: indices back
    to tokens (oov_token for an unknown index). With num_oov_indices 0 an unknown token gives
    -1 (int mode) or zeros (Keras raises). Inputs that are floats are truncated, as Keras casts.
    """

    type: Literal["IntegerLookup"] = "IntegerLookup"
    max_tokens: int | None = Field(
        None, gt=1, le=2**24, description="Most indices, mask and OOV ones included."
    )
    num_oov_indices: int = Field(1, ge=0, le=2**20, description="Indices for unknown tokens.")
    mask_token: int | None = Field(None, description="A token meaning 'no value'; none.")
    oov_token: int = Field(-1, description="What invert returns for an unknown index.")
    vocabulary: list[int] | str | None = Field(
        None, description="The tokens, as a list; default: learned on the train split."
    )
    vocabulary_dtype: Literal["int64"] = Field("int64", description="Keras': int64 only.")
    idf_weights: list[float] | None = Field(None, description="tf_idf's weights, with vocabulary.")
    invert: bool = Field(False, description="Map indices back to tokens (int mode).")
    output_mode: Literal["int", "one_hot", "multi_hot", "count", "tf_idf"] = Field(
        "int", description="int (the index), or an encoding of it."
    )
    pad_to_max_tokens: bool = Field(False, description="Vector modes: max_tokens wide.")
    oov_method: Literal["floormod", "farmhash"] = Field(
        "floormod", description="How unknown tokens share several OOV indices."
    )
    salt: UInt64 | tuple[UInt64, UInt64] | None = Field(
        None, description="farmhash: SipHash's key instead (one int s: the pair s, s)."
    )

    @field_validator("output_mode", mode="before")
    @classmethod
    def _keras_aliases(cls, value: Any) -> Any:
        return {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(value, value)

    @field_validator("vocabulary")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"a vocabulary file ({value!r}) is not read by kcli: list the tokens in the "
                "recipe, or leave vocabulary out to learn it on the train split"
            )
        if value is not None and not value:
            raise ValueError("the vocabulary is empty")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        vector = self.output_mode != "int"
        if self.invert and vector:
            raise ValueError("invert needs output_mode int")
        if self.pad_to_max_tokens and self.max_tokens is None:
            raise ValueError("pad_to_max_tokens needs max_tokens")
        if self.salt is not None and self.oov_method != "farmhash":
            raise ValueError("salt is for oov_method farmhash")
        if self.idf_weights is not None and self.output_mode != "tf_idf":
            raise ValueError("idf_weights are for output_mode tf_idf")
        if self.vocabulary is None:
            self._check_learned(vector)
        else:
            self._check_given()
        return self

    def _check_learned(self, vector: bool) -> None:
        if self.max_tokens is None:
            raise ValueError(
                "a vocabulary learned on the train split needs max_tokens (its saved size); "
                "or give the vocabulary"
            )
        if vector and not self.pad_to_max_tokens:
            raise ValueError(
                f"output_mode {self.output_mode} with a learned vocabulary needs "
                "pad_to_max_tokens: true, so the output's width (max_tokens) is known before "
                "the data is read; or give the vocabulary"
            )
        if self.max_tokens <= self.token_start():
            raise ValueError(
                f"max_tokens {self.max_tokens} leaves no index for a token after the "
                f"{self.token_start()} mask and OOV indices"
            )

    def _check_given(self) -> None:
        tokens = self.given_tokens()
        repeated = sorted({t for t in tokens if tokens.count(t) > 1})
        if repeated:
            raise ValueError(f"the vocabulary repeats {repeated}")
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(f"the vocabulary holds the mask token {self.mask_token}")
        if self.invert and self.oov_token in tokens:
            raise ValueError(f"the vocabulary holds the OOV token {self.oov_token} (invert)")
        size = self.token_start() + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(f"the vocabulary makes {size} indices, more than max_tokens")
        if self.output_mode == "tf_idf":
            if self.idf_weights is None:
                raise ValueError("output_mode tf_idf with a vocabulary needs idf_weights")
            if len(self.idf_weights) != len(self.vocabulary):
                raise ValueError(
                    f"{len(self.idf_weights)} idf_weights for {len(self.vocabulary)} "
                    "vocabulary entries"
                )

    def oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def token_start(self) -> int:
        return self.oov_start() + self.num_oov_indices

    def _special_prefix(self) -> bool:
        """Whether the given vocabulary starts with the mask and OOV tokens (Keras strips them)."""
        special = [self.mask_token] * self.oov_start() + [self.oov_token] * self.num_oov_indices
        return self.vocabulary[: len(special)] == special

    def given_tokens(self) -> list[int]:
        start = self.token_start() if self._special_prefix() else 0
        return list(self.vocabulary[start:])

    def given_idf(self) -> list[float]:
        """The idf weights as Keras pads them: the OOV slots get their mean unless given."""
        weights = list(self.idf_weights)
        if not self._special_prefix():
            weights = [math.fsum(weights) / len(weights)] * self.token_start() + weights
        return weights + [0.0] * (self.depth() - len(weights))

    def depth(self) -> int:
        """The vector modes' width: every index, or max_tokens when padded (or learned)."""
        if self.pad_to_max_tokens or self.vocabulary is None:
            return self.max_tokens
        return self.token_start() + len(self.given_tokens())

    def salt_key(self) -> tuple[int, int] | None:
        if self.salt is None:
            return None
        return (self.salt, self.salt) if isinstance(self.salt, int) else tuple(self.salt)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if self.output_mode == "int":
            return shape
        mode = "count" if self.output_mode == "tf_idf" else self.output_mode
        if mode != "one_hot":
            require_rank("IntegerLookup", shape, (1, None), f"tokens along axis 1 for {mode}")
        return encoded_shape("IntegerLookup", shape, mode, self.depth())

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.adapted import IntegerLookupModule

        if self.vocabulary is None:
            return IntegerLookupModule(self, None, None)
        idf = self.given_idf() if self.output_mode == "tf_idf" else None
        return IntegerLookupModule(self, self.given_tokens(), idf)
