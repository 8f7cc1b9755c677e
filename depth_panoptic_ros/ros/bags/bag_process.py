"""`bag process`: a recorded rosbag2 through the pipeline, offline, into a bag of the node's output topics.

It does what the node does with the same building blocks (decoders, approximate-time synchronizer, pipeline,
products_to_msgs), except that every synchronized set is processed (offline there is no newer set to prefer)
and outputs are recorded at the input image's record time, stamped with its header. The LiDAR -> camera
extrinsic comes from the bag's own TF tree when it links the two frames, else from a calibration file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader

from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.pipeline import Pipeline, Products
from depth_panoptic_ros.ros.bags.bag_io import (
    TF,
    TF_STATIC,
    BagWriter,
    describe_topics,
    open_bag,
    read_messages,
    topic_types,
)
from depth_panoptic_ros.ros.bags.bag_recovery import truncations
from depth_panoptic_ros.ros.codecs.camera_info import camera_model_from_info
from depth_panoptic_ros.ros.codecs.panoptic_msgs import class_table_to_msg
from depth_panoptic_ros.ros.codecs.products_to_msgs import (
    CLASSES,
    DEFAULT_GRID_FRAME,
    FRAME_TOPICS,
    build_output_messages,
    pipeline_outputs,
)
from depth_panoptic_ros.ros.codecs.sensor_frame import messages_to_frame
from depth_panoptic_ros.ros.codecs.validation import InvalidMessage, check_arrival
from depth_panoptic_ros.ros.runtime.sync import make_synchronizer, stamp_ns
from depth_panoptic_ros.ros.runtime.transforms import transform_to_matrix

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD = "sensor_msgs/msg/PointCloud2"
SYNC_QUEUE_SIZE = 10
SYNC_SLOP_S = 0.05  # half a LiDAR sweep at 10 Hz

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BagInputTopics:
    """The bag topics of one sensor set; lidar and the right camera are optional (one of them is needed)."""

    image: str
    camera_info: str
    lidar: str | None = None
    right_image: str | None = None
    right_camera_info: str | None = None

    @property
    def synchronized(self) -> list[str]:
        """Topics matched by stamp, image first; CameraInfo is cached per camera instead (it rarely changes)."""
        return [t for t in (self.image, self.right_image, self.lidar) if t is not None]


# The node's default input names (relative names resolved in the root namespace); synth-bag writes these.
MONO_TOPICS = BagInputTopics("/image", "/camera_info", "/lidar")
STEREO_TOPICS = BagInputTopics("/left/image", "/left/camera_info", "/lidar", "/right/image", "/right/camera_info")
_OPTIONS = {
    "image": "--image-topic",
    "camera_info": "--camera-info-topic",
    "lidar": "--lidar-topic",
    "right_image": "--right-image-topic",
    "right_camera_info": "--right-camera-info-topic",
}


def resolve_topics(types: Mapping[str, str], requested: Mapping[str, str] | None = None) -> BagInputTopics:
    """The input topics: those requested (field name of BagInputTopics -> topic), else the defaults, else the
    only topic of the right type. ValueError listing the bag's topics when that does not decide."""
    requested = dict(requested or {})
    unknown = set(requested) - set(_OPTIONS)
    if unknown:
        raise ValueError(f"unknown input(s) {sorted(unknown)}; expected some of {sorted(_OPTIONS)}")
    listing = f"the bag holds: {describe_topics(dict(types))}"

    def check(name: str, allowed: set[str]) -> str | None:
        topic = requested.get(name)
        if topic is None:
            return None
        if topic not in types:
            raise ValueError(f"topic {topic} ({_OPTIONS[name]}) is not in the bag; {listing}")
        if types[topic] not in allowed:
            raise ValueError(f"topic {topic} ({_OPTIONS[name]}) is {types[topic]}, expected {' or '.join(allowed)}")
        return topic

    def only(allowed: set[str], exclude: set[str | None], what: str, option: str) -> str | None:
        found = sorted(t for t, m in types.items() if m in allowed and t not in exclude)
        if len(found) > 1:
            raise ValueError(f"several {what} topics {found}: choose one with {option}; {listing}")
        return found[0] if found else None

    images = {IMAGE, COMPRESSED_IMAGE}
    right = check("right_image", images)
    if right is None and types.get(STEREO_TOPICS.right_image) == IMAGE:
        right = STEREO_TOPICS.right_image
    image = check("image", images) or next(
        (t for t in (MONO_TOPICS.image, STEREO_TOPICS.image) if types.get(t) in images), None
    )
    image = image or only(images, {right}, "image", _OPTIONS["image"])
    if image is None:
        raise ValueError(f"no camera image topic (sensor_msgs/Image or CompressedImage); {listing}")

    def camera_info(name: str, image_topic: str, exclude: set[str | None]) -> str:
        sibling = _sibling_camera_info(image_topic)
        topic = check(name, {CAMERA_INFO}) or (sibling if types.get(sibling) == CAMERA_INFO else None)
        topic = topic or only({CAMERA_INFO}, exclude, "CameraInfo", _OPTIONS[name])
        if topic is None:
            raise ValueError(f"no CameraInfo for {image_topic} (looked for {sibling}); {listing}")
        return topic

    right_info = None if right is None else camera_info("right_camera_info", right, set())
    info = camera_info("camera_info", image, {right_info})
    lidar = check("lidar", {POINT_CLOUD})
    if lidar is None:
        lidar = MONO_TOPICS.lidar if types.get(MONO_TOPICS.lidar) == POINT_CLOUD else None
        lidar = lidar or only({POINT_CLOUD}, set(), "PointCloud2", _OPTIONS["lidar"])
    if lidar is None and right is None:
        raise ValueError(f"no depth source: the bag has neither a LiDAR PointCloud2 nor a right image; {listing}")
    return BagInputTopics(image, info, lidar, right, right_info)


def _sibling_camera_info(image_topic: str) -> str:
    """image_transport's convention: /ns/image_raw[/compressed] -> /ns/camera_info."""
    base = image_topic.removesuffix("/compressed")
    return f"{base.rsplit('/', 1)[0]}/camera_info"


class TransformTree:
    """The rigid transforms of a bag's /tf_static (and /tf), looked up between any two frames like tf2.

    Each child frame has one parent. /tf_static wins; /tf edges are taken as rigid (their first value), which
    holds for sensor mounts: a LiDAR -> camera path never goes through a moving frame such as odom.
    """

    def __init__(self) -> None:
        self._parent: dict[str, tuple[str, np.ndarray]] = {}  # child -> (parent, parent_T_child)
        self._static: set[str] = set()

    def add(self, msg: Any, static: bool) -> None:
        """Adds the transforms of a tf2_msgs/TFMessage."""
        for stamped in msg.transforms:
            child = stamped.child_frame_id.lstrip("/")
            if child in self._static or (not static and child in self._parent):
                continue
            self._parent[child] = (stamped.header.frame_id.lstrip("/"), transform_to_matrix(stamped.transform))
            if static:
                self._static.add(child)

    @property
    def frames(self) -> list[str]:
        return sorted(set(self._parent) | {parent for parent, _ in self._parent.values()})

    def _ancestors(self, frame: str) -> dict[str, np.ndarray]:
        """{ancestor: ancestor_T_frame}, from ``frame`` itself up to its root."""
        chain = {frame: np.eye(4)}
        while frame in self._parent:
            parent, parent_T_frame = self._parent[frame]
            if parent in chain:  # a cycle: malformed TF, stop at the first repeat
                break
            chain[parent] = parent_T_frame @ chain[frame]
            frame = parent
        return chain

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """(4, 4) target_T_source mapping points of ``source`` into ``target``; None when they are not linked."""
        source_chain = self._ancestors(source.lstrip("/"))
        target_chain = self._ancestors(target.lstrip("/"))
        common = next((frame for frame in source_chain if frame in target_chain), None)
        if common is None:
            return None
        return np.linalg.inv(target_chain[common]) @ source_chain[common]


def read_transform_tree(reader: Reader) -> TransformTree:
    types = topic_types(reader)
    tree = TransformTree()
    for topic, _, msg in read_messages(reader, [t for t in (TF_STATIC, TF) if t in types]):
        tree.add(msg, static=topic == TF_STATIC)
    return tree


@dataclass
class ProcessSummary:
    """images: image messages read; frames: synchronized sets processed into outputs; skipped: sets the
    pipeline rejected and messages rejected on arrival (first_error says why); written: messages per output topic."""

    images: int = 0
    frames: int = 0
    skipped: int = 0
    first_error: str | None = None
    written: dict[str, int] = field(default_factory=dict)
    cut_short: list[str] = field(default_factory=list)  # what a recording cut short lost (bag_io.Truncation)


FrameHook = Callable[[int, SensorFrame, Products], None]


class BagProcessor:
    """Turns synchronized message sets of one bag into SensorFrames and writes the pipeline's outputs."""

    def __init__(
        self,
        reader: Reader,
        topics: BagInputTopics,
        pipeline: Pipeline,
        writer: BagWriter,
        calibration: Path | None,
        on_frame: FrameHook | None,
        grid_frame: str = DEFAULT_GRID_FRAME,
    ) -> None:
        """``calibration``: a YAML/KITTI file whose T_cam_lidar is used where the bag's TF does not link the
        LiDAR to the camera. ``grid_frame``: the ground frame of the bird's-eye grid, computed for the frames
        whose camera the bag's TF links to it (without such a link the grid topics are left out)."""
        self.reader, self.topics, self.pipeline, self.writer = reader, topics, pipeline, writer
        self.on_frame = on_frame
        self.summary = ProcessSummary()
        self.tree = read_transform_tree(reader)
        self.camera_infos = self._first_camera_infos()
        self.fallback_extrinsic = None if calibration is None or topics.lidar is None else self._calibrated(calibration)
        self._extrinsics: dict[tuple[str, str], np.ndarray] = {}
        self._outputs = pipeline_outputs(FRAME_TOPICS)
        self.grid_frame = grid_frame

    def _first_camera_infos(self) -> dict[str, Any]:
        """The first CameraInfo of each camera, so that a set recorded just before its CameraInfo is usable."""
        wanted = {t for t in (self.topics.camera_info, self.topics.right_camera_info) if t is not None}
        infos: dict[str, Any] = {}
        for topic, _, msg in read_messages(self.reader, wanted):
            infos.setdefault(topic, msg)
            if len(infos) == len(wanted):
                break
        missing = wanted - set(infos)
        if missing:
            raise ValueError(f"CameraInfo topic(s) {sorted(missing)} hold no messages")
        return infos

    def _calibrated(self, path: Path) -> np.ndarray:
        """T_cam_lidar of the calibration file, read up front so that a bad file stops the run at once."""
        from depth_panoptic_ros.data.calibration import load_any_calibration

        camera = camera_model_from_info(self.camera_infos[self.topics.camera_info])
        T = load_any_calibration(path, image_size=(camera.width, camera.height)).T_cam_lidar
        if T is None:
            raise ValueError(f"{path}: holds no LiDAR -> camera transform (T_cam_lidar)")
        return T

    def extrinsic(self, camera_frame: str, lidar_frame: str) -> np.ndarray:
        """camera_T_lidar from the bag's TF tree, else from the calibration file; LookupError when neither."""
        key = (camera_frame, lidar_frame)
        if key not in self._extrinsics:
            T = self.tree.lookup(camera_frame, lidar_frame)
            T = self.fallback_extrinsic if T is None else T
            if T is None:
                raise LookupError(
                    f"no LiDAR -> camera extrinsic: the bag's TF has no path from {lidar_frame!r} to "
                    f"{camera_frame!r} (TF frames: {', '.join(self.tree.frames) or 'none'}) and no --calib was given"
                )
            self._extrinsics[key] = T
        return self._extrinsics[key]

    def frame(self, msgs: dict[str, Any]) -> SensorFrame:
        """The set as the pipeline's input; ValueError (FrameRejected) for a message that cannot be used."""
        t = self.topics
        images = [(t.image, msgs[t.image])]
        cameras = [camera_model_from_info(self.camera_infos[t.camera_info])]
        if t.right_image is not None:
            images.append((t.right_image, msgs[t.right_image]))
            cameras.append(camera_model_from_info(self.camera_infos[t.right_camera_info]))
        cloud = None if t.lidar is None else (t.lidar, msgs[t.lidar], self._cloud_extrinsic)
        frame = messages_to_frame(images, cameras, cloud)
        frame.ground_T_camera = self.tree.lookup(self.grid_frame, msgs[t.image].header.frame_id)
        return frame

    def _cloud_extrinsic(self, camera_frame: str, cloud_header: Any) -> np.ndarray:
        return self.extrinsic(camera_frame, cloud_header.frame_id)

    def process(self, msgs: dict[str, Any], record_ns: int) -> None:
        """One synchronized set -> output messages at the image's record time; undecodable or rejected sets are
        skipped and counted (as the node skips them), a missing extrinsic stops the run (LookupError)."""
        header = msgs[self.topics.image].header
        try:
            frame = self.frame(msgs)
            products = self.pipeline.run(frame, self._outputs)
        except ValueError as exc:
            self._skip(str(exc), f"frame at {stamp_ns(header.stamp)} ns skipped")
            return
        class_table = self.pipeline.class_table
        if class_table is not None and self.summary.frames == 0:
            self.writer.write(f"/{CLASSES}", class_table_to_msg(class_table, header), record_ns, latched=True)
        messages = build_output_messages(products, frame, header, class_table, FRAME_TOPICS, grid_frame=self.grid_frame)
        for topic, msg in messages.items():
            self.writer.write(f"/{topic}", msg, record_ns)
        if self.on_frame is not None:
            self.on_frame(self.summary.frames, frame, products)
        self.summary.frames += 1

    def _skip(self, reason: str, what: str) -> None:
        self.summary.skipped += 1
        self.summary.first_error = self.summary.first_error or reason
        _log.warning("%s: %s", what, reason)

    def run(self, slop_s: float, progress: bool) -> None:
        """Feeds the bag in record order through the synchronizer and processes each set as it completes."""
        from tqdm import tqdm

        topics = self.topics
        ready: list[tuple[Any, ...]] = []
        sync = make_synchronizer(topics.synchronized, SYNC_QUEUE_SIZE, slop_s, lambda *msgs: ready.append(msgs))
        index = {topic: i for i, topic in enumerate(topics.synchronized)}
        infos = {topics.camera_info, topics.right_camera_info} - {None}
        record_times: dict[int, int] = {}  # image stamp -> its record time
        total = sum(c.msgcount for c in self.reader.connections if c.topic == topics.image)
        with tqdm(total=total, unit="img", desc="bag process", disable=not progress) as bar:
            for topic, time_ns, msg in read_messages(self.reader, [*index, *infos]):
                if topic in infos:
                    self.camera_infos[topic] = msg
                    continue
                if topic == topics.image:
                    self.summary.images += 1
                    bar.update()
                try:  # as the node does: a bad stamp would corrupt the synchronizer's timeline
                    check_arrival(msg)
                except InvalidMessage as exc:
                    self._skip(f"{topic} rejected: {exc}", f"message recorded at {time_ns} ns")
                    continue
                if topic == topics.image:
                    record_times[stamp_ns(msg.header.stamp)] = time_ns
                sync.add(index[topic], msg)
                for matched in ready:
                    msgs = dict(zip(topics.synchronized, matched, strict=True))
                    self.process(msgs, record_times.pop(stamp_ns(msgs[topics.image].header.stamp), time_ns))
                    bar.set_postfix(frames=self.summary.frames, refresh=False)
                ready.clear()
                _forget_oldest(record_times)


def process_bag(
    in_path: str | Path,
    out_path: str | Path,
    pipeline: Pipeline,
    *,
    topics: Mapping[str, str] | None = None,
    calibration: str | Path | None = None,
    slop_s: float = SYNC_SLOP_S,
    progress: bool = True,
    on_frame: FrameHook | None = None,
    grid_frame: str = DEFAULT_GRID_FRAME,
) -> ProcessSummary:
    """Processes every synchronized set of the bag at ``in_path`` into a new mcap bag at ``out_path``.

    ``topics`` overrides input topics by BagInputTopics field name. ``on_frame(index, frame, products)`` runs after
    each frame is written (exports, progress hooks). The output bag is closed whatever happens, so an
    interrupted run (KeyboardInterrupt) leaves a readable bag of the frames done.
    """
    with open_bag(in_path) as reader:
        try:
            resolved = resolve_topics(topic_types(reader), topics)
        except ValueError as exc:
            raise ValueError(f"{in_path}: {exc}") from None
        with BagWriter(out_path) as writer:
            calibration = None if calibration is None else Path(calibration)
            processor = BagProcessor(reader, resolved, pipeline, writer, calibration, on_frame, grid_frame)
            processor.run(slop_s, progress)
            processor.summary.written = dict(writer.counts)
            processor.summary.cut_short = [t.describe() for t in truncations(reader)]
            return processor.summary


def _forget_oldest(record_times: dict[int, int], keep: int = 4 * SYNC_QUEUE_SIZE) -> None:
    """Bounds the memory of long bags: images this far behind have left the synchronizer's queues."""
    for stamp in sorted(record_times)[:-keep]:
        del record_times[stamp]
