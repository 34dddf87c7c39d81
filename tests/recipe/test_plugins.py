"""Plugins: a recipe's own layers, losses, metrics and callbacks, as first-class catalog entries.

Each test writes its plugin module into a tmp folder beside the recipe and runs kcli as a user
does (the CLI through CliRunner). Plugin module names are unique per test, since a module once
imported stays in sys.modules for the rest of the session.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.train.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_plugin_outlives_its_test():
    # A plugin stays registered until a recipe without it is loaded: forget them all after
    # each test, so the catalog other test modules see is kcli's own.
    yield
    from kcli.recipe.plugins import load_plugins

    load_plugins([], ROOT)


RECIPE = """\
name: {name}
seed: 4
plugins: [{module}]
data:
  source: synthetic:sequences
  params: {{n_samples: 200, length: 16, vocab_size: 50, n_classes: 4, noise: 0.6}}
  validation_split: 0.2
  test_split: 0.2
model:
  input_shape: [16]
  layers:
    - {{type: TokenAndPositionEmbedding, vocab_size: 50, embed_dim: 8}}
    - {{type: GlobalAveragePooling1D}}
    - {{type: Dense, units: 4, activation: softmax}}
compile:
  optimizer: {{type: Adam, learning_rate: 0.01}}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
  batch_size: 32
"""


def layer_plugin(folder: Path, module: str) -> Path:
    """The gallery's plugin (recipes/plugin_layers.py) under another module name."""
    path = folder / f"{module}.py"
    shutil.copy(ROOT / "recipes" / "plugin_layers.py", path)
    return path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def recipe(folder: Path, module: str, name: str = "plug") -> Path:
    return write(folder, f"{name}.yaml", RECIPE.format(name=name, module=module))


def test_a_plugin_layer_validates_and_summarizes_with_its_parameter_count(tmp_path):
    layer_plugin(tmp_path, "plug_summary")
    path = recipe(tmp_path, "plug_summary")
    assert run_cli("validate", str(path)).exit_code == 0
    result = run_cli("summarize", str(path), "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["layers"][0]
    # token table vocab_size * embed_dim + position table length * embed_dim: 50*8 + 16*8
    assert first["type"] == "TokenAndPositionEmbedding" and first["params"] == 50 * 8 + 16 * 8
    assert first["output_shape"] == [16, 8]


def test_a_run_keeps_its_plugin_and_reports_a_changed_one(tmp_path):
    source = layer_plugin(tmp_path, "plug_run")
    path = recipe(tmp_path, "plug_run")
    runs = tmp_path / "runs"
    result = run_cli("train", str(path), "--runs-dir", str(runs), "--json", "-q")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    copy = run_dir / "plugins" / "plug_run.py"
    assert copy.read_bytes() == source.read_bytes()
    record = json.loads((run_dir / "run.json").read_text())
    (plugin,) = record["plugins"]
    assert plugin["name"] == "plug_run" and plugin["file"] == str(source.resolve())
    assert len(plugin["sha256"]) == 64
    # The user edits the plugin: the run still uses its own copy, and says so.
    source.write_text(source.read_text() + "\n# edited after training\n")
    result = run_cli("eval", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "plugin 'plug_run'" in result.stderr and "changed since this run was trained" in (
        result.stderr
    )
    # Without the original file at all, the run folder alone is enough, exports included
    # (each checked against the run's model before it is written).
    source.unlink()
    result = run_cli("eval", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    for fmt, suffix in (("onnx", "onnx"), ("torch-export", "pt2")):
        result = run_cli("export", str(run_dir), "--format", fmt, "--json")
        assert result.exit_code == 0, result.output
        assert (run_dir / "export" / f"plug.{suffix}").is_file()  # named after the recipe
    result = run_cli("train", "--resume", str(run_dir), "fit.epochs=3", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "run.json").read_text())["epochs_done"] == 3


def test_plugin_losses_metrics_and_callbacks_train(tmp_path):
    write(
        tmp_path,
        "plug_compile.py",
        '''\
        from typing import Literal

        from kcli.plugin import Callback, CallbackSpec, LossSpec, MeanMetric, MetricSpec
        from kcli.plugin import align_targets


        class DoubleMse(LossSpec):
            """Twice the mean squared error."""
            type: Literal["double_mse"] = "double_mse"

            def _values(self, y_pred, y_true, logits):
                return 2 * (y_pred - y_true).square().mean(-1)


        class HalfMae(MetricSpec):
            type: Literal["half_mae"] = "half_mae"

            def build(self):
                return MeanMetric(lambda p, y: 0.5 * (p - align_targets(p, y)).abs())


        class EpochFile(CallbackSpec):
            """Writes each finished epoch's number to a file in the run folder."""
            type: Literal["EpochFile"] = "EpochFile"

            def build(self):
                return EpochWriter()


        class EpochWriter(Callback):
            def on_epoch_end(self, epoch, logs):
                with open(self.trainer.run_dir / "epochs.txt", "a") as handle:
                    handle.write(f"{epoch + 1}\\n")
        ''',
    )
    path = write(
        tmp_path,
        "regress.yaml",
        """\
        name: regress
        plugins: [plug_compile]
        data:
          source: synthetic:regression
          params: {n_samples: 200, n_features: 4}
          validation_split: 0.2
        model:
          input_shape: [4]
          layers: [{type: Dense, units: 1}]
        compile:
          optimizer: {type: SGD, learning_rate: 0.01}
          loss: double_mse
          metrics: [mse, mae, half_mae]
        fit:
          epochs: 2
          callbacks: [{type: EpochFile}]
        """,
    )
    result = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"), "--json", "-q")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(header, map(float, line.split(",")), strict=True))
        # The loss streams over the same outputs as the metrics: 2 * mse, exactly; half_mae
        # is half of mae on every split.
        assert row["loss"] == pytest.approx(2 * row["mse"], rel=1e-5)
        assert row["half_mae"] == pytest.approx(0.5 * row["mae"], rel=1e-5)
        assert row["val_half_mae"] == pytest.approx(0.5 * row["val_mae"], rel=1e-5)
    assert (run_dir / "epochs.txt").read_text() == "1\n2\n"


@pytest.mark.parametrize(
    "module,code,expected",
    [
        ("plug_syntax", "def broken(:\n    pass\n", "plug_syntax.py:1: "),
        (
            "plug_raises",
            "import os\n\nraise RuntimeError('no GPU here')\n",
            "plug_raises.py:3: raised RuntimeError: no GPU here",
        ),
        (
            "plug_twice",
            "from typing import Literal\nfrom kcli.plugin import LayerSpec\n\n\n"
            "class Dense(LayerSpec):\n    type: Literal['Dense'] = 'Dense'\n",
            "layer type 'Dense' is defined twice",
        ),
        ("plug_empty", "X = 1\n", "plugin 'plug_empty' defines no layer, loss, metric or callback"),
    ],
)
def test_a_plugin_that_fails_is_exit_2_naming_file_and_line(tmp_path, module, code, expected):
    (tmp_path / f"{module}.py").write_text(code)
    path = recipe(tmp_path, module)
    result = run_cli("validate", str(path))
    assert result.exit_code == 2
    assert "Traceback (most recent" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if "plugins[0]" in line]
    # Located at the recipe's `plugins:` entry (line 3, column 11), naming the plugin file.
    assert line.startswith(f"{path}:3:11: plugins[0]: ")
    assert expected in line
    # The next recipe that names the fixed module imports it afresh.
    layer_plugin(tmp_path, module)
    assert run_cli("validate", str(path)).exit_code == 0


def test_a_layer_without_build_is_named_at_its_class(tmp_path):
    code = (
        "from typing import Literal\nfrom kcli.plugin import LayerSpec\n\n\n"
        "class Half(LayerSpec):\n    type: Literal['Half'] = 'Half'\n\n"
        "    def output_shape(self, input_shapes):\n        return input_shapes[0]\n"
    )
    plugin = tmp_path / "plug_half.py"
    plugin.write_text(code)
    path = recipe(tmp_path, "plug_half")
    result = run_cli("validate", str(path))
    assert result.exit_code == 2
    assert f"{plugin}:5: layer type 'Half' (Half) defines no build()" in result.stderr


def test_a_missing_plugin_and_a_misspelt_plugin_type(tmp_path):
    path = recipe(tmp_path, "plug_missing")
    result = run_cli("validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:3:11: plugins[0]: no plugin module 'plug_missing'" in result.stderr
    layer_plugin(tmp_path, "plug_typo")
    text = RECIPE.format(name="typo", module="plug_typo").replace(
        "type: TokenAndPositionEmbedding", "type: TokenAndPositionEmbeding"
    )
    result = run_cli("validate", str(write(tmp_path, "typo.yaml", text)))
    assert result.exit_code == 2
    assert "(did you mean 'TokenAndPositionEmbedding'?)" in result.stderr


def test_catalog_and_schema_take_plugins(tmp_path, monkeypatch):
    layer_plugin(tmp_path, "plug_catalog")
    monkeypatch.chdir(tmp_path)
    result = run_cli("layers", "--plugins", "plug_catalog", "TokenAndPositionEmbedding")
    assert result.exit_code == 0, result.output
    assert "TokenAndPositionEmbedding (plugin plug_catalog layer)" in result.stdout
    assert "vocab_size" in result.stdout and "embed_dim" in result.stdout
    result = run_cli("schema", "--plugins", "plug_catalog")
    assert result.exit_code == 0
    assert "TokenAndPositionEmbedding" in json.loads(result.stdout)["$defs"]


def test_an_installed_plugin_module_is_found_and_recorded(tmp_path, monkeypatch):
    # Not beside the recipe: an importable module (as `pip install` would leave it).
    site = tmp_path / "site"
    site.mkdir()
    installed = layer_plugin(site, "plug_installed")
    monkeypatch.syspath_prepend(str(site))
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    from kcli.recipe.load import load_recipe

    loaded = load_recipe(recipe(folder, "plug_installed"))
    (plugin,) = loaded.plugins
    assert plugin.path == installed.resolve() and plugin.sha256 is not None
