"""`kcli import` and `kcli export --format keras` against Keras 3 itself (issue 14).

For a dozen architectures, both ways:
  - Keras -> kcli: a Keras model with seeded random weights (never Keras' initial values, so a
    transposed or misordered weight cannot hide) is saved as .keras and imported through the
    CLI; the recipe's model, built with the imported weights file, predicts what Keras
    predicts on random inputs, within 1e-5.
  - kcli -> Keras: the imported recipe, given data, is trained for an epoch by `kcli train`,
    exported with `kcli export --format keras`, and `keras.saving.load_model` of the file
    predicts what the run predicts on raw inputs (its preprocessing is inside the archive).
The compile config, to_json files and refusals: test_keras_config_import.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the interop tests need Keras' torch backend", allow_module_level=True)

from kcli.cli import app  # noqa: E402

layers = keras.layers
# Keras' own warning when a compiled archive holds no optimizer state (as its untrained saves).
pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
VOCAB = 20


def _mlp():
    return keras.Sequential(
        [keras.Input((6,)), layers.Dense(5, activation="relu"), layers.Dense(3, "softmax")]
    )


def _cnn():
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(3),
        ]
    )


def _batch_norm():
    return keras.Sequential(
        [keras.Input((5,)), layers.Dense(4), layers.BatchNormalization(), layers.Dense(2)]
    )


def _lstm():
    return keras.Sequential(
        [keras.Input((7, 3)), layers.LSTM(4, return_sequences=True), layers.LSTM(3)]
    )


def _gru():
    return keras.Sequential([keras.Input((7, 3)), layers.GRU(4), layers.Dense(2)])


def _bidirectional():
    return keras.Sequential(
        [keras.Input((7, 3)), layers.Bidirectional(layers.LSTM(4)), layers.Dense(2)]
    )


def _embedding():
    return keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            layers.Embedding(VOCAB, 4),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2),
        ]
    )


def _separable():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.SeparableConv2D(4, 3, depth_multiplier=2, activation="relu"),
            layers.GlobalMaxPooling2D(),
        ]
    )


def _conv1d_same():
    return keras.Sequential(
        [keras.Input((9, 3)), layers.Conv1D(4, 3, padding="same"), layers.Flatten()]
    )


def _residual():
    x = keras.Input((6,))
    h = layers.Dense(6, activation="relu")(x)
    skip = layers.Add()([h, layers.Dense(6)(h)])
    return keras.Model(x, layers.Dense(2)(skip))


def _two_inputs():
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    both = layers.Concatenate()([layers.Dense(3, activation="tanh")(a), b])
    return keras.Model([a, b], layers.Dense(2)(both))


def _two_outputs():
    x = keras.Input((5,))
    h = layers.Dense(4, activation="tanh")(x)
    value = layers.Dense(1, name="value")(h)
    label = layers.Dense(3, activation="softmax", name="label")(h)
    return keras.Model(x, [value, label])


# Beyond the dozen: the wiring forms a Functional config has (a shared layer, an RNN's states
# fed to another as initial_state, attention's query and value), and object arguments.
def _siamese():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    tower = layers.Dense(3, activation="tanh")
    return keras.Model([a, b], layers.Subtract()([tower(a), tower(b)]))


def _seq2seq():
    encoder, decoder = keras.Input((5, 3), name="enc"), keras.Input((4, 2), name="dec")
    _, h, c = layers.LSTM(4, return_state=True)(encoder)
    steps = layers.LSTM(4, return_sequences=True)(decoder, initial_state=[h, c])
    return keras.Model([encoder, decoder], layers.TimeDistributed(layers.Dense(2))(steps))


def _attention():
    x = keras.Input((5, 8))
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    return keras.Model(x, layers.LayerNormalization()(layers.Add()([attended, x])))


def _image_layers():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Rescaling(1 / 255.0),
            layers.DepthwiseConv2D(3),
            layers.Conv2DTranspose(2, 3, strides=2, padding="same"),
            layers.LeakyReLU(0.1),
            layers.GlobalAveragePooling2D(),
            layers.Dense(4, kernel_initializer=keras.initializers.HeNormal(seed=3)),
            layers.PReLU(),
        ]
    )


ARCHITECTURES: dict[str, Callable] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "batch_norm": _batch_norm,
    "lstm": _lstm,
    "gru": _gru,
    "bidirectional": _bidirectional,
    "embedding": _embedding,
    "separable_conv2d": _separable,
    "conv1d_same": _conv1d_same,
    "residual": _residual,
    "two_inputs": _two_inputs,
    "two_outputs": _two_outputs,
    "shared_layer": _siamese,
    "lstm_states": _seq2seq,
    "multi_head_attention": _attention,
    "image_layers": _image_layers,
}


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def keras_model(kind: str, seed: int = 0):
    """The architecture with random weights (moving variances positive), compiled with mse."""
    model = ARCHITECTURES[kind]()
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        values = rng.normal(0.0, 0.5, weight.shape)
        if "variance" in weight.path:
            values = np.abs(values) + 0.5
        weight.assign(values.astype("float32"))
    model.compile(optimizer="adam", loss="mse")
    return model


def random_inputs(model, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    found = []
    for tensor in model.inputs:
        shape = (n, *tensor.shape[1:])
        if "int" in str(tensor.dtype):
            found.append(rng.integers(0, VOCAB, shape).astype("float32"))
        else:
            found.append(rng.normal(size=shape).astype("float32"))
    return found


def keras_outputs(model, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(o) for o in out]


def kcli_outputs(recipe_path: Path, xs: list[np.ndarray]) -> list[np.ndarray]:
    """The imported recipe's model with the weights file beside it, on the inputs."""
    from safetensors.torch import load_file

    from kcli.model.build import build_model_from_spec
    from kcli.model.spec import ModelSpec

    section = yaml.safe_load(recipe_path.read_text())["model"]
    weights = recipe_path.parent / section.pop("weights")
    built = build_model_from_spec(ModelSpec.model_validate(section), seed=0)
    built.model.load_state_dict(load_file(weights), strict=True)
    names = list(built.plan.inputs)
    tensors = [torch.from_numpy(x) for x in xs]
    with torch.no_grad():
        out = built.model.eval()(
            dict(zip(names, tensors, strict=True)) if len(names) > 1 else tensors[0]
        )
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def imported(kind: str, folder: Path):
    model = keras_model(kind)
    model.save(folder / f"{kind}.keras")
    result = cli("import", folder / f"{kind}.keras", "-o", folder / f"{kind}.yaml")
    assert result.exit_code == 0, result.output
    return model, folder / f"{kind}.yaml"


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_an_imported_keras_model_predicts_what_keras_predicts(kind, tmp_path):
    model, recipe = imported(kind, tmp_path)
    assert (tmp_path / f"{kind}.weights.safetensors").is_file()
    xs = random_inputs(model, 5, seed=1)
    want, got = keras_outputs(model, xs), kcli_outputs(recipe, xs)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def _training_data(model, section: dict, folder: Path) -> dict:
    """An npz of random inputs and targets for the model, and the recipe's data section."""
    xs = random_inputs(model, 48, seed=2)
    rng = np.random.default_rng(3)
    ys = [rng.normal(size=(48, *o.shape[1:])).astype("float32") for o in model.outputs]
    inputs = list(section.get("inputs") or ["input"])
    outputs = section.get("outputs") or []
    outputs = [outputs] if isinstance(outputs, str) else outputs
    arrays = {f"x_{n}": x for n, x in zip(inputs, xs, strict=True)}
    arrays |= {f"y_{n}": y for n, y in zip(outputs or ["output"], ys, strict=True)}
    np.savez(folder / "data.npz", **arrays)
    data: dict = {"source": "data.npz"}
    data["x"] = "x_input" if len(xs) == 1 else {n: f"x_{n}" for n in inputs}
    data["y"] = (
        f"y_{(outputs or ['output'])[0]}" if len(ys) == 1 else {n: f"y_{n}" for n in outputs}
    )
    return data


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_a_kcli_run_exported_as_keras_predicts_what_the_run_predicts(kind, tmp_path):
    from kcli.use.run_model import load_run_model

    model, recipe = imported(kind, tmp_path)
    document = yaml.safe_load(recipe.read_text())
    document["data"] = _training_data(model, document["model"], tmp_path)
    if kind == "mlp":  # a step Keras has as a layer: the export takes raw features
        document["data"]["preprocess"] = ["standardize"]
    document["fit"] = {"epochs": 1, "batch_size": 16}
    recipe.write_text(yaml.safe_dump(document, sort_keys=False))
    runs = tmp_path / "runs"
    trained = cli("train", recipe, "--runs-dir", runs, "--json", "-q")
    assert trained.exit_code == 0, trained.output
    run_dir = Path(json.loads(trained.stdout)["run_dir"])
    exported = cli("export", run_dir, "--format", "keras", "-o", tmp_path / "run.keras", "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["max_abs_diff"] <= 1e-5
    loaded = keras.saving.load_model(tmp_path / "run.keras")
    run_model = load_run_model(run_dir)
    xs = random_inputs(model, 6, seed=4)
    raw = xs[0] if len(xs) == 1 else dict(zip(run_model.plan.inputs, xs, strict=True))
    x = run_model.preprocessing.transform_x(raw)
    x = (
        {k: torch.from_numpy(v) for k, v in x.items()}
        if isinstance(x, dict)
        else torch.from_numpy(x)
    )
    with torch.no_grad():
        out = run_model.model.eval()(x)
    want = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    for g, w in zip(keras_outputs(loaded, xs), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    # The run trained the imported weights: they moved, so the comparison is not of Keras' own.
    assert not np.allclose(keras_outputs(model, xs)[0], want[0], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_the_export_check_loads_the_archive_in_a_fresh_keras_process(tmp_path, monkeypatch):
    """From the CLI Keras is not imported: the archive is loaded by Keras in a subprocess."""
    import kcli.use.export_keras as export_keras

    monkeypatch.setattr(export_keras, "_keras_loaded_on_torch", lambda: False)
    model, recipe = imported("mlp", tmp_path)
    document = yaml.safe_load(recipe.read_text())
    document["data"] = _training_data(model, document["model"], tmp_path)
    document["fit"] = {"epochs": 1}
    recipe.write_text(yaml.safe_dump(document, sort_keys=False))
    trained = cli("train", recipe, "--runs-dir", tmp_path / "runs", "--json", "-q")
    run_dir = json.loads(trained.stdout)["run_dir"]
    calls = []
    real = export_keras.keras_outputs
    monkeypatch.setattr(export_keras, "keras_outputs", lambda *a: calls.append(a) or real(*a))
    exported = cli("export", run_dir, "--format", "keras", "-o", tmp_path / "m.keras", "--json")
    assert exported.exit_code == 0, exported.output
    assert len(calls) == 1 and json.loads(exported.stdout)["max_abs_diff"] <= 1e-5
    assert keras.saving.load_model(tmp_path / "m.keras").count_params() == model.count_params()
