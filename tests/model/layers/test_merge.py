"""Merge layers: shapes, values, broadcasting and the shape errors that name every input."""

import pytest
import torch

from kcli.errors import ShapeError
from kcli.model.layers import layer_registry

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def spec(data: dict):
    return layer_registry.get(data["type"]).model_validate(data)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_shape_and_no_weights(check_layer, name):
    check_layer({"type": name}, [(3, 4), (3, 4)], (3, 4), (0, 0))


def test_input_counts():
    assert layer_registry.get("Add").n_inputs == (2, None)
    assert layer_registry.get("Concatenate").n_inputs == (2, None)
    assert layer_registry.get("Subtract").n_inputs == (2, 2)


def test_elementwise_values():
    a = torch.tensor([[1.0, -2.0, 3.0]])
    b = torch.tensor([[4.0, 5.0, -6.0]])
    c = torch.tensor([[1.0, 0.0, 0.0]])
    shapes = [(3,)] * 3

    def run(name, *xs):
        return spec({"type": name}).build(shapes[: len(xs)])(*xs)[0].tolist()

    assert run("Add", a, b, c) == [1 + 4 + 1, -2 + 5 + 0, 3 - 6 + 0]  # [6, 3, -3]
    assert run("Subtract", a, b) == [1 - 4, -2 - 5, 3 + 6]  # [-3, -7, 9]
    assert run("Multiply", a, b, c) == [1 * 4 * 1, 0.0, 0.0]
    assert run("Average", a, b, c) == [6 / 3, 3 / 3, -3 / 3]  # the sums above over 3
    assert run("Maximum", a, b, c) == [4.0, 5.0, 3.0]
    assert run("Minimum", a, b, c) == [1.0, -2.0, -6.0]


def test_add_broadcasts_a_vector_over_steps(check_layer):
    # Keras aligns shapes from the last axis: (3, 4) + (4,) adds the vector at every step.
    module, _ = check_layer({"type": "Add"}, [(3, 4), (4,)], (3, 4), (0, 0))
    x = torch.rand(2, 3, 4)
    v = torch.rand(2, 4)
    out = module(x, v)
    for step in range(3):
        torch.testing.assert_close(out[:, step], x[:, step] + v)


def test_size_one_and_unknown_sizes_broadcast():
    add = spec({"type": "Add"})
    assert add.output_shape([(3, 1), (1, 4)]) == (3, 4)
    assert add.output_shape([(None, 4), (5, 4)]) == (5, 4)
    assert add.output_shape([(None, 4), (None, 4)]) == (None, 4)


def test_add_of_unequal_shapes_names_them_all():
    with pytest.raises(ShapeError) as err:
        spec({"type": "Add"}).output_shape([(3, 4), (3, 4), (3, 5)])
    message = str(err.value)
    assert "Add inputs have incompatible shapes" in message
    assert "(None, 3, 4), (None, 3, 4), (None, 3, 5)" in message


def test_subtract_takes_exactly_two():
    with pytest.raises(ShapeError, match=r"Subtract takes 2 inputs, got 3: \(None, 4\)"):
        spec({"type": "Subtract"}).output_shape([(4,), (4,), (4,)])
    with pytest.raises(ShapeError, match=r"Multiply takes at least 2 inputs, got 1"):
        spec({"type": "Multiply"}).output_shape([(4,)])


def test_concatenate_last_axis(check_layer):
    # 3 + 5 features on the default axis -1.
    module, _ = check_layer({"type": "Concatenate"}, [(3,), (5,)], (8,), (0, 0))
    a, b = torch.rand(2, 3), torch.rand(2, 5)
    out = module(a, b)
    assert torch.equal(out[:, :3], a) and torch.equal(out[:, 3:], b)


def test_concatenate_other_axis(check_layer):
    # axis 1 (the first after the batch): (2, 3) and (4, 3) -> (2 + 4, 3).
    check_layer({"type": "Concatenate", "axis": 1}, [(2, 3), (4, 3)], (6, 3), (0, 0))
    assert spec({"type": "Concatenate"}).output_shape([(None, 3), (5, 2)]) == (5, 5)
    assert spec({"type": "Concatenate"}).output_shape([(3, None), (3, 2)]) == (3, None)


def test_concatenate_of_unequal_ranks_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"one rank, got shapes \(None, 3\), \(None, 2, 3\)"):
        spec({"type": "Concatenate"}).output_shape([(3,), (2, 3)])


def test_concatenate_of_mismatched_other_axes_is_a_shape_error():
    with pytest.raises(ShapeError) as err:
        spec({"type": "Concatenate"}).output_shape([(2, 3), (4, 3)])
    message = str(err.value)
    assert "Concatenate on axis -1 needs equal sizes on every other axis" in message
    assert "(None, 2, 3), (None, 4, 3)" in message and "axis 1 differs: [2, 4]" in message


def test_concatenate_batch_axis_is_not_allowed():
    with pytest.raises(ShapeError, match="Concatenate axis 0 is not a feature axis"):
        spec({"type": "Concatenate", "axis": 0}).output_shape([(3,), (3,)])


def test_merge_modules_export_with_any_batch_size():
    batch = torch.export.Dim("batch", min=2, max=1024)
    for data, shapes in [
        ({"type": "Add"}, [(3, 4), (4,)]),
        ({"type": "Concatenate"}, [(3,), (5,)]),
    ]:
        module = spec(data).build(shapes)
        example = tuple(torch.rand(2, *s) for s in shapes)
        dynamic = (tuple({0: batch} for _ in shapes),)  # forward(*inputs): one varargs entry
        exported = torch.export.export(module, example, dynamic_shapes=dynamic)
        inputs = tuple(torch.rand(5, *s) for s in shapes)
        assert torch.equal(exported.module()(*inputs), module(*inputs)), data["type"]
