"""CSV string columns (`data.strings`): inputs of their own, encoded with a vocabulary adapted on
the train split only, kept in preprocess.json and re-applied to new data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcli.data import load_data
from kcli.data.preprocess import Preprocessing
from kcli.errors import KcliError
from kcli.model.graph import plan_graph
from kcli.model.strings import string_inputs
from kcli.recipe.load import load_recipe

RECIPE = """\
data:
  source: train.csv
  target: label
  strings: [text]
  {extra}
model:
  inputs: {inputs}
  layers:
    - {{name: vec, type: TextVectorization, inputs: text, {layer}}}
    - {{type: Embedding, input_dim: 20, output_dim: 2}}
    - {{type: GlobalAveragePooling1D}}
    - {{type: Dense, units: 1, activation: sigmoid}}
compile: {{optimizer: adam, loss: binary_crossentropy}}
"""


def load(tmp_path: Path, extra: str = "", inputs: str = "{text: [1]}", layer: str = ""):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(extra=extra, inputs=inputs, layer=layer))
    loaded = load_recipe(path)
    plan = plan_graph(loaded.recipe.model)
    return load_data(loaded.recipe.data, tmp_path, 0, None, string_inputs(plan))


def write(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n")


def test_vocabulary_is_adapted_on_the_train_split_only(tmp_path):
    write(tmp_path / "train.csv", ["text,label", "good good film,1", "bad film,0"])
    write(tmp_path / "test.csv", ["text,label", "zebra film,1"])
    splits = load(tmp_path, extra="test: test.csv")
    state = splits.preprocessing.strings["text"]
    # Train counts: good 2, film 2, bad 1; ties by the token high first: good > film.
    assert state["vocabulary"] == ["", "[UNK]", "good", "film", "bad"]
    assert "zebra" not in state["vocabulary"]
    # "zebra" is only in the test split: OOV (1); film = 3. Each split padded to its longest.
    assert splits.test.x.tolist() == [[1, 3]]
    assert splits.train.x.tolist() == [[2, 2, 3], [4, 3, 0]]
    assert splits.input_shapes == {"text": (1,)}  # the model's input: one string per sample


def test_other_columns_form_the_features_input_and_the_state_round_trips(tmp_path):
    write(
        tmp_path / "train.csv",
        ["text,size,color,label", "Red car,1.5,red,1", "blue sky,2.5,blue,0"],
    )
    splits = load(
        tmp_path,
        extra="categorical: [color]",
        inputs="{text: [1], features: [3]}",
        layer="output_sequence_length: 3",
    )
    x = splits.train.x
    assert sorted(x) == ["features", "text"]
    # size, then color one-hot in sorted order (blue, red).
    assert x["features"].tolist() == [[1.5, 0.0, 1.0], [2.5, 1.0, 0.0]]
    # car 1, red 1, blue 1, sky 1: all ties, high first: sky, red, car, blue.
    assert splits.preprocessing.strings["text"]["vocabulary"] == [
        "",
        "[UNK]",
        "sky",
        "red",
        "car",
        "blue",
    ]
    assert x["text"].tolist() == [[3, 4, 0], [5, 2, 0]]
    again = Preprocessing.from_json(splits.preprocessing.to_json())
    new = {
        "text": np.array(["RED sky!", "a b c d"], dtype=object),
        "size": [0.0, 1.0],
        "color": np.array(["red", "green"], dtype=object),
    }
    out = again.transform_x(new)
    assert out["text"].tolist() == [[3, 2, 0], [1, 1, 1]]  # cut to output_sequence_length 3
    assert out["features"].tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_vocabulary_file_relative_to_the_recipe(tmp_path):
    write(tmp_path / "train.csv", ["text,label", "alpha beta,1", "gamma,0"])
    (tmp_path / "vocab.txt").write_text("beta\nalpha\n")
    splits = load(tmp_path, layer="vocabulary: vocab.txt")
    # The file's lines after the padding and OOV entries; gamma is OOV.
    assert splits.preprocessing.strings["text"]["vocabulary"] == ["", "[UNK]", "beta", "alpha"]
    assert splits.train.x.tolist() == [[3, 2], [1, 0]]


def test_a_missing_vocabulary_file_is_bad_input(tmp_path):
    write(tmp_path / "train.csv", ["text,label", "alpha,1"])
    with pytest.raises(KcliError, match="cannot read the vocabulary file") as caught:
        load(tmp_path, layer="vocabulary: nope.txt")
    assert caught.value.problems[0].loc == ("model", "layers", 0, "vocabulary")


def test_a_string_input_with_no_column_is_bad_input(tmp_path):
    write(tmp_path / "train.csv", ["words,label", "alpha,1"])
    path = tmp_path / "recipe.yaml"
    path.write_text(
        RECIPE.format(extra="", inputs="{text: [1]}", layer="").replace(
            "strings: [text]", "strings: [words]\n  features: []"
        )
    )
    loaded = load_recipe(path)
    layers = string_inputs(plan_graph(loaded.recipe.model))
    splits = load_data(loaded.recipe.data, tmp_path, 0, None, layers)
    # One string column and one string input: matched whatever their names.
    assert splits.preprocessing.strings["words"]["layer"] == "vec"


def test_strings_only_for_csv_and_not_also_features(tmp_path):
    from pydantic import ValidationError

    from kcli.data.spec import DataSpec

    with pytest.raises(ValidationError, match="only applies to .csv"):
        DataSpec.model_validate({"source": "sklearn:iris", "strings": ["text"]})
    with pytest.raises(ValidationError, match="also under 'features'"):
        DataSpec.model_validate(
            {"source": "a.csv", "target": "y", "features": ["text"], "strings": ["text"]}
        )


def test_a_numeric_step_with_only_string_columns_is_bad_input(tmp_path):
    write(tmp_path / "train.csv", ["text,label", "alpha,1", "beta,0"])
    with pytest.raises(KcliError, match="standardize has no numeric input") as caught:
        load(tmp_path, extra="preprocess: [standardize]")
    assert caught.value.problems[0].loc == ("data", "preprocess", 0)
