"""Convolution layers: shapes, Keras parameter counts, TensorFlow padding and numbers by hand."""

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(d: dict):
    return layer_registry.get(d["type"]).model_validate(d)


def run(module, x):
    module.eval()
    with torch.no_grad():
        return module(x)


# ---- shapes and parameter counts (every layer through check_layer) ----

CASES = [
    # Conv1D: k*C*F + F.  valid: floor((in - d(k-1) - 1)/s) + 1; same/causal: ceil(in/s).
    ({"type": "Conv1D", "filters": 4, "kernel_size": 3}, (10, 2), (8, 4), 3 * 2 * 4 + 4),
    (
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        (9, 2),
        (5, 4),  # ceil(9/2)
        3 * 2 * 4 + 4,
    ),
    (
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
        (10, 2),
        (10, 4),
        3 * 2 * 4 + 4,
    ),
    (  # groups: each of 2 groups maps 3 channels to 2 filters: k * (C/g) * F + F
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "groups": 2},
        (10, 6),
        (8, 4),
        3 * 3 * 4 + 4,
    ),
    # Conv2D: k*k*C*F + F.
    ({"type": "Conv2D", "filters": 16, "kernel_size": 3}, (8, 8, 1), (6, 6, 16), 9 * 1 * 16 + 16),
    (
        {"type": "Conv2D", "filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"},
        (8, 7, 3),
        (4, 4, 8),  # ceil(8/2), ceil(7/2)
        9 * 3 * 8 + 8,
    ),
    (
        {"type": "Conv2D", "filters": 8, "kernel_size": 3, "strides": 2},
        (9, 9, 3),
        (4, 4, 8),  # floor((9 - 2 - 1)/2) + 1
        9 * 3 * 8 + 8,
    ),
    (
        {"type": "Conv2D", "filters": 8, "kernel_size": 3, "dilation_rate": 2},
        (9, 9, 3),
        (5, 5, 8),  # floor((9 - 2*2 - 1)/1) + 1
        9 * 3 * 8 + 8,
    ),
    (
        {"type": "Conv2D", "filters": 8, "kernel_size": [3, 1], "use_bias": False},
        (5, 5, 2),
        (3, 5, 8),
        3 * 1 * 2 * 8,
    ),
    (
        {"type": "Conv2D", "filters": 6, "kernel_size": 3, "groups": 3, "padding": "same"},
        (5, 5, 3),
        (5, 5, 6),
        9 * 1 * 6 + 6,
    ),
    # Conv2DTranspose: k*k*F*C + F.  Output: valid n*s + max(k-s, 0), same n*s.
    (
        {"type": "Conv2DTranspose", "filters": 4, "kernel_size": 3},
        (5, 5, 2),
        (7, 7, 4),  # 5*1 + max(3-1, 0)
        9 * 4 * 2 + 4,
    ),
    (
        {"type": "Conv2DTranspose", "filters": 4, "kernel_size": 3, "strides": 2},
        (5, 5, 2),
        (11, 11, 4),  # 5*2 + max(3-2, 0)
        9 * 4 * 2 + 4,
    ),
    (
        {
            "type": "Conv2DTranspose",
            "filters": 4,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
        },
        (5, 6, 2),
        (10, 12, 4),  # n*s
        9 * 4 * 2 + 4,
    ),
    (
        {"type": "Conv2DTranspose", "filters": 4, "kernel_size": 1, "strides": 3},
        (4, 4, 2),
        (12, 12, 4),  # 4*3 + max(1-3, 0)
        1 * 4 * 2 + 4,
    ),
    (  # with output_padding: (n-1)*s + k - 2*pad + op, pad = k//2 = 1 for same
        {
            "type": "Conv2DTranspose",
            "filters": 4,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "output_padding": [0, 1],
        },
        (5, 5, 2),
        (9, 10, 4),  # (5-1)*2 + 3 - 2 + 0 = 9, ... + 1 = 10
        9 * 4 * 2 + 4,
    ),
    (  # valid with output_padding: (n-1)*s + k + op = 4*2 + 3 + 1
        {
            "type": "Conv2DTranspose",
            "filters": 1,
            "kernel_size": 3,
            "strides": 2,
            "output_padding": 1,
        },
        (5, 5, 2),
        (12, 12, 1),
        9 * 1 * 2 + 1,
    ),
    # SeparableConv2D: k*k*C*dm (depthwise, no bias) + C*dm*F + F.
    (
        {"type": "SeparableConv2D", "filters": 8, "kernel_size": 3},
        (6, 6, 4),
        (4, 4, 8),
        9 * 4 + 4 * 8 + 8,
    ),
    (
        {
            "type": "SeparableConv2D",
            "filters": 8,
            "kernel_size": 3,
            "depth_multiplier": 2,
            "padding": "same",
            "strides": 2,
        },
        (6, 6, 4),
        (3, 3, 8),
        9 * 4 * 2 + 4 * 2 * 8 + 8,
    ),
    # DepthwiseConv2D: k*k*C*dm + C*dm; C*dm output channels.
    ({"type": "DepthwiseConv2D", "kernel_size": 3}, (6, 6, 4), (4, 4, 4), 9 * 4 + 4),
    (
        {"type": "DepthwiseConv2D", "kernel_size": 3, "depth_multiplier": 3, "padding": "same"},
        (6, 6, 4),
        (6, 6, 12),
        9 * 4 * 3 + 4 * 3,
    ),
]


@pytest.mark.parametrize("layer,in_shape,out_shape,params", CASES)
def test_shapes_and_keras_param_counts(check_layer, layer, in_shape, out_shape, params):
    check_layer(layer, [in_shape], out_shape, (params, 0))


def test_unknown_spatial_size_with_stride_is_padded_per_call():
    layer = spec(
        {"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}
    )
    assert layer.output_shape([(None, None, 1)]) == (None, None, 2)
    module = layer.build([(None, None, 1)])
    # ceil(7/2) = 4, ceil(8/2) = 4, ceil(5/2) = 3
    assert tuple(run(module, torch.randn(1, 7, 8, 1)).shape) == (1, 4, 4, 2)
    assert tuple(run(module, torch.randn(1, 5, 5, 1)).shape) == (1, 3, 3, 2)


def test_unknown_sequence_length_stays_unknown():
    layer = spec({"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "same"})
    assert layer.output_shape([(None, 2)]) == (None, 4)
    module = layer.build([(None, 2)])
    assert tuple(run(module, torch.randn(3, 11, 2)).shape) == (3, 11, 4)


# ---- numbers worked out by hand ----


def test_conv2d_is_a_correlation_on_channels_last_input():
    layer = spec({"type": "Conv2D", "filters": 1, "kernel_size": 2})
    module = layer.build([(3, 3, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))  # (F, C, kh, kw)
        module.bias.fill_(0.5)
    x = torch.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # rows [1 2 3] [4 5 6] [7 8 9]
    # top-left window [1 2; 4 5]: 1*1 + 2*2 + 4*3 + 5*4 = 37, + 0.5 bias; each step right adds
    # (1+2+3+4) = 10, each step down adds 3 * 10 = 30 (no kernel flip: a correlation).
    expected = torch.tensor([[37.5, 47.5], [67.5, 77.5]]).reshape(1, 2, 2, 1)
    torch.testing.assert_close(run(module, x), expected)


def test_conv2d_multichannel_matches_a_numpy_correlation():
    np = pytest.importorskip("numpy")
    layer = spec({"type": "Conv2D", "filters": 3, "kernel_size": [2, 3], "use_bias": False})
    module = layer.build([(4, 5, 2)])
    x = torch.randn(1, 4, 5, 2)
    kernel = module.kernel.detach().numpy()  # (F, C, kh, kw)
    xs = x.numpy()[0]
    expected = np.zeros((3, 3, 3))
    for i in range(3):
        for j in range(3):
            window = xs[i : i + 2, j : j + 3, :]  # (kh, kw, C)
            expected[i, j] = np.einsum("hwc,fchw->f", window, kernel)
    np.testing.assert_allclose(run(module, x)[0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_conv2d_same_stride_2_on_even_input_pads_bottom_right():
    # TF: in 6, k 3, s 2 -> out 3, total pad (3-1)*2 + 3 - 6 = 1, all of it after: (0, 1, 0, 1).
    layer = spec(
        {"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}
    )
    module = layer.build([(6, 6, 3)])
    x = torch.randn(2, 6, 6, 3)
    chw = x.permute(0, 3, 1, 2)
    by_hand = F.conv2d(F.pad(chw, (0, 1, 0, 1)), module.kernel, module.bias, stride=2)
    out = run(module, x)
    torch.testing.assert_close(out, by_hand.permute(0, 2, 3, 1))
    # torch's own symmetric padding=1 would pad the top/left too: a different result.
    symmetric = F.conv2d(chw, module.kernel, module.bias, stride=2, padding=1)
    assert not torch.allclose(out, symmetric.permute(0, 2, 3, 1))


def test_conv2d_same_even_kernel_stride_1_pads_after():
    # k 2, s 1: total pad 1, after: out[i] = x[i]*w0 + x[i+1]*w1, the last row/col sees a zero.
    layer = spec(
        {
            "type": "Conv2D",
            "filters": 1,
            "kernel_size": [1, 2],
            "padding": "same",
            "use_bias": False,
        }
    )
    module = layer.build([(1, 3, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.tensor([[[[1.0, 10.0]]]]))
    x = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1)
    # [1 + 20, 2 + 30, 3 + 0]
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([21.0, 32.0, 3.0]))


def test_conv1d_same_padding_with_strides():
    # in 4, k 3, s 2: out ceil(4/2) = 2, total pad (2-1)*2 + 3 - 4 = 1, after.
    layer = spec(
        {
            "type": "Conv1D",
            "filters": 1,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "use_bias": False,
        }
    )
    module = layer.build([(4, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.tensor([[[1.0, 10.0, 100.0]]]))
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    # windows [1 2 3] -> 1 + 20 + 300 = 321; [3 4 pad] -> 3 + 40 + 0 = 43
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([321.0, 43.0]))


def test_causal_conv1d_sees_only_the_past():
    # k 2, dilation 2: left pad (2-1)*2 = 2, out[t] = 1*x[t-2] + 10*x[t].
    layer = spec(
        {
            "type": "Conv1D",
            "filters": 1,
            "kernel_size": 2,
            "dilation_rate": 2,
            "padding": "causal",
            "use_bias": False,
        }
    )
    module = layer.build([(4, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.tensor([[[1.0, 10.0]]]))
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    # [10*1, 10*2, 1 + 10*3, 2 + 10*4]
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([10.0, 20.0, 31.0, 42.0]))


def test_depthwise_output_channel_order_is_channel_then_multiplier():
    layer = spec({"type": "DepthwiseConv2D", "kernel_size": 1, "depth_multiplier": 2})
    module = layer.build([(1, 1, 2)])
    with torch.no_grad():
        module.depthwise_kernel.copy_(torch.tensor([2.0, 3.0, 5.0, 7.0]).reshape(4, 1, 1, 1))
        module.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))
    x = torch.tensor([1.0, 10.0]).reshape(1, 1, 1, 2)
    # channel 0 (1.0) -> [1*2, 1*3]; channel 1 (10.0) -> [10*5, 10*7 + 1]
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([2.0, 3.0, 50.0, 71.0]))


def test_separable_is_depthwise_then_pointwise():
    layer = spec({"type": "SeparableConv2D", "filters": 1, "kernel_size": 1})
    module = layer.build([(1, 1, 2)])
    with torch.no_grad():
        module.depthwise_kernel.copy_(torch.tensor([2.0, 3.0]).reshape(2, 1, 1, 1))
        module.pointwise_kernel.copy_(torch.tensor([10.0, 100.0]).reshape(1, 2, 1, 1))
        module.bias.fill_(1.0)
    x = torch.tensor([1.0, 2.0]).reshape(1, 1, 1, 2)
    # depthwise [1*2, 2*3] = [2, 6]; pointwise 2*10 + 6*100 + 1 = 621
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([621.0]))


@pytest.mark.parametrize(
    "padding,kernel,strides,size,output_padding",
    [
        ("same", 3, 2, 6, None),  # TF pads (0, 1): odd pixel at the end
        ("same", 4, 2, 6, None),  # pads (1, 1)
        ("same", 5, 2, 8, None),  # pads (1, 2)
        ("same", 2, 3, 9, None),  # kernel < stride: no pad, transposed output extended
        ("valid", 3, 2, 5, None),
        ("valid", 1, 3, 9, None),
        ("same", 3, 2, 5, 0),  # pads (1, 1); (3-1)*2 + 3 - 2*1 + 0 = 5
        ("valid", 3, 2, 6, 1),  # (2-1)*2 + 3 + 1 = 6
    ],
)
def test_conv2d_transpose_is_the_adjoint_of_the_tf_padded_conv(
    padding, kernel, strides, size, output_padding
):
    # A transposed conv is the adjoint of the forward conv with the same kernel and padding:
    # <conv(x), y> == <x, conv_transpose(y)> for every x, y. This pins TF's crop (the odd
    # pixel of "same" at the bottom/right) that torch's symmetric padding= cannot express.
    forward = spec(
        {
            "type": "Conv2D",
            "filters": 3,
            "kernel_size": kernel,
            "strides": strides,
            "padding": padding,
            "use_bias": False,
        }
    ).build([(size, size, 2)])
    x = torch.randn(2, size, size, 2)
    y_shape = run(forward, x).shape
    transposed_spec = spec(
        {
            "type": "Conv2DTranspose",
            "filters": 2,
            "kernel_size": kernel,
            "strides": strides,
            "padding": padding,
            "use_bias": False,
            "output_padding": output_padding,
        }
    )
    transposed = transposed_spec.build([tuple(y_shape[1:])])
    assert transposed_spec.output_shape([tuple(y_shape[1:])]) == (size, size, 2)
    with torch.no_grad():
        transposed.kernel.copy_(forward.kernel)  # (C_out of conv, C_in of conv, kh, kw)
    y = torch.randn(y_shape)
    back = run(transposed, y)
    assert back.shape == x.shape
    left = (run(forward, x) * y).sum()
    right = (x * back).sum()
    torch.testing.assert_close(left, right, rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_same_k3_s2_by_hand():
    # 1-D view (1 x 2 input, kernel 1 x 3, stride 2): full output (n-1)*s + k = 5 pixels:
    # x0*[1 2 3] at 0..2 and x1*[1 2 3] at 2..4 -> [1, 2, 3+10, 20, 30] for x = [1, 10].
    # Keras same keeps n*s = 4 pixels; total crop 5 - 4 = 1, TF crops it at the end.
    layer = spec(
        {
            "type": "Conv2DTranspose",
            "filters": 1,
            "kernel_size": [1, 3],
            "strides": [1, 2],
            "padding": "same",
            "use_bias": False,
        }
    )
    module = layer.build([(1, 2, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3))
    x = torch.tensor([1.0, 10.0]).reshape(1, 1, 2, 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor([1.0, 2.0, 13.0, 20.0]))


@pytest.mark.parametrize(
    "kernel,strides,output_padding,want",
    [
        # x = [1, 10], kernel [1 2 3], stride 2: full output [1, 2, 13, 20, 30]. Keras keeps
        # (n-1)*s + k%2 + op = 4 pixels; it pads the dilated input by k + k%2 - 2 + op = 3,
        # the larger half (2 = k-1) before, so it cuts (k-1) - 2 = 0 pixels before.
        (3, 2, 1, [1.0, 2.0, 13.0, 20.0]),
        # kernel [1 2 3 4]: full [1, 2, 13, 24, 30, 40]; keeps 2 + 0 + 1 = 3; pad 3, before 2,
        # so it cuts (4-1) - 2 = 1 before.
        (4, 2, 1, [2.0, 13.0, 24.0]),
        # kernel [1 2 3], stride 3: full [1, 2, 3, 10, 20, 30]; keeps 3 + 1 + 2 = 6; pad 4,
        # before 2: nothing cut.
        (3, 3, 2, [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]),
    ],
)
def test_conv2d_transpose_same_with_output_padding_keeps_keras_window(
    kernel, strides, output_padding, want
):
    # Issue 21's reproducers: the shape was right but the content was a pixel off.
    layer = spec(
        {
            "type": "Conv2DTranspose",
            "filters": 1,
            "kernel_size": [1, kernel],
            "strides": [1, strides],
            "padding": "same",
            "output_padding": [0, output_padding],
            "use_bias": False,
        }
    )
    module = layer.build([(1, 2, 1)])
    with torch.no_grad():
        module.kernel.copy_(torch.arange(1.0, kernel + 1).reshape(1, 1, 1, kernel))
    x = torch.tensor([1.0, 10.0]).reshape(1, 1, 2, 1)
    assert layer.output_shape([(1, 2, 1)]) == (1, len(want), 1)
    torch.testing.assert_close(run(module, x).flatten(), torch.tensor(want))


# ---- initializers, regularizers ----


def test_conv_kernel_fans_are_keras():
    # glorot_uniform limit sqrt(6 / (fan_in + fan_out)), fans k*k*C and k*k*F.
    layer = spec({"type": "Conv2D", "filters": 32, "kernel_size": 3})
    module = layer.build([(8, 8, 16)])
    limit = (6 / (9 * 16 + 9 * 32)) ** 0.5
    assert module.kernel.abs().max().item() <= limit
    assert module.kernel.abs().max().item() > 0.95 * limit
    assert module.bias.abs().sum().item() == 0


def test_transpose_fan_in_counts_filters():
    # Keras' transposed kernel is (kh, kw, F, C): he_uniform limit sqrt(6 / fan_in), fan_in 9*F.
    layer = spec(
        {
            "type": "Conv2DTranspose",
            "filters": 64,
            "kernel_size": 3,
            "kernel_initializer": "he_uniform",
        }
    )
    module = layer.build([(4, 4, 2)])
    limit = (6 / (9 * 64)) ** 0.5
    assert limit * 0.95 < module.kernel.abs().max().item() <= limit


def test_depthwise_and_pointwise_fans():
    # depthwise (kh, kw, C, dm): fan_in 9*C; pointwise (1, 1, C*dm, F): fan_in C*dm.
    layer = spec(
        {
            "type": "SeparableConv2D",
            "filters": 8,
            "kernel_size": 3,
            "depth_multiplier": 4,
            "depthwise_initializer": "he_uniform",
            "pointwise_initializer": "he_uniform",
        }
    )
    module = layer.build([(5, 5, 16)])
    depthwise, pointwise = (6 / (9 * 16)) ** 0.5, (6 / (16 * 4)) ** 0.5
    assert depthwise * 0.9 < module.depthwise_kernel.abs().max().item() <= depthwise
    assert pointwise * 0.9 < module.pointwise_kernel.abs().max().item() <= pointwise


def test_regularized_weight_names():
    separable = spec(
        {
            "type": "SeparableConv2D",
            "filters": 2,
            "kernel_size": 3,
            "depthwise_regularizer": {"l2": 0.1},
            "pointwise_regularizer": "l1",
        }
    )
    assert set(separable.regularized_weights()) == {"depthwise_kernel", "pointwise_kernel"}
    depthwise = spec(
        {
            "type": "DepthwiseConv2D",
            "kernel_size": 3,
            "depthwise_regularizer": "l2",
            "bias_regularizer": "l2",
        }
    )
    assert set(depthwise.regularized_weights()) == {"depthwise_kernel", "bias"}
    conv = spec({"type": "Conv2D", "filters": 2, "kernel_size": 3, "kernel_regularizer": "l2"})
    module = conv.build([(5, 5, 1)])
    for name in conv.regularized_weights():
        assert isinstance(getattr(module, name), torch.nn.Parameter)


# ---- validation and shape errors ----


@pytest.mark.parametrize(
    "layer,message",
    [
        ({"type": "Conv2D", "filters": 2, "kernel_size": [3, 3, 3]}, "one per spatial"),
        (
            {"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
            "cannot be combined",
        ),
        ({"type": "Conv2D", "filters": 3, "kernel_size": 3, "groups": 2}, "divisible by groups"),
        ({"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "causal"}, "padding"),
        ({"type": "Conv2D", "filters": 0, "kernel_size": 3}, "greater than 0"),
        (
            {
                "type": "Conv2DTranspose",
                "filters": 2,
                "kernel_size": 3,
                "strides": 2,
                "output_padding": 2,
            },
            "smaller than strides",
        ),
    ],
)
def test_invalid_arguments_are_rejected(layer, message):
    with pytest.raises(ValidationError, match=message):
        spec(layer)


def test_shape_errors_name_the_layer_and_the_shape():
    conv = spec({"type": "Conv2D", "filters": 2, "kernel_size": 5})
    with pytest.raises(ShapeError, match=r"Conv2D.*\(None, 3, 3, 1\)"):
        conv.output_shape([(3, 3, 1)])
    with pytest.raises(ShapeError, match=r"Conv2D expects"):
        conv.output_shape([(8, 8)])
    grouped = spec({"type": "Conv1D", "filters": 4, "kernel_size": 3, "groups": 2})
    with pytest.raises(ShapeError, match=r"Conv1D.*groups.*\(None, 8, 3\)"):
        grouped.output_shape([(8, 3)])


def test_forward_exports():
    # No Python branching on tensor values: torch.export captures the TF padding as ops.
    layer = spec(
        {"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}
    )
    module = layer.build([(6, 6, 3)]).eval()
    x = torch.randn(1, 6, 6, 3)
    exported = torch.export.export(module, (x,))
    torch.testing.assert_close(exported.module()(x), module(x))
