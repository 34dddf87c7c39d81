"""Splits (seeded, stratified, sized by hand) and preprocessing fitted on train only."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kcli.data.preprocess import Preprocessing
from kcli.data.splits import split_indices
from kcli.errors import KcliError


def _npz(tmp_path, x, y, name="d.npz"):
    np.savez(tmp_path / name, x=np.asarray(x), y=np.asarray(y))
    return name


def test_same_seed_same_splits_other_seed_other_splits(tmp_path, load):
    _npz(tmp_path, np.arange(100.0)[:, None], np.arange(100) % 2)
    data = {"source": "d.npz", "validation_split": 0.2, "test_split": 0.1}
    a, b, c = load(data, seed=1), load(data, seed=1), load(data, seed=2)
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, split).x, getattr(b, split).x)
    assert not np.array_equal(a.validation.x, c.validation.x)
    # The splits partition the data: every sample in exactly one of them.
    everything = np.concatenate([a.train.x, a.validation.x, a.test.x])[:, 0]
    np.testing.assert_array_equal(np.sort(everything), np.arange(100.0))


def test_split_sizes_round_fraction_times_n(tmp_path, load):
    _npz(tmp_path, np.zeros((10, 1)), np.arange(10.0))  # continuous: not stratified
    splits = load({"source": "d.npz", "validation_split": 0.25, "test_split": 0.1})
    # round(0.25 * 10) = round(2.5) = 3 (halves round up); round(0.1 * 10) = 1; train 10-3-1 = 6
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (6, 3, 1)


def test_stratification_keeps_class_proportions(tmp_path, load):
    y = np.array([0] * 80 + [1] * 20)
    _npz(tmp_path, np.arange(100.0)[:, None], y)
    for seed in range(3):
        splits = load({"source": "d.npz", "validation_split": 0.2, "test_split": 0.1}, seed)
        # validation 20 samples: 20*0.8 = 16 of class 0, 4 of class 1; test 10: 8 and 2;
        # train the rest: 80-16-8 = 56 and 20-4-2 = 14.
        assert np.bincount(splits.validation.y).tolist() == [16, 4]
        assert np.bincount(splits.test.y).tolist() == [8, 2]
        assert np.bincount(splits.train.y).tolist() == [56, 14]


def test_stratified_quotas_sum_exactly():
    codes = np.array([0] * 7 + [1] * 5 + [2] * 3)  # 15 samples, uneven classes
    parts = split_indices(15, {"validation": 0.2, "test": 0.2}, codes, seed=0)
    # round(0.2 * 15) = 3 each; class shares 3*7/15 = 1.4, 1.0, 0.6 -> floors 1, 1, 0 and the
    # one left goes to the largest remainder, class 2 (0.6): [1, 1, 1].
    assert np.bincount(codes[parts["validation"]], minlength=3).tolist() == [1, 1, 1]
    assert len(parts["test"]) == 3 and len(parts["train"]) == 9


def test_string_labels_are_stratified(write_csv, load):
    rows = "".join(f"{i},{'a' if i < 12 else 'b'}\n" for i in range(16))
    write_csv("d.csv", "v,t\n" + rows)
    splits = load({"source": "d.csv", "target": "t", "validation_split": 0.25})
    # 4 validation samples: 4*12/16 = 3 of 'a' (index 0), 1 of 'b'.
    assert np.bincount(splits.validation.y).tolist() == [3, 1]


def test_standardize_fits_on_train_only(tmp_path, load):
    _npz(tmp_path, [[1.0], [2.0], [3.0], [4.0]], [0, 1, 0, 1], "train.npz")
    _npz(tmp_path, [[100.0]], [1], "val.npz")
    splits = load({"source": "train.npz", "validation": "val.npz", "preprocess": ["standardize"]})
    # Train mean 2.5, population std sqrt((2.25+0.25+0.25+2.25)/4) = sqrt(1.25); with the
    # validation sample included the mean would be 22.
    std = math.sqrt(1.25)
    expected = [[-1.5 / std], [-0.5 / std], [0.5 / std], [1.5 / std]]
    np.testing.assert_allclose(splits.train.x, expected, rtol=1e-6)
    np.testing.assert_allclose(splits.validation.x, [[(100 - 2.5) / std]], rtol=1e-6)


def test_fraction_split_statistics_come_from_train_rows(tmp_path, load):
    x = np.arange(20.0)[:, None] ** 2
    _npz(tmp_path, x, np.zeros(20))
    splits = load({"source": "d.npz", "test_split": 0.5, "preprocess": ["standardize"]})
    state = splits.preprocessing.states[0]["input"]
    mean = state["mean"][0][0]
    train_rows = np.sort(splits.train.x[:, 0] * state["std"][0][0] + mean)
    assert mean == pytest.approx(train_rows.mean())
    assert mean != pytest.approx(x.mean())  # the whole set's mean (123.5) differs


def test_minmax_scale_reshape_cast_in_order(tmp_path, load):
    x = np.array([[0.0, 2.0, 4.0, 6.0], [2.0, 4.0, 6.0, 10.0]])
    _npz(tmp_path, x, [0, 1])
    steps = ["minmax", {"scale": 2, "offset": -1}, {"reshape": [2, -1]}, {"cast": "float64"}]
    splits = load({"source": "d.npz", "preprocess": steps})
    # minmax per column: row 0 is each column's min -> 0, row 1 the max -> 1; then 2x - 1.
    expected = np.array([[[-1.0, -1.0], [-1.0, -1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    np.testing.assert_array_equal(splits.train.x, expected)
    assert splits.train.x.dtype == np.float64 and splits.input_shape == (2, 2)


def test_standardize_global_axis_and_constant_feature(tmp_path, load):
    _npz(tmp_path, [[1.0, 5.0], [3.0, 5.0]], [0, 1])
    per_feature = load({"source": "d.npz", "preprocess": ["standardize"]})
    # column 0: mean 2, std 1 -> -1, 1; column 1 constant: centered, scale 1 -> 0, 0
    np.testing.assert_array_equal(per_feature.train.x, [[-1.0, 0.0], [1.0, 0.0]])
    overall = load({"source": "d.npz", "preprocess": [{"standardize": {"axis": None}}]})
    # one mean (3.5) and std (sqrt(((2.5)^2 + (1.5)^2*2... ) ) over all four values
    values = np.array([1.0, 5.0, 3.0, 5.0])
    expected = ((values - values.mean()) / values.std()).reshape(2, 2)
    np.testing.assert_allclose(overall.train.x, expected, rtol=1e-6)


def test_one_hot_targets(tmp_path, load):
    _npz(tmp_path, np.zeros((3, 1)), [2, 0, 1])
    splits = load({"source": "d.npz", "preprocess": [{"one_hot": 4}]})
    np.testing.assert_array_equal(splits.train.y, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    assert splits.target.kind == "onehot" and splits.target.n_classes == 4
    inferred = load({"source": "d.npz", "preprocess": ["one_hot"]})
    assert inferred.train.y.shape == (3, 3)


def test_saved_preprocessing_reapplies_identically(write_csv, load, tmp_path):
    write_csv("d.csv", "a,c,t\n1,x,p\n2,y,q\n5,x,p\n9,z,q\n4,y,p\n")
    steps = ["standardize", {"scale": 0.5}]
    splits = load({"source": "d.csv", "target": "t", "categorical": ["c"], "preprocess": steps})
    text = json.dumps(splits.preprocessing.to_json())  # plain JSON: preprocess.json
    again = Preprocessing.from_json(json.loads(text))
    from kcli.data.csvfile import read_csv
    from kcli.data.spec import SourceSpec

    raw = read_csv(
        SourceSpec(source="d.csv", target="t", categorical=["c"]), tmp_path / "d.csv", ("data",)
    )
    np.testing.assert_array_equal(again.transform_x(raw.x), splits.train.x)
    np.testing.assert_array_equal(again.transform_y(raw.y), splits.train.y)
    assert again.target == splits.target

    # An unseen category becomes an all-zero block rather than an error.
    plain = load({"source": "d.csv", "target": "t", "categorical": ["c"]}).preprocessing
    new = {"a": np.array([1.0]), "c": np.array(["w"], dtype=object)}
    assert plain.transform_x(new).tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_load_source_arrays_for_other_data(tmp_path, load):
    from kcli.data import load_source_arrays
    from kcli.data.spec import SourceSpec

    _npz(tmp_path, [[0.0], [2.0]], [0, 1])
    _npz(tmp_path, [[4.0]], [1], "new.npz")
    splits = load({"source": "d.npz", "preprocess": ["standardize"]})
    raw = load_source_arrays(SourceSpec(source="new.npz"), tmp_path)
    # train mean 1, std 1: (4 - 1) / 1 = 3
    assert splits.preprocessing.transform_x(raw.x).tolist() == [[3.0]]


def test_multi_input_steps_per_input(tmp_path, load):
    np.savez(
        tmp_path / "d.npz",
        a=np.array([[0.0], [2.0]]),
        b=np.array([[10.0], [30.0]]),
        y=np.array([0, 1]),
    )
    data = {"source": "d.npz", "x": {"left": "a", "right": "b"}}
    both = load({**data, "preprocess": ["standardize"]})
    # each input its own statistics: a: mean 1, std 1; b: mean 20, std 10
    assert both.train.x["left"].tolist() == [[-1.0], [1.0]]
    assert both.train.x["right"].tolist() == [[-1.0], [1.0]]
    one = load({**data, "preprocess": [{"scale": 0.1, "input": "right"}]})
    assert one.train.x["left"].tolist() == [[0.0], [2.0]]
    np.testing.assert_allclose(one.train.x["right"], [[1.0], [3.0]], rtol=1e-6)
    with pytest.raises(KcliError, match="no input 'middle'") as info:
        load({**data, "preprocess": [{"scale": 2, "input": "middle"}]})
    assert info.value.problems[0].loc == ("data", "preprocess", 0, "input")
