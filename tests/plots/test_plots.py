"""kcli.plots: the PNGs a run folder gets, how metrics are grouped, and the errors users see."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from kcli.errors import KcliError
from kcli.plots import (
    best_index,
    higher_is_better,
    histogram_bins,
    metric_families,
    read_metrics,
    select_tensors,
    wants_log_scale,
    write_plots,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# curves are 6.4 x 4.0 inches at 110 dpi: 6.4 * 110 = 704 wide, 4.0 * 110 = 440 high
CURVE_PIXELS = (440, 704)

METRICS_CSV = """\
epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds
1,1.20,0.55,1.10,0.60,0.01,2.5
2,0.80,0.70,0.90,0.72,0.005,2.4
3,0.60,0.80,0.85,0.78,0.001,2.4
4,0.50,0.85,0.95,0.76,0.0005,2.3
"""


def weights(scale: float) -> dict:
    """A small Keras-named state_dict: a kernel, two vectors, and two tensors too small to plot."""
    import torch

    g = torch.Generator().manual_seed(0)
    return {
        "dense.kernel": torch.randn(3, 4, generator=g) * scale,
        "dense.bias": torch.randn(4, generator=g) * scale,
        "batch_normalization.moving_mean": torch.randn(4, generator=g) * scale,
        "batch_normalization.num_batches_tracked": torch.tensor(7),
        "dense_1.bias": torch.tensor([0.5]),
    }


def make_run(tmp_path: Path, metrics: str | None = METRICS_CSV, ckpts=("first", "last")) -> Path:
    """A run folder as the trainer leaves it: metrics.csv and checkpoints/{first,last}.pt."""
    import torch

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    if metrics is not None:
        (run / "metrics.csv").write_text(metrics)
    for name in ckpts:
        epoch, scale = (1, 1.0) if name == "first" else (4, 2.0)
        torch.save({"model": weights(scale), "epoch": epoch}, run / "checkpoints" / f"{name}.pt")
    return run


def png_shape(path: Path) -> tuple[int, ...]:
    """Check that `path` is a real, non-trivial PNG and return its (height, width, channels)."""
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > 5_000, f"{path.name} is only {len(data)} bytes: an empty figure?"
    return imread(path).shape


# -- the files a run gets ----------------------------------------------------------------------
def test_write_plots_writes_one_png_per_family_lr_and_weights(tmp_path):
    run = make_run(tmp_path)
    written = write_plots(run)
    names = {p.name for p in written}
    assert names == {"loss.png", "accuracy.png", "lr.png", "weights.png"}
    # val_ columns join their family; epoch and seconds are never curves
    assert {p.name for p in (run / "plots").iterdir()} == names
    assert all(p.parent == run / "plots" for p in written)
    for name in ("loss.png", "accuracy.png", "lr.png"):
        height, width, _ = png_shape(run / "plots" / name)
        assert (height, width) == CURVE_PIXELS
    # weights: 3 tensors of >1 element (dense.kernel, dense.bias, moving_mean) -> 1 row x 3
    # panels of 3.4 in: 10.2 in * 110 = 1122 px wide; 2.6 in + 0.58 in header = 3.18 in high,
    # 3.18 * 110 = 349.8 px
    height, width, _ = png_shape(run / "plots" / "weights.png")
    assert width == 1122
    assert abs(height - 349.8) < 1


def test_weights_skipped_without_checkpoint_and_last_alone_without_first(tmp_path):
    run = make_run(tmp_path / "a", ckpts=())
    assert "weights.png" not in {p.name for p in write_plots(run)}

    run = make_run(tmp_path / "b", ckpts=("last",))
    assert "weights.png" in {p.name for p in write_plots(run)}
    assert png_shape(run / "plots" / "weights.png")[1] == 1122


def test_validation_logged_every_other_epoch_and_a_metric_without_lr(tmp_path):
    # validation_freq=2 leaves empty val cells; no lr column means no lr.png
    csv_text = "epoch,loss,mae,val_loss,val_mae,seconds\n1,4,2,,,1\n2,3,1.5,3.5,1.8,1\n3,2,1,,,1\n"
    run = make_run(tmp_path, csv_text, ckpts=())
    assert {p.name for p in write_plots(run)} == {"loss.png", "mae.png"}
    assert png_shape(run / "plots" / "mae.png")[:2] == CURVE_PIXELS


# -- the pure helpers ---------------------------------------------------------------------------
def test_read_metrics_reads_numbers_and_empty_cells_as_nan(tmp_path):
    run = make_run(tmp_path, "epoch,loss,val_loss\n1,0.5,\n2,0.25,inf\n", ckpts=())
    table = read_metrics(run)
    assert table["epoch"] == [1.0, 2.0]
    assert table["loss"] == [0.5, 0.25]
    # an empty cell (no validation that epoch) and inf (diverged) are both "no point to draw"
    assert all(math.isnan(v) for v in table["val_loss"])


def test_metric_families_group_each_metric_with_its_val_twin():
    columns = ["epoch", "loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_auc", "lr"]
    columns.append("seconds")
    assert metric_families(columns) == {
        "loss": ["loss", "val_loss"],
        "accuracy": ["accuracy", "val_accuracy"],
        "mae": ["mae"],
        "auc": ["val_auc"],  # validation only: its own family, named without the prefix
    }


def test_higher_is_better_by_metric_name():
    for name in ("accuracy", "sparse_categorical_accuracy", "auc", "precision", "f1_score"):
        assert higher_is_better(name), name
    for name in ("loss", "mae", "mse", "rmse", "mape", "binary_crossentropy_loss"):
        assert not higher_is_better(name), name
    assert higher_is_better("r2_score")


def test_best_index_takes_the_first_of_ties_and_skips_nan():
    nan = math.nan
    # val_loss 0.9, 0.5, 0.5, 0.7: the lowest, 0.5, first at index 1
    assert best_index([0.9, 0.5, 0.5, 0.7], maximize=False) == 1
    # val_accuracy nan, 0.6, 0.8, 0.8: the highest, 0.8, first at index 2
    assert best_index([nan, 0.6, 0.8, 0.8], maximize=True) == 2
    assert best_index([nan, nan], maximize=True) is None


def test_lr_goes_log_only_past_one_decade():
    assert not wants_log_scale([0.01, 0.01, 0.01])  # constant: ratio 1
    assert not wants_log_scale([1e-3, 5e-4, 1e-4])  # 1e-3 / 1e-4 = 10: exactly one decade
    assert wants_log_scale([1e-3, 5e-4, 9e-5])  # 1e-3 / 9e-5 = 11.1
    assert not wants_log_scale([1e-3, 0.0])  # a zero cannot be drawn on a log axis


def test_select_tensors_keeps_the_largest_in_model_order():
    shapes = {f"dense_{i}.kernel": (i + 2,) for i in range(18)}  # sizes 2 .. 19
    shapes["dense.scale"] = (1,)  # one element: not plotted, not listed as left out
    shown, left_out = select_tensors(shapes, cap=16)
    # 18 candidates, 16 kept: the two smallest (sizes 2 and 3) are left out
    assert left_out == ["dense_0.kernel", "dense_1.kernel"]
    assert shown == [f"dense_{i}.kernel" for i in range(2, 18)]
    # equal sizes: the earlier one wins the last place
    shown, left_out = select_tensors({"a": (2, 2), "b": (4,), "c": (3,)}, cap=2)
    assert (shown, left_out) == (["a", "b"], ["c"])


def test_histogram_bins_grow_as_two_sqrt_size_within_10_to_50():
    assert histogram_bins(64) == 16  # 2 * sqrt(64) = 16
    assert histogram_bins(400) == 40  # 2 * sqrt(400) = 40
    assert histogram_bins(12) == 10  # 2 * sqrt(12) = 6.9, raised to 10
    assert histogram_bins(784 * 256) == 50  # 2 * sqrt(200704) = 896, capped at 50


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (None, "metrics.csv not found"),
        ("", "has no rows"),
        ("epoch,loss,val_loss\n", "has no rows"),
    ],
)
def test_no_metrics_is_a_kcli_error(tmp_path, metrics, message):
    run = make_run(tmp_path, metrics, ckpts=())
    with pytest.raises(KcliError, match=f"no metrics to plot in .*{message}"):
        write_plots(run)
    assert not (run / "plots").exists()


def test_a_cell_that_is_not_a_number_names_file_line_and_column(tmp_path):
    run = make_run(tmp_path, "epoch,loss\n1,0.5\n2,oops\n", ckpts=())
    with pytest.raises(KcliError, match=r"metrics.csv:3: column 'loss' holds 'oops'"):
        write_plots(run)


def test_unreadable_checkpoint_is_a_kcli_error(tmp_path):
    run = make_run(tmp_path, ckpts=())
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(KcliError, match="last.pt: not a readable checkpoint"):
        write_plots(run)


def test_missing_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    run = make_run(tmp_path, ckpts=())
    # a None entry in sys.modules makes `import matplotlib...` raise ImportError
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    hint = r"pip install \"kcli-keras\[plots\]\" \(in a checkout: pip install -e \"\.\[plots\]\"\)"
    with pytest.raises(KcliError, match=hint):
        write_plots(run)
    assert not (run / "plots").exists()
