"""KITTI object benchmark frames: labels (label_2/*.txt) and the sensor frame of image_2 + velodyne + calib.

Label lines follow the devkit's readme: type, truncated (0..1), occluded (0 visible, 1 partly, 2 largely,
3 unknown), alpha, 2D box (left, top, right, bottom; pixels of image_2), dimensions (height, width, length; m),
location (x, y, z of the box's bottom center in the rectified camera-0 frame; m), rotation_y, and an optional
score (result files). Every column is kept as one array so that the evaluation can filter objects at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_panoptic_ros.data.kitti import PathLike, read_kitti_calib, read_velodyne_bin
from depth_panoptic_ros.frame import SensorFrame

_LABEL_FIELDS = 15  # 16 with a score
SENSOR_PARTS = ("image_2", "velodyne", "calib")
FRAME_PARTS = (*SENSOR_PARTS, "label_2")
_SUFFIX = {"image_2": ".png", "velodyne": ".bin", "calib": ".txt", "label_2": ".txt"}


@dataclass(frozen=True)
class ObjectLabels:
    """The objects of one frame, one row each, in file order.

    box: (N, 4) float64 left, top, right, bottom; dimensions: (N, 3) h, w, l; location: (N, 3) x, y, z.
    """

    type: np.ndarray
    truncation: np.ndarray
    occlusion: np.ndarray
    alpha: np.ndarray
    box: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray

    def __len__(self) -> int:
        return len(self.type)

    @classmethod
    def from_rows(cls, types: list[str], values: np.ndarray) -> ObjectLabels:
        """Labels of types (N,) and the 14 numeric columns (N, 14) in file order (truncated ... rotation_y)."""
        values = np.asarray(values, np.float64).reshape(-1, _LABEL_FIELDS - 1)
        return cls(
            type=np.array(types, dtype=str).reshape(-1),
            truncation=values[:, 0],
            occlusion=values[:, 1].astype(np.int64),
            alpha=values[:, 2],
            box=values[:, 3:7],
            dimensions=values[:, 7:10],
            location=values[:, 10:13],
            rotation_y=values[:, 13],
        )


def read_object_labels(path: PathLike) -> ObjectLabels:
    """The labels of a KITTI label_2 file; a malformed line is a ValueError naming file, line and field count."""
    types, rows = [], []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (_LABEL_FIELDS, _LABEL_FIELDS + 1):
            raise ValueError(f"{path}:{line_no}: a KITTI label has 15 fields (16 with a score), got {len(fields)}")
        try:
            rows.append([float(v) for v in fields[1:_LABEL_FIELDS]])
        except ValueError as exc:
            raise ValueError(f"{path}:{line_no}: {exc}") from None
        types.append(fields[0])
    return ObjectLabels.from_rows(types, np.array(rows, np.float64))


def object_frame_ids(root: PathLike, parts: tuple[str, ...] = FRAME_PARTS) -> list[str]:
    """Ids (file stems, sorted) of the frames under ``root`` that have all ``parts`` (SENSOR_PARTS: no labels
    needed, as in KITTI's testing split); ValueError when none."""
    root = Path(root)
    missing = [part for part in parts if not (root / part).is_dir()]
    if missing:
        raise ValueError(f"{root}: not a KITTI object folder (missing {', '.join(missing)}/)")
    stems = [{p.stem for p in (root / part).glob(f"*{_SUFFIX[part]}")} for part in parts]
    ids = sorted(set.intersection(*stems))
    if not ids:
        raise ValueError(f"{root}: no frame has all of {', '.join(parts)}")
    return ids


def read_object_sensor_frame(root: PathLike, frame_id: str) -> SensorFrame:
    """The camera + LiDAR frame (image_2, velodyne, calib with P2) of one object frame, labeled or not."""
    from depth_panoptic_ros.data.images import read_rgb

    root = Path(root)
    part = {name: root / name / f"{frame_id}{_SUFFIX[name]}" for name in SENSOR_PARTS}
    rgb = read_rgb(part["image_2"])
    camera, T_cam_lidar = read_kitti_calib(part["calib"], image_size=(rgb.shape[1], rgb.shape[0]), camera=2)
    return SensorFrame(rgb=rgb, camera=camera, points=read_velodyne_bin(part["velodyne"]), T_cam_lidar=T_cam_lidar)


def read_object_frame(root: PathLike, frame_id: str) -> tuple[SensorFrame, ObjectLabels]:
    """The sensor frame and the labels (label_2) of one object frame."""
    return read_object_sensor_frame(root, frame_id), read_object_labels(Path(root) / "label_2" / f"{frame_id}.txt")
