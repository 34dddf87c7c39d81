"""A two-output model compiled and evaluated by kcli and by Keras 3: the same names and numbers.

The Keras model is the recipe's (Dense 8 tanh with an L2 kernel penalty, then a 3-class softmax
head `label` and a linear head `value`), given kcli's weights (torch's (out, in) Dense kernels
transposed to Keras' (in, out)). Both compile with a loss per output, loss_weights, metrics and
weighted_metrics by output, and evaluate one batch: every logged name and value must agree,
including Keras' `label_weighted_accuracy` for a weighted metric whose name is taken.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")

from tests.train.test_multi_output import TWO_HEADS, two_head_data  # noqa: E402

RECIPE = TWO_HEADS.replace(
    "  metrics: {label: [accuracy], value: [mae]}",
    "  metrics: {label: [accuracy], value: [mae]}\n  weighted_metrics: {label: [accuracy]}",
)


def keras_model(weights: dict[str, torch.Tensor]):
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(
        8, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.01), name="hidden"
    )
    label = keras.layers.Dense(3, activation="softmax", name="label")
    value = keras.layers.Dense(1, name="value")
    h = hidden(inputs)
    model = keras.Model(inputs, [label(h), value(h)])
    for layer in (hidden, label, value):
        kernel = weights[f"{layer.name}.kernel"].numpy().T  # torch (out, in) -> Keras (in, out)
        layer.set_weights([kernel, weights[f"{layer.name}.bias"].numpy()])
    model.compile(
        optimizer="adam",
        loss={"label": "sparse_categorical_crossentropy", "value": "mse"},
        loss_weights={"label": 1.0, "value": 0.5},
        metrics={"label": ["accuracy"], "value": ["mae"]},
        weighted_metrics={"label": ["accuracy"]},
    )
    return model


def test_names_and_values_match_keras_evaluate(tmp_path):
    from kcli.compile.outputs import output_loss_names
    from kcli.fit.steps import Accumulator, Stepper
    from kcli.recipe.load import load_recipe
    from kcli.train.setup import prepare

    np.savez(tmp_path / "data.npz", **two_head_data())
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    prepared = prepare(load_recipe(tmp_path / "recipe.yaml"), "cpu")
    model = prepared.model.eval()
    data = two_head_data(n=24, seed=11)
    x, labels, values = data["x"], data["label"], data["value"]

    stepper = Stepper(model, prepared.objectives, None, torch.device("cpu"))
    accumulator = Accumulator.zeros(torch.device("cpu"), len(prepared.objectives))
    metrics = [spec.streaming() for spec in prepared.metric_specs]
    y = {"label": torch.from_numpy(labels), "value": torch.from_numpy(values)}
    stepper.eval_step(torch.from_numpy(x), y, None, accumulator, metrics)
    ours = {"loss": float(accumulator.loss_sum) / len(x)}
    loss_names = output_loss_names(prepared.plan.outputs)
    for name, total in zip(loss_names, accumulator.output_sums, strict=True):
        ours[name] = float(total) / len(x)
    for spec, metric in zip(prepared.metric_specs, metrics, strict=True):
        ours[spec.log_name] = float(metric.compute())

    reference = keras_model(model.state_dict()).evaluate(
        x, {"label": labels, "value": values}, batch_size=len(x), return_dict=True, verbose=0
    )
    assert sorted(ours) == sorted(reference)
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
