"""KITTI depth completion as samples (depth only, no panoptic labels), in the devkit's own folder layouts.

- splits "train" / "val": ``root/<split>/<drive>/proj_depth/{velodyne_raw,groundtruth}/<camera>/<frame>.png``
  (data_depth_velodyne.zip and data_depth_annotated.zip unpacked into one root), with the images and the
  per-date calibration of the raw recordings: ``raw_root/<date>/<drive>/<camera>/data/<frame>.png`` and
  ``raw_root/<date>/calib_cam_to_cam.txt``. Frames are those with ground truth.
- split "val_selection_cropped": the devkit's 1000 validation crops,
  ``root/depth_selection/val_selection_cropped/{image,velodyne_raw,groundtruth_depth,intrinsics}``.

Depth PNGs are uint16 meters * 256, 0 = none (depth_panoptic_ros.data.kitti.read_depth_png).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_panoptic_ros.data.images import read_rgb
from depth_panoptic_ros.data.kitti import read_depth_png
from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.geometry.camera import CameraModel

SPLITS = ("train", "val", "val_selection_cropped")
SELECTION = Path("depth_selection") / "val_selection_cropped"


@dataclass(frozen=True)
class KittiDepthData:
    root: str = ""
    raw_root: str = ""  # raw recordings (images, calibration); not needed for val_selection_cropped
    camera: str = "image_02"

    def __post_init__(self) -> None:
        if not self.root:
            raise ValueError("kitti_depth root is empty: set it to the folder holding train/ and val/")
        if self.camera not in ("image_02", "image_03"):
            raise ValueError(f"kitti_depth camera must be image_02 or image_03, got {self.camera!r}")

    def open(self, split: str) -> KittiDepthSamples:
        if split not in SPLITS:
            raise ValueError(f"kitti_depth split must be one of {SPLITS}, got {split!r}")
        if split == "val_selection_cropped":
            return KittiDepthSamples(*_selection_frames(Path(self.root)))
        if not self.raw_root:
            raise ValueError(f"kitti_depth split {split!r} needs raw_root (the raw recordings: images + calibration)")
        return KittiDepthSamples(*_drive_frames(Path(self.root), Path(self.raw_root), split, self.camera))


@dataclass(frozen=True)
class _Frame:
    name: str
    image: Path
    sparse: Path
    groundtruth: Path


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ValueError(f"kitti_depth: {what} folder {path} is missing")
    return path


def read_rect_projection(path: Path, camera: str) -> np.ndarray:
    """(3, 4) P_rect_0X of a raw recording's calib_cam_to_cam.txt (its other lines are not all numeric)."""
    key = f"P_rect_{camera[-2:]}:"
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read KITTI calibration {path}: {exc.strerror}") from exc
    for line in lines:
        if line.startswith(key):
            values = line[len(key) :].split()
            if len(values) != 12:
                raise ValueError(f"{path}: {key} expects 12 values, got {len(values)}")
            return np.array(values, dtype=np.float64).reshape(3, 4)
    raise ValueError(f"{path}: no {key} line")


def _drive_frames(root: Path, raw_root: Path, split: str, camera: str) -> tuple[list[_Frame], dict[str, np.ndarray]]:
    """Frames with ground truth, and P_rect per frame name, from the devkit's drive folders."""
    frames, projection_of_date, projections = [], {}, {}
    for gt in sorted(_require_dir(root / split, f"{split}").glob(f"*/proj_depth/groundtruth/{camera}/*.png")):
        drive_dir = gt.parents[3]
        drive, date = drive_dir.name, drive_dir.name[:10]
        name = f"{drive}_{camera}_{gt.stem}"
        sparse = drive_dir / "proj_depth" / "velodyne_raw" / camera / gt.name
        image = raw_root / date / drive / camera / "data" / gt.name
        if date not in projection_of_date:
            projection_of_date[date] = read_rect_projection(raw_root / date / "calib_cam_to_cam.txt", camera)
        frames.append(_Frame(name, image, sparse, gt))
        projections[name] = projection_of_date[date]
    if not frames:
        raise ValueError(f"kitti_depth: no ground truth under {root / split}/*/proj_depth/groundtruth/{camera}/")
    return frames, projections


def _selection_frames(root: Path) -> tuple[list[_Frame], dict[str, np.ndarray]]:
    """The cropped validation selection; its intrinsics/*.txt hold the 3 x 3 K of each crop."""
    base = root / SELECTION
    folders = {
        k: _require_dir(base / k, "val_selection_cropped") for k in ("image", "velodyne_raw", "groundtruth_depth")
    }
    intrinsics = _require_dir(base / "intrinsics", "val_selection_cropped")
    frames, projections = [], {}
    for image in sorted(folders["image"].glob("*_image_*.png")):
        name = image.stem.replace("_image_", "_", 1)
        sparse = folders["velodyne_raw"] / image.name.replace("_image_", "_velodyne_raw_", 1)
        gt = folders["groundtruth_depth"] / image.name.replace("_image_", "_groundtruth_depth_", 1)
        K_path = intrinsics / f"{image.stem}.txt"
        try:
            K = np.loadtxt(K_path, dtype=np.float64).reshape(3, 3)
        except (OSError, ValueError) as exc:
            raise ValueError(f"kitti_depth: cannot read a 3 x 3 K from {K_path}: {exc}") from exc
        frames.append(_Frame(name, image, sparse, gt))
        projections[name] = np.hstack([K, np.zeros((3, 1))])
    if not frames:
        raise ValueError(f"kitti_depth: no images in {folders['image']}")
    return frames, projections


class KittiDepthSamples(Sequence[Sample]):
    """sparse = velodyne_raw, depth = groundtruth; panoptic None (the benchmark has no labels)."""

    def __init__(self, frames: list[_Frame], projections: dict[str, np.ndarray]) -> None:
        self.frames, self.projections = frames, projections

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        frame = self.frames[index]
        for path in (frame.image, frame.sparse, frame.groundtruth):
            if not path.is_file():
                raise ValueError(f"kitti_depth {frame.name}: file {path} is missing")
        rgb = read_rgb(frame.image)
        height, width = rgb.shape[:2]
        P = self.projections[frame.name]
        camera = CameraModel.from_matrices(width, height, P[:, :3], P)
        sparse, depth = read_depth_png(frame.sparse), read_depth_png(frame.groundtruth)
        return Sample(frame.name, rgb, sparse, depth, None, camera)
