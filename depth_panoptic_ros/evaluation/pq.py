"""Panoptic quality (Kirillov et al.), computed as panopticapi and cityscapesScripts compute it.

Per image, one joint histogram of (ground-truth segment, predicted segment) pixel counts holds every
intersection the matching needs, so matching, false positives and false negatives are array operations on a
small (1 + G, 1 + P) matrix instead of Python loops over segment pairs. Rules (panopticapi ``pq_compute``):

* a pair matches when both have the same category, the ground truth is not crowd and IoU > 0.5, where the
  union leaves out the prediction's pixels on void;
* an unmatched non-crowd ground-truth segment is a false negative; unmatched crowd is ignored;
* an unmatched prediction is a false positive unless more than half of it lies on void plus the crowd region of
  its category;
* per category PQ = sum IoU(TP) / (TP + FP/2 + FN/2); categories with TP + FP + FN = 0 are left out of the means.

Two deliberate differences, neither of which changes a result on consistent data (COCO, Cityscapes): areas are
counted from the maps (panopticapi trusts the ground-truth JSON's ``area``), and a category's crowd region is the
union of its crowd segments (panopticapi keeps the last one listed; both datasets have at most one per image).
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.evaluation.panoptic_png import read_panoptic_png
from depth_panoptic_ros.evaluation.pq_compiled import count_pairs
from depth_panoptic_ros.products.segments import segment_inverse

MAX_SEGMENT_ID = 2**25  # bounds the id -> segment lookup table (COCO ids < 2**24, Cityscapes < 34000)


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    is_thing: bool


@dataclass
class Segments:
    """The segments of one panoptic map: their ids (> 0, as the map holds them), category ids and crowd flags."""

    ids: np.ndarray
    category_ids: np.ndarray
    iscrowd: np.ndarray

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        self.category_ids = np.asarray(self.category_ids, dtype=np.int64).reshape(-1)
        self.iscrowd = np.asarray(self.iscrowd, dtype=bool).reshape(-1)
        if not len(self.ids) == len(self.category_ids) == len(self.iscrowd):
            raise ValueError(
                f"segments need one category and crowd flag per id, got {len(self.ids)} ids, "
                f"{len(self.category_ids)} categories, {len(self.iscrowd)} crowd flags"
            )
        if np.any(self.ids <= 0) or np.any(self.ids >= MAX_SEGMENT_ID):
            raise ValueError(f"segment ids must lie in 1..{MAX_SEGMENT_ID - 1} (0 is void), got {self.ids.tolist()}")
        if len(np.unique(self.ids)) != len(self.ids):
            raise ValueError(f"segment ids must be unique, got {self.ids.tolist()}")

    @classmethod
    def from_coco(cls, segments_info: Sequence[dict[str, Any]]) -> Segments:
        """From a COCO panoptic annotation's ``segments_info`` (``iscrowd`` absent means 0, as in predictions)."""
        try:
            return cls(
                [s["id"] for s in segments_info],
                [s["category_id"] for s in segments_info],
                [s.get("iscrowd", 0) for s in segments_info],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed segments_info ({exc!r}); expected [{{id, category_id, iscrowd?}}]") from exc


def _lookup(segment_ids: np.ndarray) -> np.ndarray:
    """id -> 1 for void (0), 2 + k for the k-th listed segment; 0 for any other id below the table's end."""
    table = np.zeros(int(segment_ids.max(initial=0)) + 1, dtype=np.intp)
    table[0] = 1
    table[segment_ids] = np.arange(2, len(segment_ids) + 2)
    return table


def joint_histogram(
    gt_ids: np.ndarray, gt_segment_ids: np.ndarray, pred_ids: np.ndarray, pred_segment_ids: np.ndarray
) -> np.ndarray:
    """(1 + G, 1 + P) int64 pixel counts of every (gt segment, predicted segment) pair; row/column 0 is void.

    One compiled walk over the pixels counts runs over which neither id changes (pq_compiled.py); ids outside a
    segment list land in row / column 0 of the walk's table and are named in the error.
    """
    gt_ids, pred_ids = np.asarray(gt_ids), np.asarray(pred_ids)
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(
            f"ground truth and prediction maps must have the same shape, got {gt_ids.shape} and {pred_ids.shape}"
        )
    for what, ids in (("ground-truth", gt_ids), ("prediction", pred_ids)):
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{what} ids must be an integer array, got {ids.dtype}")
    counts = np.zeros((len(gt_segment_ids) + 2, len(pred_segment_ids) + 2), dtype=np.int64)
    if gt_ids.size:
        count_pairs(gt_ids.ravel(), pred_ids.ravel(), _lookup(gt_segment_ids), _lookup(pred_segment_ids), counts)
    for what, ids, segment_ids, unlisted in (
        ("ground-truth", gt_ids, gt_segment_ids, counts[0].any()),
        ("prediction", pred_ids, pred_segment_ids, counts[:, 0].any()),
    ):
        if unlisted:  # the error path: the full check of the ids
            if ids.dtype.kind == "i" and ids.min() < 0:
                raise ValueError(f"{what} ids must be >= 0, got min {ids.min()}")
            missing = np.setdiff1d(ids, np.append(segment_ids, 0))
            raise ValueError(f"{what} map holds ids missing from its segment list: {missing[:10].tolist()}")
    return counts[1:, 1:]


def cityscapes_segments(
    ids: np.ndarray, class_table: ClassTable, what: str, strict: bool = False
) -> tuple[np.ndarray, Segments]:
    """A class * label_divisor + instance map -> (map of segment numbers 1..K, their Segments), Cityscapes rules.

    Pixels of classes outside the table become void (as cityscapesScripts voids ``ignoreInEval`` classes), or
    are an error when ``strict``; a thing-class segment without an instance number is a crowd region.
    """
    segments, inverse = segment_inverse(ids)
    index = class_table.class_index(segments)
    unknown = segments[(index < 0) & (segments != 0)]
    if strict and unknown.size:
        raise ValueError(f"{what} holds ids of classes outside the class table: {unknown[:10].tolist()}")
    keep = index >= 0
    number = np.zeros(len(segments), dtype=np.int64)
    number[keep] = np.arange(1, np.count_nonzero(keep) + 1)
    crowd = class_table.is_thing[index[keep]] & (segments[keep] % class_table.label_divisor == 0)
    return np.take(number, inverse), Segments(number[keep], class_table.ids[index[keep]], crowd)


class PQAccumulator:
    """Per-category TP / FP / FN counts and summed TP IoU, accumulated image by image."""

    def __init__(self, categories: Sequence[Category]) -> None:
        self.categories = tuple(categories)
        ids = [c.id for c in self.categories]
        names = [c.name for c in self.categories]
        if len(set(ids)) != len(ids) or len(set(names)) != len(names):
            raise ValueError(f"category ids and names must be unique, got ids {ids} and names {names}")
        self._position = {c.id: i for i, c in enumerate(self.categories)}
        n = len(self.categories)
        self.iou = np.zeros(n)
        self.tp = np.zeros(n, dtype=np.int64)
        self.fp = np.zeros(n, dtype=np.int64)
        self.fn = np.zeros(n, dtype=np.int64)

    @classmethod
    def from_class_table(cls, class_table: ClassTable) -> PQAccumulator:
        return cls([Category(c.id, c.name, c.is_thing) for c in class_table.classes])

    def _positions(self, category_ids: np.ndarray, what: str) -> np.ndarray:
        unknown = sorted(set(category_ids.tolist()) - self._position.keys())
        if unknown:
            raise ValueError(f"{what} segments have unknown category ids {unknown}")
        return np.array([self._position[c] for c in category_ids.tolist()], dtype=np.int64)

    def add(self, gt_ids: np.ndarray, gt_segments: Segments, pred_ids: np.ndarray, pred_segments: Segments) -> None:
        """One image: id maps (H, W) and the segments they hold (0 = void in both)."""
        gt_cat = self._positions(gt_segments.category_ids, "ground-truth")
        pred_cat = self._positions(pred_segments.category_ids, "prediction")
        counts = joint_histogram(gt_ids, gt_segments.ids, pred_ids, pred_segments.ids)
        pred_area = counts.sum(axis=0)[1:]
        if np.any(pred_area == 0):
            absent = pred_segments.ids[pred_area == 0]
            raise ValueError(f"predicted segments listed but absent from the map: {absent[:10].tolist()}")
        gt_area = counts.sum(axis=1)[1:]
        on_void = counts[0, 1:]
        inter = counts[1:, 1:]
        crowd = gt_segments.iscrowd
        same = gt_cat[:, None] == pred_cat[None, :]

        union = pred_area[None, :] + gt_area[:, None] - inter - on_void[None, :]
        iou = np.divide(inter, union, out=np.zeros(inter.shape), where=inter > 0)  # inter > 0 => union > 0
        match = same & ~crowd[:, None] & (iou > 0.5)  # IoU > 0.5 makes a match unique per row and column
        gt_matched, pred_matched = match.any(axis=1), match.any(axis=0)

        n = len(self.categories)
        self.tp += np.bincount(gt_cat[gt_matched], minlength=n)
        self.iou += np.bincount(gt_cat, weights=(iou * match).sum(axis=1), minlength=n)
        self.fn += np.bincount(gt_cat[~gt_matched & ~crowd], minlength=n)
        on_crowd = (inter * (same & crowd[:, None])).sum(axis=0)
        ignored = (on_void + on_crowd) / pred_area > 0.5
        self.fp += np.bincount(pred_cat[~pred_matched & ~ignored], minlength=n)

    def add_ids(self, gt_ids: np.ndarray, pred_ids: np.ndarray, class_table: ClassTable) -> None:
        """One image of class * label_divisor + instance maps (see ``cityscapes_segments`` for crowd and void).

        Prediction ids of classes outside the table are an error (panopticapi rejects unknown categories).
        """
        self.add(
            *cityscapes_segments(gt_ids, class_table, "ground-truth"),
            *cityscapes_segments(pred_ids, class_table, "prediction", strict=True),
        )

    def summary(self) -> dict[str, Any]:
        """{"All" | "Things" | "Stuff": {pq, sq, rq, n}, "per_class": {name: {pq, sq, rq}}}, fractions.

        A group without any evaluated category has NaN values and n = 0 (panopticapi divides by zero there).
        """
        seen = (self.tp + self.fp + self.fn) > 0
        denominator = self.tp + 0.5 * self.fp + 0.5 * self.fn
        pq = np.divide(self.iou, denominator, out=np.zeros(len(seen)), where=seen)
        sq = np.divide(self.iou, self.tp, out=np.zeros(len(seen)), where=self.tp > 0)
        rq = np.divide(self.tp, denominator, out=np.zeros(len(seen)), where=seen)
        is_thing = np.array([c.is_thing for c in self.categories], dtype=bool)

        def mean(select: np.ndarray) -> dict[str, float]:
            n = int(np.count_nonzero(select))
            if n == 0:
                return {"pq": math.nan, "sq": math.nan, "rq": math.nan, "n": 0}
            return {
                "pq": float(pq[select].mean()),
                "sq": float(sq[select].mean()),
                "rq": float(rq[select].mean()),
                "n": n,
            }

        return {
            "All": mean(seen),
            "Things": mean(seen & is_thing),
            "Stuff": mean(seen & ~is_thing),
            "per_class": {
                c.name: {"pq": float(pq[i]), "sq": float(sq[i]), "rq": float(rq[i])}
                for i, c in enumerate(self.categories)
                if seen[i]
            },
        }


def _load_json(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} JSON not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} JSON {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{what} JSON {path} has no 'annotations' list (COCO panoptic format expected)")
    return data


def pq_compute(
    gt_json: str | Path,
    pred_json: str | Path,
    gt_folder: str | Path,
    pred_folder: str | Path,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """PQ / SQ / RQ of COCO-panoptic-format predictions against ground truth (see ``PQAccumulator.summary``).

    Categories come from the ground-truth JSON; every ground-truth image needs a prediction (matched by
    ``image_id``, an integer or a string, as it is written), extra predictions are ignored, as in panopticapi.
    ``workers`` threads (default: one per CPU) decode the PNG files a few images ahead while the matching runs;
    ``progress`` shows a progress bar on stderr.
    """
    from tqdm import tqdm

    gt, pred = _load_json(gt_json, "ground-truth"), _load_json(pred_json, "prediction")
    try:
        categories = [Category(int(c["id"]), str(c["name"]), bool(c["isthing"])) for c in gt["categories"]]
        predictions = {a["image_id"]: a for a in pred["annotations"]}
        pairs = [(a, predictions.get(a["image_id"])) for a in gt["annotations"]]
        files = [(Path(gt_folder) / a["file_name"], Path(pred_folder) / p["file_name"]) for a, p in pairs if p]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"malformed COCO panoptic JSON ({exc!r}); expected categories[{{id, name, isthing}}] "
            f"and annotations[{{image_id, file_name, segments_info}}]"
        ) from exc
    missing = [a["image_id"] for a, p in pairs if p is None]
    if missing:
        raise ValueError(f"no prediction for ground-truth image ids {missing[:10]}")
    accumulator = PQAccumulator(categories)
    maps = tqdm(_decoded_pairs(files, workers or os.cpu_count() or 1), "PQ", len(pairs), disable=not progress)
    for (gt_ann, pred_ann), (gt_ids, pred_ids) in zip(pairs, maps, strict=True):
        try:
            accumulator.add(
                gt_ids,
                Segments.from_coco(gt_ann["segments_info"]),
                pred_ids,
                Segments.from_coco(pred_ann["segments_info"]),
            )
        except KeyError as exc:
            raise ValueError(f"image {gt_ann['image_id']}: annotation lacks {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"image {gt_ann['image_id']}: {exc}") from exc
    return accumulator.summary()


def _decoded_pairs(files: list[tuple[Path, Path]], workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The maps of each (ground truth, prediction) PNG pair in order, decoded by ``workers`` threads at most
    ``workers`` images ahead (the decoding kernel and OpenCV release the GIL; the lead bounds the memory held)."""
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[tuple[Future, Future]] = deque()
        for k in range(len(files)):
            while len(pending) <= workers and k + len(pending) < len(files):
                gt_path, pred_path = files[k + len(pending)]
                pending.append((pool.submit(read_panoptic_png, gt_path), pool.submit(read_panoptic_png, pred_path)))
            gt_ids, pred_ids = pending.popleft()
            yield gt_ids.result(), pred_ids.result()


def format_table(result: dict[str, Any]) -> str:
    """Per-class rows, then All / Things / Stuff, in percent like panopticapi's printout."""
    width = max([len(name) for name in result["per_class"]] + [6])
    lines = [f"{'':<{width}} | {'PQ':>6} {'SQ':>6} {'RQ':>6} {'N':>4}", "-" * (width + 31)]
    for name, values in result["per_class"].items():
        lines.append(f"{name:<{width}} | {100 * values['pq']:6.1f} {100 * values['sq']:6.1f} {100 * values['rq']:6.1f}")
    lines.append("-" * (width + 31))
    for group in ("All", "Things", "Stuff"):
        values = result[group]
        row = " ".join(f"{100 * values[key]:6.1f}" for key in ("pq", "sq", "rq"))
        lines.append(f"{group:<{width}} | {row} {values['n']:>4}")
    return "\n".join(lines)
