"""Core layers: shapes and Keras parameter counts."""

import pytest


def test_dense_params_follow_keras_formula(check_layer):
    # Keras: Dense params = inputs * units + units = 64 * 128 + 128.
    check_layer({"type": "Dense", "units": 128}, [(64,)], (128,), (64 * 128 + 128, 0))


def test_dense_applies_to_last_axis_without_flattening(check_layer):
    # A rank-3 input keeps its leading axes; params depend on the last axis only: 5 * 3 + 3.
    check_layer({"type": "Dense", "units": 3}, [(4, 5)], (4, 3), (5 * 3 + 3, 0))


def test_dense_without_bias(check_layer):
    check_layer({"type": "Dense", "units": 3, "use_bias": False}, [(5,)], (3,), (15, 0))


def test_dense_default_initializers_are_keras(check_layer):
    # Keras: kernel glorot_uniform (limit sqrt(6 / (fan_in + fan_out))), bias zeros.
    module, _ = check_layer({"type": "Dense", "units": 300}, [(500,)], (300,), (150_300, 0))
    limit = (6 / (500 + 300)) ** 0.5
    assert module.kernel.abs().max().item() <= limit
    assert module.kernel.abs().max().item() > 0.95 * limit
    assert module.bias.abs().sum().item() == 0


def test_dense_rejects_scalar_input():
    from kcli.errors import ShapeError
    from kcli.model.layers import layer_registry

    layer = layer_registry.get("Dense").model_validate({"type": "Dense", "units": 2})
    with pytest.raises(ShapeError, match=r"Dense expects"):
        layer.output_shape([()])
