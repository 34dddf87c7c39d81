"""The `.keras` archive without Keras (kcli.model.keras_archive) against Keras' own saves, and
kcli's weights in Keras' form (kcli.model.keras_weights) against Keras' predictions.

Each Keras model gets seeded random weights (moving variances kept positive), is saved by
Keras, and read back by kcli: every layer's arrays must equal `layer.get_weights()` exactly.
The writer's file must load in `keras.saving.load_model` with the same weights. Then the same
model is built in Keras and kcli, one side's weights go to the other through these functions,
and the predictions must agree within 1e-5.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("these tests need Keras' torch backend", allow_module_level=True)

import torch  # noqa: E402

from kcli.errors import KcliError  # noqa: E402
from kcli.model.keras_archive import read_keras_archive, write_keras_archive  # noqa: E402
from kcli.model.keras_weights import keras_weights_of, load_keras_weights  # noqa: E402

K = keras.layers


def _sequential(shape, *layers, dtype="float32", name=None):
    return keras.Sequential([keras.Input(shape, dtype=dtype), *layers], name=name)


def _nested():
    inner = _sequential((4,), K.Dense(3, name="deep"), name="block")
    x = keras.Input((5,), name="e_in")
    encoder = keras.Model(x, inner(K.Dense(4, name="e_dense")(x)), name="encoder")
    inp = keras.Input((5,), name="inp")
    return keras.Model(inp, K.Dense(2, name="out")(encoder(inp)), name="outer")


def _wrappers():
    # Layers whose weights sit in sublayers the file lists in another order than Keras tracks
    # them (MultiHeadAttention's four projections), or twice (SpectralNormalization's kernel).
    x = keras.Input((5, 4))
    h = K.MultiHeadAttention(2, 3)(x, x)
    h = K.TimeDistributed(K.Dense(3))(h)
    h = K.SpectralNormalization(K.Dense(2))(h)
    h = K.ConvLSTM1D(2, 2, return_sequences=False)(K.Reshape((5, 2, 1))(h))
    return keras.Model(x, h)


KERAS_MODELS = {
    "wrappers": _wrappers,
    "Dense": lambda: _sequential((4,), K.Dense(3)),
    "Conv2D": lambda: _sequential((6, 6, 2), K.Conv2D(3, 3)),
    "BatchNormalization": lambda: _sequential((4,), K.BatchNormalization()),
    "LSTM": lambda: _sequential((5, 4), K.LSTM(3)),
    "GRU-reset_after": lambda: _sequential((5, 4), K.GRU(3, reset_after=True)),
    "GRU-classic": lambda: _sequential((5, 4), K.GRU(3, reset_after=False)),
    "Bidirectional": lambda: _sequential((5, 4), K.Bidirectional(K.LSTM(3))),
    "Embedding": lambda: _sequential((5,), K.Embedding(10, 4), dtype="int32"),
    "SeparableConv2D": lambda: _sequential((6, 6, 2), K.SeparableConv2D(3, 3, depth_multiplier=2)),
    "DepthwiseConv2D": lambda: _sequential((6, 6, 2), K.DepthwiseConv2D(3, depth_multiplier=2)),
    "Conv1D": lambda: _sequential((6, 2), K.Conv1D(3, 2), K.Conv1D(2, 3, use_bias=False)),
    "nested": _nested,
}


def _randomize(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if weight.path.endswith("variance"):
            values.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            values.append(rng.normal(0, 0.5, shape).astype("float32"))
    model.set_weights(values)


def _layers(model, prefix: str = ""):
    """Keras key (as kcli names it) -> layer, for every layer with weights, nested too."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(_layers(layer, f"{layer.name}/"))
        elif layer.weights:
            found[prefix + layer.name] = layer
    return found


def _assert_same_weights(model, weights) -> None:
    layers = _layers(model)
    assert set(weights) == set(layers)
    for key, layer in layers.items():
        want = layer.get_weights()
        assert len(weights[key]) == len(want), key
        for got, expected in zip(weights[key], want, strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=key)


@pytest.mark.parametrize("case", list(KERAS_MODELS))
def test_the_reader_gives_get_weights_and_the_writer_loads_in_keras(case, tmp_path):
    model = KERAS_MODELS[case]()
    _randomize(model)
    model.save(tmp_path / "saved.keras")
    archive = read_keras_archive(tmp_path / "saved.keras")
    assert archive.config["class_name"] in ("Sequential", "Functional")
    assert "keras_version" in archive.metadata
    _assert_same_weights(model, archive.weights)

    write_keras_archive(tmp_path / "ours.keras", archive.config, archive.weights)
    _assert_same_weights(keras.saving.load_model(tmp_path / "ours.keras"), archive.weights)


def test_the_optimizer_variables_are_not_weights(tmp_path):
    model = _sequential((4,), K.Dense(2, name="d"))
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0)  # Adam now holds 2 slots per weight
    model.save(tmp_path / "trained.keras")
    archive = read_keras_archive(tmp_path / "trained.keras")
    assert list(archive.weights) == ["d"] and len(archive.weights["d"]) == 2
    assert archive.config["compile_config"]["loss"] == "mse"


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / "none.keras"
    with pytest.raises(KcliError, match="none.keras: no such file"):
        read_keras_archive(missing)
    text = tmp_path / "text.keras"
    text.write_text("not a zip")
    with pytest.raises(KcliError, match="text.keras: not a Keras model file"):
        read_keras_archive(text)
    partial = tmp_path / "partial.keras"
    with zipfile.ZipFile(partial, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(KcliError, match="partial.keras: .*no model.weights.h5"):
        read_keras_archive(partial)


# ---- kcli <-> Keras through the weights


KCLI_TEXT = """
  input_shape: [6, 4]
  layers:
    - {name: conv, type: Conv1D, filters: 3, kernel_size: 2}
    - {name: bi, type: Bidirectional, layer: {type: GRU, units: 3, return_sequences: true}}
    - {name: bn, type: BatchNormalization}
    - {name: sep, type: SeparableConv1D, filters: 4, kernel_size: 2, depth_multiplier: 2}
    - {name: lstm, type: LSTM, units: 4}
    - {name: out, type: Dense, units: 2, activation: softmax}
"""


def _keras_twin():
    return keras.Sequential(
        [
            keras.Input((6, 4)),
            K.Conv1D(3, 2, name="conv"),
            K.Bidirectional(K.GRU(3, return_sequences=True), name="bi"),
            K.BatchNormalization(name="bn"),
            K.SeparableConv1D(4, 2, depth_multiplier=2, name="sep"),
            K.LSTM(4, name="lstm"),
            K.Dense(2, activation="softmax", name="out"),
        ],
        name="twin",
    )


def _kcli(model_text: str, tmp_path):
    from kcli.recipe.load import load_recipe

    path = tmp_path / "twin.yaml"
    path.write_text(f"name: twin\ndata: {{source: sklearn:iris}}\nmodel:{model_text}\n"
                    "compile: {loss: mse}\n")  # fmt: skip
    return load_recipe(path).build_model().model.eval()


def _predict_both(ours, theirs, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        got = ours(torch.from_numpy(x)).numpy()
    return got, keras.ops.convert_to_numpy(theirs(x, training=False))


def test_keras_weights_in_kcli_predict_as_keras(tmp_path):
    theirs = _keras_twin()
    _randomize(theirs, seed=1)
    theirs.save(tmp_path / "twin.keras")
    ours = _kcli(KCLI_TEXT, tmp_path)
    assert load_keras_weights(ours, read_keras_archive(tmp_path / "twin.keras").weights) == []
    x = np.random.default_rng(2).normal(size=(5, 6, 4)).astype("float32")
    got, want = _predict_both(ours, theirs, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_kcli_weights_in_keras_predict_as_kcli(tmp_path):
    ours = _kcli(KCLI_TEXT, tmp_path)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, tensor in ours.state_dict(keep_vars=True).items():
            noise = torch.rand(tensor.shape, generator=generator)
            tensor.copy_(noise + 0.5 if name.endswith("variance") else noise - 0.5)
    theirs = _keras_twin()
    config = keras.saving.serialize_keras_object(theirs)  # what config.json would hold
    write_keras_archive(tmp_path / "ours.keras", config, keras_weights_of(ours))
    loaded = keras.saving.load_model(tmp_path / "ours.keras")
    x = np.random.default_rng(4).normal(size=(5, 6, 4)).astype("float32")
    got, want = _predict_both(ours, loaded, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_nested_model_round_trips_through_keras(tmp_path):
    from tests.parity.test_nested_parity import NESTED_TWICE, nested_twice

    theirs = nested_twice()
    _randomize(theirs, seed=5)
    theirs.save(tmp_path / "nested.keras")
    archive = read_keras_archive(tmp_path / "nested.keras")
    assert set(archive.weights) == {"encoder/e_dense", "block/b_dense", "s_dense", "out"}
    ours = _kcli(NESTED_TWICE, tmp_path)
    assert load_keras_weights(ours, archive.weights) == []
    rng = np.random.default_rng(6)
    inp, side = rng.normal(size=(3, 6)).astype("float32"), rng.normal(size=(3, 3)).astype("float32")
    with torch.no_grad():
        got = ours({"inp": torch.from_numpy(inp), "side": torch.from_numpy(side)}).numpy()
    want = keras.ops.convert_to_numpy(theirs([inp, side]))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # And back: kcli's weights, in Keras' config, load as the weights Keras saved.
    write_keras_archive(tmp_path / "back.keras", archive.config, keras_weights_of(ours))
    _assert_same_weights(keras.saving.load_model(tmp_path / "back.keras"), archive.weights)


def test_strict_loading_lists_every_difference_and_changes_nothing(tmp_path):
    ours = _kcli(KCLI_TEXT, tmp_path)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    weights = keras_weights_of(ours)
    weights["out"] = [np.zeros((4, 3), "float32"), np.zeros(3, "float32")]  # 3 classes, not 2
    weights["extra"] = [np.zeros(2, "float32")]
    del weights["lstm"]
    with pytest.raises(KcliError) as caught:
        load_keras_weights(ours, weights)
    text = str(caught.value)
    assert "extra: in the file, not in the model" in text
    assert "lstm: in the model, not in the file" in text
    assert "out.kernel: shape (4, 3) in the file, the model's is (4, 2)" in text
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    skipped = load_keras_weights(ours, weights, strict=False)
    assert len(skipped) == 4  # extra, lstm, out.kernel, out.bias
    assert torch.equal(ours.state_dict()["bn.gamma"], torch.from_numpy(weights["bn"][0]))
