"""CategoryEncoding and Discretization: Keras' output modes, shapes and values by hand."""

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.validate_spec(data)


def encoding(mode: str, n: int, shape: tuple):
    return spec({"type": "CategoryEncoding", "num_tokens": n, "output_mode": mode}).build([shape])


@pytest.mark.parametrize(
    ("data", "shape", "out"),
    [
        ({"type": "CategoryEncoding", "num_tokens": 6}, (4,), (6,)),
        ({"type": "CategoryEncoding", "num_tokens": 6, "output_mode": "one_hot"}, (4,), (4, 6)),
        ({"type": "CategoryEncoding", "num_tokens": 6, "output_mode": "one_hot"}, (1,), (6,)),
        ({"type": "CategoryEncoding", "num_tokens": 6, "output_mode": "count"}, (4, 2), (2, 6)),
        ({"type": "Discretization", "bin_boundaries": [0.0, 1.0]}, (5,), (5,)),
        (
            {"type": "Discretization", "bin_boundaries": [0.0, 1.0], "output_mode": "one_hot"},
            (5, 1),
            (5, 3),
        ),
        ({"type": "Hashing", "num_bins": 4, "output_mode": "multi_hot"}, (5,), (4,)),
    ],
)
def test_encodings_have_no_weights(data, shape, out):
    layer = spec(data)
    assert layer.output_shape([shape]) == out
    module = layer.build([shape])
    assert sum(1 for _ in module.parameters()) == 0 and not list(module.buffers())
    result = module(torch.randint(0, 2, (3, *shape)))
    assert tuple(result.shape) == (3, *out)


def test_category_encoding_modes_by_hand():
    ids = torch.tensor([[0, 2, 2, 5]])
    # multi_hot: 1 where an id occurs; count: how often (2 occurs twice)
    assert encoding("multi_hot", 6, (4,))(ids).tolist() == [[1, 0, 1, 0, 0, 1]]
    assert encoding("count", 6, (4,))(ids).tolist() == [[1, 0, 2, 0, 0, 1]]
    # one_hot replaces a last axis of 1, and adds one otherwise
    assert encoding("one_hot", 4, (1,))(torch.tensor([[1], [3]])).tolist() == [
        [0, 1, 0, 0],
        [0, 0, 0, 1],
    ]
    out = encoding("one_hot", 3, (2,))(torch.tensor([[2, 0]]))
    assert out.tolist() == [[[0, 0, 1], [1, 0, 0]]]
    # ids stored as floats are whole numbers; the output is float32 in every mode
    floats = encoding("count", 3, (3,))(torch.tensor([[1.0, 1.0, 2.0]]))
    assert floats.dtype == torch.float32 and floats.tolist() == [[0, 2, 1]]


def test_category_encoding_reduces_the_first_axis_of_each_sample():
    # (tokens, k) per sample: Keras' torch backend counts over the tokens, giving (k, depth)
    ids = torch.tensor([[[0, 1], [0, 2], [2, 2]]])  # tokens down, 2 columns
    out = encoding("count", 3, (3, 2))(ids)
    # column 0 holds ids 0, 0, 2; column 1 holds 1, 2, 2
    assert out.tolist() == [[[2, 0, 1], [0, 1, 2]]]


def test_out_of_range_ids_encode_as_zeros():
    ids = torch.tensor([[-1, 7, 1]])
    assert encoding("multi_hot", 3, (3,))(ids).tolist() == [[0, 1, 0]]
    assert encoding("one_hot", 3, (3,))(ids).tolist() == [[[0, 0, 0], [0, 0, 0], [0, 1, 0]]]


def test_category_encoding_arguments():
    with pytest.raises(ValidationError, match="sparse outputs are not supported"):
        spec({"type": "CategoryEncoding", "num_tokens": 3, "sparse": True})
    with pytest.raises(ValidationError):
        spec({"type": "CategoryEncoding", "num_tokens": 0})
    with pytest.raises(ShapeError, match="CategoryEncoding expects tokens"):
        spec({"type": "CategoryEncoding", "num_tokens": 3}).output_shape([()])


def test_discretization_bins_by_hand():
    # boundaries 0, 1, 2 make 4 bins: x < 0 -> 0, 0 <= x < 1 -> 1, 1 <= x < 2 -> 2, x >= 2 -> 3
    layer = spec({"type": "Discretization", "bin_boundaries": [0.0, 1.0, 2.0]})
    x = torch.tensor([[-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, float("nan")]])
    out = layer.build([(7,)])(x)
    assert out.dtype == torch.int32  # Keras' int mode dtype
    assert out.tolist() == [[0, 1, 1, 2, 3, 3, 3]]  # NaN: the last bin, as bucketize puts it
    counts = spec(
        {"type": "Discretization", "bin_boundaries": [0.0, 1.0, 2.0], "output_mode": "count"}
    )
    assert counts.build([(7,)])(x).tolist() == [[1, 2, 1, 3]]


def test_discretization_refuses_both_or_neither_and_unsorted_boundaries():
    with pytest.raises(ValidationError, match="bin_boundaries or num_bins, not both"):
        spec({"type": "Discretization", "num_bins": 4, "bin_boundaries": [0.0]})
    with pytest.raises(ValidationError, match="give bin_boundaries"):
        spec({"type": "Discretization"})
    with pytest.raises(ValidationError, match="increasing order"):
        spec({"type": "Discretization", "bin_boundaries": [1.0, 0.0]})
