"""Every bad data input is a KcliError (exit code 2) naming the file, the key and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from kcli.errors import KcliError


def _fails(load, data: dict, *fragments: str, loc: tuple):
    """Load `data`, expect a KcliError at `loc` whose message holds every fragment."""
    with pytest.raises(KcliError) as info:
        load(data)
    err = info.value
    assert err.exit_code == 2
    assert err.__cause__ is None  # raised `from None`: no chained traceback to show
    (problem,) = err.problems
    for fragment in fragments:
        assert fragment in problem.message, problem.message
    assert problem.loc == loc
    return problem.message


def test_missing_file(load, tmp_path):
    msg = _fails(load, {"source": "nope.npz"}, "file not found", loc=("data", "source"))
    assert str(tmp_path / "nope.npz") in msg


def test_corrupt_npz(load, tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"this is not a zip archive")
    _fails(load, {"source": "bad.npz"}, "bad.npz", "cannot read", ".npz", loc=("data", "source"))


def test_corrupt_npy(load, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"garbage")
    np.save(tmp_path / "y.npy", np.zeros(3))
    _fails(load, {"source": "x.npy", "y": "y.npy"}, "x.npy", ".npy", loc=("data", "source"))


def test_missing_y_npy(load, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 1)))
    _fails(load, {"source": "x.npy", "y": "labels.npy"}, "file not found", loc=("data", "y"))


def test_csv_ragged_row(load, write_csv):
    write_csv("d.csv", "a,b,t\n1,2,0\n3,4\n")
    _fails(
        load,
        {"source": "d.csv", "target": "t"},
        "d.csv",
        "line 3",
        "2 fields",
        "3",
        loc=("data", "source"),
    )


def test_csv_not_text(load, tmp_path):
    (tmp_path / "d.csv").write_bytes(b"a,t\n\xff\xfe,1\n")
    _fails(load, {"source": "d.csv", "target": "t"}, "cannot read", "d.csv", loc=("data", "source"))


def test_npz_array_missing_lists_the_others(load, tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((2, 1)), labels=np.zeros(2))
    _fails(load, {"source": "d.npz"}, "no array 'x'", "features, labels", loc=("data", "x"))
    _fails(
        load,
        {"source": "d.npz", "x": "features", "y": "label"},
        "no array 'label'",
        "features, labels",
        loc=("data", "y"),
    )


def test_csv_column_missing_lists_the_others(load, write_csv):
    write_csv("d.csv", "a,b,label\n1,2,0\n")
    _fails(
        load,
        {"source": "d.csv", "target": "labl"},
        "no column 'labl'",
        "a, b, label",
        loc=("data", "target"),
    )
    _fails(
        load,
        {"source": "d.csv", "target": "label", "features": ["a", "c"]},
        "'c'",
        loc=("data", "features"),
    )


def test_csv_text_column_not_categorical(load, write_csv):
    write_csv("d.csv", "a,color,t\n1,red,0\n")
    _fails(
        load,
        {"source": "d.csv", "target": "t"},
        "column 'color'",
        "line 2",
        "'red'",
        "categorical",
        loc=("data", "source"),
    )


def test_x_and_y_lengths_differ(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    _fails(load, {"source": "d.npz"}, "x has 5 samples", "y has 4", loc=("data", "y"))


def test_nan_and_inf_counted_and_located(load, tmp_path, write_csv):
    x = np.zeros((6, 3))
    x[2, 1] = np.nan
    x[4, 0] = np.inf
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(6))
    _fails(
        load,
        {"source": "d.npz"},
        "1 NaN",
        "1 inf",
        "sample 2 at (1,)",
        "sample 4 at (0,)",
        loc=("data", "source"),
    )
    write_csv("d.csv", "a,b,t\n1,2,0\n3,,1\n")  # an empty cell is a missing value
    _fails(
        load,
        {"source": "d.csv", "target": "t"},
        "1 NaN",
        "line 3 column 'b'",
        loc=("data", "source"),
    )


def test_split_fraction_leaving_a_split_empty(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 1)), y=np.zeros(10))
    _fails(
        load,
        {"source": "d.npz", "validation_split": 0.04},
        "validation split empty",
        "0.04 * 10 rounds to 0",
        loc=("data", "validation_split"),
    )


def test_reshape_that_does_not_fit(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 10)), y=np.zeros(3))
    _fails(
        load,
        {"source": "d.npz", "preprocess": ["standardize", {"reshape": [3, 3]}]},
        "reshape [3, 3]",
        "(10,)",
        "10 values",
        loc=("data", "preprocess", 1),
    )


def test_label_not_seen_in_train(load, write_csv):
    write_csv("train.csv", "a,t\n1,cat\n2,dog\n")
    write_csv("val.csv", "a,t\n1,cow\n")
    _fails(
        load,
        {"source": "train.csv", "target": "t", "validation": "val.csv"},
        "'cow'",
        "line 2",
        "cat, dog",
        loc=("data", "validation", "target"),
    )


def test_negative_class_labels(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 1)), y=np.array([0, -1, 1]))
    _fails(load, {"source": "d.npz"}, ">= 0", "-1", "sample 1", loc=("data", "y"))


def test_labels_out_of_range_for_the_output(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 1)), y=np.array([0, 11, 3]))
    target = load({"source": "d.npz"}).target
    with pytest.raises(KcliError) as info:
        target.check_output((10,), sparse=True)
    assert "labels run from 0 to 11" in str(info.value) and "0..9" in str(info.value)
    assert info.value.problems[0].loc == ("data", "y")
    target.check_output((12,), sparse=True)  # fits: no error
    with pytest.raises(KcliError, match="sparse_"):
        target.check_output((12,), sparse=False)  # class indices vs a dense loss
    with pytest.raises(KcliError, match="labels 0 or 1"):
        target.check_output((1,), sparse=False)  # one sigmoid unit, labels up to 11


def test_one_hot_too_few_classes(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 1)), y=np.array([0, 5, 1]))
    _fails(
        load,
        {"source": "d.npz", "preprocess": [{"one_hot": 3}]},
        "0 to 5",
        "3 classes",
        loc=("data", "preprocess", 0),
    )


def _module(tmp_path, body: str) -> str:
    name = f"bad_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(body)
    return name


def test_python_module_not_importable(load, tmp_path):
    _fails(
        load,
        {"source": "python:no_such_module_here:load"},
        "cannot import",
        "No module named",
        str(tmp_path),
        loc=("data", "source"),
    )
    name = _module(tmp_path, "def load(:\n")
    _fails(load, {"source": f"python:{name}:load"}, "SyntaxError", loc=("data", "source"))


def test_python_function_missing_lists_functions(load, tmp_path):
    name = _module(tmp_path, "def make_data():\n    return 1\n")
    _fails(
        load,
        {"source": f"python:{name}:load"},
        "no function 'load'",
        "make_data",
        loc=("data", "source"),
    )


def test_python_returns_the_wrong_thing(load, tmp_path):
    name = _module(tmp_path, "def load():\n    return 42\n")
    _fails(
        load, {"source": f"python:{name}:load"}, "returned int", "(x, y)", loc=("data", "source")
    )


def test_python_dict_without_train(load, tmp_path):
    name = _module(tmp_path, "def load():\n    return {'training': ([1], [1])}\n")
    _fails(load, {"source": f"python:{name}:load"}, "'train'", loc=("data", "source"))


def test_python_raises(load, tmp_path):
    name = _module(tmp_path, "def load():\n    raise RuntimeError('disk on fire')\n")
    _fails(
        load,
        {"source": f"python:{name}:load"},
        "RuntimeError: disk on fire",
        loc=("data", "source"),
    )


def test_python_bad_params(load, tmp_path):
    name = _module(tmp_path, "def load(n=1):\n    return [[1.0]] * n, [0] * n\n")
    _fails(
        load,
        {"source": f"python:{name}:load", "params": {"m": 2}},
        "cannot take params",
        loc=("data", "params"),
    )


def test_generator_cannot_be_split_by_fraction(load, tmp_path):
    name = _module(tmp_path, "def load():\n    yield [[1.0]], [0]\n")
    _fails(
        load,
        {"source": f"python:{name}:load", "validation_split": 0.2},
        "validation:",
        loc=("data", "validation_split"),
    )


def test_non_numeric_npz(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([["a"], ["b"]]), y=np.zeros(2))
    _fails(load, {"source": "d.npz"}, "dtype <U1", "expected numbers", loc=("data", "source"))


def test_values_past_float32_range_are_located_not_warned(load, tmp_path, recwarn):
    # float64 values beyond float32's max (3.4028e38) would become inf in the cast to the
    # model's dtype, which numpy only reports as a bare "overflow encountered in cast".
    x = np.zeros((6, 2))
    x[4, 1] = 1e300
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6) % 2)
    message = _fails(
        load,
        {"source": "d.npz"},
        "holds 1e+300 (sample 4), beyond the float32 range",
        "it would become inf",
        loc=("data", "source"),
    )
    assert "d.npz" in message
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("dtype", ["complex64", "U2", "datetime64[s]", "V4"])
def test_odd_dtypes_in_an_npz_are_refused(load, tmp_path, dtype):
    np.savez(tmp_path / "d.npz", x=np.zeros((6, 2), dtype=dtype), y=np.arange(6) % 2)
    _fails(load, {"source": "d.npz"}, "has dtype", "expected numbers", loc=("data", "source"))
