"""Normalization, Discretization(num_bins) and IntegerLookup: shapes, counts and values by hand.

Keras' IntegerLookup needs TensorFlow (not installed), so its vocabularies, indices and tf_idf
weights are worked out here from Keras' documented rules and its docstring's examples.
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


def spec(data: dict):
    return layer_registry.validate_spec(data)


def adapted(data: dict, shape: tuple, *batches) -> torch.nn.Module:
    """The layer's module adapted on `batches` (lists of samples)."""
    module = spec(data).build([shape])
    assert module.adapts
    module.reset_state()
    for batch in batches:
        module.update_state(torch.tensor(batch))
    module.finalize_state()
    return module


def lookup(data: dict, shape: tuple, *batches) -> torch.nn.Module:
    return adapted({"type": "IntegerLookup", **data}, shape, *batches)


# ---- Normalization


@pytest.mark.parametrize(
    ("axis", "shape", "kept"),
    [(-1, (4,), 4), (-1, (5, 3), 3), ([1, 2], (5, 3), 15), (None, (5, 3), 1), (1, (5, 3), 5)],
)
def test_normalization_counts_two_weights_per_kept_value_and_the_count(axis, shape, kept):
    # Keras: mean and variance of the kept axes' shape, plus an int32 scalar count.
    module = spec({"type": "Normalization", "axis": axis}).build([shape])
    assert count_weights(module) == (0, 2 * kept + 1)
    assert module.count.dtype == torch.int32


def test_given_mean_and_variance_are_constants_not_weights():
    layer = spec({"type": "Normalization", "mean": [1.0, 2.0], "variance": [4.0, 0.0]})
    module = layer.build([(2,)])
    assert not module.adapts and count_weights(module) == (0, 0) and not module.state_dict()
    out = module(torch.tensor([[3.0, 2.5]]))
    # (3 - 1) / sqrt(4); variance 0: divided by Keras' epsilon 1e-7 instead
    assert torch.allclose(out, torch.tensor([[1.0, 0.5 / 1e-7]]))


def test_normalization_statistics_combine_batches_as_one_population():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0], [7.0, 20.0], [9.0, 20.0]], np.float32)
    module = adapted({"type": "Normalization"}, (2,), x[:2].tolist(), x[2:].tolist())
    # column 0: mean 5, population variance (16+4+0+4+16)/5 = 8; column 1: mean 20, 120
    assert module.mean.tolist() == [5.0, 20.0] and module.variance.tolist() == [8.0, 120.0]
    out = module(torch.tensor([[5.0 + math.sqrt(8), 20.0]]))
    assert torch.allclose(out, torch.tensor([[1.0, 0.0]]))
    inverse = spec({"type": "Normalization", "invert": True}).build([(2,)])
    inverse.load_state_dict(module.state_dict())
    assert torch.allclose(inverse(out), torch.tensor([[5.0 + math.sqrt(8), 20.0]]))


def test_normalization_shape_errors_name_the_layer():
    with pytest.raises(ShapeError, match="keeps the batch axis"):
        spec({"type": "Normalization", "axis": 0}).output_shape([(4,)])
    with pytest.raises(ShapeError, match="axis 3 is outside"):
        spec({"type": "Normalization", "axis": 3}).output_shape([(4,)])
    with pytest.raises(ShapeError, match="needs a known size"):
        spec({"type": "Normalization"}).output_shape([(None,)])
    bad = {"type": "Normalization", "mean": [1.0, 2.0, 3.0], "variance": [1.0, 1.0, 1.0]}
    with pytest.raises(ShapeError, match="does not broadcast"):
        spec(bad).output_shape([(4,)])
    with pytest.raises(ValidationError, match="mean and variance together"):
        spec({"type": "Normalization", "mean": 1.0})
    with pytest.raises(ValidationError, match="must not exceed the number of axes"):
        spec({"type": "Normalization", "axis": None, "mean": [1.0], "variance": [1.0]})


# ---- Discretization(num_bins)


def test_num_bins_learns_boundaries_as_a_buffer_that_is_no_weight():
    values = [[float(v)] for v in range(100)]  # 0..99, one batch: no resampling error
    module = adapted({"type": "Discretization", "num_bins": 4}, (1,), values)
    assert count_weights(module) == (0, 0)
    # quartiles by cumulative weight 25, 50, 75 of 100 equal samples: values 24, 49, 74
    # (float rounding of the fractions 0.25, 0.5, 0.75 moves them by < 1e-4)
    assert module.bin_boundaries.tolist() == pytest.approx([24.0, 49.0, 74.0], abs=1e-4)
    out = module(torch.tensor([[23.5], [24.0], [74.0], [1000.0]]))
    assert out.tolist() == [[0], [1], [3], [3]] and out.dtype == torch.int32


def test_num_bins_depth_follows_keras_arange():
    # NumPy's arange(0, 1, 1/49) has 50 entries, so Keras' adapt learns 49 edges (50 bins).
    assert spec({"type": "Discretization", "num_bins": 49}).depth() == 50
    assert spec({"type": "Discretization", "num_bins": 50}).depth() == 50
    for n in range(1, 500):
        assert spec({"type": "Discretization", "num_bins": n}).depth() == len(
            np.arange(0.0, 1.0, 1.0 / n)
        )


def test_too_few_values_for_the_bins_is_an_error():
    module = spec({"type": "Discretization", "num_bins": 8}).build([(1,)])
    module.reset_state()
    module.update_state(torch.tensor([[1.0], [2.0], [3.0]]))
    with pytest.raises(ValueError, match="needs at least 8 values"):
        module.finalize_state()


# ---- IntegerLookup

DOC = [[12, 1138, 42], [42, 1000, 36]]  # Keras' docstring example


def test_vocabulary_by_frequency_then_larger_token_first():
    # 42 twice; the others once, larger first: Keras' docstring gives [-1, 42, 1138, 1000, 36, 12]
    module = lookup({"max_tokens": 6}, (3,), DOC)
    assert module.tokens.tolist() == [42, 1138, 1000, 36, 12] and module.size.item() == 5
    assert module(torch.tensor(DOC)).tolist() == [[5, 2, 1], [1, 3, 4]]
    assert count_weights(module) == (0, 0)


def test_max_tokens_keeps_the_most_frequent_and_the_rest_is_oov():
    # max_tokens 3 = OOV index + 2 tokens: 42 then 1138; 1000, 36, 12 are OOV (index 0).
    module = lookup({"max_tokens": 3}, (3,), DOC)
    assert module.tokens.tolist() == [42, 1138]
    assert module(torch.tensor(DOC)).tolist() == [[0, 2, 1], [1, 0, 0]]


def test_mask_and_oov_tokens_never_enter_the_vocabulary():
    data = [[0, 0, 0, -1, -1, 5], [5, 7, 0, 0, 0, 0]]
    # 0 (the mask) and -1 (oov_token) are the most frequent but left out; 5 twice, then 7.
    module = lookup({"max_tokens": 10, "mask_token": 0}, (6,), data)
    assert module.tokens[: module.size].tolist() == [5, 7]
    # int mode: mask 0, OOV 1, then 5 -> 2, 7 -> 3; -1 is OOV; 9 (unseen) OOV
    out = module(torch.tensor([[0, -1, 5, 7, 9, 0]]))
    assert out.tolist() == [[0, 1, 2, 3, 1, 0]] and out.dtype == torch.int64


def test_given_vocabulary_with_two_oov_indices_floormod():
    layer = {"type": "IntegerLookup", "vocabulary": [12, 36, 1138, 42], "num_oov_indices": 2}
    # Keras' docstring: 37 % 2 = 1, 1000 % 2 = 0; the vocabulary starts at 2
    out = spec(layer).build([(3,)])(torch.tensor([[12, 1138, 42], [37, 1000, 36]]))
    assert out.tolist() == [[2, 4, 5], [1, 0, 3]]


def test_farmhash_oov_spreads_as_keras_documents():
    layer = {"type": "IntegerLookup", "vocabulary": [10, 20, 30], "num_oov_indices": 4}
    layer["oov_method"] = "farmhash"
    out = spec(layer).build([()])(torch.tensor([100, 300, 700, 1100, 1700, 2000]))
    assert out.tolist() == [3, 3, 2, 2, 0, 1]  # Keras' docstring (FarmHash64 of "100" ... % 4)


def test_given_vocabulary_may_start_with_the_special_tokens():
    plain = spec({"type": "IntegerLookup", "vocabulary": [7, 8]}).build([(2,)])
    prefixed = spec({"type": "IntegerLookup", "vocabulary": [-1, 7, 8]}).build([(2,)])
    x = torch.tensor([[8, 7], [9, 8]])
    assert plain(x).tolist() == prefixed(x).tolist() == [[2, 1], [0, 2]]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # Keras' docstring: OOV at 0, then 12, 36, 1138, 42
        ("multi_hot", [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]),
        ("count", [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]),
    ],
)
def test_vector_modes(mode, expected):
    layer = {"type": "IntegerLookup", "vocabulary": [12, 36, 1138, 42], "output_mode": mode}
    out = spec(layer).build([(4,)])(torch.tensor([[12, 1138, 42, 42], [42, 7, 36, 7]]))
    assert out.tolist() == expected and out.dtype == torch.float32


def test_one_hot_mode():
    layer = {"type": "IntegerLookup", "vocabulary": [12, 36, 1138, 42], "output_mode": "one_hot"}
    out = spec(layer).build([()])(torch.tensor([12, 36, 1138, 42, 7]))
    assert out.tolist() == torch.eye(5)[[1, 2, 3, 4, 0]].tolist()


def test_mask_is_dropped_by_the_vector_modes():
    layer = {"type": "IntegerLookup", "vocabulary": [3, 4], "mask_token": 0}
    layer["output_mode"] = "count"
    # no mask index outside int mode: OOV 0, 3 -> 1, 4 -> 2; the zeros are not counted
    out = spec(layer).build([(4,)])(torch.tensor([[0, 3, 3, 9]]))
    assert out.tolist() == [[1, 2, 0]]


def test_given_tf_idf_weights_as_keras_documents():
    x = torch.tensor([[12, 1138, 42, 42], [42, 7, 36, 7]])
    weights = [0.25, 0.75, 0.6, 0.4]
    layer = {"type": "IntegerLookup", "output_mode": "tf_idf", "vocabulary": [12, 36, 1138, 42]}
    out = spec({**layer, "idf_weights": weights}).build([(4,)])(x)
    # the OOV slot weighs the mean 0.5: two 7s give 1.0; two 42s 0.8
    expected = [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]]
    assert torch.allclose(out, torch.tensor(expected))
    layer["vocabulary"] = [-1, 12, 36, 1138, 42]  # with the OOV token: its own weight 0.9
    out = spec({**layer, "idf_weights": [0.9, *weights]}).build([(4,)])(x)
    expected[1][0] = 1.8
    assert torch.allclose(out, torch.tensor(expected))


def test_learned_tf_idf_weights_by_hand():
    docs = [[1, 1, 2], [2, 3, 3], [1, 4, 5]]
    data = {"output_mode": "tf_idf", "max_tokens": 7, "pad_to_max_tokens": True}
    module = lookup(data, (3,), docs)
    # counts 1:3, 3:2, 2:2, 5:1, 4:1 -> [1, 3, 2, 5, 4]; documents holding each: 2, 1, 2, 1, 1
    assert module.tokens.tolist() == [1, 3, 2, 5, 4, 0] and module.size.item() == 5
    two, two_and_half = math.log(1 + 3 / 3), math.log(1 + 3 / 2)  # log(1 + N / (1 + df))
    idf = [two, two_and_half, two, two_and_half, two_and_half]
    expected = [sum(idf) / 5, *idf, 0.0]  # OOV slot: their mean; the unused 7th slot: 0
    assert np.allclose(module.idf_weights.numpy(), expected)
    out = module(torch.tensor([[1, 1, 2], [9, 9, 4]]))
    assert np.allclose(out.numpy()[0], [0, 2 * two, 0, two, 0, 0, 0])
    assert np.allclose(out.numpy()[1], [2 * expected[0], 0, 0, 0, 0, two_and_half, 0])


def test_invert_maps_indices_back():
    layer = {"type": "IntegerLookup", "vocabulary": [12, 36, 1138, 42], "invert": True}
    out = spec(layer).build([(3,)])(torch.tensor([[1, 3, 4], [4, 0, 2]]))
    assert out.tolist() == [[12, 1138, 42], [42, -1, 36]]  # Keras' docstring
    masked = spec({**layer, "mask_token": 0}).build([(3,)])  # mask 0, OOV 1, tokens from 2
    assert masked(torch.tensor([[0, 1, 2, 5, 9]])).tolist() == [[0, -1, 12, 42, -1]]


def test_no_oov_index_gives_minus_one_and_zeros():
    layer = {"type": "IntegerLookup", "vocabulary": [5], "num_oov_indices": 0}
    assert spec(layer).build([(2,)])(torch.tensor([[5, 6]])).tolist() == [[0, -1]]
    counts = spec({**layer, "output_mode": "count"}).build([(2,)])
    assert counts(torch.tensor([[5, 6]])).tolist() == [[1.0]]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({}, "needs max_tokens"),
        ({"max_tokens": 5, "output_mode": "multi_hot"}, "needs pad_to_max_tokens"),
        ({"max_tokens": 2, "mask_token": 0}, "leaves no index"),
        ({"vocabulary": "vocab.txt"}, "vocabulary file"),
        ({"vocabulary": [1, 2, 1]}, "repeats"),
        ({"vocabulary": [0, 1], "mask_token": 0}, "holds the mask token"),
        ({"vocabulary": [1, 2, 3], "max_tokens": 3}, "more than max_tokens"),
        ({"vocabulary": [1], "output_mode": "tf_idf"}, "needs idf_weights"),
        ({"vocabulary": [1], "idf_weights": [1.0]}, "are for output_mode tf_idf"),
        ({"vocabulary": [1], "invert": True, "output_mode": "count"}, "invert needs"),
        ({"vocabulary": [1], "salt": 3}, "salt is for"),
        ({"vocabulary": [1], "sparse": True}, "sparse outputs are not supported"),
        ({"vocabulary": [1], "vocabulary_dtype": "string"}, "int64"),
    ],
)
def test_integer_lookup_refusals(data, says):
    with pytest.raises(ValidationError, match=says):
        spec({"type": "IntegerLookup", **data})


def test_integer_lookup_output_shapes():
    base = {"type": "IntegerLookup", "vocabulary": [4, 5, 6]}
    assert spec(base).output_shape([(3,)]) == (3,)
    assert spec({**base, "output_mode": "one_hot"}).output_shape([(3, 1)]) == (3, 4)
    assert spec({**base, "output_mode": "multi_hot"}).output_shape([(3,)]) == (4,)
    padded = {**base, "output_mode": "count", "max_tokens": 9, "pad_to_max_tokens": True}
    assert spec(padded).output_shape([(3,)]) == (9,)
    with pytest.raises(ShapeError, match="IntegerLookup"):
        spec({**base, "output_mode": "multi_hot"}).output_shape([()])
