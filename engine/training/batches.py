"""A run's data on its training device: each split moved there once and kept, batches cut in an epoch's
order by indexing (or through a DataLoader when the samples stream from disk), and inputs prepared as the
model takes them."""
from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from engine.training.distributed import SINGLE, World

Batch = tuple[torch.Tensor, torch.Tensor]


class DeviceData:
    """The splits of a DataBundle on ``device``; ``reshape`` when samples must take the design's
    ``input_shape`` (same size), ``channels_last`` for image batches in that memory format. With several
    processes (``world``, engine.training.distributed) each training batch is this rank's shard of the global one."""

    def __init__(self, data, input_shape: tuple[int, ...], device: torch.device, reshape: bool,
                 channels_last: bool, batch_size: int, seed: int, world: World = SINGLE):
        self.data, self.input_shape, self.device = data, tuple(input_shape), device
        self.reshape, self.channels_last = reshape, channels_last
        self.batch_size, self.seed = batch_size, seed
        self.shard = world.shard
        self.streaming = bool(getattr(data, "streaming", False))
        self.reconstruct = data.task == "reconstruction"  # the targets are the inputs
        self._splits: dict[str, Batch] = {}

    def split(self, name: str) -> Batch:
        """The split's inputs (as stored: batches go through model_inputs) and targets on the training
        device, moved once and kept."""
        if name not in self._splits:
            x, y = getattr(self.data, f"{name}_x"), getattr(self.data, f"{name}_y")
            same = y is x
            x = x.to(self.device)
            y = x if same else y.to(self.device)
            if y.is_floating_point() and y is not x:
                y = y.to(torch.float32)
            self._splits[name] = (x, y)
        return self._splits[name]

    def model_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of stored samples as the model takes them: enlarged (DataBundle.model_inputs), reshaped."""
        x = self.data.model_inputs(x)
        if self.reshape:
            x = x.reshape(x.shape[0], *self.input_shape)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def epoch_batches(self, perm: torch.Tensor, first: int, steps: int, epoch: int) -> Iterator[Batch]:
        """(inputs, targets) on the device for steps ``first`` to ``steps`` of an epoch, in ``perm``'s order;
        ``epoch`` (0-based) seeds the workers of a streaming DataLoader."""
        size = self.batch_size
        if not self.streaming:
            x, y = self.split("train")
            perm = perm.to(self.device)
            for step in range(first, steps):
                idx = self.shard(perm[step * size:(step + 1) * size])
                xb = self.model_inputs(x.index_select(0, idx))
                yield xb, (xb if self.reconstruct else y.index_select(0, idx))
            return
        batches = [self.shard(perm[step * size:(step + 1) * size]).tolist() for step in range(first, steps)]
        dataset = self.data.train_dataset
        # worker processes pay off when samples are decoded from files, not for tensors already in memory
        in_memory = isinstance(dataset, torch.utils.data.TensorDataset)
        workers = 0 if in_memory else max(0, min(4, (os.cpu_count() or 1) - 1))
        # its own generator: a DataLoader otherwise draws its workers' base seed from the global RNG (dropout's)
        seeds = torch.Generator().manual_seed((self.seed + epoch) % 2**63)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                                             pin_memory=self.device.type == "cuda", generator=seeds)
        for xb, yb in loader:
            xb = self.model_inputs(xb.to(self.device, non_blocking=True))
            yield xb, (xb if self.reconstruct else yb.to(self.device, non_blocking=True))

    def in_order(self, split: str, size: int) -> Iterator[Batch]:
        """(inputs, targets) of a whole split in its stored order, ``size`` samples at a time (evaluation)."""
        x, y = self.split(split)
        for start in range(0, x.shape[0], size):
            xb = self.model_inputs(x[start:start + size])
            yield xb, (xb if self.reconstruct else y[start:start + size])

    def release(self) -> None:
        """Drop the device copies (after an out-of-memory); the next use moves them again."""
        self._splits.clear()
