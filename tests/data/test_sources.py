"""Every kind of source loads into splits of the right shapes, dtypes and values."""

from __future__ import annotations

import numpy as np
import pytest

from kcli.data.synthetic import SYNTHETIC_PARAMS


def test_npz_default_names(tmp_path, load):
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    splits = load({"source": "d.npz"})
    assert splits.train.x.dtype == np.float32 and splits.train.y.dtype == np.int64
    np.testing.assert_array_equal(splits.train.x, x)
    np.testing.assert_array_equal(splits.train.y, y)
    assert splits.validation is None and splits.test is None  # no split unless asked
    assert splits.input_shape == (2,)
    assert splits.target.kind == "classes" and splits.target.n_classes == 3


def test_npz_named_arrays_and_multi_input(tmp_path, load):
    np.savez(
        tmp_path / "d.npz",
        img=np.ones((4, 3, 3, 1)),
        meta=np.zeros((4, 2)),
        labels=np.array([0.5, 1.5, 2.5, 3.5]),
    )
    splits = load({"source": "d.npz", "x": {"pixels": "img", "side": "meta"}, "y": "labels"})
    assert set(splits.train.x) == {"pixels", "side"}
    assert splits.input_shapes == {"pixels": (3, 3, 1), "side": (2,)}
    assert splits.target.kind == "continuous" and splits.train.y.dtype == np.float32


def test_npy_pair(tmp_path, load):
    np.save(tmp_path / "x.npy", np.eye(3))
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "y.npy", np.array([1, 0, 1]))
    splits = load({"source": "x.npy", "y": "sub/y.npy"})  # relative to the recipe folder
    np.testing.assert_array_equal(splits.train.x, np.eye(3))
    np.testing.assert_array_equal(splits.train.y, [1, 0, 1])


def test_csv_categorical_and_string_target(write_csv, load):
    write_csv(
        "d.csv",
        "size,color,label\n1.5,red,cat\n2,blue,dog\n3,red,cat\n4,green,bird\n",
    )
    splits = load({"source": "d.csv", "target": "label", "categorical": ["color"]})
    # Categories sorted: blue, green, red -> one-hot columns after the numeric `size`.
    expected = [[1.5, 0, 0, 1], [2, 1, 0, 0], [3, 0, 0, 1], [4, 0, 1, 0]]
    np.testing.assert_array_equal(splits.train.x, expected)
    # Class names sorted: bird=0, cat=1, dog=2.
    np.testing.assert_array_equal(splits.train.y, [1, 2, 1, 0])
    assert splits.target.class_names == ["bird", "cat", "dog"]
    assert splits.preprocessing.feature_names() == [
        "size",
        "color=blue",
        "color=green",
        "color=red",
    ]


def test_csv_features_select_and_order(write_csv, load):
    write_csv("d.csv", "a,b,c,t\n1,2,3,0.5\n4,5,6,1.5\n")
    splits = load({"source": "d.csv", "target": "t", "features": ["c", "a"]})
    np.testing.assert_array_equal(splits.train.x, [[3, 1], [6, 4]])
    np.testing.assert_array_equal(splits.train.y, [0.5, 1.5])


def test_sklearn_sources(load):
    iris = load({"source": "sklearn:iris"})
    assert iris.train.x.shape == (150, 4)
    assert iris.target.class_names == ["setosa", "versicolor", "virginica"]
    diabetes = load({"source": "sklearn:diabetes"})
    assert diabetes.train.x.shape == (442, 10) and diabetes.target.kind == "continuous"


@pytest.mark.parametrize("name", sorted(SYNTHETIC_PARAMS))
def test_synthetic_defaults_load(name, load):
    splits = load({"source": f"synthetic:{name}"})
    defaults = SYNTHETIC_PARAMS[name]()
    assert len(splits.train) == defaults.n_samples
    assert splits.train.x.dtype == np.float32
    if name == "regression":
        assert splits.target.kind == "continuous"
    else:
        assert splits.target.kind == "classes"
        counts = np.bincount(splits.train.y)
        assert counts.max() - counts.min() <= 1  # balanced classes


def test_synthetic_params_shapes(load):
    images = load(
        {
            "source": "synthetic:images",
            "params": {"n_samples": 12, "height": 5, "width": 4, "channels": 3, "n_classes": 4},
        }
    )
    assert images.train.x.shape == (12, 5, 4, 3) and images.target.n_classes == 4
    tokens = load(
        {
            "source": "synthetic:sequences",
            "params": {"n_samples": 10, "length": 7, "vocab_size": 9, "n_classes": 2},
        }
    )
    assert tokens.train.x.shape == (10, 7)
    ids = tokens.train.x
    assert ids.min() >= 1 and ids.max() <= 8 and np.all(ids == np.floor(ids))


def test_synthetic_same_seed_same_data(load):
    a = load({"source": "synthetic:moons"}, seed=3)
    b = load({"source": "synthetic:moons"}, seed=3)
    c = load({"source": "synthetic:moons"}, seed=4)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)


def _write_module(tmp_path, body: str) -> str:
    name = f"loader_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(body)
    return name


def test_python_arrays_with_params_and_seed(tmp_path, load):
    name = _write_module(
        tmp_path,
        "import numpy as np\n"
        "def make(n=3, seed=None):\n"
        "    return np.full((n, 2), seed, dtype=float), np.arange(n)\n",
    )
    splits = load({"source": f"python:{name}:make", "params": {"n": 4}}, seed=7)
    np.testing.assert_array_equal(splits.train.x, np.full((4, 2), 7.0))  # got the recipe's seed


def test_python_dict_of_splits(tmp_path, load):
    name = _write_module(
        tmp_path,
        "import numpy as np\n"
        "def make():\n"
        "    return {'train': (np.ones((4, 1)), [0, 1, 0, 1]), 'val': (np.ones((2, 1)), [1, 0])}\n",
    )
    splits = load({"source": f"python:{name}:make"})
    assert len(splits.train) == 4 and len(splits.validation) == 2 and splits.test is None


def test_python_generator_streams(tmp_path, load):
    name = _write_module(
        tmp_path,
        "import numpy as np\n"
        "CALLS = []\n"
        "def batches():\n"
        "    CALLS.append(1)\n"
        "    for i in range(3):\n"
        "        yield np.full((2, 2), float(i)), np.array([i, i])\n",
    )
    from kcli.data.splits import StreamSplit

    splits = load({"source": f"python:{name}:batches", "preprocess": [{"scale": 10}]})
    assert isinstance(splits.train, StreamSplit)
    epoch = list(splits.train.epoch())
    assert [b[0][0, 0] for b in epoch] == [0.0, 10.0, 20.0]  # scaled batch by batch
    assert splits.input_shape == (2,) and splits.target.n_classes == 3
    assert len(list(splits.train.epoch())) == 3  # each epoch calls the function again


def test_python_generator_steps_per_epoch_continues(tmp_path, load):
    name = _write_module(
        tmp_path,
        "import numpy as np\n"
        "def batches():\n"
        "    i = 0\n"
        "    while True:\n"
        "        yield np.full((1, 1), float(i)), np.array([0.0])\n"
        "        i += 1\n",
    )
    splits = load({"source": f"python:{name}:batches", "steps_per_epoch": 2})
    first = [float(b[0][0, 0]) for b in splits.train.epoch()]
    second = [float(b[0][0, 0]) for b in splits.train.epoch()]
    assert first == [0.0, 1.0] and second == [2.0, 3.0]  # one endless iterator, as in Keras
