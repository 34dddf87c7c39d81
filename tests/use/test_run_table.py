"""`kcli runs` (newest first, headline metrics, --compare) and `kcli plot`."""

from __future__ import annotations

import csv
import json
import shutil

from tests.trained import cli, runs_dir, trained, workspace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def copy_run(source, runs, run_id, started):
    """A copy of a trained run under `runs/<recipe>/<run_id>` that says it started at `started`."""
    target = runs / source.parent.name / run_id
    shutil.copytree(source, target)
    record = json.loads((target / "run.json").read_text())
    record.update(id=run_id, started=started)
    (target / "run.json").write_text(json.dumps(record))
    return target


def test_runs_are_listed_newest_first(tmp_path):
    runs = tmp_path / "runs"
    old = copy_run(trained("mlp"), runs, "20260101-100000-aaaaaa", "2026-01-01T10:00:00+00:00")
    new = copy_run(trained("csv"), runs, "20260201-100000-bbbbbb", "2026-02-01T10:00:00+00:00")
    result = cli("runs", runs, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["id"] for row in rows] == [new.name, old.name]
    table = cli("runs", runs).stdout
    assert table.index(new.name) < table.index(old.name) and "completed" in table


def test_best_val_and_test_metric_are_the_runs_own():
    result = cli("runs", "--runs-dir", runs_dir(), "--json")
    row = next(r for r in json.loads(result.stdout) if r["path"] == str(trained("mlp")))
    with (trained("mlp") / "metrics.csv").open() as handle:
        values = [float(r["val_accuracy"]) for r in csv.DictReader(handle)]
    # accuracy: higher is better, so the best epoch is the one with the largest val_accuracy
    assert row["best_val"]["metric"] == "val_accuracy"
    assert row["best_val"]["value"] == max(values)
    assert row["best_val"]["epoch"] == values.index(max(values)) + 1
    test = json.loads((trained("mlp") / "eval.json").read_text())["metrics"]["accuracy"]
    assert row["test"] == {"metric": "test_accuracy", "value": test}
    assert row["recipe"] == "mlp" and row["epochs"] == 2 and row["duration_s"] > 0


def test_gate_result_and_final_weights_are_listed(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    plain = copy_run(trained("mlp"), runs, "20260101-100000-aaaaaa", "2026-01-01T10:00:00+00:00")
    gated = copy_run(trained("mlp"), runs, "20260102-100000-bbbbbb", "2026-01-02T10:00:00+00:00")
    failed = copy_run(trained("mlp"), runs, "20260103-100000-cccccc", "2026-01-03T10:00:00+00:00")
    for run, message in ((gated, None), (failed, "expect accuracy >= 0.99: got 0.5000")):
        recipe = run / "recipe.yaml"
        recipe.write_text(recipe.read_text() + "expect:\n  accuracy: '>= 0.99'\n")
        record = json.loads((run / "run.json").read_text())
        record["message"] = message
        (run / "run.json").write_text(json.dumps(record))
    rows = {row["id"]: row for row in json.loads(cli("runs", runs, "--json").stdout)}
    assert rows[plain.name]["gates"] == "none"
    assert rows[gated.name]["gates"] == "pass"
    assert rows[failed.name]["gates"] == "FAIL"
    expected = json.loads((plain / "eval.json").read_text())["checkpoint"]
    assert rows[plain.name]["checkpoint"] == expected
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal: the ids still come out whole
    table = cli("runs", runs).stdout
    assert all(run.name in table for run in (plain, gated, failed))
    assert max(len(line) for line in table.splitlines()) <= 60


def test_compare_shows_the_recipe_diff_and_both_metrics():
    recipe = workspace() / "mlp.yaml"
    trained("mlp")  # writes the recipe
    result = cli("train", recipe, "fit.batch_size=32", "--runs-dir", workspace() / "other", "-q")
    assert result.exit_code in (0, 1), result.output
    other = next((workspace() / "other" / "mlp").iterdir())
    result = cli("runs", "--compare", trained("mlp"), other, "--json")
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    changed = [line for line in comparison["recipe_diff"].splitlines() if line[:1] in "+-"]
    changed = [line for line in changed if not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and all("batch_size" in line for line in changed)
    finals = [
        json.loads((d / "run.json").read_text())["final_metrics"] for d in (trained("mlp"), other)
    ]
    assert comparison["metrics"]["test_accuracy"] == [f["test_accuracy"] for f in finals]
    text = cli("runs", "--compare", trained("mlp"), other).stdout
    assert "batch_size: 16" in text and "batch_size: 32" in text and "B - A" in text


def test_plot_writes_pngs(tmp_path):
    run = copy_run(
        trained("mlp"), tmp_path / "runs", "20260101-100000-cccccc", "2026-01-01T10:00:00"
    )
    shutil.rmtree(run / "plots")
    result = cli("plot", run)
    assert result.exit_code == 0, result.output
    written = result.stdout.split()
    names = sorted(p.rsplit("/", 1)[-1] for p in written)
    assert {"loss.png", "accuracy.png", "lr.png", "weights.png"} <= set(names)
    for path in written:
        data = open(path, "rb").read()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_bad_input(tmp_path):
    for args in (
        ("runs", tmp_path / "nothing"),
        ("plot", tmp_path),
        ("runs", "--compare", trained("mlp"), "no-such-run", "--runs-dir", tmp_path),
    ):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and result.stderr.strip()
