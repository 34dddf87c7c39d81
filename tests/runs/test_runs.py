"""The run folder: names, atomic writes, run.json, metrics.csv, finding and listing runs."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
from datetime import datetime

import pytest

from kcli import files, runs
from kcli.errors import KcliError, StorageError
from kcli.runs import (
    MetricsLog,
    RunRecord,
    create_run_dir,
    list_runs,
    read_metrics,
    read_run_record,
    resolve_run,
    set_status,
    write_json_atomic,
    write_run_record,
    write_text_atomic,
)
from kcli.runs import folder as run_folder
from kcli.runs import record as run_record


def make_run(runs_dir, name, started, status="completed", checkpoint=True, run_id=None):
    """A run folder with a run.json started at `started` (ISO), optionally with last.pt."""
    stamp = re.sub(r"\D", "", started)[:14]  # 2026-01-01T10:00:00 -> 20260101100000
    run_id = run_id or f"{stamp[:8]}-{stamp[8:]}-{runs.hash_text(started)[:6]}"
    run_dir = runs_dir / name / run_id
    (run_dir / "checkpoints").mkdir(parents=True)
    record = RunRecord(
        id=run_id,
        name=name,
        status=status,
        started=started,
        seed=0,
        recipe_hash="0" * 64,
        command=["kcli", "train", f"{name}.yaml"],
        versions={"python": "3.11"},
        device="cpu",
    )
    write_run_record(run_dir, record)
    if checkpoint:
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
    return run_dir


# ---- folders and atomic writes -------------------------------------------------------------
def test_create_run_dir_layout(tmp_path):
    run_dir = create_run_dir(tmp_path / "runs", "digits-mlp")
    assert run_dir.parent == tmp_path / "runs" / "digits-mlp"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_dir.name)
    assert (run_dir / "checkpoints").is_dir()
    assert list(run_dir.iterdir()) == [run_dir / "checkpoints"]


def test_create_run_dir_is_unique_within_one_second(tmp_path, monkeypatch):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5)

    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])  # the second draw collides with the first
    monkeypatch.setattr(run_folder, "datetime", FrozenClock)
    monkeypatch.setattr(run_folder.secrets, "token_hex", lambda n: next(tokens))
    first = create_run_dir(tmp_path, "x")
    second = create_run_dir(tmp_path, "x")
    assert (first.name, second.name) == ("20260102-030405-aaaaaa", "20260102-030405-bbbbbb")


def test_create_run_dir_many_at_once_never_share(tmp_path):
    made = {create_run_dir(tmp_path, "x") for _ in range(20)}
    assert len(made) == 20


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b"])
def test_create_run_dir_refuses_names_that_are_not_one_folder(tmp_path, name):
    with pytest.raises(KcliError, match="cannot name a folder"):
        create_run_dir(tmp_path, name)


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"status": "running"})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(StorageError, match=r"cannot write .*run.json: disk full"):
        write_text_atomic(path, "garbage")
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # temp file removed


def test_write_json_atomic_round_trip(tmp_path):
    write_json_atomic(tmp_path / "a" / "eval.json", {"metrics": {"loss": 0.5}, "n": 3})
    assert json.loads((tmp_path / "a" / "eval.json").read_text()) == {
        "metrics": {"loss": 0.5},
        "n": 3,
    }


# ---- run.json ----------------------------------------------------------------------------
def test_new_run_record_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git repository
    run_dir = create_run_dir(tmp_path / "runs", "iris")
    record = runs.new_run_record(
        run_dir,
        name="iris",
        seed=7,
        recipe_hash=runs.hash_text("abc"),
        command=["kcli", "train", "iris.yaml"],
        device="cpu",
    )
    write_run_record(run_dir, record)
    back = read_run_record(run_dir)
    assert back == record
    assert back.id == run_dir.name and back.status == "running" and back.ended is None
    # sha256("abc"), the FIPS 180-2 test vector
    assert back.recipe_hash == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert back.versions["python"] == platform.python_version()
    assert set(back.versions) == {"python", "torch", "kcli", "numpy"}
    assert back.git_commit is None
    datetime.fromisoformat(back.started)  # ISO 8601


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_a_repository(tmp_path):
    def git(*args):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "first")
    assert runs.git_commit(tmp_path) == git("rev-parse", "HEAD")


def test_git_commit_without_git(monkeypatch, tmp_path):
    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(run_record.subprocess, "run", missing)
    assert runs.git_commit(tmp_path) is None


def test_set_status_and_resume_notes(tmp_path):
    run_dir = make_run(tmp_path, "x", "2026-01-01T10:00:00.000+00:00", status="running")
    done = set_status(run_dir, "failed", "TrainingDiverged: loss nan", epochs_done=3)
    assert (done.status, done.message, done.epochs_done) == (
        "failed",
        "TrainingDiverged: loss nan",
        3,
    )
    assert done.ended is not None and read_run_record(run_dir) == done
    resumed = runs.note_resumed(run_dir, 3, ["kcli", "train", "--resume", str(run_dir)])
    assert resumed.resume_count == 1 and resumed.resumed_from[0].epoch == 3
    running = set_status(run_dir, "running")
    assert running.ended is None and running.message is None and running.epochs_done == 3
    final = set_status(run_dir, "completed", epochs_done=5, final_metrics={"val_loss": 0.25})
    assert final.final_metrics == {"val_loss": 0.25} and final.resume_count == 1
    with pytest.raises(ValueError, match="status"):  # a programming error, not user input
        set_status(run_dir, "finished")
    assert read_run_record(run_dir) == final  # and run.json was not touched


def test_read_run_record_errors(tmp_path):
    with pytest.raises(KcliError, match="not a run folder"):
        read_run_record(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(KcliError, match="unreadable run record"):
        read_run_record(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"id": "x"}))
    with pytest.raises(KcliError, match="unreadable run record"):
        read_run_record(tmp_path)


# ---- metrics.csv -------------------------------------------------------------------------
ROW_KEYS_SCRAMBLED = {
    "epoch": 1,
    "seconds": 2.5,
    "val_accuracy": 0.5,
    "lr": 0.001,
    "accuracy": 0.75,
    "val_loss": 0.625,
    "loss": 0.5,
}


def test_metrics_columns_and_rows_are_on_disk_at_once(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    log.append(ROW_KEYS_SCRAMBLED)
    # Readable before anything is closed: a crash after this keeps the epoch.
    assert path.read_text() == (
        "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n1,0.5,0.75,0.625,0.5,0.001,2.5\n"
    )
    log.append({"epoch": 2, "loss": 0.25, "accuracy": 1.0, "lr": 0.001, "seconds": 1.0})
    rows = read_metrics(path)
    assert rows[0] == {k: float(v) for k, v in ROW_KEYS_SCRAMBLED.items()}
    assert rows[1]["loss"] == 0.25 and math.isnan(rows[1]["val_loss"])  # missing: empty cell
    with pytest.raises(ValueError, match="no column"):
        log.append({"epoch": 3, "loss": 0.1, "new_metric": 1.0})


def test_metrics_truncate_for_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    for epoch in range(1, 5):
        log.append({"epoch": epoch, "loss": 1.0 / epoch})
    log.truncate_to(2)
    assert [row["epoch"] for row in read_metrics(path)] == [1.0, 2.0]
    reopened = MetricsLog(path)  # a resumed run opens the existing file: its header rules
    reopened.append({"epoch": 3, "loss": 0.125})
    assert path.read_text() == "epoch,loss\n1,1.0\n2,0.5\n3,0.125\n"


def test_metrics_drop_a_line_cut_short_by_a_crash(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n1,0.5\n2,0.2")  # the crash hit while writing epoch 2
    assert [row["epoch"] for row in read_metrics(path)] == [1.0, 2.0]  # parses, though cut
    log = MetricsLog(path)
    log.append({"epoch": 2, "loss": 0.25})
    assert path.read_text() == "epoch,loss\n1,0.5\n2,0.25\n"
    assert read_metrics(tmp_path / "missing.csv") == []


# ---- resolve_run -------------------------------------------------------------------------
def test_resolve_run_by_folder_and_by_name(tmp_path):
    old = make_run(tmp_path, "mlp", "2026-01-01T10:00:00.000+00:00")
    new = make_run(tmp_path, "mlp", "2026-01-02T10:00:00.000+00:00", status="interrupted")
    assert resolve_run(str(old), tmp_path) == old
    assert resolve_run("mlp", tmp_path) == new  # the newest, of any status
    assert resolve_run("mlp", tmp_path, prefer_completed=True) == old
    assert resolve_run(str(tmp_path / "mlp"), tmp_path) == new  # a recipe's folder as a path


def test_resolve_run_newest_by_start_time_not_folder_name(tmp_path):
    # Same second in the folder name; the start time (milliseconds) decides.
    a = make_run(tmp_path, "m", "2026-01-01T10:00:00.900+00:00", run_id="20260101-100000-aaaaaa")
    make_run(tmp_path, "m", "2026-01-01T10:00:00.100+00:00", run_id="20260101-100000-ffffff")
    assert resolve_run("m", tmp_path) == a


def test_resolve_run_require_checkpoint(tmp_path):
    with_ckpt = make_run(tmp_path, "m", "2026-01-01T10:00:00.000+00:00", status="failed")
    bare = make_run(tmp_path, "m", "2026-01-02T10:00:00.000+00:00", checkpoint=False)
    assert resolve_run("m", tmp_path) == bare
    assert resolve_run("m", tmp_path, require_checkpoint=True) == with_ckpt
    with pytest.raises(KcliError, match="has no checkpoint"):
        resolve_run(str(bare), tmp_path, require_checkpoint=True)
    (with_ckpt / "checkpoints" / "last.pt").unlink()
    with pytest.raises(KcliError, match="no run with a checkpoint.*failed, no checkpoint"):
        resolve_run("m", tmp_path, require_checkpoint=True)


def test_resolve_run_by_id_or_unique_prefix(tmp_path):
    a = make_run(tmp_path, "m", "2026-01-01T10:00:00.000+00:00", run_id="20260101-100000-aaaaaa")
    b = make_run(tmp_path, "n", "2026-01-01T11:00:00.000+00:00", run_id="20260101-110000-bbbbbb")
    assert resolve_run("20260101-100000-aaaaaa", tmp_path) == a  # a whole id
    assert resolve_run("20260101-11", tmp_path) == b  # a prefix that only one run has
    with pytest.raises(KcliError, match=r"run id '20260101' matches 2 runs: m/20260101-100000"):
        resolve_run("20260101", tmp_path)
    with pytest.raises(KcliError, match="no run '20260102'"):
        resolve_run("20260102", tmp_path)


def test_resolve_run_errors_name_what_exists(tmp_path):
    make_run(tmp_path, "digits-mlp", "2026-01-01T10:00:00.000+00:00")
    make_run(tmp_path, "iris", "2026-01-01T10:00:00.000+00:00")
    with pytest.raises(KcliError) as info:
        resolve_run("digits-mpl", tmp_path)
    message = str(info.value)
    assert "did you mean 'digits-mlp'" in message and "digits-mlp, iris" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KcliError, match="not a run folder .* no runs in it"):
        resolve_run(str(empty), tmp_path)
    with pytest.raises(KcliError, match="holds no runs yet"):
        resolve_run("anything", tmp_path / "nowhere")


# ---- stale runs ----------------------------------------------------------------------------
def test_a_running_run_whose_process_is_gone_is_listed_as_stale(tmp_path):
    import platform
    import subprocess
    import sys

    from kcli.runs import summarize_run, update_run_record

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)  # that process has exited: no process has this pid now
    here = platform.node()
    cases = {
        "dead here": (dead_pid, here, "stale"),
        "alive here": (os.getpid(), here, "running"),
        "on another machine": (dead_pid, here + "-elsewhere", "running"),  # cannot be checked
    }
    for label, (pid, host, shown) in cases.items():
        run = make_run(
            tmp_path, label.replace(" ", "_"), "2026-01-01T10:00:00.000+00:00", "running"
        )
        update_run_record(run, pid=pid, host=host)
        assert summarize_run(run).status == shown, label


def test_a_new_or_resumed_run_records_its_process(tmp_path):
    import platform

    run = make_run(tmp_path, "m", "2026-01-01T10:00:00.000+00:00", status="interrupted")
    record = set_status(run, "running")  # what --resume does
    assert record.pid == os.getpid() and record.host == platform.node()


# ---- list_runs ---------------------------------------------------------------------------
def test_list_runs_newest_first_with_metrics(tmp_path):
    first = make_run(tmp_path, "a", "2026-01-01T10:00:00.000+00:00")
    set_status(first, "completed", epochs_done=3)
    (first / "metrics.csv").write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy\n1,1.0,0.5,0.9,0.5\n2,0.5,0.7,0.4,0.8\n"
        "3,0.4,0.8,0.6,0.75\n"
    )
    write_json_atomic(first / "eval.json", {"split": "test", "metrics": {"loss": 0.45}})
    second = make_run(tmp_path, "b", "2026-01-03T10:00:00.000+00:00", status="running")
    listed = list_runs(tmp_path)
    assert [s.path for s in listed] == [second, first]
    summary = listed[1]
    assert (summary.name, summary.status, summary.epochs) == ("a", "completed", 3)
    assert summary.best_val_loss == 0.4 and summary.best_val_accuracy == 0.8
    assert summary.final == {"loss": 0.4, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75}
    assert summary.test_metrics == {"loss": 0.45}
    assert summary.duration_s is not None and summary.duration_s > 0
    assert listed[0].duration_s is None and listed[0].best_val_loss is None


def test_list_runs_tolerates_broken_folders(tmp_path):
    good = make_run(tmp_path, "a", "2026-01-01T10:00:00.000+00:00")
    broken = tmp_path / "a" / "20260105-000000-abcdef"
    broken.mkdir()
    (broken / "run.json").write_text("{")
    (broken / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    no_record = tmp_path / "a" / "20260104-000000-123456"  # crashed before writing run.json
    no_record.mkdir()
    (tmp_path / "a" / "notes.txt").write_text("not a run")
    (tmp_path / "a" / "misc").mkdir()  # not a run id, no run.json: ignored
    (good / "eval.json").write_text("[1, 2")  # unreadable eval.json: no test metrics
    listed = list_runs(tmp_path)
    assert [s.id for s in listed] == [broken.name, no_record.name, good.name]
    assert [s.status for s in listed] == ["broken", "broken", "completed"]
    assert "unreadable run record" in listed[0].problem and listed[0].epochs == 1
    assert listed[2].test_metrics == {}
    assert list_runs(tmp_path / "nowhere") == []
    assert resolve_run("a", tmp_path) == good  # broken runs are never picked
