"""Pooling layers: shapes, no weights, TensorFlow "same" padding and averages by hand."""

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(d: dict):
    d = layer_registry.normalize(d)
    return layer_registry.get(d["type"]).model_validate(d)


def run(module, x):
    module.eval()
    with torch.no_grad():
        return module(x)


CASES = [
    # valid: floor((in - pool)/strides) + 1; same: ceil(in/strides); strides default pool_size.
    ({"type": "MaxPooling1D"}, (9, 3), (4, 3)),  # (9-2)//2 + 1
    ({"type": "MaxPooling1D", "pool_size": 3, "strides": 1}, (9, 3), (7, 3)),
    ({"type": "MaxPooling1D", "padding": "same"}, (9, 3), (5, 3)),  # ceil(9/2)
    ({"type": "MaxPooling2D"}, (8, 7, 3), (4, 3, 3)),
    (
        {"type": "MaxPooling2D", "pool_size": 3, "strides": 2, "padding": "same"},
        (8, 7, 3),
        (4, 4, 3),
    ),
    ({"type": "MaxPooling2D", "pool_size": [2, 3]}, (8, 9, 1), (4, 3, 1)),
    ({"type": "AveragePooling1D", "pool_size": 3}, (10, 2), (3, 2)),  # (10-3)//3 + 1
    (
        {"type": "AveragePooling1D", "pool_size": 3, "strides": 2, "padding": "same"},
        (10, 2),
        (5, 2),
    ),
    ({"type": "AveragePooling2D"}, (6, 6, 4), (3, 3, 4)),
    (
        {"type": "AveragePooling2D", "pool_size": 3, "strides": 1, "padding": "same"},
        (5, 6, 4),
        (5, 6, 4),
    ),
    ({"type": "GlobalMaxPooling1D"}, (7, 3), (3,)),
    ({"type": "GlobalMaxPooling1D", "keepdims": True}, (7, 3), (1, 3)),
    ({"type": "GlobalMaxPooling2D"}, (5, 6, 3), (3,)),
    ({"type": "GlobalAveragePooling1D"}, (7, 3), (3,)),
    ({"type": "GlobalAveragePooling2D"}, (5, 6, 3), (3,)),
    ({"type": "GlobalAveragePooling2D", "keepdims": True}, (5, 6, 3), (1, 1, 3)),
]


@pytest.mark.parametrize("layer,in_shape,out_shape", CASES)
def test_shapes_and_no_weights(check_layer, layer, in_shape, out_shape):
    check_layer(layer, [in_shape], out_shape, (0, 0))


def test_keras_aliases():
    assert type(spec({"type": "MaxPool2D"})).__name__ == "MaxPooling2D"
    assert type(spec({"type": "GlobalAvgPool1D"})).__name__ == "GlobalAveragePooling1D"


def test_max_pool_same_stride_2_pads_bottom_right():
    # in 4, pool 3, s 2: out 2, total pad (2-1)*2 + 3 - 4 = 1, after. Windows rows/cols
    # [0..2] and [2..3 + pad]. x = 0..15 row-major, so a window's max is its bottom-right
    # pixel: rows 0-2 x cols 0-2 -> 10; rows 0-2 x cols 2-3 -> 11; rows 2-3 x cols 0-2 -> 14;
    # rows 2-3 x cols 2-3 -> 15. (Padding at the top/left would give 5, 7, 13, 15.)
    layer = spec({"type": "MaxPooling2D", "pool_size": 3, "strides": 2, "padding": "same"})
    module = layer.build([(4, 4, 1)])
    x = torch.arange(16.0).reshape(1, 4, 4, 1)
    out = run(module, x)
    torch.testing.assert_close(out.flatten(), torch.tensor([10.0, 11.0, 14.0, 15.0]))
    # Padding is -inf for a max: an all-negative input keeps its own values.
    negative = run(module, -x - 1).flatten()
    # -(min of each window) - 1: windows' top-left 0, 2, 8, 10
    torch.testing.assert_close(negative, torch.tensor([-1.0, -3.0, -9.0, -11.0]))


def test_average_pool_same_averages_real_pixels_only():
    # in [1, 2, 3, 4], pool 3, s 2: pad after 1; windows [1 2 3] -> 2, [3 4] -> 3.5
    # (counting the pad would give (3 + 4 + 0)/3 = 2.33).
    layer = spec({"type": "AveragePooling1D", "pool_size": 3, "strides": 2, "padding": "same"})
    module = layer.build([(4, 1)])
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([2.0, 3.5]))


def test_average_pool_same_symmetric_pads():
    # in [1..5], pool 3, s 1: total pad 2 -> (1, 1): [1.5, 2, 3, 4, 4.5]
    layer = spec({"type": "AveragePooling1D", "pool_size": 3, "strides": 1, "padding": "same"})
    module = layer.build([(5, 1)])
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([1.5, 2.0, 3.0, 4.0, 4.5]))


def test_average_pool_2d_same_corners():
    # 2x2 input, pool 2, s 1, same: pad (0, 1) on both axes. Every window mean is the mean of
    # its real pixels: x = [[1, 2], [3, 4]] ->
    # [[(1+2+3+4)/4, (2+4)/2], [(3+4)/2, 4]] = [[2.5, 3], [3.5, 4]]
    layer = spec({"type": "AveragePooling2D", "pool_size": 2, "strides": 1, "padding": "same"})
    module = layer.build([(2, 2, 1)])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([2.5, 3.0, 3.5, 4.0]))


def test_pooling_keeps_channels_apart():
    layer = spec({"type": "MaxPooling2D"})
    module = layer.build([(2, 2, 2)])
    x = torch.tensor([[[1.0, -1.0], [2.0, -2.0]], [[3.0, -3.0], [4.0, -4.0]]]).reshape(1, 2, 2, 2)
    # channel 0: max(1, 2, 3, 4) = 4; channel 1: max(-1, -2, -3, -4) = -1
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([4.0, -1.0]))


def test_unknown_length_same_padding_is_worked_out_per_call():
    layer = spec({"type": "AveragePooling1D", "pool_size": 3, "strides": 2, "padding": "same"})
    assert layer.output_shape([(None, 1)]) == (None, 1)
    module = layer.build([(None, 1)])
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([2.0, 3.5]))
    # in 5: out 3, total pad (3-1)*2 + 3 - 5 = 2 -> (1, 1): [1 2] -> 1.5, [2 3 4] -> 3, [4 5] -> 4.5
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([1.5, 3.0, 4.5]))


def test_global_pooling_numbers():
    x = torch.tensor([[1.0, 10.0], [3.0, -10.0], [5.0, 0.0]]).reshape(1, 3, 2)
    mean = spec({"type": "GlobalAveragePooling1D"}).build([(3, 2)])
    maximum = spec({"type": "GlobalMaxPooling1D", "keepdims": True}).build([(3, 2)])
    # means (1+3+5)/3 = 3, (10-10+0)/3 = 0; maxima 5, 10
    torch.testing.assert_close(run(mean, x), torch.tensor([[3.0, 0.0]]))
    torch.testing.assert_close(run(maximum, x), torch.tensor([[[5.0, 10.0]]]))


def test_errors():
    with pytest.raises(ShapeError, match=r"MaxPooling2D.*\(None, 1, 4, 3\)"):
        spec({"type": "MaxPooling2D"}).output_shape([(1, 4, 3)])
    with pytest.raises(ShapeError, match=r"GlobalAveragePooling2D expects"):
        spec({"type": "GlobalAveragePooling2D"}).output_shape([(4, 3)])
    with pytest.raises(ValidationError, match="one per spatial"):
        spec({"type": "MaxPooling1D", "pool_size": [2, 2]})
    with pytest.raises(ValidationError, match="greater than 0"):
        spec({"type": "AveragePooling2D", "strides": 0})
