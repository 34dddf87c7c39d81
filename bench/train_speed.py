"""kcli's training loop against a hand-written PyTorch loop and Keras 3, on five cases.

    python bench/train_speed.py                 # the full run (~10 min on 2 cores): RESULTS.md
    python bench/train_speed.py --smoke --out /tmp/r.md   # tiny sizes, one round (CI)

In one process the variants train interleaved (kcli, hand, keras, kcli, hand, keras ...), so
machine drift hits all of them alike; each round trains a fresh model for `--epochs` epochs and
the first epoch of every round (warm-up) is dropped. Reported: the median epoch, and the
fastest one, a steadier view on a shared machine. Peak memory is measured with each variant
alone in a fresh process (`--worker`). See bench/RESULTS.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras
sys.path.insert(0, str(Path(__file__).resolve().parent))

import extras  # noqa: E402
import report  # noqa: E402
from cases import CASES, make_case  # noqa: E402
from runners import HandRunner, KcliRunner, KerasRunner, keras_available, scratch_dir  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round, no extras")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per round (default 4)")
    parser.add_argument("--no-keras", action="store_true", help="leave Keras out")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="only the A/B table: no start-up, memory, compile ... sections",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--scale", default=None, choices=["full", "smoke"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.scale = args.scale or ("smoke" if args.smoke else "full")
    args.rounds = args.rounds or (1 if args.smoke else 3)
    args.epochs = args.epochs or (2 if args.smoke else 4)
    args.cases = [name.strip() for name in args.cases.split(",") if name.strip()]
    return args


def steady(epochs: list[float]) -> list[float]:
    """The epochs after the first of a round (the first pays warm-up and allocation)."""
    return epochs[1:] if len(epochs) > 1 else epochs


def interleaved(runners: list, rounds: int, epochs: int, log) -> dict[str, list[float]]:
    """Steady epoch seconds per runner, trained A B C, B C A, C A B, ... for `rounds` rounds.

    The order rotates because a variant runs measurably slower right after a heavy one (Keras
    leaves the caches and the allocator in another state): with a fixed order the same variant
    would always pay for it.
    """
    times: dict[str, list[float]] = {runner.name: [] for runner in runners}
    for r in range(rounds):
        shift = r % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            got = steady(runner.train(epochs))
            times[runner.name] += got
            log(f"  round {r + 1} {runner.name:>6}: " + " ".join(f"{t:.3f}" for t in got))
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "best": min(times), "n": len(times)}


def run_worker(args: argparse.Namespace) -> None:
    """One variant, one case, alone in this process: print its peak RSS as JSON."""
    case = make_case(args.cases[0], args.scale)
    runner = {
        "kcli": lambda: KcliRunner(case, scratch_dir()),
        "hand": lambda: HandRunner(case),
        "keras": lambda: KerasRunner(case),
    }[args.worker]()
    runner.train(args.epochs)
    print(json.dumps({"peak_rss_mb": extras.peak_rss_mb()}))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return {}
    started = time.perf_counter()

    def log(message: str) -> None:
        print(message, flush=True)

    with_keras = not args.no_keras and keras_available()
    results: dict = {"machine": extras.machine(), "args": vars(args).copy(), "cases": {}}
    results["args"]["out"] = str(args.out)
    if not with_keras:
        log("keras is not importable with the torch backend: its column is left out")
    work = scratch_dir()

    def save() -> None:
        """Write what is measured so far: a run cut short still leaves its tables."""
        results["seconds"] = time.perf_counter() - started
        results["machine"]["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
        args.out.write_text(report.render(results))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))

    for name in args.cases:
        case = make_case(name, args.scale)
        log(f"{case.title}: {case.n_train} train samples")
        runners = [KcliRunner(case, work), HandRunner(case)]
        if with_keras:
            runners.append(KerasRunner(case))
        times = interleaved(runners, args.rounds, args.epochs, log)
        entry = {"title": case.title, "times": {k: summary(v) for k, v in times.items()}}
        if case.forward_flops_per_sample():
            # Training costs ~3 forward passes (forward, two backward matmuls), validation one.
            flops = case.forward_flops_per_sample() * (3 * case.n_train + len(case.x_val))
            entry["flops_per_epoch"] = flops
        results["cases"][name] = entry
        save()
    if not args.no_extras and not args.smoke:
        extra_sections(args, results, work, log, save)
    elif args.smoke:
        smoke_extras(args, results, work, log)
    save()
    log(f"wrote {args.out} in {results['seconds']:.0f} s")
    return results


def variants(case, work: Path, rounds: int, epochs: int, log) -> dict[str, dict]:
    """fit.compile and bf16-mixed, each against kcli's default, interleaved."""
    runners = [
        KcliRunner(case, work),
        KcliRunner(case, work, compile=True),
        KcliRunner(case, work, precision="bf16-mixed"),
    ]
    for runner, label in zip(runners, ("fp32", "compile", "bf16-mixed"), strict=True):
        runner.name = label
    out: dict[str, dict] = {}
    for runner in runners:  # the first (compiling) epoch, timed once, outside the rounds
        try:
            first = runner.train(1)[0]
        except Exception as error:  # torch.compile may fail on a machine without a compiler
            log(f"  {runner.name} failed: {type(error).__name__}: {error}")
            out[runner.name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
            continue
        out[runner.name] = {"first_epoch": first}
    ok = [r for r in runners if "error" not in out[r.name]]
    for name, times in interleaved(ok, rounds, epochs, log).items():
        out[name].update(summary(times))
    return out


def smoke_extras(args, results, work, log) -> None:
    """The cheap extras, so CI exercises their code: memory of one variant, matmul, linearity."""
    name = args.cases[0]
    results["memory"] = {name: {"hand": extras.memory_in_subprocess(name, "hand", "smoke", 1)}}
    results["matmul"] = extras.matmul_gflops()
    case = make_case(name, "smoke")
    results["linearity"] = linearity(case, work, 1, 2, log)


def linearity(case, work: Path, rounds: int, epochs: int, log) -> list[dict]:
    rows = []
    for fraction in (0.25, 0.5, 1.0):
        sized = case.resized(int(case.n_train * fraction))
        log(f"linearity: {sized.n_train} samples")
        times = interleaved([KcliRunner(sized, work), HandRunner(sized)], rounds, epochs, log)
        rows.append({"n": sized.n_train, **{k: summary(v)["best"] for k, v in times.items()}})
    return rows


def extra_sections(args, results, work: Path, log, save) -> None:
    log("start-up")
    results["startup"] = extras.startup(repeats=5)
    results["importtime"] = {
        "--help": extras.import_findings(["--help"]),
        "validate": extras.import_findings(["validate", "recipes/quickstart.yaml"]),
    }
    log("whole process: kcli train recipes/quickstart.yaml vs the hand script")
    results["whole_process"] = extras.whole_process(repeats=2)
    save()
    log("matmul ceiling")
    results["matmul"] = extras.matmul_gflops()
    log("peak memory (one process per variant)")
    memory: dict = {}
    for name in args.cases:
        memory[name] = {}
        for variant in ("kcli", "hand", "keras"):
            if variant == "keras" and "keras" not in results["cases"][name]["times"]:
                continue
            memory[name][variant] = extras.memory_in_subprocess(name, variant, args.scale, 2)
    results["memory"] = memory
    save()
    if "mlp_compute" in args.cases:
        results["linearity"] = linearity(make_case("mlp_compute", args.scale), work, 2, 3, log)
        save()
    log("fit.compile and bf16-mixed")
    results["variants"] = {}
    for name in args.cases:
        log(f"variants: {name}")
        results["variants"][name] = variants(make_case(name, args.scale), work, 1, 3, log)
        save()


if __name__ == "__main__":
    main()
