"""A text classifier from a CSV column, run as a user runs it: TextVectorization -> Embedding ->
GlobalAveragePooling1D -> Dense trained with `kcli train`, then eval, predict, summarize; the
wiring and data mistakes a user can make exit 2 naming the place."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.conftest import run_cli

SPORT = "goal match team player score win league coach ball season".split()
FOOD = "recipe bake oven flour sugar taste dinner cook salt butter".split()
FILLER = "the a and of today".split()

RECIPE = """\
name: topics
seed: 1
data:
  source: news.csv
  target: topic
  strings: [text]
  validation_split: 0.2
  test_split: 0.2
model:
  inputs: {text: [1]}
  layers:
    - {type: TextVectorization, max_tokens: 40, output_sequence_length: 8, inputs: text}
    - {type: Embedding, input_dim: 40, output_dim: 8}
    - {type: GlobalAveragePooling1D}
    - {type: Dense, units: 2, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.05}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 8, batch_size: 16}
"""


def sentence(rng: random.Random, words: list[str]) -> str:
    chosen = rng.sample(words, 4) + rng.sample(FILLER, 2)
    rng.shuffle(chosen)
    return " ".join(chosen).capitalize() + "!"


def write_news(folder: Path) -> None:
    rng = random.Random(0)
    rows = ["text,topic"]
    for i in range(200):
        topic = "sport" if i % 2 == 0 else "food"
        rows.append(f'"{sentence(rng, SPORT if topic == "sport" else FOOD)}",{topic}')
    (folder / "news.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    write_news(folder)
    (folder / "recipe.yaml").write_text(RECIPE)
    result = run_cli(
        "train", str(folder / "recipe.yaml"), "--runs-dir", str(folder / "runs"), "--json", "-q"
    )
    assert result.exit_code == 0, result.output
    return folder, Path(json.loads(result.stdout)["run_dir"])


def test_trains_to_a_clear_accuracy_and_eval_gives_the_same_numbers(trained):
    _, run_dir = trained
    test = json.loads((run_dir / "eval.json").read_text())["metrics"]
    # Two topics with disjoint keywords (4 of 6 words a sentence): near-perfect.
    assert test["accuracy"] >= 0.95
    result = run_cli("eval", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)["metrics"]
    assert again["accuracy"] == test["accuracy"]
    assert again["loss"] == pytest.approx(test["loss"], rel=1e-6)
    saved = json.loads((run_dir / "preprocess.json").read_text())["preprocessing"]
    vocabulary = saved["strings"]["text"]["vocabulary"]
    assert vocabulary[:2] == ["", "[UNK]"] and len(vocabulary) <= 40


def test_predict_on_a_new_csv_gives_class_names(trained, tmp_path):
    _, run_dir = trained
    new = tmp_path / "new.csv"
    new.write_text("text\nThe team won the match\nBake the flour with sugar and butter\n")
    out = tmp_path / "pred.csv"
    result = run_cli("predict", str(run_dir), str(new), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().split() == ["class", "sport", "food"]


def test_summarize_shows_keras_shapes(trained):
    folder, run_dir = trained
    result = run_cli("summarize", str(folder / "recipe.yaml"), "--json")
    assert result.exit_code == 0, result.output
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    assert layers["text_vectorization"]["output_shape"] == [8]
    assert layers["text_vectorization"]["params"] == 0
    assert layers["embedding"]["params"] == 40 * 8  # input_dim * output_dim


def test_export_is_refused_by_name(trained):
    _, run_dir = trained
    result = run_cli("export", str(run_dir), "--format", "onnx")
    assert result.exit_code == 2
    assert "TextVectorization 'text_vectorization'" in result.output
    assert "Traceback" not in result.output


def bad(tmp_path: Path, recipe: str) -> str:
    write_news(tmp_path)
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    result = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing half-written
    return result.output


def test_a_string_column_fed_to_a_numeric_layer_only(tmp_path):
    recipe = RECIPE.replace(
        "    - {type: TextVectorization, max_tokens: 40, output_sequence_length: 8, inputs: text}\n"
        "    - {type: Embedding, input_dim: 40, output_dim: 8}\n"
        "    - {type: GlobalAveragePooling1D}\n"
        "    - {type: Dense, units: 2, activation: softmax}\n",
        "    - {type: Dense, units: 2, activation: softmax, inputs: text}\n",
    )
    output = bad(tmp_path, recipe)
    assert "data.strings lists 'text', but no StringLookup or TextVectorization" in output


def test_a_string_input_read_by_a_numeric_layer_too(tmp_path):
    recipe = RECIPE.replace(
        "    - {type: GlobalAveragePooling1D}\n",
        "    - {name: pooled, type: GlobalAveragePooling1D}\n"
        "    - {name: raw, type: Dense, units: 3, inputs: text}\n"
        "    - {type: Concatenate, inputs: [pooled, raw]}\n",
    )
    output = bad(tmp_path, recipe)
    assert "Dense 'raw' reads the string input 'text'" in output
    assert "recipe.yaml:15:" in output  # the Dense layer's line


def test_a_string_layer_not_on_an_input(tmp_path):
    recipe = RECIPE.replace(
        "  inputs: {text: [1]}\n  layers:\n",
        "  inputs: {text: [1]}\n  layers:\n    - {type: Dense, units: 1}\n",
    ).replace("inputs: text}", "}")
    output = bad(tmp_path, recipe)
    assert "must take a model input" in output
    validated = run_cli("validate", str(tmp_path / "recipe.yaml"))  # caught without data too
    assert validated.exit_code == 2 and "must take a model input" in validated.output


def test_an_unknown_string_column(tmp_path):
    output = bad(tmp_path, RECIPE.replace("strings: [text]", "strings: [body]"))
    assert "has no column(s) 'body'" in output


def test_a_text_column_not_under_strings(tmp_path):
    output = bad(tmp_path, RECIPE.replace("  strings: [text]\n", ""))
    assert "not numeric" in output and "strings:" in output


def test_validate_does_not_import_torch(tmp_path):
    write_news(tmp_path)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    probe = (
        "import sys; from kcli.recipe.load import check_recipe; check_recipe(sys.argv[1]); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "recipe.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_an_embedding_too_small_for_the_vocabulary(tmp_path):
    # No max_tokens: the vocabulary is every train word (20 topic words + 5 fillers) plus the
    # padding and OOV entries, 27 ids; an Embedding of 10 rows cannot take them.
    recipe = RECIPE.replace("max_tokens: 40, ", "").replace("input_dim: 40", "input_dim: 10")
    output = bad(tmp_path, recipe)
    assert "Embedding 'embedding' has input_dim 10" in output
    assert "make input_dim at least 27" in output


MIXED = """\
name: mixed
seed: 3
data:
  source: mixed.csv
  target: label
  strings: [city, text]
  test_split: 0.25
model:
  inputs: {city: [1], text: [1], features: [1]}
  layers:
    - {name: c, type: StringLookup, output_mode: one_hot, max_tokens: 6, inputs: city}
    - {name: t, type: TextVectorization, output_mode: tf_idf, max_tokens: 10, inputs: text}
    - {name: both, type: Concatenate, inputs: [c, t, features]}
    - {type: Dense, units: 1, activation: sigmoid}
compile:
  optimizer: {type: Adam, learning_rate: 0.05}
  loss: binary_crossentropy
  metrics: [accuracy]
fit: {epochs: 3, batch_size: 16}
"""


def test_string_lookup_tf_idf_and_numeric_features_together(tmp_path):
    rng = random.Random(0)
    rows = ["city,text,x,label"]
    for i in range(80):
        label = i % 2
        city = rng.choice(["paris", "rome"] if label else ["oslo", "bern"])
        words = "good great day" if label else "bad awful day"
        rows.append(f"{city},{words},{rng.random() + label},{label}")
    (tmp_path / "mixed.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mixed.yaml").write_text(MIXED)
    runs = str(tmp_path / "runs")
    result = run_cli("train", str(tmp_path / "mixed.yaml"), "--runs-dir", runs, "--json", "-q")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    saved = json.loads((run_dir / "preprocess.json").read_text())["preprocessing"]
    text = saved["strings"]["text"]
    # Every train sample has "day": df = n, idf = log(1 + n / (1 + n)).
    n = 60
    day = text["vocabulary"].index("day")
    assert text["idf_weights"][day] == pytest.approx(math.log(1 + n / (1 + n)))
    # The idf weights are not in the checkpoint: eval must put them back to agree.
    test = json.loads((run_dir / "eval.json").read_text())["metrics"]
    again = json.loads(run_cli("eval", str(run_dir), "--json").stdout)["metrics"]
    assert again["loss"] == pytest.approx(test["loss"], rel=1e-6)
    assert sorted(saved["inputs"]) == ["city", "features", "text"]
