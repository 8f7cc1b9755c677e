"""Segment lookup shared by the per-frame products: which segment each pixel belongs to."""

from __future__ import annotations

import numpy as np

from depth_panoptic_ros.classes import ClassTable

# Ids up to this bound (class id < ~1000 at label divisor 1000) are looked up through a dense table of this many
# entries, ~3x faster than hashing; larger ids take np.unique's hash path.
DENSE_LOOKUP_LIMIT = 1 << 20


def check_panoptic_ids(panoptic_ids: np.ndarray) -> np.ndarray:
    """The map as an (H, W) non-negative integer array, or a ValueError saying what was passed instead."""
    ids = np.asarray(panoptic_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"panoptic_ids: expected an (H, W) integer array, got shape {ids.shape} dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"panoptic_ids: expected ids >= 0 (0 = void), got minimum {ids.min()}")
    return ids


def segment_inverse(panoptic_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted segment ids, (H, W) index of each pixel's segment), what np.unique(return_inverse=True) gives.

    np.unique sorts all pixels; a 1024x2048 map holds only tens of segments, so a histogram or hash of the ids
    plus a table lookup per pixel is several times faster, and every product starts from this lookup.
    """
    ids = check_panoptic_ids(panoptic_ids)
    top = int(ids.max(initial=0))
    if top >= DENSE_LOOKUP_LIMIT:
        segments = np.sort(np.unique(ids, sorted=False))
        return segments, np.searchsorted(segments, ids)
    segments = np.flatnonzero(np.bincount(ids.ravel(), minlength=1)).astype(ids.dtype)
    lookup = np.zeros(top + 1, np.intp)
    lookup[segments] = np.arange(len(segments))
    return segments, np.take(lookup, ids)


def segment_class_index(segments: np.ndarray, class_table: ClassTable) -> np.ndarray:
    """Class index of each segment id (-1 for void), or a ValueError naming ids whose class is not in the table."""
    index = class_table.class_index(segments)
    unknown = segments[(index < 0) & (segments != 0)]
    if unknown.size:
        raise ValueError(
            f"panoptic ids {unknown[:8].tolist()} have class ids not in the class table {class_table.ids.tolist()}"
        )
    return index
