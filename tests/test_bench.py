"""bench/train_speed.py in smoke mode: it runs, trains every variant and writes its table.

No timing is asserted (shared machines vary); only that the benchmark keeps working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_run_writes_the_table(tmp_path):
    out = tmp_path / "RESULTS.md"
    # A process of its own: Keras (when installed) and kcli's seeding set torch-global state.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_speed.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "| case | kcli | hand | keras | kcli/hand |" in text
    for title in ("small MLP", "compute-bound MLP", "small CNN", "LSTM(64)", "transformer"):
        assert title in text
    assert "## Targets (issue 7)" in text and "## Machine and versions" in text
    results = json.loads(out.with_suffix(".json").read_text())
    assert set(results["cases"]) == {"mlp_digits", "mlp_compute", "cnn", "lstm", "transformer"}
    for entry in results["cases"].values():
        # one round of 2 epochs, the first dropped: one steady epoch per variant
        assert entry["times"]["kcli"]["n"] == 1 and entry["times"]["hand"]["n"] == 1
        assert entry["times"]["kcli"]["median"] > 0 and entry["times"]["hand"]["median"] > 0
    assert results["memory"]["mlp_digits"]["hand"]["peak_rss_mb"] > 0
    assert [row["n"] for row in results["linearity"]] == [80, 160, 320]  # 1/4, 1/2, all of 320
