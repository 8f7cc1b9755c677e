"""Panoptic segments scored as KITTI 2D object detections: recall, precision and instance depth per class group.

Each predicted thing segment of a group's model classes is a detection whose box is the segment's bounding box.
Ground truth and detections are treated as the KITTI object devkit (cpp/evaluate_object.cpp) treats them at
one operating point (every segment counts; segments carry no calibrated score):

- difficulty: a labeled object counts for recall when its box height > min height, occlusion <= max occlusion
  and truncation <= max truncation (easy 40 px / 0 / 0.15, moderate 25 / 1 / 0.30, hard 25 / 2 / 0.50; each level
  includes the easier ones). A group's object that fails the limits, and a *neighboring* type, is ignored:
  a detection may be assigned to it but is then neither a true nor a false positive. Other types do not exist
  for the group (a detection on them is a false positive). DontCare regions: an unassigned detection whose box
  lies inside them by intersection / detection area >= min IoU is not a false positive.
- detections lower than the min height are ignored (never false positives; assigned only when no full-height
  detection overlaps enough).
- assignment: labels in file order; each takes the unassigned detection of highest box IoU >= min IoU.

Deviation, stated: the devkit uses IoU > threshold; this module uses >= (the same except at exactly the
threshold), and the groups merge KITTI classes (Van and Person_sitting, the devkit's neighbors of Car and
Pedestrian, count here), with Tram as the vehicles' neighbor because the model's `train` class covers trams.

Instance depth: for a true positive, the detection's depth (the segment's median depth, as the node publishes)
against the label's *near-face depth*: of the four vertical faces of the label's 3D box, take the one whose
center is nearest to the camera center; its center's depth in the evaluated camera (the homogeneous w of
P2 . [X; 1], the same depth the pipeline's depth maps hold). Relative error = (predicted - near face) / near face.
The median of the visible surface lies behind the near face for objects seen at an angle (their side recedes),
so a few per cent of positive error is expected of a perfect segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.kitti_objects import ObjectLabels, read_object_frame
from depth_panoptic_ros.products.instance_depth import InstanceDepthTable

if TYPE_CHECKING:
    from depth_panoptic_ros.frame import SensorFrame
    from depth_panoptic_ros.pipeline import Pipeline, Products

MIN_IOU = 0.5
DONT_CARE = "DontCare"

# Label and detection states (per group and difficulty), as the overlay draws them.
COUNTED, IGNORED, OTHER = 0, 1, -1  # labels: counts for recall / ignored / not of the group
TRUE_POSITIVE, FALSE_POSITIVE, IGNORED_DETECTION, IN_DONT_CARE = 0, 1, 2, 3  # detections


@dataclass(frozen=True)
class Difficulty:
    name: str
    min_height: float
    max_occlusion: int
    max_truncation: float


DIFFICULTIES = (
    Difficulty("easy", 40, 0, 0.15),
    Difficulty("moderate", 25, 1, 0.30),
    Difficulty("hard", 25, 2, 0.50),
)


@dataclass(frozen=True)
class ObjectGroup:
    """KITTI label types scored together, their ignored neighbors, and the model classes that detect them."""

    name: str
    label_types: tuple[str, ...]
    neighbor_types: tuple[str, ...]
    model_classes: tuple[str, ...]


GROUPS = (
    ObjectGroup("vehicles", ("Car", "Van", "Truck"), ("Tram",), ("car", "truck", "bus", "train")),
    ObjectGroup("persons", ("Pedestrian", "Person_sitting", "Cyclist"), (), ("person", "rider")),
)


@dataclass(frozen=True)
class Detections:
    """Predicted thing segments as boxes: box (M, 4) float64 left, top, right, bottom (continuous pixel edges);
    depth (M,) the segment's median depth (NaN without valid depth); class_name (M,); panoptic_id (M,)."""

    box: np.ndarray
    depth: np.ndarray
    class_name: np.ndarray
    panoptic_id: np.ndarray

    def __len__(self) -> int:
        return len(self.box)

    @classmethod
    def from_instances(cls, table: InstanceDepthTable, class_table: ClassTable) -> Detections:
        """Every thing segment; a half-open pixel box [x0, x1) covers the continuous edges x0 .. x1."""
        things = np.flatnonzero(table.is_thing)
        names = np.array(class_table.names, dtype=str)
        return cls(
            box=table.bbox[things].astype(np.float64),
            depth=table.depth_median[things].astype(np.float64),
            class_name=names[table.class_index[things]],
            panoptic_id=table.panoptic_id[things],
        )

    def subset(self, keep: np.ndarray) -> Detections:
        return Detections(self.box[keep], self.depth[keep], self.class_name[keep], self.panoptic_id[keep])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of (N, 4) and (M, 4) boxes (left, top, right, bottom), as the devkit."""
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def box_cover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) share of each box of ``a`` inside each box of ``b``: intersection / area of a (devkit criterion 0)."""
    inter = _intersection(a, b)
    area = _area(a)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, inter / area, 0.0)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _area(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, np.float64).reshape(-1, 4)
    return np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)


def near_face_depth(labels: ObjectLabels, P: np.ndarray) -> np.ndarray:
    """(N,) depth in the camera of P (3, 4) of the center of each label's vertical box face nearest the camera.

    Box frame (devkit): x along the length, z along the width, y down; rotation_y turns it about the camera's y;
    location is the bottom center, so face centers sit h/2 above it.
    """
    h, w, length = labels.dimensions.T
    # Face centers in the box's ground plane: front/back at +-l/2 along x, the sides at +-w/2 along z.
    fx = np.stack([length / 2, -length / 2, np.zeros_like(w), np.zeros_like(w)], axis=1)
    fz = np.stack([np.zeros_like(w), np.zeros_like(w), w / 2, -w / 2], axis=1)
    c, s = np.cos(labels.rotation_y)[:, None], np.sin(labels.rotation_y)[:, None]
    x = labels.location[:, :1] + c * fx + s * fz
    z = labels.location[:, 2:3] - s * fx + c * fz
    y = np.broadcast_to((labels.location[:, 1] - h / 2)[:, None], x.shape)
    nearest = np.argmin(x * x + y * y + z * z, axis=1)
    center = np.stack([a[np.arange(len(labels)), nearest] for a in (x, y, z)], axis=1)
    P = np.asarray(P, np.float64).reshape(3, 4)
    return center @ P[2, :3] + P[2, 3]


@dataclass
class GroupMatch:
    """One group at one difficulty in one frame.

    label_state (N,): COUNTED / IGNORED / OTHER (IGNORED too for a counted label that only a too-small
    detection overlaps: the devkit counts it neither found nor missed); label_matched (N,) bool: a true positive;
    detection_state (M,) of the group's detections: TRUE_POSITIVE / FALSE_POSITIVE / IGNORED_DETECTION /
    IN_DONT_CARE; pairs: (K, 2) label and detection index of the true positives, with their iou (K,).
    """

    label_state: np.ndarray
    label_matched: np.ndarray
    detection_state: np.ndarray
    pairs: np.ndarray
    iou: np.ndarray

    @property
    def tp(self) -> int:
        return len(self.pairs)

    @property
    def fn(self) -> int:
        return int(np.count_nonzero((self.label_state == COUNTED) & ~self.label_matched))

    @property
    def fp(self) -> int:
        return int(np.count_nonzero(self.detection_state == FALSE_POSITIVE))


def match_group(
    labels: ObjectLabels,
    detections: Detections,
    group: ObjectGroup,
    difficulty: Difficulty,
    min_iou: float = MIN_IOU,
) -> GroupMatch:
    """KITTI's assignment of ``detections`` (already the group's) to the labels; see the module docstring."""
    height = labels.box[:, 3] - labels.box[:, 1]
    in_group = np.isin(labels.type, group.label_types)
    beyond = (
        (labels.occlusion > difficulty.max_occlusion)
        | (labels.truncation > difficulty.max_truncation)
        | (height <= difficulty.min_height)
    )
    label_state = np.where(
        in_group & ~beyond, COUNTED, np.where(in_group | np.isin(labels.type, group.neighbor_types), IGNORED, OTHER)
    ).astype(np.int8)
    small = detections.box[:, 3] - detections.box[:, 1] < difficulty.min_height
    iou = box_iou(labels.box, detections.box)
    assigned = np.zeros(len(detections), bool)
    ignored_assignment = np.zeros(len(detections), bool)
    label_matched = np.zeros(len(labels), bool)
    pairs, pair_iou = [], []
    for i in np.flatnonzero(label_state != OTHER):  # objects are few: the devkit's sequential assignment
        candidate = ~assigned & (iou[i] >= min_iou)
        full = candidate & ~small
        if full.any():
            j = int(np.argmax(np.where(full, iou[i], -1.0)))
        elif candidate.any():
            j = int(np.argmax(candidate))
        else:
            continue
        assigned[j] = True
        if label_state[i] == IGNORED or small[j]:
            ignored_assignment[j] = True
            label_state[i] = IGNORED  # the devkit counts such a label neither found nor missed
        else:
            label_matched[i] = True
            pairs.append((i, j))
            pair_iou.append(iou[i, j])
    unassigned = ~assigned & ~small
    dont_care = labels.box[labels.type == DONT_CARE]
    in_dont_care = unassigned & (box_cover(detections.box, dont_care) >= min_iou).any(axis=1)
    state = np.full(len(detections), FALSE_POSITIVE, np.int8)
    state[small | ignored_assignment] = IGNORED_DETECTION
    state[in_dont_care] = IN_DONT_CARE
    state[[j for _, j in pairs]] = TRUE_POSITIVE
    return GroupMatch(
        label_state=label_state,
        label_matched=label_matched,
        detection_state=state,
        pairs=np.array(pairs, np.int64).reshape(-1, 2),
        iou=np.array(pair_iou, np.float64),
    )


@dataclass
class GroupResult:
    """A group at a difficulty in one frame: its matches and the near-face depth and predicted depth of each
    true positive (``pairs`` order); ``detections`` are the group's."""

    match: GroupMatch
    detections: Detections
    true_depth: np.ndarray
    predicted_depth: np.ndarray


@dataclass
class FrameResult:
    frame_id: str
    groups: dict[tuple[str, str], GroupResult]  # (group, difficulty) -> result

    def row(self) -> dict[str, Any]:
        """JSON-ready per-frame counts and depth errors of every group and difficulty."""
        out: dict[str, Any] = {"frame": self.frame_id}
        for (group, difficulty), result in self.groups.items():
            m = result.match
            out.setdefault(group, {})[difficulty] = {
                "tp": m.tp,
                "fp": m.fp,
                "fn": m.fn,
                "near_face_depth_m": _floats(result.true_depth),
                "predicted_depth_m": _floats(result.predicted_depth),
            }
        return out


def evaluate_frame(
    frame_id: str,
    labels: ObjectLabels,
    detections: Detections,
    P: np.ndarray,
    groups: Iterable[ObjectGroup] = GROUPS,
    difficulties: Iterable[Difficulty] = DIFFICULTIES,
    min_iou: float = MIN_IOU,
) -> FrameResult:
    """Every group at every difficulty; P is the 3x4 projection of the evaluated camera (its depth convention)."""
    near_face = near_face_depth(labels, P)
    results = {}
    for group in groups:
        own = detections.subset(np.isin(detections.class_name, group.model_classes))
        for difficulty in difficulties:
            match = match_group(labels, own, group, difficulty, min_iou)
            results[(group.name, difficulty.name)] = GroupResult(
                match, own, near_face[match.pairs[:, 0]], own.depth[match.pairs[:, 1]]
            )
    return FrameResult(frame_id, results)


@dataclass
class Summary:
    """Totals over frames per (group, difficulty)."""

    frames: int
    totals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": self.frames}
        for (group, difficulty), values in self.totals.items():
            out.setdefault(group, {})[difficulty] = values
        return out


def summarize(results: list[FrameResult]) -> Summary:
    """Recall = TP / (TP + FN), precision = TP / (TP + FP) (None when undefined), and the depth errors of the
    true positives with depth: median |relative error|, median relative error, median |error| in meters."""
    summary = Summary(frames=len(results))
    keys = list(results[0].groups) if results else []
    for key in keys:
        parts = [r.groups[key] for r in results]
        tp, fp, fn = (sum(getattr(p.match, k) for p in parts) for k in ("tp", "fp", "fn"))
        true = np.concatenate([p.true_depth for p in parts])
        predicted = np.concatenate([p.predicted_depth for p in parts])
        valid = np.isfinite(predicted) & (true > 0)
        error = predicted[valid] - true[valid]
        relative = error / true[valid]
        summary.totals[key] = {
            "objects": tp + fn,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "recall": _ratio(tp, tp + fn),
            "precision": _ratio(tp, tp + fp),
            "depth_matched": int(valid.sum()),
            "depth_median_abs_rel": _median(np.abs(relative)),
            "depth_median_rel": _median(relative),
            "depth_median_abs_m": _median(np.abs(error)),
        }
    return summary


@dataclass
class FrameEvaluation:
    """What one evaluated frame leaves for the front end: inputs, the pipeline's products and the scores."""

    frame: SensorFrame
    labels: ObjectLabels
    detections: Detections
    products: Products
    result: FrameResult


def evaluate_kitti_objects(pipeline: Pipeline, root: str | Path, frame_ids: Iterable[str]) -> Iterator[FrameEvaluation]:
    """Each frame through the deployed pipeline (LiDAR + camera, as the node runs it), then scored."""
    if pipeline.model is None:
        raise ValueError("evaluating objects needs a model: the pipeline has none")
    for frame_id in frame_ids:
        frame, labels = read_object_frame(root, frame_id)
        products = pipeline.run(frame, outputs={"instances"})
        detections = Detections.from_instances(products.instances, pipeline.class_table)
        result = evaluate_frame(frame_id, labels, detections, frame.camera.P)
        yield FrameEvaluation(frame, labels, detections, products, result)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def format_report(summary: Summary, results: list[FrameResult], difficulty: str = "moderate") -> str:
    """The totals table, then one row per frame at ``difficulty`` (TP / objects, FP per group)."""

    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        f"{summary.frames} frames; box IoU >= {MIN_IOU}; depth = segment median vs label near face",
        f"{'group':<9} {'level':<9} {'objects':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'recall':>7} {'precision':>9} "
        f"{'depth n':>7} {'|rel| med':>9} {'rel med':>8} {'|err| m':>8}",
    ]
    for (group, level), t in summary.totals.items():
        lines.append(
            f"{group:<9} {level:<9} {t['objects']:>7} {t['tp']:>4} {t['fp']:>4} {t['fn']:>4} "
            f"{number(t['recall'], '.3f'):>7} {number(t['precision'], '.3f'):>9} {t['depth_matched']:>7} "
            f"{number(t['depth_median_abs_rel'], '.3f'):>9} {number(t['depth_median_rel'], '+.3f'):>8} "
            f"{number(t['depth_median_abs_m'], '.2f'):>8}"
        )
    groups = [g for g, level in summary.totals if level == difficulty]
    lines += ["", f"Per frame ({difficulty}): TP/objects FP"]
    lines.append(f"{'frame':<10} " + " ".join(f"{g:>14}" for g in groups))
    for result in results:
        cells = []
        for g in groups:
            m = result.groups[(g, difficulty)].match
            cells.append(f"{f'{m.tp}/{m.tp + m.fn} {m.fp}':>14}")
        lines.append(f"{result.frame_id:<10} " + " ".join(cells))
    return "\n".join(lines)
