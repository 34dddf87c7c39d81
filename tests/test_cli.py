"""The commands that need no training: `kcli --help`, `layers`, `schema`, `summarize` overrides.

`kcli layers` and `kcli schema` must read the same layer classes (one source of truth), so the
defaults they show are compared with each other and with Keras' documented defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kcli import __version__
from kcli.cli import app

runner = CliRunner()

# The catalog RECIPE.md promises, in Keras' names (written out here, not read from kcli).
RECIPE_MD_CATALOG = """
Dense Activation Dropout SpatialDropout1D SpatialDropout2D GaussianNoise Flatten Reshape Permute
RepeatVector BatchNormalization LayerNormalization Conv1D Conv2D Conv2DTranspose SeparableConv2D
DepthwiseConv2D MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D GlobalMaxPooling1D
GlobalMaxPooling2D GlobalAveragePooling1D GlobalAveragePooling2D UpSampling2D ZeroPadding2D
Embedding SimpleRNN LSTM GRU Bidirectional Add Subtract Multiply Average Maximum Concatenate
ReLU LeakyReLU ELU PReLU Softmax
""".split()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


# ---- help and version -----------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    text = ok("--help").stdout
    for command in ("validate", "summarize", "layers", "schema", "train"):
        assert command in text


@pytest.mark.parametrize("command", ["validate", "summarize", "layers", "schema", "train"])
def test_every_command_has_help(command: str) -> None:
    assert "Usage" in ok(command, "--help").stdout


def test_version() -> None:
    assert ok("--version").stdout.strip() == f"kcli {__version__}"


# ---- kcli layers ----------------------------------------------------------------------------


def test_layers_lists_every_registered_type() -> None:
    from kcli.model.layers import layer_registry

    listed = [row["type"] for row in json.loads(ok("layers", "--json").stdout)]
    assert sorted(listed) == sorted(layer_registry.names())
    assert len(listed) == len(set(listed))
    text = ok("layers").stdout
    for name in layer_registry.names():
        assert f"│ {name} " in text


def test_catalog_covers_recipe_md() -> None:
    listed = {row["type"] for row in json.loads(ok("layers", "--json").stdout)}
    assert set(RECIPE_MD_CATALOG) <= listed, set(RECIPE_MD_CATALOG) - listed


def _table_rows(text: str) -> dict[str, list[str]]:
    """First line of each row of a rich table: argument -> its cells."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if cells[0]:
            rows[cells[0]] = cells
    return rows


def test_layer_conv2d_shows_arguments_and_keras_defaults() -> None:
    text = ok("layers", "Conv2D").stdout
    assert text.splitlines()[0] == "Conv2D (conv layer)"
    assert text.splitlines()[1] == "A 2-D convolution over (height, width, channels)."
    rows = _table_rows(text)
    # columns: argument, type, default, constraints, description; defaults spelled as in YAML
    for argument in ("filters", "kernel_size", "strides", "padding", "use_bias", "activation"):
        assert argument in rows, argument
    assert rows["padding"][2] == "valid"  # Keras' default padding
    assert rows["strides"][2] == "1"
    assert rows["dilation_rate"][2] == "1"
    assert rows["use_bias"][2] == "true"
    assert rows["activation"][2] == "null"
    assert rows["kernel_initializer"][2] == "glorot_uniform"
    assert rows["bias_initializer"][2] == "zeros"
    assert rows["filters"][2] == "required"
    assert rows["kernel_size"][2] == "required"
    # Arguments every layer takes are named once, below the table.
    assert "trainable" in text and "name" in text


def test_layer_json_defaults_match_the_json_schema() -> None:
    """`kcli layers X` and `kcli schema` read one class: their defaults agree."""
    schema = json.loads(ok("schema").stdout)["$defs"]
    for layer in ("Conv2D", "Dense", "BatchNormalization", "LSTM", "Dropout", "Embedding"):
        described = json.loads(ok("layers", layer, "--json").stdout)
        assert described["type"] == layer
        properties = schema[layer]["properties"]
        for argument in described["arguments"]:
            name, default = argument["name"], argument["default"]
            if default == "(required)":
                assert name in schema[layer]["required"], (layer, name)
            else:
                assert properties[name]["default"] == default, (layer, name)


def test_layer_defaults_are_keras_not_torch() -> None:
    def defaults(layer: str) -> dict:
        described = json.loads(ok("layers", layer, "--json").stdout)
        return {arg["name"]: arg["default"] for arg in described["arguments"]}

    batchnorm = defaults("BatchNormalization")
    assert batchnorm["momentum"] == 0.99  # torch: 0.1 (its momentum is 1 - Keras')
    assert batchnorm["epsilon"] == 1e-3  # torch: 1e-5
    assert defaults("LeakyReLU")["negative_slope"] == 0.3  # torch: 0.01
    assert defaults("LSTM")["unit_forget_bias"] is True
    assert defaults("GRU")["reset_after"] is True
    assert defaults("Dense")["kernel_initializer"] == "glorot_uniform"


def test_layer_lookup_is_loose_about_case() -> None:
    assert json.loads(ok("layers", "conv2d", "--json").stdout)["type"] == "Conv2D"


def test_layer_types_are_readable() -> None:
    text = ok("layers", "Conv2D").stdout
    assert "FieldInfo" not in text
    assert " at 0x" not in text
    assert "BeforeValidator" not in text
    described = json.loads(ok("layers", "Conv2D", "--json").stdout)
    types = {arg["name"]: arg["type"] for arg in described["arguments"]}
    assert "activation" in types["activation"]
    assert len(types["kernel_size"]) < 40


@pytest.mark.parametrize(
    ("given", "suggestion"), [("Conv4D", "Conv3D"), ("Dens", "Dense"), ("LTSM", "LSTM")]
)
def test_unknown_layer_exits_2_with_suggestion(given: str, suggestion: str) -> None:
    result = invoke("layers", given)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"unknown layer type '{given}'" in result.stderr
    assert "did you mean '" in result.stderr
    assert f"did you mean '{suggestion}'?" in result.stderr


# ---- kcli schema ----------------------------------------------------------------------------


def test_schema_is_json_schema_of_the_recipe() -> None:
    from kcli.model.layers import layer_registry

    document = json.loads(ok("schema").stdout)
    assert document["$schema"].startswith("https://json-schema.org/")
    assert document["type"] == "object"
    assert document["additionalProperties"] is False  # unknown top-level keys are errors
    assert {"data", "model", "compile"} <= set(document["required"])
    assert {"data", "model", "compile", "fit", "expect", "seed", "name"} <= set(
        document["properties"]
    )
    defs = document["$defs"]
    layers = defs["ModelSpec"]["properties"]["layers"]["items"]
    # Either a full layer (selected by `type`) or the one-key form `{Dense: {...}}`.
    full, one_key = layers["anyOf"]
    assert one_key["maxProperties"] == 1
    # One schema per layer type, selected by `type` (oneOf: loose spellings match by pattern,
    # which an OpenAPI discriminator's exact mapping could not express).
    assert "discriminator" not in full
    targets = [defs[item["$ref"].removeprefix("#/$defs/")] for item in full["oneOf"]]
    names = [target["properties"]["type"]["anyOf"][0]["const"] for target in targets]
    assert sorted(names) == sorted(layer_registry.names())
    for name, target in zip(names, targets, strict=True):
        assert target["additionalProperties"] is False, name
    conv = defs["Conv2D"]
    assert conv["properties"]["padding"]["default"] == "valid"
    assert set(conv["properties"]["padding"]["enum"]) == {"valid", "same"}
    assert {"filters", "kernel_size"} <= set(conv["required"])
    assert conv["properties"]["filters"]["exclusiveMinimum"] == 0
    assert defs["Dense"]["properties"]["units"]["exclusiveMinimum"] == 0


# ---- kcli summarize -------------------------------------------------------------------------


RECIPE = """\
data:
  source: synthetic:classification
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 128, activation: relu}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 10, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "digits.yaml"
    path.write_text(RECIPE)
    return path


def test_summarize_with_overrides_changes_the_count(recipe: Path) -> None:
    plain = json.loads(ok("summarize", str(recipe), "--json").stdout)
    assert plain["total_params"] == (64 * 128 + 128) + (128 * 10 + 10)  # 9,610
    changed = json.loads(ok("summarize", str(recipe), "model.layers.0.units=64", "--json").stdout)
    assert changed["total_params"] == (64 * 64 + 64) + (64 * 10 + 10)  # 4160 + 650 = 4,810
    assert changed["layers"][0]["output_shape"] == [64]
    text = ok("summarize", str(recipe), "model.layers.0.units=64").stdout
    assert "Total params: 4,810 (18.79 KB)" in text  # 4810*4/1024 = 18.789...


def test_summarize_json_is_the_only_thing_on_stdout(recipe: Path) -> None:
    document = json.loads(ok("summarize", "--json", str(recipe)).stdout)
    assert {"layers", "total_params", "trainable_params", "non_trainable_params"} <= set(document)
    for row in document["layers"]:
        assert {"name", "type", "output_shape", "params", "inputs"} <= set(row)
    assert document["layers"][0]["inputs"] == ["input"]
    assert document["layers"][2]["inputs"] == ["dropout"]


def test_summarize_uses_model_name_then_recipe_name_then_file_stem(recipe: Path) -> None:
    assert ok("summarize", str(recipe)).stdout.startswith('Model: "digits"')
    named = ok("summarize", str(recipe), "name=mnist-mlp").stdout
    assert named.startswith('Model: "mnist-mlp"')
    model_named = ok("summarize", str(recipe), "name=mnist-mlp", "model.name=tiny").stdout
    assert model_named.startswith('Model: "tiny"')


def test_summarize_of_missing_recipe_exits_2(tmp_path: Path) -> None:
    result = invoke("summarize", str(tmp_path / "nope.yaml"), "--runs-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip()


def test_main_pauses_garbage_collection_until_training_settles(monkeypatch) -> None:
    # Full collections during start-up walk every torch/sklearn/pydantic object (0.8 s of a
    # small run): `main` turns collection off, `settle_memory` freezes and turns it back on.
    import gc

    from kcli import cli, memory

    seen = {}

    def fake_app() -> None:
        seen["during"] = gc.isenabled()
        memory.settle_memory()
        seen["after_settle"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(cli, "app", fake_app)
    try:
        cli.main()
    finally:
        gc.unfreeze()
        gc.enable()
    assert seen["during"] is False
    assert seen["after_settle"] is True and seen["frozen"] > 0


def test_settle_memory_leaves_a_host_process_alone() -> None:
    import gc

    from kcli import memory

    assert gc.isenabled()
    before = gc.get_freeze_count()
    memory.settle_memory()
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_layer_docstrings_lose_their_code_indentation() -> None:
    text = ok("layers", "Dense").stdout
    assert "\nLike Keras, an input of rank > 1 is not flattened" in text


@pytest.mark.parametrize(
    ("value", "spelled"),
    [(None, "null"), (True, "true"), (0.99, "0.99"), ("same", "same"), ((2, 2), "[2, 2]")],
)
def test_defaults_are_spelled_as_a_recipe_writes_them(value, spelled) -> None:
    from kcli.recipe.catalog import yaml_spelling

    assert yaml_spelling(value) == spelled
