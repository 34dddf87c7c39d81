"""Training parity with Keras 3, end to end: one epoch of `kcli train` against `model.fit`.

Both sides start from the same initial weights (Keras draws them and saves a .keras file; the
kcli recipe starts from it through `model.weights`), see the same float32 data in the same order
(`shuffle: false`, no validation split, no preprocessing), and train one epoch of 4 batches of
16. Then kcli's final weights (the run's checkpoints/last.pt, mapped to Keras' layout by
kcli.model.keras_weights) and its logged epoch loss must equal Keras' weights and
`history["loss"]` within 1e-5 relative. Both log the same number: the batch-size-weighted mean
of each batch's loss (L1/L2 penalties included) before that batch's update; Keras sums it in a
float32 Mean metric, kcli in float64, a difference near 1e-7 relative.

The tolerance is 1e-5 relative with an absolute floor of 1e-6 for entries that end near 0: both
run the same float32 math through torch, but Keras' Dense multiplies x @ W (in, out) where kcli
runs F.linear with (out, in) kernels, so the two sums are rounded in a different order (about
1e-7 relative per product); four steps carry that far below 1e-5. Each case also checks that
training moved the weights by far more than that tolerance, so an update rule that did nothing
or too little could not pass.

Cases: every optimizer with Keras' defaults (Adadelta at learning rate 1.0: its default 0.001
moves a weight by about 3e-7 per step, under the tolerance, so the case would show nothing),
the variants the issue names (SGD momentum + nesterov, RMSprop centered, Adam amsgrad), then a
schedule, clipnorm and weight_decay, a model with L1/L2 regularizers and one with
BatchNormalization. Crossentropy on a softmax output is the one place the two differ by design
(KERAS_FACTS.md): Keras clips probabilities to [1e-7, 1 - 1e-7], kcli computes from the
logits; on this data no probability comes near the clip, so they agree here too, and the case
says so by asserting it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.keras_weights import keras_weights_of  # noqa: E402
from tests.train.conftest import run_cli  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
N, FEATURES, OUTPUTS, BATCH = 64, 5, 3, 16

# (id, kcli optimizer spec (Keras' names: the same dict makes the Keras optimizer), model)
SCHEDULE = {"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_steps": 1,
            "decay_rate": 0.5}  # fmt: skip
CASES = [
    ("SGD", {"type": "SGD"}, "mlp"),
    ("SGD-momentum-nesterov", {"type": "SGD", "momentum": 0.9, "nesterov": True}, "mlp"),
    ("RMSprop", {"type": "RMSprop"}, "mlp"),
    ("RMSprop-centered", {"type": "RMSprop", "centered": True}, "mlp"),
    ("Adagrad", {"type": "Adagrad"}, "mlp"),
    ("Adadelta-lr1", {"type": "Adadelta", "learning_rate": 1.0}, "mlp"),
    ("Adam", {"type": "Adam"}, "mlp"),
    ("Adam-amsgrad", {"type": "Adam", "amsgrad": True}, "mlp"),
    ("AdamW", {"type": "AdamW"}, "mlp"),
    ("Nadam", {"type": "Nadam"}, "mlp"),
    ("Adamax", {"type": "Adamax"}, "mlp"),
    ("Lion", {"type": "Lion"}, "mlp"),
    ("SGD-momentum-schedule", {"type": "SGD", "momentum": 0.9, "learning_rate": SCHEDULE}, "mlp"),
    ("Adam-schedule", {"type": "Adam", "learning_rate": SCHEDULE}, "mlp"),
    ("SGD-clipnorm", {"type": "SGD", "learning_rate": 0.1, "clipnorm": 0.05}, "mlp"),
    ("Adam-clipnorm", {"type": "Adam", "clipnorm": 0.05}, "mlp"),
    ("SGD-weight_decay", {"type": "SGD", "weight_decay": 0.5}, "mlp"),
    ("Adam-weight_decay", {"type": "Adam", "weight_decay": 0.5}, "mlp"),
    ("Adam-regularizers", {"type": "Adam"}, "regularized"),
    ("SGD-momentum-batchnorm", {"type": "SGD", "momentum": 0.9}, "batchnorm"),
    ("Adam-softmax-crossentropy", {"type": "Adam"}, "classifier"),
]

# kcli layers (Keras' argument names, so the same dicts make the Keras layers) per model.
MODELS = {
    "mlp": [
        {"type": "Dense", "units": 4, "activation": "tanh", "name": "hidden"},
        {"type": "Dense", "units": OUTPUTS, "name": "out"},
    ],
    "regularized": [
        {
            "type": "Dense",
            "units": 4,
            "activation": "tanh",
            "name": "hidden",
            "kernel_regularizer": {"l1": 0.01},
            "bias_regularizer": {"l2": 0.1},
        },
        {
            "type": "Dense",
            "units": OUTPUTS,
            "name": "out",
            "kernel_regularizer": {"l1": 0.005, "l2": 0.05},
        },
    ],  # fmt: skip
    "batchnorm": [
        {"type": "Dense", "units": 4, "name": "hidden"},
        {"type": "BatchNormalization", "name": "bn"},
        {"type": "Activation", "activation": "relu", "name": "act"},
        {"type": "Dense", "units": OUTPUTS, "name": "out"},
    ],
    "classifier": [
        {"type": "Dense", "units": 4, "activation": "tanh", "name": "hidden"},
        {"type": "Dense", "units": OUTPUTS, "activation": "softmax", "name": "out"},
    ],
}


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (x[:, :OUTPUTS] * 0.8 + 0.3 * rng.normal(size=(N, OUTPUTS))).astype("float32")
    labels = np.eye(OUTPUTS, dtype="float32")[rng.integers(0, OUTPUTS, N)]  # one-hot classes
    return x, y, labels


def _keras_regularizer(value):
    return keras.regularizers.L1L2(l1=value.get("l1", 0.0), l2=value.get("l2", 0.0))


def _keras_model(model: str):
    layers = [keras.Input((FEATURES,))]
    for spec in MODELS[model]:
        args = {k: v for k, v in spec.items() if k != "type"}
        for key in ("kernel_regularizer", "bias_regularizer"):
            if key in args:
                args[key] = _keras_regularizer(args[key])
        layers.append(getattr(keras.layers, spec["type"])(**args))
    return keras.Sequential(layers, name="parity")


def _keras_optimizer(spec: dict):
    args = {k: v for k, v in spec.items() if k != "type"}
    if isinstance(args.get("learning_rate"), dict):
        schedule = dict(args["learning_rate"])
        args["learning_rate"] = getattr(keras.optimizers.schedules, schedule.pop("type"))(
            **schedule
        )
    return getattr(keras.optimizers, spec["type"])(**args)


def _recipe(folder: Path, optimizer: dict, model: str, loss: str) -> Path:
    recipe = {
        "name": "parity",
        "seed": 1,
        "data": {"source": "data.npz"},
        "model": {"input_shape": [FEATURES], "weights": "initial.keras", "layers": MODELS[model]},
        "compile": {"optimizer": optimizer, "loss": loss},
        "fit": {"epochs": 1, "batch_size": BATCH, "shuffle": False},
    }
    path = folder / "recipe.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def _kcli_final_weights(recipe: Path, run_dir: Path) -> dict[str, list[np.ndarray]]:
    from kcli.recipe.load import load_recipe

    model = load_recipe(recipe).build_model().model
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    model.load_state_dict(state)
    return keras_weights_of(model)


@pytest.mark.parametrize(("optimizer", "model"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_epoch_of_kcli_train_is_keras_fit(optimizer, model, tmp_path):
    x, y, labels = _data()
    classifier = model == "classifier"
    target = labels if classifier else y
    loss = "categorical_crossentropy" if classifier else "mse"
    np.savez(tmp_path / "data.npz", x=x, y=target)

    keras.utils.set_random_seed(3)
    theirs = _keras_model(model)
    theirs.save(tmp_path / "initial.keras")
    initial = {layer.name: layer.get_weights() for layer in theirs.layers if layer.weights}
    theirs.compile(optimizer=_keras_optimizer(optimizer), loss=loss)
    history = theirs.fit(x, target, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    recipe = _recipe(tmp_path, optimizer, model, loss)
    result = run_cli("train", str(recipe), "--runs-dir", str(tmp_path / "runs"), "--json", "-q")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    ours = _kcli_final_weights(recipe, Path(document["run_dir"]))

    np.testing.assert_allclose(document["metrics"]["loss"], history.history["loss"][0], rtol=RTOL)
    moved = 0.0
    for layer in theirs.layers:
        if not layer.weights:
            continue
        want = layer.get_weights()
        assert len(ours[layer.name]) == len(want), layer.name
        for k, (got, expected) in enumerate(zip(ours[layer.name], want, strict=True)):
            label = f"{layer.name} weight {k} ({layer.weights[k].path})"
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=label)
            moved = max(moved, float(np.abs(expected - initial[layer.name][k]).max()))
    assert moved > 100 * ATOL  # training changed the weights far beyond the tolerance
