"""Small tensor helpers for the post-processing that do not make the host wait for a GPU.

Every read of a device tensor's values on the host (``.item()``, ``bool(t)``, ``.tolist()``, a copy to the
host, a boolean index, which must count its selection to size the result) and every tensor built from host
data (a pageable host->device copy) stalls the host until the GPU has drained its queue. On the shipped model
the post-processing had ~45 of them a frame (BENCHMARKS.md, "Fewer synchronizations in the post-processing").
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch

from depth_panoptic_ros.classes import ClassTable


class ClassTensors(NamedTuple):
    """A class table's columns on a device: ids (class id per index), is_thing, and the class indices of the
    thing and stuff channels."""

    ids: torch.Tensor
    is_thing: torch.Tensor
    thing_indices: torch.Tensor
    stuff_indices: torch.Tensor


@lru_cache(maxsize=8)
def class_tensors(class_table: ClassTable, device: torch.device) -> ClassTensors:
    """Built once per class table and device: the same small tensors serve every frame without a copy."""
    columns = (class_table.ids, class_table.is_thing, class_table.thing_indices, class_table.stuff_indices)
    return ClassTensors(*(torch.as_tensor(column, device=device) for column in columns))


def label_counts(labels: torch.Tensor, count: int) -> torch.Tensor:
    """(count,) int64: how often each value of ``labels`` (integers, all in [0, count)) occurs. What
    torch.bincount gives, without its synchronization on a GPU (it reads the maximum to size its output)."""
    flat = labels.flatten().long()
    return torch.zeros(count, dtype=torch.long, device=labels.device).scatter_add_(0, flat, torch.ones_like(flat))
