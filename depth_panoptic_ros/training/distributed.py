"""Data-parallel training as torchrun launches it, and the sample stream every process reads its share of.

``torchrun --nproc_per_node N $(which depth-panoptic-train) ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT; without them the run is a single process and no process group is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from depth_panoptic_ros.device import torch_device

ORDER_STREAM, AUGMENT_STREAM = 0, 1  # distinct seed sequences for the sample order and the augmentation


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only this process writes logs, images and checkpoints."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" = this process's GPU when CUDA is available, else the CPU; "cuda" = cuda:<local rank>."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch_device(name, "run.device")


@contextmanager
def distributed_session(device: str) -> Iterator[DistributedContext]:
    """The process group of a torchrun launch (nccl on CUDA, gloo on CPU) for the duration of the block."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    context = DistributedContext(rank, world_size, local_rank, resolve_device(device, local_rank))
    if world_size == 1:
        yield context
        return
    if context.device.type == "cuda":
        torch.cuda.set_device(context.device)
    dist.init_process_group("nccl" if context.device.type == "cuda" else "gloo")
    try:
        yield context
    finally:
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext) -> nn.Module:
    """DistributedDataParallel in a multi-process run (gradients averaged, replicas kept identical)."""
    if context.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


class StreamSampler(torch.utils.data.Sampler):
    """Endless (position, index) pairs: each epoch visits the data set in a permutation seeded by the epoch.

    Iteration i's global batch is positions [i * B * W, (i + 1) * B * W) of that stream (B per process, W
    processes); process r takes the r-th slice of B. The position also seeds the sample's augmentation, so a
    run resumed at iteration i reads exactly the batches an uninterrupted run would have read.
    """

    def __init__(
        self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, start_iteration: int = 0
    ) -> None:
        if length < 1:
            raise ValueError("the training split is empty: nothing to sample")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size, self.start_iteration = rank, world_size, start_iteration
        self._epoch, self._order = -1, np.empty(0, np.int64)

    def index(self, position: int) -> int:
        epoch = position // self.length
        if epoch != self._epoch:
            self._epoch, self._order = (
                epoch,
                np.random.default_rng([self.seed, ORDER_STREAM, epoch]).permutation(self.length),
            )
        return int(self._order[position % self.length])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for iteration in count(self.start_iteration):
            first = (iteration * self.world_size + self.rank) * self.batch_size
            for position in range(first, first + self.batch_size):
                yield position, self.index(position)
