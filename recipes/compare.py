"""Train the optimizer and activation families of recipes/compare.yaml and print one table.

Each variant is the same recipe with overrides only (`compile.optimizer=sgd`, or the hidden
layers' `activation`), trained by `kcli train` under its own run name (`compare-sgd`,
`compare-act-tanh`, ...), so `kcli runs RUNS_DIR` lists them side by side afterwards. Optimizers
keep Keras' defaults (SGD's learning rate is 0.01, Adadelta's 0.001, ...): the table shows how
they behave as a Keras user gets them, not tuned. The base recipe's `expect` gate is reported
per variant (pass / FAIL); a failed gate is a result here, not an error.

    python recipes/compare.py                      # both families, runs under ./runs
    python recipes/compare.py --family optimizers --jobs 2 --runs-dir /tmp/families
    python recipes/compare.py --smoke              # one epoch, two variants per family (tests)

Exit status: 0 when every variant trained (whatever its gate said), 2 when one could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

RECIPE = Path(__file__).resolve().parent / "compare.yaml"
OPTIMIZERS = ["SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "Nadam", "Adamax"]
ACTIVATIONS = ["relu", "leaky_relu", "elu", "selu", "gelu", "silu", "tanh", "sigmoid", "softplus"]
HIDDEN_LAYERS = (0, 1)  # the layers of compare.yaml whose activation the family changes
COLUMNS = ["loss", "accuracy", "val_accuracy", "test_accuracy"]


@dataclass
class Variant:
    """One run of the family: a run name and the overrides that make it."""

    name: str
    overrides: list[str]
    returncode: int | None = None
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    failed_gates: list[str] = field(default_factory=list)
    error: str = ""


def family(kind: str) -> list[Variant]:
    """The variants of one family: `optimizers` or `activations`."""
    if kind == "optimizers":
        return [
            Variant(f"compare-{name.lower()}", [f"compile.optimizer={name}"]) for name in OPTIMIZERS
        ]
    return [
        Variant(
            f"compare-act-{name}",
            [f"model.layers.{i}.activation={name}" for i in HIDDEN_LAYERS],
        )
        for name in ACTIVATIONS
    ]


def train(variant: Variant, runs_dir: Path, extra: list[str], threads: int | None) -> Variant:
    """Run `kcli train` for one variant (a child process) and keep its --json result."""
    command = [sys.executable, "-m", "kcli", "train", str(RECIPE), f"name={variant.name}"]
    command += [*variant.overrides, *extra, "--runs-dir", str(runs_dir), "--json", "--quiet"]
    env = dict(os.environ)
    if threads is not None:  # parallel jobs: one thread each, or they fight over the cores
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    variant.seconds = time.perf_counter() - start
    variant.returncode = done.returncode
    if done.returncode in (0, 1) and done.stdout.strip():
        result = json.loads(done.stdout)
        variant.metrics = result["metrics"]
        variant.failed_gates = result.get("failed_gates", [])
    else:
        variant.error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
    return variant


def table(variants: list[Variant]) -> str:
    """A plain-text table: one row per variant, the final metrics and the gate's verdict."""
    header = ["run", "gate", *COLUMNS, "seconds"]
    rows = []
    for v in variants:
        if v.error:
            rows.append([v.name, "ERROR", v.error, *[""] * (len(COLUMNS) - 1), f"{v.seconds:.1f}"])
            continue
        gate = "FAIL" if v.failed_gates else "pass"
        cells = [f"{v.metrics[c]:.4f}" if c in v.metrics else "-" for c in COLUMNS]
        rows.append([v.name, gate, *cells, f"{v.seconds:.1f}"])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train the chosen families, print their tables; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["optimizers", "activations", "all"], default="all")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--jobs", type=int, default=1, help="Variants trained at once.")
    parser.add_argument(
        "--smoke", action="store_true", help="One epoch, two variants per family (a quick check)."
    )
    parser.add_argument("overrides", nargs="*", help="Extra KEY=VALUE overrides for every run.")
    args = parser.parse_args(argv)
    kinds = ["optimizers", "activations"] if args.family == "all" else [args.family]
    extra = list(args.overrides)
    if args.smoke:
        extra.append("fit.epochs=1")
    threads = 1 if args.jobs > 1 else None
    status = 0
    for kind in kinds:
        variants = family(kind)[:2] if args.smoke else family(kind)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            done = list(pool.map(lambda v: train(v, args.runs_dir, extra, threads), variants))
        print(f"\n{kind} ({RECIPE.name}, runs in {args.runs_dir})")
        print(table(done))
        if any(v.error for v in done):
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
