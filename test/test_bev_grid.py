"""The bird's-eye panoptic grid: a hand-built scene whose every cell is known, its messages, the pipeline
output and the top-down pictures."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassInfo, ClassTable
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


def reference_grid(
    config: GridConfig, table: ClassTable, cloud: PanopticCloud, ground_T_camera: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The grid transcribed point by point from the module's definition (float32 cell coordinates from one
    affine map, cells [k, k + 1) of them, the height band inclusive; per cell the largest (kind, panoptic id))."""
    rows, cols = config.shape
    scale = 1.0 / config.resolution
    affine = ground_T_camera[:3, :3] * np.array([[scale], [scale], [1.0]])
    origin = np.array([config.x_range[0], config.y_range[0], 0.0])
    offset = (ground_T_camera[:3, 3] - origin) * np.array([scale, scale, 1.0])
    with np.errstate(invalid="ignore"):  # infinite points
        col, row, z = (affine.astype(np.float32) @ cloud.xyz.reshape(-1, 3).T) + offset.astype(np.float32)[:, None]
    low, high = np.float32(config.height_range[0]), np.float32(config.height_range[1])
    kind_of = {}
    for c in table.classes:
        kind_of[c.id] = 3 if c.is_thing else 2
        if c.name in config.drivable_classes:
            kind_of[c.id] = 1
        if c.name in config.ignored_classes:
            kind_of[c.id] = 0
    best = {}
    for i in range(len(z)):
        kind = kind_of.get(int(cloud.label.flat[i]), 0)
        inside = 0 <= col[i] < np.float32(cols) and 0 <= row[i] < np.float32(rows) and low <= z[i] <= high
        if kind and inside:
            cell = (int(np.floor(row[i])), int(np.floor(col[i])))
            best[cell] = max(best.get(cell, (0, 0)), (kind, int(cloud.instance.flat[i])))
    occupancy = np.full((rows, cols), -1, np.int8)
    ids = np.zeros((rows, cols), np.int64)
    for cell, (kind, panoptic_id) in best.items():
        occupancy[cell] = 100 if kind >= 2 else 0
        ids[cell] = panoptic_id - 2**32 if panoptic_id >= 2**31 else panoptic_id  # int32 view of the uint32 id
    return occupancy, ids.astype(np.int32)


# Labels: void, every kind, class ids beyond the table's last slot (one that is a car's id modulo the table
# size), the largest uint32; panoptic ids: 0, small, large, with the high bit set, the largest uint32.
LABELS = np.array([0, ROAD, 9, SIDEWALK, SKY, CAR, 24, 32767, 2**15 + 1 + CAR, 40000, 2**32 - 1], np.uint32)
IDS = np.array([0, 1, ROAD * 1000, CAR * 1000 + 5, CAR * 1000 + 6, 2**31 + 7, 2**32 - 1], np.uint32)
TOP_THING = ClassTable(ClassTable.cityscapes().classes + (ClassInfo(32767, "top", True, (0, 0, 0)),))


def random_cloud(rng: np.random.Generator, n: int, run: int, half_extent: float) -> PanopticCloud:
    """n points in runs of up to ``run`` consecutive points that move a little (as image rows do), and in runs
    that share a label and in runs that share an id, each run with its own ends; some NaN or infinite."""

    def runs(values: np.ndarray) -> np.ndarray:
        return values[np.cumsum(rng.integers(0, run, n) == 0)]

    starts = rng.uniform(-half_extent, half_extent, (n + 1, 3)).astype(np.float32)
    xyz = runs(starts) + rng.normal(0, 0.05, (n, 3)).astype(np.float32)
    xyz[rng.random(n) < 0.03] = np.nan
    xyz[rng.random(n) < 0.01, rng.integers(0, 3)] = np.inf
    labels, ids = runs(rng.choice(LABELS, n + 1)), runs(rng.choice(IDS, n + 1))
    return PanopticCloud(xyz=xyz, rgb=np.zeros((n, 3), np.uint8), label=labels, instance=ids)


def random_transform(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    transform = np.eye(4)
    transform[:3, :3] = q * np.sign(np.linalg.det(q))
    transform[:3, 3] = rng.uniform(-2, 2, 3)
    return transform


def assert_matches_reference(projector: BevProjector, cloud: PanopticCloud, transform: np.ndarray) -> None:
    grid = projector(cloud, transform)
    occupancy, ids = reference_grid(projector.config, TOP_THING, cloud, transform)
    assert grid.occupancy.dtype == np.int8 and grid.ids.dtype == np.int32
    np.testing.assert_array_equal(grid.occupancy, occupancy)
    np.testing.assert_array_equal(grid.ids, ids)


@pytest.mark.parametrize("seed", range(4))
def test_random_clouds_match_a_point_by_point_transcription(seed: int) -> None:
    """Random poses and clouds: many points per cell (ties between kinds and ids), points outside the grid and
    the band, NaN and infinite points; the same projector on clouds of changing sizes (its reused buffers)."""
    rng = np.random.default_rng(seed)
    config = GridConfig(resolution=0.5, x_range=(-3.0, 2.0), y_range=(-2.0, 3.0), height_range=(-1.0, 1.5))
    projector = BevProjector(config, TOP_THING)
    for n in (3000, 200, 40000, 1):  # 40000: several blocks of the affine map
        assert_matches_reference(projector, random_cloud(rng, n, run=8, half_extent=4.0), random_transform(rng))


def test_cell_borders_and_band_limits_match_a_point_by_point_transcription() -> None:
    """Points exactly on every cell border and on the band's limits, and one float32 step to either side (the
    ground frame is the camera frame and cells are 1/4 m from the origin: the map multiplies by 4, exactly);
    consecutive points in one cell with the same label and id, one of them above the band."""
    config = GridConfig(resolution=0.25, x_range=(0.0, 2.0), y_range=(0.0, 1.5), height_range=(-0.5, 1.5))
    borders = np.arange(-0.25, 2.5, 0.25, dtype=np.float32)  # every border of both axes, and beyond both ends
    x, y, z = (a.ravel() for a in np.meshgrid(borders, borders, np.float32([-0.5, 1.5, 0.0]), indexing="ij"))
    ground = np.concatenate(
        [np.stack(np.nextafter([x, y, z], np.float32(to)), axis=1) for to in (-np.inf, np.inf)]
        + [np.stack([x, y, z], axis=1)]
    )
    pairs = np.repeat(ground[-60:], 2, axis=0)  # on borders, one cell in the band
    pairs[0::4, 2] = pairs[3::4, 2] = 1.75
    ground = np.r_[ground, pairs]
    rng = np.random.default_rng(7)
    labels, ids = rng.choice(LABELS, len(ground)), rng.choice(IDS, len(ground))
    labels[-120:], ids[-120:] = np.repeat(labels[-120::2], 2), np.repeat(ids[-120::2], 2)
    cloud = PanopticCloud(xyz=ground, rgb=np.zeros(ground.shape, np.uint8), label=labels, instance=ids)
    assert_matches_reference(BevProjector(config, TOP_THING), cloud, np.eye(4))


def test_organized_and_empty_clouds_match_a_point_by_point_transcription() -> None:
    rng = np.random.default_rng(3)
    projector = BevProjector(CONFIG, TOP_THING)
    flat = random_cloud(rng, 24 * 32, run=5, half_extent=3.0)
    organized = PanopticCloud(
        xyz=flat.xyz.reshape(24, 32, 3),
        rgb=flat.rgb.reshape(24, 32, 3),
        label=flat.label.reshape(24, 32),
        instance=flat.instance.reshape(24, 32),
    )
    assert_matches_reference(projector, organized, GROUND_T_CAM)
    empty = PanopticCloud(
        xyz=np.zeros((0, 3), np.float32),
        rgb=np.zeros((0, 3), np.uint8),
        label=np.zeros(0, np.uint32),
        instance=np.zeros(0, np.uint32),
    )
    grid = projector(empty, GROUND_T_CAM)
    assert (grid.occupancy == -1).all() and (grid.ids == 0).all()
