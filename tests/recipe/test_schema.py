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
def test_shipped_recipes_satisfy_the_json_schema(validator, path):
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
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
