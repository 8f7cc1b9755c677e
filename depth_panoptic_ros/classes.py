"""The label space shared by the networks, the products, the evaluation and the ROS messages.

A class's *index* (its position in the table) is what networks predict; its *id* is what panoptic maps hold:
panoptic id = id * label_divisor + instance (instance >= 1 for things, 0 for stuff; 0 = void).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

LABEL_DIVISOR = 1000


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    is_thing: bool
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[ClassInfo, ...]
    label_divisor: int = LABEL_DIVISOR

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"class ids must be unique, got {ids}")
        if any(i <= 0 or i >= 2**15 for i in ids):
            raise ValueError(f"class ids must lie in 1..32767 (0 is void), got {ids}")

    def __len__(self) -> int:
        return len(self.classes)

    @cached_property
    def ids(self) -> np.ndarray:
        return np.array([c.id for c in self.classes], dtype=np.int64)

    @cached_property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @cached_property
    def colors(self) -> np.ndarray:
        """(N, 3) uint8 RGB, row = class index."""
        return np.array([c.color for c in self.classes], dtype=np.uint8).reshape(-1, 3)

    @cached_property
    def is_thing(self) -> np.ndarray:
        return np.array([c.is_thing for c in self.classes], dtype=bool)

    @cached_property
    def thing_indices(self) -> np.ndarray:
        """Class indices of things, in the order of the network's thing-center channels."""
        return np.flatnonzero(self.is_thing)

    @cached_property
    def stuff_indices(self) -> np.ndarray:
        """Class indices of stuff, in the order of the network's stuff channels."""
        return np.flatnonzero(~self.is_thing)

    @cached_property
    def index_of_id(self) -> np.ndarray:
        """Lookup table id -> class index, -1 for ids not in the table."""
        lut = np.full(int(self.ids.max(initial=0)) + 1, -1, dtype=np.int64)
        lut[self.ids] = np.arange(len(self.classes))
        return lut

    def class_index(self, panoptic_ids: np.ndarray) -> np.ndarray:
        """Class index per panoptic id (-1 for void or unknown ids), vectorized."""
        lut = np.append(self.index_of_id, -1)  # ids past the table clip onto the trailing -1; id 0 is never a class
        return np.take(lut, np.asarray(panoptic_ids, dtype=np.int64) // self.label_divisor, mode="clip")

    def to_dict(self) -> dict[str, Any]:
        return {
            "label_divisor": self.label_divisor,
            "classes": [
                {"id": c.id, "name": c.name, "is_thing": c.is_thing, "color": list(c.color)} for c in self.classes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassTable:
        try:
            classes = tuple(
                ClassInfo(int(c["id"]), str(c["name"]), bool(c["is_thing"]), tuple(int(v) for v in c["color"]))
                for c in data["classes"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"malformed class table ({exc!r}); expected classes: [{{id, name, is_thing, color}}]"
            ) from exc
        return cls(classes, int(data.get("label_divisor", LABEL_DIVISOR)))

    @classmethod
    def cityscapes(cls) -> ClassTable:
        """The 19 Cityscapes evaluation classes, from cityscapesscripts' own label table (ordered by trainId)."""
        from cityscapesscripts.helpers.labels import labels

        train = sorted((lb for lb in labels if 0 <= lb.trainId < 255), key=lambda lb: lb.trainId)
        return cls(tuple(ClassInfo(lb.id, lb.name, lb.hasInstances, tuple(lb.color)) for lb in train))
