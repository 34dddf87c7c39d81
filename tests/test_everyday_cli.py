"""The everyday command line (issue 20): mistakes that used to pass silently, or leave debris.

- a callback `monitor` the run will not log is exit 2 before training (validate and train),
  located, with a did-you-mean from the names the run logs;
- a callback whose optional package is missing stops `validate`, and `train` before any run
  folder exists;
- `train --quiet` prints the run folder, one line;
- install hints name the distribution (`kcli-keras`) and the checkout form.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.trained import cli

RECIPE = """\
name: everyday
data: {{source: "synthetic:moons", params: {{n_samples: 64}}, validation_split: {val}}}
model: {{input_shape: [2], layers: [{{type: Dense, units: 2, activation: softmax}}]}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
fit:
  epochs: 1
  callbacks:
    - {{type: {callback}, monitor: {monitor}}}
"""


def write(tmp_path: Path, monitor: str, callback: str = "EarlyStopping", val: float = 0.25):
    path = tmp_path / "everyday.yaml"
    path.write_text(RECIPE.format(monitor=monitor, callback=callback, val=val))
    return path


@pytest.mark.parametrize("command", ["validate", "train"])
def test_a_monitor_typo_is_exit_2_before_training(command, tmp_path):
    path = write(tmp_path, "val_los")
    extra = ["--runs-dir", tmp_path / "runs"] if command == "train" else []
    result = cli(command, path, *extra)
    assert result.exit_code == 2, result.output
    assert (
        f"{path}:8:38: fit.callbacks[0].monitor: EarlyStopping monitors 'val_los', which this "
        "run does not log (did you mean 'val_loss'?); it logs loss, accuracy, val_loss, "
        "val_accuracy, regularization, lr"
    ) in result.output
    assert not (tmp_path / "runs").exists()


def test_a_val_monitor_without_validation_says_why(tmp_path):
    path = write(tmp_path, "val_accuracy", "ReduceLROnPlateau", val=0.0)
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "there is no validation split: set data.validation_split" in result.output


def test_a_test_monitor_is_refused_with_the_reason(tmp_path):
    result = cli("validate", write(tmp_path, "test_loss", "ModelCheckpoint"))
    assert result.exit_code == 2
    assert "test metrics exist only after the last epoch" in result.output


def test_logged_monitors_pass(tmp_path):
    for monitor in ("val_loss", "val_accuracy", "loss", "lr"):
        assert cli("validate", write(tmp_path, monitor)).exit_code == 0, monitor


def test_a_missing_optional_package_stops_before_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails now
    path = tmp_path / "tb.yaml"
    path.write_text(
        RECIPE.format(monitor="val_loss", callback="EarlyStopping", val=0.25).replace(
            "    - {type: EarlyStopping, monitor: val_loss}", "    - {type: TensorBoard}"
        )
    )
    hint = 'pip install "kcli-keras[tensorboard]" (in a checkout: pip install -e ".[tensorboard]")'
    validated = cli("validate", path)
    assert validated.exit_code == 2 and hint in validated.output
    assert "fit.callbacks[0].type" in validated.output
    trained = cli("train", path, "--runs-dir", tmp_path / "runs")
    assert trained.exit_code == 2 and hint in trained.output
    assert not (tmp_path / "runs").exists()  # no run folder left saying `running`


def test_quiet_train_prints_the_run_folder_only(tmp_path):
    result = cli("train", write(tmp_path, "val_loss"), "--runs-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    (run_dir,) = (tmp_path / "runs" / "everyday").iterdir()
    assert Path(line) == run_dir


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["export", "predict"])
def test_an_unwritable_output_path_is_exit_2(command, tmp_path):
    import numpy as np

    from tests.trained import trained

    np.save(tmp_path / "x.npy", np.zeros((2, 6), np.float32))
    run = trained("mlp")
    args = {
        "export": lambda out: ["export", run, "-f", "safetensors", "-o", out],
        "predict": lambda out: ["predict", run, tmp_path / "x.npy", "-o", out],
    }[command]
    suffix = ".npy" if command == "predict" else ".st"
    # /proc takes no new files, even from root: the check must try, not read permission bits.
    unwritable = cli(*args(Path("/proc") / f"out{suffix}"))
    assert unwritable.exit_code == 2, unwritable.output
    assert f"-o /proc/out{suffix}: cannot write in /proc" in unwritable.output
    (tmp_path / f"folder{suffix}").mkdir()
    folder = cli(*args(tmp_path / f"folder{suffix}"))
    assert folder.exit_code == 2 and "that is a folder; give the file to write" in folder.output
    assert "Traceback" not in unwritable.output + folder.output


def test_validate_takes_overrides_and_json(tmp_path):
    path = write(tmp_path, "val_loss")
    bad = cli("validate", path, "fit.epochs=0")
    assert bad.exit_code == 2
    assert f"{path}: override fit.epochs=0: fit.epochs: must be >= 1 (got 0)" in bad.output
    assert cli("validate", path, "fit.epochs=3").exit_code == 0
    import json

    as_json = cli("validate", path, "fit.callbacks.0.monitor=val_los", "--json")
    assert as_json.exit_code == 2
    (entry,) = json.loads(as_json.stdout)["recipes"]
    assert entry["recipe"] == str(path) and entry["ok"] is False
    assert "did you mean 'val_loss'" in entry["problems"][0]
    ok = json.loads(cli("validate", path, "--json").stdout)
    assert ok == {"recipes": [{"recipe": str(path), "ok": True, "problems": []}]}


# ---- Keras habits --------------------------------------------------------------------------
KERAS_HABITS = """\
name: habits
data: {source: "synthetic:moons", params: {n_samples: 64}}
model:
  input_shape: [2]
  layers:
    - {type: Dense, units: 4}
    - {type: LeakyReLU, alpha: 0.1}
    - {type: Dense, units: 2, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
fit: {epochs: 2, verbose: VERBOSE}
"""


def test_keras_habits_get_a_pointer(tmp_path):
    path = tmp_path / "habits.yaml"
    text = KERAS_HABITS.replace("verbose: VERBOSE", "validation_split: 0.2")
    path.write_text(text.replace("- {type: Dense, units: 4}", "- {type: InputLayer, shape: [2]}"))
    result = cli("validate", path)
    assert result.exit_code == 2
    assert (
        f"{path}:6:14: model.layers[0].type: 'InputLayer': a recipe gives the input's shape as "
        "model.input_shape (or named model.inputs), not as a layer"
    ) in result.output
    assert (
        f"{path}:10:18: fit.validation_split: unknown key 'validation_split': a recipe's splits "
        "belong to its data: data.validation_split"
    ) in result.output


def test_leaky_relu_takes_keras_2s_alpha():
    from kcli.model.layers import layer_registry

    layer = layer_registry.get("LeakyReLU").model_validate({"type": "LeakyReLU", "alpha": 0.1})
    assert layer.negative_slope == 0.1
    with pytest.raises(ValueError, match="not both"):
        layer_registry.get("LeakyReLU").model_validate({"alpha": 0.1, "negative_slope": 0.2})


@pytest.mark.parametrize(("verbose", "epoch_lines"), [(0, 0), (2, 2), ("auto", 2)])
def test_fit_verbose_as_keras(verbose, epoch_lines, tmp_path):
    path = tmp_path / "habits.yaml"
    path.write_text(KERAS_HABITS.replace("VERBOSE", str(verbose)))
    result = cli("train", path, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("Epoch ") for line in result.output.splitlines()) == epoch_lines


def test_a_live_bar_only_where_asked():
    import io

    from kcli.fit.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Progress(2, stream=Terminal()).live  # auto: a terminal gets the bar
    assert not Progress(2, stream=Terminal(), live=False).live  # verbose 2
    assert not Progress(2, stream=io.StringIO()).live


# ---- kcli catalog ----------------------------------------------------------------------------
def test_catalog_lists_every_kind_with_its_entries():
    import json

    from kcli.compile.optimizers import optimizer_registry
    from kcli.data.spec import SKLEARN_DATASETS

    everything = json.loads(cli("catalog", "--json").stdout)
    assert list(everything) == [
        "layers", "activations", "initializers", "regularizers", "optimizers", "schedules",
        "losses", "metrics", "callbacks", "preprocess", "sources",
    ]  # fmt: skip
    assert everything["optimizers"] == optimizer_registry.names()  # the registry is the source
    assert [f"sklearn:{n}" for n in SKLEARN_DATASETS] == everything["sources"][:5]
    assert "synthetic:moons" in everything["sources"]


def test_catalog_describes_one_entry_of_any_kind():
    import json

    adam = json.loads(cli("catalog", "optimizers", "Adam", "--json").stdout)
    arguments = {a["name"]: a["default"] for a in adam["arguments"]}
    assert arguments["epsilon"] == 1e-7 and arguments["beta_1"] == 0.9  # Keras' defaults
    assert "learning_rate" in adam["common"]  # every optimizer takes it: listed once
    assert cli("catalog", "adam").stdout.startswith("Adam (optimizer)")  # a name alone
    moons = json.loads(cli("catalog", "sources", "synthetic:moons", "--json").stdout)
    assert {a["name"] for a in moons["arguments"]} == {"n_samples", "noise"}
    steps = cli("catalog", "preprocess").stdout
    assert "standardize" in steps and "kcli catalog preprocess NAME" in steps


def test_a_name_in_the_wrong_catalog_says_where_it_is():
    result = cli("layers", "Adam")
    assert result.exit_code == 2
    assert "unknown layer type 'Adam' (it is in another catalog: kcli catalog optimizers Adam)" in (
        result.output
    )
    unknown = cli("catalog", "widgets")
    assert unknown.exit_code == 2 and "kinds: layers, activations" in unknown.output


def test_validate_print_shows_the_resolved_recipe(tmp_path):
    import yaml

    path = write(tmp_path, "val_loss")
    result = cli("validate", path, "fit.epochs=3", "--print")
    assert result.exit_code == 0, result.output
    header, _, body = result.stdout.partition("\n")
    assert header == f"# {path}, resolved"
    resolved = yaml.safe_load(body)
    assert resolved["fit"]["epochs"] == 3  # the override
    assert resolved["fit"]["batch_size"] == 32  # Keras' default, filled in
    dense = resolved["model"]["layers"][0]
    assert dense["kernel_initializer"] == {"type": "glorot_uniform"}  # Keras' default


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # digits has 10 classes (scikit-learn's bundled set): a 5-unit softmax cannot hold them
        (
            "model.layers.2.units=5",
            "labels go up to 9 but the output has 5 units (one per class): give the last layer "
            "10 units",
        ),
        (
            "model.layers.2.units=1",
            "sparse_categorical_crossentropy needs one output unit per class, but the output has 1 "
            "unit",
        ),
    ],
)
def test_validate_checks_the_loss_against_the_output(override, message):
    quickstart = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
    result = cli("validate", quickstart, override)
    assert result.exit_code == 2
    assert f"{quickstart}:22:9: compile.loss: {message}" in result.output


def test_validate_knows_a_synthetic_sources_classes(tmp_path):
    path = tmp_path / "spirals.yaml"  # spirals: 3 classes by default
    path.write_text(
        RECIPE.format(monitor="val_loss", callback="EarlyStopping", val=0.25).replace(
            "synthetic:moons", "synthetic:spirals"
        )
    )
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "labels go up to 2 but the output has 2 units" in result.output
    assert cli("validate", path, "data.params.n_classes=2").exit_code == 0


# ---- several recipe files, merged in order ------------------------------------------------
BASE = """\
name: merged
data: {source: "synthetic:moons", params: {n_samples: 64}, validation_split: 0.25}
model:
  input_shape: [2]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 2, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
fit: {epochs: 5, batch_size: 16}
"""


def test_later_recipe_files_win_and_errors_name_their_own_file(tmp_path):
    import yaml

    base, small = tmp_path / "base.yaml", tmp_path / "small.yaml"
    base.write_text(BASE)
    small.write_text("fit:\n  epochs: 1\n  batch_sise: 8\n")
    wrong = cli("validate", "--merge", base, small)
    assert wrong.exit_code == 2
    assert f"{small}:3:3: fit.batch_sise: unknown key 'batch_sise'" in wrong.output
    small.write_text("fit:\n  epochs: 1\nmodel:\n  layers:\n    - {type: Dense, units: 0}\n")
    located = cli("validate", "--merge", base, small)
    assert f"{small}:5:28: model.layers[0].units: must be > 0" in located.output  # list replaced
    small.write_text("fit:\n  epochs: 1\n")
    printed = cli("validate", "--merge", "--print", base, small, "fit.batch_size=4")
    resolved = yaml.safe_load(printed.stdout.partition("\n")[2])
    # merged key by key: epochs from small.yaml, batch_size from the override, the rest from base
    assert resolved["fit"]["epochs"] == 1 and resolved["fit"]["batch_size"] == 4
    assert resolved["model"]["layers"][0]["units"] == 8
    trained = cli("train", base, small, "--runs-dir", tmp_path / "runs", "-q")
    assert trained.exit_code == 0, trained.output
    run = Path(trained.stdout.strip())
    assert yaml.safe_load((run / "recipe.yaml").read_text())["fit"]["epochs"] == 1
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # header + 1 epoch


def test_commands_acting_on_a_run_say_which(tmp_path):
    import numpy as np

    from tests.trained import runs_dir, trained

    run = trained("mlp")
    np.save(tmp_path / "x.npy", np.zeros((2, 6), np.float32))
    # A recipe name means its newest run: the command says which one it took.
    predicted = cli(
        "predict", "mlp", tmp_path / "x.npy", "-o", tmp_path / "p.npy", "--runs-dir", runs_dir()
    )
    assert predicted.exit_code == 0, predicted.output
    assert f"run: {run}" in predicted.stderr
    exported = cli(
        "export", "mlp", "-f", "safetensors", "-o", tmp_path / "m.st", "--runs-dir", runs_dir()
    )
    assert exported.exit_code == 0, exported.output
    assert f"run: {run} (" in exported.stderr and "checkpoint)" in exported.stderr
