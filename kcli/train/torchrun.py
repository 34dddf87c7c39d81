"""torch.distributed.run, as `kcli train --nproc-per-node N` starts it: quiet when a rank fails.

torch's launcher ends a run in which a process failed by raising ChildFailedError, which
prints its own Python traceback and a failure table under the messages kcli's processes have
already printed (exit 2 for bad input: a missing data file, found by every rank). Here the
launcher runs as usual, and a failed process ends it with that process's exit code and nothing
more: kcli's own message is the one the user reads. Run as `python -m kcli.train.torchrun ARGS`
with torch.distributed.run's own arguments.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # The launcher logs each stop of a process ("Sending process ... closing signal"): noise
    # once kcli has said why it stopped.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(get_args_parser().parse_args(argv))
    except ChildFailedError as failed:
        _, failure = failed.get_first_failure()
        code = failure.exitcode
        return code if code > 0 else 1  # a process killed by a signal: a failed run
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
