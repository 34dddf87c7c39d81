"""`kcli import` of what a Keras 3 archive holds besides layers and weights (issue 14): the
compile config, `model.to_json()` files, and what kcli refuses (exit 2, the place in the
archive named, nothing written), each from a model Keras itself saved.
"""

from __future__ import annotations

import zipfile

import pytest
import yaml

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the interop tests need Keras' torch backend", allow_module_level=True)

from tests.parity.test_keras_interop import cli, keras_model  # noqa: E402

layers = keras.layers


def test_the_compile_config_becomes_the_recipes_compile_section(tmp_path):
    x = keras.Input((4,))
    h = layers.Dense(3, activation="relu", kernel_regularizer=keras.regularizers.L1L2(0.1, 0.2))(x)
    value = layers.Dense(1, name="value")(h)
    label = layers.Dense(3, name="label")(h)
    model = keras.Model(x, [value, label])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, clipnorm=1.0),
        loss={
            "value": keras.losses.CategoricalHinge(),
            "label": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"value": 0.5, "label": 1.0},
        metrics={"value": ["mae"], "label": ["accuracy"]},
    )
    model.save(tmp_path / "m.keras")
    result = cli("import", tmp_path / "m.keras", "--data", "data.npz")
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert document["data"] == {"source": "data.npz"}
    assert document["compile"] == {
        "optimizer": {
            "type": "SGD",
            "learning_rate": {
                "type": "ExponentialDecay",
                "initial_learning_rate": 0.1,
                "decay_steps": 100,
                "decay_rate": 0.5,
            },
            "clipnorm": 1.0,
            "momentum": 0.9,
            "nesterov": True,
        },
        "loss": {
            "value": "categorical_hinge",
            "label": {"type": "sparse_categorical_crossentropy", "from_logits": True},
        },
        "loss_weights": {"value": 0.5, "label": 1.0},
        "metrics": {"value": ["mean_absolute_error"], "label": ["accuracy"]},
    }
    dense = document["model"]["layers"][0]
    assert dense["kernel_regularizer"] == {"l1": 0.1, "l2": 0.2}
    assert "kernel_initializer" not in dense  # Keras' default glorot_uniform: left out


def test_a_to_json_file_gives_the_architecture_without_weights(tmp_path):
    model = keras_model("residual")
    (tmp_path / "arch.json").write_text(model.to_json())
    result = cli("import", tmp_path / "arch.json", "-o", tmp_path / "arch.yaml")
    assert result.exit_code == 0, result.output
    assert "architecture only" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.json", "arch.yaml"]
    section = yaml.safe_load((tmp_path / "arch.yaml").read_text())["model"]
    assert "weights" not in section
    from kcli.model.build import build_model_from_spec
    from kcli.model.spec import ModelSpec

    built = build_model_from_spec(ModelSpec.model_validate(section), seed=0)
    assert sum(p.numel() for p in built.model.parameters()) == model.count_params()


@keras.saving.register_keras_serializable(package="interop_test")
class Doubling(layers.Layer):
    def call(self, x):
        return 2 * x


REFUSED = {
    "custom_layer": (
        lambda: keras.Sequential([keras.Input((3,)), layers.Dense(2), Doubling()]),
        "config.layers[2] (Doubling 'doubling'): the layer class 'Doubling' is the user's own",
    ),
    "constraint": (
        lambda: keras.Sequential(
            [keras.Input((3,)), layers.Dense(2, kernel_constraint=keras.constraints.MaxNorm(2))]
        ),
        "config.layers[1] (Dense 'dense_",
    ),
    "mixed_precision": (
        lambda: keras.Sequential([keras.Input((3,)), layers.Dense(2, dtype="mixed_float16")]),
        "argument 'dtype': the dtype 'mixed_float16'",
    ),
    "channels_first": (
        lambda: keras.Sequential(
            [keras.Input((2, 6, 6)), layers.Conv2D(2, 3, data_format="channels_first")]
        ),
        "argument 'data_format' = 'channels_first' is not supported",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_kcli_does_not_have_is_exit_2_naming_its_place(case, tmp_path):
    make, expected = REFUSED[case]
    make().save(tmp_path / "m.keras")
    result = cli("import", tmp_path / "m.keras")
    assert result.exit_code == 2, result.output
    assert expected in result.output and str(tmp_path / "m.keras") in result.output
    assert "Traceback" not in result.output
    if case == "constraint":
        assert "argument 'kernel_constraint' = MaxNorm is not supported" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # nothing half-written


def test_an_archive_without_its_config_is_refused(tmp_path):
    keras_model("mlp").save(tmp_path / "m.keras")
    with (
        zipfile.ZipFile(tmp_path / "m.keras") as full,
        zipfile.ZipFile(tmp_path / "broken.keras", "w") as broken,
    ):
        for name in full.namelist():
            if name != "config.json":
                broken.writestr(name, full.read(name))
    result = cli("import", tmp_path / "broken.keras")
    assert result.exit_code == 2
    assert "broken.keras: the archive has no config.json" in result.output
