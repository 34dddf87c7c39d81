"""The `data:` schema: forms, defaults, and errors located at the offending key."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from kcli.data.spec import DataSpec


def _errors(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        DataSpec.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_defaults_need_no_params_and_no_splits():
    spec = DataSpec.model_validate({"source": "synthetic:images"})
    assert spec.validation_split == 0 and spec.test_split == 0
    assert spec.params == {
        "n_samples": 500,
        "noise": 0.5,
        "n_classes": 2,
        "height": 8,
        "width": 8,
        "channels": 1,
    }


def test_step_forms_are_equivalent_and_round_trip():
    short = DataSpec.model_validate(
        {
            "source": "d.npz",
            "preprocess": [
                "standardize",
                {"scale": 0.5},
                {"reshape": [2, 2]},
                {"one_hot": 3},
                {"cast": "float64"},
            ],
        }
    )
    long = DataSpec.model_validate(
        {
            "source": "d.npz",
            "preprocess": [
                {"standardize": {}},
                {"type": "scale", "scale": 0.5},
                {"reshape": {"shape": [2, 2]}},
                {"type": "one_hot", "num_classes": 3},
                {"type": "cast", "dtype": "float64"},
            ],
        }
    )
    assert short == long
    assert DataSpec.model_validate(short.model_dump()) == short  # the resolved recipe reloads
    mixed = DataSpec.model_validate({"source": "d.npz", "preprocess": [{"scale": 2, "offset": 1}]})
    assert (mixed.preprocess[0].scale, mixed.preprocess[0].offset) == (2.0, 1.0)


def test_unknown_keys_and_names_suggest():
    assert _errors({"source": "d.npz", "validaton_split": 0.1})[0][1].startswith("unknown key")
    ((loc, msg),) = _errors({"source": "d.npz", "preprocess": ["standardise"]})
    assert loc == ("preprocess", 0) and "did you mean 'standardize'" in msg
    ((loc, msg),) = _errors({"source": "sklearn:iriss"})
    assert loc == ("source",) and "did you mean 'iris'" in msg
    ((loc, msg),) = _errors({"source": "synthetic:moons", "params": {"noise": -1}})
    assert loc == ("params", "noise")


def test_keys_that_do_not_apply_to_the_source():
    ((loc, msg),) = _errors({"source": "d.npz", "target": "label"})
    assert loc == ("target",) and ".csv" in msg
    ((loc, msg),) = _errors({"source": "sklearn:iris", "params": {"n": 1}})
    assert loc == ("params",)
    ((loc, _),) = _errors({"source": "d.csv"})  # target is required for a CSV
    assert loc == ("target",)
    ((loc, _),) = _errors({"source": "x.npy"})  # y (a path) is required for .npy
    assert loc == ("y",)
    ((loc, msg),) = _errors({"source": "data.txt"})
    assert "cannot tell" in msg


def test_split_fractions():
    ((loc, msg),) = _errors({"source": "d.npz", "validation_split": 1.0})
    assert loc == ("validation_split",)
    ((loc, msg),) = _errors({"source": "d.npz", "validation_split": 0.6, "test_split": 0.4})
    assert "must be < 1" in msg
    ((loc, msg),) = _errors({"source": "d.npz", "test_split": 0.2, "test": "t.npz"})
    assert "not both" in msg


def test_nested_source_inherits_same_kind_options():
    spec = DataSpec.model_validate(
        {
            "source": "a.csv",
            "target": "y",
            "categorical": ["c"],
            "validation": "b.csv",
            "test": {"source": "synthetic:moons"},
        }
    )
    assert spec.validation.target == "y" and spec.validation.categorical == ["c"]
    assert spec.test.target is None  # another kind of source: nothing inherited


def test_reshape_and_axis_bounds():
    ((loc, _),) = _errors({"source": "d.npz", "preprocess": [{"reshape": [-1, -1]}]})
    assert loc[:2] == ("preprocess", 0)
    ((loc, _),) = _errors({"source": "d.npz", "preprocess": [{"standardize": {"axis": 0}}]})
    assert loc[:2] == ("preprocess", 0)


def test_spec_import_is_light():
    code = (
        "import sys, kcli.data, kcli.data.spec; "
        "print([m for m in ('numpy', 'torch', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
