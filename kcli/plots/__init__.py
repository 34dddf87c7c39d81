"""The `plots` stage: a run folder -> its curves and weight histograms as PNG files.

Written by `kcli train` before it marks a run completed (so this stage sits before train/), and
again by `kcli plot RUN`. Entry point: `write_plots(run_dir)`.

`write_plots(run_dir)` reads `metrics.csv` and the checkpoints of a run folder and writes, under
`run_dir/plots/`:
  - one figure per metric family: `loss.png` (loss and val_loss), `accuracy.png` (accuracy and
    val_accuracy) ..., with the best validation epoch marked and its value written beside it;
  - `lr.png`: the learning rate per epoch, on a log scale when it spans more than a decade;
  - `weights.png`: a histogram per weight tensor, after the first epoch (`checkpoints/first.pt`)
    overlaid with the weights the run ended with: `checkpoints/last.pt`'s, or those
    EarlyStopping(restore_best_weights) put back, labelled with their epoch ("after epoch 3
    (restored best)"). Each panel is titled with the weight's Keras name and Keras-order shape
    (`dense/kernel (6, 16)`), from the model the run's recipe.yaml builds.

matplotlib is optional (the `plots` extra) and imported inside the functions that draw.
Figures are made with `matplotlib.figure.Figure` on an Agg canvas, never through pyplot: no GUI
backend can be picked up, and no global figure state leaks between calls or threads.

Choices the issue left open:
  - "best" is the lowest value, except for metrics where higher is better (names containing
    accuracy, precision, recall, f1, auc or r2), where it is the highest;
  - the weight grid keeps the 16 largest tensors, in model order; the others are named in a note
    under the title;
  - checkpoint labels show the checkpoint's own `epoch` value, verbatim (a restored one: the epoch
    it was restored from);
  - a weight whose Keras shape cannot be worked out (no recipe.yaml to rebuild the model from)
    shows its stored shape, marked "as stored".
"""

# Each module holds one job: data (reading, the pure decisions), figure (Figure, PNG writing),
# curves, weights (histograms), write (the entry point). None imports matplotlib at import time.
from kcli.plots.curves import TRAIN_COLOR, VAL_COLOR, plot_family, plot_lr
from kcli.plots.data import (
    HIGHER_IS_BETTER,
    MAX_WEIGHT_PANELS,
    NOT_CURVES,
    MetricTable,
    Weights,
    best_index,
    final_weights,
    higher_is_better,
    load_weights,
    metric_families,
    read_metrics,
    run_layouts,
    select_tensors,
    wants_log_scale,
)
from kcli.plots.figure import CURVE_SIZE, DPI
from kcli.plots.weights import (
    FIRST_COLOR,
    LAST_COLOR,
    MAX_BINS,
    MIN_BINS,
    histogram_bins,
    plot_weights,
    weight_title,
    weights_label,
)
from kcli.plots.write import write_plots

__all__ = [
    "CURVE_SIZE",
    "DPI",
    "FIRST_COLOR",
    "HIGHER_IS_BETTER",
    "LAST_COLOR",
    "MAX_BINS",
    "MAX_WEIGHT_PANELS",
    "MIN_BINS",
    "NOT_CURVES",
    "TRAIN_COLOR",
    "VAL_COLOR",
    "MetricTable",
    "Weights",
    "best_index",
    "final_weights",
    "higher_is_better",
    "histogram_bins",
    "load_weights",
    "metric_families",
    "plot_family",
    "plot_lr",
    "plot_weights",
    "read_metrics",
    "run_layouts",
    "select_tensors",
    "wants_log_scale",
    "weight_title",
    "weights_label",
    "write_plots",
]
