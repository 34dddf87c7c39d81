"""`kcli predict` takes a .npy/.npz of features for a run trained on a CSV of numeric columns.

The array's columns are the recipe's features, in their order (the run's CSV columns); the
command says so, and the predictions equal those for the same rows given as a .csv.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.trained import cli, trained

RECIPE = """\
name: numeric_csv
seed: 2
data:
  source: table.csv
  target: label
  features: [height, width, depth]
  validation_split: 0.2
  preprocess: [standardize]
model:
  input_shape: [3]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 2, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
fit: {epochs: 2, batch_size: 16}
"""


@pytest.fixture(scope="module")
def numeric_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numeric")
    rng = np.random.default_rng(0)
    values = rng.normal(size=(80, 3)) * [10, 1, 100]
    # The file's column order differs from the recipe's `features:` order on purpose.
    lines = ["depth,label,width,height"] + [
        f"{d:.4f},{int(h > 0)},{w:.4f},{h:.4f}" for h, w, d in values
    ]
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    (folder / "numeric.yaml").write_text(RECIPE)
    done = cli("train", folder / "numeric.yaml", "--runs-dir", folder / "runs", "--json", "-q")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)["run_dir"], values, folder


def test_an_array_is_read_in_the_recipes_feature_order(numeric_run, tmp_path):
    run_dir, values, _ = numeric_run
    features = values[:10]  # height, width, depth: the recipe's order
    np.save(tmp_path / "rows.npy", features)
    lines = ["height,width,depth"] + [",".join(repr(float(v)) for v in row) for row in features]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")

    from_array = cli("predict", run_dir, tmp_path / "rows.npy", "-o", tmp_path / "a.npy", "--proba")
    from_csv = cli("predict", run_dir, tmp_path / "rows.csv", "-o", tmp_path / "c.npy", "--proba")
    assert from_array.exit_code == 0 and from_csv.exit_code == 0, from_array.output
    assert "note: read the 3 columns of rows.npy as height, width, depth" in from_array.output
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "c.npy"))

    np.savez(tmp_path / "rows.npz", x=features)
    from_npz = cli("predict", run_dir, tmp_path / "rows.npz", "-o", tmp_path / "z.npy", "--proba")
    assert from_npz.exit_code == 0, from_npz.output
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), np.load(tmp_path / "c.npy"))


def test_an_array_of_the_wrong_width_names_the_columns(numeric_run, tmp_path):
    run_dir, values, _ = numeric_run
    np.save(tmp_path / "wide.npy", np.zeros((4, 5)))
    done = cli("predict", run_dir, tmp_path / "wide.npy", "-o", tmp_path / "p.npy")
    assert done.exit_code == 2, done.output
    assert "shape (n, 3) with the columns height, width, depth in that order" in done.output
    assert not (tmp_path / "p.npy").exists()


def test_a_run_with_categorical_columns_still_needs_a_csv(tmp_path):
    np.save(tmp_path / "rows.npy", np.zeros((4, 3)))
    done = cli("predict", trained("csv"), tmp_path / "rows.npy", "-o", tmp_path / "p.npy")
    assert done.exit_code == 2, done.output
    assert "some categorical (color); give a .csv with the columns" in done.output
