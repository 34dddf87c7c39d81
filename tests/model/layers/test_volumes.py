"""3-D layers: Conv3D, Max/AveragePooling3D, their Global forms and SpatialDropout3D.

Shapes and parameter counts from Keras' formulas, values by hand (tests/parity compares the
same layers with Keras itself).
"""

from __future__ import annotations

import pytest
import torch

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


CASES = [
    # Conv3D: k_d*k_h*k_w*C*F + F; valid: n - k + 1 per axis; same: ceil(n / s).
    (
        {"type": "Conv3D", "filters": 4, "kernel_size": 3},
        (5, 6, 7, 2),
        (3, 4, 5, 4),
        27 * 2 * 4 + 4,
    ),
    (
        {"type": "Conv3D", "filters": 2, "kernel_size": [1, 2, 3], "strides": 2, "padding": "same"},
        (5, 6, 7, 3),
        (3, 3, 4, 2),
        6 * 3 * 2 + 2,
    ),
    # groups: 2 groups of 2 channels -> 2 filters each: k^3 * (C/g) * F + F
    (
        {"type": "Conv3D", "filters": 4, "kernel_size": 2, "groups": 2},
        (3, 3, 3, 4),
        (2, 2, 2, 4),
        8 * 2 * 4 + 4,
    ),
    ({"type": "MaxPooling3D"}, (4, 5, 6, 3), (2, 2, 3, 3), 0),  # floor((n - 2) / 2) + 1
    (
        {"type": "AveragePooling3D", "pool_size": 3, "padding": "same"},
        (4, 5, 6, 3),
        (2, 2, 2, 3),
        0,
    ),
    ({"type": "GlobalMaxPooling3D"}, (4, 5, 6, 3), (3,), 0),
    ({"type": "GlobalAveragePooling3D", "keepdims": True}, (4, 5, 6, 3), (1, 1, 1, 3), 0),
    ({"type": "SpatialDropout3D", "rate": 0.5}, (2, 3, 4, 3), (2, 3, 4, 3), 0),
]


@pytest.mark.parametrize("data,shape,expected,params", CASES)
def test_shapes_and_keras_parameter_counts(check_layer, data, shape, expected, params):
    check_layer(data, [shape], expected, (params, 0))


def test_conv3d_and_pooling_values_by_hand():
    # A 1x1x2 kernel over a (1, 1, 3) ramp [1, 2, 3] of one channel: kernel [10, 1], bias 0.5
    # -> [1*10 + 2*1 + 0.5, 2*10 + 3*1 + 0.5] = [12.5, 23.5].
    conv = spec({"type": "Conv3D", "filters": 1, "kernel_size": [1, 1, 2]}).build([(1, 1, 3, 1)])
    with torch.no_grad():
        conv.kernel.copy_(torch.tensor([10.0, 1.0]).reshape(1, 1, 1, 1, 2))
        conv.bias.fill_(0.5)
    x = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3, 1)
    assert conv(x).flatten().tolist() == [12.5, 23.5]
    volume = torch.arange(8.0).reshape(1, 2, 2, 2, 1)  # values 0..7
    maximum = spec({"type": "MaxPooling3D"}).build([(2, 2, 2, 1)])(volume)
    average = spec({"type": "AveragePooling3D"}).build([(2, 2, 2, 1)])(volume)
    assert maximum.flatten().tolist() == [7.0] and average.flatten().tolist() == [3.5]
    # "same" on a (1, 1, 3) axis with window 2, stride 2: windows [0, 1] and [2] (real voxels
    # only, as TensorFlow): averages 0.5 and 2.
    ramp = torch.arange(3.0).reshape(1, 1, 1, 3, 1)
    same = spec({"type": "AveragePooling3D", "pool_size": [1, 1, 2], "padding": "same"})
    assert same.build([(1, 1, 3, 1)])(ramp).flatten().tolist() == [0.5, 2.0]


def test_volume_layers_name_the_shape_they_need():
    with pytest.raises(ShapeError, match=r"Conv3D expects a channels-last volume"):
        spec({"type": "Conv3D", "filters": 2, "kernel_size": 2}).output_shape([(4, 4, 2)])
    with pytest.raises(ShapeError, match=r"MaxPooling3D expects a channels-last volume"):
        spec({"type": "MaxPooling3D"}).output_shape([(4, 4, 2)])


def test_transposed_convs_in_1d_and_3d():
    # Conv1DTranspose, x = [1, 10], kernel [1 2 3], stride 2: full [1, 2, 13, 20, 30]; "same"
    # keeps n*s = 4 pixels, cutting (k-1) - min(ceil(3/2), 2) = 0 before: [1, 2, 13, 20].
    layer = spec(
        {
            "type": "Conv1DTranspose",
            "filters": 1,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "use_bias": False,
        }
    )
    module = layer.build([(2, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 3))
    assert layer.output_shape([(2, 1)]) == (4, 1)
    out = module(torch.tensor([1.0, 10.0]).reshape(1, 2, 1))
    assert out.flatten().tolist() == [1.0, 2.0, 13.0, 20.0]


@pytest.mark.parametrize(
    "data,shape,expected,params",
    [
        # Keras' transposed kernel (*k, F, C): k*F*C + F; valid: n*s + max(k - s, 0).
        (
            {"type": "Conv1DTranspose", "filters": 3, "kernel_size": 3, "strides": 2},
            (5, 2),
            (11, 3),
            3 * 3 * 2 + 3,
        ),
        (
            {"type": "Conv3DTranspose", "filters": 2, "kernel_size": 2, "strides": 2},
            (2, 3, 2, 4),
            (4, 6, 4, 2),
            8 * 2 * 4 + 2,
        ),
    ],
)
def test_transposed_shapes_and_counts(check_layer, data, shape, expected, params):
    check_layer(data, [shape], expected, (params, 0))
