"""compile's per-output forms (Keras' multi-output compile), torch-free: which loss, weight and
metrics each output gets, and the names they are logged under."""

from __future__ import annotations

import pytest

from kcli.compile.spec import CompileSpec
from kcli.errors import KcliError

OUTPUTS = ["label", "value"]


def names(spec: dict, outputs=OUTPUTS) -> list[str]:
    return [m.log_name for m in CompileSpec.model_validate(spec).logged_metrics(outputs)]


def test_one_loss_applies_to_every_output_with_weight_one():
    heads = CompileSpec.model_validate({"loss": "mse"}).heads(OUTPUTS)
    assert [(h.name, h.loss.type, h.weight) for h in heads] == [
        ("label", "mean_squared_error", 1.0),
        ("value", "mean_squared_error", 1.0),
    ]


def test_a_full_spec_is_one_loss_not_a_mapping():
    heads = CompileSpec.model_validate({"loss": {"type": "huber", "delta": 2.0}}).heads(OUTPUTS)
    assert [h.loss.delta for h in heads] == [2.0, 2.0]


def test_mapping_and_list_forms_give_each_output_its_own():
    spec = {"loss": ["sparse_categorical_crossentropy", "mse"], "loss_weights": {"value": 0.25}}
    heads = CompileSpec.model_validate(spec).heads(OUTPUTS)
    assert [h.loss.type for h in heads] == ["sparse_categorical_crossentropy", "mean_squared_error"]
    assert [h.weight for h in heads] == [1.0, 0.25]  # left out of the mapping: Keras' 1
    assert [h.loss_loc for h in heads] == [("compile", "loss", 0), ("compile", "loss", 1)]


def test_metric_names_follow_keras():
    loss = {"label": "sparse_categorical_crossentropy", "value": "mse"}
    # A flat list: every output; `accuracy` resolved against each output's loss.
    assert names({"loss": loss, "metrics": ["accuracy", "mae"]}) == [
        "label_accuracy",
        "label_mae",
        "value_accuracy",
        "value_mae",
    ]
    # A mapping; a weighted metric whose name is taken gets `<output>_weighted_` (Keras 3).
    spec = {
        "loss": loss,
        "metrics": {"label": "accuracy"},
        "weighted_metrics": {"label": ["accuracy"]},
    }
    assert names(spec) == ["label_accuracy", "label_weighted_accuracy"]
    # A list of lists, in output order; a repeated name gets _1.
    spec = {"loss": loss, "metrics": [["mae", "mae"], ["mae"]]}
    assert names(spec) == ["label_mae", "label_mae_1", "value_mae"]
    # One output: no prefixes, as before.
    assert names({"loss": "mse", "metrics": ["mae"]}, ["dense_1"]) == ["mae"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"loss": {"label": "mse"}}, "gives no loss for output(s) value"),
        ({"loss": {"label": "mse", "valeu": "mse"}}, "did you mean 'value'"),
        ({"loss": ["mse"]}, "has 1 entries but the model has 2 output(s)"),
        ({"loss": "mse", "loss_weights": [1, 2, 3]}, "has 3 entries"),
        ({"loss": "mse", "metrics": [["mae"]]}, "has 1 entries"),
    ],
)
def test_forms_that_do_not_fit_the_outputs_are_errors(spec, message):
    with pytest.raises(KcliError) as raised:
        CompileSpec.model_validate(spec).logged_metrics(OUTPUTS)
    assert message in str(raised.value)
