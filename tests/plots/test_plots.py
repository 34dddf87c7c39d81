"""kcli.plots: the PNGs a run folder gets, how metrics are grouped, and the errors users see."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

import kcli.plots.weights as weights_figure
from kcli.errors import KcliError
from kcli.plots import (
    Weights,
    best_index,
    final_weights,
    higher_is_better,
    histogram_bins,
    metric_families,
    read_metrics,
    select_tensors,
    wants_log_scale,
    weight_title,
    weights_label,
    write_plots,
)
from tests.train.conftest import run_cli

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


# -- weight titles: Keras' names and shapes; labels: which weights ---------------------------------
def keras_shapes(layers: list[dict], input_shape: list[int]) -> dict[str, tuple]:
    """State-dict key -> the shape Keras gives the weight, for a Sequential model of `layers`."""
    from kcli.model.graph import plan_graph
    from kcli.model.nn.keras_layout import planned_layouts
    from kcli.model.spec import ModelSpec

    plan = plan_graph(ModelSpec.model_validate({"input_shape": input_shape, "layers": layers}))
    return {key: keras for key, (_, keras) in planned_layouts(plan).items()}


def test_kernels_get_the_shape_keras_gives_them():
    # Every channel and window size differs, so a transposed or misordered axis shows.
    shapes = keras_shapes(
        [
            {"type": "Conv2D", "filters": 5, "kernel_size": [2, 3]},  # (4, 4, 2) -> (3, 2, 5)
            {"type": "DepthwiseConv2D", "kernel_size": [1, 2], "depth_multiplier": 3},  # (3, 1, 15)
            {"type": "Flatten"},  # 45
            {"type": "Dense", "units": 7},
        ],
        [4, 4, 2],
    )
    assert shapes == {
        "conv2d.kernel": (2, 3, 2, 5),  # (kh, kw, in, out); stored (5, 2, 2, 3)
        "conv2d.bias": (5,),
        "depthwise_conv2d.depthwise_kernel": (1, 2, 5, 3),  # (kh, kw, C, dm); stored (15, 1, 1, 2)
        "depthwise_conv2d.bias": (15,),
        "dense.kernel": (45, 7),  # (in, out); stored (7, 45)
        "dense.bias": (7,),
    }
    shapes = keras_shapes(
        [
            {"type": "GRU", "units": 4, "return_sequences": True},  # (5, 3) -> (5, 4)
            {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2}},
        ],
        [5, 3],
    )
    assert shapes == {
        "gru.kernel": (3, 12),  # (in, 3 * units); stored (12, 3)
        "gru.recurrent_kernel": (4, 12),
        "gru.bias": (2, 12),  # reset_after: input and recurrent rows, as Keras keeps them
        "bidirectional.forward_layer.kernel": (4, 8),
        "bidirectional.forward_layer.recurrent_kernel": (2, 8),
        "bidirectional.forward_layer.bias": (8,),
        "bidirectional.backward_layer.kernel": (4, 8),
        "bidirectional.backward_layer.recurrent_kernel": (2, 8),
        "bidirectional.backward_layer.bias": (8,),
    }


def test_weight_titles_use_keras_names_and_say_when_a_shape_is_as_stored():
    layouts = {"dense.kernel": ((16, 6), (6, 16)), "dense.bias": ((16,), (16,))}
    assert weight_title("dense.kernel", (16, 6), layouts) == "dense/kernel (6, 16)"
    assert weight_title("dense.bias", (16,), layouts) == "dense/bias (16,)"  # Keras' 1-D form
    # no layout known, or one of another model: the stored shape, never passed off as Keras'
    assert weight_title("dense_1.kernel", (3, 16), layouts) == "dense_1/kernel (3, 16) as stored"
    assert weight_title("dense.kernel", (8, 6), layouts) == "dense/kernel (8, 6) as stored"


def test_weights_labels_name_the_epoch_and_a_restore():
    assert weights_label(Weights({}, 4, Path("last.pt")), "last") == "after epoch 4"
    restored = Weights({}, 2, Path("last.pt"), "restored best")
    assert weights_label(restored, "last") == "after epoch 2 (restored best)"
    assert weights_label(Weights({}, None, Path("final.pt"), "restored"), "last") == (
        "restored at the end"
    )
    assert weights_label(Weights({}, None, Path("x.pt")), "first") == "after the first epoch"


@pytest.fixture
def drawn_weights(monkeypatch):
    """The text of every weights figure drawn from now on: panel titles, suptitle, legend."""
    drawn: list[dict] = []
    save = weights_figure._save

    def record(fig, path):
        drawn.append(
            {
                "titles": [ax.get_title() for ax in fig.axes if ax.get_visible()],
                "suptitle": fig._suptitle.get_text(),
                "legend": [text.get_text() for text in fig.legends[0].get_texts()],
            }
        )
        return save(fig, path)

    monkeypatch.setattr(weights_figure, "_save", record)
    return drawn


# EarlyStopping watches the training loss for its *highest* value from epoch 2 on: the loss
# falls, so the "best" epoch it restores is 2, neither the first epoch nor the last (4).
CONV_RESTORE_RECIPE = """\
name: conv_restore
seed: 7
data:
  source: synthetic:classification
  params: {n_samples: 160, n_features: 32, n_classes: 3}
  validation_split: 0.25
  test_split: 0.25
model:
  input_shape: [32]
  layers:
    - {type: Reshape, target_shape: [4, 4, 2]}
    - {type: Conv2D, filters: 5, kernel_size: [2, 3], activation: relu}
    - {type: Flatten}
    - {type: Dense, units: 3, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
fit:
  epochs: 4
  batch_size: 16
  callbacks:
    - {type: EarlyStopping, monitor: loss, mode: max, start_from_epoch: 1, patience: 10,
       restore_best_weights: true}
"""


def test_a_run_that_restored_its_best_weights_plots_them_with_keras_shapes(tmp_path, drawn_weights):
    import torch

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(CONV_RESTORE_RECIPE)
    result = run_cli("train", str(recipe), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs" / "conv_restore").iterdir()
    losses = [float(row.split(",")[1]) for row in (run / "metrics.csv").read_text().split()[1:]]
    assert len(losses) == 4 and losses[1] == max(losses[1:])  # epoch 2 is the one restored

    (during_training,) = drawn_weights
    assert during_training["titles"] == [
        "conv2d/kernel (2, 3, 2, 5)",  # (kh, kw, in, out): stored as (5, 2, 2, 3)
        "conv2d/bias (5,)",
        "dense/kernel (30, 3)",  # (in, out): stored as (3, 30)
        "dense/bias (3,)",
    ]
    assert during_training["legend"] == ["after epoch 1", "after epoch 2 (restored best)"]
    assert during_training["suptitle"] == (
        "weight distributions: after epoch 1 vs after epoch 2 (restored best)"
    )
    # What is drawn is what the run ended with: the weights its test split was scored with.
    recorded = json.loads((run / "eval.json").read_text())["checkpoint"]
    ended_with = torch.load(run / "checkpoints" / f"{recorded}.pt", weights_only=True)["model"]
    drawn = final_weights(run)
    assert drawn.tensors.keys() == ended_with.keys()
    assert all(torch.equal(drawn.tensors[k], ended_with[k]) for k in ended_with)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(drawn.tensors["dense.kernel"], last["dense.kernel"])

    write_plots(run)  # `kcli plot` of the completed run draws the same
    assert drawn_weights[-1] == during_training

    # A run cut off before training ended never restored anything: last.pt's weights stayed.
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    write_plots(run)
    assert drawn_weights[-1]["legend"] == ["after epoch 1", "after epoch 4"]


def test_weights_a_callback_put_back_are_found_through_eval_json(tmp_path, drawn_weights):
    # No EarlyStopping state says so, but eval.json records that the weights the run ended with
    # are best.pt's, of epoch 2 (a plugin callback restored them, say): they are the ones drawn.
    import torch

    run = make_run(tmp_path)
    torch.save({"model": weights(3.0), "epoch": 2}, run / "checkpoints" / "best.pt")
    (run / "eval.json").write_text(json.dumps({"split": "test", "checkpoint": "best"}))
    write_plots(run)
    assert drawn_weights[-1]["legend"] == ["after epoch 1", "after epoch 2 (restored best)"]
    # no recipe.yaml to rebuild the model from: the stored shape, said to be that
    assert drawn_weights[-1]["titles"][0] == "dense/kernel (3, 4) as stored"
    # best.pt of the last epoch is last.pt's weights: nothing was put back
    torch.save({"model": weights(2.0), "epoch": 4}, run / "checkpoints" / "best.pt")
    write_plots(run)
    assert drawn_weights[-1]["legend"] == ["after epoch 1", "after epoch 4"]
