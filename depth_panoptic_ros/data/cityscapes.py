"""Cityscapes as samples: leftImg8bit, depth from the shipped disparity, panoptic ground truth in the COCO
format that cityscapesScripts' createPanopticImgs writes (gtFine/cityscapes_panoptic_<split>.json + PNGs).

Disparity PNGs hold p = 256 d + 1 (0 = invalid); depth = fx * baseline / d with camera/*.json's fx and
baseline. The measured depth is that stereo depth (the paper fed precomputed stereo depth too), or with
depth_source "sgbm" the package's own SGBM on leftImg8bit + rightImg8bit, i.e. what the deployed node computes
from a stereo camera; the ground-truth depth is the shipped disparity's either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.images import read_rgb
from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.evaluation.pq import read_panoptic_png
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.stereo import stereo_depth

DEPTH_SOURCES = ("disparity", "sgbm")


@dataclass(frozen=True)
class CityscapesData:
    root: str = ""
    depth_source: str = "disparity"

    def __post_init__(self) -> None:
        if not self.root:
            raise ValueError("cityscapes root is empty: set it to the folder holding leftImg8bit/, disparity/, ...")
        if self.depth_source not in DEPTH_SOURCES:
            raise ValueError(f"cityscapes depth_source must be one of {DEPTH_SOURCES}, got {self.depth_source!r}")

    def open(self, split: str) -> CityscapesSamples:
        return CityscapesSamples(Path(self.root), split, self.depth_source)


def read_camera_json(path: Path) -> tuple[float, float, float, float, float]:
    """(fx, fy, cx, cy, baseline) from a Cityscapes camera/*.json."""
    try:
        data = json.loads(path.read_text())
        intrinsic = data["intrinsic"]
        fx, fy, cx, cy = (float(intrinsic[k]) for k in ("fx", "fy", "u0", "v0"))
        return fx, fy, cx, cy, float(data["extrinsic"]["baseline"])
    except OSError as exc:
        raise ValueError(f"cannot read camera file {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"camera file {path}: needs intrinsic.fx/fy/u0/v0 and extrinsic.baseline ({exc!r})") from exc


def disparity_to_depth(encoded: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Cityscapes disparity PNG values -> float32 meters; p <= 1 (no disparity) -> 0."""
    disparity = (encoded.astype(np.float32) - 1) / 256
    depth = np.zeros(encoded.shape, np.float32)
    np.divide(np.float32(fx * baseline), disparity, out=depth, where=disparity > 0)
    return depth


def panoptic_from_coco(
    coco_ids: np.ndarray, segments_info: Sequence[dict[str, Any]], class_of_category: dict[int, int], table: ClassTable
) -> np.ndarray:
    """COCO panoptic segment ids -> int32 class id * label_divisor + instance.

    Things get instance numbers 1, 2, ... per class in segment id order; crowd regions and stuff instance 0;
    categories outside the class table are void (as cityscapesScripts voids ignoreInEval labels).
    """
    segment_ids = np.array([s["id"] for s in segments_info], dtype=np.int64)
    classes = np.array([class_of_category.get(s["category_id"], 0) for s in segments_info], dtype=np.int64)
    crowd = np.array([bool(s.get("iscrowd", 0)) for s in segments_info], dtype=bool)
    index = table.index_of_id[classes]
    instance_like = (classes > 0) & table.is_thing[index] & ~crowd
    group = np.where(instance_like, classes, -1)  # ranks are counted within each class
    order = np.lexsort((segment_ids, group))
    sorted_group = group[order]
    first = np.searchsorted(sorted_group, sorted_group, side="left")
    instance = np.zeros(len(order), np.int64)
    instance[order] = np.arange(len(order)) - first + 1
    values = classes * table.label_divisor + instance * instance_like
    value_of = dict(zip(segment_ids.tolist(), values.tolist(), strict=True))
    value_of[0] = 0
    present, inverse = np.unique(coco_ids, return_inverse=True)
    missing = [i for i in present.tolist() if i not in value_of]
    if missing:
        raise ValueError(f"panoptic PNG holds segment ids missing from segments_info: {missing[:10]}")
    return np.array([value_of[i] for i in present.tolist()], np.int32)[inverse].reshape(coco_ids.shape)


class CityscapesSamples(Sequence[Sample]):
    """The annotated frames of one split (those listed in its panoptic JSON), sorted by name."""

    def __init__(self, root: Path, split: str, depth_source: str = "disparity") -> None:
        self.root, self.split, self.depth_source = root, split, depth_source
        self.table = ClassTable.cityscapes()
        folders = ["leftImg8bit", "disparity", "camera", f"gtFine/cityscapes_panoptic_{split}"]
        folders += ["rightImg8bit"] if depth_source == "sgbm" else []
        for folder in folders:
            path = root / folder if folder.startswith("gtFine") else root / folder / split
            if not path.is_dir():
                hint = " (run cityscapesscripts' csCreatePanopticImgs)" if folder.startswith("gtFine") else ""
                raise ValueError(f"cityscapes {split}: folder {path} is missing{hint}")
        json_path = root / "gtFine" / f"cityscapes_panoptic_{split}.json"
        try:
            coco = json.loads(json_path.read_text())
            id_of_name = {c.name: c.id for c in self.table.classes}
            self.class_of_category = {c["id"]: id_of_name.get(c["name"], 0) for c in coco["categories"]}
            self.annotations = sorted(coco["annotations"], key=lambda a: a["image_id"])
        except OSError as exc:
            raise ValueError(f"cityscapes {split}: cannot read {json_path}: {exc.strerror}") from exc
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"cityscapes {split}: {json_path} is not a COCO panoptic JSON ({exc!r})") from exc

    def __len__(self) -> int:
        return len(self.annotations)

    def _path(self, folder: str, name: str, suffix: str) -> Path:
        return self.root / folder / self.split / name.split("_")[0] / f"{name}_{suffix}"

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        annotation = self.annotations[index]
        name = annotation["image_id"]
        rgb = read_rgb(self._path("leftImg8bit", name, "leftImg8bit.png"))
        height, width = rgb.shape[:2]
        fx, fy, cx, cy, baseline = read_camera_json(self._path("camera", name, "camera.json"))
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        camera = CameraModel.from_matrices(width, height, K)
        disparity_path = self._path("disparity", name, "disparity.png")
        encoded = cv2.imread(str(disparity_path), cv2.IMREAD_UNCHANGED)
        if encoded is None or encoded.shape != (height, width) or encoded.dtype != np.uint16:
            got = "unreadable" if encoded is None else f"{encoded.dtype} {encoded.shape}"
            raise ValueError(f"{disparity_path}: expected a uint16 disparity PNG of {(height, width)}, got {got}")
        depth = disparity_to_depth(encoded, fx, baseline)
        sparse = depth
        if self.depth_source == "sgbm":
            right = read_rgb(self._path("rightImg8bit", name, "rightImg8bit.png"))
            P = np.hstack([K, [[-fx * baseline], [0], [0]]])
            sparse = stereo_depth(rgb, right, camera, CameraModel.from_matrices(width, height, K, P))
        panoptic_dir = self.root / "gtFine" / f"cityscapes_panoptic_{self.split}"
        coco_ids = read_panoptic_png(panoptic_dir / annotation["file_name"])
        try:
            panoptic = panoptic_from_coco(coco_ids, annotation["segments_info"], self.class_of_category, self.table)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"cityscapes {self.split} {name}: {exc}") from exc
        return Sample(name, rgb, sparse, depth, panoptic, camera)
