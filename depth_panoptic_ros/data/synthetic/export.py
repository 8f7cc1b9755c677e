"""Synthetic frames written as a Cityscapes data set (plus KITTI-style LiDAR sweeps), for off-the-shelf tools.

Layout and encodings follow cityscapesScripts: leftImg8bit / rightImg8bit / disparity / camera / gtFine per
split and city ("synth"), instanceIds with stuff = label id and things = id * 1000 + instance, disparity
p = 256 d + 1 (0 = invalid), and the COCO panoptic JSON + PNGs that its createPanopticImgs produces.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels
from tqdm import tqdm

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.synthetic.config import SyntheticConfig
from depth_panoptic_ros.data.synthetic.generator import SyntheticFrame, generate_frame
from depth_panoptic_ros.geometry.camera import CameraModel

CITY = "synth"


def instance_ids(panoptic: np.ndarray, table: ClassTable) -> np.ndarray:
    """Cityscapes *_instanceIds.png content: label id for stuff (and void), id * 1000 + instance for things."""
    stuff = panoptic % table.label_divisor == 0
    return np.where(stuff, panoptic // table.label_divisor, panoptic).astype(np.uint16)


def disparity_png(depth: np.ndarray, fx: float, baseline_m: float) -> np.ndarray:
    """Cityscapes disparity encoding, p = 256 d + 1; 0 where depth is invalid or d does not fit in 16 bits."""
    with np.errstate(divide="ignore"):
        disparity = np.where(depth > 0, fx * baseline_m / depth, 0.0)
    encoded = np.round(disparity * 256.0 + 1.0)
    return np.where((depth > 0) & (encoded <= 65535), encoded, 0).astype(np.uint16)


def coco_panoptic(ids: np.ndarray, table: ClassTable) -> tuple[np.ndarray, list[dict]]:
    """COCO panoptic PNG (RGB, id = R + 256 G + 256^2 B) and segments_info of an instanceIds map.

    As cityscapesScripts' createPanopticImgs: segment id = instanceIds value, classes outside the evaluated
    set are left out (0 in the PNG), ids below 1000 of a thing class are crowd regions.
    """
    segments, inverse, area = np.unique(ids, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(ids.shape)
    as_panoptic = np.where(segments < table.label_divisor, segments * table.label_divisor, segments)
    label, index = as_panoptic // table.label_divisor, table.class_index(as_panoptic)
    kept = index >= 0
    rows, cols = np.indices(ids.shape)
    low = np.full((len(segments), 2), np.iinfo(np.int64).max)
    high = np.full((len(segments), 2), -1)
    for axis, coord in enumerate((cols, rows)):
        np.minimum.at(low[:, axis], inverse.ravel(), coord.ravel())
        np.maximum.at(high[:, axis], inverse.ravel(), coord.ravel())
    coded = np.where(kept, segments, 0).astype(np.int64)[inverse]
    png = np.stack([coded % 256, coded // 256 % 256, coded // 65536], axis=-1).astype(np.uint8)
    info = [
        {
            "id": int(segments[i]),
            "category_id": int(label[i]),
            "area": int(area[i]),
            "bbox": [int(low[i, 0]), int(low[i, 1]), int(high[i, 0] - low[i, 0] + 1), int(high[i, 1] - low[i, 1] + 1)],
            "iscrowd": int(segments[i] < table.label_divisor and table.is_thing[index[i]]),
        }
        for i in np.flatnonzero(kept)
    ]
    return png, info


def coco_categories() -> list[dict]:
    """The categories createPanopticImgs writes: every Cityscapes label that is evaluated."""
    return [
        {
            "id": lb.id,
            "name": lb.name,
            "color": list(lb.color),
            "supercategory": lb.category,
            "isthing": int(lb.hasInstances),
        }
        for lb in labels
        if not lb.ignoreInEval
    ]


def kitti_calib(frame: SyntheticFrame) -> str:
    """KITTI object calib file: P0..P3 (left and right rectified cameras), R0_rect, Tr_velo_to_cam."""
    right = frame.right_camera if frame.right_camera is not None else frame.camera
    matrices = {
        "P0": frame.camera.P,
        "P1": right.P,
        "P2": frame.camera.P,
        "P3": right.P,
        "R0_rect": np.eye(3),
        "Tr_velo_to_cam": frame.T_cam_lidar[:3],
    }
    return "".join(f"{key}: {' '.join(f'{v:.12e}' for v in m.ravel())}\n" for key, m in matrices.items())


def camera_json(camera: CameraModel, baseline_m: float, height_m: float) -> dict:
    """Cityscapes camera/*.json: stereo baseline and intrinsics; the camera sits level, height_m above the road."""
    return {
        "extrinsic": {"baseline": baseline_m, "pitch": 0.0, "roll": 0.0, "yaw": 0.0, "x": 0.0, "y": 0.0, "z": height_m},
        "intrinsic": {"fx": camera.fx, "fy": camera.fy, "u0": camera.cx, "v0": camera.cy},
    }


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image[..., ::-1] if image.ndim == 3 else image):
        raise OSError(f"could not write {path}")


def export_cityscapes(
    out_dir: str | Path, config: SyntheticConfig, n_frames: int, split: str = "train", *, progress: bool = False
) -> Path:
    """Writes frames 0..n_frames-1 of config under out_dir; returns out_dir.

    Per frame <name> = synth_<seed>_<index>: leftImg8bit, rightImg8bit (with stereo), disparity (ground truth for
    the rig's baseline), camera JSON, gtFine labelIds + instanceIds, the COCO panoptic PNG, and with LiDAR a
    KITTI object-style kitti/<split>/{image_2,image_3,velodyne,calib}/<index>. Split-wide: the COCO panoptic
    JSON gtFine/cityscapes_panoptic_<split>.json and gtFine/synth_look_alike_<split>.json (the look-alike pairs).
    """
    if n_frames < 1:
        raise ValueError(f"number of frames to export must be >= 1, got {n_frames}")
    if not split or not split.replace("_", "").isalnum():
        raise ValueError(f"split must be a plain name such as 'train' or 'val', got {split!r}")
    out = Path(out_dir)
    images, annotations, look_alikes = [], [], []
    for index in tqdm(range(n_frames), desc=f"synth {split}", unit="frame", disable=not progress):
        frame = generate_frame(config, index)
        name = f"{CITY}_{config.seed:06d}_{index:06d}"
        segments = _write_cityscapes(out, split, name, frame, config.rig_baseline_m)
        # file_name as createPanopticImgs derives it from the instanceIds name
        image = {"id": name, "width": frame.camera.width, "height": frame.camera.height}
        images.append(image | {"file_name": f"{name}_gtFine_leftImg8bit.png"})
        annotations.append({"image_id": name, "file_name": f"{name}_gtFine_panoptic.png", "segments_info": segments})
        look_alikes.append(
            {
                "image_id": name,
                "look_alike_pairs": frame.look_alike_pairs.tolist(),
                "same_depth_pairs": frame.same_depth_pairs.tolist(),
            }
        )
        if frame.points is not None:
            _write_kitti(out / "kitti" / split, f"{index:06d}", frame)
    coco = {"images": images, "annotations": annotations, "categories": coco_categories()}
    (out / "gtFine" / f"cityscapes_panoptic_{split}.json").write_text(json.dumps(coco, indent=4))
    (out / "gtFine" / f"synth_look_alike_{split}.json").write_text(
        json.dumps({"look_alike_min_gap_m": config.look_alike_min_gap_m, "images": look_alikes}, indent=4)
    )
    return out


def _write_cityscapes(out: Path, split: str, name: str, frame: SyntheticFrame, baseline_m: float) -> list[dict]:
    """Writes one frame's Cityscapes files; returns its COCO segments_info."""
    table = ClassTable.cityscapes()
    folder = Path(split) / CITY
    _write_png(out / "leftImg8bit" / folder / f"{name}_leftImg8bit.png", frame.rgb)
    if frame.right_rgb is not None:
        _write_png(out / "rightImg8bit" / folder / f"{name}_rightImg8bit.png", frame.right_rgb)
    disparity = disparity_png(frame.depth, frame.camera.fx, baseline_m)
    _write_png(out / "disparity" / folder / f"{name}_disparity.png", disparity)
    camera_path = out / "camera" / folder / f"{name}_camera.json"
    camera_path.parent.mkdir(parents=True, exist_ok=True)
    camera_path.write_text(json.dumps(camera_json(frame.camera, baseline_m, frame.scene.street.height), indent=4))
    ids = instance_ids(frame.panoptic, table)
    label_ids = (frame.panoptic // table.label_divisor).astype(np.uint8)
    _write_png(out / "gtFine" / folder / f"{name}_gtFine_labelIds.png", label_ids)
    _write_png(out / "gtFine" / folder / f"{name}_gtFine_instanceIds.png", ids)
    png, segments = coco_panoptic(ids, table)
    _write_png(out / "gtFine" / f"cityscapes_panoptic_{split}" / f"{name}_gtFine_panoptic.png", png)
    return segments


def _write_kitti(root: Path, stem: str, frame: SyntheticFrame) -> None:
    _write_png(root / "image_2" / f"{stem}.png", frame.rgb)
    if frame.right_rgb is not None:
        _write_png(root / "image_3" / f"{stem}.png", frame.right_rgb)
    for folder in ("velodyne", "calib"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    frame.points.astype("<f4").tofile(root / "velodyne" / f"{stem}.bin")
    (root / "calib" / f"{stem}.txt").write_text(kitti_calib(frame))
