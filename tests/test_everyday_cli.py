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
