"""String layers: StringLookup and TextVectorization, their vocabulary adapted on the train split.

kcli's tensors hold numbers, so the string half of these layers runs in the data stage: a CSV
column listed under `data.strings` feeds a model input of its own (one string per sample, shape
[1], Keras' `keras.Input(shape=(1,), dtype="string")`), the preprocessing fitted on the train
split calls `adapt` (or takes the given `vocabulary`), keeps the vocabulary in the run's
preprocess.json and `encode`s every split's strings, and eval/predict's, to integer ids. The
layer's module does the rest of Keras' `output_mode` on those ids: `int` passes them on,
`one_hot`/`multi_hot`/`count` encode them, `tf_idf` multiplies the counts by the idf weights.

Where kcli cannot follow Keras exactly (every shape is fixed before data is read):
- the non-int outputs are `max_tokens` wide, as with `pad_to_max_tokens: true`, unless a
  vocabulary list fixes the size: Keras gives the adapted vocabulary's size, which is the same
  whenever the vocabulary fills max_tokens (the extra columns are zeros otherwise);
- TextVectorization's `int` output without `output_sequence_length` is padded to the longest
  sample of each split (training's batches) or of each predicted batch (Keras: of each batch).
Refused: `invert` (strings out), `sparse`/`ragged`, callables, several OOV indices (their hash
buckets are TF's FarmHash of the string).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from kcli.errors import ShapeError
from kcli.model import vocabulary as vocab
from kcli.model.layers.base import LayerSpec, Shape, format_shape

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

STRING_LAYERS = ("StringLookup", "TextVectorization")
_UTF8 = ("utf-8", "utf8")


class StringLayer(LayerSpec):
    """What StringLookup and TextVectorization share: the vocabulary and the output mode."""

    max_tokens: int | None = Field(
        None, description="The vocabulary's size cap, the mask and OOV tokens included."
    )
    vocabulary: list[str] | str | None = Field(
        None,
        description="A list of tokens, or a text file (one per line, relative to the recipe's "
        "folder); none: adapted on the train split.",
    )
    idf_weights: list[float] | None = Field(
        None, description="tf_idf with a given vocabulary: one weight per token."
    )
    pad_to_max_tokens: bool = Field(False, description="Non-int outputs max_tokens wide.")
    sparse: bool = Field(False, description="Keras' sparse output; refused (dense only).")
    encoding: str = Field("utf-8", description="The text's encoding (kcli reads UTF-8).")

    # What the subclass fixes: Keras' TextVectorization always uses "" and one "[UNK]".
    def mask_string(self) -> str | None:
        raise NotImplementedError  # each string layer says

    def oov_string(self) -> str:
        raise NotImplementedError  # each string layer says

    def n_oov(self) -> int:
        return 1

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Each sample's tokens."""
        raise NotImplementedError  # each string layer says

    @field_validator("sparse")
    @classmethod
    def _dense_only(cls, value: bool) -> bool:
        if value:
            raise ValueError("sparse outputs are not supported (kcli's tensors are dense)")
        return value

    @field_validator("encoding")
    @classmethod
    def _utf8(cls, value: str) -> str:
        if value.lower() not in _UTF8:
            raise ValueError(f"kcli reads text as UTF-8; encoding must be 'utf-8' (got {value!r})")
        return value

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, value: int | None) -> int | None:
        if value is not None and value <= 1:
            raise ValueError(f"if set, max_tokens must be greater than 1 (got {value})")
        return value

    @model_validator(mode="after")
    def _check_vocabulary(self):
        mode = self.output_mode  # type: ignore[attr-defined]
        if self.pad_to_max_tokens and self.max_tokens is None:
            raise ValueError("pad_to_max_tokens: true needs max_tokens")
        if self.idf_weights is not None and mode != "tf_idf":
            raise ValueError("idf_weights only apply to output_mode tf_idf")
        if mode == "tf_idf" and isinstance(self.vocabulary, str):
            raise ValueError("output_mode tf_idf cannot take a vocabulary file (as in Keras)")
        if mode == "tf_idf" and self.vocabulary is not None and self.idf_weights is None:
            raise ValueError("a given vocabulary with output_mode tf_idf needs idf_weights")
        if isinstance(self.vocabulary, list):
            self.vocabulary_from(self.vocabulary)  # Keras' set_vocabulary checks
        if mode != "int" and self.depth() is None:
            raise ValueError(
                f"output_mode {mode} needs max_tokens (or a vocabulary list): kcli fixes the "
                "output's width before it reads the data, and pads it to max_tokens"
            )
        return self

    def specials(self) -> list[str]:
        """The tokens that open the vocabulary: the mask (int mode only), then the OOV ones."""
        mask = self.mask_string()
        lead = [mask] if mask is not None and self.output_mode == "int" else []  # type: ignore[attr-defined]
        return lead + [self.oov_string()] * self.n_oov()

    def depth(self) -> int | None:
        """The width of a non-int output."""
        if self.pad_to_max_tokens:
            return self.max_tokens
        if isinstance(self.vocabulary, list):
            return len(self.vocabulary_from(self.vocabulary)[0])
        return self.max_tokens

    def vocabulary_from(self, tokens: list[str]) -> tuple[list[str], list[float] | None]:
        """A given vocabulary (list or file lines) as Keras' set_vocabulary takes it: the
        special tokens added unless it starts with them; (vocabulary, idf weights or None)."""
        specials = self.specials()
        found = tokens[: len(specials)] == specials
        learned = tokens[len(specials) :] if found else list(tokens)
        if not learned and not found:
            raise ValueError("the vocabulary is empty")
        repeated = sorted(t for t, n in Counter(learned).items() if n > 1)
        if repeated:
            raise ValueError(f"the vocabulary repeats {repeated}")
        mask = self.mask_string()
        if mask is not None and mask in learned:
            raise ValueError(
                f"the vocabulary holds the mask token {mask!r} past its start; give the special "
                f"tokens only first, in this order: {specials}, or not at all"
            )
        size = len(specials) + len(learned)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(
                f"the vocabulary has {size} tokens, more than max_tokens {self.max_tokens}"
            )
        weights = None
        if self.output_mode == "tf_idf" and self.idf_weights is not None:  # type: ignore[attr-defined]
            if len(self.idf_weights) != len(tokens):
                raise ValueError(
                    f"idf_weights has {len(self.idf_weights)} values for a vocabulary of "
                    f"{len(tokens)}; they must match"
                )
            # No document frequencies for the added special tokens: Keras gives them the mean.
            mean = sum(self.idf_weights) / len(self.idf_weights)
            weights = ([] if found else [mean] * len(specials)) + list(self.idf_weights)
        return specials + learned, weights

    def adapt(self, texts: list[str]) -> tuple[list[str], list[float] | None]:
        """(vocabulary, idf weights or None) learned from the train split's strings."""
        return vocab.adapt_vocabulary(
            self.tokenize(texts),
            specials=self.specials(),
            removed=(self.mask_string(), self.oov_string()),
            max_tokens=self.max_tokens,
            tf_idf=self.output_mode == "tf_idf",  # type: ignore[attr-defined]
        )

    def token_ids(self, texts: list[str], vocabulary: list[str]) -> list[list[int]]:
        """Each sample's ids; the mask token is 0 in int mode and dropped (-1) otherwise."""
        start = len(self.specials())
        int_mode = self.output_mode == "int"  # type: ignore[attr-defined]
        return vocab.token_ids(
            self.tokenize(texts),
            vocab.lookup_table(vocabulary, start),
            mask_token=self.mask_string(),
            mask_id=0 if int_mode else -1,
            oov_id=(start - 1) if self.n_oov() else None,
        )

    def encode(self, texts: list[str], vocabulary: list[str]) -> np.ndarray:
        """The strings as an int64 (samples, width) array of ids, padded as the layer pads."""
        import numpy as np

        ids = self.token_ids(texts, vocabulary)
        width = self.width(max((len(row) for row in ids), default=0))
        pad = 0 if self.output_mode == "int" else -1  # type: ignore[attr-defined]
        out = np.full((len(ids), width), pad, dtype=np.int64)
        for row, values in zip(out, ids, strict=True):
            values = values[:width]
            row[: len(values)] = values
        return out

    def width(self, longest: int) -> int:
        return max(longest, 1)

    def check_input(self, input_shapes: list[Shape]) -> None:
        (shape,) = input_shapes
        if tuple(shape) != (1,):
            raise ShapeError(
                f"{self.type} takes one string per sample: a model input of shape [1] fed by a "  # type: ignore[attr-defined]
                f"CSV column listed under data.strings; got input shape {format_shape(shape)}"
            )

    def build(self, input_shapes: list[Shape]) -> nn.Module:
        from kcli.model.nn.lookup import LookupModule

        mode = self.output_mode  # type: ignore[attr-defined]
        return LookupModule(mode, self.depth() if mode != "int" else None)


class StringLookup(StringLayer):
    """Strings -> vocabulary indices (or one/multi-hot, count, tf-idf vectors), as Keras.

    Index order in int mode: the mask token (if `mask_token` is set) at 0, the OOV index, then
    the learned tokens, most frequent first (ties: the later token in sort order first)."""

    type: Literal["StringLookup"] = "StringLookup"
    num_oov_indices: int = Field(1, ge=0, le=1, description="OOV indices: 1, or 0 (OOV refused).")
    mask_token: str | None = Field(None, description="A token mapped to 0 (int mode).")
    oov_token: str = Field("[UNK]", description="The OOV entry of the vocabulary.")
    invert: bool = Field(False, description="Indices -> strings; refused (strings out).")
    output_mode: Literal["int", "one_hot", "multi_hot", "count", "tf_idf"] = Field(
        "int", description="int: the index; or a vector per sample, vocabulary wide."
    )
    salt: int | list[int] | None = Field(None, description="OOV hashing salt; refused.")

    @field_validator("invert")
    @classmethod
    def _no_invert(cls, value: bool) -> bool:
        if value:
            raise ValueError("invert: true gives strings, which kcli's tensors cannot hold")
        return value

    @field_validator("salt")
    @classmethod
    def _no_salt(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("salt hashes OOV strings into several indices, which kcli does not do")
        return value

    def mask_string(self) -> str | None:
        return self.mask_token

    def oov_string(self) -> str:
        return self.oov_token

    def n_oov(self) -> int:
        return self.num_oov_indices

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        return [[text] for text in texts]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        self.check_input(input_shapes)
        return (1,) if self.output_mode == "int" else (self.depth(),)


class TextVectorization(StringLayer):
    """Text -> token ids (or multi-hot, count, tf-idf vectors), as Keras' TextVectorization.

    Each sample is standardized, split and turned into n-grams, then looked up: in int mode
    index 0 is padding (''), 1 the OOV token '[UNK]', then the learned tokens by frequency;
    other modes have no padding index ('[UNK]' is 0)."""

    type: Literal["TextVectorization"] = "TextVectorization"
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation"] | None = (
        Field("lower_and_strip_punctuation", description="ASCII lowercasing and punctuation.")
    )
    split: Literal["whitespace", "character"] | None = Field(
        "whitespace", description="Tokens: runs of ASCII whitespace, characters, or none."
    )
    ngrams: int | list[int] | None = Field(
        None, description="n: the 1..n-grams; a list: those widths."
    )
    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] = Field(
        "int", description="int: ids per token; or a vector per sample, vocabulary wide."
    )
    output_sequence_length: int | None = Field(
        None, gt=0, description="int mode: pad or cut every sample to this many ids."
    )
    ragged: bool = Field(False, description="Keras' ragged output; refused (dense only).")

    @field_validator("ragged")
    @classmethod
    def _not_ragged(cls, value: bool) -> bool:
        if value:
            raise ValueError("ragged outputs are not supported (kcli's tensors are dense)")
        return value

    @field_validator("ngrams")
    @classmethod
    def _widths(cls, value: Any) -> Any:
        widths = [value] if isinstance(value, int) else value
        if widths is not None and (not widths or any(w < 1 for w in widths)):
            raise ValueError(f"n-gram widths must be at least 1 (got {value})")
        return value

    @model_validator(mode="after")
    def _length_for_int(self):
        if self.output_sequence_length is not None and self.output_mode != "int":
            raise ValueError("output_sequence_length only applies to output_mode int")
        return self

    def mask_string(self) -> str | None:
        return ""

    def oov_string(self) -> str:
        return "[UNK]"

    def widths(self) -> list[int] | None:
        if isinstance(self.ngrams, int):
            return list(range(1, self.ngrams + 1))
        return self.ngrams

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        widths = self.widths()
        return [
            vocab.ngrams(
                vocab.split_text(vocab.standardize(t, self.standardize), self.split), widths
            )
            for t in texts
        ]

    def width(self, longest: int) -> int:
        if self.output_sequence_length is not None:
            return self.output_sequence_length
        return max(longest, 1)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        self.check_input(input_shapes)
        if self.output_mode == "int":
            return (self.output_sequence_length,)
        return (self.depth(),)
