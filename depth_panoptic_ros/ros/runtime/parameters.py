"""The node's ROS parameters: one typed dataclass holds the defaults, a table holds what `ros2 param describe`
shows (description, range, allowed values), and both are checked against config/depth_panoptic.yaml by the tests.

Nested dataclasses become dotted parameter names (``cloud.stride``, ``outputs.points``), which YAML writes as
nested mappings. Every parameter is read-only: the node reads them once at start (not at each configure), so an
invalid value ends it at start, where no lifecycle transition could fix it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from depth_panoptic_ros.device import DEVICE_HELP, PRECISIONS, check_device, check_precision
from depth_panoptic_ros.panoptic.merge import STRATEGIES
from depth_panoptic_ros.panoptic.thing_geometry import ThingGeometryConfig
from depth_panoptic_ros.pipeline import CloudConfig
from depth_panoptic_ros.products.bev_grid import GridConfig
from depth_panoptic_ros.resources import DEFAULT_MODEL, PACKAGE
from depth_panoptic_ros.ros.codecs.validation import InputLimits
from depth_panoptic_ros.typed_config import from_dict

MODES = ("mono", "stereo")
DEFAULT_MODEL_PATH = f"package://{PACKAGE}/{DEFAULT_MODEL}"
# Parameters renamed to American spelling in 0.1.x: the old name still works, with a warning, until 0.2.
RENAMED = {"cloud.organised": "cloud.organized"}


@dataclass(frozen=True)
class OutputSwitches:
    """Which output topics exist at all; an existing one is still only computed while it has subscribers."""

    ids: bool = True
    color: bool = True
    depth_color: bool = True
    depth: bool = True
    instances: bool = True
    points: bool = True
    markers: bool = True
    grid: bool = True
    timing: bool = True


@dataclass(frozen=True)
class NodeParameters:
    autostart: bool = True
    mode: str = "mono"
    model_path: str = DEFAULT_MODEL_PATH
    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    cuda_graph: bool = False
    look_ahead: bool = False
    merge: str = ""
    min_thing_score: float = -1.0
    pipeline_config: str = ""
    use_lidar: bool = True
    lidar_to_camera: tuple[float, ...] = ()
    use_tf: bool = True
    tf_timeout: float = 0.1
    sync_queue_size: int = 10
    sync_slop: float = 0.05
    use_compressed: bool = False
    no_sync_warning_s: float = 5.0
    grid_frame: str = "base_link"
    camera_to_ground: tuple[float, ...] = ()
    cloud: CloudConfig = field(default_factory=CloudConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    things: ThingGeometryConfig = field(default_factory=ThingGeometryConfig)
    limits: InputLimits = field(default_factory=InputLimits)
    outputs: OutputSwitches = field(default_factory=OutputSwitches)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        check_precision(self.precision)
        check_device(self.device)
        if self.merge and self.merge not in STRATEGIES:
            raise ValueError(f"merge: expected empty or one of {', '.join(STRATEGIES)}, got {self.merge!r}")
        if self.min_thing_score != -1.0 and not 0.0 <= self.min_thing_score <= 1.0:
            raise ValueError(
                f"min_thing_score: expected -1 (the model's) or a score in [0, 1], got {self.min_thing_score}"
            )
        if self.mode == "mono" and not self.use_lidar:
            raise ValueError("use_lidar: mono mode needs the LiDAR (its only depth source), got use_lidar false")
        if self.use_lidar and not self.use_tf and not self.lidar_to_camera:
            raise ValueError("lidar_to_camera: use_tf is false, so the LiDAR -> camera transform must be given")


@dataclass(frozen=True)
class Doc:
    """What a parameter means; ``limits`` is an inclusive (min, max) range, ``choices`` the allowed strings."""

    text: str
    limits: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()


DOCS: dict[str, Doc] = {
    "autostart": Doc(
        "configure and activate at start; false: wait unconfigured for `ros2 lifecycle set <node> configure` "
        "(or a lifecycle manager)"
    ),
    "mode": Doc("mono: image + camera_info + lidar; stereo: left/ and right/ image + camera_info", choices=MODES),
    "model_path": Doc(
        "model .safetensors: absolute, relative to the working directory or package://depth_panoptic_ros/...; "
        "empty = classical depth only (no panoptic outputs). A missing or broken file fails the configure "
        "transition (logged, shown in the diagnostics): the node stays unconfigured"
    ),
    "device": Doc(f"torch device of the model: {DEVICE_HELP}"),
    "precision": Doc("inference precision of the model (bf16/fp16 run under torch.autocast)", choices=PRECISIONS),
    "compile": Doc("torch.compile the networks; compiled and warmed up at start, before the first frame"),
    "cuda_graph": Doc(
        "replay the networks from CUDA graphs, captured at the first frame of each image size (CUDA devices only; "
        "not with compile): on a GPU the fast setting without compilation"
    ),
    "look_ahead": Doc(
        "measure the next set (LiDAR projection, classical completion, ground fit) in a second thread while the "
        "one before is finished (networks, products, publishing), at most one set ahead; pays with a model on a "
        "GPU, not on a CPU-only node, where both stages compete for the same cores (docs/node.md)"
    ),
    "merge": Doc(
        "panoptic merge: fcn (Panoptic FCN), degeus (de Geus et al.), learned (the model's merge head); empty = "
        "the model's stored choice. learned on a model without a merge head is logged and the stored one runs",
        choices=STRATEGIES,
    ),
    "min_thing_score": Doc(
        "thing candidates scoring below it are dropped before the merge: higher trades recall for precision (on "
        "real KITTI frames the shipped model's false vehicles score lower than its true ones, BENCHMARKS.md), one "
        "cut for every class, replacing the model's per-class cuts; -1 = the model's stored cuts (the shipped "
        "model: 0.35 for car, truck, bus and train, 0.2 for the other things)",
        limits=(-1.0, 1.0),
    ),
    "pipeline_config": Doc(
        "optional PipelineConfig YAML stating the keys to change (all keys: config/pipeline.yaml); the model's "
        "recorded completion applies unless it states completion keys (then a warning); cloud.*, grid.* and "
        "things.* parameters replace its cloud, grid and things sections"
    ),
    "use_lidar": Doc("stereo mode: also subscribe to lidar and merge it with stereo depth (mono always uses it)"),
    "lidar_to_camera": Doc(
        "16 row-major doubles of the 4x4 transform LiDAR frame -> camera optical frame (e.g. KITTI Tr_velo_to_cam); "
        "used when use_tf is false or tf2_ros is not installed"
    ),
    "use_tf": Doc("look up LiDAR -> camera in TF at the LiDAR stamp (falls back to lidar_to_camera without tf2_ros)"),
    "tf_timeout": Doc("seconds to wait for a TF transform before the frame is skipped", limits=(0.0, 10.0)),
    "sync_queue_size": Doc("messages kept per input for approximate-time matching", limits=(1, 1000)),
    "sync_slop": Doc("largest stamp difference (s) within one synchronized set", limits=(0.001, 10.0)),
    "use_compressed": Doc("subscribe to <image topic>/compressed (jpeg/png) instead of raw images"),
    "no_sync_warning_s": Doc(
        "warn (naming the silent inputs) when no synchronized set arrived for this many seconds", limits=(0.5, 3600.0)
    ),
    "grid_frame": Doc(
        "ground frame of the bird's-eye grid (x forward, y left, z up from the ground), e.g. base_link; the "
        "camera -> grid_frame transform comes from TF at the image stamp"
    ),
    "camera_to_ground": Doc(
        "16 row-major doubles of the 4x4 transform camera optical frame -> grid_frame; used when use_tf is false "
        "or tf2_ros is not installed (without either, no grid is published, and a frame whose LiDAR shows no "
        "ground gets no thing geometry check)"
    ),
    "grid.resolution": Doc("bird's-eye grid cell size (m)", limits=(0.01, 10.0)),
    "grid.x_range": Doc("grid extent along x (forward) in grid_frame: [min, max] m"),
    "grid.y_range": Doc("grid extent along y (left) in grid_frame: [min, max] m"),
    "grid.height_range": Doc("only points with z (up from the ground) in [min, max] m count: no overhangs, no sky"),
    "grid.drivable_classes": Doc("class names whose points mark a cell free (0); other labelled points occupy it"),
    "grid.ignored_classes": Doc("class names whose points are no observation at all (e.g. sky)"),
    "things.enabled": Doc(
        "drop things that do not stand on the ground as their class would (a ground plane fitted to each frame's "
        "LiDAR, else the camera_to_ground / TF transform to grid_frame, looked up for such frames without waiting): "
        "floating, flat on the road, or too tall (BENCHMARKS.md 'Thing geometry')"
    ),
    "things.max_ground_gap_m": Doc(
        "a thing's lowest points (5th percentile) may float at most this high above the ground (m), unless a "
        "nearer object hides its bottom",
        limits=(0.0, 10.0),
    ),
    "things.min_height_m": Doc(
        "a thing's highest points (95th percentile) must reach at least this above the ground (m; bicycles and "
        "motorcycles 0.5 at most)",
        limits=(0.0, 10.0),
    ),
    "cloud.stride": Doc("panoptic/points takes every stride-th pixel in both directions", limits=(1, 64)),
    "cloud.max_range": Doc("panoptic/points drops points farther than this (m)", limits=(0.1, 1000.0)),
    "cloud.organized": Doc("panoptic/points as an organized H x W cloud with NaN for invalid points"),
    "limits.max_image_pixels": Doc(
        "largest image (width x height) accepted; larger ones are rejected before decoding (default: twice an "
        "8 MP camera)",
        limits=(1, 2**31 - 1),
    ),
    "limits.max_cloud_points": Doc(
        "largest LiDAR cloud (width x height points) accepted; larger ones are rejected before unpacking "
        "(default: four 128-beam x 2048-column sweeps)",
        limits=(1, 2**31 - 1),
    ),
    **{
        f"outputs.{name}": Doc(f"create {topics} (computed only while subscribed)")
        for name, topics in {
            "ids": "panoptic/ids",
            "color": "panoptic/color",
            "depth_color": "panoptic/depth_color",
            "depth": "panoptic/depth and panoptic/depth/camera_info",
            "instances": "panoptic/instances",
            "points": "panoptic/points",
            "markers": "panoptic/markers",
            "grid": "panoptic/occupancy, panoptic/bev and panoptic/bev/info",
            "timing": "~/timing",
        }.items()
    },
}


def flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted name: value} of a dataclass instance, nested dataclasses included (tuples become lists)."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if dataclasses.is_dataclass(value):
            flat.update(flatten(value, f"{prefix}{f.name}."))
        else:
            flat[f"{prefix}{f.name}"] = list(value) if isinstance(value, tuple) else value
    return flat


def descriptor(name: str) -> ParameterDescriptor:
    doc = DOCS[name]
    desc = ParameterDescriptor(description=doc.text, read_only=True)
    if doc.choices:
        desc.additional_constraints = f"one of: {', '.join(doc.choices)}"
    if doc.limits is not None:
        low, high = doc.limits
        if isinstance(low, int) and isinstance(high, int):
            desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high))]
    return desc


def declare_parameters(node: Node) -> NodeParameters:
    """Declares every parameter on ``node`` and returns their values.

    rclpy checks types and ranges (ParameterException); the dataclass checks the rest (ValueError).
    """
    values: dict[str, Any] = {}
    defaults = flatten(NodeParameters())
    for name, default in defaults.items():
        # rclpy cannot infer a type from an empty list, and leaves an array parameter set to [] unset (None).
        declared = Parameter.Type.DOUBLE_ARRAY if default == [] else default
        values[name] = node.declare_parameter(name, declared, descriptor(name)).value
        if values[name] is None:
            values[name] = []
    for old, new in RENAMED.items():
        # Declared without a default: its value stays None unless the user sets the old name.
        deprecated = ParameterDescriptor(description=f"deprecated: use {new}", read_only=True)
        value = node.declare_parameter(old, Parameter.Type.from_parameter_value(defaults[new]), deprecated).value
        if value is None:
            continue
        if values[new] not in (defaults[new], value):
            raise ValueError(f"{old}: deprecated name of {new}, and both are set; keep only {new}")
        node.get_logger().warning(f"parameter {old} is deprecated, use {new} (the old name goes in 0.2)")
        values[new] = value
    return from_dict(NodeParameters, _nest(values), "parameters")


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *groups, leaf = name.split(".")
        target = nested
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = value
    return nested
