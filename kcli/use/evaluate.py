"""`kcli eval`: a trained run's metrics on one of its own splits or on other data.

The run folder is the whole saved model (recipe.yaml, checkpoint, preprocess.json). On its own
splits, the data is re-read exactly as training read it (`prepare`: same source, seed and split
indices) and the numbers come from training's own code (`Stepper.eval_step`, `Accumulator`, the
batches `make_batches` gives evaluation), so the test split reproduces eval.json bit for bit.
Other data (`--data SOURCE`) goes through the run's fitted preprocess.json instead.
Classifiers also get a confusion matrix and per-class precision and recall.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem
from kcli.use.confusion import (
    confusion_for,
    number,
    print_confusion,
)

SPLITS = ("test", "validation", "train")


def unlocated(error: KcliError, source: str | None = None) -> KcliError:
    """The same problems without recipe locations (they are about data given on the CLI).

    With `source`, a message that does not name it already is prefixed `--data SOURCE: `.
    """
    problems = []
    for p in error.problems:
        named = source is None or Path(source).name in p.message
        problems.append(
            replace(p, loc=(), message=p.message if named else f"--data {source}: {p.message}")
        )
    return KcliError(problems, details=error.details)


def find_run(run: str, runs_dir: Path) -> Path:
    """The run folder RUN names, with a checkpoint; a recipe name means its newest completed run."""
    from kcli.runs import resolve_run

    return resolve_run(run, runs_dir, require_checkpoint=True, prefer_completed=True)


def run_device(run_dir: Path, requested: str | None) -> str:
    """--device if given; else the run's own device when this machine has it; else cpu.

    The run's device by default, because only the same device reproduces its numbers exactly.
    """
    import torch

    from kcli.runs import read_run_record
    from kcli.train.setup import pick_device

    if requested:
        return str(pick_device(requested))
    trained_on = read_run_record(run_dir).device
    kind = trained_on.split(":")[0]
    if kind == "cuda" and torch.cuda.is_available():
        index = torch.device(trained_on).index or 0
        return trained_on if index < torch.cuda.device_count() else "cuda"
    if kind == "mps" and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def class_labels(run_model: Any, units: int, output: str | None = None) -> list[str]:
    """The names of the classes a classifier's output stands for (indices as text if none)."""
    names = run_model.class_names_of(output)
    count = max(units, 2)
    if names and len(names) >= count:
        return list(names[:count])
    return [str(i) for i in range(count)]


@dataclass
class Evaluation:
    """What `kcli eval` reports."""

    run_dir: Path
    checkpoint: str
    data: str  # "test split", or the --data source
    split: str | None
    metrics: dict[str, float]
    n_samples: int
    class_names: list[str] | None = None
    confusion: list[list[int]] | None = None  # rows: true class, columns: predicted class
    # A model of several outputs: output name -> (class names, confusion matrix) for each
    # classification output (`class_names` and `confusion` are then None).
    by_output: dict[str, tuple[list[str], list[list[int]]]] | None = None

    def per_class(self, output: str | None = None) -> list[dict[str, Any]]:
        """Precision, recall and support of each class, from the confusion matrix (of
        `output` when the model has several)."""
        names, confusion = (
            (self.class_names, self.confusion) if output is None else self.by_output[output]
        )
        if confusion is None:
            return []
        rows = []
        for k, name in enumerate(names or []):
            hit = confusion[k][k]
            predicted = sum(row[k] for row in confusion)
            support = sum(confusion[k])
            rows.append(
                {
                    "class": name,
                    "precision": hit / predicted if predicted else None,
                    "recall": hit / support if support else None,
                    "support": support,
                }
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "metrics": self.metrics,
            "n_samples": self.n_samples,
            "split": self.split,
            "data": self.data,
            "checkpoint": self.checkpoint,
            "run_dir": str(self.run_dir),
        }
        if self.confusion is not None:
            document["classes"] = self.class_names
            document["confusion_matrix"] = self.confusion
            document["per_class"] = self.per_class()
        if self.by_output:
            document["outputs"] = {
                name: {
                    "classes": names,
                    "confusion_matrix": confusion,
                    "per_class": self.per_class(name),
                }
                for name, (names, confusion) in self.by_output.items()
            }
        return document


def evaluate_run(
    run: str,
    runs_dir: Path,
    *,
    split: str = "test",
    data: str | None = None,
    checkpoint: str | None = None,
    device: str | None = None,
) -> Evaluation:
    """Loss and metrics of a run's model on one of its splits, or on `data` (a source string)."""
    from kcli.use.run_model import load_run_model

    if split not in SPLITS:
        raise KcliError(Problem(f"--split must be one of {', '.join(SPLITS)} (got '{split}')"))
    run_dir = find_run(run, runs_dir)
    device_name = run_device(run_dir, device)
    run_model = load_run_model(run_dir, checkpoint, device_name)
    if data is None:
        prepared, chosen = _own_split(run_model, split, device_name)
        described = f"{split} split"
    else:
        prepared, chosen = _other_data(run_model, data, device_name)
        described, split = f"data {data}", None
    metrics, count, confusions = _evaluate(prepared, chosen)
    labelled = {
        output: (class_labels(run_model, len(matrix), output), matrix)
        for output, matrix in confusions.items()
    }
    names, confusion = labelled.pop(None, (None, None))
    return Evaluation(
        run_dir,
        run_model.checkpoint,
        described,
        split,
        metrics,
        count,
        names,
        confusion,
        labelled or None,
    )


def _own_split(run_model: Any, split: str, device_name: str) -> tuple[Any, Any]:
    """The run's data re-read as training read it; the chosen split of it."""
    import json

    from kcli.train.setup import prepare

    prepared = prepare(run_model.loaded, device_name, run_model.recipe_dir, start_weights=False)
    refitted = json.loads(json.dumps(prepared.splits.preprocessing.to_json()))
    saved = json.loads(json.dumps(run_model.preprocessing.to_json()))
    if refitted != saved:
        raise KcliError(
            Problem(
                f"the data of {run_model.run_dir} changed since it trained (its preprocessing, "
                f"fitted again, differs from preprocess.json), so the {split} split would not be "
                "the run's; evaluate the new data with --data SOURCE"
            )
        )
    chosen = getattr(prepared.splits, split)
    if chosen is None:
        raise KcliError(
            Problem(
                f"{run_model.run_dir} has no {split} split (its recipe sets neither "
                f"data.{split}_split nor data.{split}); use another --split, or --data SOURCE"
            )
        )
    prepared.model = run_model.model.to(prepared.device)
    return prepared, chosen


def source_spec_for(run_model: Any, source: str) -> Any:
    """A SourceSpec for `source` that takes the run's CSV columns / npz array names by default."""
    from pydantic import ValidationError

    from kcli.data.spec import DataSpec

    main = run_model.loaded.recipe.data.source_spec().model_dump(exclude_none=True)
    try:
        # The recipe's own inheritance rule: a test source of the main source's kind takes
        # its target/features/categorical (CSV) or x/y names (npz).
        return DataSpec.model_validate({**main, "test": source}).test
    except ValidationError as error:
        messages = "; ".join(e["msg"] for e in error.errors())
        raise KcliError(Problem(f"--data {source}: {messages}")) from None


def _other_data(run_model: Any, source: str, device_name: str) -> tuple[Any, Any]:
    """`--data SOURCE` through the run's preprocess.json, checked against the model and loss."""
    from kcli.data.sources import load_source_arrays
    from kcli.data.splits import ArraySplit, Splits
    from kcli.data.targets import count_classes, describe_target
    from kcli.train.setup import Prepared, make_objectives, pick_device

    recipe = run_model.loaded.recipe
    spec = source_spec_for(run_model, source)
    prep = run_model.preprocessing
    outputs = run_model.output_names
    try:
        raw = load_source_arrays(
            spec, Path.cwd(), seed=recipe.seed, loc=("data", "test"), outputs=outputs
        )
        x = prep.transform_x(raw.x, raw.where, raw.loc, raw.row_label)
        y = prep.transform_y(raw.y, raw.where, raw.loc, raw.row_label)
    except KcliError as error:
        raise unlocated(error, source) from None

    def described(values: Any, output: str | None) -> Any:
        names = run_model.class_names_of(output)
        return describe_target([values], names, count_classes([values], names), ("--data",))

    split = ArraySplit(x, y, raw.sample_weight)
    if isinstance(y, dict):
        targets = {name: described(values, name) for name, values in y.items()}
        splits = Splits(split, None, split, prep, None, prep.output_shapes(), targets)
    else:
        splits = Splits(split, None, split, prep, described(y, None), prep.output_shapes())
    try:
        objectives, y_dtype = make_objectives(run_model.loaded, run_model.plan, splits)
    except KcliError as error:
        raise unlocated(error, source) from None
    metric_specs = recipe.compile.logged_metrics(run_model.plan.outputs)
    device = pick_device(device_name)
    model = run_model.model.to(device)
    prepared = Prepared(
        run_model.loaded,
        run_model.plan,
        model,
        splits,
        objectives,
        metric_specs,
        y_dtype,
        device,
        None,
    )
    return prepared, split


def _evaluate(prepared: Any, split: Any) -> tuple[dict[str, float], int, dict]:
    """Training's evaluation (Trainer.evaluate's math) over every batch of one split; the
    confusion matrix of each classification output (keyed None for a model of one output)."""
    from kcli.compile.outputs import output_loss_names
    from kcli.fit.steps import Accumulator, Stepper, part_of
    from kcli.train.assemble import make_batches

    model = prepared.model.eval()
    precision = prepared.loaded.recipe.fit.precision
    stepper = Stepper(model, prepared.objectives, None, prepared.device, precision)
    accumulator = Accumulator.zeros(prepared.device, len(prepared.objectives))
    metrics = [spec.streaming() for spec in prepared.metric_specs]
    heads = prepared.loaded.recipe.compile.heads(prepared.plan.outputs)
    counters = {head.name: confusion_for(prepared, head) for head in heads}
    counters = {name: counter for name, counter in counters.items() if counter is not None}
    for x, y, w in make_batches(prepared, split, train=False).epoch(0):
        outputs = stepper.eval_step(x, y, w, accumulator, metrics)
        for head in heads:
            if head.name in counters:
                counters[head.name].add(outputs[head.index], part_of(y, head.name))
    count = max(float(accumulator.count), 1.0)  # as Trainer._logs divides
    logs = {"loss": float(accumulator.loss_sum) / count}
    for name, total in zip(
        output_loss_names(prepared.plan.outputs), accumulator.output_sums, strict=True
    ):
        logs[name] = float(total) / count
    for spec, metric in zip(prepared.metric_specs, metrics, strict=True):
        logs[spec.log_name] = float(metric.compute())
    matrices = {name: counter.matrix() for name, counter in counters.items()}
    return logs, int(accumulator.count), matrices


def render_evaluation(evaluation: Evaluation) -> str:
    """The metrics table, then for classifiers the confusion matrix and per-class scores."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=110, color_system=None, force_terminal=False)
    console.print(
        f"{evaluation.run_dir} ({evaluation.checkpoint} checkpoint) on the {evaluation.data}: "
        f"{evaluation.n_samples} samples",
        highlight=False,
        soft_wrap=True,
    )
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in evaluation.metrics.items():
        table.add_row(name, number(value))
    console.print(table)
    if evaluation.confusion is not None:
        print_confusion(console, evaluation, None)
    for output in evaluation.by_output or {}:
        print_confusion(console, evaluation, output)
    return buffer.getvalue()
