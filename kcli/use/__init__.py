"""The `use` stage: a model or a finished run -> summaries, metrics, predictions, artifacts.

Takes a run folder (or a recipe, for `summarize`). Each command has its module: summarize.py,
evaluate.py, predict.py, export.py (with export_formats.py, one writer per format, and
export_sample.py, the samples each artifact is checked on), run_table.py (`kcli runs`);
run_model.py rebuilds a run's
model with its trained weights (Keras' load_model). Entry point: `run_model.load_run_model`.
Plots are their own stage (kcli/plots/), since training writes them too.
"""
