"""Shared test helpers."""

from __future__ import annotations

import pytest


def build_and_check_layer(
    spec: dict,
    input_shapes: list[tuple],
    expected_shape: tuple,
    expected_params: tuple[int, int],
    batch: int = 2,
):
    """Validate a layer spec, check its shape rule, build it and run a random batch through it.

    `expected_params` is (trainable, non_trainable) worked out from Keras' formula in the test.
    Returns the built module and its output.
    """
    import torch

    from kcli.model.layers import layer_registry
    from kcli.model.nn.counting import count_weights

    layer = layer_registry.get(spec["type"]).model_validate(spec)
    shapes = [tuple(s) for s in input_shapes]
    assert layer.output_shape(shapes) == tuple(expected_shape)
    module = layer.build(shapes)
    assert count_weights(module) == tuple(expected_params)
    inputs = [torch.randn(batch, *s) for s in shapes]
    module.eval()
    out = module(*inputs)
    activation = layer.activation_spec()
    if activation is not None:
        out = activation.build()(out)
    assert tuple(out.shape) == (batch, *expected_shape)
    return module, out


@pytest.fixture
def check_layer():
    return build_and_check_layer
