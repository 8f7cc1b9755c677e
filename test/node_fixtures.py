"""Inputs for depth_panoptic_node built by hand, the node in its own process, and a peer node that talks to it.

Messages are assembled here byte by byte rather than with the package's codecs, so that the end-to-end tests
check the node against an independent reading of the formats.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import rclpy.executors
from builtin_interfaces.msg import Time as TimeMsg
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from depth_panoptic_ros.bench.geometry import lidar_sweep

CAMERA_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar"
HEIGHT, WIDTH = 96, 160
FOCAL = 100.0
NODE_STARTUP_S = 60.0  # generous: two cores shared with other test workers


def intrinsics(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.array([[FOCAL, 0, (width - 1) / 2], [0, FOCAL, (height - 1) / 2], [0, 0, 1]])


def stamp_msg(seconds: float) -> TimeMsg:
    sec = int(np.floor(seconds))
    return TimeMsg(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def textured_rgb(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> np.ndarray:
    """Random texture smoothed a little: colorful and matchable by stereo."""
    import cv2

    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (3, 3), 0)


def lidar_points(beams: int = 32, azimuths: int = 720) -> np.ndarray:
    """(N, 4) float32 sweep over a ground plane inside a wall, LiDAR frame (x forward, z up)."""
    return lidar_sweep(beams=beams, azimuths=azimuths, height=1.5, wall=15.0)


def image_msg(rgb: np.ndarray, stamp: float, encoding: str = "rgb8", frame_id: str = CAMERA_FRAME) -> Image:
    height, width = rgb.shape[:2]
    msg = Image(header=Header(stamp=stamp_msg(stamp), frame_id=frame_id), height=height, width=width)
    msg.encoding, msg.step = encoding, width * 3
    msg.data = rgb.tobytes()
    return msg


def camera_info_msg(K: np.ndarray, height: int, width: int, stamp: float, baseline: float = 0.0) -> CameraInfo:
    """Rectified camera; baseline > 0 makes the right camera of a pair (P[0, 3] = -fx * B)."""
    P = np.hstack([K, [[-K[0, 0] * baseline], [0], [0]]])
    return CameraInfo(
        header=Header(stamp=stamp_msg(stamp), frame_id=CAMERA_FRAME),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=K.ravel().tolist(),
        r=np.eye(3).ravel().tolist(),
        p=P.ravel().tolist(),
    )


def cloud_msg(points: np.ndarray, stamp: float) -> PointCloud2:
    """x, y, z, intensity as little-endian float32 at offsets 0, 4, 8, 12 (a Velodyne-like layout)."""
    names = ("x", "y", "z", "intensity")
    msg = PointCloud2(
        header=Header(stamp=stamp_msg(stamp), frame_id=LIDAR_FRAME),
        height=1,
        width=len(points),
        fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)],
        is_bigendian=False,
        point_step=16,
        row_step=16 * len(points),
        is_dense=False,
    )
    msg.data = np.ascontiguousarray(points[:, :4], dtype="<f4").tobytes()
    return msg


def projected_depth(
    points: np.ndarray,
    T_cam_lidar: np.ndarray,
    P: np.ndarray,
    shape: tuple[int, int],
    min_depth: float = 0.5,
    max_range: float = 120.0,
) -> np.ndarray:
    """Nearest w of P @ T @ [x y z 1] per pixel over the finite points (a z-buffer), 0 elsewhere; the
    pipeline's defaults for range and minimum depth, written out by hand."""
    xyz = points[:, :3].astype(np.float64)
    xyz = xyz[np.isfinite(xyz).all(axis=1) & (np.linalg.norm(xyz, axis=1) <= max_range)]
    uvw = np.c_[xyz, np.ones(len(xyz))] @ (P @ T_cam_lidar).T
    uvw = uvw[uvw[:, 2] >= min_depth]
    col = np.floor(uvw[:, 0] / uvw[:, 2] + 0.5).astype(int)
    row = np.floor(uvw[:, 1] / uvw[:, 2] + 0.5).astype(int)
    inside = (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
    depth = np.full(shape, np.inf)
    np.minimum.at(depth, (row[inside], col[inside]), uvw[inside, 2])
    return np.where(np.isfinite(depth), depth, 0).astype(np.float32)


def image_array(msg: Image) -> np.ndarray:
    """Pixels of a published image by its encoding, honoring step."""
    channels, dtype = {"rgb8": (3, "u1"), "32FC1": (1, "f4"), "32SC1": (1, "i4")}[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * channels * dt.itemsize].copy().view(dt).reshape(msg.height, msg.width, channels)
    return pixels[..., 0] if channels == 1 else pixels


def cloud_fields(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Every field of a cloud read at its declared offset, shaped (height, width)."""
    types = {PointField.FLOAT32: "f4", PointField.UINT32: "u4"}
    order = ">" if msg.is_bigendian else "<"
    layout = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [order + types[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    points = np.frombuffer(bytes(msg.data), layout).reshape(msg.height, msg.width)
    return {name: points[name] for name in layout.names}


def header_of(msg: Any) -> Header:
    """A message's header; a MarkerArray's is that of its first marker (each marker carries one)."""
    return msg.markers[0].header if isinstance(msg, MarkerArray) else msg.header


def stamp_of(msg: Any) -> tuple[int, int]:
    stamp = header_of(msg).stamp
    return stamp.sec, stamp.nanosec


class NodeProcess:
    """depth_panoptic_node in its own process, logging to a file; stopped with SIGINT like Ctrl-C."""

    def __init__(
        self,
        log_path: Path,
        namespace: str,
        parameters: dict[str, str],
        extra_args: Iterable[str] = (),
        script: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        """In its own namespace, so that tests sharing a ROS domain do not hear each other's nodes.

        ``script``: run the installed .venv/bin/depth_panoptic_node (falls back to ``python -m``).
        """
        installed = Path(sys.executable).parent / "depth_panoptic_node"
        module = [sys.executable, "-m", "depth_panoptic_ros.ros.runtime.main"]
        command = [str(installed)] if script and installed.exists() else module
        args = ["--ros-args", "-r", f"__ns:=/{namespace}", *extra_args]
        for name, value in parameters.items():
            args += ["-p", f"{name}:={value}"]
        env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
        env["PYTHONUNBUFFERED"] = "1"
        env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command + args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[1]
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, then the exit code; killed (and -9 returned) if it does not exit in time."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Peer:
    """A test-side node in the namespace of the node under test: publishes the inputs (relative names resolve
    like the node's), keeps every message it receives per topic, and reads that node's diagnostics."""

    def __init__(self, context: rclpy.Context, namespace: str) -> None:
        self.node: Node = rclpy.create_node("test_peer", namespace=namespace, context=context)
        self.status_name = f"/{namespace}/depth_panoptic_node: pipeline"
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = defaultdict(list)
        self.publishers: dict[str, Any] = {}
        self.incompatible: list[str] = []

    def publisher(self, msg_type: type, topic: str, reliable: bool = True) -> Any:
        """Incompatible subscriptions are recorded in ``incompatible`` (instead of rclpy's default warning)."""
        reliability = QoSReliabilityPolicy.RELIABLE if reliable else QoSReliabilityPolicy.BEST_EFFORT
        profile = QoSProfile(depth=10, reliability=reliability)
        events = PublisherEventCallbacks(incompatible_qos=lambda _: self.incompatible.append(topic))
        self.publishers[topic] = self.node.create_publisher(msg_type, topic, profile, event_callbacks=events)
        return self.publishers[topic]

    def subscribe(self, msg_type: type, topic: str, qos: QoSProfile | None = None) -> None:
        self.node.create_subscription(msg_type, topic, self.received[topic].append, qos or QoSProfile(depth=100))

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Spins until ``done()``; fails the test naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def wait_for_node(self, node: NodeProcess | None, topics: Iterable[str], timeout: float = NODE_STARTUP_S) -> None:
        """Until the node subscribes to every input publisher and publishes every watched topic."""
        topics = list(topics)

        def connected() -> bool:
            if node is not None and not node.alive():
                raise AssertionError(f"the node exited early:\n{node.log()}")
            inputs = all(pub.get_subscription_count() > 0 for pub in self.publishers.values())
            return inputs and all(self.node.count_publishers(t) > 0 for t in topics)

        self.spin_until(connected, timeout, f"the node to connect to {sorted(self.publishers)} and {topics}")

    def statuses(self) -> list[Any]:
        """The node's DiagnosticStatus messages received so far (subscribe to /diagnostics first)."""
        return [s for a in self.received["/diagnostics"] for s in a.status if s.name == self.status_name]

    def last_value(self, key: str, default: str) -> str:
        """The newest diagnostics value of ``key``."""
        values = [kv.value for s in self.statuses() for kv in s.values if kv.key == key]
        return values[-1] if values else default

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.executor.shutdown()
        self.node.destroy_node()


class LifecycleClient:
    """`ros2 lifecycle get/set` over the node's real services (lifecycle_msgs GetState, GetAvailableTransitions,
    ChangeState), called from a peer; ``set`` finds the transition's id by its label as the CLI does."""

    def __init__(self, peer: Peer, node_name: str = "depth_panoptic_node") -> None:
        self.peer = peer
        self._get = peer.node.create_client(GetState, f"{node_name}/get_state")
        self._transitions = peer.node.create_client(GetAvailableTransitions, f"{node_name}/get_available_transitions")
        self._change = peer.node.create_client(ChangeState, f"{node_name}/change_state")

    def _call(self, client: Any, request: Any, timeout: float = NODE_STARTUP_S) -> Any:
        self.peer.spin_until(client.service_is_ready, timeout, f"the service {client.srv_name}")
        future = client.call_async(request)
        self.peer.spin_until(future.done, timeout, f"the answer of {client.srv_name}")
        return future.result()

    def get(self) -> str:
        return self._call(self._get, GetState.Request()).current_state.label

    def set(self, label: str) -> bool:
        """True when the transition succeeded; False when it failed or is not available in this state."""
        available = self._call(self._transitions, GetAvailableTransitions.Request()).available_transitions
        ids = [t.transition.id for t in available if t.transition.label == label]
        if not ids:
            return False
        request = ChangeState.Request()
        request.transition.id = ids[0]
        return self._call(self._change, request).success


class MonoSession:
    """A mono node with a peer that publishes one synthetic scene under fresh stamps (wall clock, so that the
    node's latency is meaningful) and records the outputs."""

    def __init__(self, node: NodeProcess, peer: Peer) -> None:
        self.node, self.peer = node, peer
        self.rgb = textured_rgb()
        self.points = lidar_points()
        self.K = intrinsics()
        self._last_stamp = 0.0

    def next_stamp(self) -> float:
        self._last_stamp = max(time.time(), self._last_stamp + 0.001)
        return self._last_stamp

    def publish(
        self,
        stamp: float | None = None,
        image: Image | None = None,
        info: CameraInfo | None = None,
        cloud: PointCloud2 | None = None,
    ) -> float:
        """One input set (default: the good scene) under one stamp; returns the stamp."""
        stamp = self.next_stamp() if stamp is None else stamp
        pubs = self.peer.publishers
        pubs["camera_info"].publish(info or camera_info_msg(self.K, HEIGHT, WIDTH, stamp))
        pubs["image"].publish(image or image_msg(self.rgb, stamp))
        pubs["lidar"].publish(cloud or cloud_msg(self.points, stamp))
        return stamp

    def output(self, topic: str, stamp: float) -> Any | None:
        key = stamp_msg(stamp)
        matches = [m for m in self.peer.received[topic] if stamp_of(m) == (key.sec, key.nanosec)]
        return matches[-1] if matches else None

    def good_frame(self, topic: str, timeout: float = 60.0, period: float = 0.4) -> float:
        """Publishes good sets every ``period`` s until the node answers one on ``topic``; returns its stamp."""
        sent: list[float] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent.append(self.publish())
            self.peer.spin_for(period)
            answered = [s for s in sent if self.output(topic, s) is not None]
            if answered:
                return answered[-1]
            if not self.node.alive():
                raise AssertionError(f"the node exited:\n{self.node.log()}")
        raise AssertionError(f"no {topic} answered within {timeout:g} s; node log:\n{self.node.log()}")

    def diagnostic_values(self, done: Callable[[dict[str, str]], bool], timeout: float, what: str) -> dict[str, str]:
        """Key-values of the first newly received status of the node satisfying ``done``."""
        seen = len(self.peer.statuses())

        def found() -> list[dict[str, str]]:
            new = ({kv.key: kv.value for kv in s.values} for s in self.peer.statuses()[seen:])
            return [values for values in new if done(values)]

        self.peer.spin_until(lambda: bool(found()), timeout, what)
        return found()[0]
