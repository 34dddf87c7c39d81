"""GroupNormalization, AlphaDropout and LeakyReLU's Keras 2 `alpha`: counts, values by hand,
the noise's statistics, the mistakes refused.

(tests/parity compares the same layers with Keras itself.)
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.validate_spec(data)


def test_group_normalization_counts(check_layer):
    # gamma and beta, one per channel; Keras' default is 32 groups.
    check_layer({"type": "GroupNormalization"}, [(5, 64)], (5, 64), (2 * 64, 0))
    check_layer({"type": "GroupNormalization", "groups": 2}, [(3, 3, 4)], (3, 3, 4), (8, 0))
    check_layer(
        {"type": "GroupNormalization", "groups": -1, "center": False}, [(4, 6)], (4, 6), (6, 0)
    )


def test_group_normalization_by_hand():
    # Two groups of two channels; each group normalized over its channels and the steps.
    module = spec({"type": "GroupNormalization", "groups": 2, "epsilon": 1e-6}).build([(2, 4)])
    x = torch.tensor([[[1.0, 3.0, 10.0, 10.0], [5.0, 7.0, 20.0, 40.0]]])
    out = module(x)
    # group 0: 1, 3, 5, 7 -> mean 4, variance 5; group 1: 10, 10, 20, 40 -> mean 20, var 150
    first = (torch.tensor([[1.0, 3.0], [5.0, 7.0]]) - 4) / (5 + 1e-6) ** 0.5
    second = (torch.tensor([[10.0, 10.0], [20.0, 40.0]]) - 20) / (150 + 1e-6) ** 0.5
    torch.testing.assert_close(out[0], torch.cat([first, second], dim=1))
    with torch.no_grad():
        module.gamma.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        module.beta.fill_(0.5)
    torch.testing.assert_close(
        module(x)[0], torch.cat([first, second], 1) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 0.5
    )


def test_group_normalization_on_another_axis_and_instance_norm():
    # axis 1 of (4, 3): the 4 steps are the channels; one group each (instance norm) over 3.
    module = spec({"type": "GroupNormalization", "groups": -1, "axis": 1}).build([(4, 3)])
    out = module(torch.randn(2, 4, 3))
    torch.testing.assert_close(out.mean(dim=2), torch.zeros(2, 4), atol=1e-5, rtol=0)
    assert tuple(module.gamma.shape) == (4,)


def test_group_normalization_mistakes():
    with pytest.raises(ShapeError, match="do not split into 3 groups"):
        spec({"type": "GroupNormalization", "groups": 3}).output_shape([(5, 4)])
    with pytest.raises(ShapeError, match="do not split into 32 groups"):  # Keras' default
        spec({"type": "GroupNormalization"}).output_shape([(5, 16)])
    with pytest.raises(ShapeError, match="needs a known size on axis 1"):
        spec({"type": "GroupNormalization", "groups": 1, "axis": 1}).output_shape([(None, 4)])
    with pytest.raises(ShapeError, match="0 is the batch axis"):
        spec({"type": "GroupNormalization", "groups": 1, "axis": 0}).output_shape([(4,)])
    with pytest.raises(ValidationError, match="or -1 for one group per channel"):
        spec({"type": "GroupNormalization", "groups": 0})
    assert set(
        spec(
            {"type": "GroupNormalization", "gamma_regularizer": "l2", "beta_regularizer": "l1"}
        ).regularized_weights()
    ) == {"gamma", "beta"}


# Keras 3's constants: SELU's negative saturation, and the affine map's a and b for rate 0.2.
SATURATION = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def test_alpha_dropout_keeps_mean_and_variance_of_a_standard_input():
    module = spec({"type": "AlphaDropout", "rate": 0.2, "seed": 5}).build([(200_000,)])
    x = torch.randn(1, 200_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(module.eval()(x), x)  # the identity in inference
    out = module.train()(x)
    assert out.mean().item() == pytest.approx(0.0, abs=0.01)
    assert out.var().item() == pytest.approx(1.0, abs=0.01)
    a = ((1 - 0.2) * (1 + 0.2 * SATURATION**2)) ** -0.5
    b = -a * SATURATION * 0.2
    dropped = (out - (a * SATURATION + b)).abs() < 1e-5
    assert dropped.double().mean().item() == pytest.approx(0.2, abs=0.005)
    torch.testing.assert_close(out[~dropped], a * x[~dropped] + b)
    again = spec({"type": "AlphaDropout", "rate": 0.2, "seed": 5}).build([(200_000,)]).train()
    assert torch.equal(again(x), out)  # seeded: the same draw


def test_alpha_dropout_noise_shape():
    module = spec({"type": "AlphaDropout", "rate": 0.5, "noise_shape": [None, 1, 4]}).build(
        [(6, 4)]
    )
    out = module.train()(torch.ones(16, 6, 4))
    assert (out == out[:, :1]).all()  # one draw for every step
    with pytest.raises(ShapeError, match="AlphaDropout noise_shape"):
        spec({"type": "AlphaDropout", "rate": 0.5, "noise_shape": [None, 2, 4]}).output_shape(
            [(6, 4)]
        )
    with pytest.raises(ValidationError, match="less than 1"):
        spec({"type": "AlphaDropout", "rate": 1.0})


def test_leaky_relu_takes_keras_2_alpha():
    layer = spec({"type": "LeakyReLU", "alpha": 0.1})
    assert layer.negative_slope == 0.1  # Keras 3 maps the deprecated `alpha` to it
    assert "alpha" not in layer.model_dump()  # a resolved recipe writes negative_slope
    out = layer.activation_spec().build()(torch.tensor([-2.0, 3.0]))
    assert out.tolist() == pytest.approx([-0.2, 3.0])
    with pytest.raises(ValidationError, match="not both"):
        spec({"type": "LeakyReLU", "alpha": 0.1, "negative_slope": 0.2})
