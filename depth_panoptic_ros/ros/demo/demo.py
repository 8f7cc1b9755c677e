"""`depth-panoptic demo` (what `make demo` runs): the node end to end over real ROS 2 topics, on synthetic data.

A synthetic bag is written, the node is started as its own process (as `ros2 run` would), the bag is played
to it, every output topic is recorded into a bag, and the last processed frame is saved as previews. Wall
time is used, not /clock: the outputs keep the input stamps either way, and the node needs no use_sim_time.
Latency is measured here, from publishing an image to receiving the last output stamped with it, since both
ends are in this process; frames the node had no time for are dropped by it (latest-only), not queued.
"""

from __future__ import annotations

import array
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_panoptic_ros.geometry.backproject import PanopticCloud
from depth_panoptic_ros.ros.bags.bag_io import BagWriter, open_bag, read_messages
from depth_panoptic_ros.ros.bags.bag_process import MONO_TOPICS, read_transform_tree
from depth_panoptic_ros.ros.bags.synthetic_bag import write_synthetic_bag
from depth_panoptic_ros.ros.codecs.byte_buffers import message_bytes
from depth_panoptic_ros.ros.codecs.products_to_msgs import (
    CLASSES,
    CLASSES_TYPE,
    DEPTH,
    DEPTH_COLOR,
    FRAME_TOPICS,
    INSTANCES,
    PANOPTIC_COLOR,
    POINTS,
)
from depth_panoptic_ros.ros.runtime.sync import stamp_ns

DEMO_SIZE = (640, 192)  # KITTI's aspect ratio at about half its size: seconds per frame on one CPU core at most
DEMO_RATE_HZ = 2.0  # camera rate of the demo bag, so that a CPU-only node keeps up with most frames
NODE_START_TIMEOUT_S = 120.0  # loading the default model on a slow CPU
DRAIN_TIMEOUT_S = 60.0  # after the last input, wait this long at most for its outputs (a busy CPU: seconds a frame)
QUIET_S = 1.0  # once the last input's first output arrived, stop when no output arrived for this long
STOP_TIMEOUT_S = 10.0
DOMAIN_ID_RANGE = (150, 200)  # away from the default 0 and from the test suite's 40..99


@dataclass(frozen=True)
class DemoSummary:
    frames_in: int
    frames_out: int
    median_latency_ms: float | None
    model: str  # the model file, or why there is none
    out: Path

    def line(self) -> str:
        latency = "n/a" if self.median_latency_ms is None else f"{self.median_latency_ms:.0f} ms"
        return (
            f"demo: {self.frames_in} frames in, {self.frames_out} out, median latency {latency}; model: {self.model}; "
            f"outputs {self.out / 'outputs'}, previews in {self.out}"
        )


class Recorder:
    """Subscribes to every output of the node, writes each message to a bag as it arrives (receive time, like
    `ros2 bag record`) and notes when the last output of each input stamp arrived."""

    def __init__(self, node: Any, writer: BagWriter) -> None:
        from rclpy.qos import QoSProfile

        from depth_panoptic_ros.ros.runtime.qos import transient_local_qos

        self.writer = writer
        self.lock = threading.Lock()
        self.last_arrival: dict[int, float] = {}  # input stamp ns -> monotonic s
        self.subscriptions = [
            node.create_subscription(cls, f"/{topic}", self._callback(f"/{topic}"), QoSProfile(depth=10))
            for topic, (cls, _) in FRAME_TOPICS.items()
        ]
        self.subscriptions.append(
            node.create_subscription(CLASSES_TYPE, f"/{CLASSES}", self._callback(f"/{CLASSES}"), transient_local_qos())
        )

    def _callback(self, topic: str):
        def record(msg: Any) -> None:
            arrival = time.monotonic()
            header = msg.header if hasattr(msg, "header") else (msg.markers[0].header if msg.markers else None)
            with self.lock:
                self.writer.write(topic, msg, time.time_ns(), latched=topic == f"/{CLASSES}")
                if header is not None and topic != f"/{CLASSES}":
                    self.last_arrival[stamp_ns(header.stamp)] = arrival

        return record

    def answered(self, stamp: int) -> bool:
        with self.lock:
            return stamp in self.last_arrival

    def latest(self) -> float:
        """When the newest output arrived (monotonic s; 0 before any)."""
        with self.lock:
            return max(self.last_arrival.values(), default=0.0)


def run_demo(out: str | Path, frames: int = 12, *, size: tuple[int, int] = DEMO_SIZE) -> DemoSummary:
    """Writes out/input (bag), out/outputs (recorded outputs), previews and out/node.log; returns the summary."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from depth_panoptic_ros.resources import default_model_path
    from depth_panoptic_ros.ros.bags.bag_play import BagPlayer

    out = Path(out)
    for old in (out / "input", out / "outputs"):
        shutil.rmtree(old, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    bag = write_synthetic_bag(out / "input", frames, size=size, rate_hz=DEMO_RATE_HZ)
    model_file = default_model_path()
    model = str(model_file) if model_file.is_file() else ""
    model_text = str(model_file) if model else f"none ({model_file} not found): classical depth only, no panoptic"

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    low, high = DOMAIN_ID_RANGE
    os.environ.setdefault("ROS_DOMAIN_ID", str(low + os.getpid() % (high - low)))
    publish_times: dict[int, float] = {}
    context = rclpy.Context()
    with _node_process(_synthetic_extrinsic(bag.path), model, out / "node.log") as node_process:
        rclpy.init(context=context)
        try:
            demo_node = rclpy.create_node("depth_panoptic_demo", context=context)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(demo_node)
            with BagWriter(out / "outputs") as writer:
                recorder = Recorder(demo_node, writer)
                threading.Thread(target=executor.spin, daemon=True).start()
                inputs = [MONO_TOPICS.image, MONO_TOPICS.camera_info, MONO_TOPICS.lidar]
                player = BagPlayer(demo_node, bag.path, inputs)  # /tf_static: the node gets lidar_to_camera
                _wait_for_node(node_process, player, demo_node, out / "node.log")

                def on_publish(topic: str, time_ns: int) -> None:
                    if topic == MONO_TOPICS.image:
                        publish_times[time_ns] = time.monotonic()  # synthetic bags record images at their stamp

                player.play(on_publish=on_publish)
                _drain(recorder, max(publish_times))
                executor.shutdown(timeout_sec=1.0)
        finally:
            rclpy.try_shutdown(context=context)
    latencies = [
        (arrival - publish_times[stamp]) * 1e3
        for stamp, arrival in recorder.last_arrival.items()
        if stamp in publish_times
    ]
    write_previews(out / "outputs", bag.path, out)
    return DemoSummary(
        frames_in=len(publish_times),
        frames_out=len(latencies),
        median_latency_ms=statistics.median(latencies) if latencies else None,
        model=model_text,
        out=out,
    )


def _synthetic_extrinsic(bag: Path) -> np.ndarray:
    """camera_T_lidar from the bag's /tf_static: the node gets it as a parameter (no tf2_ros in the wheels)."""
    from depth_panoptic_ros.ros.bags.synthetic_bag import CAMERA_FRAME, LIDAR_FRAME

    with open_bag(bag) as reader:
        return read_transform_tree(reader).lookup(CAMERA_FRAME, LIDAR_FRAME)


def _wait_for_node(process: subprocess.Popen, player: Any, demo_node: Any, log: Path) -> None:
    """Until the node subscribes to the inputs as reliable as the player publishes them and its outputs reach
    the recorder, or a clear error. Its inputs start best effort when the node joins before it discovers the
    player, and switch at its next report (AdaptiveSubscription): frames sent across the switch are lost."""

    def adapted(topic: str) -> bool:
        wanted = player.publishers[topic].qos_profile.reliability
        infos = demo_node.get_subscriptions_info_by_topic(topic)
        return bool(infos) and all(i.qos_profile.reliability == wanted for i in infos)

    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text().strip().splitlines()[-5:]
            raise RuntimeError(f"the node exited with code {process.returncode}: {' | '.join(tail)}")
        ready = not player.wait_for_subscribers(0.0) and all(adapted(t) for t in player.publishers)
        if ready and demo_node.count_publishers(f"/{DEPTH}") > 0:
            time.sleep(0.5)  # discovery of the remaining endpoints
            return
        time.sleep(0.1)
    topics = ", ".join(player.publishers)
    raise RuntimeError(f"the node did not subscribe to {topics} within {NODE_START_TIMEOUT_S:g} s; see {log}")


def _drain(recorder: Recorder, last_stamp: int) -> None:
    """Waits for the outputs of the last input, then QUIET_S without news (its other topics), or the timeout.

    The node drops frames it has no time for but never the newest set (latest-only), so the last input is
    answered unless it fails; waiting for it, not for a quiet spell, holds however long a frame takes.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if recorder.answered(last_stamp) and time.monotonic() - recorder.latest() >= QUIET_S:
            return
        time.sleep(0.1)


@contextmanager
def _node_process(T_cam_lidar: np.ndarray, model: str, log_path: Path) -> Iterator[subprocess.Popen]:
    """depth_panoptic_node as its own process, stopped on exit: SIGINT (clean shutdown), SIGKILL if it hangs.

    Its inputs adapt to the player's reliable publishers by themselves (`make demo` also gives both processes
    the package's Fast DDS profile for full-size samples).
    """
    extrinsic = ", ".join(repr(float(v)) for v in T_cam_lidar.ravel())
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "depth_panoptic_ros.ros.runtime.main", "--ros-args",
             "-p", f"model_path:='{model}'", "-p", "use_tf:=false", "-p", f"lidar_to_camera:=[{extrinsic}]"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def write_previews(outputs: Path, inputs: Path, out: Path) -> list[str]:
    """Previews of the last frame that has outputs: input.png, panoptic.png (overlay), depth_color.png,
    depth.png, contact_sheet.png (input | panoptic | depth color map), points.ply, instances.json."""
    from depth_panoptic_ros.data.images import write_rgb
    from depth_panoptic_ros.data.ply import write_ply
    from depth_panoptic_ros.products.canvas import contact_sheet
    from depth_panoptic_ros.products.depth_colormap import colorize_depth
    from depth_panoptic_ros.ros.codecs.image_codec import decode_depth, decode_image

    shown = [f"/{t}" for t in (DEPTH, PANOPTIC_COLOR, DEPTH_COLOR, POINTS, INSTANCES)]
    by_stamp: dict[int, dict[str, Any]] = {}
    with open_bag(outputs) as reader:
        for topic, _, msg in read_messages(reader, shown):
            by_stamp.setdefault(stamp_ns(msg.header.stamp), {})[topic] = msg
    recorded = set().union(*by_stamp.values()) if by_stamp else set()
    # the newest frame of which every recorded topic arrived (a large cloud can still be in flight at the end)
    complete = [stamp for stamp, msgs in by_stamp.items() if set(msgs) == recorded]
    if f"/{DEPTH}" not in recorded or not complete:
        return []
    stamp = max(complete)
    frame = by_stamp[stamp]
    with open_bag(inputs) as reader:
        images = (m for _, _, m in read_messages(reader, [MONO_TOPICS.image]))
        rgb = decode_image(next(m for m in images if stamp_ns(m.header.stamp) == stamp))

    images = {"input.png": rgb, "depth.png": colorize_depth(decode_depth(frame[f"/{DEPTH}"]))}
    if f"/{PANOPTIC_COLOR}" in frame:
        images["panoptic.png"] = decode_image(frame[f"/{PANOPTIC_COLOR}"])
    if f"/{DEPTH_COLOR}" in frame:
        images["depth_color.png"] = decode_image(frame[f"/{DEPTH_COLOR}"])
    titles = {"input.png": "input", "panoptic.png": "panoptic", "depth_color.png": "instance depth"}
    sheet = [(title, images[name]) for name, title in titles.items() if name in images]
    if len(sheet) == 1:
        sheet.append(("depth", images["depth.png"]))
    images["contact_sheet.png"] = contact_sheet(sheet, columns=len(sheet))
    for name, image in images.items():
        write_rgb(out / name, image)
    written = list(images)
    if f"/{POINTS}" in frame:
        write_ply(out / "points.ply", panoptic_cloud_from_msg(frame[f"/{POINTS}"]))
        written.append("points.ply")
    if f"/{INSTANCES}" in frame:
        records = [plain(i) for i in frame[f"/{INSTANCES}"].instances]
        (out / "instances.json").write_text(json.dumps(records, indent=1, allow_nan=False))
        written.append("instances.json")
    return written


def panoptic_cloud_from_msg(msg: Any) -> PanopticCloud:
    """The node's PointCloud2 (x, y, z, rgb, label, instance; see geometry.pointcloud2) as a flat cloud."""
    names = ("x", "y", "z", "rgb", "label", "instance")
    offsets = {f.name: f.offset for f in msg.fields}
    missing = [n for n in names if n not in offsets]
    if missing:
        raise ValueError(f"PointCloud2 lacks field(s) {missing} of the panoptic layout; it has {sorted(offsets)}")
    layout = np.dtype(
        {"names": list(names), "formats": ["<f4"] * 3 + ["<u4"] * 3, "offsets": [offsets[n] for n in names],
         "itemsize": msg.point_step}
    )  # fmt: skip
    points = message_bytes(msg.data).view(layout)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1)
    rgb = ((points["rgb"][:, None] >> np.array([16, 8, 0], np.uint32)) & 0xFF).astype(np.uint8)
    return PanopticCloud(xyz=xyz, rgb=rgb, label=points["label"].copy(), instance=points["instance"].copy())


def plain(value: Any) -> Any:
    """An rclpy message as JSON-ready dicts and lists; non-finite floats become null."""
    if hasattr(value, "get_fields_and_field_types"):
        return {name: plain(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if isinstance(value, list | tuple | array.array | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
