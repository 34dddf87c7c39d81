"""Augmentation parity with Keras 3 in training: Keras draws, both sides apply the same draws.

The random draws of the two libraries cannot match, so Keras' layer draws its transformation
(`get_random_transformation`) and transforms the batch with it (`transform_images`), and kcli's
module transforms the same batch with the same drawn parameters (`transform`): angles,
translations, zooms, contrast factors, brightness deltas, flips and crop offsets. Outputs must
agree within rtol 1e-5. Then the draws themselves: both sides' parameters over a large batch
lie in the same range with the same mean (uniform draws).
"""

from __future__ import annotations

import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.layers import layer_registry  # noqa: E402

SHAPE = (7, 9, 3)


def _images(n: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(n)
    return torch.rand((n, *SHAPE), generator=generator) * 255


def _angle(t):
    return t["angle"]


def _translations(t):
    return t["translations"]


def _zooms(t):
    return torch.cat([t["width_zoom"], t["height_zoom"]], dim=1)


def _contrast(t):
    return t["contrast_factor"].reshape(-1)


def _brightness(t):
    return t["rgb_delta"].reshape(-1)


def _flips(t):
    # Keras 3.15 flips both axes on one coin per image; kcli draws a coin per axis, so it is
    # given the same coin for both.
    flips = t["flips"].reshape(-1)
    return torch.stack([flips, flips], dim=1)


CASES = [
    ({"type": "RandomRotation", "factor": 0.3}, _angle),
    ({"type": "RandomRotation", "factor": [-0.5, 0.5], "fill_mode": "wrap"}, _angle),
    (
        {"type": "RandomRotation", "factor": 0.4, "fill_mode": "constant", "fill_value": 3.0},
        _angle,
    ),
    (
        {
            "type": "RandomRotation",
            "factor": 0.4,
            "fill_mode": "nearest",
            "interpolation": "nearest",
        },
        _angle,
    ),
    (
        {"type": "RandomTranslation", "height_factor": 0.4, "width_factor": [-0.2, 0.6]},
        _translations,
    ),
    (
        {
            "type": "RandomTranslation",
            "height_factor": 0.9,
            "width_factor": 0.9,
            "fill_mode": "constant",
        },
        _translations,
    ),
    ({"type": "RandomZoom", "height_factor": 0.5}, _zooms),
    (
        {
            "type": "RandomZoom",
            "height_factor": [-0.5, 0.5],
            "width_factor": 0.8,
            "fill_mode": "wrap",
        },
        _zooms,
    ),
    ({"type": "RandomContrast", "factor": [0.3, 0.5]}, _contrast),
    ({"type": "RandomBrightness", "factor": 0.4}, _brightness),
    ({"type": "RandomBrightness", "factor": [-0.5, 0.1], "value_range": [0, 100]}, _brightness),
    ({"type": "RandomFlip"}, _flips),
    ({"type": "RandomFlip", "mode": "vertical"}, _flips),
]


def keras_layer(spec: dict):
    return getattr(keras.layers, spec["type"])(**{k: v for k, v in spec.items() if k != "type"})


@pytest.mark.parametrize(("spec", "params_of"), CASES, ids=[str(c[0]) for c in CASES])
def test_kcli_applies_keras_draws_as_keras_does(spec, params_of):
    x = _images()
    layer = keras_layer(spec)
    drawn = layer.get_random_transformation(x, training=True)
    theirs = layer.transform_images(x.clone(), drawn, training=True)
    module = layer_registry.validate_spec(spec).build([SHAPE]).train()
    ours = module.transform(x.clone(), params_of(drawn))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)  # pixels up to 255


def test_random_crop_applies_keras_offsets_in_training():
    x = _images()
    layer = keras.layers.RandomCrop(4, 5)
    top, left = layer.get_random_transformation(x, training=True)
    theirs = layer.transform_images(x.clone(), (top, left), training=True)
    module = layer_registry.validate_spec({"type": "RandomCrop", "height": 4, "width": 5})
    offsets = torch.tensor([[int(top), int(left)]] * len(x))  # Keras: one offset per batch
    ours = module.build([SHAPE]).transform(x.clone(), offsets)
    torch.testing.assert_close(ours, theirs)


# spec, and where Keras' transformation holds the parameter kcli's `draw` returns
DRAWS = [
    ({"type": "RandomRotation", "factor": [-0.1, 0.3]}, _angle),
    (
        {"type": "RandomTranslation", "height_factor": 0.3, "width_factor": [0.1, 0.5]},
        _translations,
    ),
    ({"type": "RandomZoom", "height_factor": [-0.3, 0.2], "width_factor": 0.4}, _zooms),
    ({"type": "RandomContrast", "factor": [0.2, 0.6]}, _contrast),
    ({"type": "RandomBrightness", "factor": [-0.3, 0.2]}, _brightness),
]


@pytest.mark.parametrize(("spec", "params_of"), DRAWS, ids=[d[0]["type"] for d in DRAWS])
def test_draws_have_kerass_range_and_mean(spec, params_of):
    x = torch.zeros(4000, *SHAPE)
    theirs = params_of(keras_layer(spec).get_random_transformation(x, training=True)).double()
    ours = layer_registry.validate_spec(spec).build([SHAPE]).draw(x).double()
    theirs, ours = theirs.reshape(len(x), -1), ours.reshape(len(x), -1)
    span = (theirs.max(0).values - theirs.min(0).values).clamp(min=1e-6)
    # 4000 uniform draws: the extremes lie within 0.5% of the span of the true bounds, and the
    # mean's standard error is span / sqrt(12 * 4000) ~ span / 220
    assert torch.all((ours.min(0).values - theirs.min(0).values).abs() < span * 0.01)
    assert torch.all((ours.max(0).values - theirs.max(0).values).abs() < span * 0.01)
    assert torch.all((ours.mean(0) - theirs.mean(0)).abs() < span * 0.03)
