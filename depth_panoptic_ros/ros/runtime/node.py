"""depth_panoptic_node: camera (mono or stereo) + LiDAR in, depth-aware panoptic products out.

A thin adapter over Pipeline, and a lifecycle (managed) node: configure loads the model and creates the outputs,
activate subscribes, deactivate stops processing, cleanup releases the model. Subscription callbacks only
synchronize and hand the newest set to the worker (older unprocessed sets are dropped and counted), so latency
stays bounded when the input outpaces the model and the executor never waits for inference; with look_ahead the
worker measures the next set while it finishes the one before (worker.py). Every output keeps the input image's
header. Outputs without subscribers are not computed. Bad input skips the frame with a throttled log naming the
input; the node never stops serving later frames.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
import traceback
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from depth_panoptic_ros.device import keep_heap_for_reuse, release_cached_memory, trim_heap
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.ground import MIN_INLIERS, MIN_SHARE
from depth_panoptic_ros.msg import FrameTiming
from depth_panoptic_ros.pipeline import Pipeline, Products, bind_to_model, load_pipeline_settings
from depth_panoptic_ros.resources import resolve_path, share_dir
from depth_panoptic_ros.ros.codecs.camera_info import calibration_key, camera_model_from_info
from depth_panoptic_ros.ros.codecs.panoptic_msgs import class_table_to_msg
from depth_panoptic_ros.ros.codecs.products_to_msgs import (
    BEV,
    BEV_INFO,
    CLASSES,
    CLASSES_TYPE,
    DEPTH,
    DEPTH_CAMERA_INFO,
    DEPTH_COLOR,
    FRAME_TOPICS,
    GRID_TOPICS,
    INSTANCES,
    MARKERS,
    OCCUPANCY,
    PANOPTIC_COLOR,
    PANOPTIC_IDS,
    POINTS,
    build_output_messages,
    pipeline_outputs,
)
from depth_panoptic_ros.ros.codecs.sensor_frame import FrameRejected, messages_to_frame
from depth_panoptic_ros.ros.codecs.serialized_input import SerializedInput, input_kind
from depth_panoptic_ros.ros.codecs.validation import InvalidMessage, check_arrival
from depth_panoptic_ros.ros.runtime.diagnostics import (
    NOT_LOADED,
    FrameStatistics,
    ModelState,
    diagnostic_status,
    idle_status,
)
from depth_panoptic_ros.ros.runtime.executor import make_executor
from depth_panoptic_ros.ros.runtime.latest_slot import LatestSlot
from depth_panoptic_ros.ros.runtime.launch_arguments import LARGE_DATA_PROFILE, PROFILES_ENV
from depth_panoptic_ros.ros.runtime.main import StopSignals
from depth_panoptic_ros.ros.runtime.parameters import NodeParameters, declare_parameters
from depth_panoptic_ros.ros.runtime.qos import (
    AdaptiveSubscription,
    qos_overrides,
    transient_local_qos,
)
from depth_panoptic_ros.ros.runtime.sync import NS_PER_S, make_synchronizer, stamp_ns
from depth_panoptic_ros.ros.runtime.transforms import TransformSource
from depth_panoptic_ros.ros.runtime.worker import FrameWorker

NODE_NAME = "depth_panoptic_node"
TIMING = "~/timing"
DIAGNOSTICS = "/diagnostics"
OUTPUT_QUEUE_DEPTH = 5  # reliable, keep last: compatible with best-effort and reliable subscribers
LOG_THROTTLE_S = 2.0
REPORT_PERIOD_S = 1.0
WORKER_JOIN_TIMEOUT_S = 10.0
WORKER_NAME = "depth_panoptic_worker"
SPIN_PERIOD_S = 0.1  # how soon a stop request is seen while idle
FINALIZED = "finalized"  # the lifecycle state after shutdown: the process ends
# outputs.<switch> parameter -> the per-frame topics it creates
SWITCHED_TOPICS: dict[str, tuple[str, ...]] = {
    "ids": (PANOPTIC_IDS,),
    "color": (PANOPTIC_COLOR,),
    "depth_color": (DEPTH_COLOR,),
    "depth": (DEPTH, DEPTH_CAMERA_INFO),
    "instances": (INSTANCES,),
    "points": (POINTS,),
    "markers": (MARKERS,),
    "grid": (OCCUPANCY, BEV, BEV_INFO),
}
MODEL_FREE_OUTPUTS = frozenset({"depth", "cloud"})  # pipeline outputs that exist without a model
# Child loggers: throttling one kind of problem must never hide another.
LOG_SOURCES = ("image", "camera_info", "lidar", "tf", "pipeline", "sync")

if TYPE_CHECKING:
    from depth_panoptic_ros.model import DepthPanopticModel


@dataclasses.dataclass(frozen=True)
class NodeInputTopics:
    """Relative input names of a mode; a set is the images (left first) followed by the LiDAR cloud."""

    images: tuple[str, ...]
    camera_infos: tuple[str, ...]
    lidar: str | None

    @classmethod
    def of(cls, params: NodeParameters) -> NodeInputTopics:
        cameras = ("",) if params.mode == "mono" else ("left/", "right/")
        return cls(
            images=tuple(f"{c}image" for c in cameras),
            camera_infos=tuple(f"{c}camera_info" for c in cameras),
            lidar="lidar" if params.use_lidar else None,
        )


def load_node_pipeline(params: NodeParameters, logger: RcutilsLogger) -> tuple[Pipeline, ModelState]:
    """The pipeline of the parameters. A bad pipeline_config or a model that cannot be loaded raises (the node's
    configure transition then fails; an empty model_path is the explicit depth-only choice). The model's
    recorded pipeline settings apply unless pipeline_config states others, which is logged once and shown in
    the diagnostics."""
    explicit = load_pipeline_settings(params.pipeline_config)

    def pipeline(model: DepthPanopticModel | None) -> Pipeline:
        config, changed = bind_to_model(explicit, None if model is None else model.pipeline_settings)
        config = dataclasses.replace(config, cloud=params.cloud, grid=params.grid, things=params.things)
        return Pipeline(config, model, changed)

    if not params.model_path:
        return pipeline(None), ModelState("none: model_path is empty (classical depth only)")
    pipeline(None)  # checks pipeline_config before the model loads
    try:
        from depth_panoptic_ros.model import load_model

        path = resolve_path(params.model_path)
        model = load_model(
            path, device=params.device, precision=params.precision, compile=params.compile, cuda_graph=params.cuda_graph
        )
        if params.compile:  # compile now, at start, so that the first frame does not wait for it
            started = time.perf_counter()
            model.warm_up()
            logger.info(f"networks compiled and warmed up in {time.perf_counter() - started:.1f} s")
    except Exception as exc:  # file, format, device or torch problem alike: one message naming the parameter
        raise ValueError(f"cannot load model_path {params.model_path!r}: {exc}") from exc
    if params.merge:
        try:
            model.use_merge(params.merge)
        except ValueError as exc:
            logger.error(f"merge {params.merge!r}: {exc}; running the model's stored merge {model.merge!r}")
    if params.min_thing_score != -1.0:  # checked by NodeParameters
        model.use_min_thing_score(params.min_thing_score)
    loaded = pipeline(model)
    compiled = ", compiled" if params.compile else ", CUDA graphs" if params.cuda_graph else ""
    description = (
        f"loaded {path} ({params.device}, {params.precision}{compiled}, merge {model.merge}, thing score >= "
        f"{model.inference.config.describe_thing_cut()}); "
        f"depth: {loaded.depth_source}"
    )
    if loaded.settings_warning:
        logger.warning(loaded.settings_warning)
        description += f"; {loaded.settings_warning}"
    return loaded, ModelState(description)


@dataclasses.dataclass(frozen=True)
class MeasuredSet:
    """An input set between the two halves of its processing: what ``_finish`` needs, ``wanted`` (topics) and
    ``outputs`` (what the pipeline computes for them) decided once."""

    header: Header
    frame: SensorFrame
    products: Products
    wanted: set[str]
    outputs: set[str]
    start: float  # time.perf_counter() when its processing started
    inputs_ms: float


class DepthPanopticNode(LifecycleNode):
    """A managed node (see docs/node.md, "Lifecycle"): parameters are read and checked once, at construction
    (they are read-only, so no transition could change them); configure reads the files they name (model,
    pipeline_config) and creates the outputs; activate subscribes and starts the worker; deactivate unsubscribes
    and stops it, keeping the model; cleanup releases the model and the outputs. The diagnostics timer lives
    outside that cycle, so /diagnostics names the state in every state. With ``autostart`` the node configures
    and activates itself."""

    def __init__(self, **node_options: Any) -> None:
        super().__init__(NODE_NAME, **node_options)
        # First, so that destroy_node works on a node whose set-up failed (rclpy's context destroys it too).
        self._worker: FrameWorker[tuple[SerializedInput, ...], MeasuredSet] | None = None
        self._params = params = declare_parameters(self)
        self._extrinsic = self._lidar_to_camera() if params.use_lidar else None
        self._ground = self._camera_to_ground()
        self._loggers = {source: self.get_logger().get_child(source) for source in LOG_SOURCES}
        self._stats = FrameStatistics()
        self._slot: LatestSlot[tuple[SerializedInput, ...]] = LatestSlot()
        self._pipeline: Pipeline | None = None
        self._model_state = NOT_LOADED
        self._configure_error = ""  # why the last configure failed, until one succeeds
        self._frame_publishers: dict[str, LifecyclePublisher] = {}
        self._timing: LifecyclePublisher | None = None
        self._classes: LifecyclePublisher | None = None

        inputs = NodeInputTopics.of(params)
        image_type = CompressedImage if params.use_compressed else Image
        suffix = "/compressed" if params.use_compressed else ""
        self._image_topics = [self.resolve_topic_name(t) + suffix for t in inputs.images]
        self._info_topics = [self.resolve_topic_name(t) for t in inputs.camera_infos]
        self._lidar_topics = [self.resolve_topic_name(inputs.lidar)] if inputs.lidar else []
        self._reset_inputs()
        # Subscribed while active; their QoS parameters are declared and checked now, with the others.
        self._inputs: dict[str, AdaptiveSubscription] = {}
        # Images and clouds arrive serialized: only the sets the worker takes are deserialized (serialized_input).
        self._input_types = [image_type] * len(self._image_topics) + [PointCloud2] * len(self._lidar_topics)
        for index, (topic, msg_type) in enumerate(zip(self._sync.topics, self._input_types, strict=True)):
            self._inputs[topic] = AdaptiveSubscription(self, msg_type, topic, partial(self._on_input, index), raw=True)
        for index, topic in enumerate(self._info_topics):
            self._inputs[topic] = AdaptiveSubscription(self, CameraInfo, topic, partial(self._on_camera_info, index))

        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self._last_report = (self._started_ns, self._stats.snapshot())
        # Steady clock: diagnostics and the no-input warning keep running while a replayed bag is paused.
        self.create_timer(REPORT_PERIOD_S, self._report, clock=Clock(clock_type=ClockType.STEADY_TIME))
        if not params.autostart:
            self.get_logger().info(
                f"unconfigured (autostart is false): waiting for `ros2 lifecycle set {self.get_fully_qualified_name()}"
                " configure`, then activate"
            )
        elif self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @property
    def lifecycle_state(self) -> str:
        """The current state's label (unconfigured, inactive, active, finalized, or a transition's)."""
        return self._state_machine.current_state[1]  # rclpy keeps it there; it has no public getter

    # -- lifecycle transitions (executor thread) -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Loads the model and creates the outputs (publishing nothing until activated). A file that cannot be
        read fails the transition: the node stays unconfigured, saying why in the log and the diagnostics."""
        try:
            self._pipeline, self._model_state = load_node_pipeline(self._params, self.get_logger())
        except Exception as exc:  # a bad file, device or torch problem: the operator fixes it and configures again
            self._configure_error = f"configure failed: {exc}"
            self.get_logger().error(f"{self._configure_error}; the node stays unconfigured")
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        self._create_outputs()
        outputs = sorted(self.resolve_topic_name(t) for t in self._frame_publishers)
        self.get_logger().info(
            f"configured ({self._params.mode}): model {self._model_state.description}; outputs {', '.join(outputs)}"
        )
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enables the outputs, then subscribes and starts the worker on fresh inputs."""
        result = super().on_activate(state)
        if self._classes is not None:  # transient local: late subscribers get it too
            header = Header(stamp=self.get_clock().now().to_msg())
            self._classes.publish(class_table_to_msg(self._pipeline.class_table, header))
        self._reset_inputs()
        for subscription in self._inputs.values():
            subscription.subscribe()
        self._slot = LatestSlot()
        self._worker = FrameWorker(
            self._slot, self._measure, self._finish, self._failed, WORKER_NAME, self._params.look_ahead
        )
        self._worker.start()
        self.get_logger().info(f"active: inputs {', '.join(self._sync.topics + self._info_topics)}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribes and stops the worker (the frame in progress is finished and published); the model stays."""
        self._stop_processing()
        self.get_logger().info("inactive: inputs unsubscribed, model kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: model and outputs released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any state: what deactivate and cleanup would do, as far as the node got."""
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised (a bug: expected failures return FAILURE): release everything, back to unconfigured."""
        self.get_logger().error(f"a transition from {state.label} raised; releasing everything")
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        """Unsubscribes, then stops the worker at its next stage boundary (the frame in progress is finished and
        published); the queued inputs, and with look_ahead a set measured but not finished, are dropped. Does nothing
        when not active."""
        if self._worker is None:
            return
        for subscription in self._inputs.values():
            subscription.unsubscribe()
        if not self._worker.stop(WORKER_JOIN_TIMEOUT_S):
            self.get_logger().warning(f"worker still busy after {WORKER_JOIN_TIMEOUT_S:g} s; leaving it behind")
        self._worker = None
        self._reset_inputs()

    def _release(self) -> None:
        """Drops the model (its memory goes with the last reference) and the output publishers."""
        for publisher in [*self._frame_publishers.values(), self._timing, self._classes]:
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._frame_publishers, self._timing, self._classes = {}, None, None
        self._pipeline, self._model_state = None, NOT_LOADED
        release_cached_memory(self._params.device)

    def _reset_inputs(self) -> None:
        """A fresh synchronizer and CameraInfo cache: nothing from before an activation leaks into it."""
        self._cameras: list[CameraModel | None] = [None] * len(self._info_topics)
        self._camera_errors = [""] * len(self._info_topics)
        self._info_counts = [0] * len(self._info_topics)
        self._info_keys: list[bytes | None] = [None] * len(self._info_topics)
        self._sync = make_synchronizer(
            self._image_topics + self._lidar_topics,
            self._params.sync_queue_size,
            self._params.sync_slop,
            self._on_set,
            on_time_jump=self._on_time_jump,
            warn=self._loggers["sync"].warning,
        )
        self._started_ns = time.monotonic_ns()

    # -- set-up ------------------------------------------------------------------------------------------------
    def _use_tf(self, parameter: str) -> bool:
        use_tf = self._params.use_tf and importlib.util.find_spec("tf2_ros") is not None
        if self._params.use_tf and not use_tf:
            self.get_logger().info(f"use_tf: tf2_ros is not installed, using the {parameter} parameter")
        return use_tf

    def _lidar_to_camera(self) -> TransformSource:
        """TF when asked for and installed, else the fixed lidar_to_camera (ValueError when that is empty)."""
        params = self._params
        fixed = () if self._use_tf("lidar_to_camera") else params.lidar_to_camera
        return TransformSource(self, fixed, params.tf_timeout)

    def _camera_to_ground(self) -> TransformSource | None:
        """The camera -> grid_frame source, like the LiDAR's, of the bird's-eye grid and of the thing check of
        frames whose LiDAR shows no ground; None when neither is on (or there is no model), or neither TF nor
        camera_to_ground can give it (logged, with what is lost)."""
        params = self._params
        users = {
            "the bird's-eye grid topics are not published": params.outputs.grid,
            "things are checked only in frames whose LiDAR shows the ground": params.things.enabled,
        }
        if not any(users.values()) or not params.model_path:
            return None
        fixed = () if self._use_tf("camera_to_ground") else params.camera_to_ground
        try:
            return TransformSource(self, fixed, params.tf_timeout, "camera_to_ground", share=self._extrinsic)
        except ValueError as exc:
            self.get_logger().warning(f"{exc}; {'; '.join(lost for lost, on in users.items() if on)}")
            return None

    def _create_outputs(self) -> None:
        """Lifecycle publishers (silent until activated) of the switched-on outputs that this pipeline can fill:
        no panoptic ones without a model."""
        has_model = self._pipeline.model is not None
        switches = dataclasses.asdict(self._params.outputs)
        self._frame_publishers = {
            topic: self.create_lifecycle_publisher(
                FRAME_TOPICS[topic][0], topic, OUTPUT_QUEUE_DEPTH, qos_overriding_options=qos_overrides()
            )
            for switch, topics in SWITCHED_TOPICS.items()
            if switches[switch] and (switch != "grid" or (self._ground is not None and has_model))
            for topic in topics
            if has_model or FRAME_TOPICS[topic][1] <= MODEL_FREE_OUTPUTS
        }
        if switches["timing"]:
            self._timing = self.create_lifecycle_publisher(FrameTiming, TIMING, OUTPUT_QUEUE_DEPTH)
        if self._pipeline.class_table is not None:
            self._classes = self.create_lifecycle_publisher(CLASSES_TYPE, CLASSES, transient_local_qos())

    def _adapt_inputs(self) -> None:
        """Re-evaluates each input's reliability against its current publishers (rosbag2's rule)."""
        for topic, subscription in self._inputs.items():
            policy = subscription.update()
            if policy is not None:
                self.get_logger().info(f"{topic}: publishers changed; subscription is now {policy.name.lower()}")

    # -- callbacks (executor thread): cheap, never wait for inference -------------------------------------------
    def _on_input(self, index: int, data: bytes) -> None:
        """Reads the length, header and size of a serialized image or cloud and rejects a bad stamp or an oversized
        message before it is queued: neither may enter the synchronizer. The rest stays serialized."""
        msg_type = self._input_types[index]
        try:
            msg = SerializedInput(msg_type, data, self._params.limits)
            check_arrival(msg.head, self._params.limits)
        except InvalidMessage as exc:
            reason = f"{self._sync.topics[index]} rejected: {exc}"
            self._stats.count_skipped(reason)
            self._loggers[input_kind(msg_type)].warning(reason, throttle_duration_sec=LOG_THROTTLE_S)
            return
        self._sync.add(index, msg)

    def _on_set(self, *msgs: Any) -> None:
        self._stats.count_set()
        self._slot.put(msgs)

    def _on_camera_info(self, index: int, msg: CameraInfo) -> None:
        self._info_counts[index] += 1
        key = calibration_key(msg)
        if key == self._info_keys[index] and self._cameras[index] is not None:
            return  # the same calibration again (drivers repeat it with every image): the model stands
        self._info_keys[index] = key
        try:
            self._cameras[index] = camera_model_from_info(msg)
        except ValueError as exc:
            self._cameras[index], self._camera_errors[index] = None, str(exc)
            self._loggers["camera_info"].error(
                f"{self._info_topics[index]}: {exc}; frames are skipped until a valid CameraInfo arrives",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _on_time_jump(self, topic: str, previous_ns: int, stamp_ns: int) -> None:
        if self._extrinsic is not None:
            self._extrinsic.clear()  # transforms of the old timeline lie in the future of the new one

    def _report(self) -> None:
        now_ns = time.monotonic_ns()
        last_ns, before = self._last_report
        snapshot = self._stats.snapshot()
        self._last_report = (now_ns, snapshot)
        name, state = f"{self.get_fully_qualified_name()}: pipeline", self.lifecycle_state
        if state != "active":
            status = idle_status(name, self._params.device, state, self._model_state, self._configure_error)
        else:
            self._adapt_inputs()
            problem = self._sync_problem(now_ns)
            if problem:
                self._loggers["sync"].warning(problem, throttle_duration_sec=self._params.no_sync_warning_s)
            status = diagnostic_status(
                name,
                self._params.device,
                snapshot,
                before,
                max((now_ns - last_ns) / NS_PER_S, 1e-3),
                self._model_state,
                self._slot.dropped,
                self._receive_counts(),
                problem,
            )
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics.publish(DiagnosticArray(header=header, status=[status]))

    def _receive_counts(self) -> dict[str, int]:
        topics = self._sync.topics + self._info_topics
        return dict(zip(topics, self._sync.receive_counts + self._info_counts, strict=True))

    def _sync_problem(self, now_ns: int) -> str | None:
        """Why no synchronized set came for no_sync_warning_s: the silent inputs, or the closest stamps seen."""
        timeout = self._params.no_sync_warning_s
        waiting_ns = now_ns - (self._sync.last_set_ns or self._started_ns)
        if waiting_ns < timeout * NS_PER_S:
            return None
        received = ", ".join(f"{topic} {n}" for topic, n in self._receive_counts().items())
        silent = self._sync.silent_topics(now_ns, timeout)
        if silent:
            why = f"nothing received for {timeout:g} s on {', '.join(silent)}" + self._large_data_hint(silent)
        else:
            why = self._sync.unmatched_reason()
        return f"no synchronized input for {waiting_ns / NS_PER_S:.1f} s (messages received: {received}); {why}"

    def _large_data_hint(self, silent: list[str]) -> str:
        """The likely cause when a silent input has a best-effort publisher matched while smaller inputs arrive."""
        smaller_arrive = len(silent) < len(self._sync.topics) or any(self._info_counts)
        lossy = [
            t
            for t in silent
            if self._inputs[t].publisher_count() > 0 and self._inputs[t].reliability == QoSReliabilityPolicy.BEST_EFFORT
        ]
        if not lossy or not smaller_arrive:
            return ""
        return (
            f"; {', '.join(lossy)} has a best-effort publisher matched, but its full-size samples are lost whole by "
            "Fast DDS's default transports: run every process of the stack (driver or bag player, this node) with "
            f"{PROFILES_ENV}={share_dir() / LARGE_DATA_PROFILE} (launch files: large_data:=true) or "
            "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA, or make the publisher reliable"
        )

    # -- worker threads (worker.py) ----------------------------------------------------------------------------
    def _failed(self, item: tuple[SerializedInput, ...] | MeasuredSet, error: Exception) -> bool:
        """Counts and logs (throttled) a set that raised; False when shutting down (the worker then ends)."""
        if isinstance(error, FrameRejected):
            stamp = (item.header if isinstance(item, MeasuredSet) else item[0].header).stamp
            reason = f"frame {stamp.sec}.{stamp.nanosec:09d} skipped: {error}"
            self._stats.count_skipped(reason)
            self._loggers[error.source].warning(reason, throttle_duration_sec=LOG_THROTTLE_S)
            return True
        if not self.context.ok():
            return False  # shutting down: publishers are going away under us
        # a bug must not silently end the worker: report it and serve the next set
        self._stats.count_skipped(f"internal error: {error!r}")
        trace = "".join(traceback.format_exception(error))
        self.get_logger().error(f"frame failed: {error!r}\n{trace}", throttle_duration_sec=LOG_THROTTLE_S)
        return True

    def _measure(self, inputs: tuple[SerializedInput, ...]) -> MeasuredSet | None:
        """The first half of a set: the outputs it gets, its decoded frame, transforms and Pipeline.measure; None
        when no output has a subscriber."""
        start = time.perf_counter()
        wanted = {topic for topic, pub in self._frame_publishers.items() if pub.get_subscription_count() > 0}
        if not wanted:
            self._stats.count_idle()
            return None
        header = inputs[0].header
        frame = self._sensor_frame(self._decode(inputs))
        ground_error = None
        if wanted & set(GRID_TOPICS):
            ground_error = self._look_up_ground(frame, header)
            if ground_error is not None:  # the other outputs of this frame are still good
                wanted -= set(GRID_TOPICS)
                self._loggers["tf"].warning(
                    f"no bird's-eye grid for this frame: {ground_error}", throttle_duration_sec=LOG_THROTTLE_S
                )
        inputs_ms = (time.perf_counter() - start) * 1e3
        outputs = pipeline_outputs(wanted)
        try:
            products = self._pipeline.measure(frame, outputs)
            if products.ground is None and self._pipeline.checks_things(outputs):
                # no TF wait for a fallback: a LiDAR that never sees the ground must not delay every frame
                error = ground_error or self._look_up_ground(frame, header, wait=False)
                self._check_against_transform(frame, products, error)
        except ValueError as exc:
            raise FrameRejected("pipeline", str(exc)) from exc
        return MeasuredSet(header, frame, products, wanted, outputs, start, inputs_ms)

    def _finish(self, measured: MeasuredSet) -> None:
        """The second half: Pipeline.finish, then the messages, the timing and the statistics."""
        header, frame, wanted = measured.header, measured.frame, measured.wanted
        try:
            products = self._pipeline.finish(frame, measured.products, measured.outputs)
        except ValueError as exc:
            raise FrameRejected("pipeline", str(exc)) from exc
        publish_start = time.perf_counter()
        messages = build_output_messages(
            products, frame, header, self._pipeline.class_table, wanted, grid_frame=self._params.grid_frame
        )
        for topic, msg in messages.items():
            self._frame_publishers[topic].publish(msg)
        end = time.perf_counter()
        processing_ms = (end - measured.start) * 1e3
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns(header.stamp)) / 1e6
        self._stats.count_processed(processing_ms, latency_ms)
        if self._timing is not None:
            stages = {"inputs": measured.inputs_ms, **products.timings_ms, "messages": (end - publish_start) * 1e3}
            self._timing.publish(
                FrameTiming(
                    header=header,
                    processing_ms=processing_ms,
                    latency_ms=latency_ms,
                    stages=list(stages),
                    stage_ms=list(stages.values()),
                    dropped_total=self._slot.dropped,
                )
            )
        if "network" in products.timings_ms:
            trim_heap()  # after publishing: 15-40 ms per model frame on a CPU, none of it in the latency

    def _look_up_ground(self, frame: SensorFrame, header: Header, wait: bool = True) -> str | None:
        """Sets the frame's camera -> grid_frame transform (TransformSource.lookup's ``wait``); why it cannot,
        else None."""
        if self._ground is None:
            return "no ground transform (camera_to_ground empty and TF not used: see the start-up log)"
        try:
            frame.ground_T_camera = self._ground.lookup(self._params.grid_frame, header.frame_id, header.stamp, wait)
        except LookupError as exc:
            return str(exc)
        return None

    def _check_against_transform(self, frame: SensorFrame, products: Products, ground_error: str | None) -> None:
        """The thing check of a frame whose LiDAR shows no ground, against the ground transform (looked up only
        for such frames, without waiting); without one the frame's things go unchecked."""
        if ground_error is None:
            self._pipeline.check_against_transform(frame, products)
            return
        self._loggers["pipeline"].warning(
            f"no ground plane in this frame's LiDAR (fewer than {MIN_INLIERS} points, or {MIN_SHARE:.0%} of them, on "
            f"one level plane) and {ground_error}: its things are not checked against the ground (parameters things.*)",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def _decode(self, inputs: tuple[SerializedInput, ...]) -> list[Any]:
        """The messages of a set; FrameRejected names an input whose bytes are not its type."""
        messages = []
        for topic, msg in zip(self._sync.topics, inputs, strict=True):
            try:
                messages.append(msg.decode())
            except InvalidMessage as exc:
                raise FrameRejected(msg.kind, f"{topic}: {exc}") from exc
        return messages

    def _sensor_frame(self, msgs: list[Any]) -> SensorFrame:
        """Decoded, validated arrays of one set; FrameRejected names the input at fault."""
        n = len(self._image_topics)
        cameras = [self._camera(i) for i in range(n)]
        cloud = None
        if self._extrinsic is not None:
            cloud = (self._sync.topics[-1], msgs[n], self._lookup_extrinsic)
        try:
            images = list(zip(self._image_topics, msgs[:n], strict=True))
            return messages_to_frame(images, cameras, cloud, self._params.limits)
        except LookupError as exc:
            raise FrameRejected("tf", str(exc)) from exc

    def _lookup_extrinsic(self, camera_frame: str, cloud_header: Header) -> np.ndarray:
        return self._extrinsic.lookup(camera_frame, cloud_header.frame_id, cloud_header.stamp)

    def _camera(self, index: int) -> CameraModel:
        camera = self._cameras[index]
        if camera is None:
            topic, error = self._info_topics[index], self._camera_errors[index]
            detail = f"the last one was invalid: {error}" if error else f"{self._info_counts[index]} received"
            raise FrameRejected("camera_info", f"no valid CameraInfo on {topic} yet ({detail})")
        return camera

    def destroy_node(self) -> None:
        """Stops the worker at its next stage boundary (the frame in progress is finished and published), then
        the publishers it uses go away."""
        self._stop_processing()
        super().destroy_node()


def run_node(stop: StopSignals, args: list[str] | None = None) -> int:
    """Runs the node until ``stop`` is requested, the context is shut down or the node is finalized (its
    shutdown transition); 1 when it cannot start. A stop request takes the node through shutdown first."""
    keep_heap_for_reuse()  # every frame's multi-megabyte messages and arrays reuse the heap (device.py)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # signals are ``stop``'s
    try:
        if stop.requested:
            return 0
        try:
            node = DepthPanopticNode()
        except (ValueError, ParameterException) as exc:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 1
        executor = make_executor()
        executor.add_node(node)
        try:
            while not stop.requested and rclpy.ok() and node.lifecycle_state != FINALIZED:
                executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        except ExternalShutdownException:
            pass
        finally:
            if node.lifecycle_state != FINALIZED:
                node.get_logger().info("stopping: the frame in progress is finished first")
                node.trigger_shutdown()
            executor.remove_node(node)
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":  # `python -m ...runtime.node` still works; runtime.main also covers signals during imports
    from depth_panoptic_ros.ros.runtime.main import main

    raise SystemExit(main())
