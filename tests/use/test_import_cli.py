"""`kcli import` and `kcli export --format keras` without Keras installed (issue 14).

Keras configs are written here by hand, in the form Keras 3 saves (the parity module
tests/parity/test_keras_interop.py checks them against Keras itself). Without Keras, an
exported archive is checked by reading it back through kcli's own import: that path is tested
here on trained runs, preprocessing (Normalization, Rescaling) included.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.trained import cli, runs_dir, trained

FLOAT32 = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}


def dense(name: str, units: int, **arguments) -> dict:
    config = {"name": name, "trainable": True, "dtype": FLOAT32, "units": units}
    config |= {"activation": "linear", "use_bias": True, "kernel_constraint": None}
    config |= {
        "kernel_initializer": {
            "module": "keras.initializers",
            "class_name": "GlorotUniform",
            "config": {"seed": None},
        }
    }
    return {"module": "keras.layers", "class_name": "Dense", "config": config | arguments}


def tensor(layer: str, node: int = 0, index: int = 0) -> dict:
    history = [layer, node, index]
    return {"class_name": "__keras_tensor__", "config": {"keras_history": history}}


def called(layer: dict, *nodes: list) -> dict:
    name = layer["config"]["name"]
    inbound = [{"args": args, "kwargs": {}} for args in nodes]
    return {**layer, "name": name, "inbound_nodes": inbound}


def input_layer(name: str, shape: list) -> dict:
    config = {"batch_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": name}
    return {"module": "keras.layers", "class_name": "InputLayer", "config": config, "name": name}


SEQUENTIAL = {
    "module": "keras",
    "class_name": "Sequential",
    "config": {
        "name": "tiny",
        "layers": [
            input_layer("input_layer", [4]),
            dense(
                "hidden",
                8,
                activation="relu",
                kernel_regularizer={
                    "module": "keras.regularizers",
                    "class_name": "L2",
                    "config": {"l2": 0.01},
                },
            ),
            {
                "module": "keras.layers",
                "class_name": "Dropout",
                "config": {"name": "drop", "rate": 0.25, "seed": None},
            },
            dense("out", 3, activation="softmax"),
        ],
    },
    "compile_config": {
        "optimizer": {
            "module": "keras.optimizers",
            "class_name": "Adam",
            "config": {"name": "adam", "learning_rate": 0.009999999776482582, "use_ema": False},
        },
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "run_eagerly": False,
    },
}


def write_json(folder: Path, config: dict, name: str = "model.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(config))
    return path


def test_a_sequential_config_becomes_a_recipe_with_keras_arguments(tmp_path):
    path = write_json(tmp_path, SEQUENTIAL)
    result = cli("import", path, "--data", "sklearn:iris")
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((tmp_path / "model.yaml").read_text())
    assert document == {
        "data": {"source": "sklearn:iris"},
        "model": {
            "name": "tiny",
            "input_shape": [4],
            "layers": [
                # linear, use_bias, glorot_uniform, no constraint: Keras' defaults, left out
                {
                    "type": "Dense",
                    "name": "hidden",
                    "units": 8,
                    "activation": "relu",
                    "kernel_regularizer": {"l2": 0.01},
                },
                {"type": "Dropout", "name": "drop", "rate": 0.25},
                {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"},
            ],
        },
        "compile": {
            "optimizer": {"type": "Adam", "learning_rate": 0.01},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
    }
    assert (tmp_path / "model.yaml").read_text().startswith("# Imported by `kcli import`")
    assert not (tmp_path / "model.weights.safetensors").exists()  # a JSON file: no weights
    assert cli("validate", tmp_path / "model.yaml").exit_code == 0


def test_without_data_the_recipe_says_what_to_fill_in_and_validate_refuses_it(tmp_path):
    result = cli("import", write_json(tmp_path, SEQUENTIAL), "-o", tmp_path / "r.yaml")
    assert result.exit_code == 0, result.output
    assert "set data.source in" in result.output
    checked = cli("validate", tmp_path / "r.yaml")
    assert checked.exit_code == 2
    assert "r.yaml:" in checked.output and "data.source: cannot tell what 'REPLACE ME" in (
        checked.output
    )


def test_a_shared_layer_and_a_multi_input_graph_keep_their_wiring(tmp_path):
    tower = dense("tower", 3, activation="tanh")
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "siamese",
            "layers": [
                {**input_layer("left", [5]), "inbound_nodes": []},
                # Keras lists a shared layer once, with one inbound node per call; the second
                # call here reads a layer listed after it.
                called(tower, [tensor("left")], [tensor("right_in")]),
                {**input_layer("right", [5]), "inbound_nodes": []},
                called(dense("right_in", 5), [tensor("right")]),
                called(
                    {
                        "module": "keras.layers",
                        "class_name": "Subtract",
                        "config": {"name": "diff"},
                    },
                    [[tensor("tower", 0), tensor("tower", 1)]],
                ),
            ],
            "input_layers": [["left", 0, 0], ["right", 0, 0]],
            "output_layers": [["diff", 0, 0]],
        },
    }
    result = cli("import", write_json(tmp_path, config), "--data", "data.npz")
    assert result.exit_code == 0, result.output
    model = yaml.safe_load((tmp_path / "model.yaml").read_text())["model"]
    assert model["inputs"] == {"left": [5], "right": [5]}
    assert [(layer["name"], layer["inputs"]) for layer in model["layers"]] == [
        ("tower", "left"),
        ("right_in", "right"),
        ("tower_call_1", "right_in"),
        ("diff", ["tower", "tower_call_1"]),
    ]
    assert model["layers"][2]["type"] == "Shared" and model["layers"][2]["shares"] == "tower"
    assert model["outputs"] == "diff"


REFUSALS = [
    (
        "unknown_layer",
        {"class_name": "Dens", "config": {"name": "d", "units": 2}},
        "config.layers[1] (Dens 'd'): the layer type 'Dens' is not in kcli's catalog "
        "(did you mean 'Dense'?)",
    ),
    (
        "argument",
        dense("d", 2, lora_rank=4),
        "config.layers[1] (Dense 'd'): argument 'lora_rank' = 4 is not supported by kcli",
    ),
    (
        "custom_activation",
        dense(
            "d",
            2,
            activation={
                "module": "builtins",
                "class_name": "function",
                "config": "my_swish",
                "registered_name": "my_swish",
            },
        ),
        "config.layers[1] (Dense 'd'): argument 'activation': the activation 'my_swish' is not "
        "one of Keras' built-in functions",
    ),
    (
        "value",
        dense("d", -3),
        "config.layers[1] (Dense 'd'): units: Input should be greater than 0",
    ),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[case[0] for case in REFUSALS])
def test_what_kcli_does_not_have_is_exit_2_at_its_place_and_nothing_is_written(case, tmp_path):
    _, layer, expected = case
    config = json.loads(json.dumps(SEQUENTIAL))
    config["config"]["layers"][1] = layer
    result = cli("import", write_json(tmp_path, config))
    assert result.exit_code == 2
    assert f"{tmp_path / 'model.json'}: {expected}" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_files_that_are_not_keras_archives_are_exit_2(tmp_path):
    (tmp_path / "text.keras").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    (tmp_path / "old.h5").write_bytes(b"\x89HDF")
    expected = {
        "text.keras": "not a .keras archive",
        "empty.keras": "the archive has no config.json",
        "old.h5": "re-save it with model.save('model.keras')",
        "missing.keras": "no such file",
    }
    for name, message in expected.items():
        result = cli("import", tmp_path / name)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


@pytest.fixture
def without_keras(monkeypatch):
    """The export check as on a machine without Keras: kcli reads the archive back itself."""
    import kcli.use.export_keras as export_keras

    real = importlib.util.find_spec
    monkeypatch.setattr(export_keras, "_keras_loaded_on_torch", lambda: False)
    monkeypatch.setattr(
        export_keras.importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "keras" else real(name, *rest),
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn", "graph"])
def test_an_exported_archive_imports_back_to_the_runs_predictions(kind, tmp_path, without_keras):
    from safetensors.torch import load_file

    from kcli.model.build import build_model_from_spec
    from kcli.model.spec import ModelSpec
    from kcli.use.export_sample import sample_inputs
    from kcli.use.run_model import load_run_model

    run_dir = trained(kind)
    path = tmp_path / "run.keras"
    exported = cli("export", run_dir, "-f", "keras", "-o", path, "--runs-dir", runs_dir(), "--json")
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    assert document["max_abs_diff"] <= document["tolerance"] == 1e-5
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    classes = [layer["class_name"] for layer in config["config"]["layers"]]
    # The run's preprocessing is in the archive, as Keras layers (the mlp standardizes, the cnn
    # scales, reshapes and min-max scales, the graph standardizes one input and scales both).
    expected = {"mlp": ["Normalization"], "cnn": ["Rescaling", "Reshape", "Rescaling"]}
    expected["graph"] = ["Normalization", "Rescaling", "Rescaling"]
    assert [c for c in classes if c in ("Normalization", "Rescaling", "Reshape")][
        : len(expected[kind])
    ] == expected[kind]
    assert config["compile_config"]["loss"] == "sparse_categorical_crossentropy"

    imported = cli("import", path, "-o", tmp_path / "back.yaml")
    assert imported.exit_code == 0, imported.output
    section = yaml.safe_load((tmp_path / "back.yaml").read_text())["model"]
    weights = tmp_path / section.pop("weights")
    built = build_model_from_spec(ModelSpec.model_validate(section), seed=0)
    built.model.load_state_dict(load_file(weights), strict=True)
    run_model = load_run_model(run_dir)
    raw = sample_inputs(run_model)
    x = run_model.preprocessing.transform_x(raw)
    x = (
        {k: torch.from_numpy(v) for k, v in x.items()}
        if isinstance(x, dict)
        else torch.from_numpy(x)
    )
    raw_t = (
        {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in raw.items()}
        if isinstance(raw, dict)
        else torch.from_numpy(np.asarray(raw, np.float32))
    )
    with torch.no_grad():
        want = run_model.model.eval()(x)
        got = built.model.eval()(raw_t)  # raw features: the preprocessing is in the model
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


UNEXPORTABLE = """\
seed: 1
data: {source: "synthetic:moons", params: {n_samples: 64}}
model:
  input_shape: [2]
  layers:
    - {type: Dense, units: 4, activation: {type: leaky_relu, negative_slope: 0.1}}
    - {type: Dense, units: 2, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
fit: {epochs: 1}
"""


def test_an_argument_keras_cannot_say_is_refused_by_name_and_nothing_written(tmp_path):
    (tmp_path / "leaky.yaml").write_text(UNEXPORTABLE)
    trained_run = cli("train", tmp_path / "leaky.yaml", "--runs-dir", tmp_path / "runs", "-q")
    assert trained_run.exit_code == 0, trained_run.output
    run_dir = trained_run.stdout.strip().splitlines()[-1]
    result = cli("export", run_dir, "-f", "keras", "-o", tmp_path / "leaky.keras")
    assert result.exit_code == 2
    assert "cannot export to Keras: the activation leaky_relu with arguments" in result.output
    assert "{'negative_slope': 0.1} has no Keras name: use an activation layer" in result.output
    assert not (tmp_path / "leaky.keras").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".leaky")] == []


def test_a_compile_setting_kcli_lacks_is_exit_2_naming_it(tmp_path):
    config = json.loads(json.dumps(SEQUENTIAL))
    config["compile_config"]["optimizer"]["config"]["use_ema"] = True
    result = cli("import", write_json(tmp_path, config))
    assert result.exit_code == 2
    assert (
        "model.json: compile_config.optimizer: Adam's argument 'use_ema' = True is not supported"
    ) in result.output
    assert not (tmp_path / "model.yaml").exists()
