"""Rescaling, Resizing, CenterCrop: shapes, no weights, and values worked out by hand."""

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def build(data: dict, shape: tuple):
    return layer_registry.validate_spec(data).build([shape]).eval()


def image(rows: list[list[float]]) -> torch.Tensor:
    """One single-channel image (1, H, W, 1) from its rows."""
    return torch.tensor(rows, dtype=torch.float32)[None, :, :, None]


@pytest.mark.parametrize(
    ("data", "shape", "out"),
    [
        ({"type": "Rescaling", "scale": 0.5}, (4, 5, 3), (4, 5, 3)),
        ({"type": "Rescaling", "scale": [1.0, 2.0], "offset": [0.0, 1.0]}, (3, 2), (3, 2)),
        ({"type": "Resizing", "height": 3, "width": 7}, (8, 8, 2), (3, 7, 2)),
        ({"type": "Resizing", "height": 3, "width": 7}, (None, None, 2), (3, 7, 2)),
        ({"type": "CenterCrop", "height": 3, "width": 2}, (8, 8, 2), (3, 2, 2)),
        ({"type": "CenterCrop", "height": 30, "width": 2}, (8, 8, 2), (30, 2, 2)),
    ],
)
def test_preprocessing_layers_have_no_weights(check_layer, data, shape, out):
    if None in shape:  # the rule takes unknown sizes; a batch has real ones
        assert layer_registry.validate_spec(data).output_shape([shape]) == out
        return
    check_layer(data, [shape], out, (0, 0))


def test_rescaling_pixels_to_unit_range_and_per_channel():
    module = build({"type": "Rescaling", "scale": 1 / 255, "offset": -0.5}, (2,))
    # 255 / 255 - 0.5 = 0.5; 0 / 255 - 0.5 = -0.5
    out = module(torch.tensor([[255.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.5, -0.5]]))
    per_channel = build({"type": "Rescaling", "scale": [2.0, 10.0], "offset": [1.0, 0.0]}, (2,))
    # channel 0: 3 * 2 + 1 = 7; channel 1: 3 * 10 + 0 = 30
    assert per_channel(torch.tensor([[3.0, 3.0]])).tolist() == [[7.0, 30.0]]
    ints = build({"type": "Rescaling", "scale": 0.5}, (2,))(torch.tensor([[3, 4]]))
    assert ints.dtype == torch.float32 and ints.tolist() == [[1.5, 2.0]]  # Keras computes floats


def test_rescaling_channel_count_must_fit():
    spec = layer_registry.validate_spec({"type": "Rescaling", "scale": [1.0, 2.0, 3.0]})
    with pytest.raises(ShapeError, match=r"scale has 3 values.*\(None, 4, 2\)"):
        spec.output_shape([(4, 2)])
    with pytest.raises(ValidationError):
        layer_registry.validate_spec({"type": "Rescaling", "scale": []})


def test_resizing_bilinear_uses_half_pixel_centers():
    # Width 2 -> 4: output column j reads source x = (j + 0.5) * 2/4 - 0.5 = -0.25, 0.25, 0.75,
    # 1.25, clamped into [0, 1]: values 0, 0.25*4, 0.75*4, 4 from the row [0, 4].
    out = build({"type": "Resizing", "height": 1, "width": 4}, (1, 2, 1))(image([[0.0, 4.0]]))
    torch.testing.assert_close(out[0, :, :, 0], torch.tensor([[0.0, 1.0, 3.0, 4.0]]))
    # Halving averages 2x2 blocks: x = (j + 0.5) * 2 - 0.5 = 2j + 0.5, between pixels 2j, 2j+1.
    rows = [[0.0, 2.0, 4.0, 6.0], [2.0, 4.0, 6.0, 8.0]]
    out = build({"type": "Resizing", "height": 1, "width": 2}, (2, 4, 1))(image(rows))
    torch.testing.assert_close(out[0, :, :, 0], torch.tensor([[2.0, 6.0]]))


def test_resizing_nearest_and_bicubic():
    data = {"type": "Resizing", "height": 1, "width": 4, "interpolation": "nearest"}
    # nearest-exact: source floor((j + 0.5) / 2) = 0, 0, 1, 1
    out = build(data, (1, 2, 1))(image([[5.0, 7.0]]))
    assert out[0, 0, :, 0].tolist() == [5.0, 5.0, 7.0, 7.0]
    # bicubic is the identity at the same size
    ramp = image([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    same = build({**data, "width": 8, "interpolation": "bicubic"}, (1, 8, 1))(ramp)
    torch.testing.assert_close(same, ramp)
    up = build({**data, "width": 16, "interpolation": "bicubic"}, (1, 8, 1))(ramp)
    # Output column 5 reads x = (5 + 0.5) / 2 - 0.5 = 2.25: taps 1..4 at distances 1.25, 0.25,
    # 0.75, 1.75 with torch's cubic kernel (A = -0.75): |d| <= 1: (1.25|d| - 2.25)d^2 + 1,
    # else ((-0.75|d| + 3.75)|d| - 6)|d| + 3 -> -0.10546875, 0.87890625, 0.26171875,
    # -0.03515625; on the ramp (pixel i holds i): 1*w1 + 2*w2 + 3*w3 + 4*w4 = 2.296875.
    assert up[0, 0, 5, 0].item() == pytest.approx(2.296875, abs=1e-5)


def test_resizing_crop_and_pad_to_aspect_ratio():
    # 4x8 to 2x2: the largest centered square is rows 0..3, columns int((8-4)/2) = 2..5, then
    # halved: each output pixel is the mean of a 2x2 block of those columns.
    x = torch.arange(32, dtype=torch.float32).reshape(1, 4, 8, 1)
    crop = {"type": "Resizing", "height": 2, "width": 2, "crop_to_aspect_ratio": True}
    out = build(crop, (4, 8, 1))(x)[0, :, :, 0]
    # block rows 0-1, columns 2-3: (2 + 3 + 10 + 11) / 4 = 6.5; columns 4-5: 8.5; rows 2-3: +16
    torch.testing.assert_close(out, torch.tensor([[6.5, 8.5], [22.5, 24.5]]))
    # 2x4 to 4x4: padded to 4 rows (int((4 - 2) / 2) = 1 on top and bottom), then 4x4 -> 4x4.
    pad = {"type": "Resizing", "height": 4, "width": 4, "pad_to_aspect_ratio": True}
    out = build({**pad, "fill_value": -1.0}, (2, 4, 1))(torch.ones(1, 2, 4, 1))[0, :, :, 0]
    assert out.tolist() == [[-1.0] * 4, [1.0] * 4, [1.0] * 4, [-1.0] * 4]
    with pytest.raises(ValidationError, match="cannot both be true"):
        layer_registry.validate_spec({**pad, "crop_to_aspect_ratio": True})


def test_center_crop_takes_the_middle_or_resizes_a_smaller_image():
    x = torch.arange(25, dtype=torch.float32).reshape(1, 5, 5, 1)
    out = build({"type": "CenterCrop", "height": 3, "width": 2}, (5, 5, 1))(x)
    # rows (5 - 3) // 2 = 1..3, columns (5 - 2) // 2 = 1..2
    assert out[0, :, :, 0].tolist() == [[6.0, 7.0], [11.0, 12.0], [16.0, 17.0]]
    # A 2x2 image and a 4x4 window: the whole image (already square) upsampled bilinearly,
    # so the corners keep their values (half-pixel sources clamp to the edge).
    small = image([[0.0, 4.0], [8.0, 12.0]])
    out = build({"type": "CenterCrop", "height": 4, "width": 4}, (2, 2, 1))(small)[0, :, :, 0]
    assert out.shape == (4, 4) and out[0, 0] == 0.0 and out[3, 3] == 12.0
    assert out[0, 1].item() == pytest.approx(1.0)  # x = 0.25: 0.75 * 0 + 0.25 * 4


def test_image_layers_refuse_other_ranks_by_name():
    for data in (
        {"type": "Resizing", "height": 2, "width": 2},
        {"type": "CenterCrop", "height": 2, "width": 2},
    ):
        with pytest.raises(ShapeError, match=rf"{data['type']} expects an image"):
            layer_registry.validate_spec(data).output_shape([(4, 4)])
