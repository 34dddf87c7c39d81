"""Reshaping layers: shapes, Keras parameter counts (all weightless) and values."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


def test_flatten_shape_and_no_weights(check_layer):
    # 4 * 3 * 2 = 24 values per sample; Flatten has no weights.
    check_layer({"type": "Flatten"}, [(4, 3, 2)], (24,), (0, 0))


def test_flatten_order_is_numpy_reshape_of_hwc(check_layer):
    # Keras flattens a channels-last (H, W, C) sample in H, W, C order: numpy's row-major reshape.
    module, _ = check_layer({"type": "Flatten"}, [(4, 3, 2)], (24,), (0, 0))
    hwc = np.arange(2 * 4 * 3 * 2, dtype=np.float32).reshape(2, 4, 3, 2)
    out = module(torch.from_numpy(hwc)).numpy()
    np.testing.assert_array_equal(out, hwc.reshape(2, 24))


def test_flatten_unknown_size_and_scalar_samples(check_layer):
    assert spec({"type": "Flatten"}).output_shape([(None, 3)]) == (None,)
    # A scalar per sample becomes a vector of one, as in Keras: (None,) -> (None, 1).
    check_layer({"type": "Flatten"}, [()], (1,), (0, 0))


def test_reshape_known_target(check_layer):
    module, _ = check_layer({"type": "Reshape", "target_shape": [3, 4]}, [(12,)], (3, 4), (0, 0))
    x = torch.arange(24.0).reshape(2, 12)
    assert torch.equal(module(x), x.reshape(2, 3, 4))


def test_reshape_infers_the_free_size(check_layer):
    # 3 * 4 = 12 values into (-1, 2): the free size is 12 / 2 = 6.
    check_layer({"type": "Reshape", "target_shape": [-1, 2]}, [(3, 4)], (6, 2), (0, 0))


def test_reshape_with_unknown_input_keeps_free_size_unknown():
    layer = spec({"type": "Reshape", "target_shape": [-1, 4]})
    assert layer.output_shape([(None, 8)]) == (None, 4)
    module = layer.build([(None, 8)])
    # 2 samples of (3, 8) = 24 values each -> (6, 4).
    assert module(torch.zeros(2, 3, 8)).shape == (2, 6, 4)


@pytest.mark.parametrize(
    ("target", "shape", "why"),
    [([5], (12,), "12 values cannot fill 5"), ([-1, 5], (12,), "12 values do not divide into 5")],
)
def test_reshape_size_mismatch_is_a_shape_error(target, shape, why):
    with pytest.raises(ShapeError, match=r"Reshape cannot turn input shape \(None, 12\)") as err:
        spec({"type": "Reshape", "target_shape": target}).output_shape([shape])
    assert why in str(err.value)


@pytest.mark.parametrize("target", [[-1, -1], [0, 3], [-2, 3]])
def test_reshape_rejects_bad_targets(target):
    with pytest.raises(ValidationError):
        spec({"type": "Reshape", "target_shape": target})


def test_permute_is_one_based_and_moves_values(check_layer):
    # dims [2, 1] swaps the two non-batch axes: (3, 4) -> (4, 3).
    module, _ = check_layer({"type": "Permute", "dims": [2, 1]}, [(3, 4)], (4, 3), (0, 0))
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(module(torch.from_numpy(x)).numpy(), x.transpose(0, 2, 1))


def test_permute_three_axes(check_layer):
    # dims [3, 1, 2]: output axis k takes input axis dims[k]: (2, 3, 5) -> (5, 2, 3).
    check_layer({"type": "Permute", "dims": [3, 1, 2]}, [(2, 3, 5)], (5, 2, 3), (0, 0))


def test_permute_rejects_non_permutations_and_wrong_rank():
    with pytest.raises(ValidationError, match="permutation of 1..2"):
        spec({"type": "Permute", "dims": [0, 1]})
    with pytest.raises(ShapeError, match=r"Permute with dims \[2, 1\] .* \(None, 2, 3, 4\)"):
        spec({"type": "Permute", "dims": [2, 1]}).output_shape([(2, 3, 4)])


def test_repeat_vector(check_layer):
    module, _ = check_layer({"type": "RepeatVector", "n": 3}, [(5,)], (3, 5), (0, 0))
    x = torch.arange(10.0).reshape(2, 5)
    out = module(x)
    for step in range(3):
        assert torch.equal(out[:, step], x)
    with pytest.raises(ShapeError, match=r"RepeatVector expects .* \(None, 2, 5\)"):
        spec({"type": "RepeatVector", "n": 3}).output_shape([(2, 5)])


def test_zero_padding_default_is_one_on_each_side(check_layer):
    # Keras' default padding (1, 1): (4, 5, 3) -> (4 + 2, 5 + 2, 3).
    check_layer({"type": "ZeroPadding2D"}, [(4, 5, 3)], (6, 7, 3), (0, 0))


@pytest.mark.parametrize(
    ("padding", "expected"),
    [
        (2, (4 + 4, 5 + 4, 3)),  # an int: all four sides
        ([1, 2], (4 + 2, 5 + 4, 3)),  # [rows, cols]: symmetric per axis
        ([[1, 2], [3, 4]], (4 + 1 + 2, 5 + 3 + 4, 3)),  # [[top, bottom], [left, right]]
    ],
)
def test_zero_padding_forms(check_layer, padding, expected):
    check_layer({"type": "ZeroPadding2D", "padding": padding}, [(4, 5, 3)], expected, (0, 0))


def test_zero_padding_values_are_channels_last():
    layer = spec({"type": "ZeroPadding2D", "padding": [[1, 2], [3, 4]]})
    module = layer.build([(4, 5, 3)])
    x = torch.rand(2, 4, 5, 3) + 1  # all values >= 1, so zeros can only be padding
    out = module(x)
    assert out.shape == (2, 7, 12, 3)
    # The input sits after 1 top row and 3 left columns; channels untouched.
    assert torch.equal(out[:, 1:5, 3:8, :], x)
    assert out[:, :1].abs().sum() == 0 and out[:, 5:].abs().sum() == 0
    assert out[:, :, :3].abs().sum() == 0 and out[:, :, 8:].abs().sum() == 0


def test_zero_padding_rejects_negative_and_non_images():
    with pytest.raises(ValidationError):
        spec({"type": "ZeroPadding2D", "padding": -1})
    with pytest.raises(ShapeError, match=r"ZeroPadding2D expects .* \(None, 4, 5\)"):
        spec({"type": "ZeroPadding2D"}).output_shape([(4, 5)])


def test_upsampling_nearest_repeats_pixels(check_layer):
    # Keras' default size (2, 2): (3, 4, 2) -> (6, 8, 2), each pixel copied into a 2x2 block.
    module, _ = check_layer({"type": "UpSampling2D"}, [(3, 4, 2)], (6, 8, 2), (0, 0))
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    expected = x.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(module(torch.from_numpy(x)).numpy(), expected)


def test_upsampling_unequal_factors(check_layer):
    # size [3, 1]: rows x3, columns x1: (2, 5, 4) -> (6, 5, 4).
    check_layer({"type": "UpSampling2D", "size": [3, 1]}, [(2, 5, 4)], (6, 5, 4), (0, 0))
    assert spec({"type": "UpSampling2D"}).output_shape([(None, 5, 4)]) == (None, 10, 4)


def test_upsampling_bilinear_uses_half_pixel_centers():
    layer = spec({"type": "UpSampling2D", "size": [1, 2], "interpolation": "bilinear"})
    module = layer.build([(1, 2, 1)])
    x = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1)
    # Output column j samples input position (j + 0.5) / 2 - 0.5, clamped to [0, 1]:
    # j=0: -0.25 -> 0 -> 0.0; j=1: 0.25 -> 0.25; j=2: 0.75 -> 0.75; j=3: 1.25 -> 1 -> 1.0.
    out = module(x).reshape(-1)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_upsampling_rejects_other_interpolations():
    with pytest.raises(ValidationError):
        spec({"type": "UpSampling2D", "interpolation": "area"})


def test_reshaping_modules_export_with_any_batch_size():
    # Export captures the graph once with one batch size; it must serve others (no sizes baked
    # in, no Python branching on values).
    layers = [
        ({"type": "Flatten"}, (3, 4, 2)),
        ({"type": "Reshape", "target_shape": [-1, 4]}, (3, 4, 2)),
        ({"type": "Permute", "dims": [2, 3, 1]}, (3, 4, 2)),
        ({"type": "RepeatVector", "n": 3}, (4,)),
        ({"type": "ZeroPadding2D"}, (3, 4, 2)),
        ({"type": "UpSampling2D", "interpolation": "bilinear"}, (3, 4, 2)),
    ]
    batch = torch.export.Dim("batch", min=2, max=1024)
    for data, shape in layers:
        module = spec(data).build([shape])
        exported = torch.export.export(
            module, (torch.rand(2, *shape),), dynamic_shapes=({0: batch},)
        )
        x = torch.rand(5, *shape)
        assert torch.equal(exported.module()(x), module(x)), data["type"]
