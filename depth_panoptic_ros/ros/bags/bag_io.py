"""rosbag2 files (mcap or sqlite3) through the pure-Python `rosbags` library, with real rclpy messages.

Messages are read and written as raw CDR bytes and turned into the generated rclpy classes with
rclpy.serialization, so the bag tools run the very conversions the node runs. Types that have no rclpy class
here (tf2_msgs is not among the ROS 2 wheels) fall back to rosbags' own typestore, whose objects have the same
field names. Written connections carry the message definition and RIHS01 hash (from rosbags' Kilted typestore
plus this package's msg/*.msg), so `ros2 bag info`/`play`, Foxglove and rosbags itself can read them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from depth_panoptic_ros.resources import PACKAGE, share_dir
from depth_panoptic_ros.ros.bags.bag_recovery import RecoveringReader
from depth_panoptic_ros.ros.runtime.transforms import rotation_to_quaternion

TF_STATIC = "/tf_static"
TF = "/tf"
TF_TYPE = "tf2_msgs/msg/TFMessage"
_NEVER = QosTime(sec=0, nsec=0)  # rosbag2's spelling of "no deadline / infinite" in offered QoS
LATCHED_QOS = Qos(
    history=QosHistory.KEEP_LAST,
    depth=1,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.TRANSIENT_LOCAL,
    deadline=_NEVER,
    lifespan=_NEVER,
    liveliness=QosLiveliness.AUTOMATIC,
    liveliness_lease_duration=_NEVER,
    avoid_ros_namespace_conventions=False,
)


@cache
def typestore() -> Typestore:
    """ROS 2 Kilted's standard types plus this package's messages (read from its installed msg/*.msg)."""
    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = share_dir() / "msg"
    types: dict = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    if not types:
        raise ValueError(f"no {PACKAGE} message definitions (*.msg) found in {msg_dir}")
    store.register(types)
    return store


def msgtype_of(msg: Any) -> str:
    """'pkg/msg/Name' of an rclpy message or of a rosbags typestore object."""
    if hasattr(msg, "__msgtype__"):
        return msg.__msgtype__
    cls = type(msg)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


@cache
def message_class(msgtype: str) -> type | None:
    """The generated rclpy class of 'pkg/msg/Name', or None when that package is not installed."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    """An rclpy message when its class is installed, else the rosbags object with the same fields."""
    cls = message_class(msgtype)
    if cls is None:
        return typestore().deserialize_cdr(raw, msgtype)
    return deserialize_message(bytes(raw), cls)


def _storage_path(path: Path) -> Path:
    """A bag directory without metadata.yaml (its recorder was killed before writing it) is read through its
    single storage file."""
    if not path.is_dir() or (path / "metadata.yaml").exists():
        return path
    files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
    if len(files) != 1:
        raise ValueError(f"bag {path} has no metadata.yaml and {len(files)} storage files (.mcap/.db3); expected 1")
    return files[0]


@contextmanager
def open_bag(path: str | Path) -> Iterator[Reader]:
    """An open reader of a rosbag2 directory or a single .mcap/.db3 file; ValueError naming the path.

    A recording cut short (no metadata.yaml, an mcap without footer, a torn sqlite3 page) is read up to the
    cut; ``bag_recovery.truncations(reader)`` says what was lost.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"bag {path} does not exist")
    reader = RecoveringReader(_storage_path(path))
    try:
        reader.open()
    except Exception as exc:  # rosbags raises its own ReaderError, KeyError or YAML errors for damaged bags
        raise ValueError(f"bag {path} cannot be read as rosbag2 (mcap or sqlite3): {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


def topic_types(reader: Reader) -> dict[str, str]:
    """{topic: message type} of every topic in the bag."""
    return {c.topic: c.msgtype for c in reader.connections}


def describe_topics(types: dict[str, str]) -> str:
    """'/a (sensor_msgs/msg/Image), /b (...)' for error messages; '(none)' for an empty bag."""
    return ", ".join(f"{topic} ({msgtype})" for topic, msgtype in sorted(types.items())) or "(none)"


def read_messages(reader: Reader, topics: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
    """(topic, record time ns, message) of the given topics in record-time order."""
    topics = set(topics)
    connections = [c for c in reader.connections if c.topic in topics]
    if not connections:  # rosbags reads every topic when given none
        return
    for connection, time_ns, raw in reader.messages(connections=connections):
        yield connection.topic, time_ns, deserialize(raw, connection.msgtype)


class BagWriter:
    """An mcap rosbag2 being written: connections are added on a topic's first message.

    Use as a context manager (or call close()): closing writes the index and metadata.yaml that make the bag
    readable, so close it in ``finally`` to keep the frames done when a run is interrupted.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.exists():
            raise ValueError(f"output bag {path} exists already; remove it or choose another path")
        self.path = path
        self._writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msg: Any, time_ns: int, *, msgtype: str | None = None, latched: bool = False) -> None:
        """Appends ``msg`` (rclpy message, rosbags object, or serialized bytes with ``msgtype``) at ``time_ns``.

        ``latched`` records transient-local QoS for the topic, so that players re-offer it to late subscribers.
        """
        if isinstance(msg, bytes | memoryview):
            if msgtype is None:
                raise ValueError(f"{topic}: serialized bytes need their msgtype")
            raw = msg
        else:
            msgtype = msgtype_of(msg)
            raw = typestore().serialize_cdr(msg, msgtype) if hasattr(msg, "__msgtype__") else serialize_message(msg)
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(
                topic, msgtype, typestore=typestore(), offered_qos_profiles=[LATCHED_QOS] if latched else ()
            )
            self._connections[topic] = connection
            self.counts[topic] = 0
        elif connection.msgtype != msgtype:
            raise ValueError(f"{topic}: holds {connection.msgtype}, cannot also write {msgtype}")
        self._writer.write(connection, time_ns, raw)
        self.counts[topic] += 1

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tf_message(transforms: Sequence[tuple[str, str, np.ndarray]], stamp_ns: int) -> Any:
    """A tf2_msgs/TFMessage (rosbags object) of (parent, child, 4x4 parent_T_child) rigid transforms."""
    store = typestore()
    types = {name: store.types[f"{pkg}/msg/{name}"] for pkg, name in (
        ("tf2_msgs", "TFMessage"), ("geometry_msgs", "TransformStamped"), ("geometry_msgs", "Transform"),
        ("geometry_msgs", "Vector3"), ("geometry_msgs", "Quaternion"), ("std_msgs", "Header"),
        ("builtin_interfaces", "Time"),
    )}  # fmt: skip
    stamp = types["Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    stamped = []
    for parent, child, matrix in transforms:
        x, y, z, w = rotation_to_quaternion(matrix[:3, :3])
        tx, ty, tz = (float(v) for v in matrix[:3, 3])
        transform = types["Transform"](
            translation=types["Vector3"](x=tx, y=ty, z=tz), rotation=types["Quaternion"](x=x, y=y, z=z, w=w)
        )
        header = types["Header"](stamp=stamp, frame_id=parent)
        stamped.append(types["TransformStamped"](header=header, child_frame_id=child, transform=transform))
    return types["TFMessage"](transforms=stamped)
