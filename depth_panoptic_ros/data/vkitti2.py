"""Virtual KITTI 2 as samples, with its classes mapped onto the Cityscapes label space.

Layout (the vkitti_2.0.3_{rgb,depth,classSegmentation,instanceSegmentation,textgt} archives unpacked into one
root): ``<root>/<scene>/<variation>/frames/rgb/<camera>/rgb_<frame>.jpg``, ``.../depth/<camera>/depth_<frame>.png``
(uint16 centimeters; 65535 = sky), ``.../classSegmentation/<camera>/classgt_<frame>.png`` (one color per class),
``.../instanceSegmentation/<camera>/instancegt_<frame>.png`` (palette index = track id + 1, 0 = none) and
``<root>/<scene>/<variation>/intrinsic.txt``. The data set has no LiDAR: as PanDepth, a random 5% of the pixels
is the measured depth and a disjoint 20% the ground truth, drawn per frame from a seed and the frame's name.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.images import read_rgb
from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.geometry.camera import CameraModel

SPLITS = ("train", "val")
CENTIMETERS = 100.0
SKY_DEPTH_PNG = 65535
# VKITTI2 colors.txt -> Cityscapes class name; None = void (guard rails and misc have no evaluated class).
CLASS_COLORS = {
    (210, 0, 200): "terrain",
    (90, 200, 255): "sky",
    (0, 199, 0): "vegetation",  # Tree
    (90, 240, 0): "vegetation",
    (140, 140, 140): "building",
    (100, 60, 100): "road",
    (250, 100, 255): None,  # GuardRail
    (255, 255, 0): "traffic sign",
    (200, 200, 0): "traffic light",
    (255, 130, 0): "pole",
    (80, 80, 80): None,  # Misc
    (160, 60, 60): "truck",
    (255, 127, 80): "car",
    (0, 139, 139): "car",  # Van: Cityscapes counts vans as cars
    (0, 0, 0): None,  # Undefined
}


@dataclass(frozen=True)
class VKitti2Data:
    """No official split exists; the defaults hold Scene20 out for validation."""

    root: str = ""
    train_scenes: tuple[str, ...] = ("Scene01", "Scene02", "Scene06", "Scene18")
    val_scenes: tuple[str, ...] = ("Scene20",)
    variations: tuple[str, ...] = ("clone",)
    camera: str = "Camera_0"
    input_fraction: float = 0.05
    gt_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.root:
            raise ValueError("vkitti2 root is empty: set it to the folder holding Scene01/, Scene02/, ...")
        if self.input_fraction <= 0 or self.gt_fraction <= 0 or self.input_fraction + self.gt_fraction > 1:
            raise ValueError(
                f"vkitti2 needs input_fraction, gt_fraction > 0 with a sum <= 1, "
                f"got {self.input_fraction} and {self.gt_fraction}"
            )
        if self.camera not in ("Camera_0", "Camera_1"):
            raise ValueError(f"vkitti2 camera must be Camera_0 or Camera_1, got {self.camera!r}")

    def open(self, split: str) -> VKitti2Samples:
        if split not in SPLITS:
            raise ValueError(f"vkitti2 split must be one of {SPLITS}, got {split!r}")
        scenes = self.train_scenes if split == "train" else self.val_scenes
        return VKitti2Samples(self, scenes)


def read_intrinsics(path: Path) -> dict[tuple[int, int], np.ndarray]:
    """(frame, camera id) -> 3 x 3 K from intrinsic.txt (header, then rows frame cameraID fx fy cx cy)."""
    try:
        rows = np.loadtxt(path, skiprows=1, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ValueError(f"vkitti2: cannot read intrinsics {path}: {exc}") from exc
    if rows.shape[1] != 6:
        raise ValueError(f"vkitti2: {path} rows must be 'frame cameraID fx fy cx cy', got {rows.shape[1]} columns")
    return {
        (int(frame), int(cam)): np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        for frame, cam, fx, fy, cx, cy in rows.tolist()
    }


def panoptic_from_vkitti2(class_rgb: np.ndarray, instance: np.ndarray, table: ClassTable) -> np.ndarray:
    """Class colors + track ids (+1) -> int32 Cityscapes panoptic ids; thing pixels without a track are crowd."""
    id_of_name = {c.name: c.id for c in table.classes}
    colors = np.array(list(CLASS_COLORS), dtype=np.int64)
    class_ids = np.array([0 if n is None else id_of_name[n] for n in CLASS_COLORS.values()], dtype=np.int64)
    packed_colors = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    order = np.argsort(packed_colors)
    packed = (class_rgb[..., 0].astype(np.int64) << 16) | (class_rgb[..., 1].astype(np.int64) << 8) | class_rgb[..., 2]
    position = np.minimum(np.searchsorted(packed_colors[order], packed), len(order) - 1)
    known = packed_colors[order][position] == packed
    if not known.all():
        unknown = np.unique(class_rgb[~known].reshape(-1, 3), axis=0)[:5].tolist()
        raise ValueError(f"class colors {unknown} are not VKITTI2 classes")
    classes = class_ids[order][position]
    if instance.max(initial=0) >= table.label_divisor:
        raise ValueError(f"track ids up to {instance.max() - 1} do not fit below label divisor {table.label_divisor}")
    thing = table.is_thing[table.index_of_id[classes]] & (classes > 0)
    return (classes * table.label_divisor + np.where(thing, instance, 0)).astype(np.int32)


class VKitti2Samples(Sequence[Sample]):
    def __init__(self, config: VKitti2Data, scenes: tuple[str, ...]) -> None:
        self.config, self.table = config, ClassTable.cityscapes()
        root = Path(config.root)
        self.frames: list[tuple[Path, int]] = []  # (variation folder, frame number)
        self.intrinsics: dict[Path, dict[tuple[int, int], np.ndarray]] = {}
        for scene in scenes:
            for variation in config.variations:
                folder = root / scene / variation
                rgb_dir = folder / "frames" / "rgb" / config.camera
                if not rgb_dir.is_dir():
                    raise ValueError(f"vkitti2: folder {rgb_dir} is missing")
                self.intrinsics[folder] = read_intrinsics(folder / "intrinsic.txt")
                self.frames += [(folder, int(p.stem.split("_")[1])) for p in sorted(rgb_dir.glob("rgb_*.jpg"))]
        if not self.frames:
            raise ValueError(f"vkitti2: no rgb_*.jpg frames for scenes {scenes} and variations {config.variations}")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        from PIL import Image  # comes with cityscapesscripts; OpenCV cannot read palette indices

        folder, number = self.frames[index]
        cfg = self.config
        frames = folder / "frames"
        name = f"{folder.parent.name}_{folder.name}_{cfg.camera}_{number:05d}"
        paths = {
            "rgb": frames / "rgb" / cfg.camera / f"rgb_{number:05d}.jpg",
            "depth": frames / "depth" / cfg.camera / f"depth_{number:05d}.png",
            "class": frames / "classSegmentation" / cfg.camera / f"classgt_{number:05d}.png",
            "instance": frames / "instanceSegmentation" / cfg.camera / f"instancegt_{number:05d}.png",
        }
        for path in paths.values():
            if not path.is_file():
                raise ValueError(f"vkitti2 {name}: file {path} is missing")
        rgb = read_rgb(paths["rgb"])
        encoded = cv2.imread(str(paths["depth"]), cv2.IMREAD_UNCHANGED)
        if encoded is None or encoded.dtype != np.uint16 or encoded.shape != rgb.shape[:2]:
            got = "unreadable" if encoded is None else f"{encoded.dtype} {encoded.shape}"
            raise ValueError(f"{paths['depth']}: expected a uint16 depth PNG of {rgb.shape[:2]}, got {got}")
        dense = np.where(encoded < SKY_DEPTH_PNG, encoded / np.float32(CENTIMETERS), 0).astype(np.float32)
        draw = np.random.default_rng([cfg.seed, zlib.crc32(name.encode())]).random(dense.shape)
        sparse = np.where(draw < cfg.input_fraction, dense, 0).astype(np.float32)
        depth = np.where((draw >= cfg.input_fraction) & (draw < cfg.input_fraction + cfg.gt_fraction), dense, 0)
        with Image.open(paths["instance"]) as image:
            instance = np.asarray(image).astype(np.int64)
        if instance.shape != rgb.shape[:2]:
            raise ValueError(f"{paths['instance']}: expected a {rgb.shape[:2]} palette image, got {instance.shape}")
        try:
            panoptic = panoptic_from_vkitti2(read_rgb(paths["class"]), instance, self.table)
        except ValueError as exc:
            raise ValueError(f"vkitti2 {name}: {exc}") from exc
        key = (number, int(cfg.camera.rsplit("_", 1)[1]))
        if key not in self.intrinsics[folder]:
            raise ValueError(f"vkitti2 {name}: {folder / 'intrinsic.txt'} lacks frame {key[0]} camera {key[1]}")
        camera = CameraModel.from_matrices(rgb.shape[1], rgb.shape[0], self.intrinsics[folder][key])
        return Sample(name, rgb, sparse, depth.astype(np.float32), panoptic, camera)
