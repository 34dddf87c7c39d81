"""BatchNormalization and LayerNormalization: Keras' counts, defaults and update rule."""

import numpy as np
import pytest
import torch

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


def test_batchnorm_counts_4c_with_2c_non_trainable(check_layer):
    # Keras: gamma + beta trainable (2*C), moving mean + variance non-trainable (2*C); C = 5.
    check_layer({"type": "BatchNormalization"}, [(5,)], (5,), (2 * 5, 2 * 5))


def test_batchnorm_on_images_normalizes_channels(check_layer):
    # Channels-last (H, W, C) = (4, 4, 3): weights per channel, C = 3.
    check_layer({"type": "BatchNormalization"}, [(4, 4, 3)], (4, 4, 3), (2 * 3, 2 * 3))


def test_batchnorm_without_center_and_scale_keeps_moving_stats(check_layer):
    module, _ = check_layer(
        {"type": "BatchNormalization", "center": False, "scale": False}, [(6,)], (6,), (0, 12)
    )
    assert module.gamma is None and module.beta is None


def test_batchnorm_state_has_keras_weights_and_no_batch_counter():
    module = spec({"type": "BatchNormalization"}).build([(3,)])
    assert sorted(module.state_dict()) == ["beta", "gamma", "moving_mean", "moving_variance"]


def test_batchnorm_defaults_are_keras_not_torch():
    layer = spec({"type": "BatchNormalization"})
    assert layer.momentum == 0.99 and layer.epsilon == 1e-3 and layer.axis == -1
    torch_bn = torch.nn.BatchNorm1d(3)
    # torch weighs the NEW batch by 0.1 and uses eps 1e-5; Keras keeps 0.99 of the OLD value.
    assert torch_bn.momentum == 0.1 and torch_bn.eps == 1e-5
    assert 1 - layer.momentum != torch_bn.momentum and layer.epsilon != torch_bn.eps


def test_batchnorm_training_step_uses_biased_variance_and_momentum():
    module = spec({"type": "BatchNormalization"}).build([(2,)])
    module.train()
    x = np.array([[1, 0], [2, 0], [3, 4], [6, 4]], dtype=np.float32)
    out = module(torch.from_numpy(x)).detach().numpy()
    # Channel 0: [1, 2, 3, 6], mean 3, biased var (4 + 1 + 0 + 9) / 4 = 3.5 (unbiased: 14/3).
    # Channel 1: [0, 0, 4, 4], mean 2, biased var (4 + 4 + 4 + 4) / 4 = 4.
    # moving_mean = 0 * 0.99 + mean * 0.01;  moving_variance = 1 * 0.99 + var * 0.01.
    np.testing.assert_allclose(module.moving_mean.numpy(), [0.03, 0.02], rtol=1e-6)
    np.testing.assert_allclose(module.moving_variance.numpy(), [1.025, 1.03], rtol=1e-6)
    # torch's unbiased update would give 0.99 + 0.01 * 14/3 = 1.036667 on channel 0.
    assert abs(module.moving_variance[0].item() - 1.036667) > 1e-2
    # Output with the batch's statistics, gamma 1, beta 0: (x - mean) / sqrt(var + 1e-3).
    expected = (x - np.array([3.0, 2.0])) / np.sqrt(np.array([3.5, 4.0]) + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_batchnorm_statistics_span_batch_and_steps():
    # (N, T, C) = (2, 2, 2): the same values as above, split over samples and steps.
    module = spec({"type": "BatchNormalization"}).build([(2, 2)])
    module.train()
    x = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[3.0, 4.0], [6.0, 4.0]]])
    module(x)
    torch.testing.assert_close(module.moving_mean, torch.tensor([0.03, 0.02]))
    torch.testing.assert_close(module.moving_variance, torch.tensor([1.025, 1.03]))


def test_batchnorm_inference_uses_moving_statistics():
    module = spec({"type": "BatchNormalization"}).build([(2,)])
    with torch.no_grad():
        module.moving_mean.copy_(torch.tensor([1.0, 2.0]))
        module.moving_variance.copy_(torch.tensor([4.0, 9.0]))
        module.gamma.copy_(torch.tensor([2.0, 3.0]))
        module.beta.copy_(torch.tensor([0.5, -1.0]))
    module.eval()
    out = module(torch.tensor([[3.0, 5.0]]))
    # gamma * (x - moving_mean) / sqrt(moving_variance + 1e-3) + beta:
    # 2 * (3 - 1) / sqrt(4.001) + 0.5 and 3 * (5 - 2) / sqrt(9.001) - 1.
    expected = [2 * 2 / 4.001**0.5 + 0.5, 3 * 3 / 9.001**0.5 - 1]
    torch.testing.assert_close(out[0], torch.tensor(expected))
    # Inference leaves the moving statistics alone.
    torch.testing.assert_close(module.moving_mean, torch.tensor([1.0, 2.0]))


def test_batchnorm_frozen_layer_runs_in_inference_mode():
    # Keras: trainable=False on BatchNormalization means inference mode, even during fit.
    module = spec({"type": "BatchNormalization", "trainable": False}).build([(2,)])
    module.train()
    out = module(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    # Moving stats 0 and 1: y = x / sqrt(1 + 1e-3); and they did not move.
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0], [3.0, 4.0]]) / 1.001**0.5)
    assert module.moving_mean.abs().sum() == 0


def test_batchnorm_other_axis_and_initializers(check_layer):
    # axis 1 of a (3, 4) input: 3 features, statistics over batch and the last axis.
    data = {"type": "BatchNormalization", "axis": 1, "gamma_initializer": "zeros"}
    module, _ = check_layer(data, [(3, 4)], (3, 4), (2 * 3, 2 * 3))
    assert module.gamma.abs().sum() == 0
    module.train()
    x = torch.randn(8, 3, 4) * 5 + 2
    module.gamma.data.fill_(1.0)
    out = module(x)
    torch.testing.assert_close(out.mean(dim=(0, 2)), torch.zeros(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("axis", [0, 3, -4])
def test_batchnorm_axis_out_of_range(axis):
    with pytest.raises(ShapeError, match=rf"BatchNormalization axis {axis} .*\(None, 4, 5\)"):
        spec({"type": "BatchNormalization", "axis": axis}).output_shape([(4, 5)])


def test_batchnorm_regularized_weights():
    layer = spec({"type": "BatchNormalization", "gamma_regularizer": {"l2": 0.1}})
    assert list(layer.regularized_weights()) == ["gamma"]
    assert layer.regularized_weights()["gamma"].l2 == 0.1


def test_layernorm_count_and_default_epsilon(check_layer):
    # Keras: gamma and beta over the last axis: 2 * 6; epsilon 1e-3 (torch's LayerNorm: 1e-5).
    check_layer({"type": "LayerNormalization"}, [(4, 6)], (4, 6), (2 * 6, 0))
    assert spec({"type": "LayerNormalization"}).epsilon == 1e-3
    assert torch.nn.LayerNorm(6).eps == 1e-5


def test_layernorm_values():
    module = spec({"type": "LayerNormalization"}).build([(4,)])
    out = module(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    # mean 2.5, biased var (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25: (x - 2.5) / sqrt(1.251).
    expected = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / 1.251**0.5
    torch.testing.assert_close(out[0], expected)


def test_layernorm_over_non_trailing_axes(check_layer):
    # axis [1, 3] of (3, 4, 5): weights of shape (3, 5), 2 * 15 in all.
    data = {"type": "LayerNormalization", "axis": [1, 3]}
    module, _ = check_layer(data, [(3, 4, 5)], (3, 4, 5), (2 * 15, 0))
    assert module.gamma.shape == (3, 5)
    x = torch.randn(2, 3, 4, 5) * 3 + 1
    out = module(x)
    # Each (sample, axis-2 index) slice is normalized over axes 1 and 3.
    x64 = x.double()
    mean = x64.mean(dim=(1, 3), keepdim=True)
    var = x64.var(dim=(1, 3), keepdim=True, unbiased=False)
    torch.testing.assert_close(out.double(), (x64 - mean) / (var + 1e-3).sqrt(), atol=1e-5, rtol=0)


def test_layernorm_rejects_repeated_or_unknown_axes():
    with pytest.raises(ShapeError, match="names an axis twice"):
        spec({"type": "LayerNormalization", "axis": [2, -1]}).output_shape([(3, 4)])
    with pytest.raises(ShapeError, match=r"needs known sizes .*\(None, 3, None\)"):
        spec({"type": "LayerNormalization"}).output_shape([(3, None)])


def test_batchnorm_training_gradients_match_the_batch_formula():
    # Normalizing with batch statistics is torch's F.batch_norm in training mode (which also
    # normalizes with the biased variance): outputs and gradients must agree with it.
    module = spec({"type": "BatchNormalization", "gamma_initializer": "random_normal"}).build(
        [(3, 4)]
    )
    module.train()
    x = (torch.randn(5, 3, 4) * 2 + 1).requires_grad_()
    module(x).pow(2).sum().backward()
    ours = (x.grad.clone(), module.gamma.grad.clone(), module.beta.grad.clone())
    x.grad = None
    gamma = module.gamma.detach().clone().requires_grad_()
    beta = module.beta.detach().clone().requires_grad_()
    reference = torch.nn.functional.batch_norm(
        x.movedim(-1, 1), None, None, gamma, beta, training=True, eps=1e-3
    ).movedim(1, -1)
    reference.pow(2).sum().backward()
    for got, want in zip(ours, (x.grad, gamma.grad, beta.grad), strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
