"""`layerstudio train ... --nproc-per-node N`: the same command started N times by PyTorch's own launcher.

The launcher is ``torch.distributed.run`` (what the ``torchrun`` command runs), called in this process: it starts
``python -m engine train ...`` (the command line as typed, less the launch flags) once per process, sets each one's
rank, and stops them all when one fails or Ctrl-C arrives (it passes the signal on; each rank stops at the same
step, rank 0 saves the checkpoint, and the command ends with 130). Each process then joins the run
(engine.training.distributed.join_world) and trains with DistributedDataParallel; rank 0 alone prints and
writes files and the run history.

Across machines every machine runs the same command with its own ``--node-rank`` and the same
``--rdzv-endpoint HOST:PORT`` (a port on the machine of node 0).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from contextlib import contextmanager

from engine.controls import control
from engine.errors import TrainingError

# flag -> whether it takes a value; the flags the launcher reads, taken off the command line its processes get
LAUNCH_FLAGS = {"--nproc-per-node": True, "--nnodes": True, "--node-rank": True, "--rdzv-endpoint": True}
ENDPOINT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})")


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Several processes (torchrun and DistributedDataParallel)")
    group.add_argument("--nproc-per-node", type=int, metavar="N",
                       help="train with N processes on this machine (one per GPU; gloo on the CPU), started by "
                            "PyTorch's launcher; --batch-size stays the batch of all processes together")
    group.add_argument("--nnodes", type=int, metavar="M", help="with --nproc-per-node: the number of machines "
                       "(default 1); run the same command on each")
    group.add_argument("--node-rank", type=int, metavar="R", help="with --nnodes: this machine's number, 0 to M-1")
    group.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="with --nnodes: where the machines meet, a free port on the machine of --node-rank 0")


def launch_requested(args: argparse.Namespace) -> bool:
    return any(getattr(args, flag[2:].replace("-", "_"), None) is not None for flag in LAUNCH_FLAGS)


def check_launch(args: argparse.Namespace, batch_size: int | None = None) -> None:
    """TrainingError naming the flag when the launch flags do not make a run (or, with ``batch_size``, when the
    global batch cannot give each process a sample: said once here, not by every process)."""
    if args.nproc_per_node is None:
        given = next(flag for flag in LAUNCH_FLAGS if getattr(args, flag[2:].replace("-", "_"), None) is not None)
        raise TrainingError(f"{given} needs --nproc-per-node N: say how many processes each machine starts")
    if args.nproc_per_node < 1:
        raise TrainingError(f"--nproc-per-node must be at least 1, got {args.nproc_per_node}")
    nodes = 1 if args.nnodes is None else args.nnodes
    if nodes < 1:
        raise TrainingError(f"--nnodes must be at least 1, got {nodes}")
    if nodes > 1 and not args.rdzv_endpoint:
        raise TrainingError(f"--nnodes {nodes} needs --rdzv-endpoint HOST:PORT: a free port on the machine of "
                            "--node-rank 0, the same on every machine")
    if nodes > 1 and args.node_rank is None:
        raise TrainingError(f"--nnodes {nodes} needs --node-rank R: this machine's number, 0 to {nodes - 1}")
    if args.node_rank is not None and not 0 <= args.node_rank < nodes:
        raise TrainingError(f"--node-rank must be between 0 and {nodes - 1} (--nnodes {nodes}), got {args.node_rank}")
    if args.rdzv_endpoint and not ENDPOINT.fullmatch(args.rdzv_endpoint):
        raise TrainingError(f"--rdzv-endpoint must be HOST:PORT (e.g. node0.cluster:29500), got {args.rdzv_endpoint!r}")
    processes = args.nproc_per_node * nodes
    if batch_size is not None and batch_size < processes:
        raise TrainingError(f"{control('training.batch_size')} {batch_size} cannot be shared by {processes} processes: "
                            f"it is the batch of all processes together, so give at least {processes}")


def launcher_arguments(args: argparse.Namespace) -> list[str]:
    """torchrun's own arguments for the launch flags given (one machine: a free port found on this one)."""
    out = ["--nproc-per-node", str(args.nproc_per_node)]
    nodes = 1 if args.nnodes is None else args.nnodes
    if nodes > 1 or args.rdzv_endpoint:
        out += ["--nnodes", str(nodes), "--node-rank", str(args.node_rank or 0), "--rdzv-endpoint", args.rdzv_endpoint]
    return out


def worker_argv(argv: list[str]) -> list[str]:
    """The command line each process gets: ``argv`` without the launch flags (``--flag V`` and ``--flag=V``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_FLAGS:
            skip = "=" not in arg and LAUNCH_FLAGS[name]
            continue
        out.append(arg)
    return out


def launch(args: argparse.Namespace, argv: list[str], batch_size: int | None = None) -> int:
    """Run ``argv`` (a `layerstudio` command line) under torch.distributed.run; the exit code of the run: 0, 130
    after Ctrl-C, else the first failed process's."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from engine.cli import EXIT_INTERRUPTED

    check_launch(args, batch_size)
    # torchrun would set 1 thread per process (and warn); share this machine's cores between them instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc_per_node)))
    command = [*launcher_arguments(args), "--module", "engine", *worker_argv(argv)]
    count = args.nproc_per_node
    where = f"machine {args.node_rank} of {args.nnodes}" if (args.nnodes or 1) > 1 else "this machine"
    print(f"Starting {count} training process{'es' if count != 1 else ''} on {where} with torch.distributed.run",
          flush=True)
    try:
        run(parse_args(command))
    except SignalException as exc:  # Ctrl-C (or a kill): the launcher passed it on and waited for every rank
        print("\nInterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED if exc.sigval == signal.SIGINT else 128 + int(exc.sigval)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code < 0:  # ended by a signal
            return 128 - code
        return code
    return 0


class Unrecorded:
    """The run history's recorder on a rank other than 0: hears everything, writes nothing."""

    def __call__(self, event) -> None:
        return None

    def set_test(self, loss, accuracy) -> None:
        return None

    def set_outputs(self, weights_path=None, checkpoint_path=None) -> None:
        return None

    @contextmanager
    def recording(self):
        yield self
