"""SensorFrame -> Products: the one per-frame computation behind the node, `infer`, the bag tools and evaluation.

Stages run only when an requested output needs them (a node with no cloud subscriber never back-projects).
The networks are optional: without a model the pipeline still gives completed depth and an unlabeled cloud.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.depth.classical import CompletionConfig, complete_depth
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.backproject import PanopticCloud, build_cloud
from depth_panoptic_ros.geometry.ground import GroundPlane, fit_ground_plane, grid_depth, grid_heights
from depth_panoptic_ros.geometry.lidar import project_points
from depth_panoptic_ros.geometry.stereo import StereoConfig, merge_depth, stereo_depth
from depth_panoptic_ros.panoptic.levels import FEATURE_STRIDE
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.panoptic.thing_geometry import ThingGeometryCheck, ThingGeometryConfig
from depth_panoptic_ros.products.bev_grid import BevGrid, BevProjector, GridConfig
from depth_panoptic_ros.products.instance_depth import InstanceDepthTable, instance_depth

if TYPE_CHECKING:
    from depth_panoptic_ros.model import DepthPanopticModel

OUTPUTS = frozenset({"depth", "learned_depth", "panoptic", "instances", "cloud", "grid"})  # learned_depth: evaluation


@dataclass(frozen=True)
class CloudConfig:
    stride: int = 2
    max_range: float = 80.0
    organized: bool = False

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"cloud stride must be >= 1, got {self.stride}")
        if not self.max_range > 0:
            raise ValueError(f"cloud max_range must be positive, got {self.max_range}")


@dataclass(frozen=True)
class PipelineConfig:
    """learned_depth: serve the model's learned completion as the depth output (and the cloud, instance depths
    and grid built from it). Off by default: the shipped model's learned completion is worse than the classical
    one on real KITTI LiDAR (RMSE +20 %, MAE x2.4 on 16 of 16 held-out object frames, models/README.md); turn it
    on for a model whose card shows it helps. The panoptic network sees the learned depth either way (it was
    trained on it). things: the thing geometry check (panoptic/thing_geometry.py)."""

    lidar_max_range: float = 120.0
    lidar_min_depth: float = 0.5
    use_stereo: bool = True
    learned_depth: bool = False
    completion: CompletionConfig = field(default_factory=CompletionConfig)
    stereo: StereoConfig = field(default_factory=StereoConfig)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    things: ThingGeometryConfig = field(default_factory=ThingGeometryConfig)


@dataclass
class Products:
    """depth: dense float32 meters (0 = unknown), the served one (Pipeline.depth_source says which);
    sparse_depth: the measured depth it was completed from; classical_depth: the classical completion (the
    network's starting point); learned_depth: the model's completion (None without a model, or unless it is
    served or asked for: the "learned_depth" output); grid: the bird's-eye panoptic grid (needs a model and the
    frame's ground_T_camera); ground: the ground plane of the thing geometry check (None without a model, with
    the check off, or when neither the measured depth nor the frame's ground_T_camera gave one); check: the
    check's grid of depths and heights above that plane, which the merges read (None when ground is)."""

    sparse_depth: np.ndarray
    depth: np.ndarray
    classical_depth: np.ndarray | None = None
    learned_depth: np.ndarray | None = None
    panoptic: PanopticResult | None = None
    instances: InstanceDepthTable | None = None
    cloud: PanopticCloud | None = None
    grid: BevGrid | None = None
    ground: GroundPlane | None = None
    check: ThingGeometryCheck | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """changed_settings: the settings the networks depend on that ``config`` sets differently from what the
    model was trained with (bind_to_model), for front ends to report once."""

    def __init__(
        self,
        config: PipelineConfig | None = None,
        model: DepthPanopticModel | None = None,
        changed_settings: tuple[str, ...] = (),
    ) -> None:
        self.config = config or PipelineConfig()
        self.model = model
        self.changed_settings = changed_settings
        self._projector = None if model is None else BevProjector(self.config.grid, model.class_table)

    @property
    def class_table(self) -> ClassTable | None:
        return None if self.model is None else self.model.class_table

    @property
    def settings_warning(self) -> str | None:
        """The one line front ends show when changed_settings is not empty."""
        if not self.changed_settings:
            return None
        return (
            f"pipeline settings differ from those the model was trained with: {'; '.join(self.changed_settings)} "
            "(its inputs are not what it learned from; leave these keys out of the pipeline config to use the model's)"
        )

    @property
    def depth_source(self) -> str:
        """Which completion the depth output is, and why (for logs and diagnostics)."""
        if self.model is None:
            return "classical completion (no model)"
        if self.config.learned_depth:
            return "the model's learned completion (pipeline learned_depth: true)"
        return "classical completion (pipeline learned_depth: false; the model's learned depth feeds its panoptic only)"

    def run(self, frame: SensorFrame, outputs: Collection[str] = OUTPUTS) -> Products:
        """Raises ValueError for a frame that cannot be processed (sizes, missing extrinsic, …)."""
        _check_outputs(outputs)
        return self.finish(frame, self.measure(frame, outputs), outputs)

    def measure(self, frame: SensorFrame, outputs: Collection[str] = OUTPUTS) -> Products:
        """The stages that feed the networks: the measured depth, its classical completion (CPU kernels that
        release the GIL) and, with a model and ``outputs`` that show labels, the ground and grid of the thing
        geometry check, so that a next frame's can run in a thread while this one is on the GPU
        (gpu_check.one_ahead). ValueError for a frame that cannot be processed."""
        _check_frame(frame)
        timings: dict[str, float] = {}
        with _timed(timings, "sparse_depth"):
            sparse = self.measured_depth(frame)
        with _timed(timings, "completion"):
            dense = complete_depth(sparse, frame.rgb, self.config.completion)
        products = Products(sparse_depth=sparse, depth=dense, classical_depth=dense, timings_ms=timings)
        if self.checks_things(outputs):
            with _timed(timings, "ground"):
                products.ground, products.check = self.ground_check(frame, sparse, dense)
        return products

    def checks_things(self, outputs: Collection[str]) -> bool:
        """Whether ``outputs`` get the thing geometry check: with a model, the check on, and labels shown."""
        return self.model is not None and self.config.things.enabled and _segments(outputs)

    def check_against_transform(self, frame: SensorFrame, products: Products) -> None:
        """``measure``'s thing check for a frame whose measured depth showed no ground, against the plane of
        the ``frame.ground_T_camera`` set since: a front end whose transform lookup can wait (TF) looks it up only
        for such frames."""
        with _timed(products.timings_ms, "ground_transform"):
            plane = GroundPlane.from_transform(frame.ground_T_camera)
            products.ground, products.check = self._thing_check(plane, frame, products.classical_depth)

    def finish(self, frame: SensorFrame, products: Products, outputs: Collection[str] = OUTPUTS) -> Products:
        """The rest of ``run`` after ``measure(frame)`` gave ``products``: networks, instance depth, cloud, grid
        (filled into ``products``)."""
        _check_outputs(outputs)
        cfg, timings = self.config, products.timings_ms
        sparse, dense = products.sparse_depth, products.classical_depth

        # The networks run only for what consumes them: segmentation for the outputs that show labels, the
        # learned completion when it is served (learned_depth) or asked for itself (evaluation); only then is
        # the learned depth copied back from the device.
        segment = _segments(outputs)
        learned = cfg.learned_depth or "learned_depth" in outputs
        if self.model is not None and (segment or learned):
            check = products.check if segment else None  # measure built it when the check is on
            with _timed(timings, "network"):
                products.learned_depth, products.panoptic = self.model.predict(
                    frame.rgb, sparse, dense, segment=segment, return_depth=learned, check=check
                )
            if cfg.learned_depth:
                products.depth = products.learned_depth
        if "instances" in outputs and products.panoptic is not None:
            with _timed(timings, "instance_depth"):
                panoptic = products.panoptic  # on a GPU model its ids are there too: the statistics run there
                table = self.model.class_table
                products.instances = instance_depth(
                    panoptic.runs, products.depth, frame.camera, table, panoptic, device_ids=panoptic.device_ids
                )
        # like the panoptic outputs without a model, the grid is left out of frames without a ground transform
        grid = "grid" in outputs and products.panoptic is not None and frame.ground_T_camera is not None
        if "cloud" in outputs or grid:
            with _timed(timings, "cloud"):
                if products.panoptic is None:
                    cloud = self.cloud(frame, products.depth)
                else:
                    divisor = self.model.class_table.label_divisor
                    cloud = self.cloud(frame, products.depth, products.panoptic.ids, divisor)
            products.cloud = cloud if "cloud" in outputs else None
        if grid:
            with _timed(timings, "grid"):
                products.grid = self._projector(cloud, frame.ground_T_camera)
        return products

    def ground_check(
        self, frame: SensorFrame, measured: np.ndarray, dense: np.ndarray
    ) -> tuple[GroundPlane | None, ThingGeometryCheck | None]:
        """The ground fitted to the measured depth (it follows slopes and pitch), else the frame's transform; and
        the thing geometry check's grid of the completed depth and its heights above that ground (both None
        without a ground)."""
        plane = fit_ground_plane(measured, frame.camera)
        if plane is None and frame.ground_T_camera is not None:
            plane = GroundPlane.from_transform(frame.ground_T_camera)
        if plane is None:
            return None, None
        return self._thing_check(plane, frame, dense)

    def _thing_check(
        self, plane: GroundPlane, frame: SensorFrame, dense: np.ndarray
    ) -> tuple[GroundPlane, ThingGeometryCheck]:
        depth = grid_depth(dense, FEATURE_STRIDE)
        heights = grid_heights(depth, frame.camera, plane, FEATURE_STRIDE)
        return plane, ThingGeometryCheck(depth, heights, self.config.things)

    def cloud(
        self, frame: SensorFrame, depth: np.ndarray, ids: np.ndarray | None = None, label_divisor: int | None = None
    ) -> PanopticCloud:
        """The cloud of ``depth`` with the cloud config's stride and range, labeled when panoptic ``ids`` (and
        their class table's label divisor) are given."""
        cfg = self.config.cloud
        return build_cloud(
            depth,
            frame.camera,
            rgb=frame.rgb,
            panoptic_ids=ids,
            label_divisor=label_divisor,
            stride=cfg.stride,
            max_range=cfg.max_range,
            organized=cfg.organized,
        )

    def measured_depth(self, frame: SensorFrame) -> np.ndarray:
        """The LiDAR points' projection, merged with stereo depth when the frame has a right image."""
        cfg = self.config
        if frame.points is None:  # an empty map only then: freeing an unused one cost ~0.2 ms at 1024x2048
            sparse = np.zeros(frame.camera.shape, np.float32)
        else:
            sparse = project_points(
                frame.points,
                frame.T_cam_lidar,
                frame.camera,
                max_range=cfg.lidar_max_range,
                min_depth=cfg.lidar_min_depth,
            ).depth
        if frame.right_rgb is not None and cfg.use_stereo:
            stereo = stereo_depth(frame.rgb, frame.right_rgb, frame.camera, frame.right_camera, cfg.stereo)
            sparse = merge_depth(sparse, stereo)
        return sparse


def _segments(outputs: Collection[str]) -> bool:
    """Whether ``outputs`` show labels, i.e. need the panoptic segmentation (and its thing geometry check)."""
    return bool({"panoptic", "instances", "cloud", "grid"} & set(outputs))


def _check_outputs(outputs: Collection[str]) -> None:
    unknown = set(outputs) - OUTPUTS
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; known: {sorted(OUTPUTS)}")


def _check_frame(frame: SensorFrame) -> None:
    rgb = frame.rgb
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[:2] != frame.camera.shape:
        raise ValueError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but its camera model is {frame.camera.width}x{frame.camera.height}"
        )
    if frame.points is not None and frame.T_cam_lidar is None:
        raise ValueError("LiDAR points given without the LiDAR -> camera extrinsic T_cam_lidar")
    if frame.right_rgb is not None:
        if frame.right_camera is None:
            raise ValueError("right image given without its camera model")
        if frame.right_rgb.shape != rgb.shape:
            raise ValueError(f"right image {frame.right_rgb.shape} differs from the left image {rgb.shape}")
    if frame.points is None and frame.right_rgb is None:
        raise ValueError("the frame has neither LiDAR points nor a right image: nothing to measure depth from")


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = (time.perf_counter() - start) * 1e3


# The pipeline settings the networks depend on: training computes the classical completion they refine and read
# with pipeline.completion. A model file records the pipeline it was trained with (model.pipeline_settings); only
# these sections of it are applied, the rest (ranges, cloud, grid, ...) stays the deployment's choice.
MODEL_SETTINGS = ("completion",)


def bind_to_model(explicit: dict[str, Any], recorded: dict[str, Any] | None) -> tuple[PipelineConfig, tuple[str, ...]]:
    """The pipeline config for a model: the ``explicit`` settings (what a config file states) over the model's
    recorded MODEL_SETTINGS over the defaults; and each model setting the explicit ones change, as
    "completion.extend_px 48 (model: 16)", for the one warning front ends give. ValueError names a bad key."""
    from depth_panoptic_ros.typed_config import from_dict, to_dict

    trained = {key: recorded[key] for key in MODEL_SETTINGS if recorded and key in recorded}
    config = from_dict(PipelineConfig, _overlay(trained, explicit), "pipeline")
    if not trained:
        return config, ()
    model_config = from_dict(PipelineConfig, trained, "the model's recorded pipeline")
    changed = []
    for key in MODEL_SETTINGS:
        ours, theirs = _leaves(to_dict(getattr(config, key)), key), _leaves(to_dict(getattr(model_config, key)), key)
        changed += [
            f"{name} {value!r} (model: {theirs[name]!r})" for name, value in ours.items() if value != theirs[name]
        ]
    return config, tuple(changed)


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _overlay(merged[key], value) if both else value
    return merged


def _leaves(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        leaves.update(_leaves(value, name) if isinstance(value, dict) else {name: value})
    return leaves


def load_pipeline_settings(path: str | Path | None) -> dict[str, Any]:
    """The settings a pipeline config YAML states (None = none), checked in bind_to_model."""
    from depth_panoptic_ros.typed_config import load_yaml

    return load_yaml(path) if path else {}


def load_pipeline(
    config_path: str | Path | None,
    model_path: str | None,
    device: str = "cpu",
    precision: str = "fp32",
    merge: str | None = None,
    compile: bool = False,
    cuda_graph: bool = False,
    min_thing_score: float | None = None,
) -> Pipeline:
    """The pipeline of a config file and a model: None = the shipped default model when installed, '' = none.
    device, precision, compile and cuda_graph as ``load_model``.

    The model's recorded pipeline settings apply unless the config file states others (the pipeline's
    changed_settings lists those it changes, see bind_to_model). merge: the panoptic merge to run (fcn | degeus |
    learned), None = the model's stored choice; min_thing_score: the thing score cut (use_min_thing_score), None =
    the model's stored one; ValueError when there is no model to merge with or the model cannot run it (learned
    without a merge head, a cut outside [0, 1])."""
    from depth_panoptic_ros.resources import default_model_path, resolve_path

    explicit = load_pipeline_settings(config_path)
    if model_path is None:
        path = default_model_path()
        path = path if path.is_file() else None
    else:
        path = resolve_path(model_path) if model_path else None
    if path is None:
        if merge is not None or min_thing_score is not None:
            raise ValueError("a merge or a thing score cut needs a model, and none is loaded")
        return Pipeline(bind_to_model(explicit, None)[0])
    from depth_panoptic_ros.model import load_model

    model = load_model(path, device=device, precision=precision, compile=compile, cuda_graph=cuda_graph)
    if merge is not None:
        model.use_merge(merge)
    if min_thing_score is not None:
        model.use_min_thing_score(min_thing_score)
    config, changed = bind_to_model(explicit, model.pipeline_settings)
    return Pipeline(config, model, changed)
