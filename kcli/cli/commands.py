"""The commands that train and use runs: validate, train, summarize, eval, predict, export,
import, plot, runs.

Each parses its arguments, calls one function, and prints its result. Heavy imports (torch,
sklearn, matplotlib) happen inside the commands that need them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.app import app, err, print_json, reports_errors
from kcli.cli.options import (
    CheckpointOption,
    DeviceOption,
    JsonFlag,
    NnodesOption,
    NodeRankOption,
    NprocOption,
    Overrides,
    QuietFlag,
    RendezvousOption,
    ResumeOption,
    RunArgument,
    RunsDir,
    TrainDeviceOption,
)
from kcli.errors import KcliError, TrainingDiverged


@app.command()
@reports_errors
def validate(
    arguments: Annotated[
        list[str],
        typer.Argument(
            help="Recipe files to check, then overrides KEY=VALUE applied to each of them.",
            metavar="RECIPE... [KEY=VALUE...]",
        ),
    ],
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    print_recipe: Annotated[
        bool,
        typer.Option("--print", help="Print the resolved recipe (defaults, overrides) instead."),
    ] = False,
    merge: Annotated[
        bool, typer.Option("--merge", help="One recipe: the files merged in order (as train).")
    ] = False,
) -> None:
    """Check recipes (schema, graph wiring, shapes, logged names) without training; exit 0 or 2."""
    from kcli.recipe.load import check_recipe
    from kcli.recipe.overrides import split_overrides

    recipes, overrides = split_overrides(arguments, all_files=True)
    if not recipes:
        raise KcliError("give at least one recipe file")
    problems, results = [], []
    groups = [(recipes[0], recipes[1:])] if merge else [(path, []) for path in recipes]
    for path, merged in groups:
        try:
            loaded, found = check_recipe(path, overrides, merged), []
        except KcliError as error:
            found = error.problems
        problems += found
        results.append({"recipe": path, "ok": not found, "problems": [str(p) for p in found]})
        if found or quiet or as_json:
            continue
        # The resolved recipe is what `kcli train` would run (and writes as the run's recipe.yaml).
        print(f"# {path}, resolved\n{loaded.resolved_yaml()}" if print_recipe else f"{path}: ok")
    if as_json:
        print_json({"recipes": results})
    if problems:
        raise typer.Exit(2) if as_json else KcliError(problems)


@app.command(context_settings={"allow_interspersed_args": True})
@reports_errors
def train(
    recipe: Annotated[str | None, typer.Argument(help="The recipe file.")] = None,
    overrides: Overrides = None,
    resume: ResumeOption = None,
    runs_dir: RunsDir = Path("runs"),
    device: TrainDeviceOption = None,
    nproc_per_node: NprocOption = 1,
    nnodes: NnodesOption = 1,
    node_rank: NodeRankOption = 0,
    rdzv_endpoint: RendezvousOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate, build, train, test and write a run folder; exit 1 if an expect gate fails."""
    from kcli.fit.trainer import TrainingInterrupted
    from kcli.train.session import TrainOptions
    from kcli.train.session import train as train_run

    if resume is not None and recipe is not None and "=" in recipe:
        overrides = [recipe, *(overrides or [])]  # `--resume RUN fit.epochs=8`
        recipe = None
    merged: list[str] = []  # `kcli train base.yaml small.yaml`: later files merged over the first
    if recipe is not None:
        from kcli.recipe.overrides import split_overrides

        merged, overrides = split_overrides(overrides or [])
    if nproc_per_node > 1 or nnodes > 1:
        from kcli.recipe.load import check_recipe
        from kcli.train.launch import launch, strip_launcher_options

        if recipe is not None:  # bad input: exit 2 before any process starts
            check_recipe(recipe, overrides or [], merged)
        worker_argv = strip_launcher_options(sys.argv[1:])
        raise typer.Exit(launch(worker_argv, nproc_per_node, nnodes, node_rank, rdzv_endpoint))
    options = TrainOptions(
        runs_dir=runs_dir, device=device, quiet=quiet, json=as_json, resume=resume
    )
    from kcli.fit.distributed import finish_worker, is_worker_of_other_rank, report_exit_code

    try:
        result = train_run(recipe, overrides or [], options, merged)
    except TrainingInterrupted:
        finish_worker(130)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        err("interrupted")
        finish_worker(130)
        raise typer.Exit(130) from None
    except TrainingDiverged as error:
        if not is_worker_of_other_rank():
            err(str(error))
        finish_worker(report_exit_code(1))
        raise typer.Exit(report_exit_code(1)) from None
    code = report_exit_code(1 if result.failed_gates else 0)
    if not is_worker_of_other_rank():  # rank 0 reports for the whole distributed run
        if as_json:
            print_json(result.to_json())
        elif quiet:
            print(result.run_dir)  # one line, so a script can take it: RUN=$(kcli train r.yaml -q)
        else:
            from kcli.fit.progress import format_logs

            test = {k[5:]: v for k, v in result.metrics.items() if k.startswith("test_")}
            if test:
                print(f"test: {format_logs(test)}")
            print(f"run: {result.run_dir} ({result.status})")
        for gate in result.failed_gates:
            err(f"FAILED {gate}")
    finish_worker(code)
    raise typer.Exit(code)


@app.command()
@reports_errors
def summarize(
    target: Annotated[str, typer.Argument(help="A recipe file, or a run (folder or name).")],
    overrides: Overrides = None,
    runs_dir: RunsDir = Path("runs"),
    expand: Annotated[
        bool,
        typer.Option("--expand", help="Each sub-model's layers below its row (expand_nested)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The model as Keras' model.summary() shows it."""
    from kcli.recipe.overrides import split_overrides
    from kcli.use.summarize import summarize_recipe

    merged, overrides = split_overrides(overrides or [])
    summary = summarize_recipe(target, overrides, runs_dir, merged)
    if as_json:
        print_json(summary.to_json(expand=expand))
    else:
        from kcli.model.summary import render_summary

        print(render_summary(summary, expand=expand), end="")


@app.command(name="eval")
@reports_errors
def eval_(
    run: RunArgument,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Other data: a .npz/.npy/.csv path, sklearn:NAME ..."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="test | validation | train (the run's own splits).")
    ] = "test",
    checkpoint: CheckpointOption = None,
    runs_dir: RunsDir = Path("runs"),
    device: DeviceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Metrics of a trained run on its test split (or another split, or other data)."""
    from kcli.use.evaluate import evaluate_run, render_evaluation

    evaluation = evaluate_run(
        run, runs_dir, split=split, data=data, checkpoint=checkpoint, device=device
    )
    if not as_json:
        _plugin_notes(evaluation.run_dir)
    print_json(evaluation.to_json()) if as_json else print(render_evaluation(evaluation), end="")


def _plugin_notes(run_dir: Path) -> None:
    """Say which plugins changed since the run was trained (the run uses its own copies)."""
    from kcli.recipe.plugins import changed_plugin_notes
    from kcli.runs import read_run_record

    for note in changed_plugin_notes(read_run_record(Path(run_dir)).plugins, Path(run_dir)):
        err(f"note: {note}")


@app.command()
@reports_errors
def predict(
    run: RunArgument,
    input_path: Annotated[Path, typer.Argument(help="A .npy, .npz or .csv file of raw inputs.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write: .npy or .csv (default INPUT.predictions.npy)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Samples per batch.")
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Classifiers: write probabilities, not classes.")
    ] = False,
    checkpoint: CheckpointOption = None,
    runs_dir: RunsDir = Path("runs"),
    device: DeviceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Predictions of a trained run for new inputs, written as .npy (or .csv)."""
    from kcli.use.predict import predict_run

    done = predict_run(
        run,
        input_path,
        runs_dir,
        output=output,
        batch_size=batch_size,
        proba=proba,
        checkpoint=checkpoint,
        device=device,
    )
    if as_json:
        print_json(done.to_json())
    else:
        err(f"run: {done.run_dir}")  # which run, when RUN is a recipe name or an id prefix
        _plugin_notes(done.run_dir)
        if done.note:
            err(f"note: {done.note}")
        print(f"wrote {done.n_samples} predictions ({done.what}) to {done.output}")


@app.command()
@reports_errors
def export(
    run: RunArgument,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="onnx | torch-export | torchscript | safetensors | keras"
        ),
    ] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The file to write (default: RUN/export/NAME.EXT)."),
    ] = None,
    checkpoint: CheckpointOption = None,
    runs_dir: RunsDir = Path("runs"),
    as_json: JsonFlag = False,
) -> None:
    """A deployable artifact, checked against the run's own predictions before it is written."""
    from kcli.use.export import export_run

    done = export_run(run, runs_dir, fmt, output, checkpoint)
    if as_json:
        print_json(done.to_json())
        return
    err(f"run: {done.run_dir} ({done.checkpoint} checkpoint)")  # which run, when RUN is a name
    _plugin_notes(done.run_dir)
    print(
        f"checked on {done.n_checked} samples against the run's model: max |difference| "
        f"{done.max_abs_diff:.3g} (tolerance {done.tolerance:.3g})"
    )
    if done.folded:
        print(
            f"preprocessing folded in: {', '.join(done.folded)} (the artifact takes raw features)"
        )
    if done.note:
        print(f"note: {done.note}")
    inputs = ", ".join(f"{name} {shape}" for name, shape in done.inputs.items())
    print(f"inputs: {inputs} (batch axis dynamic); outputs: {', '.join(done.outputs)}")
    print(f"wrote {done.path}")


@app.command(name="import")
@reports_errors
def import_(
    model: Annotated[Path, typer.Argument(help="A Keras 3 .keras archive, or model.to_json().")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The recipe to write (default: MODEL.yaml)."),
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="The recipe's data.source (sklearn:NAME ...).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A recipe (and its weights, in kcli's layout) rebuilding a saved Keras model."""
    from kcli.use.keras_import import import_keras

    done = import_keras(model, output, data)
    if as_json:
        print_json(done.to_json())
        return
    for note in done.notes:
        err(f"note: {note}")
    weights = f" and {done.weights}" if done.weights else ""
    print(f"wrote {done.recipe}{weights} ({done.n_layers} layers)")


@app.command()
@reports_errors
def plot(run: RunArgument, runs_dir: RunsDir = Path("runs"), as_json: JsonFlag = False) -> None:
    """Curves of every logged metric (and weight histograms) as PNG files in the run."""
    from kcli.plots import write_plots
    from kcli.runs import resolve_run

    written = write_plots(resolve_run(run, runs_dir))
    print_json([str(p) for p in written]) if as_json else print("\n".join(map(str, written)))


@app.command()
@reports_errors
def runs(
    folder: Annotated[
        Path | None, typer.Argument(help="The runs folder (default: --runs-dir).")
    ] = None,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare", metavar="A B", help="Two runs (folders or names): recipe diff and metrics."
        ),
    ] = None,
    runs_dir: RunsDir = Path("runs"),
    as_json: JsonFlag = False,
) -> None:
    """A table of runs, newest first; or two runs compared."""
    from kcli.use.run_table import compare_runs, render_comparison, render_runs, run_rows

    where = folder or runs_dir
    if compare is not None:
        comparison = compare_runs(compare[0], compare[1], where)
        print_json(comparison) if as_json else print(render_comparison(comparison), end="")
        return
    if folder is not None and not folder.is_dir():
        raise KcliError(f"no runs folder {folder}")
    rows = run_rows(where)
    print_json(rows) if as_json else print(render_runs(rows, where), end="")
