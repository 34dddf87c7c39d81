"""Cropping1D/2D/3D, ZeroPadding1D/3D, UpSampling1D/3D: shapes, Keras' argument forms, values.

Values are worked out by hand on small ramps (tests/parity compares the same layers with Keras).
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


def run(data: dict, x: torch.Tensor) -> torch.Tensor:
    layer = spec(data)
    shape = tuple(x.shape[1:])
    out = layer.build([shape])(x)
    assert tuple(out.shape[1:]) == layer.output_shape([shape])
    return out


SHAPES = [
    # Keras' defaults: Cropping1D (1, 1), Cropping2D none, Cropping3D 1 everywhere.
    ({"type": "Cropping1D"}, (5, 2), (3, 2)),
    ({"type": "Cropping1D", "cropping": [2, 0]}, (5, 2), (3, 2)),
    ({"type": "Cropping2D"}, (4, 5, 2), (4, 5, 2)),
    ({"type": "Cropping2D", "cropping": [1, 2]}, (4, 5, 2), (2, 1, 2)),  # rows 1+1, cols 2+2
    ({"type": "Cropping3D"}, (4, 3, 5, 2), (2, 1, 3, 2)),
    ({"type": "Cropping3D", "cropping": [[0, 1], [1, 0], [2, 2]]}, (4, 3, 9, 2), (3, 2, 5, 2)),
    ({"type": "Cropping1D"}, (None, 2), (None, 2)),  # an unknown length stays unknown
    # ZeroPadding1D default 1 on each end; ZeroPadding3D 1 on each side of each axis.
    ({"type": "ZeroPadding1D"}, (4, 2), (6, 2)),
    ({"type": "ZeroPadding1D", "padding": [0, 3]}, (4, 2), (7, 2)),
    ({"type": "ZeroPadding3D"}, (2, 3, 2, 2), (4, 5, 4, 2)),
    ({"type": "ZeroPadding3D", "padding": [1, 0, 2]}, (2, 3, 2, 2), (4, 3, 6, 2)),
    # UpSampling1D default 2; UpSampling3D 2 on each axis.
    ({"type": "UpSampling1D"}, (4, 2), (8, 2)),
    ({"type": "UpSampling3D", "size": [1, 2, 3]}, (2, 3, 2, 2), (2, 6, 6, 2)),
]


@pytest.mark.parametrize("data,shape,expected", SHAPES)
def test_shapes_and_no_weights(check_layer, data, shape, expected):
    if None in shape:
        assert spec(data).output_shape([shape]) == expected
    else:
        check_layer(data, [shape], expected, (0, 0))


def test_values_by_hand():
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)  # steps 1..5
    assert run({"type": "Cropping1D", "cropping": [2, 1]}, x).flatten().tolist() == [3.0, 4.0]
    padded = run({"type": "ZeroPadding1D", "padding": [1, 2]}, x).flatten().tolist()
    assert padded == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]
    repeated = run({"type": "UpSampling1D", "size": 2}, x[:, :3]).flatten().tolist()
    assert repeated == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    image = torch.arange(12.0).reshape(1, 3, 4, 1)  # rows [0 1 2 3], [4 5 6 7], [8 9 10 11]
    cropped = run({"type": "Cropping2D", "cropping": [[1, 0], [0, 2]]}, image)
    assert cropped[0, :, :, 0].tolist() == [[4.0, 5.0], [8.0, 9.0]]
    volume = torch.arange(8.0).reshape(1, 2, 2, 2, 1)
    up = run({"type": "UpSampling3D", "size": [2, 1, 1]}, volume)
    assert up[0, :, 0, 0, 0].tolist() == [0.0, 0.0, 4.0, 4.0]  # each depth slice twice
    pad = run({"type": "ZeroPadding3D", "padding": [[1, 0], [0, 0], [0, 1]]}, volume)
    assert pad[0, 0].abs().sum() == 0 and pad[0, 1:, :, :2].equal(volume[0])
    assert pad[0, :, :, 2].abs().sum() == 0


def test_bad_amounts_and_shapes():
    with pytest.raises(ValidationError, match="cropping must be >= 0"):
        spec({"type": "Cropping1D", "cropping": [-1, 0]})
    with pytest.raises(ValidationError, match="takes an int, 3 ints, or 3 pairs"):
        spec({"type": "ZeroPadding3D", "padding": [1, 2]})
    with pytest.raises(ValidationError, match="size is an int or 3 ints"):
        spec({"type": "UpSampling3D", "size": [2, 2]})
    with pytest.raises(ShapeError, match="nothing would be left"):
        spec({"type": "Cropping1D", "cropping": [2, 3]}).output_shape([(5, 2)])
    with pytest.raises(ShapeError, match=r"Cropping3D expects a volume"):
        spec({"type": "Cropping3D"}).output_shape([(4, 4, 2)])
