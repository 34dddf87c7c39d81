"""The benchmark's other measurements: start-up, import time, whole process, matmul ceiling,
peak memory (each variant in its own process) and the machine description."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
HEAVY = ("torch", "numpy", "sklearn", "scipy", "pandas", "matplotlib")


def kcli_command() -> list[str]:
    """How to start kcli in a fresh process: the installed script beside this Python, if any."""
    script = Path(sys.executable).parent / "kcli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kcli"]


def timed_process(argv: list[str], repeats: int, cwd: Path | None = None) -> float:
    """Median wall seconds of running `argv` to completion (output discarded)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup(repeats: int) -> dict[str, float]:
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    return {
        "kcli --help": timed_process([*kcli_command(), "--help"], repeats),
        "kcli validate recipes/quickstart.yaml": timed_process(
            [*kcli_command(), "validate", recipe], repeats
        ),
        "python -c pass": timed_process([sys.executable, "-c", "pass"], repeats),
    }


def import_findings(args: list[str]) -> dict[str, object]:
    """`python -X importtime -m kcli ARGS`: heavy packages imported, and the slowest imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kcli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(2)), len(match.group(3)), match.group(4)))
    modules = {name for _, _, name in rows}
    heavy = sorted(h for h in HEAVY if h in modules)
    top_level = sorted((r for r in rows if r[1] <= 1), reverse=True)[:5]
    return {
        "heavy": heavy,
        "slowest": [f"{name} {micros / 1000:.0f} ms" for micros, _, name in top_level],
        "total_ms": sum(micros for micros, depth, _ in rows if depth <= 1) / 1000,
    }


def whole_process(repeats: int) -> dict[str, float]:
    """`kcli train recipes/quickstart.yaml` vs the hand-written script, same epoch count."""
    runs_dir = Path(tempfile.mkdtemp(prefix="kcli-bench-runs-"))
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    argv = [*kcli_command(), "train", recipe, "--quiet", "--runs-dir", str(runs_dir)]
    kcli_time = timed_process(argv, repeats)
    metrics = sorted(runs_dir.glob("*/*/metrics.csv"))
    epochs = max(1, len(metrics[-1].read_text().splitlines()) - 1) if metrics else 15
    hand = [sys.executable, str(BENCH / "quickstart_by_hand.py"), "--epochs", str(epochs)]
    return {"kcli train": kcli_time, "hand script": timed_process(hand, repeats), "epochs": epochs}


def matmul_gflops(threads: int | None = None) -> dict[str, float]:
    """GFLOP/s of plain float32 matmuls: a 2048^2 square and the compute case's 256x512x512."""
    import torch

    results = {}
    for label, (m, k, n), reps in (
        ("2048x2048x2048", (2048, 2048, 2048), 5),
        ("256x512x512", (256, 512, 512), 400),
    ):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(reps):
                a @ b
            samples.append((time.perf_counter() - start) / reps)
        results[label] = 2.0 * m * k * n / min(samples) / 1e9  # best: the machine's ceiling
    return results


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark.

    Linux: VmHWM of /proc/self/status (the new address space's own peak: ru_maxrss would still
    hold the forking parent's peak). Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def memory_in_subprocess(case: str, variant: str, scale: str, epochs: int) -> dict | None:
    """Peak RSS of one variant training one case, alone in a fresh process."""
    argv = [
        sys.executable,
        str(BENCH / "train_speed.py"),
        "--worker",
        variant,
        "--cases",
        case,
        "--epochs",
        str(epochs),
        "--scale",
        scale,
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if done.returncode == 0 and lines else None


def machine() -> dict[str, str]:
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
    try:
        import keras

        info["keras"] = f"{keras.__version__} (backend {keras.backend.backend()})"
    except Exception:
        info["keras"] = "not installed"
    try:
        info["load average (1 min) at start"] = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        pass
    return info
