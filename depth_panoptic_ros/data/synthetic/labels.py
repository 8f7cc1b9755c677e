"""Cityscapes label ids by class name, as the synthetic scenes write them into panoptic maps."""

from __future__ import annotations

from functools import lru_cache

from depth_panoptic_ros.classes import ClassTable


@lru_cache(maxsize=1)
def class_ids() -> dict[str, int]:
    """Cityscapes class name -> label id."""
    table = ClassTable.cityscapes()
    return dict(zip(table.names, table.ids.tolist(), strict=True))
