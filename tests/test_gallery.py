"""The recipe gallery is a test suite: every recipes/*.yaml validates, builds and passes its gates.

Each recipe is trained through the CLI (in-process, with its runs under tmp_path); exit 0 means
training finished and every `expect` gate held. The recipes' headers are checked too: they name
the exact command and an override example, and that example must build.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kcli.cli import app

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
IDS = [path.stem for path in RECIPES]

runner = CliRunner()


def _load_script(name: str):
    """Import recipes/NAME.py as a module (recipes/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"gallery_{name}", RECIPES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _header(path: Path) -> list[str]:
    """The comment lines at the top of a recipe, without the '# '."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return lines


def _command_after(label: str, header: list[str]) -> list[str]:
    """The argv of the `kcli ...` command on the header line starting with `label`."""
    line = next(line for line in header if line.startswith(label))
    return shlex.split(line[len(label) :].strip())


@pytest.fixture
def one_thread():
    """Train with one intra-op thread: on a 2-core CI runner shared with other processes,
    torch's default two threads stall each other and make small models several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_gallery_has_every_recipe_the_issue_asks_for():
    expected = {
        "quickstart",
        "digits_cnn",
        "breast_cancer",
        "diabetes",
        "functional",
        "two_inputs",
        "sequences",
        "embedding",
        "fruit_csv",
        "generator",
        "compare",
        "transformer_text",
        "augmented_images",
        "multi_output",
        "seq2seq",
        "plugin",
    }
    assert expected <= set(IDS)


def test_every_recipe_validates():
    result = runner.invoke(app, ["validate", *map(str, RECIPES)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok") == len(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_header_documents_the_recipe(recipe: Path):
    header = _header(recipe)
    assert header and header[0].startswith(f"{recipe.stem}:"), "first line: 'NAME: what it trains'"
    assert any(line.startswith("Shows:") for line in header)
    assert _command_after("Run:", header) == ["kcli", "train", f"recipes/{recipe.name}"]
    override = _command_after("Override:", header)
    assert override[:3] == ["kcli", "train", f"recipes/{recipe.name}"]
    assert len(override) > 3 and all("=" in arg for arg in override[3:])
    assert "expect:" in recipe.read_text(), "every gallery recipe is a CI check"


@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_recipe_and_its_override_example_build(recipe: Path):
    """`kcli summarize` builds the model; the header's override example must build as well."""
    result = runner.invoke(app, ["summarize", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "Total params" in result.output
    overrides = _command_after("Override:", _header(recipe))[3:]
    result = runner.invoke(app, ["summarize", str(recipe), *overrides])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_recipe_trains_and_passes_its_gates(recipe: Path, tmp_path: Path, one_thread):
    result = runner.invoke(app, ["train", str(recipe), "--runs-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    run_dirs = list((tmp_path / recipe.stem).iterdir())
    assert len(run_dirs) == 1
    assert (run_dirs[0] / "eval.json").is_file()


def test_two_input_archive_is_what_the_script_makes(tmp_path: Path):
    """The committed npz is reproducible: the script regenerates the same arrays."""
    script = _load_script("make_two_inputs")
    made = script.main(["-o", str(tmp_path / "two.npz")])
    with np.load(made) as new, np.load(RECIPES_DIR / "two_inputs.npz") as committed:
        assert sorted(new.files) == sorted(committed.files) == ["label", "meta", "pixels"]
        for name in new.files:
            np.testing.assert_array_equal(new[name], committed[name])
        assert new["pixels"].shape == (600, 8, 8, 1) and new["pixels"].dtype == np.uint8
        assert np.bincount(new["label"]).tolist() == [150, 150, 150, 150]
    assert (RECIPES_DIR / "two_inputs.npz").stat().st_size < 50_000


def test_generator_module_streams_fresh_batches():
    data = _load_script("gallery_data")
    stream = data.spiral_batches(batch_size=8, arms=3, seed=1)
    (x1, y1), (x2, _) = next(stream), next(stream)
    assert x1.shape == (8, 2) and x1.dtype == np.float32 and y1.dtype == np.int64
    assert not np.array_equal(x1, x2)  # an endless stream of new points, not one batch again
    x, y = data.spirals(n_samples=30, seed=5)
    assert x.shape == (30, 2) and set(y.tolist()) <= {0, 1, 2}


def test_compare_script_smoke(tmp_path: Path, capsys):
    """One epoch of two variants per family: every run trains and lands in the table."""
    compare = _load_script("compare")
    status = compare.main(["--smoke", "--jobs", "2", "--runs-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in ("compare-sgd", "compare-rmsprop", "compare-act-relu", "compare-act-leaky_relu"):
        assert name in out
        assert len(list((tmp_path / name).iterdir())) == 1
    assert "ERROR" not in out


def test_every_recipes_file_the_readme_names_exists():
    # The guide's examples must run as written: each recipes/... path it shows is a real file.
    readme = (RECIPES_DIR.parent / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"recipes/[\w.-]+\.(?:yaml|csv|py|npz)", readme))
    assert "recipes/new_fruit.csv" in named and "recipes/quickstart.yaml" in named
    missing = sorted(p for p in named if not (RECIPES_DIR.parent / p).is_file())
    assert missing == []
