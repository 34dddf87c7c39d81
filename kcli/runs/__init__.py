"""The `runs` stage: the run folder. Create it, record its status, find and list runs again.

Takes a runs folder and a recipe name, gives run folders and their records. Entry points:
`create_run_dir` (training) and `resolve_run` (every command that takes RUN).

Layout (CLI.md): `runs/<name>/<YYYYmmdd-HHMMSS>-<6 hex>/` with run.json (a `RunRecord`),
metrics.csv (one row per epoch, `MetricsLog`), recipe.yaml, checkpoints/, eval.json ...
A RUN argument is a run folder or a recipe name; a name means that recipe's newest run
(`resolve_run`). No torch here: `kcli runs` lists runs without loading it.

The modules: `folder` (file names, creating the folder), `record` (run.json),
`metrics_csv` (metrics.csv), `preprocess_file` (preprocess.json), `lookup` (resolving a RUN
argument), `listing` (`kcli runs` rows).
Every public name is re-exported here, so callers keep using `kcli.runs.<name>`.
"""

from kcli.files import regular_file_mode, write_json_atomic, write_text_atomic
from kcli.runs.folder import (
    EVAL_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    RUN_FILE,
    RUN_ID,
    create_run_dir,
    now_iso,
)
from kcli.runs.listing import RunSummary, list_runs, summarize_run
from kcli.runs.lookup import resolve_run
from kcli.runs.metrics_csv import MetricsLog, order_columns, read_metrics
from kcli.runs.preprocess_file import PREPROCESS_FILE, read_preprocessing
from kcli.runs.record import (
    Resume,
    RunRecord,
    Status,
    git_commit,
    hash_text,
    new_run_record,
    note_resumed,
    read_run_record,
    set_status,
    update_run_record,
    write_run_record,
)

__all__ = [
    "EVAL_FILE",
    "LAST_CHECKPOINT",
    "METRICS_FILE",
    "PREPROCESS_FILE",
    "RUN_FILE",
    "RUN_ID",
    "MetricsLog",
    "Resume",
    "RunRecord",
    "RunSummary",
    "Status",
    "create_run_dir",
    "git_commit",
    "hash_text",
    "list_runs",
    "new_run_record",
    "note_resumed",
    "now_iso",
    "order_columns",
    "read_metrics",
    "read_preprocessing",
    "read_run_record",
    "regular_file_mode",
    "resolve_run",
    "set_status",
    "summarize_run",
    "update_run_record",
    "write_json_atomic",
    "write_run_record",
    "write_text_atomic",
]
