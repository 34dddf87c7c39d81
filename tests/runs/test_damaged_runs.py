"""A damaged run folder is bad input: every command that reads it exits 2 naming the file.

Each case damages a copy of one trained run (tests/trained.py) in one way, runs every command
that reads that part of a run folder as a user would (in-process CLI), and checks: exit 2, no
traceback, the message names the damaged file (or the run folder), nothing new in the folder,
and, for `--resume`, the folder exactly as it was (recipe.yaml and metrics.csv untouched).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trained import cli, trained


def run_cli(*args) -> tuple[int, str]:
    result = cli(*args)  # an exception other than a command's exit fails the test
    return result.exit_code, result.output


def edit_checkpoints(run: Path, change) -> None:
    """Apply `change` to the state of every checkpoint of the run (as a user's script might)."""
    for path in (run / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)


def first_weight(state: dict) -> str:
    return next(iter(state["model"]))


# name -> (damage, the file the message must name, the commands that read that part)
READS_WEIGHTS = ("eval", "predict", "export", "resume")
DAMAGES = {
    "checkpoint without model": (
        lambda run: edit_checkpoints(run, lambda s: s.pop("model")),
        "checkpoints/",
        (*READS_WEIGHTS, "plot"),
    ),
    "model entry is a list": (
        lambda run: edit_checkpoints(run, lambda s: s.__setitem__("model", [1, 2])),
        "checkpoints/",
        (*READS_WEIGHTS, "plot"),
    ),
    "model entry holds a string": (
        lambda run: edit_checkpoints(run, lambda s: s["model"].__setitem__("dense.kernel", "x")),
        "checkpoints/",
        (*READS_WEIGHTS, "plot"),
    ),
    "model entry has another key": (
        lambda run: edit_checkpoints(run, lambda s: s["model"].__setitem__("zzz", torch.ones(2))),
        "checkpoints/",
        READS_WEIGHTS,
    ),
    "a weight of another shape": (
        lambda run: edit_checkpoints(
            run, lambda s: s["model"].__setitem__(first_weight(s), torch.ones(3))
        ),
        "checkpoints/",
        READS_WEIGHTS,
    ),
    "checkpoint cut short": (
        lambda run: [p.write_bytes(p.read_bytes()[:100]) for p in run.glob("checkpoints/*.pt")],
        "checkpoints/",
        (*READS_WEIGHTS, "plot"),
    ),
    "checkpoint's first byte changed": (  # found by tests/test_fuzz.py: an IndexError in torch
        lambda run: [p.write_bytes(b"Q" + p.read_bytes()[1:]) for p in run.glob("checkpoints/*")],
        "checkpoints/",
        (*READS_WEIGHTS, "plot"),
    ),
    "optimizer state missing": (
        lambda run: edit_checkpoints(run, lambda s: s.pop("optimizer", None)),
        "checkpoints/last.pt",
        ("resume",),
    ),
    "epoch is text": (
        lambda run: edit_checkpoints(run, lambda s: s.__setitem__("epoch", "two")),
        "checkpoints/last.pt",
        ("resume",),
    ),
    "rng state damaged": (
        lambda run: edit_checkpoints(run, lambda s: s.__setitem__("rng", {"python": 1})),
        "checkpoints/last.pt",
        ("resume",),
    ),
    "preprocess.json is {}": (
        lambda run: (run / "preprocess.json").write_text("{}"),
        "preprocess.json",
        ("eval", "predict", "export", "resume"),
    ),
    "preprocess.json steps damaged": (
        lambda run: (run / "preprocess.json").write_text(
            json.dumps({"preprocessing": {"format": 1, "steps": 3}})
        ),
        "preprocess.json",
        ("eval", "predict", "export", "resume"),
    ),
    "preprocess.json not JSON": (
        lambda run: (run / "preprocess.json").write_bytes(b"\xff{"),
        "preprocess.json",
        ("eval", "predict", "export", "resume"),
    ),
    "run.json not JSON": (
        lambda run: (run / "run.json").write_text("{bad"),
        "run.json",
        ("eval", "predict", "export", "plot", "summarize", "resume"),
    ),
    "run.json a list": (
        lambda run: (run / "run.json").write_text("[]"),
        "run.json",
        ("eval", "predict", "export", "plot", "summarize", "resume"),
    ),
    "recipe.yaml gone": (
        lambda run: (run / "recipe.yaml").unlink(),
        "recipe.yaml",
        ("eval", "predict", "export", "summarize", "resume"),
    ),
    "metrics.csv not text": (
        lambda run: (run / "metrics.csv").write_bytes(b"\xff\xfe\x00epoch"),
        "metrics.csv",
        ("plot", "resume"),
    ),
}

COMMANDS = {
    "eval": lambda run, tmp: ["eval", run],
    "predict": lambda run, tmp: ["predict", run, tmp / "x.npy", "-o", tmp / "out.npy"],
    "export": lambda run, tmp: ["export", run, "-f", "safetensors", "-o", tmp / "model.st"],
    "plot": lambda run, tmp: ["plot", run],
    "summarize": lambda run, tmp: ["summarize", run],
    "resume": lambda run, tmp: ["train", "--resume", run, "fit.epochs=4", "-q"],
}

CASES = [(damage, command) for damage, (_, _, commands) in DAMAGES.items() for command in commands]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("damage", "command"), CASES)
def test_damaged_run_folder_is_exit_2_naming_the_file(damage, command, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("mlp"), run)
    shutil.rmtree(run / "plots", ignore_errors=True)
    np.save(tmp_path / "x.npy", np.zeros((4, 6), np.float32))
    damage_run, named, _ = DAMAGES[damage]
    damage_run(run)
    before = snapshot(run)

    code, output = run_cli(*COMMANDS[command](run, tmp_path))

    assert code == 2, output
    assert "Traceback" not in output
    assert named in output or str(run) in output, output
    assert snapshot(run) == before  # nothing written, nothing changed (resume included)
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "model.st").exists()


def test_plot_leaves_no_png_when_a_figure_fails(tmp_path, monkeypatch):
    import kcli.plots.write as write

    run = tmp_path / "run"
    shutil.copytree(trained("mlp"), run)
    shutil.rmtree(run / "plots")

    def broken(*args, **kwargs):
        raise RuntimeError("the weights figure failed")

    monkeypatch.setattr(write, "plot_weights", broken)  # drawn last, after the curves
    with pytest.raises(RuntimeError):
        write.write_plots(run)
    assert not (run / "plots").exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_a_whole_run_still_works_everywhere(tmp_path):
    # The checks must not refuse what kcli itself wrote.
    run = tmp_path / "run"
    shutil.copytree(trained("mlp"), run)
    np.save(tmp_path / "x.npy", np.zeros((4, 6), np.float32))
    for command in ("eval", "predict", "export", "plot", "summarize", "resume"):
        code, output = run_cli(*COMMANDS[command](run, tmp_path))
        assert code == 0, (command, output)
