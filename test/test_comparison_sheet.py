"""KITTI raw drive reader and the before/after comparison sheet (input | one panoptic overlay per model)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.data.kitti_raw import raw_frame_ids, read_raw_frame

CALIB = """P2: 100 0 60 0 0 100 20 0 0 0 1 0
R0_rect: 1 0 0 0 1 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0
"""


def make_drive(root: Path, stems: list[str], nested: bool = False) -> None:
    """A drive of 40 x 120 frames whose sweeps are a wall 10 m ahead (LiDAR x forward)."""
    rng = np.random.default_rng(0)
    images, sweeps = (root / "image_02", root / "velodyne_points")
    if nested:
        images, sweeps = images / "data", sweeps / "data"
    images.mkdir(parents=True)
    sweeps.mkdir(parents=True)
    (root / "calib.txt").write_text(CALIB)
    for stem in stems:
        cv2.imwrite(str(images / f"{stem}.png"), rng.integers(0, 255, (40, 120, 3), dtype=np.uint8))
        y, z = np.meshgrid(np.linspace(-5, 5, 60), np.linspace(-1, 1, 20))
        points = np.stack([np.full(y.size, 10.0), y.ravel(), z.ravel(), np.ones(y.size)], axis=1)
        points.astype("<f4").tofile(sweeps / f"{stem}.bin")


@pytest.mark.parametrize("nested", [False, True])
def test_raw_drive_frames_and_projection(tmp_path: Path, nested: bool) -> None:
    make_drive(tmp_path, ["0000000000", "0000000001"], nested)
    (tmp_path / "image_02" / ("data" if nested else "") / "0000000002.png").write_bytes(b"")  # no sweep: skipped
    assert raw_frame_ids(tmp_path) == ["0000000000", "0000000001"]
    frame = read_raw_frame(tmp_path, "0000000001")
    assert frame.rgb.shape == (40, 120, 3) and frame.camera.fx == 100.0
    np.testing.assert_allclose(frame.T_cam_lidar[:3, :3] @ [10.0, 0, 0], [0, 0, 10.0])  # x forward -> z


def test_raw_drive_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no calib.txt"):
        raw_frame_ids(tmp_path)
    (tmp_path / "calib.txt").write_text(CALIB)
    with pytest.raises(ValueError, match="no frame has both"):
        raw_frame_ids(tmp_path)


def test_sheet_holds_the_input_and_each_models_overlay(tmp_path: Path) -> None:
    from test_model import tiny_model

    from depth_panoptic_ros.cli import main
    from depth_panoptic_ros.data.images import read_rgb
    from depth_panoptic_ros.model import save_model
    from depth_panoptic_ros.pipeline import Pipeline
    from depth_panoptic_ros.products.palette import colorize_panoptic, overlay

    make_drive(tmp_path / "drive", ["0000000000", "0000000001", "0000000002"])
    before, after = tmp_path / "before.safetensors", tmp_path / "after.safetensors"
    save_model(before, tiny_model(seed=0))
    save_model(after, tiny_model(seed=1))
    out = tmp_path / "sheet.png"
    args = ["comparison-sheet", str(tmp_path / "drive"), "--model", str(before), "--model", str(after)]
    assert main(args + ["--frames", "0000000002", "0000000000", "--scale", "1", "--out", str(out)]) == 0
    sheet = read_rgb(out)
    title = 28
    assert sheet.shape == (2 * (40 + title), 3 * 120, 3)
    frame = read_raw_frame(tmp_path / "drive", "0000000000")  # second row
    row = sheet[40 + 2 * title : 2 * (40 + title)]
    np.testing.assert_array_equal(row[:, :120], frame.rgb)
    model = tiny_model(seed=1)
    ids = Pipeline(model=model).run(frame, outputs={"panoptic"}).panoptic.ids
    expected = overlay(frame.rgb, colorize_panoptic(ids, model.class_table), panoptic_ids=ids)
    np.testing.assert_array_equal(row[:, 240:], expected)
    assert main(args[:2] + ["--model", str(before), "--name", "a", "--name", "b", "--out", str(out)]) == 2
    assert main(args + ["--frames", "0000000009", "--out", str(out)]) == 2
