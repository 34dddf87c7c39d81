"""`kcli schema` is usable by editors: every shipped recipe validates against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from kcli.cli import app

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    return jsonschema.Draft202012Validator(json.loads(result.stdout))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_satisfy_the_json_schema(validator, path, monkeypatch):
    recipe = yaml.safe_load(path.read_text())
    if recipe.get("plugins"):  # the schema an editor gets from `kcli schema --plugins ...`
        monkeypatch.chdir(path.parent)
        flags = [arg for name in recipe["plugins"] for arg in ("--plugins", name)]
        result = CliRunner().invoke(app, ["schema", *flags])
        assert result.exit_code == 0, result.output
        validator = jsonschema.Draft202012Validator(json.loads(result.stdout))
        from kcli.recipe.plugins import load_plugins

        load_plugins([], path.parent)  # the other tests see kcli's own catalog
    errors = [e.message for e in validator.iter_errors(recipe)]
    assert errors == []


def test_the_forms_the_loader_rewrites_are_accepted_by_the_schema(validator):
    recipe = {
        "data": {"source": "sklearn:digits", "preprocess": ["standardize", {"reshape": [64]}]},
        "model": {"input_shape": [64], "layers": [{"Dense": {"units": 4}}, {"Flatten": None}]},
        "compile": {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]},
    }
    assert list(validator.iter_errors(recipe)) == []


def test_the_schema_rejects_unknown_keys_and_layer_types(validator):
    recipe = {
        "data": {"source": "sklearn:digits"},
        "model": {"input_shape": [64], "layers": [{"type": "Dens", "units": 4}]},
        "compile": {"loss": "mse"},
        "fitt": {},
    }
    messages = " ".join(e.message for e in validator.iter_errors(recipe))
    assert "fitt" in messages
    del recipe["fitt"]
    assert not validator.is_valid(recipe)  # the layer type 'Dens' alone makes it invalid
    recipe["model"]["layers"][0]["type"] = "Dense"
    assert validator.is_valid(recipe)


def corpus_recipe(layers, optimizer="adam", loss="sparse_categorical_crossentropy", shape=None):
    return {
        "name": "corpus",
        "data": {"source": "sklearn:digits"},
        "model": {"input_shape": shape or [64], "layers": layers},
        "compile": {"optimizer": optimizer, "loss": loss},
    }


IMAGE = [8, 8, 1]
CORPUS = {
    # kcli's loose spellings and aliases: valid for kcli, so valid for the schema too
    "dense lower case": (corpus_recipe([{"type": "dense", "units": 10}]), True),
    "DENSE upper case": (corpus_recipe([{"type": "DENSE", "units": 10}]), True),
    "Conv2d and MaxPool2D": (
        corpus_recipe(
            [
                {"type": "Conv2d", "filters": 4, "kernel_size": 3},
                {"type": "MaxPool2D"},
                {"type": "flatten"},
                {"type": "Dense", "units": 10, "activation": "ReLU"},
            ],
            shape=IMAGE,
        ),
        True,
    ),
    "optimizer ADAM, loss Mean_Squared_Error": (
        corpus_recipe([{"type": "Dense", "units": 1}], optimizer="ADAM", loss="Mean_Squared_Error"),
        True,
    ),
    "loss alias mse": (corpus_recipe([{"type": "Dense", "units": 1}], loss="mse"), True),
    # mistakes: refused by both
    "layer type Dense2": (corpus_recipe([{"type": "Dense2", "units": 10}]), False),
    "layer type Dens": (corpus_recipe([{"type": "Dens", "units": 10}]), False),
    "units as text": (corpus_recipe([{"type": "Dense", "units": "ten"}]), False),
    "unknown key": (corpus_recipe([{"type": "Dense", "unitz": 10}]), False),
    "optimizer adamm": (corpus_recipe([{"type": "Dense", "units": 10}], optimizer="adamm"), False),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_kcli_and_the_schema_agree_on_a_corpus(validator, case, tmp_path):
    recipe, valid = CORPUS[case]
    path = tmp_path / "corpus.yaml"
    path.write_text(yaml.safe_dump(recipe))
    kcli_ok = CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0
    assert kcli_ok is valid
    assert validator.is_valid(recipe) is valid, [e.message for e in validator.iter_errors(recipe)]


def test_a_misspelt_type_gets_the_whole_list_in_editors(validator):
    # `errorMessage` is the message vscode-json-languageservice-based editors (the YAML language
    # server) show when a value fails: every layer alternative carries the full list of types.
    from kcli.model.layers import layer_registry

    defs = validator.schema["$defs"]
    for name in ("Dense", "Conv2D", "LSTM"):
        message = defs[name]["properties"]["type"]["errorMessage"]
        assert message == f"unknown layer type; one of: {', '.join(layer_registry.names())}"
