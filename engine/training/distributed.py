"""Training on several processes: which one this process is (``World``), and the few collective operations a
run under PyTorch's launcher (``torchrun``, ``torch.distributed.run``) needs with ``DistributedDataParallel``.

The Trainer asks its World at the handful of places where several processes differ from one: the device
(``cuda:LOCAL_RANK``), the model's training forward (wrapped in DDP, so gradients all-reduce), each step's
shard of the global batch (rank r takes samples r, r+N, ... of it, as ``DistributedSampler`` would) and the
step's figures, reduced so every rank sees the global batch's loss and correct count and agrees when to read
them back and when to stop. ``SINGLE`` (one process, no launcher) changes nothing: its methods are never called
on the training path.

Every rank draws the same seeded permutation and builds the same initial weights, so N processes with batch
size B train exactly as one process with batch size B (up to float rounding of the gradient mean), and a
checkpoint written by rank 0 (the unwrapped model's state_dict, global step counts) resumes on any number.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from engine.controls import control
from engine.errors import TrainingError

log = logging.getLogger(__name__)

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # set by torchrun for each process it starts
TIMEOUT = datetime.timedelta(minutes=10)  # a collective that waits longer than this ends the run with an error


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes: ``rank`` of ``size``, ``local_rank`` on its machine.
    ``distributed`` is true under the launcher (even as its only process): the model trains under DDP."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes weights, checkpoints, the run history and TensorBoard."""
        return self.rank == 0

    # -- set-up
    def place(self, device: torch.device) -> torch.device:
        """The device this rank trains on: a CUDA device becomes its own GPU, ``cuda:LOCAL_RANK``."""
        if not self.distributed or device.type == "cpu":
            return device
        if device.type != "cuda":
            raise TrainingError(f"training on several processes runs on CUDA GPUs or CPUs, not on {device.type}: set "
                                f"{control('training.device')} to cuda or cpu")
        if self.local_rank >= torch.cuda.device_count():
            raise TrainingError(f"process {self.local_rank} on this machine has no GPU of its own (there are "
                                f"{torch.cuda.device_count()}): start at most that many processes per machine "
                                "(--nproc-per-node)")
        return torch.device("cuda", self.local_rank)

    def check(self, batch_size: int, samples: int) -> None:
        """TrainingError when a global batch or the training set cannot give every rank samples."""
        if not self.distributed:
            return
        if batch_size < self.size:
            raise TrainingError(f"batch size {batch_size} cannot be shared by {self.size} processes: set "
                                f"{control('training.batch_size')} to at least {self.size} (it is the batch of all "
                                "processes together)")
        if samples < self.size:
            raise TrainingError(f"{samples} training samples cannot be shared by {self.size} processes: use more "
                                "data or fewer processes")

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model's training forward: DistributedDataParallel around it (the model itself stays as it is, so its
        state_dict keys and checkpoints do not change)."""
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    # -- each step
    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's samples of a global batch: every ``size``-th, from its rank on."""
        return indices[self.rank::self.size] if self.size > 1 else indices

    def share(self, local: int, total: int) -> float:
        """The factor on this rank's mean loss that makes DDP's average of the ranks' gradients the gradient of the
        global batch's mean loss (1 when the batch divides evenly)."""
        return local * self.size / total

    def reduce_step(self, loss: torch.Tensor, correct: torch.Tensor | None, local: int, total: int, stop: bool,
                    due: bool) -> tuple[torch.Tensor, torch.Tensor | None, bool, bool]:
        """One all-reduce per step: the global batch's mean loss and correct count, and whether any rank wants to
        stop or read back now, so every rank takes the same decision at the same step."""
        import torch.distributed as dist

        parts = [loss.to(torch.float32) * (local / total),
                 (correct if correct is not None else torch.zeros((), device=loss.device)).to(torch.float32),
                 torch.tensor(float(stop), device=loss.device), torch.tensor(float(due), device=loss.device)]
        values = torch.stack(parts)
        dist.all_reduce(values)
        stop_any, due_any = values[2:].tolist()
        return values[0], (values[1] if correct is not None else None), stop_any > 0, due_any > 0

    def settle(self, model: nn.Module) -> None:
        """At an epoch's end: rank 0's buffers (BatchNorm's running statistics, which each rank updated from its
        own shard) on every rank, so validation, checkpoints and early stopping see one model."""
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer.data, 0)

    def agreed(self, *figures: float | None) -> tuple[float | None, ...]:
        """Rank 0's ``figures`` (e.g. the validation loss) on every rank: decisions that follow from them (early
        stopping, a plateau schedule) are taken alike everywhere."""
        import torch.distributed as dist

        shared = [list(figures)]
        dist.broadcast_object_list(shared, 0)
        return tuple(shared[0])

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group (at the end of a run)."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


SINGLE = World()


def launched() -> bool:
    """Whether torchrun started this process (its variables are set)."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def join_world(device_setting: str) -> World:
    """This process's World: SINGLE without the launcher; under it, the process group joined, with nccl when the
    run's device (``TrainConfig.device``) is a CUDA GPU and gloo otherwise."""
    if not launched():
        return SINGLE
    import torch.distributed as dist

    from engine.training.runtime import resolve_device

    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]), True)
    device = world.place(resolve_device(device_setting))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    log.info("Joined the run as rank %d of %d (%s on %s)", world.rank, world.size, backend, device)
    return world
