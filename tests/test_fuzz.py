"""Generated bad input, in the thousands on demand: kcli keeps its contract for every case.

Hypothesis mutates every shipped recipe (keys deleted, values of the wrong type, extreme
numbers, unknown names, broken wiring), the overrides given on the command line, the data files
a recipe reads and the files of a trained run folder. Whatever the mutation, the command must
end as the contract says: exit 0, or exit 2 with a message naming the file and no traceback,
and nothing left behind by a refused command.

The default run tries a few hundred cases in all (well under a minute). For thousands:
`KCLI_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py` (cases per test). Sizes are bounded with
KCLI_MAX_MEMORY=256MB so a generated `units: 100000000` is refused quickly instead of drawing
gigabytes of weights.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kcli.cli import app
from kcli.errors import KcliError
from tests.trained import trained

pytestmark = pytest.mark.filterwarnings("ignore")  # generated data may warn (e.g. overflow)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SHIPPED = sorted(RECIPES.glob("*.yaml"))
EXAMPLES = int(os.environ.get("KCLI_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder left in the checkout
    derandomize="KCLI_FUZZ_EXAMPLES" not in os.environ,  # the default run: the same cases
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def bounded_memory(monkeypatch):
    monkeypatch.setenv("KCLI_MAX_MEMORY", "256MB")


@pytest.fixture(scope="module")
def workspace():
    """A copy of recipes/ (data files included) that mutated recipes are written into."""
    folder = Path(tempfile.mkdtemp(prefix="kcli-fuzz-"))
    for path in RECIPES.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def invoke(*args: Any) -> tuple[int, str]:
    """Run kcli in-process; an exception other than the exit a command ends with fails."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"kcli {args} crashed") from result.exception
    return result.exit_code, result.output


def assert_contract(code: int, output: str, *named: str, allowed=(0, 2)) -> None:
    """The exit code is one the contract allows, no traceback, a refusal names its input."""
    assert code in allowed, output
    assert "Traceback" not in output, output
    if code == 2:
        assert any(name in output for name in named), output


# ---- recipe mutations -------------------------------------------------------------------------


def paths_of(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested mappings and lists (the places a mutation can hit)."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths_of(value, (*prefix, index))
    return found


def parent_and_key(data: Any, path: tuple) -> tuple[Any, Any]:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([0, -1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["Dense", "dense_9", "relu", "Adamm", "softmaxx", "synthetic:nothing", ""]),
    st.lists(st.integers(min_value=-3, max_value=10**6), max_size=4),
    st.dictionaries(st.sampled_from(["type", "units", "x", "rate"]), st.integers(), max_size=2),
)
MUTATIONS = ["delete", "replace", "replace", "unknown_name", "rewire", "duplicate_name"]


def mutate(data: dict, kind: str, where: int, value: Any) -> dict:
    data = copy.deepcopy(data)
    paths = paths_of(data)
    if not paths:
        return data
    parent, key = parent_and_key(data, paths[where % len(paths)])
    if kind == "delete":
        del parent[key]
    elif kind == "replace":
        parent[key] = value
    elif kind == "unknown_name":
        layers = data.get("model", {}).get("layers") or [{}]
        target = layers[where % len(layers)]
        if isinstance(target, dict):
            target["type"] = f"{target.get('type', 'Dense')}x"
    elif kind == "rewire":
        layers = data.get("model", {}).get("layers") or [{}]
        target = layers[where % len(layers)]
        if isinstance(target, dict):
            target["inputs"] = value if isinstance(value, str | list) else "no_such_layer"
    elif kind == "duplicate_name":
        for layer in data.get("model", {}).get("layers") or []:
            if isinstance(layer, dict):
                layer["name"] = "same"
    return data


@FUZZ
@given(
    recipe=st.sampled_from(SHIPPED),
    kind=st.sampled_from(MUTATIONS),
    where=st.integers(min_value=0, max_value=10**6),
    value=odd_values,
)
def test_mutated_shipped_recipes(workspace, recipe, kind, where, value):
    data = yaml.safe_load(recipe.read_text())
    path = workspace / f"mutated_{recipe.name}"
    path.write_text(yaml.safe_dump(mutate(data, kind, where, value), sort_keys=False))
    code, output = invoke("validate", path)
    assert_contract(code, output, str(path))
    if code == 0:  # what validation lets through must build (or be refused as bad input)
        code, output = invoke("summarize", path)
        assert_contract(code, output, str(path))


@FUZZ
@given(
    recipe=st.sampled_from(SHIPPED),
    where=st.integers(min_value=0, max_value=10**6),
    raw_key=st.one_of(st.none(), st.text(max_size=15)),
    value=st.one_of(st.text(max_size=15), odd_values.map(lambda v: yaml.safe_dump(v).strip())),
)
def test_generated_overrides(workspace, recipe, where, raw_key, value):
    data = yaml.safe_load(recipe.read_text())
    paths = paths_of(data)
    key = raw_key if raw_key is not None else ".".join(map(str, paths[where % len(paths)]))
    target = workspace / recipe.name
    code, output = invoke("summarize", target, f"{key}={value}")
    assert_contract(code, output, "override", str(target))


# ---- data files -------------------------------------------------------------------------------

CSV_RECIPE = """\
name: fuzz_csv
data:
  source: data.csv
  target: label
  validation_split: 0.25
model:
  input_shape: [2]
  layers: [{type: Dense, units: 2, activation: softmax}]
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
fit: {epochs: 1}
"""

NPZ_RECIPE = CSV_RECIPE.replace("data.csv", "data.npz").replace("  target: label\n", "")

cells = st.one_of(
    st.sampled_from(["1", "0", "-2.5", "", "nan", "inf", "-inf", "1e400", "abc", '"q,uoted"']),
    st.text(max_size=6),
    st.floats().map(repr),
)


def prepare_data(folder: Path, recipe_text: str) -> None:
    from kcli.recipe.load import load_recipe
    from kcli.train.setup import prepare

    (folder / "recipe.yaml").write_text(recipe_text)
    try:
        prepare(load_recipe(folder / "recipe.yaml"), "cpu")
    except KcliError as error:
        text = "\n".join(error.lines())
        assert "data." in text or "data" in text, text  # located at the data section or file


@FUZZ
@given(
    header=st.lists(st.sampled_from(["a", "b", "label", "", "a"]), min_size=0, max_size=4),
    rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=12),
    raw=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_generated_csv_files(header, rows, raw):
    text = "\n".join([",".join(header)] + [",".join(row) for row in rows]) + "\n"
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "data.csv").write_bytes(raw if raw is not None else text.encode())
        prepare_data(folder, CSV_RECIPE)


dtypes = st.sampled_from(
    ["float32", "float64", "int64", "uint8", "bool", "complex64", "U3", "S2", "datetime64[s]"]
)


@FUZZ
@given(
    x_dtype=dtypes,
    y_dtype=dtypes,
    x_shape=st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=3),
    y_length=st.integers(min_value=0, max_value=8),
    fill=st.sampled_from([0.0, 1.0, -1.0, 1e300, math.nan, math.inf]),
    names=st.sampled_from([("x", "y"), ("x", "labels"), ("inputs", "y")]),
)
def test_generated_npz_files(x_dtype, y_dtype, x_shape, y_length, fill, names):
    def array(shape, dtype):
        values = np.full(shape, fill if np.dtype(dtype).kind in "fc" else 1)
        return values.astype(dtype)

    x = array(tuple(x_shape), x_dtype)
    y = array((y_length,), y_dtype)
    with tempfile.TemporaryDirectory() as name:
        np.savez(Path(name) / "data.npz", **{names[0]: x, names[1]: y})
        prepare_data(Path(name), NPZ_RECIPE)


# ---- run folders ------------------------------------------------------------------------------

RUN_FILES = ["run.json", "recipe.yaml", "preprocess.json", "metrics.csv", "checkpoints/last.pt"]
CHECKPOINT_ENTRIES = ["model", "optimizer", "epoch", "rng", "callbacks", "batch", "data"]


def damage_file(path: Path, how: str, at: int, data: bytes) -> None:
    content = path.read_bytes()
    if how == "truncate":
        path.write_bytes(content[: at % max(len(content), 1)])
    elif how == "overwrite":
        position = at % max(len(content), 1)
        path.write_bytes(content[:position] + data + content[position + len(data) :])
    elif how == "replace":
        path.write_bytes(data)
    elif how == "delete":
        path.unlink()


def damage_checkpoint(path: Path, entry: str, value: Any) -> None:
    state = torch.load(path, weights_only=True)
    if value is None:
        state.pop(entry, None)
    elif entry == "model" and isinstance(value, str):
        state["model"][next(iter(state["model"]))] = value
    else:
        state[entry] = value
    torch.save(state, path)


@FUZZ
@given(
    file=st.sampled_from(RUN_FILES),
    how=st.sampled_from(["truncate", "overwrite", "replace", "delete", "entry", "entry"]),
    at=st.integers(min_value=0, max_value=10**6),
    data=st.binary(min_size=1, max_size=16),
    entry=st.sampled_from(CHECKPOINT_ENTRIES),
    value=st.one_of(
        st.none(), st.integers(-5, 5), st.text(max_size=5), st.lists(st.integers(), max_size=2)
    ),
    command=st.sampled_from(["eval", "predict", "export", "plot", "summarize"]),
)
def test_damaged_run_folders(file, how, at, data, entry, value, command):
    with tempfile.TemporaryDirectory() as name:
        tmp_path = Path(name)
        run = tmp_path / "run"
        shutil.copytree(trained("mlp"), run, ignore=shutil.ignore_patterns("plots"))
        if how == "entry":
            damage_checkpoint(run / "checkpoints" / "last.pt", entry, value)
            for other in ("best.pt", "first.pt"):
                (run / "checkpoints" / other).unlink(missing_ok=True)
        else:
            damage_file(run / file, how, at, data)
        np.save(tmp_path / "x.npy", np.zeros((3, 6), np.float32))
        before = set(run.rglob("*"))
        args = {
            "eval": ["eval", run, "--checkpoint", "last"],
            "predict": ["predict", run, tmp_path / "x.npy", "-o", tmp_path / "p.npy"],
            "export": ["export", run, "-f", "safetensors", "-o", tmp_path / "m.st"],
            "plot": ["plot", run],
            "summarize": ["summarize", run],
        }[command]
        code, output = invoke(*args)
        assert_contract(code, output, str(run))
        if code != 0:
            assert set(run.rglob("*")) == before  # a refused command writes nothing
            assert not (tmp_path / "p.npy").exists() and not (tmp_path / "m.st").exists()
