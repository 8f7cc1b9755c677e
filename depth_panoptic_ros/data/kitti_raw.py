"""A KITTI raw drive as camera + LiDAR frames: image_02/<id>.png, velodyne_points/<id>.bin and one calib.txt.

KITTI's raw downloads keep the files under image_02/data/ and velodyne_points/data/; both layouts are read.
The calibration is one file in the object benchmark's format (P2, R0_rect, Tr_velo_to_cam), valid for the drive.
"""

from __future__ import annotations

from pathlib import Path

from depth_panoptic_ros.data.kitti import PathLike, read_kitti_calib, read_velodyne_bin
from depth_panoptic_ros.frame import SensorFrame


def _folder(root: Path, name: str) -> Path:
    return root / name / "data" if (root / name / "data").is_dir() else root / name


def raw_frame_ids(root: PathLike) -> list[str]:
    """Ids (file stems, sorted) of the frames with both an image and a sweep; ValueError when there are none."""
    root = Path(root)
    if not (root / "calib.txt").is_file():
        raise ValueError(f"{root}: no calib.txt (P2, R0_rect, Tr_velo_to_cam in the KITTI object format)")
    images = {p.stem for p in _folder(root, "image_02").glob("*.png")}
    sweeps = {p.stem for p in _folder(root, "velodyne_points").glob("*.bin")}
    ids = sorted(images & sweeps)
    if not ids:
        raise ValueError(f"{root}: no frame has both image_02/<id>.png and velodyne_points/<id>.bin")
    return ids


def read_raw_frame(root: PathLike, frame_id: str) -> SensorFrame:
    from depth_panoptic_ros.data.images import read_rgb

    root = Path(root)
    rgb = read_rgb(_folder(root, "image_02") / f"{frame_id}.png")
    camera, T_cam_lidar = read_kitti_calib(root / "calib.txt", image_size=(rgb.shape[1], rgb.shape[0]), camera=2)
    points = read_velodyne_bin(_folder(root, "velodyne_points") / f"{frame_id}.bin")
    return SensorFrame(rgb=rgb, camera=camera, points=points, T_cam_lidar=T_cam_lidar)
