"""StringLookup and TextVectorization: vocabularies, tokenizing and output modes, worked by hand.

Keras' own layers need TensorFlow (not installed), so every expected value here is worked out
from Keras' rules (keras/src/layers/preprocessing/index_lookup.py, text_vectorization.py):
vocabulary by count (high first), ties by the token (high first), the mask '' and OOV '[UNK]'
first; idf = log(1 + documents / (1 + document frequency)), the OOV slot the mean idf.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry
from kcli.model.nn.counting import count_weights
from kcli.model.vocabulary import OutOfVocabulary


def layer(**args):
    return layer_registry.validate_spec(args)


def tv(**args):
    return layer(type="TextVectorization", **args)


def lookup(**args):
    return layer(type="StringLookup", **args)


def run(spec, texts, vocabulary, idf=None):
    """The layer's output for `texts`: ids from the data side, then the module."""
    module = spec.build([(1,)])
    if idf is not None:
        module.set_idf_weights(idf)
    return module(torch.from_numpy(spec.encode(texts, vocabulary))).numpy()


TRAIN = ["The cat sat.", "the dog sat", "a Cat!"]


def test_vocabulary_by_count_then_token_high_first():
    # Standardized: "the cat sat", "the dog sat", "a cat". Counts: the 2, sat 2, cat 2, dog 1,
    # a 1. Count high first; ties by the token high first: the > sat > cat, then dog > a.
    vocabulary, idf = tv().adapt(TRAIN)
    assert vocabulary == ["", "[UNK]", "the", "sat", "cat", "dog", "a"]
    assert idf is None
    # max_tokens counts the padding and OOV entries: 5 leaves 3 learned tokens.
    assert tv(max_tokens=5).adapt(TRAIN)[0] == ["", "[UNK]", "the", "sat", "cat"]


def test_int_ids_padded_to_the_longest_or_to_output_sequence_length():
    spec = tv(max_tokens=5)
    vocabulary = spec.adapt(TRAIN)[0]
    # "the cat ran": the=2, cat=4, ran unknown -> 1; "sat" = 3, padded with 0.
    assert spec.encode(["the cat ran", "sat"], vocabulary).tolist() == [[2, 4, 1], [3, 0, 0]]
    fixed = tv(max_tokens=5, output_sequence_length=2)
    assert fixed.encode(["the cat ran", "sat"], vocabulary).tolist() == [[2, 4], [3, 0]]
    assert run(fixed, ["the cat ran"], vocabulary).tolist() == [[2, 4]]  # int mode: as is
    assert spec.output_shape([(1,)]) == (None,)
    assert fixed.output_shape([(1,)]) == (2,)


@pytest.mark.parametrize(
    ("standardize", "tokens"),
    [
        ("lower_and_strip_punctuation", ["hello", "world", "its"]),
        ("lower", ["hello,", "world!", "it's"]),
        ("strip_punctuation", ["Hello", "World", "Its"]),
        (None, ["Hello,", "World!", "It's"]),
    ],
)
def test_standardize(standardize, tokens):
    assert tv(standardize=standardize).tokenize(["Hello, World! It's"]) == [tokens]


def test_lower_is_ascii_only_as_tensorflow_lowers_without_an_encoding():
    # tf.strings.lower(x) (Keras passes no encoding) lowers ASCII bytes: É stays.
    assert tv(standardize="lower").tokenize(["ÉCOLE"]) == [["École"]]


def test_split_variants():
    # ASCII whitespace runs separate tokens; a no-break space (U+00A0) does not.
    assert tv(standardize=None).tokenize(["a\tb  c\n", "x\u00a0y"]) == [
        ["a", "b", "c"],
        ["x\u00a0y"],
    ]
    assert tv(standardize=None, split="character").tokenize(["ab c"]) == [["a", "b", " ", "c"]]
    assert tv(standardize=None, split=None).tokenize(["Hi there"]) == [["Hi there"]]


def test_ngrams_every_width_in_turn_joined_by_a_space():
    assert tv(ngrams=2).tokenize(["a b c"]) == [["a", "b", "c", "a b", "b c"]]
    assert tv(ngrams=[2]).tokenize(["a b c"]) == [["a b", "b c"]]
    assert tv(ngrams=3).tokenize(["a b"]) == [["a", "b", "a b"]]  # too short for a 3-gram


def test_multi_hot_and_count():
    # Non-int modes have no padding entry: '[UNK]' is 0. Counts a 2, b 2, c 1 -> b, a, c.
    spec = tv(output_mode="multi_hot", max_tokens=5)
    vocabulary = spec.adapt(["a b a", "b c"])[0]
    assert vocabulary == ["[UNK]", "b", "a", "c"]
    # "a a d": a=2 twice, d unknown -> 0; the output is max_tokens (5) wide.
    assert run(spec, ["a a d"], vocabulary).tolist() == [[1, 0, 1, 0, 0]]
    count = tv(output_mode="count", max_tokens=5)
    assert run(count, ["a a d", ""], vocabulary).tolist() == [[1, 0, 2, 0, 0], [0, 0, 0, 0, 0]]
    assert spec.output_shape([(1,)]) == (5,)


def test_tf_idf_weights_by_formula():
    spec = tv(output_mode="tf_idf", max_tokens=5)
    vocabulary, idf = spec.adapt(["a b a", "b c"])
    # 2 documents; b is in both, a and c in one: idf = log(1 + 2 / (1 + df)).
    idf_b, idf_a = math.log(1 + 2 / 3), math.log(1 + 2 / 2)
    mean = (idf_b + idf_a + idf_a) / 3  # the OOV slot: the mean of the learned weights
    assert vocabulary == ["[UNK]", "b", "a", "c"]
    assert idf == pytest.approx([mean, idf_b, idf_a, idf_a])
    # "a a d": counts [1 (OOV), 0, 2, 0, 0] times the weights (zero past the vocabulary).
    expected = [mean, 0.0, 2 * idf_a, 0.0, 0.0]
    assert run(spec, ["a a d"], vocabulary, idf)[0] == pytest.approx(expected, rel=1e-6)
    # Keras keeps the idf weights out of the layer's weights: 0 parameters.
    assert count_weights(spec.build([(1,)])) == (0, 0)


def test_string_lookup_int_with_and_without_a_mask():
    train = ["red", "blue", "red", "green"]
    # red 2, then green and blue 1 each: green > blue. No mask by default: '[UNK]' is 0.
    spec = lookup()
    vocabulary = spec.adapt(train)[0]
    assert vocabulary == ["[UNK]", "red", "green", "blue"]
    assert spec.encode(["blue", "pink"], vocabulary).tolist() == [[3], [0]]
    assert spec.output_shape([(1,)]) == (1,)
    masked = lookup(mask_token="")
    vocabulary = masked.adapt([*train, ""])[0]  # the mask token is never learned
    assert vocabulary == ["", "[UNK]", "red", "green", "blue"]
    assert masked.encode(["", "red", "[UNK]"], vocabulary).tolist() == [[0], [2], [1]]


def test_string_lookup_one_hot_and_no_oov_index():
    spec = lookup(output_mode="one_hot", max_tokens=4)
    vocabulary = spec.adapt(["red", "blue", "red", "green"])[0]
    assert vocabulary == ["[UNK]", "red", "green", "blue"]
    assert run(spec, ["green", "pink"], vocabulary).tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]
    assert spec.output_shape([(1,)]) == (4,)
    strict = lookup(num_oov_indices=0)
    vocabulary = strict.adapt(["red", "blue"])[0]
    assert vocabulary == ["red", "blue"]
    with pytest.raises(OutOfVocabulary) as caught:
        strict.encode(["red", "pink"], vocabulary)
    assert (caught.value.sample, caught.value.token) == (1, "pink")


def test_given_vocabulary_list_and_idf_weights():
    assert lookup(vocabulary=["a", "b"]).vocabulary_from(["a", "b"])[0] == ["[UNK]", "a", "b"]
    # Already starting with the special tokens: taken as it is.
    assert lookup().vocabulary_from(["[UNK]", "a"])[0] == ["[UNK]", "a"]
    spec = tv(vocabulary=["earth", "wind"])
    assert spec.vocabulary_from(spec.vocabulary)[0] == ["", "[UNK]", "earth", "wind"]
    weighted = tv(output_mode="tf_idf", vocabulary=["x", "y"], idf_weights=[0.5, 1.5])
    vocabulary, idf = weighted.vocabulary_from(["x", "y"])
    assert (vocabulary, idf) == (["[UNK]", "x", "y"], [1.0, 0.5, 1.5])  # OOV: the mean
    assert weighted.output_shape([(1,)]) == (3,)  # the list fixes the width


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"type": "StringLookup", "invert": True}, "strings"),
        ({"type": "StringLookup", "sparse": True}, "dense"),
        ({"type": "StringLookup", "num_oov_indices": 2}, "less than or equal to 1"),
        ({"type": "StringLookup", "max_tokens": 1}, "greater than 1"),
        ({"type": "StringLookup", "pad_to_max_tokens": True}, "needs max_tokens"),
        ({"type": "StringLookup", "vocabulary": ["a", "a"]}, "repeats"),
        ({"type": "StringLookup", "mask_token": "", "vocabulary": ["a", ""]}, "mask token"),
        ({"type": "StringLookup", "vocabulary": ["a", "b"], "max_tokens": 2}, "more than"),
        ({"type": "TextVectorization", "ragged": True}, "dense"),
        ({"type": "TextVectorization", "output_mode": "multi_hot"}, "needs max_tokens"),
        (
            {
                "type": "TextVectorization",
                "output_mode": "count",
                "max_tokens": 4,
                "output_sequence_length": 3,
            },
            "only applies to output_mode int",
        ),
        ({"type": "TextVectorization", "output_mode": "tf_idf", "vocabulary": ["a"]}, "idf"),
        ({"type": "TextVectorization", "idf_weights": [1.0]}, "tf_idf"),
        ({"type": "TextVectorization", "ngrams": 0}, "at least 1"),
        ({"type": "TextVectorization", "encoding": "latin-1"}, "UTF-8"),
    ],
)
def test_refused_arguments(args, message):
    with pytest.raises(ValidationError, match=message):
        layer_registry.validate_spec(args)


def test_one_string_per_sample():
    with pytest.raises(ShapeError, match="one string per sample"):
        tv().output_shape([(3,)])


def test_encode_gives_int64():
    spec = tv()
    assert spec.encode(["a"], ["", "[UNK]", "a"]).dtype == np.int64
