"""`depth-panoptic bench node --soak MIN --rate HZ`: the node in its own process, fed one frame at a fixed rate
over real DDS, watched from outside: latency percentiles per time window, sets answered and dropped, and the
node's resident memory and thread count from /proc, with the RSS slope over the run.

The node runs exactly as deployed (``python -m depth_panoptic_ros.ros.runtime.main``, the shipped parameters, inputs
overridden to reliable QoS so that multi-megabyte clouds are not lost in fragments); this process only publishes
and listens. Latency is the node's own FrameTiming.latency_ms: input stamp (wall clock at publish) to the last
output published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.msg import FrameTiming
from depth_panoptic_ros.resources import share_dir
from depth_panoptic_ros.ros.codecs.byte_buffers import to_byte_array
from depth_panoptic_ros.ros.codecs.camera_info import camera_info_from_model
from depth_panoptic_ros.ros.codecs.image_codec import image_to_msg
from depth_panoptic_ros.ros.codecs.products_to_msgs import FRAME_TOPICS
from depth_panoptic_ros.ros.runtime.launch_arguments import LARGE_DATA_PROFILE, PROFILES_ENV
from depth_panoptic_ros.ros.runtime.sync import NS_PER_S

NAMESPACE = f"soak_{os.getpid()}"  # runs beside each other must not hear each other
STARTUP_TIMEOUT_S = 120.0
PERCENTILES = (50, 90, 99)
BUILTIN_TRANSPORTS_ENV = "FASTDDS_BUILTIN_TRANSPORTS"


@dataclass(frozen=True)
class SoakFrame:
    """The one input set that is published again and again under fresh stamps."""

    rgb: np.ndarray
    camera: CameraModel
    points: np.ndarray  # (N, 4) float32 x, y, z, intensity in the LiDAR frame
    T_cam_lidar: np.ndarray
    source: str


def soak_frame(kitti_object: Path | None, size: tuple[int, int] | None) -> SoakFrame:
    """KITTI object frame 000001 (375x1242, a 120k-point HDL-64 sweep) from ``kitti_object``, else synthetic frame 0
    of the kitti preset at ``size`` (width, height)."""
    if kitti_object is not None:
        import cv2

        from depth_panoptic_ros.data.kitti import read_kitti_calib, read_velodyne_bin

        bgr = cv2.imread(str(kitti_object / "image_2" / "000001.png"))
        if bgr is None:
            raise ValueError(f"{kitti_object}/image_2/000001.png: missing or not an image")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        camera, T = read_kitti_calib(kitti_object / "calib" / "000001.txt", image_size=(rgb.shape[1], rgb.shape[0]))
        points = read_velodyne_bin(kitti_object / "velodyne" / "000001.bin")
        return SoakFrame(
            rgb, camera, points, T, f"KITTI object 000001 ({rgb.shape[1]}x{rgb.shape[0]}, {len(points)} points)"
        )
    from depth_panoptic_ros.data.synthetic import SyntheticConfig, generate_frame

    frame = generate_frame(SyntheticConfig(preset="kitti", size=size), 0)
    source = f"synthetic kitti preset ({frame.rgb.shape[1]}x{frame.rgb.shape[0]}, {len(frame.points)} points)"
    return SoakFrame(frame.rgb, frame.camera, frame.points, frame.T_cam_lidar, source)


def soak_transport(profile: str | None, environ: Mapping[str, str]) -> tuple[dict[str, str | None], str]:
    """The Fast DDS settings both processes of a soak run with, as changes to ``environ`` (None: unset), and how
    the report names them. ``profile``: a Fast DDS XML profile file, '' = Fast DDS's default transports, None = the
    caller's settings when ``environ`` has any (FASTDDS_DEFAULT_PROFILES_FILE, FASTDDS_BUILTIN_TRANSPORTS), else
    the package's large-data profile, which docs/node.md asks of every process that exchanges full-size messages:
    without it, 23 % of KITTI-size sets at 20 Hz from this driver went unanswered and their p99 latency was 244 ms
    instead of 18 ms (BENCHMARKS.md). ValueError for a profile file that does not exist."""
    if profile is None:
        given = [f"{name}={environ[name]}" for name in (PROFILES_ENV, BUILTIN_TRANSPORTS_ENV) if environ.get(name)]
        if given:
            return {}, f"the environment's ({', '.join(given)})"
        profile = str(share_dir() / LARGE_DATA_PROFILE)
        return {PROFILES_ENV: profile, BUILTIN_TRANSPORTS_ENV: None}, f"the package's profile ({profile})"
    if not profile:
        return {PROFILES_ENV: None, BUILTIN_TRANSPORTS_ENV: None}, "Fast DDS's default transports"
    if not Path(profile).is_file():
        raise ValueError(f"Fast DDS profile {profile}: no such file")
    return {PROFILES_ENV: profile, BUILTIN_TRANSPORTS_ENV: None}, f"profile {profile}"


@contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    """os.environ with ``changes`` (None: unset) for the duration, restored after."""
    saved = {name: os.environ.get(name) for name in changes}
    _apply(os.environ, changes)
    try:
        yield
    finally:
        _apply(os.environ, saved)


def _apply(environ: Any, changes: Mapping[str, str | None]) -> None:
    for name, value in changes.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


def _cloud_msg(points: np.ndarray) -> PointCloud2:
    names = ("x", "y", "z", "intensity")
    msg = PointCloud2(
        height=1,
        width=len(points),
        fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)],
        point_step=16,
        row_step=16 * len(points),
        is_dense=False,
    )
    msg.header.frame_id = "lidar"
    msg.data = to_byte_array(np.ascontiguousarray(points[:, :4], dtype="<f4"))
    return msg


@dataclass
class Window:
    """What happened in one time window of the soak."""

    end_min: float
    sent: int
    answered: int
    dropped: int  # sets the node dropped for a newer one (its dropped_total grew by this much)
    latency_ms: dict[str, float]  # p50, p90, p99, max of the sets answered in the window
    processing_ms: float  # median
    rss_mb: float
    threads: int


def proc_status(pid: int) -> tuple[float, int]:
    """(resident memory MB, thread count) of a process, from /proc/<pid>/status."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {f"p{p}": float("nan") for p in PERCENTILES} | {"max": float("nan")}
    return {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES} | {"max": float(max(values))}


def rss_slope_mb_per_min(windows: list[Window]) -> float:
    """Least-squares slope of RSS over time, leaving out the first window (start-up, model load, first frames)."""
    steady = windows[1:] if len(windows) > 2 else windows
    if len(steady) < 2:
        return float("nan")
    t = np.array([w.end_min for w in steady])
    return float(np.polyfit(t, [w.rss_mb for w in steady], 1)[0])


def _node_command(model_path: str, T_cam_lidar: np.ndarray, device: str) -> list[str]:
    ns = f"/{NAMESPACE}"
    matrix = "[" + ", ".join(repr(float(v)) for v in T_cam_lidar.ravel()) + "]"
    parameters = {
        "model_path": model_path or "''",
        "device": device,
        "use_tf": "false",
        "lidar_to_camera": matrix,
        f"qos_overrides.{ns}/lidar.subscription.reliability": "reliable",
        f"qos_overrides.{ns}/image.subscription.reliability": "reliable",
    }
    args = [sys.executable, "-m", "depth_panoptic_ros.ros.runtime.main", "--ros-args", "-r", f"__ns:={ns}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return args


def run_soak(
    frame: SoakFrame,
    minutes: float,
    rate_hz: float,
    model_path: str,
    *,
    device: str = "cpu",
    window_s: float | None = None,
    log_path: Path | None = None,
    progress: Any = None,
    dds_profile: str | None = None,
) -> dict[str, Any]:
    """Starts the node, publishes ``frame`` at ``rate_hz`` for ``minutes`` and returns the per-window figures and
    the totals. ``progress(window)`` is called after each window. ``dds_profile``: see soak_transport; this
    process's driver gets it too when it makes its first DDS participant here (Fast DDS reads a profile file
    once per process), as in the `bench node` command."""
    if not minutes > 0 or not rate_hz > 0:
        raise ValueError(f"soak: expected positive minutes and rate, got {minutes} min at {rate_hz} Hz")
    window_s = window_s or max(10.0, minutes * 60 / 20)
    changes, transport = soak_transport(dds_profile, os.environ)
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "RCUTILS_COLORIZED_OUTPUT": "0", "PYTHONUNBUFFERED": "1"}
    _apply(env, changes)
    node = subprocess.Popen(
        _node_command(model_path, frame.T_cam_lidar, device), stdout=log, stderr=subprocess.STDOUT, env=env
    )
    context = rclpy.Context()
    try:
        with _environment(changes):
            rclpy.init(context=context)
            result = _drive(frame, minutes, rate_hz, window_s, node, context, progress)
        return result | {
            "frame": frame.source,
            "model": model_path or "none (classical depth only)",
            "dds": transport,
            "rate_hz": rate_hz,
            "minutes": minutes,
            "load_average_end": os.getloadavg(),
        }
    finally:
        rclpy.try_shutdown(context=context)
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        log.close()


def _drive(
    frame: SoakFrame,
    minutes: float,
    rate_hz: float,
    window_s: float,
    node: subprocess.Popen,
    context: rclpy.Context,
    progress: Any,
) -> dict[str, Any]:
    driver = rclpy.create_node("soak_driver", namespace=NAMESPACE, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(driver)
    reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
    publishers = {
        "image": driver.create_publisher(Image, "image", reliable),
        "camera_info": driver.create_publisher(CameraInfo, "camera_info", reliable),
        "lidar": driver.create_publisher(PointCloud2, "lidar", reliable),
    }
    timings: list[tuple[float, float, float, int]] = []  # (receive time, latency, processing, dropped_total)
    counted_from_ns = [0]  # answers to sets stamped before this are start-up's, not the soak's

    def on_timing(msg: FrameTiming) -> None:
        if msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec >= counted_from_ns[0]:
            timings.append((time.monotonic(), msg.latency_ms, msg.processing_ms, msg.dropped_total))

    driver.create_subscription(FrameTiming, "depth_panoptic_node/timing", on_timing, QoSProfile(depth=100))
    for topic, (msg_type, _) in FRAME_TOPICS.items():  # the node computes only what has subscribers: want it all
        driver.create_subscription(msg_type, topic, lambda _: None, QoSProfile(depth=5))

    image = image_to_msg(np.ascontiguousarray(frame.rgb), "rgb8", Header(frame_id="camera"))
    info = camera_info_from_model(frame.camera, Header(frame_id="camera"))
    cloud = _cloud_msg(frame.points)

    def publish(stamp_ns: int) -> None:
        for msg in (info, image, cloud):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS_PER_S)
        publishers["camera_info"].publish(info)
        publishers["image"].publish(image)
        publishers["lidar"].publish(cloud)

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not timings:  # until the node answers: discovery, model load, first frame
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node did not answer within {STARTUP_TIMEOUT_S:g} s (exit code {node.poll()})")
        publish(time.time_ns())
        executor.spin_once(timeout_sec=0.5)
    executor.spin_once(timeout_sec=0.5)
    dropped_before = timings[-1][3]  # sets dropped while starting up are not the soak's
    timings.clear()
    counted_from_ns[0] = time.time_ns()

    period = 1.0 / rate_hz
    start = next_publish = time.monotonic()
    end = start + minutes * 60
    windows: list[Window] = []
    window_end, sent, first_timing = start + window_s, 0, 0
    while True:
        now = time.monotonic()
        if now >= next_publish and now < end:
            publish(time.time_ns())
            sent += 1
            next_publish += period
            if next_publish < now - period:  # the publisher itself fell behind: do not burst to catch up
                next_publish = now + period
        if now >= window_end or now >= end + 2.0:
            answered = timings[first_timing:]
            dropped_total = answered[-1][3] if answered else dropped_before
            rss, threads = proc_status(node.pid)
            windows.append(
                Window(
                    end_min=(now - start) / 60,
                    sent=sent,
                    answered=len(answered),
                    dropped=dropped_total - dropped_before,
                    latency_ms=percentiles([t[1] for t in answered]),
                    processing_ms=float(np.median([t[2] for t in answered])) if answered else float("nan"),
                    rss_mb=rss,
                    threads=threads,
                )
            )
            if progress is not None:
                progress(windows[-1])
            first_timing, dropped_before, sent = len(timings), dropped_total, 0
            window_end += window_s
            if now >= end + 2.0:  # a last window collects the answers still in flight
                break
        executor.spin_once(timeout_sec=max(0.0, min(next_publish, window_end) - time.monotonic()))
    if node.poll() is not None:
        raise RuntimeError(f"the node exited during the soak (exit code {node.returncode})")
    driver.destroy_node()
    all_latency = [t[1] for t in timings]
    return {
        "windows": [asdict(w) for w in windows],
        "sent": sum(w.sent for w in windows),
        "answered": len(timings),
        "dropped": sum(w.dropped for w in windows),
        "latency_ms": percentiles(all_latency),
        "processing_ms_median": float(np.median([t[2] for t in timings])) if timings else float("nan"),
        "rss_mb": {"first": windows[0].rss_mb, "last": windows[-1].rss_mb, "max": max(w.rss_mb for w in windows)},
        "rss_slope_mb_per_min": rss_slope_mb_per_min(windows),
        "threads": {"min": min(w.threads for w in windows), "max": max(w.threads for w in windows)},
    }


def format_window(w: Window) -> str:
    lat = w.latency_ms
    return (
        f"| {w.end_min:6.2f} | {w.sent:5d} | {w.answered:5d} | {w.dropped:5d} | {lat['p50']:7.1f} | {lat['p90']:7.1f} "
        f"| {lat['p99']:7.1f} | {lat['max']:7.1f} | {w.processing_ms:7.1f} | {w.rss_mb:7.1f} | {w.threads:3d} |"
    )


WINDOW_HEADER = (
    "| t (min) | sent | answered | dropped | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | processing p50 (ms) "
    "| RSS (MB) | threads |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def format_summary(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    return (
        f"{result['frame']}; model {result['model']}; {result['rate_hz']:g} Hz for {result['minutes']:g} min; "
        f"DDS: {result['dds']}\n"
        f"sent {result['sent']}, answered {result['answered']}, dropped by the node {result['dropped']}; latency "
        f"p50/p90/p99/max {lat['p50']:.1f}/{lat['p90']:.1f}/{lat['p99']:.1f}/{lat['max']:.1f} ms; processing "
        f"median {result['processing_ms_median']:.1f} ms; RSS {result['rss_mb']['first']:.1f} -> "
        f"{result['rss_mb']['last']:.1f} MB (max {result['rss_mb']['max']:.1f}), slope "
        f"{result['rss_slope_mb_per_min']:+.2f} MB/min; threads {result['threads']['min']}-{result['threads']['max']}; "
        f"load average at the end {', '.join(f'{v:.2f}' for v in result['load_average_end'])}"
    )
