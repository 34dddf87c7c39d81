"""A `python:` source's own failures: reported as that source's, with its traceback, exit 2.

The user's code may raise while being imported, while being called, or while yielding batches
(during training); it may also call sys.exit. Each is bad input located at `data.source`, the
user's own frames shown under the message and kcli's left out; none changes kcli's exit code.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.trained import cli

LOADERS = """
import sys

import numpy as np


def helper_that_fails():
    raise ValueError("column 7 is empty")


def raises(seed=0):
    helper_that_fails()


def exits(seed=0):
    sys.exit(5)


def exits_quietly(seed=0):
    raise SystemExit


CALLS = []


def batches_then_fail(seed=0):
    CALLS.append(seed)
    training = len(CALLS) > 1  # the first call fits the preprocessing; the second trains

    def generate():
        rng = np.random.default_rng(seed)
        for step in range(10):
            if training and step == 3:
                raise OSError("the network share went away")
            x = rng.normal(size=(8, 3)).astype("float32")
            yield x, (x[:, 0] > 0).astype("int64")
    return generate()
"""

BROKEN_MODULE = """
import numpy as np

def load(seed=0):
    return np.zeros((4, 3)), np.zeros(4)

undefined_name + 1
"""


def recipe(folder: Path, target: str, extra: str = "") -> Path:
    (folder / "loaders.py").write_text(LOADERS)
    (folder / "broken_loader.py").write_text(BROKEN_MODULE)
    path = folder / "user.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: user
            data:
              source: "python:{target}"
            {extra}
            model: {{input_shape: [3], layers: [{{type: Dense, units: 2, activation: softmax}}]}}
            compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
            fit: {{epochs: 2, batch_size: 8}}
            """
        )
    )
    return path


def train(path: Path, runs: Path):
    return cli("train", path, "--runs-dir", runs, "-q")


@pytest.fixture(autouse=True)
def fresh_modules():
    # Each test writes loaders.py anew in its own folder: forget the previous test's module.
    import sys

    yield
    for name in ("loaders", "broken_loader"):
        sys.modules.pop(name, None)


def test_an_exception_in_the_function_shows_the_users_traceback(tmp_path):
    result = train(recipe(tmp_path, "loaders:raises"), tmp_path / "runs")
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'user.yaml'}:3:")
    assert "data.source: loaders:raises raised ValueError: column 7 is empty" in lines[0]
    text = result.output
    assert "loaders.py" in text and "helper_that_fails()" in text  # the user's own frames
    assert 'raise ValueError("column 7 is empty")' in text
    assert "kcli/" not in text.replace(str(tmp_path), "")  # none of kcli's frames
    assert "Traceback (most recent call last)" not in text
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("target", "shown"), [("loaders:exits", "sys.exit(5)"), ("loaders:exits_quietly", "sys.exit")]
)
def test_sys_exit_in_user_code_does_not_set_kcli_exit_code(target, shown, tmp_path):
    result = train(recipe(tmp_path, target), tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert f"{target} called {shown}" in result.output


def test_an_import_failure_shows_where_in_the_module(tmp_path):
    result = train(recipe(tmp_path, "broken_loader:load"), tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert "cannot import 'broken_loader'" in result.output
    assert "NameError: name 'undefined_name' is not defined" in result.output
    assert "broken_loader.py" in result.output and "undefined_name + 1" in result.output


def test_a_generator_failing_mid_training_fails_the_run_as_bad_input(tmp_path):
    path = recipe(tmp_path, "loaders:batches_then_fail")
    runs = tmp_path / "runs"
    result = train(path, runs)
    assert result.exit_code == 2, result.output
    assert "loaders:batches_then_fail (batch 3) raised OSError: the network share went away" in (
        result.output
    )
    assert "loaders.py" in result.output
    (run,) = runs.glob("user/*")
    record = (run / "run.json").read_text()
    assert '"status": "failed"' in record and "network share" in record
