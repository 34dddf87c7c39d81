"""Augmentation layers: the identity in eval mode, the transforms by hand for given draws, the
draws' ranges and statistics, seeds, zero factors, and their arguments."""

import math

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry
from kcli.model.nn.affine import affine_warp, translation_transforms

SHAPE = (6, 7, 2)
LAYERS = [
    {"type": "RandomFlip"},
    {"type": "RandomRotation", "factor": 0.2},
    {"type": "RandomTranslation", "height_factor": 0.2, "width_factor": 0.3},
    {"type": "RandomZoom", "height_factor": 0.3},
    {"type": "RandomContrast", "factor": 0.4},
    {"type": "RandomBrightness", "factor": 0.3},
]


def build(data: dict, shape: tuple = SHAPE):
    return layer_registry.validate_spec(data).build([shape])


def grid(rows: int, cols: int) -> torch.Tensor:
    """One single-channel image (1, rows, cols, 1) holding 0, 1, 2, ... row by row."""
    return torch.arange(rows * cols, dtype=torch.float32).reshape(1, rows, cols, 1)


@pytest.mark.parametrize("data", LAYERS, ids=lambda d: d["type"])
def test_identity_in_eval_mode_and_random_in_training(check_layer, data):
    module, _ = check_layer(data, [SHAPE], SHAPE, (0, 0))
    x = torch.rand(8, *SHAPE) * 255
    assert torch.equal(module.eval()(x), x)
    out = module.train()(x)
    assert out.shape == x.shape and not torch.equal(out, x)


@pytest.mark.parametrize("data", LAYERS, ids=lambda d: d["type"])
def test_a_seed_repeats_the_draws_and_the_run_generator_is_used_without_one(data):
    x = torch.rand(8, *SHAPE) * 255
    seeded = {**data, "seed": 3}
    first, second = build(seeded).train()(x), build(seeded).train()(x)
    assert torch.equal(first, second)
    torch.manual_seed(11)
    a = build(data).train()(x)
    torch.manual_seed(11)
    assert torch.equal(build(data).train()(x), a)  # the global generator, reseeded: same draws


@pytest.mark.parametrize(
    "data",
    [
        {"type": "RandomRotation", "factor": 0.0},
        {"type": "RandomTranslation", "height_factor": 0.0, "width_factor": [0.0, 0.0]},
        {"type": "RandomZoom", "height_factor": 0.0, "width_factor": 0.0},
        {"type": "RandomBrightness", "factor": 0.0},
    ],
    ids=lambda d: d["type"],
)
def test_a_zero_factor_is_the_identity_in_training(data):
    x = torch.rand(4, *SHAPE) * 255
    assert torch.equal(build(data).train()(x), x)
    # contrast 1: (x - mean) * 1 + mean, equal up to float rounding
    torch.testing.assert_close(build({"type": "RandomContrast", "factor": 0.0}).train()(x), x)


def test_flip_given_draws():
    module = build({"type": "RandomFlip"}, (2, 2, 1))
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1).repeat(4, 1, 1, 1)
    draws = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    out = module.transform(x, draws)[..., 0].tolist()
    assert out[0] == [[1, 2], [3, 4]]  # unchanged
    assert out[1] == [[2, 1], [4, 3]]  # left-right
    assert out[2] == [[3, 4], [1, 2]]  # up-down
    assert out[3] == [[4, 3], [2, 1]]  # both: turned 180 degrees
    horizontal = build({"type": "RandomFlip", "mode": "horizontal"}, (2, 2, 1))
    assert horizontal.transform(x, draws)[2, ..., 0].tolist() == [[1, 2], [3, 4]]


def test_flip_statistics_and_structure_in_training():
    x = grid(3, 4).repeat(400, 1, 1, 1)
    out = build({"type": "RandomFlip"}, (3, 4, 1)).train()(x)
    variants = [x[0], x[0].flip(1), x[0].flip(0), x[0].flip(0).flip(1)]
    which = [next(i for i, v in enumerate(variants) if torch.equal(o, v)) for o in out]
    counts = [which.count(i) for i in range(4)]
    # each of 4 outcomes has p = 1/4: 100 expected of 400, sd sqrt(400 * 3/16) ~ 8.7
    assert all(60 < c < 140 for c in counts), counts


def test_rotation_by_a_quarter_turn_is_rot90():
    # 90 degrees about the center of a 3x3 image: output (x, y) reads input
    # (cx - (y - cy), cy + (x - cx)) = (2 - y, x): numpy's rot90 (counter-clockwise).
    module = build({"type": "RandomRotation", "factor": 0.5, "interpolation": "nearest"}, (3, 3, 1))
    out = module.transform(grid(3, 3), torch.tensor([90.0]))
    assert out[0, :, :, 0].tolist() == [[2, 5, 8], [1, 4, 7], [0, 3, 6]]
    # bilinear lands on the same pixels (cos 90 is 4e-8 in float32, not 0)
    smooth = build({"type": "RandomRotation", "factor": 0.5}, (3, 3, 1)).transform(
        grid(3, 3), torch.tensor([90.0])
    )
    torch.testing.assert_close(smooth, out, atol=1e-5, rtol=0)


def test_fill_modes_on_a_shifted_row():
    # A row 1 2 3 4 shifted right by 2 pixels: output column x reads input column x - 2, i.e.
    # -2, -1, 0, 1: reflect (d c b a | a b c d) gives 2 1 1 2; wrap 3 4 1 2; nearest 1 1 1 2;
    # constant fills the two outside columns with fill_value.
    row = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)
    shift = translation_transforms(torch.tensor([[2.0, 0.0]]))
    expected = {
        "reflect": [2, 1, 1, 2],
        "wrap": [3, 4, 1, 2],
        "nearest": [1, 1, 1, 2],
        "constant": [9, 9, 1, 2],
    }
    for mode, values in expected.items():
        out = affine_warp(row, shift, "bilinear", mode, fill_value=9.0)
        assert out.flatten().tolist() == values, mode
    # Half a pixel, bilinear: each output averages two neighbours (x - 0.5); with constant
    # fill the outside neighbour of column 0 contributes the fill value: (9 + 1) / 2 = 5.
    half = affine_warp(
        row, translation_transforms(torch.tensor([[0.5, 0.0]])), "bilinear", "constant", 9.0
    )
    assert half.flatten().tolist() == [5.0, 1.5, 2.5, 3.5]


def test_translation_and_zoom_given_draws():
    x = grid(3, 3)
    translate = build(
        {
            "type": "RandomTranslation",
            "height_factor": 0.5,
            "width_factor": 0.5,
            "fill_mode": "constant",
        },
        (3, 3, 1),
    )
    # one pixel down: row 0 is filled with 0, rows 1-2 are the input's rows 0-1
    out = translate.transform(x, torch.tensor([[0.0, 1.0]]))[0, :, :, 0]
    assert out.tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]
    # zoom 0.5 about the center of a 5-wide row (cx = 2): output x reads 0.5 * x + 1,
    # i.e. 1, 1.5, 2, 2.5, 3 on the row 0 10 20 30 40 -> 10 15 20 25 30 (magnified)
    zoom = build({"type": "RandomZoom", "height_factor": 0.5}, (1, 5, 1))
    row = torch.tensor([0.0, 10.0, 20.0, 30.0, 40.0]).reshape(1, 1, 5, 1)
    out = zoom.transform(row, torch.tensor([[0.5, 1.0]]))
    assert out.flatten().tolist() == [10.0, 15.0, 20.0, 25.0, 30.0]


@pytest.mark.parametrize(
    ("data", "low", "high"),
    [
        ({"type": "RandomRotation", "factor": 0.1}, -36.0, 36.0),
        ({"type": "RandomRotation", "factor": [0.05, 0.25]}, 18.0, 90.0),
        ({"type": "RandomContrast", "factor": 0.3}, 0.7, 1.3),
        ({"type": "RandomContrast", "factor": [0.1, 0.5]}, 0.9, 1.5),
        ({"type": "RandomBrightness", "factor": [-0.2, 0.1]}, -0.2 * 255, 0.1 * 255),
    ],
)
def test_draws_fill_their_range(data, low, high):
    module = build(data)
    draws = module.draw(torch.zeros(20000, *SHAPE))
    assert draws.min() >= low and draws.max() < high
    # uniform: mean in the middle (sd of the mean: span / sqrt(12 * 20000) ~ span / 490)
    span = high - low
    assert abs(draws.mean().item() - (low + high) / 2) < span / 100
    assert abs(draws.std().item() - span / math.sqrt(12)) < span / 100


def test_translation_and_zoom_draws_scale_with_the_image():
    translate = build(
        {"type": "RandomTranslation", "height_factor": 0.5, "width_factor": [0.0, 0.2]}
    )
    shifts = translate.draw(torch.zeros(5000, *SHAPE))  # [dx, dy] in pixels
    assert 0 <= shifts[:, 0].min() and shifts[:, 0].max() < 0.2 * 7  # width 7
    assert -0.5 * 6 <= shifts[:, 1].min() and shifts[:, 1].max() < 0.5 * 6  # height 6
    zoom = build({"type": "RandomZoom", "height_factor": [-0.2, 0.4]})
    zooms = zoom.draw(torch.zeros(5000, *SHAPE))
    assert torch.equal(zooms[:, 0], zooms[:, 1])  # no width_factor: the same zoom both ways
    assert 0.8 <= zooms.min() and zooms.max() < 1.4


def test_contrast_and_brightness_given_draws():
    x = torch.tensor([[10.0, 30.0]]).reshape(1, 1, 2, 1)  # mean 20
    contrast = build({"type": "RandomContrast", "factor": 1.0, "value_range": [0, 40]}, (1, 2, 1))
    # c = 3: (10 - 20) * 3 + 20 = -10 -> clipped to 0; (30 - 20) * 3 + 20 = 50 -> 40
    assert contrast.transform(x, torch.tensor([3.0])).flatten().tolist() == [0.0, 40.0]
    assert contrast.transform(x, torch.tensor([0.5])).flatten().tolist() == [15.0, 25.0]
    brightness = build(
        {"type": "RandomBrightness", "factor": 0.5, "value_range": [0, 1]}, (1, 2, 1)
    )
    pixels = torch.tensor([[0.2, 0.9]]).reshape(1, 1, 2, 1)
    # + 0.25, clipped to [0, 1]: 0.45, 1.0
    out = brightness.transform(pixels, torch.tensor([0.25])).flatten().tolist()
    assert out == pytest.approx([0.45, 1.0])


def test_random_crop_training_windows_and_inference_center():
    module = build({"type": "RandomCrop", "height": 2, "width": 3}, (4, 5, 1))
    x = grid(4, 5).repeat(300, 1, 1, 1)
    offsets = torch.tensor([[0, 0], [2, 2]])
    out = module.transform(x[:2], offsets)[..., 0].tolist()
    assert out[0] == [[0, 1, 2], [5, 6, 7]] and out[1] == [[12, 13, 14], [17, 18, 19]]
    # training: every output is a window of the input at its own offset
    train = module.train()(x)
    corners = train[:, 0, 0, 0].long()
    tops, lefts = corners // 5, corners % 5
    assert 0 <= tops.min() and tops.max() <= 2 and 0 <= lefts.min() and lefts.max() <= 2
    assert len(set(corners.tolist())) == 9  # all 3 x 3 offsets occur among 300 draws
    for image, top, left in zip(train[:20], tops[:20], lefts[:20], strict=True):
        assert torch.equal(image, x[0, top : top + 2, left : left + 3])
    # inference: the largest centered 2:3 window, rows int(5*2/3) = 3 -> top int(1/2) = 0,
    # columns min(5, int(4*3/2) = 6) = 5, resized 3x5 -> 2x3 (Keras' smart_resize)
    from kcli.model.nn.resize import resize_channels_last

    expected = resize_channels_last(x[:1, 0:3, :], (2, 3))
    torch.testing.assert_close(module.eval()(x[:1]), expected)
    # an image smaller than the window is resized in training too
    small = build({"type": "RandomCrop", "height": 6, "width": 6}, (4, 5, 1)).train()
    assert small(x[:3]).shape == (3, 6, 6, 1)


def test_augmentation_arguments():
    bad = [
        {"type": "RandomRotation", "factor": 1.5},
        {"type": "RandomTranslation", "height_factor": [0.1, 1.2], "width_factor": 0.1},
        {"type": "RandomZoom", "height_factor": -1.0},
        {"type": "RandomContrast", "factor": -0.1},
        {"type": "RandomBrightness", "factor": [0.0, 2.0]},
        {"type": "RandomFlip", "mode": "diagonal"},
        {"type": "RandomRotation", "factor": 0.1, "fill_mode": "mirror"},
        {"type": "RandomCrop", "height": 0, "width": 2},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            layer_registry.validate_spec(data)
    with pytest.raises(ShapeError, match="RandomFlip expects an image"):
        layer_registry.validate_spec({"type": "RandomFlip"}).output_shape([(4, 4)])
    spec = layer_registry.validate_spec(
        {"type": "RandomBrightness", "factor": 0.1, "value_range": [1, 0]}
    )
    assert spec.value_range == (0.0, 1.0)  # sorted, as Keras does


def test_augmentation_exports_in_eval_mode():
    x = torch.rand(3, *SHAPE)
    for data in [*LAYERS, {"type": "RandomCrop", "height": 4, "width": 4}]:
        module = build(data).eval()
        exported = torch.export.export(module, (x,))
        torch.testing.assert_close(exported.module()(x), module(x))
