"""`kcli train --nproc-per-node N`: start the run's processes under torch.distributed.run.

The launching kcli re-runs its own command line, minus the launcher options, in N processes;
it marks the run failed if a rank dies before it could say so itself (kcli/fit/distributed.py
has what each of those processes does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kcli import runs
from kcli.errors import KcliError
from kcli.fit.distributed import EXIT_CODE_FILE_ENV, RUN_DIR_FILE_ENV


def launch(
    argv: list[str],
    nproc_per_node: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> int:
    """Run `kcli <argv>` in `nproc_per_node` processes under torch.distributed.run."""
    with tempfile.TemporaryDirectory(prefix="kcli-launch-") as folder:
        run_dir_file = Path(folder) / "run_dir"
        command = [
            sys.executable,
            "-m",
            "kcli.train.torchrun",  # torch.distributed.run, without its traceback on failure
            f"--nproc-per-node={nproc_per_node}",
        ]
        if nnodes > 1:
            if not rdzv_endpoint:
                raise KcliError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT")
            command += [
                f"--nnodes={nnodes}",
                f"--node-rank={node_rank}",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={rdzv_endpoint}",
            ]
        else:
            command.append("--standalone")
        command += ["-m", "kcli", *argv]
        exit_code_file = Path(folder) / "exit_code"
        env = {
            **os.environ,
            RUN_DIR_FILE_ENV: str(run_dir_file),
            EXIT_CODE_FILE_ENV: str(exit_code_file),
        }
        # Split the cores between the processes (torch's launcher would otherwise pick 1 and
        # print a banner about it).
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc_per_node)))
        try:
            code = subprocess.call(command, env=env)
        except KeyboardInterrupt:
            code = 130
        if code == 0 and exit_code_file.exists():
            code = int(exit_code_file.read_text() or 0)
        if code != 0 and run_dir_file.exists():
            run_dir = Path(run_dir_file.read_text())
            record = runs.read_run_record(run_dir)
            # A rank that died before it could say so leaves `running`; the others, stopped by
            # the launcher's SIGTERM when it died, say `interrupted`. Either way the run failed,
            # unless the user stopped it (Ctrl-C here: 130, and every rank saw it too).
            stopped_by_user = code == 130
            if record.status == "running" or (
                record.status == "interrupted" and not stopped_by_user
            ):
                runs.set_status(
                    run_dir,
                    "failed",
                    f"a process of the distributed run exited with {code}; the others were "
                    "stopped (the last checkpoint is kept)",
                )
        return code


def strip_launcher_options(argv: list[str]) -> list[str]:
    """The command line minus the options that start the launcher (the workers must not)."""
    with_value = {"--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint"}
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in with_value:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out
