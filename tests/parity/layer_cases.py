"""The parity cases of test_layer_parity.py: kcli layer specs and activations, as plain data.

A layer case is a kcli spec dict, the per-sample input shapes (batch excluded, as kcli counts
them) and how to run it. The Keras layer is made from the same dict by the test module (same
argument names and values), so a case also checks that kcli spells each argument as Keras does.
Nothing here imports torch or Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerCase:
    id: str
    spec: dict[str, Any]
    shapes: tuple[tuple[int, ...], ...]  # one per input, batch excluded
    training: bool = False
    # Embedding: the inputs are integer ids in [0, ids), not floats (no input gradient).
    ids: int | None = None
    # Values written over the first entries of every input: ties at a ReLU threshold, which
    # random floats never hit, decide which side of `>` versus `>=` a function is on.
    exact: tuple[float, ...] = ()
    # Compare the non-trainable weights (BatchNormalization's moving statistics) after the call.
    check_state: bool = False
    # The Keras layer to compare with, where Keras' own layer of this type refuses the
    # arguments but another computes what kcli means by them; default: `spec` itself.
    keras_spec: dict[str, Any] | None = None
    # Why Keras' torch backend itself is wrong here (it differs from Keras on JAX and
    # TensorFlow): the case is an expected failure, strict so a fixed Keras is noticed.
    keras_bug: str | None = None
    # Spec keys Keras takes when the layer is called, not when it is made (use_causal_mask).
    call_args: tuple[str, ...] = ()
    # Keras' layer takes its inputs as positional arguments (MultiHeadAttention's query, value,
    # key), not as one list; a single input is given as both query and value (self-attention).
    positional: bool = False

    @property
    def type(self) -> str:
        return self.spec["type"]


def case(id: str, spec: dict[str, Any], *shapes: tuple[int, ...], **options: Any) -> LayerCase:
    return LayerCase(id, spec, tuple(shapes), **options)


def _conv_transpose(id: str, **args: Any) -> LayerCase:
    spec = {"type": "Conv2DTranspose", "filters": 2, **args}
    return case(id, spec, (4, 5, 3))


def _rnn(kind: str, id: str, **args: Any) -> LayerCase:
    return case(f"{kind}-{id}", {"type": kind, "units": 3, **args}, (5, 4))


def _hw(height: int, width: int) -> dict[str, int]:
    return {"height": height, "width": width}


def _bidirectional(id: str, layer: dict[str, Any], keras_spec=None, **args: Any) -> LayerCase:
    spec = {"type": "Bidirectional", "layer": {"units": 3, **layer}, **args}
    return case(f"Bidirectional-{id}", spec, (5, 4), keras_spec=keras_spec)


def _mha(id: str, *shapes: tuple[int, ...], **args: Any) -> LayerCase:
    spec = {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3, **args}
    calls = ("use_causal_mask",) if "use_causal_mask" in args else ()
    return case(f"MultiHeadAttention-{id}", spec, *shapes, call_args=calls, positional=True)


def _attention(kind: str, id: str, *shapes: tuple[int, ...], **args: Any) -> LayerCase:
    calls = ("use_causal_mask",) if "use_causal_mask" in args else ()
    return case(f"{kind}-{id}", {"type": kind, **args}, *shapes, call_args=calls)


def _attention_cases() -> list[LayerCase]:
    return [
        _mha("self", (5, 4)),
        _mha("query-value", (3, 4), (5, 6)),
        _mha("query-value-key", (3, 4), (5, 6), (5, 2)),
        _mha("value-dim", (5, 4), value_dim=5),
        _mha("causal", (5, 4), use_causal_mask=True),
        _mha("causal-cross", (3, 4), (5, 6), use_causal_mask=True),
        _mha("output-shape", (5, 4), (5, 4), output_shape=7),
        _mha("output-shape-2d", (5, 4), output_shape=[2, 3], value_dim=2),
        _mha("nobias-heads", (5, 4), (6, 4), num_heads=3, key_dim=2, use_bias=False),
        _mha("dropout-inference", (5, 4), dropout=0.3),
        _mha("attention-axes", (5, 4), attention_axes=[1]),
        _attention("Attention", "dot", (3, 4), (5, 4)),
        _attention("Attention", "key", (3, 4), (5, 6), (5, 4)),
        _attention("Attention", "scale", (3, 4), (5, 4), use_scale=True),
        _attention("Attention", "causal", (5, 4), (5, 4), use_causal_mask=True),
        _attention("Attention", "concat", (3, 4), (5, 6), (5, 4), score_mode="concat"),
        _attention(
            "Attention",
            "concat-scale-causal",
            (4, 3),
            (6, 3),
            score_mode="concat",
            use_scale=True,
            use_causal_mask=True,
        ),
        _attention("Attention", "dropout-inference", (3, 4), (5, 4), dropout=0.5),
        _attention("AdditiveAttention", "scale", (3, 4), (5, 4)),
        _attention("AdditiveAttention", "key", (3, 4), (5, 6), (5, 4)),
        _attention("AdditiveAttention", "noscale", (3, 4), (5, 4), use_scale=False),
        _attention("AdditiveAttention", "causal", (5, 4), (5, 4), use_causal_mask=True),
    ]


def _depthwise_1d_cases() -> list[LayerCase]:
    def conv(kind: str, id: str, **args: Any) -> LayerCase:
        return case(f"{kind}-{id}", {"type": kind, **args}, (8, 3))

    return [
        conv("DepthwiseConv1D", "valid", kernel_size=3),
        conv(
            "DepthwiseConv1D",
            "same-s2-dm2",
            kernel_size=3,
            strides=2,
            padding="same",
            depth_multiplier=2,
        ),
        conv(
            "DepthwiseConv1D",
            "d2-nobias-tanh",
            kernel_size=2,
            dilation_rate=2,
            use_bias=False,
            activation="tanh",
        ),
        conv("SeparableConv1D", "valid", filters=4, kernel_size=3),
        conv(
            "SeparableConv1D",
            "same-s2-dm2",
            filters=2,
            kernel_size=4,
            strides=2,
            padding="same",
            depth_multiplier=2,
        ),
        conv(
            "SeparableConv1D",
            "d2-nobias-elu",
            filters=3,
            kernel_size=2,
            dilation_rate=2,
            use_bias=False,
            activation="elu",
        ),
    ]


def _group_normalization_cases() -> list[LayerCase]:
    def group(id: str, shape: tuple[int, ...], **args: Any) -> LayerCase:
        return case(f"GroupNormalization-{id}", {"type": "GroupNormalization", **args}, shape)

    return [
        group("2-of-4", (3, 4), groups=2),
        group("instance-image", (3, 3, 4), groups=-1),
        group("axis1", (4, 3), groups=2, axis=1),
        group("one-group-noscale", (2, 2, 6), groups=1, scale=False),
        group("3-of-6-nocenter-eps", (2, 2, 6), groups=3, center=False, epsilon=0.1),
    ]


def _time_distributed(id: str, layer: dict[str, Any], shape, **options: Any) -> LayerCase:
    spec = {"type": "TimeDistributed", "layer": layer}
    return case(f"TimeDistributed-{id}", spec, shape, **options)


def _spectral(id: str, layer: dict[str, Any], shape, **options: Any) -> LayerCase:
    args = {k: options.pop(k) for k in ("power_iterations",) if k in options}
    spec = {"type": "SpectralNormalization", "layer": layer, **args}
    # In training the kernel is divided by its norm and vector_u moves: both compared after.
    # (Embedding: Keras casts the output to the input's dtype, integer ids: its test is apart.)
    return case(f"SpectralNormalization-{id}", spec, shape, **options)


def _wrapper_cases() -> list[LayerCase]:
    dense = {"type": "Dense", "units": 3}
    training = {"training": True, "check_state": True}
    return [
        _time_distributed("Dense-softmax", {**dense, "activation": "softmax"}, (5, 4)),
        # a softmax over the step's axis 1 is the output's axis 2 (axis 1 is time)
        _time_distributed(
            "Dense-softmax-axis1",
            {**dense, "activation": {"type": "softmax", "axis": 1}},
            (5, 4),
        ),
        _time_distributed("Dense-rank3", {"type": "Dense", "units": 2}, (4, 3, 5)),
        _time_distributed(
            "Conv2D", {"type": "Conv2D", "filters": 2, "kernel_size": 2}, (3, 4, 4, 2)
        ),
        _time_distributed("Flatten", {"type": "Flatten"}, (3, 2, 4)),
        _time_distributed("LSTM", {"type": "LSTM", "units": 3}, (3, 5, 4)),
        _time_distributed("Dropout-inference", {"type": "Dropout", "rate": 0.5}, (3, 4)),
        # Keras calls the layer once per step: each step's own batch statistics and update
        _time_distributed(
            "BatchNormalization-training", {"type": "BatchNormalization"}, (4, 3), **training
        ),
        _time_distributed("BatchNormalization-inference", {"type": "BatchNormalization"}, (4, 3)),
        _spectral("Dense-inference", dense, (4,)),
        _spectral("Dense-training", {**dense, "activation": "relu"}, (4,), **training),
        _spectral(
            "Conv2D-3-iterations",
            {"type": "Conv2D", "filters": 3, "kernel_size": 2},
            (4, 4, 2),
            power_iterations=3,
            **training,
        ),
        _spectral(
            "Conv1DTranspose",
            {"type": "Conv1DTranspose", "filters": 2, "kernel_size": 3, "strides": 2},
            (4, 3),
            **training,
        ),
        _spectral(
            "DepthwiseConv2D",
            {"type": "DepthwiseConv2D", "kernel_size": 2, "depth_multiplier": 2},
            (3, 3, 2),
            **training,
        ),
    ]


def _conv_lstm(kind: str, id: str, shape, **args: Any) -> LayerCase:
    return case(f"{kind}-{id}", {"type": kind, "filters": 2, **args}, shape)


def _conv_lstm_cases() -> list[LayerCase]:
    frames_1d, frames_2d = (4, 6, 2), (3, 4, 5, 2)  # (time, *spatial, channels)
    return [
        _conv_lstm("ConvLSTM1D", "valid", frames_1d, kernel_size=3),
        # an even kernel: the recurrent "same" convolution pads unevenly (the odd pixel after)
        _conv_lstm(
            "ConvLSTM1D",
            "same-k2-sequences-backwards",
            frames_1d,
            kernel_size=2,
            padding="same",
            return_sequences=True,
            go_backwards=True,
        ),
        _conv_lstm("ConvLSTM1D", "same-s2", frames_1d, kernel_size=3, strides=2, padding="same"),
        _conv_lstm(
            "ConvLSTM1D",
            "d2-sequences",
            frames_1d,
            kernel_size=2,
            dilation_rate=2,
            return_sequences=True,
        ),
        # Keras applies the activation channels-last: a softmax over the filters
        _conv_lstm("ConvLSTM1D", "softmax", frames_1d, kernel_size=3, activation="softmax"),
        _conv_lstm(
            "ConvLSTM1D",
            "dropout-inference",
            frames_1d,
            kernel_size=3,
            dropout=0.3,
            recurrent_dropout=0.3,
        ),
        _conv_lstm("ConvLSTM2D", "valid", frames_2d, kernel_size=2),
        _conv_lstm(
            "ConvLSTM2D",
            "same-s2-sequences",
            frames_2d,
            kernel_size=[3, 2],
            strides=2,
            padding="same",
            return_sequences=True,
        ),
        _conv_lstm(
            "ConvLSTM2D",
            "nobias-relu-hard-sigmoid",
            frames_2d,
            kernel_size=3,
            padding="same",
            use_bias=False,
            activation="relu",
            recurrent_activation="hard_sigmoid",
        ),
        _conv_lstm(
            "ConvLSTM2D", "no-forget-bias", frames_2d, kernel_size=2, unit_forget_bias=False
        ),
        _conv_lstm("ConvLSTM3D", "same", (3, 3, 2, 3, 2), kernel_size=2, padding="same"),
    ]


AVERAGE_SAME_BUG = (
    "Keras' torch backend pads an average pool's uneven 'same' padding by replicating the edge "
    "pixels and counts them (keras/src/backend/torch/nn.py _apply_same_padding); on JAX and "
    "TensorFlow, as in kcli, a window averages its real pixels only (checked apart, in "
    "test_average_pooling_same_averages_real_pixels)"
)


LAYER_CASES: list[LayerCase] = [
    # ---- core
    case("Dense", {"type": "Dense", "units": 4}, (5,)),
    case(
        "Dense-nobias-tanh",
        {"type": "Dense", "units": 3, "use_bias": False, "activation": "tanh"},
        (5,),
    ),
    case("Dense-rank3-softmax", {"type": "Dense", "units": 4, "activation": "softmax"}, (3, 5)),
    # ---- reshaping
    case("Flatten", {"type": "Flatten"}, (2, 3, 4)),
    case("Reshape", {"type": "Reshape", "target_shape": [4, 6]}, (2, 3, 4)),
    case("Reshape-free", {"type": "Reshape", "target_shape": [-1, 2]}, (2, 3, 4)),
    case("Permute-2d", {"type": "Permute", "dims": [2, 1]}, (3, 4)),
    case("Permute-3d", {"type": "Permute", "dims": [3, 1, 2]}, (2, 3, 4)),
    case("RepeatVector", {"type": "RepeatVector", "n": 3}, (4,)),
    case("ZeroPadding2D-int", {"type": "ZeroPadding2D", "padding": 1}, (3, 4, 2)),
    case("ZeroPadding2D-pair", {"type": "ZeroPadding2D", "padding": [1, 2]}, (3, 4, 2)),
    case("ZeroPadding2D-sides", {"type": "ZeroPadding2D", "padding": [[1, 0], [2, 3]]}, (3, 4, 2)),
    # ---- Identity, Dot, UnitNormalization, GaussianDropout (inference: the identity)
    case("Identity", {"type": "Identity"}, (3, 4)),
    case("Dot-vectors", {"type": "Dot", "axes": 1}, (5,), (5,)),
    case("Dot-matrices", {"type": "Dot", "axes": 2}, (3, 4), (5, 4)),
    case("Dot-pair", {"type": "Dot", "axes": [1, 2]}, (3, 4), (2, 3)),
    case("Dot-negative-normalize", {"type": "Dot", "axes": -1, "normalize": True}, (3, 4), (5, 4)),
    case("UnitNormalization", {"type": "UnitNormalization"}, (3, 4)),
    case("UnitNormalization-axes", {"type": "UnitNormalization", "axis": [1, 2]}, (3, 4)),
    case("GaussianDropout-inference", {"type": "GaussianDropout", "rate": 0.4}, (3, 4)),
    # its output is its input; the penalty it adds is tests/model/layers/test_dot_and_friends'
    case("ActivityRegularization", {"type": "ActivityRegularization", "l1": 0.1}, (3, 4)),
    # ---- transposed convolutions in 1-D and 3-D (Conv2DTranspose's rules per axis)
    case(
        "Conv1DTranspose-valid",
        {"type": "Conv1DTranspose", "filters": 3, "kernel_size": 3, "strides": 2},
        (5, 2),
    ),
    case(
        "Conv1DTranspose-same-op",
        {
            "type": "Conv1DTranspose",
            "filters": 2,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "output_padding": 1,
        },
        (5, 3),
    ),
    case(
        "Conv1DTranspose-same-k4",
        {
            "type": "Conv1DTranspose",
            "filters": 2,
            "kernel_size": 4,
            "strides": 3,
            "padding": "same",
        },
        (4, 2),
    ),
    case(
        "Conv3DTranspose-valid",
        {"type": "Conv3DTranspose", "filters": 2, "kernel_size": 2, "strides": 2},
        (2, 3, 2, 2),
    ),
    case(
        "Conv3DTranspose-same",
        {
            "type": "Conv3DTranspose",
            "filters": 2,
            "kernel_size": [3, 2, 3],
            "strides": [2, 1, 2],
            "padding": "same",
        },
        (2, 3, 3, 2),
    ),
    # ---- 3-D: convolution and pooling over (depth, height, width, channels)
    case("Conv3D-valid", {"type": "Conv3D", "filters": 3, "kernel_size": 2}, (3, 4, 4, 2)),
    case(
        "Conv3D-same-strides",
        {"type": "Conv3D", "filters": 2, "kernel_size": [3, 2, 3], "strides": 2, "padding": "same"},
        (5, 4, 5, 2),
    ),
    case(
        "Conv3D-dilated-groups",
        {"type": "Conv3D", "filters": 4, "kernel_size": 2, "dilation_rate": 2, "groups": 2},
        (5, 5, 5, 4),
    ),
    case("MaxPooling3D-default", {"type": "MaxPooling3D"}, (4, 4, 5, 2)),
    case(
        "MaxPooling3D-same",
        {"type": "MaxPooling3D", "pool_size": 3, "strides": 2, "padding": "same"},
        (4, 5, 4, 2),
    ),
    case("AveragePooling3D-valid", {"type": "AveragePooling3D", "pool_size": 2}, (4, 4, 5, 2)),
    case("GlobalMaxPooling3D", {"type": "GlobalMaxPooling3D"}, (3, 2, 4, 2)),
    case(
        "GlobalAveragePooling3D-keepdims",
        {"type": "GlobalAveragePooling3D", "keepdims": True},
        (3, 2, 4, 2),
    ),
    case("SpatialDropout3D-inference", {"type": "SpatialDropout3D", "rate": 0.5}, (2, 3, 2, 2)),
    # ---- edges: cropping, zero padding and repeats in 1-D, 2-D and 3-D (Keras' argument forms)
    case("Cropping1D-default", {"type": "Cropping1D"}, (5, 2)),
    case("Cropping1D-pair", {"type": "Cropping1D", "cropping": [2, 0]}, (5, 2)),
    case("Cropping2D-int", {"type": "Cropping2D", "cropping": 1}, (4, 5, 2)),
    case("Cropping2D-sides", {"type": "Cropping2D", "cropping": [[1, 0], [0, 2]]}, (4, 5, 2)),
    case("Cropping3D-default", {"type": "Cropping3D"}, (4, 3, 5, 2)),
    case("Cropping3D-axes", {"type": "Cropping3D", "cropping": [0, 1, 2]}, (4, 3, 5, 2)),
    case("ZeroPadding1D-default", {"type": "ZeroPadding1D"}, (4, 2)),
    case("ZeroPadding1D-pair", {"type": "ZeroPadding1D", "padding": [0, 2]}, (4, 2)),
    case("ZeroPadding3D-default", {"type": "ZeroPadding3D"}, (2, 3, 2, 2)),
    case(
        "ZeroPadding3D-sides",
        {"type": "ZeroPadding3D", "padding": [[1, 0], [0, 2], [1, 1]]},
        (2, 3, 2, 2),
    ),
    case("UpSampling1D-default", {"type": "UpSampling1D"}, (4, 2)),
    case("UpSampling1D-3", {"type": "UpSampling1D", "size": 3}, (4, 2)),
    case("UpSampling3D-default", {"type": "UpSampling3D"}, (2, 3, 2, 2)),
    case("UpSampling3D-axes", {"type": "UpSampling3D", "size": [1, 2, 3]}, (2, 3, 2, 2)),
    case("UpSampling2D-nearest", {"type": "UpSampling2D"}, (3, 4, 2)),
    case("UpSampling2D-nearest-2x3", {"type": "UpSampling2D", "size": [2, 3]}, (3, 4, 2)),
    case("UpSampling2D-bilinear", {"type": "UpSampling2D", "interpolation": "bilinear"}, (3, 4, 2)),
    case(
        "UpSampling2D-bilinear-3x2",
        {"type": "UpSampling2D", "size": [3, 2], "interpolation": "bilinear"},
        (3, 4, 2),
    ),
    # ---- regularization: random in training, so compared in inference (the identity); the
    # training-mode structure is checked apart, in test_noise_structure_in_training.
    case("Dropout", {"type": "Dropout", "rate": 0.5}, (4, 3)),
    case(
        "Dropout-noise-shape", {"type": "Dropout", "rate": 0.3, "noise_shape": [None, 1, 3]}, (4, 3)
    ),
    case("SpatialDropout1D", {"type": "SpatialDropout1D", "rate": 0.4}, (4, 3)),
    case("SpatialDropout2D", {"type": "SpatialDropout2D", "rate": 0.4}, (3, 3, 2)),
    case("GaussianNoise", {"type": "GaussianNoise", "stddev": 0.5}, (4, 3)),
    case("AlphaDropout", {"type": "AlphaDropout", "rate": 0.3}, (4, 3)),
    case(
        "AlphaDropout-noise-shape",
        {"type": "AlphaDropout", "rate": 0.3, "noise_shape": [None, 1, 3]},
        (4, 3),
    ),
    # ---- preprocessing: deterministic, so training and inference compute the same
    case("Rescaling", {"type": "Rescaling", "scale": 0.5, "offset": -1.0}, (4, 5, 3)),
    case("Rescaling-channels", {"type": "Rescaling", "scale": [0.5, 2.0, -1.0]}, (4, 5, 3)),
    case("Resizing-down", {"type": "Resizing", "height": 3, "width": 4}, (5, 7, 2)),
    case(
        "Resizing-nearest-up",
        {"type": "Resizing", **_hw(7, 9), "interpolation": "nearest"},
        (4, 5, 2),
    ),
    case(
        "Resizing-bicubic", {"type": "Resizing", **_hw(6, 3), "interpolation": "bicubic"}, (4, 7, 2)
    ),
    case(
        "Resizing-bicubic-aa",
        {"type": "Resizing", **_hw(3, 3), "interpolation": "bicubic", "antialias": True},
        (7, 8, 2),
    ),
    case("Resizing-antialias", {"type": "Resizing", **_hw(3, 2), "antialias": True}, (7, 6, 2)),
    case(
        "Resizing-crop", {"type": "Resizing", **_hw(4, 3), "crop_to_aspect_ratio": True}, (5, 8, 2)
    ),
    case(
        "Resizing-pad",
        {"type": "Resizing", **_hw(4, 6), "pad_to_aspect_ratio": True, "fill_value": 0.5},
        (6, 5, 2),
    ),
    case("CenterCrop", {"type": "CenterCrop", **_hw(3, 4)}, (6, 7, 2)),
    case("CenterCrop-smaller", {"type": "CenterCrop", **_hw(5, 9)}, (6, 7, 2)),  # resized
    case("CategoryEncoding-multi", {"type": "CategoryEncoding", "num_tokens": 6}, (4,), ids=6),
    case(
        "CategoryEncoding-one-hot",
        {"type": "CategoryEncoding", "num_tokens": 5, "output_mode": "one_hot"},
        (3,),
        ids=5,
    ),
    case(
        "CategoryEncoding-one-hot-1",
        {"type": "CategoryEncoding", "num_tokens": 4, "output_mode": "one_hot"},
        (1,),
        ids=4,
    ),
    case(
        "CategoryEncoding-count-2d",
        {"type": "CategoryEncoding", "num_tokens": 3, "output_mode": "count"},
        (5, 2),
        ids=3,
    ),
    *(
        case(
            f"Discretization-{mode}",
            {"type": "Discretization", "bin_boundaries": [-0.5, 0.0, 0.5], "output_mode": mode},
            (6,),
            exact=(-0.5, 0.0, 0.5),
        )
        for mode in ("int", "one_hot", "multi_hot", "count")
    ),
    # Normalization with its statistics given (constants, no weights); the adapted statistics
    # are compared with Keras' adapt in tests/parity/test_adapt_parity.py.
    case(
        "Normalization-given",
        {"type": "Normalization", "mean": [1.0, -2.0, 0.5], "variance": [4.0, 0.25, 2.0]},
        (5, 3),
    ),
    case(
        "Normalization-given-axes-invert",
        {
            "type": "Normalization",
            "axis": [1, 2],
            "mean": [1.0, 2.0],
            "variance": [2.0, 3.0],
            "invert": True,
        },
        (4, 2),
    ),
    # ---- augmentation: random in training (tests/parity/test_augmentation_parity.py gives both
    # sides the same draws there), so compared in inference: the identity, but for RandomCrop
    # (below)
    case("RandomFlip", {"type": "RandomFlip"}, (4, 5, 2)),
    case("RandomRotation", {"type": "RandomRotation", "factor": 0.2}, (4, 5, 2)),
    case(
        "RandomTranslation",
        {"type": "RandomTranslation", "height_factor": 0.2, "width_factor": 0.3},
        (4, 5, 2),
    ),
    case("RandomZoom", {"type": "RandomZoom", "height_factor": 0.2}, (4, 5, 2)),
    case("RandomContrast", {"type": "RandomContrast", "factor": 0.3}, (4, 5, 2)),
    case("RandomBrightness", {"type": "RandomBrightness", "factor": 0.3}, (4, 5, 2)),
    # Keras 3.15's RandomCrop returns its input unchanged in inference (not its declared
    # (height, width) shape); its docstring, tf.keras and kcli take the largest centered window
    # of the target's aspect ratio and resize it: Keras' Resizing with crop_to_aspect_ratio.
    case(
        "RandomCrop-inference",
        {"type": "RandomCrop", **_hw(3, 4)},
        (6, 5, 2),
        keras_spec={"type": "Resizing", **_hw(3, 4), "crop_to_aspect_ratio": True},
    ),
    # ---- normalization
    case("BatchNormalization-inference", {"type": "BatchNormalization"}, (4, 3)),
    case(
        "BatchNormalization-training",
        {"type": "BatchNormalization"},
        (4, 3),
        training=True,
        check_state=True,
    ),
    case(
        "BatchNormalization-axis1-training",
        {"type": "BatchNormalization", "axis": 1, "momentum": 0.9, "epsilon": 0.01},
        (4, 3),
        training=True,
        check_state=True,
    ),
    case(
        "BatchNormalization-image-training",
        {"type": "BatchNormalization", "center": False},
        (3, 3, 2),
        training=True,
        check_state=True,
    ),
    case(
        "BatchNormalization-noscale-inference",
        {"type": "BatchNormalization", "scale": False},
        (3, 3, 2),
    ),
    case(  # Keras: a frozen BatchNormalization uses its moving statistics even in training
        "BatchNormalization-frozen-training",
        {"type": "BatchNormalization", "trainable": False},
        (4, 3),
        training=True,
        check_state=True,
    ),
    case("LayerNormalization", {"type": "LayerNormalization"}, (4, 3)),
    case("LayerNormalization-axes12", {"type": "LayerNormalization", "axis": [1, 2]}, (4, 3)),
    # Axes that are not the trailing ones (kcli's unfused path). Not a single non-trailing
    # axis: Keras' torch backend hands it to F.layer_norm, which normalizes the last axes
    # instead and fails (keras/src/ops/nn.py _layer_normalization, is_continuous_axis).
    case(
        "LayerNormalization-axes13",
        {"type": "LayerNormalization", "axis": [1, 3], "epsilon": 0.01},
        (3, 2, 4),
    ),
    case("LayerNormalization-nocenter", {"type": "LayerNormalization", "center": False}, (3, 3, 2)),
    *_group_normalization_cases(),
    # ---- convolutions
    case("Conv1D-valid", {"type": "Conv1D", "filters": 3, "kernel_size": 3}, (7, 2)),
    case(
        "Conv1D-same-s2",
        {"type": "Conv1D", "filters": 3, "kernel_size": 4, "strides": 2, "padding": "same"},
        (7, 2),
    ),
    case(
        "Conv1D-causal-d2",
        {"type": "Conv1D", "filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
        (7, 2),
    ),
    case(
        "Conv1D-groups-relu",
        {"type": "Conv1D", "filters": 4, "kernel_size": 2, "groups": 2, "activation": "relu"},
        (6, 4),
    ),
    case("Conv2D-valid", {"type": "Conv2D", "filters": 3, "kernel_size": 3}, (5, 6, 2)),
    case(
        "Conv2D-same",
        {"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same"},
        (5, 6, 2),
    ),
    case(
        "Conv2D-same-s2-odd",
        {"type": "Conv2D", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
        (5, 5, 2),
    ),
    case(
        "Conv2D-same-s2-even",
        {"type": "Conv2D", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
        (6, 6, 2),
    ),
    case(
        "Conv2D-same-k4-s2",
        {"type": "Conv2D", "filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"},
        (5, 6, 2),
    ),
    case(
        "Conv2D-valid-s2",
        {"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": [2, 1]},
        (6, 5, 2),
    ),
    case(
        "Conv2D-same-d2",
        {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "dilation_rate": 2},
        (6, 5, 2),
    ),
    case(
        "Conv2D-valid-d2",
        {"type": "Conv2D", "filters": 2, "kernel_size": [2, 3], "dilation_rate": [2, 1]},
        (6, 5, 2),
    ),
    case(
        "Conv2D-groups-nobias",
        {"type": "Conv2D", "filters": 4, "kernel_size": 2, "groups": 2, "use_bias": False},
        (4, 4, 4),
    ),
    case(
        "Conv2D-sigmoid",
        {"type": "Conv2D", "filters": 2, "kernel_size": 1, "activation": "sigmoid"},
        (3, 3, 2),
    ),
    # Conv2DTranspose: every output-size rule (valid/same, with and without output_padding).
    _conv_transpose("Conv2DTranspose-valid-k3-s1", kernel_size=3),
    _conv_transpose("Conv2DTranspose-valid-k3-s2", kernel_size=3, strides=2),
    _conv_transpose("Conv2DTranspose-valid-k2-s3", kernel_size=2, strides=3),
    _conv_transpose("Conv2DTranspose-same-k3-s1", kernel_size=3, padding="same"),
    _conv_transpose("Conv2DTranspose-same-k3-s2", kernel_size=3, strides=2, padding="same"),
    _conv_transpose("Conv2DTranspose-same-k4-s2", kernel_size=4, strides=2, padding="same"),
    _conv_transpose("Conv2DTranspose-valid-k3-s2-op1", kernel_size=3, strides=2, output_padding=1),
    _conv_transpose("Conv2DTranspose-valid-k3-s3-op2", kernel_size=3, strides=3, output_padding=2),
    _conv_transpose(
        "Conv2DTranspose-same-k3-s2-op1", kernel_size=3, strides=2, padding="same", output_padding=1
    ),
    _conv_transpose(
        "Conv2DTranspose-same-k4-s2-op1", kernel_size=4, strides=2, padding="same", output_padding=1
    ),
    _conv_transpose(
        "Conv2DTranspose-same-k3-s3-op2", kernel_size=3, strides=3, padding="same", output_padding=2
    ),
    _conv_transpose(
        "Conv2DTranspose-same-mixed-op",
        kernel_size=[3, 2],
        strides=[2, 1],
        padding="same",
        output_padding=[1, 0],
    ),
    _conv_transpose("Conv2DTranspose-same-d2", kernel_size=3, padding="same", dilation_rate=2),
    _conv_transpose(
        "Conv2DTranspose-valid-nobias-relu",
        kernel_size=2,
        strides=2,
        use_bias=False,
        activation="relu",
    ),
    case("DepthwiseConv2D-valid", {"type": "DepthwiseConv2D", "kernel_size": 3}, (5, 5, 2)),
    case(
        "DepthwiseConv2D-same-s2-dm2",
        {
            "type": "DepthwiseConv2D",
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 2,
        },
        (5, 6, 2),
    ),
    case(
        "DepthwiseConv2D-d2-nobias",
        {"type": "DepthwiseConv2D", "kernel_size": 2, "dilation_rate": 2, "use_bias": False},
        (5, 5, 3),
    ),
    case(
        "SeparableConv2D-valid",
        {"type": "SeparableConv2D", "filters": 3, "kernel_size": 3},
        (5, 5, 2),
    ),
    case(
        "SeparableConv2D-same-s2-dm2",
        {
            "type": "SeparableConv2D",
            "filters": 3,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 2,
        },
        (5, 6, 2),
    ),
    case(
        "SeparableConv2D-nobias-elu",
        {
            "type": "SeparableConv2D",
            "filters": 2,
            "kernel_size": 2,
            "use_bias": False,
            "activation": "elu",
        },
        (4, 4, 2),
    ),
    # ---- depthwise and separable convolutions of sequences
    *_depthwise_1d_cases(),
    # ---- pooling
    case("MaxPooling1D", {"type": "MaxPooling1D"}, (7, 2)),
    case(
        "MaxPooling1D-same-p3-s2",
        {"type": "MaxPooling1D", "pool_size": 3, "strides": 2, "padding": "same"},
        (8, 2),
    ),
    case("AveragePooling1D", {"type": "AveragePooling1D", "pool_size": 3, "strides": 1}, (7, 2)),
    case(
        "AveragePooling1D-same",
        {"type": "AveragePooling1D", "pool_size": 3, "strides": 2, "padding": "same"},
        (8, 2),
        keras_bug=AVERAGE_SAME_BUG,
    ),
    case("MaxPooling2D", {"type": "MaxPooling2D"}, (5, 4, 2)),
    case(
        "MaxPooling2D-same-p3-s2",
        {"type": "MaxPooling2D", "pool_size": 3, "strides": 2, "padding": "same"},
        (6, 5, 2),
    ),
    case("MaxPooling2D-same-p2", {"type": "MaxPooling2D", "padding": "same"}, (5, 5, 2)),
    case(
        "AveragePooling2D",
        {"type": "AveragePooling2D", "pool_size": [2, 3], "strides": 1},
        (4, 5, 2),
    ),
    case(  # symmetric padding (1 on each side): Keras' torch backend averages real pixels
        "AveragePooling2D-same-symmetric",
        {"type": "AveragePooling2D", "pool_size": 3, "strides": 1, "padding": "same"},
        (4, 5, 2),
    ),
    case(  # 5 = 3 + 2: the last window has 2 real pixels and 1 of padding
        "AveragePooling2D-same",
        {"type": "AveragePooling2D", "pool_size": 3, "padding": "same"},
        (5, 5, 2),
        keras_bug=AVERAGE_SAME_BUG,
    ),
    case(
        "AveragePooling2D-same-p3-s2",
        {"type": "AveragePooling2D", "pool_size": 3, "strides": 2, "padding": "same"},
        (6, 5, 2),
        keras_bug=AVERAGE_SAME_BUG,
    ),
    case("GlobalMaxPooling1D", {"type": "GlobalMaxPooling1D"}, (5, 3)),
    case("GlobalMaxPooling1D-keepdims", {"type": "GlobalMaxPooling1D", "keepdims": True}, (5, 3)),
    case("GlobalAveragePooling1D", {"type": "GlobalAveragePooling1D"}, (5, 3)),
    case("GlobalMaxPooling2D", {"type": "GlobalMaxPooling2D"}, (3, 4, 2)),
    case("GlobalAveragePooling2D", {"type": "GlobalAveragePooling2D"}, (3, 4, 2)),
    case(
        "GlobalAveragePooling2D-keepdims",
        {"type": "GlobalAveragePooling2D", "keepdims": True},
        (3, 4, 2),
    ),
    # ---- recurrent: the fused torch kernels (default activations) and the step loop (others)
    _rnn("SimpleRNN", "last"),
    _rnn("SimpleRNN", "sequences", return_sequences=True),
    _rnn("SimpleRNN", "backwards-sequences", return_sequences=True, go_backwards=True),
    _rnn("SimpleRNN", "relu-nobias", activation="relu", use_bias=False),
    _rnn("SimpleRNN", "sigmoid-loop", activation="sigmoid", return_sequences=True),
    _rnn("LSTM", "last"),
    _rnn("LSTM", "sequences", return_sequences=True),
    _rnn("LSTM", "backwards", go_backwards=True),
    _rnn(
        "LSTM",
        "loop",
        activation="relu",
        recurrent_activation="hard_sigmoid",
        return_sequences=True,
    ),
    _rnn("LSTM", "nobias", use_bias=False),
    _rnn("LSTM", "dropout-inference", dropout=0.3, recurrent_dropout=0.3),
    _rnn("GRU", "last"),
    _rnn("GRU", "sequences", return_sequences=True),
    _rnn("GRU", "backwards-sequences", return_sequences=True, go_backwards=True),
    _rnn("GRU", "loop", activation="relu", return_sequences=True),
    _rnn("GRU", "nobias", use_bias=False),
    _rnn("GRU", "reset-before", reset_after=False),
    _rnn("GRU", "reset-before-sequences", reset_after=False, return_sequences=True),
    _rnn(
        "GRU", "reset-before-nobias-backwards", reset_after=False, use_bias=False, go_backwards=True
    ),
    _bidirectional("LSTM-concat", {"type": "LSTM"}),
    _bidirectional(
        "LSTM-ave-sequences", {"type": "LSTM", "return_sequences": True}, merge_mode="ave"
    ),
    _bidirectional(
        "GRU-sum-sequences", {"type": "GRU", "return_sequences": True}, merge_mode="sum"
    ),
    _bidirectional("GRU-reset-before-concat", {"type": "GRU", "reset_after": False}),
    _bidirectional("SimpleRNN-mul", {"type": "SimpleRNN"}, merge_mode="mul"),
    # A wrapped layer that reads backwards: Keras 3 refuses it (its backward copy always has
    # go_backwards true, the same), kcli runs the copy forwards, as Keras does when handed
    # that copy as `backward_layer`.
    _bidirectional(
        "SimpleRNN-backwards-sequences",
        {"type": "SimpleRNN", "go_backwards": True, "return_sequences": True},
        keras_spec={
            "type": "Bidirectional",
            "layer": {
                "type": "SimpleRNN",
                "units": 3,
                "go_backwards": True,
                "return_sequences": True,
            },
            "backward_layer": {"type": "SimpleRNN", "units": 3, "return_sequences": True},
        },
    ),
    # ---- convolutional LSTMs, and the wrappers of any layer
    *_conv_lstm_cases(),
    *_wrapper_cases(),
    # ---- embedding
    case("Embedding", {"type": "Embedding", "input_dim": 7, "output_dim": 3}, (5,), ids=7),
    case("Embedding-2d", {"type": "Embedding", "input_dim": 4, "output_dim": 2}, (2, 3), ids=4),
    # The mask itself (what the layers after see) is compared in test_masking_parity.py.
    case(
        "Embedding-mask_zero",
        {"type": "Embedding", "input_dim": 5, "output_dim": 3, "mask_zero": True},
        (6,),
        ids=5,
    ),
    # The first step of the first sample is all mask_value: masked, so zeroed.
    case("Masking", {"type": "Masking"}, (5, 3), exact=(0.0, 0.0, 0.0)),
    case("Masking-value", {"type": "Masking", "mask_value": 0.5}, (4, 2), exact=(0.5, 0.5)),
    # ---- merging: several inputs, and Keras' broadcasting (a 1 stretches, lower rank: axis 1)
    case("Add", {"type": "Add"}, (3, 4), (3, 4)),
    case("Add-three", {"type": "Add"}, (3, 4), (3, 4), (3, 4)),
    case("Add-broadcast-one", {"type": "Add"}, (3, 4), (1, 4)),
    case("Add-broadcast-rank", {"type": "Add"}, (3, 4), (4,)),
    case("Subtract", {"type": "Subtract"}, (3, 4), (3, 4)),
    case("Multiply-three", {"type": "Multiply"}, (3, 4), (3, 4), (3, 4)),
    case("Average-three", {"type": "Average"}, (3, 4), (3, 4), (3, 4)),
    case("Maximum", {"type": "Maximum"}, (3, 4), (3, 4)),
    case("Minimum-three", {"type": "Minimum"}, (3, 4), (3, 4), (3, 4)),
    case("Concatenate", {"type": "Concatenate"}, (3, 4), (3, 2)),
    case("Concatenate-axis1-three", {"type": "Concatenate", "axis": 1}, (3, 4), (1, 4), (2, 4)),
    # ---- attention: [query, value] or [query, value, key]; MultiHeadAttention also one input
    *_attention_cases(),
    # ---- activation layers
    case("Activation-relu", {"type": "Activation", "activation": "relu"}, (4, 3)),
    case("Activation-softmax", {"type": "Activation", "activation": "softmax"}, (4, 3)),
    case(
        "Activation-gelu-tanh",
        {"type": "Activation", "activation": {"type": "gelu", "approximate": True}},
        (4, 3),
    ),
    case(
        "Activation-leaky_relu",
        {"type": "Activation", "activation": {"type": "leaky_relu", "negative_slope": 0.1}},
        (4, 3),
    ),
    case("ReLU", {"type": "ReLU"}, (4, 3)),
    case("ReLU-max", {"type": "ReLU", "max_value": 1.0}, (4, 3)),
    case("ReLU-max6", {"type": "ReLU", "max_value": 6.0}, (4, 3)),
    case("ReLU-slope", {"type": "ReLU", "negative_slope": 0.2}, (4, 3)),
    case("ReLU-threshold", {"type": "ReLU", "threshold": 0.5}, (4, 3), exact=(0.5,)),
    case(
        "ReLU-threshold-max",
        {"type": "ReLU", "threshold": 0.5, "max_value": 1.2},
        (4, 3),
        exact=(0.5,),
    ),
    case(
        "ReLU-threshold-max-slope",
        {"type": "ReLU", "threshold": 0.5, "max_value": 1.2, "negative_slope": 0.1},
        (4, 3),
        exact=(0.5,),
    ),
    # Negative thresholds: the ReLU layers refuse them (Keras' and kcli's), the relu function
    # takes them; through an Activation layer on both sides.
    *(
        case(
            f"relu-negative-threshold-{i}",
            {"type": "Activation", "activation": {"type": "relu", "threshold": -0.5, **args}},
            (4, 3),
            exact=(-0.5,),
        )
        for i, args in enumerate(
            [
                {},
                {"max_value": 1.0},
                {"negative_slope": 0.2},
                {"max_value": 1.0, "negative_slope": 0.2},
            ]
        )
    ),
    case("LeakyReLU", {"type": "LeakyReLU"}, (4, 3)),
    case("LeakyReLU-slope", {"type": "LeakyReLU", "negative_slope": 0.05}, (4, 3)),
    # Keras 2's name of the slope, which Keras 3 still takes
    case("LeakyReLU-alpha", {"type": "LeakyReLU", "alpha": 0.1}, (4, 3)),
    case("ELU", {"type": "ELU", "alpha": 0.5}, (4, 3)),
    case("Softmax", {"type": "Softmax"}, (4, 3)),
    case("Softmax-axis1", {"type": "Softmax", "axis": 1}, (4, 3)),
    case("PReLU", {"type": "PReLU"}, (4, 3)),
    case("PReLU-shared", {"type": "PReLU", "shared_axes": [1, 2]}, (3, 3, 2)),
]

# Layer types of the catalog without a parity case: name -> why. Every registered layer has one
# today; the training-mode randomness of the noise layers (Dropout, SpatialDropout*,
# GaussianNoise) and of recurrent dropout cannot be matched draw for draw, so their cases run
# in inference mode and the training structure is checked apart.
LAYER_EXEMPT: dict[str, str] = {
    # Not a layer of its own: it runs another layer's module (whose case is here) again;
    # tests/model/test_shared.py checks both calls and the gradient they sum into.
    "Shared": "a second call of another layer (Keras: one layer object called twice)",
    # A call of a sub-model, whose layers have their cases here; the whole models (summary
    # rows, counts, outputs) are compared with Keras in tests/parity/test_nested_parity.py.
    "Model": "a call of a sub-model (Keras: a Model object called as a layer)",
    # Keras' Hashing runs TensorFlow's string hashes and refuses to exist without TensorFlow
    # (not in the dev extra); tests/model/layers/test_hashing.py checks kcli against Google's
    # FarmHash64 values and the outputs Keras' own tests expect.
    "Hashing": "Keras' Hashing needs TensorFlow; checked against FarmHash/SipHash values",
    # Keras' StringLookup and TextVectorization refuse to exist without TensorFlow (their
    # lookup tables are TF ops); tests/model/layers/test_text_layers.py works their
    # vocabularies, tokens, ids, output modes and idf weights out by hand from Keras' rules.
    "StringLookup": "Keras' StringLookup needs TensorFlow; vocabularies and ids by hand",
    "TextVectorization": "Keras' TextVectorization needs TensorFlow; tokens and ids by hand",
    # Keras' IntegerLookup refuses to exist without TensorFlow too; tests/model/layers/
    # test_adapted.py checks vocabularies, indices and tf_idf weights by hand and against the
    # outputs Keras' docstring gives.
    "IntegerLookup": "Keras' IntegerLookup needs TensorFlow; checked by hand and Keras' docs",
}


@dataclass(frozen=True)
class ActivationCase:
    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] = (3, 5)  # batch included: an activation sees the whole tensor
    exact: tuple[float, ...] = ()  # as LayerCase.exact


def activation(name: str, shape: tuple[int, ...] = (3, 5), exact=(), **args: Any) -> ActivationCase:
    label = "-".join([name, *(f"{k}={v}" for k, v in args.items())])
    return ActivationCase(label, name, args, shape, tuple(exact))


ACTIVATION_CASES: list[ActivationCase] = [
    activation("linear"),
    activation("relu"),
    activation("relu", negative_slope=0.1),
    activation("relu", max_value=1.0),
    activation("relu", max_value=6.0),  # Keras takes its relu6 shortcut here
    activation("relu", exact=(0.5,), threshold=0.5),
    activation("relu", exact=(0.5,), threshold=0.5, max_value=1.2),
    activation("relu", exact=(0.5,), threshold=0.5, negative_slope=0.2, max_value=1.2),
    # Negative thresholds: the function (unlike the ReLU layer) takes them, and values between
    # the threshold and 0 pass unless a max_value clips to [0, max_value].
    activation("relu", exact=(-0.5,), threshold=-0.5),
    activation("relu", exact=(-0.5,), threshold=-0.5, negative_slope=0.2),
    activation("relu", exact=(-0.5,), threshold=-0.5, max_value=1.0),
    activation("relu", exact=(-0.5,), threshold=-0.5, max_value=1.0, negative_slope=0.2),
    activation("relu6"),
    activation("leaky_relu"),
    activation("leaky_relu", negative_slope=0.05),
    activation("elu"),
    activation("elu", alpha=0.5),
    activation("selu"),
    activation("gelu"),
    activation("gelu", approximate=True),
    activation("sigmoid"),
    activation("hard_sigmoid"),
    activation("tanh"),
    activation("softmax"),
    activation("softmax", shape=(2, 3, 4), axis=1),
    activation("log_softmax"),
    activation("log_softmax", shape=(2, 3, 4), axis=1),
    activation("softplus"),
    activation("softsign"),
    activation("silu"),
    activation("mish"),
    activation("exponential"),
]

# Activations of the registry without a parity case: name -> why (none today).
ACTIVATION_EXEMPT: dict[str, str] = {}
