"""Regularization, Embedding and activation layers: shapes, counts, Keras defaults and values."""

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.activations import activation_registry
from kcli.model.layers import layer_registry


def act_spec(data: dict):
    return activation_registry.get(data["type"]).model_validate(data)


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


# --- Dropout, SpatialDropout1D/2D, GaussianNoise ---------------------------------------------


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        ({"type": "Dropout", "rate": 0.5}, (10,)),
        ({"type": "SpatialDropout1D", "rate": 0.5}, (6, 4)),
        ({"type": "SpatialDropout2D", "rate": 0.5}, (5, 5, 3)),
        ({"type": "GaussianNoise", "stddev": 0.1}, (3, 2)),
    ],
)
def test_noise_layers_keep_shape_and_have_no_weights(check_layer, data, shape):
    module, _ = check_layer(data, [shape], shape, (0, 0))
    x = torch.rand(2, *shape)
    assert torch.equal(module(x), x)  # eval mode: the identity


def test_dropout_scales_kept_inputs_in_training():
    module = spec({"type": "Dropout", "rate": 0.2}).build([(1000,)])
    module.train()
    out = module(torch.ones(4, 1000))
    # Kept inputs are scaled by 1 / (1 - 0.2) = 1.25, dropped ones are 0.
    values = set(out.unique().tolist())
    assert values == {0.0, 1.25}
    dropped = (out == 0).float().mean().item()
    assert 0.15 < dropped < 0.25  # 4000 draws at p = 0.2: std ~0.006


def test_dropout_rate_bounds():
    with pytest.raises(ValidationError):
        spec({"type": "Dropout", "rate": 1.0})
    with pytest.raises(ValidationError):
        spec({"type": "Dropout", "rate": -0.1})
    module = spec({"type": "Dropout", "rate": 0.0}).build([(3,)]).train()
    x = torch.rand(2, 3)
    assert torch.equal(module(x), x)


def test_dropout_noise_shape_shares_the_mask():
    # noise_shape [null, 1, null] (batch axis first): one mask per sample, the same at every step.
    data = {"type": "Dropout", "rate": 0.5, "noise_shape": [None, 1, None]}
    module = spec(data).build([(7, 50)]).train()
    out = module(torch.ones(3, 7, 50))
    assert set(out.unique().tolist()) == {0.0, 2.0}  # 1 / (1 - 0.5) = 2
    assert torch.equal(out, out[:, :1].expand(-1, 7, -1))


def test_dropout_noise_shape_must_broadcast():
    with pytest.raises(ShapeError, match=r"noise_shape \[None, 3\] .*\(None, 4\)"):
        spec({"type": "Dropout", "rate": 0.5, "noise_shape": [None, 3]}).output_shape([(4,)])
    with pytest.raises(ShapeError, match="does not broadcast"):
        spec({"type": "Dropout", "rate": 0.5, "noise_shape": [None, 1]}).output_shape([(4, 2)])


def test_dropout_seed_repeats_masks():
    data = {"type": "Dropout", "rate": 0.5, "seed": 7}
    first = spec(data).build([(100,)]).train()(torch.ones(2, 100))
    second = spec(data).build([(100,)]).train()(torch.ones(2, 100))
    assert torch.equal(first, second)


def test_spatial_dropout_2d_zeroes_whole_channels():
    module = spec({"type": "SpatialDropout2D", "rate": 0.5}).build([(4, 4, 16)]).train()
    out = module(torch.ones(8, 4, 4, 16))
    # Every (sample, channel) plane is all 0 or all 2 (= 1 / (1 - 0.5)).
    planes = out.permute(0, 3, 1, 2).reshape(8 * 16, 16)
    assert torch.equal(planes, planes[:, :1].expand(-1, 16))
    assert set(planes[:, 0].tolist()) == {0.0, 2.0}  # 128 draws: both occur


def test_spatial_dropout_1d_zeroes_whole_channels_over_steps():
    module = spec({"type": "SpatialDropout1D", "rate": 0.5}).build([(9, 32)]).train()
    out = module(torch.ones(4, 9, 32))
    assert torch.equal(out, out[:, :1].expand(-1, 9, -1))
    with pytest.raises(ShapeError, match=r"SpatialDropout1D expects .*\(None, 9\)"):
        spec({"type": "SpatialDropout1D", "rate": 0.5}).output_shape([(9,)])


def test_gaussian_noise_only_in_training():
    module = spec({"type": "GaussianNoise", "stddev": 0.5}).build([(20_000,)]).train()
    noise = module(torch.zeros(1, 20_000))
    # 20000 draws of N(0, 0.5^2): sample std within a few % of 0.5, mean near 0.
    assert abs(noise.std().item() - 0.5) < 0.02
    assert abs(noise.mean().item()) < 0.02
    with pytest.raises(ValidationError):
        spec({"type": "GaussianNoise", "stddev": 1.5})  # Keras allows stddev in [0, 1]
    with pytest.raises(ValidationError):
        spec({"type": "GaussianNoise"})  # stddev is required


# --- Embedding ---------------------------------------------------------------------------------


def test_embedding_shape_and_count(check_layer, monkeypatch):
    # check_layer feeds torch.randn; an Embedding needs ids, so feed whole numbers in [0, 50)
    # as float32 (as data often arrives), which the layer must accept.
    real_randint = torch.randint
    monkeypatch.setattr(torch, "randn", lambda *size: real_randint(0, 50, size).float())
    # Keras: input_dim * output_dim = 50 * 8; ids (T,) = (6,) -> (6, 8).
    check_layer(
        {"type": "Embedding", "input_dim": 50, "output_dim": 8}, [(6,)], (6, 8), (50 * 8, 0)
    )


def test_embedding_lookup_accepts_float_and_int_ids():
    module = spec({"type": "Embedding", "input_dim": 5, "output_dim": 3}).build([(2,)])
    ids = torch.tensor([[4, 0]])
    expected = torch.stack([module.embeddings[4], module.embeddings[0]])
    assert torch.equal(module(ids)[0], expected)
    assert torch.equal(module(ids.float())[0], expected)


def test_embedding_default_initializer_is_keras_uniform():
    module = spec({"type": "Embedding", "input_dim": 1000, "output_dim": 8}).build([(3,)])
    # Keras: uniform(-0.05, 0.05); torch's nn.Embedding would draw N(0, 1) (|w| up to ~4).
    largest = module.embeddings.abs().max().item()
    assert 0.045 < largest <= 0.05


def test_embedding_regularized_weight_is_embeddings():
    layer = spec({"type": "Embedding", "input_dim": 5, "output_dim": 3})
    assert layer.regularized_weights() == {}
    layer = spec(
        {"type": "Embedding", "input_dim": 5, "output_dim": 3, "embeddings_regularizer": "l2"}
    )
    assert list(layer.regularized_weights()) == ["embeddings"]
    assert layer.regularized_weights()["embeddings"].l2 == 0.01  # Keras' default factor


# --- Activation layers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"type": "Activation", "activation": "relu"},
        {"type": "ReLU"},
        {"type": "LeakyReLU"},
        {"type": "ELU"},
        {"type": "Softmax"},
    ],
)
def test_weightless_activation_layers(check_layer, data):
    module, _ = check_layer(data, [(3, 4)], (3, 4), (0, 0))
    assert isinstance(module, torch.nn.Identity)


def apply(data: dict, x: torch.Tensor) -> torch.Tensor:
    layer = spec(data)
    return layer.activation_spec().build()(layer.build([tuple(x.shape[1:])])(x))


def test_leaky_relu_layer_slope_is_point_three():
    # The layer's Keras default is 0.3 (the leaky_relu function's is 0.2): -2 -> -0.6.
    out = apply({"type": "LeakyReLU"}, torch.tensor([[-2.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[-0.6, 3.0]]))
    assert spec({"type": "LeakyReLU"}).activation_spec().negative_slope == 0.3


def test_relu_layer_arguments():
    data = {"type": "ReLU", "max_value": 6.0, "negative_slope": 0.1, "threshold": 1.0}
    out = apply(data, torch.tensor([[-1.0, 0.5, 3.0, 10.0]]))
    # Below the threshold: 0.1 * (x - 1): -1 -> -0.2, 0.5 -> -0.05; 3 stays; 10 capped at 6.
    torch.testing.assert_close(out, torch.tensor([[-0.2, -0.05, 3.0, 6.0]]))
    with pytest.raises(ValidationError):
        spec({"type": "ReLU", "negative_slope": -0.1})


def test_relu_threshold_follows_keras_order():
    # Keras keeps x only where x > threshold: at the threshold itself the output is 0.
    out = apply({"type": "ReLU", "threshold": 1.0}, torch.tensor([[0.5, 1.0, 1.5]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 1.5]]))
    # The relu function takes a negative threshold: it keeps (threshold, 0) as it is, so
    # -0.5 > -1 stays -0.5 and -2 gives 0 ...
    x = torch.tensor([[-2.0, -0.5, 3.0, 10.0]])
    function = act_spec({"type": "relu", "threshold": -1.0}).build()
    torch.testing.assert_close(function(x), torch.tensor([[0.0, -0.5, 3.0, 10.0]]))
    # ... unless a ceiling is set: Keras then clips to [0, max_value], so -0.5 becomes 0.
    function = act_spec({"type": "relu", "threshold": -1.0, "max_value": 6.0}).build()
    torch.testing.assert_close(function(x), torch.tensor([[0.0, 0.0, 3.0, 6.0]]))
    # The ReLU layer refuses a negative threshold, as Keras' layer does.
    with pytest.raises(ValidationError):
        spec({"type": "ReLU", "threshold": -1.0})


def test_elu_layer_alpha():
    out = apply({"type": "ELU", "alpha": 2.0}, torch.tensor([[-1.0, 1.0]]))
    # 2 * (exp(-1) - 1) = -1.264241; positive values pass.
    torch.testing.assert_close(out, torch.tensor([[-1.2642411, 1.0]]))


def test_activation_layer_passes_its_function():
    layer = spec({"type": "Activation", "activation": {"type": "elu", "alpha": 0.5}})
    assert layer.activation_spec().type == "elu" and layer.activation_spec().alpha == 0.5
    with pytest.raises(ValidationError):
        spec({"type": "Activation"})  # the activation is required


def test_softmax_layer_hands_logits_to_the_loss():
    layer = spec({"type": "Softmax"})
    assert layer.activation_spec().logits_link == "softmax"
    out = apply({"type": "Softmax", "axis": 1}, torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]))
    # Over axis 1 (the first after the batch): each column of [[0, 1], [0, 1]] is uniform.
    torch.testing.assert_close(out, torch.full((1, 2, 2), 0.5))
    with pytest.raises(ShapeError, match=r"Softmax axis 0 .*\(None, 2, 2\)"):
        spec({"type": "Softmax", "axis": 0}).output_shape([(2, 2)])


def test_prelu_count_is_one_alpha_per_feature(check_layer):
    # No shared axes: alpha has the input's shape, 4 * 5 * 3 = 60 weights.
    check_layer({"type": "PReLU"}, [(4, 5, 3)], (4, 5, 3), (4 * 5 * 3, 0))
    # Shared over H and W (axes 1, 2): one alpha per channel, 3 weights.
    module, _ = check_layer(
        {"type": "PReLU", "shared_axes": [1, 2]}, [(4, 5, 3)], (4, 5, 3), (3, 0)
    )
    assert module.alpha.shape == (1, 1, 3)


def test_prelu_alpha_starts_at_zero_unlike_torch():
    module = spec({"type": "PReLU"}).build([(4,)])
    assert module.alpha.abs().sum() == 0
    assert torch.nn.PReLU().weight.item() == 0.25  # torch's default start
    out = module(torch.tensor([[-3.0, -1.0, 2.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 2.0, 0.0]]))  # alpha 0: a ReLU


def test_prelu_slopes_apply_per_feature():
    module = spec({"type": "PReLU", "shared_axes": [1]}).build([(2, 3)])
    with torch.no_grad():
        module.alpha.copy_(torch.tensor([[0.1, 0.2, 0.5]]))
    x = torch.tensor([[[-1.0, -1.0, -2.0], [1.0, -4.0, 2.0]]])
    # Negative x times its channel's alpha: -1*0.1, -1*0.2, -2*0.5 / 1, -4*0.2, 2.
    expected = torch.tensor([[[-0.1, -0.2, -1.0], [1.0, -0.8, 2.0]]])
    torch.testing.assert_close(module(x), expected)


def test_prelu_shape_errors_and_regularizer():
    with pytest.raises(ShapeError, match=r"PReLU shared_axes \[3\] must lie in 1..2"):
        spec({"type": "PReLU", "shared_axes": [3]}).output_shape([(2, 3)])
    with pytest.raises(ShapeError, match="PReLU needs known sizes"):
        spec({"type": "PReLU"}).output_shape([(None, 3)])
    # A variable-length axis is fine once shared.
    assert spec({"type": "PReLU", "shared_axes": [1]}).output_shape([(None, 3)]) == (None, 3)
    layer = spec({"type": "PReLU", "alpha_regularizer": {"l1": 0.5}})
    assert list(layer.regularized_weights()) == ["alpha"]
