"""The ctc loss: a value enumerated by hand, Keras' label padding, its checks, one CLI run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from kcli.compile.losses import LossRef
from kcli.data.targets import TargetInfo
from kcli.errors import KcliError

ADAPTER = TypeAdapter(LossRef)


def ctc(y_pred, y_true):
    return ADAPTER.validate_python("ctc").build(None)(y_pred, torch.tensor(y_true))


# Two time steps over classes (blank 0, 1, 2). Keras log_softmax-es y_pred, so logits
# log(p) give exactly these per-step probabilities.
P = [[0.5, 0.3, 0.2], [0.2, 0.6, 0.2]]
LOGITS = torch.tensor([P], dtype=torch.float64).log()


def test_names():
    for name in ("ctc", "CTC"):
        assert ADAPTER.validate_python(name).type == "ctc"
    spec = ADAPTER.validate_python("ctc")
    assert spec.target_kind == "sequence_labels"
    assert not spec.folds_link("softmax")  # Keras log_softmax-es the softmax output itself


def test_value_enumerated_by_hand():
    # Label "1" over 2 steps: the alignments that collapse to it (merge repeats, drop blanks)
    # are (1, 1), (0, 1) and (1, 0).
    p_one = P[0][1] * P[1][1] + P[0][0] * P[1][1] + P[0][1] * P[1][0]
    # Label "1 2": only (1, 2). Label "2 1": only (2, 1).
    p_one_two = P[0][1] * P[1][2]
    p_two_one = P[0][2] * P[1][1]
    batch = LOGITS.expand(3, 2, 3)
    got = ctc(batch, [[1, 0], [1, 2], [2, 1]])
    want = [-math.log(p_one), -math.log(p_one_two), -math.log(p_two_one)]
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    # "1 1" needs a blank between the repeats: 3 steps, so over 2 no alignment exists (inf,
    # as Keras gives); an empty label is the all-blank path (0, 0).
    assert math.isinf(ctc(LOGITS, [[1, 1]]).item())
    assert ctc(LOGITS, [[0, 0]]).item() == pytest.approx(-math.log(P[0][0] * P[1][0]))


def test_label_padding_is_zero_at_the_end():
    # Keras' label length is the count of non-zero labels: more padding changes nothing.
    short = ctc(LOGITS, [[1]])
    padded = ctc(LOGITS, [[1, 0, 0, 0]])
    assert padded.item() == pytest.approx(short.item())
    # Integral float labels (a float32 y) read as the same ints.
    floats = ADAPTER.validate_python("ctc").build(None)(LOGITS, torch.tensor([[1.0, 0.0]]))
    assert floats.item() == pytest.approx(short.item())


def test_gradient_is_finite():
    y_pred = torch.randn(4, 5, 3, requires_grad=True)
    loss = ctc(y_pred, [[1, 2], [2, 0], [0, 0], [1, 0]])
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(y_pred.grad).all()


def test_check_output():
    spec = ADAPTER.validate_python("ctc")
    assert spec.check_output((6, 4), 4, (6,)) is None
    assert "time, classes" in spec.check_output((4,), 4, (6,))
    assert "give the last layer 5 units" in spec.check_output((6, 4), 5, (6,))
    assert "max_label_length" in spec.check_output((6, 4), 4, (6, 1))


def _target(shape=(3,), high=3.0, integer=True, kind="classes"):
    return TargetInfo(kind, int(high) + 1, None, shape, (0.0, high), integer)


def test_target_check_accepts_label_rows_in_range():
    _target().check_output((6, 4), sparse=False, sequence_labels=True)
    # The plain checks refuse the same target (its size is not the output's).
    with pytest.raises(KcliError):
        _target().check_output((6, 4), sparse=False)
    with pytest.raises(KcliError, match=r"labels must be in 1\.\.3"):
        _target(high=4.0).check_output((6, 4), sparse=False, sequence_labels=True)
    with pytest.raises(KcliError, match="integer labels"):
        _target(integer=False, kind="continuous").check_output(
            (6, 4), sparse=False, sequence_labels=True
        )


DATA = '''\
import numpy as np


def load(n=192, steps=6, classes=4, seed=0):
    """x: one-hot symbols per step (0 = blank) plus noise; y: the CTC collapse, 0-padded."""
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, classes, (n, steps))
    x = np.eye(classes, dtype=np.float32)[symbols] + rng.normal(0, 0.1, (n, steps, classes))
    y = np.zeros((n, steps), np.int64)
    for i, row in enumerate(symbols):
        label = [s for j, s in enumerate(row) if s != 0 and (j == 0 or s != row[j - 1])]
        y[i, : len(label)] = label
    return x.astype(np.float32), y
'''

RECIPE = """\
name: ctc
seed: 3
data:
  source: python:ctc_sequence_data:load
  validation_split: 0.25
model:
  input_shape: [6, 4]
  layers:
    - {type: Dense, units: 16, activation: relu}
    - {type: Dense, units: 4, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.02}
  loss: ctc
fit:
  epochs: 5
  batch_size: 32
"""


def test_trains_through_the_cli(tmp_path: Path):
    from typer.testing import CliRunner

    from kcli.cli import app

    (tmp_path / "ctc_sequence_data.py").write_text(DATA)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    args = ["train", str(recipe), "--runs-dir", str(tmp_path / "runs"), "--json", "-q"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    rows = np.genfromtxt(run_dir / "metrics.csv", delimiter=",", names=True)
    assert np.all(np.diff(rows["loss"]) < 0), rows["loss"]
    assert rows["val_loss"][-1] < rows["val_loss"][0]
