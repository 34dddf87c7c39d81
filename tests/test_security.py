"""Hostile files: nothing in a recipe, a checkpoint or a data file runs code or eats the machine.

- a checkpoint replaced by a pickle that would run code is refused by `weights_only` loading,
  and the code does not run;
- YAML tags that build Python objects (`!!python/object`, `!!python/name`) are refused;
- a YAML "billion laughs" alias bomb is refused quickly, without expanding it;
- .npz and .npy files are read with allow_pickle off: an object array is refused, not unpickled.
"""

from __future__ import annotations

import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.trained import cli, trained


def run_cli(*args) -> tuple[int, str]:
    result = cli(*args)  # an exception other than a command's exit fails the test
    return result.exit_code, result.output


class _WritesAFile:
    """Unpickling this calls Path.touch(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("command", ["eval", "export", "plot", "resume"])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_checkpoint_is_refused_and_its_code_never_runs(command, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("mlp"), run)
    marker = tmp_path / "code-ran"
    payload = pickle.dumps({"model": _WritesAFile(marker)})
    assert not marker.exists()
    for checkpoint in (run / "checkpoints").glob("*.pt"):
        checkpoint.write_bytes(payload)
    args = {
        "eval": ["eval", run],
        "export": ["export", run, "-f", "safetensors", "-o", tmp_path / "m.st"],
        "plot": ["plot", run],
        "resume": ["train", "--resume", run, "fit.epochs=3", "-q"],
    }[command]
    code, output = run_cli(*args)
    assert code == 2, output
    assert "not a readable checkpoint" in output and "checkpoints/" in output
    assert not marker.exists()  # the pickle's code did not run
    # The payload does run code when unpickled without weights_only: the test is real.
    pickle.loads(payload)
    assert marker.exists()


RECIPE_TAIL = """
data: {source: "synthetic:moons"}
model: {input_shape: [2], layers: [{type: Dense, units: 2, activation: softmax}]}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
"""


@pytest.mark.parametrize(
    "head",
    [
        "name: !!python/object/apply:os.system ['touch {marker}']\n",
        "name: !!python/name:os.system\n",
        "name: !!python/object:pathlib.PosixPath {{}}\n",
    ],
)
def test_python_yaml_tags_are_refused(head, tmp_path):
    marker = tmp_path / "code-ran"
    recipe = tmp_path / "tags.yaml"
    recipe.write_text(head.format(marker=marker) + RECIPE_TAIL)
    code, output = run_cli("validate", recipe)
    assert code == 2, output
    assert f"{recipe}:1:" in output and "Traceback" not in output
    assert not marker.exists()


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    # Nine levels of nine aliases each: 9**9 (387 million) strings if it were expanded.
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\nname: bomb\n" + RECIPE_TAIL)
    started = time.monotonic()
    code, output = run_cli("validate", recipe)
    elapsed = time.monotonic() - started
    assert code == 2, output
    assert "alias" in output and f"{recipe}:" in output
    # Not a timing assertion on kcli's speed: expanding the bomb would take minutes and
    # gigabytes, refusing it takes milliseconds; a minute tells the two apart on any machine.
    assert elapsed < 60


def object_archive(path: Path) -> None:
    labels = np.empty(20, dtype=object)
    labels[:] = [{"class": i % 2} for i in range(20)]
    np.savez(path, x=np.zeros((20, 2), np.float32), y=labels)  # savez pickles object arrays


def test_an_npz_with_object_arrays_is_refused_for_training(tmp_path):
    object_archive(tmp_path / "data.npz")
    recipe = tmp_path / "objects.yaml"
    recipe.write_text(
        "name: objects\n"
        "data: {source: data.npz}\n"
        "model: {input_shape: [2], layers: [{type: Dense, units: 2, activation: softmax}]}\n"
        "compile: {optimizer: adam, loss: sparse_categorical_crossentropy}\n"
    )
    code, output = run_cli("train", recipe, "--runs-dir", tmp_path / "runs", "-q")
    assert code == 2, output
    assert "allow_pickle=False" in output and "data.npz" in output
    assert not (tmp_path / "runs").exists()


def test_an_npz_with_object_arrays_is_refused_for_predict(tmp_path):
    archive = tmp_path / "inputs.npz"
    values = np.empty(4, dtype=object)
    values[:] = [[0.0] * 6] * 4
    np.savez(archive, x=values)
    code, output = run_cli("predict", trained("mlp"), archive, "-o", tmp_path / "p.npy")
    assert code == 2, output
    assert "allow_pickle=False" in output and "inputs.npz" in output
    assert not (tmp_path / "p.npy").exists()
