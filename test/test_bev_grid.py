"""The bird's-eye panoptic grid: a hand-built scene whose every cell is known, its messages, the pipeline
output and the top-down pictures."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.backproject import PanopticCloud
from depth_panoptic_ros.products.bev_grid import BevProjector, GridConfig, occupancy_image, top_down

# camera optical frame (z forward, x right, y down) -> ground frame (x forward, y left, z up), camera 1.5 m high
GROUND_T_CAM = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]], dtype=np.float64)
# 4 x 4 cells of 1 m: x in [0, 4) forward (columns), y in [-2, 2) left (rows), points 0.5 m below to 2 m above
CONFIG = GridConfig(resolution=1.0, x_range=(0.0, 4.0), y_range=(-2.0, 2.0), height_range=(-0.5, 2.0))
ROAD, SIDEWALK, SKY, CAR = 7, 8, 23, 26

# (x, y, z) in the ground frame, panoptic id (class id = id // 1000; 0 = void)
POINTS = [
    ((0.5, -1.5, 0.0), ROAD * 1000),  # row 0, col 0: free
    ((1.5, 0.5, 0.0), ROAD * 1000),  # row 2, col 1: road under a car ...
    ((1.5, 0.5, 1.0), CAR * 1000 + 1),  # ... the car wins: occupied, its id
    ((2.5, 1.5, 0.1), SIDEWALK * 1000),  # row 3, col 2: non-drivable stuff occupies
    ((3.5, -0.5, 1.0), SKY * 1000),  # row 1, col 3: sky is ignored -> unknown
    ((3.5, 1.5, 2.5), CAR * 1000 + 2),  # row 3, col 3: above the height band -> unknown
    ((0.5, 1.5, 0.0), 0),  # row 3, col 0: void is no observation -> unknown
    ((2.5, -1.5, 0.3), CAR * 1000 + 3),  # row 0, col 2: two cars in one cell: the larger id
    ((2.6, -1.4, 0.6), CAR * 1000 + 4),
    ((2.5, -1.5, -1.0), SIDEWALK * 1000),  # row 0, col 2 but 1 m under the ground: not counted
    ((4.5, 0.5, 0.0), CAR * 1000 + 5),  # beyond x_range
    ((-0.5, 0.5, 0.0), CAR * 1000 + 6),  # behind the grid
    ((1.5, -2.5, 0.0), CAR * 1000 + 7),  # right of y_range
]
EXPECTED_OCCUPANCY = [
    [0, -1, 100, -1],
    [-1, -1, -1, -1],
    [-1, 100, -1, -1],
    [-1, -1, 100, -1],
]
EXPECTED_IDS = [
    [7000, 0, 26004, 0],
    [0, 0, 0, 0],
    [0, 26001, 0, 0],
    [0, 0, 8000, 0],
]


def hand_cloud(organized: bool = False) -> PanopticCloud:
    ground = np.array([p for p, _ in POINTS], dtype=np.float64)
    camera = (np.linalg.inv(GROUND_T_CAM) @ np.c_[ground, np.ones(len(ground))].T).T[:, :3].astype(np.float32)
    ids = np.array([i for _, i in POINTS], dtype=np.uint32)
    labels = ids // 1000
    if organized:  # a 2 x 8 organized cloud: the points, then NaN (invalid) ones
        pad = 16 - len(camera)
        camera = np.r_[camera, np.full((pad, 3), np.nan, np.float32)].reshape(2, 8, 3)
        ids, labels = np.r_[ids, np.full(pad, CAR * 1000 + 9, np.uint32)], np.r_[labels, np.full(pad, CAR, np.uint32)]
        ids, labels = ids.reshape(2, 8), labels.reshape(2, 8)
    rgb = np.zeros(camera.shape, np.uint8)
    return PanopticCloud(xyz=camera, rgb=rgb, label=labels.astype(np.uint32), instance=ids)


@pytest.mark.parametrize("organized", [False, True])
def test_every_cell_of_a_hand_built_scene(organized: bool) -> None:
    grid = BevProjector(CONFIG, ClassTable.cityscapes())(hand_cloud(organized), GROUND_T_CAM)
    assert grid.occupancy.dtype == np.int8 and grid.ids.dtype == np.int32
    np.testing.assert_array_equal(grid.occupancy, EXPECTED_OCCUPANCY)
    np.testing.assert_array_equal(grid.ids, EXPECTED_IDS)
    assert grid.origin == (0.0, -2.0) and grid.resolution == 1.0


def test_class_choices_and_extent_come_from_the_config() -> None:
    config = GridConfig(
        resolution=2.0, x_range=(0.0, 4.0), y_range=(-2.0, 2.0), height_range=(-0.5, 2.0),
        drivable_classes=("road", "sidewalk"), ignored_classes=(),
    )  # fmt: skip
    grid = BevProjector(config, ClassTable.cityscapes())(hand_cloud(), GROUND_T_CAM)
    # 2 m cells: [rows y -2..0, 0..2] x [cols x 0..2, 2..4]; sidewalk is now drivable, sky an obstacle
    np.testing.assert_array_equal(grid.occupancy, [[0, 100], [100, 0]])
    np.testing.assert_array_equal(grid.ids, [[7000, 26004], [26001, 8000]])


def test_a_moved_camera_moves_the_cells() -> None:
    """The same cloud seen from a camera 1 m further forward lands one column further."""
    shifted = GROUND_T_CAM.copy()
    shifted[0, 3] = 1.0
    grid = BevProjector(CONFIG, ClassTable.cityscapes())(hand_cloud(), shifted)
    np.testing.assert_array_equal(grid.occupancy[:, 1:], np.array(EXPECTED_OCCUPANCY)[:, :3])
    assert grid.occupancy[2, 2] == 100 and grid.ids[2, 2] == 26001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0.0}, "resolution must be > 0"),
        ({"x_range": (5.0, 5.0)}, "x_range must be"),
        ({"resolution": 0.001, "x_range": (0.0, 1000.0)}, "expected 1 to 2\\^26 cells"),
    ],
)
def test_bad_grid_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GridConfig(**kwargs)


def test_bad_transform_is_rejected() -> None:
    with pytest.raises(ValueError, match="finite 4x4"):
        BevProjector(CONFIG, ClassTable.cityscapes())(hand_cloud(), np.eye(3))


def test_top_down_pictures_put_forward_up_and_left_left() -> None:
    occupancy = np.array(EXPECTED_OCCUPANCY, dtype=np.int8)
    view = top_down(occupancy)
    # top row = farthest column (x in [3, 4)); leftmost column = largest y (row 3)
    np.testing.assert_array_equal(view[0], occupancy[::-1, 3])
    assert view[1, 0] == occupancy[3, 2] == 100
    image = occupancy_image(view)
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    assert tuple(image[1, 0]) == (0, 0, 0) and tuple(image[3, 3]) == (254, 254, 254)  # occupied, free (row 0, x 0)
    assert tuple(image[0, 0]) == (205, 205, 205)


def test_grid_messages_hold_the_cells_where_they_lie() -> None:
    pytest.importorskip("nav_msgs")
    from std_msgs.msg import Header

    from depth_panoptic_ros.ros.codecs.products_to_msgs import BEV, BEV_INFO, OCCUPANCY, grid_messages

    grid = BevProjector(CONFIG, ClassTable.cityscapes())(hand_cloud(), GROUND_T_CAM)
    header = Header(frame_id="base_link")
    header.stamp.sec, header.stamp.nanosec = 17, 5
    out = grid_messages(grid, header, {OCCUPANCY, BEV, BEV_INFO})
    occupancy, bev, info = out[OCCUPANCY], out[BEV], out[BEV_INFO]
    assert occupancy.header == header and bev.header == header
    assert list(occupancy.data) == np.ravel(EXPECTED_OCCUPANCY).tolist()  # row-major, row = y, column = x
    for meta in (occupancy.info, info):
        assert (meta.width, meta.height, meta.resolution) == (4, 4, 1.0)
        assert (meta.origin.position.x, meta.origin.position.y, meta.origin.orientation.w) == (0.0, -2.0, 1.0)
    assert bev.encoding == "32SC1" and (bev.width, bev.height) == (4, 4)
    np.testing.assert_array_equal(np.frombuffer(bev.data, np.int32).reshape(4, 4), EXPECTED_IDS)
    assert set(grid_messages(grid, header, {BEV})) == {BEV}
