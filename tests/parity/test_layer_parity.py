"""Layer and activation parity with Keras 3: every entry of kcli's catalog computes what Keras does.

For each case of layer_cases.py, a kcli layer is built from its spec and given random weights
from a seeded generator (never zeros or Keras' initial values, so a transposed or misordered
weight cannot hide); the Keras layer made from the same arguments gets the same weights, mapped
explicitly from kcli's torch layouts to Keras' (the mappings below, one per layer family). Both
then run the same inputs, and the test asserts, within rtol 1e-5 (atol 1e-6 near 0):
  - the same output, and the output shape kcli's shape rule predicts;
  - the same gradients of sum(output * a fixed random tensor) with respect to every input and
    every trainable weight (the weight gradients mapped to Keras' layout the same way);
  - for BatchNormalization in training, the same moving statistics after the step.
Every activation of kcli's activation registry is compared with `keras.activations.get(name)`
called with the same arguments, forward and backward. A completeness test reads both
registries at test time, so a new catalog entry without a case (or an exemption with its
reason) fails. The noise layers are random in training: their cases run in inference, and
`test_noise_structure_in_training` checks the structure both draw (which entries drop, scale).
Where Keras' torch backend itself departs from Keras on JAX and TensorFlow (LayerCase.keras_bug)
the case is a strict expected failure, and a separate test checks kcli against the JAX and
TensorFlow result rebuilt from Keras' own backend-neutral ops.

float32 on both sides, Keras' default: its torch backend promotes as JAX does without x64, so
float64 matmuls run in float32 anyway (keras.backend.result_type). The sizes are tiny, so
rounding stays far below the tolerance and a failure here is a difference in the math.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.activations import activation_registry  # noqa: E402
from kcli.model.layers import layer_registry  # noqa: E402
from tests.parity.layer_cases import (  # noqa: E402
    ACTIVATION_CASES,
    ACTIVATION_EXEMPT,
    AVERAGE_SAME_BUG,
    LAYER_CASES,
    LAYER_EXEMPT,
    ActivationCase,
    LayerCase,
)

DTYPE = torch.float32
BATCH = 3
RTOL, ATOL = 1e-5, 1e-6

Tensors = dict[str, torch.Tensor]
KerasWeights = list[tuple[str, torch.Tensor]]  # (Keras weight name, value), in layer.weights order


# ---- weight layouts: kcli's tensors (torch layouts) -> Keras' weights, in Keras' order
#
# Each mapping is a pure rearrangement (transpose, permute, gate reorder), so the same function
# maps kcli's weight gradients onto Keras' weights for the gradient comparison.


class _Tracked(dict):
    """kcli's named tensors; records which ones a mapping used, so none is left unmapped."""

    def __init__(self, tensors: Tensors, used: set[str] | None = None, prefix: str = "") -> None:
        super().__init__(tensors)
        self.used = set() if used is None else used
        self.prefix = prefix

    def __getitem__(self, name: str) -> torch.Tensor:
        self.used.add(self.prefix + name)
        return super().__getitem__(name)

    def prefixed(self, prefix: str) -> _Tracked:
        """The tensors of submodule `prefix`, by their names there, sharing the record."""
        start = f"{prefix}."
        inner = {k[len(start) :]: v for k, v in self.items() if k.startswith(start)}
        return _Tracked(inner, self.used, self.prefix + start)


def _bias(t: _Tracked, name: str = "bias") -> KerasWeights:
    return [(name, t[name])] if name in t else []


def _conv_kernel(kernel: torch.Tensor) -> torch.Tensor:
    # torch keeps (out, in, *window) for a conv and (in, out, *window) for a transposed conv;
    # Keras keeps (*window, in, out) and (*window, out, in): in both cases the two channel
    # axes move behind the window in reverse order.
    return kernel.permute(*range(2, kernel.dim()), 1, 0)


def _depthwise_kernel(kernel: torch.Tensor, multiplier: int) -> torch.Tensor:
    # torch's grouped conv kernel (C*dm, 1, *k), output channel c*dm + m from channel c;
    # Keras' (*k, C, dm) flattens its last two axes in that same order.
    out, _, *window = kernel.shape
    split = kernel.reshape(out // multiplier, multiplier, *window)
    return split.permute(*range(2, split.dim()), 0, 1)


def _dense(spec: dict, t: _Tracked) -> KerasWeights:
    return [("kernel", t["kernel"].T), *_bias(t)]  # torch (out, in) for F.linear; Keras (in, out)


def _conv(spec: dict, t: _Tracked) -> KerasWeights:
    return [("kernel", _conv_kernel(t["kernel"])), *_bias(t)]


def _depthwise(spec: dict, t: _Tracked) -> KerasWeights:
    multiplier = spec.get("depth_multiplier", 1)
    return [("kernel", _depthwise_kernel(t["depthwise_kernel"], multiplier)), *_bias(t)]


def _separable(spec: dict, t: _Tracked) -> KerasWeights:
    multiplier = spec.get("depth_multiplier", 1)
    return [
        ("depthwise_kernel", _depthwise_kernel(t["depthwise_kernel"], multiplier)),
        (
            "pointwise_kernel",
            _conv_kernel(t["pointwise_kernel"]),
        ),  # (F, C*dm, *1) -> (*1, C*dm, F)
        *_bias(t),
    ]


def _named(*names: str) -> Callable[[dict, _Tracked], KerasWeights]:
    """Weights kept in Keras' layout already, in this order (the absent ones skipped)."""

    def mapping(spec: dict, t: _Tracked) -> KerasWeights:
        return [(name, t[name]) for name in names if name in t]

    return mapping


def _simple_or_lstm(spec: dict, t: _Tracked) -> KerasWeights:
    # torch's (gates*units, in) rows for F.linear; Keras (in, gates*units) columns. The LSTM's
    # gate order is the same on both sides: i, f, c (torch's g), o.
    return [("kernel", t["kernel"].T), ("recurrent_kernel", t["recurrent_kernel"].T), *_bias(t)]


def _gru_order(weight: torch.Tensor, units: int, dim: int) -> torch.Tensor:
    # kcli keeps torch.gru's gate order r, z, n; Keras' is z, r, h (h = torch's n).
    r, z, n = weight.split(units, dim=dim)
    return torch.cat([z, r, n], dim=dim)


def _gru(spec: dict, t: _Tracked) -> KerasWeights:
    units = spec["units"]
    weights = [
        ("kernel", _gru_order(t["kernel"], units, 0).T),
        ("recurrent_kernel", _gru_order(t["recurrent_kernel"], units, 0).T),
    ]
    if "bias" in t:  # (3u,), or (2, 3u) input and recurrent biases with reset_after
        weights.append(("bias", _gru_order(t["bias"], units, -1)))
    return weights


def _bidirectional(spec: dict, t: _Tracked) -> KerasWeights:
    # Keras lists the forward layer's weights, then the backward copy's.
    inner = spec["layer"]
    mapping = WEIGHT_MAPPINGS[inner["type"]]
    return [
        *mapping(inner, t.prefixed("forward_layer")),
        *mapping(inner, t.prefixed("backward_layer")),
    ]


def _multi_head(spec: dict, t: _Tracked) -> KerasWeights:
    # Kept in Keras' layout (kernels (in, heads, size) and (heads, size, out)), one submodule
    # per EinsumDense sublayer of Keras', in Keras' order.
    weights: KerasWeights = []
    for part in ("query", "key", "value", "attention_output"):
        weights += _named("kernel", "bias")(spec, t.prefixed(part))
    return weights


def _conv_lstm(spec: dict, t: _Tracked) -> KerasWeights:
    # (4F, C, *k) and (4F, F, *k) -> Keras' (*k, C, 4F) and (*k, F, 4F); gates i, f, c, o both.
    kernels = [(name, _conv_kernel(t[name])) for name in ("kernel", "recurrent_kernel")]
    return [*kernels, *_bias(t)]


def _time_distributed(spec: dict, t: _Tracked) -> KerasWeights:
    inner = spec["layer"]
    return WEIGHT_MAPPINGS[inner["type"]](inner, t.prefixed("layer"))


def _spectral_normalization(spec: dict, t: _Tracked) -> KerasWeights:
    # Keras lists the normalized kernel, its own vector_u, then the layer's other weights.
    inner = spec["layer"]
    kernel, *rest = WEIGHT_MAPPINGS[inner["type"]](inner, t.prefixed("layer"))
    return [kernel, ("vector_u", t["vector_u"]), *rest]


def _weightless(spec: dict, t: _Tracked) -> KerasWeights:
    return []


_WEIGHTLESS = (
    "Flatten Reshape Permute RepeatVector ZeroPadding2D UpSampling2D Dropout SpatialDropout1D "
    "SpatialDropout2D GaussianNoise MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D "
    "GlobalMaxPooling1D GlobalMaxPooling2D GlobalAveragePooling1D GlobalAveragePooling2D Add "
    "Subtract Multiply Average Maximum Minimum Concatenate Activation ReLU LeakyReLU ELU Softmax "
    "Cropping1D Cropping2D Cropping3D ZeroPadding1D ZeroPadding3D UpSampling1D UpSampling3D "
    "MaxPooling3D AveragePooling3D GlobalMaxPooling3D GlobalAveragePooling3D SpatialDropout3D "
    "Identity Dot UnitNormalization GaussianDropout ActivityRegularization AlphaDropout Masking"
    " Rescaling Resizing CenterCrop CategoryEncoding Discretization RandomFlip RandomRotation"
    " Normalization"  # its cases give mean and variance: constants (test_adapt_parity: adapted)
    " RandomTranslation RandomZoom RandomCrop RandomContrast RandomBrightness"
).split()

WEIGHT_MAPPINGS: dict[str, Callable[[dict, _Tracked], KerasWeights]] = {
    "Dense": _dense,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "Conv2DTranspose": _conv,
    "Conv3D": _conv,
    "Conv1DTranspose": _conv,
    "Conv3DTranspose": _conv,
    "DepthwiseConv2D": _depthwise,
    "SeparableConv2D": _separable,
    "DepthwiseConv1D": _depthwise,
    "SeparableConv1D": _separable,
    "GroupNormalization": _named("gamma", "beta"),
    "ConvLSTM1D": _conv_lstm,
    "ConvLSTM2D": _conv_lstm,
    "ConvLSTM3D": _conv_lstm,
    "TimeDistributed": _time_distributed,
    "SpectralNormalization": _spectral_normalization,
    "BatchNormalization": _named("gamma", "beta", "moving_mean", "moving_variance"),
    "LayerNormalization": _named("gamma", "beta"),
    "SimpleRNN": _simple_or_lstm,
    "LSTM": _simple_or_lstm,
    "GRU": _gru,
    "Bidirectional": _bidirectional,
    "Embedding": _named("embeddings"),
    "PReLU": _named("alpha"),
    "MultiHeadAttention": _multi_head,
    "Attention": _named("scale", "concat_score_weight"),
    "AdditiveAttention": _named("scale"),
    **dict.fromkeys(_WEIGHTLESS, _weightless),
}


def keras_weights(case: LayerCase, tensors: Tensors) -> KerasWeights:
    tracked = _Tracked(tensors)
    weights = WEIGHT_MAPPINGS[case.type](case.spec, tracked)
    unmapped = set(tensors) - tracked.used
    assert not unmapped, f"{case.id}: kcli weights with no Keras counterpart: {sorted(unmapped)}"
    return weights


# ---- the two sides


def keras_activation(value):
    """kcli's `activation` value as Keras takes it: a name, or the function with its arguments."""
    if isinstance(value, dict):
        args = {k: v for k, v in value.items() if k != "type"}
        return functools.partial(keras.activations.get(value["type"]), **args)
    return value


def keras_layer(spec: dict, call_args: tuple[str, ...] = ()) -> keras.layers.Layer:
    """The Keras layer of the same type with the same arguments (kcli spells them as Keras),
    less those Keras takes at the call (`call_args`)."""
    args = {}
    for key, value in spec.items():
        if key in call_args:
            continue
        if key in ("activation", "recurrent_activation"):
            value = keras_activation(value)
        elif key in ("layer", "backward_layer"):  # Bidirectional's wrapped RNNs
            value = keras_layer(value)
        if key != "type":
            args[key] = value
    return getattr(keras.layers, spec["type"])(**args)


def _seeded(label: str) -> torch.Generator:
    # One stream per case, stable across runs and independent of the other cases' order.
    return torch.Generator().manual_seed(zlib.crc32(label.encode()))


def random_inputs(case: LayerCase, generator: torch.Generator) -> list[torch.Tensor]:
    inputs = []
    for shape in case.shapes:
        if case.ids is not None:
            inputs.append(torch.randint(0, case.ids, (BATCH, *shape), generator=generator))
            continue
        x = torch.randn((BATCH, *shape), generator=generator, dtype=DTYPE)
        x.view(-1)[: len(case.exact)] = torch.tensor(case.exact, dtype=DTYPE)
        inputs.append(x)
    return inputs


def randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Overwrite every weight with seeded random values (variances stay positive)."""
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            if name.endswith("variance"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=DTYPE) + 0.5)
            else:
                tensor.copy_(0.5 * torch.randn(tensor.shape, generator=generator, dtype=DTYPE))


def close(label: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """kcli's value against Keras' (the reference); the message names what differs."""
    torch.testing.assert_close(
        ours.detach(), theirs.detach(), rtol=RTOL, atol=ATOL, msg=lambda m: f"{label}: {m}"
    )


def gradients(out: torch.Tensor, upstream: torch.Tensor, wrt: list[torch.Tensor]):
    """d sum(out * upstream) / d wrt: the same upstream gradient on both sides."""
    return torch.autograd.grad((out * upstream).sum(), wrt, allow_unused=True)


# Weights whose gradient is zero in exact arithmetic, so that both sides hold rounding noise
# (of either sign, near 1e-7) that no relative tolerance can compare: each is checked to be ~0.
# MultiHeadAttention's key bias adds q . b to every score of a query step, and the softmax over
# the key steps cancels any such shift.
ZERO_GRADIENTS = {"MultiHeadAttention": ("/key/bias",)}


def _layer_params() -> list:
    params = []
    for case in LAYER_CASES:
        bug = (
            []
            if case.keras_bug is None
            else [pytest.mark.xfail(strict=True, reason=case.keras_bug)]
        )
        params.append(pytest.param(case, id=case.id, marks=bug))
    return params


@pytest.mark.parametrize("case", _layer_params())
def test_layer_parity(case: LayerCase) -> None:
    generator = _seeded(case.id)
    spec = layer_registry.validate_spec(case.spec)
    shapes = [tuple(s) for s in case.shapes]
    module = spec.build(shapes).to(DTYPE)
    randomize(module, generator)
    activation = spec.activation_spec()
    activation = activation.build() if activation is not None else None
    inputs = random_inputs(case, generator)

    layer = keras_layer(case.keras_spec or case.spec, case.call_args)
    call_kwargs = {name: case.spec[name] for name in case.call_args}

    def call_keras(xs: list[torch.Tensor], training: bool) -> torch.Tensor:
        if case.positional:  # MultiHeadAttention(query, value, key); one input: self-attention
            return layer(*(xs if len(xs) > 1 else xs * 2), training=training, **call_kwargs)
        # merges and Attention take a list
        return layer(xs if len(xs) > 1 else xs[0], training=training, **call_kwargs)

    call_keras([x.clone() for x in inputs], False)  # builds the weights
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    mapped = keras_weights(case, tensors)
    assert [name for name, _ in mapped] == [w.name for w in layer.weights], case.id
    layer.set_weights([value.detach().numpy() for _, value in mapped])

    # kcli: the module, then the layer's activation (the graph applies it after the module).
    ours_in = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    module.train(case.training)
    ours = module(*ours_in)
    if activation is not None:
        ours = activation(ours)
    theirs_in = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    theirs = call_keras(theirs_in, case.training)

    assert tuple(ours.shape[1:]) == spec.output_shape(shapes), case.id
    close(f"{case.id} output", ours, theirs)
    if not (ours.requires_grad or theirs.requires_grad):
        return  # an encoding of ids or bins (CategoryEncoding ...): nothing to differentiate

    upstream = torch.randn(theirs.shape, generator=generator, dtype=DTYPE)
    float_in = [i for i, x in enumerate(inputs) if x.is_floating_point()]
    params = dict(module.named_parameters())
    ours_grads = gradients(ours, upstream, [ours_in[i] for i in float_in] + list(params.values()))
    trainable = layer.trainable_weights
    theirs_grads = gradients(
        theirs, upstream, [theirs_in[i] for i in float_in] + [w.value for w in trainable]
    )
    for n, i in enumerate(float_in):
        close(f"{case.id} gradient of input {i}", ours_grads[n], theirs_grads[n])

    # Weight gradients, mapped to Keras' layout like the weights; buffers stand in for the
    # non-trainable weights, which have no gradient to compare.
    ours_by_name = {
        name: torch.zeros_like(param) if grad is None else grad  # None: the weight is unused
        for (name, param), grad in zip(params.items(), ours_grads[len(float_in) :], strict=True)
    }
    ours_mapped = keras_weights(case, {**dict(module.named_buffers()), **ours_by_name})
    theirs_by_weight = dict(zip(map(id, trainable), theirs_grads[len(float_in) :], strict=True))
    for (name, grad), weight in zip(ours_mapped, layer.weights, strict=True):
        theirs_grad = theirs_by_weight.get(id(weight))
        if weight.trainable and weight.path.endswith(ZERO_GRADIENTS.get(case.type, ())):
            for side, value in (("kcli", grad), ("keras", theirs_grad)):
                assert value.abs().max() < 1e-5, f"{case.id}: {side}'s {weight.path} gradient"
        elif weight.trainable:
            close(f"{case.id} gradient of {name}", grad, theirs_grad)

    if case.check_state:  # the weights after this step (moving statistics, a normalized kernel)
        after = keras_weights(case, {**params, **dict(module.named_buffers())})
        for (name, value), weight in zip(after, layer.weights, strict=True):
            close(f"{case.id} {name} after the step", value, weight.value)


def _activation_input(case: ActivationCase) -> torch.Tensor:
    x = torch.randn(case.shape, generator=_seeded(case.id), dtype=DTYPE)
    x.view(-1)[: len(case.exact)] = torch.tensor(case.exact, dtype=DTYPE)
    return x


@pytest.mark.parametrize("case", ACTIVATION_CASES, ids=lambda c: c.id)
def test_activation_parity(case: ActivationCase) -> None:
    ours_fn = activation_registry.validate_spec({"type": case.name, **case.args}).build()
    theirs_fn = keras.activations.get(case.name)
    x = _activation_input(case)
    ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = ours_fn(ours_x), theirs_fn(theirs_x, **case.args)
    close(f"{case.id} output", ours, theirs)
    upstream = torch.randn(x.shape, generator=_seeded(case.id + "/upstream"), dtype=DTYPE)
    (ours_grad,) = gradients(ours, upstream, [ours_x])
    (theirs_grad,) = gradients(theirs, upstream, [theirs_x])
    close(f"{case.id} gradient", ours_grad, theirs_grad)


def test_every_catalog_entry_has_a_case() -> None:
    """A layer or activation added to kcli without a parity case (or an exemption) fails here."""
    for registry, covered, exempt in (
        (layer_registry, {c.type for c in LAYER_CASES}, LAYER_EXEMPT),
        (activation_registry, {c.name for c in ACTIVATION_CASES}, ACTIVATION_EXEMPT),
    ):
        names = set(registry.names())
        missing = sorted(names - covered - set(exempt))
        assert not missing, f"{registry.kind}s without a parity case or exemption: {missing}"
        unknown = sorted((covered | set(exempt)) - names)
        assert not unknown, (
            f"parity cases or exemptions for no registered {registry.kind}: {unknown}"
        )
        both = sorted(covered & set(exempt))
        assert not both, f"{registry.kind}s both covered and exempt (drop the exemption): {both}"


AVERAGE_SAME = [c for c in LAYER_CASES if c.keras_bug == AVERAGE_SAME_BUG]


@pytest.mark.parametrize("case", AVERAGE_SAME, ids=lambda c: c.id)
def test_average_pooling_same_averages_real_pixels(case: LayerCase) -> None:
    """The cases Keras' torch backend gets wrong, against what Keras computes on JAX and
    TensorFlow: each window's sum over the real pixels divided by their count, built here from
    Keras' own zero padding and "valid" pooling (whose padding-free average is the same on
    every backend), with TensorFlow's split of the "same" padding (the odd pixel after)."""
    spec = layer_registry.validate_spec(case.spec)
    (shape,) = case.shapes
    pads = []
    for n, k, s in zip(shape[:-1], spec.pool_tuple(), spec.stride_tuple(), strict=True):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    pad = (
        keras.layers.ZeroPadding1D(pads[0]) if len(pads) == 1 else keras.layers.ZeroPadding2D(pads)
    )
    valid = getattr(keras.layers, case.type)(spec.pool_tuple(), spec.stride_tuple(), "valid")

    (x,) = random_inputs(case, _seeded(case.id))
    ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = spec.build([shape])(ours_x)
    # The 1/k of both valid averages cancels: real-pixel sum over real-pixel count.
    theirs = valid(pad(theirs_x)) / valid(pad(torch.ones_like(x)))
    close(f"{case.id} output", ours, theirs)
    upstream = torch.randn(theirs.shape, generator=_seeded(case.id + "/upstream"))
    (ours_grad,) = gradients(ours, upstream, [ours_x])
    (theirs_grad,) = gradients(theirs, upstream, [theirs_x])
    close(f"{case.id} gradient of the input", ours_grad, theirs_grad)


NOISE_CASES = [
    ({"type": "Dropout", "rate": 0.4}, (6, 5), ()),
    ({"type": "Dropout", "rate": 0.4, "noise_shape": [None, 1, 5]}, (6, 5), (1,)),
    ({"type": "SpatialDropout1D", "rate": 0.4}, (6, 5), (1,)),
    ({"type": "SpatialDropout2D", "rate": 0.4}, (4, 4, 5), (1, 2)),
    ({"type": "SpatialDropout3D", "rate": 0.4}, (3, 4, 4, 5), (1, 2, 3)),
]


@pytest.mark.parametrize(
    ("spec", "shape", "shared"),
    NOISE_CASES,
    ids=[f"{s['type']}-{i}" for i, (s, *_) in enumerate(NOISE_CASES)],
)
def test_noise_structure_in_training(spec: dict, shape: tuple, shared: tuple) -> None:
    """Draws cannot match, but what is drawn must: each entry dropped or scaled by 1/(1-rate),
    one draw shared along the same axes, on both sides."""
    x = torch.rand((8, *shape), generator=_seeded(str(spec)), dtype=DTYPE) + 0.5  # never 0
    module = layer_registry.validate_spec(spec).build([shape]).train()
    for side, out in (
        ("kcli", module(x.clone())),
        ("keras", keras_layer(spec)(x.clone(), training=True)),
    ):
        kept = out != 0
        close(f"{side} kept entries", out[kept], x[kept] / (1 - spec["rate"]))
        assert 0 < kept.double().mean() < 1, f"{side}: nothing or everything dropped"
        for axis in shared:  # one draw along a shared axis: the mask is constant there
            assert (kept == kept.narrow(axis, 0, 1)).all(), f"{side}: mask varies along {axis}"
        if not shared:
            assert not (kept == kept[:, :1]).all(), f"{side}: mask shared along axis 1"


def test_gaussian_noise_in_training() -> None:
    """Zero-mean noise of standard deviation `stddev`, on both sides (statistically)."""
    spec, stddev = {"type": "GaussianNoise", "stddev": 0.3}, 0.3
    x = torch.randn((64, 100), generator=_seeded("noise"), dtype=DTYPE)
    module = layer_registry.validate_spec(spec).build([(100,)]).train()
    for side, out in (
        ("kcli", module(x.clone())),
        ("keras", keras_layer(spec)(x.clone(), training=True)),
    ):
        noise = out - x
        assert abs(noise.mean().item()) < 0.02, side  # 6400 draws: the mean's sd is 0.004
        assert abs(noise.std().item() - stddev) < 0.02, side


# Keras 3's AlphaDropout constants: SELU's negative saturation and the affine map after it.
_SATURATION = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


@pytest.mark.parametrize(
    ("noise_shape", "shared"), [(None, ()), ([None, 1, 5], (1,))], ids=["full", "shared-steps"]
)
def test_alpha_dropout_structure_in_training(noise_shape, shared) -> None:
    """Each entry either kept (a * x + b) or dropped (a * saturation + b), on both sides, with
    a = ((1 - rate)(1 + rate * saturation^2))^-1/2 and b = -a * saturation * rate, and one draw
    shared along noise_shape's 1 axes."""
    rate = 0.4
    spec = {"type": "AlphaDropout", "rate": rate, "noise_shape": noise_shape}
    a = ((1 - rate) * (1 + rate * _SATURATION**2)) ** -0.5
    b = -a * _SATURATION * rate
    x = torch.rand((8, 6, 5), generator=_seeded("alpha"), dtype=DTYPE) + 0.5
    module = layer_registry.validate_spec(spec).build([(6, 5)]).train()
    for side, out in (
        ("kcli", module(x.clone())),
        ("keras", keras_layer(spec)(x.clone(), training=True)),
    ):
        dropped_value = torch.tensor(a * _SATURATION + b, dtype=DTYPE)
        kept = (out - (a * x + b)).abs() < 1e-5
        dropped = (out - dropped_value).abs() < 1e-5
        assert (kept ^ dropped).all(), f"{side}: an entry neither kept nor dropped"
        assert 0 < kept.double().mean() < 1, f"{side}: nothing or everything dropped"
        for axis in shared:
            assert (kept == kept.narrow(axis, 0, 1)).all(), f"{side}: mask varies along {axis}"
        if not shared:
            assert not (kept == kept[:, :1]).all(), f"{side}: mask shared along axis 1"


def test_spectral_normalization_of_embeddings_in_training() -> None:
    """Keras normalizes an Embedding's embeddings as a kernel, but casts the wrapper's output to
    the inputs' dtype (integer ids: zeros, on every backend), so the output is compared with
    Keras' own Embedding after the step, as are the embeddings and vector_u."""
    spec = {
        "type": "SpectralNormalization",
        "layer": {"type": "Embedding", "input_dim": 7, "output_dim": 3},
        "power_iterations": 2,
    }
    generator = _seeded("spectral-embedding")
    module = layer_registry.validate_spec(spec).build([(5,)])
    randomize(module, generator)
    ids = torch.randint(0, 7, (BATCH, 5), generator=generator)
    layer = keras_layer(spec)
    layer(ids, training=False)
    mapped = [module.layer.embeddings, module.vector_u]
    assert [w.name for w in layer.weights] == ["embeddings", "vector_u"]
    layer.set_weights([value.detach().numpy() for value in mapped])
    ours = module.train()(ids)
    layer(ids, training=True)
    close("embeddings after the step", module.layer.embeddings, layer.weights[0].value)
    close("vector_u after the step", module.vector_u, layer.weights[1].value)
    close("output", ours, layer.layer(ids))
