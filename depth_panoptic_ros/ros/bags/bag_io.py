"""rosbag2 files (mcap or sqlite3) through the pure-Python `rosbags` library, with real rclpy messages.

Messages are read and written as raw CDR bytes and turned into the generated rclpy classes with
rclpy.serialization, so the bag tools run the very conversions the node runs. Types that have no rclpy class
here (tf2_msgs is not among the ROS 2 wheels) fall back to rosbags' own typestore, whose objects have the same
field names. Written connections carry the message definition and RIHS01 hash (from rosbags' Kilted typestore
plus this package's msg/*.msg), so `ros2 bag info`/`play`, Foxglove and rosbags itself can read them.
"""

from __future__ import annotations

import importlib
import io
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import apsw
import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import ChunkInfo, McapReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from depth_panoptic_ros.resources import PACKAGE, share_dir
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


MCAP_MAGIC = b"\x89MCAP0\r\n"
_MCAP_RECORDS = {0x05: "message", 0x06: "chunk", 0x07: "message index", 0x03: "schema", 0x04: "channel"}
_MCAP_FOOTER, _MCAP_DATA_END, _MCAP_LAST_OP = 0x02, 0x0F, 0x10
# A footer without summary (summary start 0, summary offset start 0, CRC 0) and the closing magic.
_MCAP_BARE_END = bytes([_MCAP_FOOTER]) + (20).to_bytes(8, "little") + bytes(20) + MCAP_MAGIC


@dataclass(frozen=True)
class Truncation:
    """A recording cut short (its writer was killed): ``lost_bytes`` after the last complete record, what was
    found there, and how many messages were lost with it."""

    lost_bytes: int | None  # None: unknown (the storage failed while reading)
    damage: str | None  # what was found at the cut; None: only the summary/index after the messages
    lost_messages: int | None = 0  # None: unknown (a torn compressed chunk)

    def describe(self) -> str:
        if self.damage is None:
            what = "its summary/index only, no message"
        else:
            count = "an unknown number of" if self.lost_messages is None else f"{self.lost_messages}"
            what = f"{self.damage}, {count} message(s) lost"
        where = "the rest" if self.lost_bytes is None else f"its last {self.lost_bytes} bytes"
        return f"recording cut short: {where} could not be read ({what})"


class _CutFile(io.RawIOBase):
    """The first ``cut`` bytes of a file followed by ``tail``: a torn mcap seen as one that ends properly."""

    def __init__(self, raw: BinaryIO, cut: int, tail: bytes) -> None:
        super().__init__()
        self._raw, self._cut, self._tail, self._pos = raw, cut, tail, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._cut + len(self._tail)}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos < self._cut:
            self._raw.seek(self._pos)
            n = self._raw.readinto(view[: min(len(view), self._cut - self._pos)]) or 0
        else:
            part = self._tail[self._pos - self._cut : self._pos - self._cut + len(view)]
            n = len(part)
            view[:n] = part
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass
class McapWalk:
    """What a walk over an mcap's records found: the end of the last complete record before the summary, the
    kind of the torn record after it (None: nothing or only the summary was torn), and the complete chunks."""

    cut: int
    torn: str | None
    chunks: list[ChunkInfo]
    lost_messages: int | None = 0


def walk_mcap(f: BinaryIO, size: int) -> McapWalk:
    """Walks the length-prefixed records of an mcap file (reading each record's head, never its payload)."""
    header = f.read(len(MCAP_MAGIC) + 9)
    pos = len(MCAP_MAGIC) + 9 + int.from_bytes(header[len(MCAP_MAGIC) + 1 :], "little")  # after the header record
    chunks: list[ChunkInfo] = []
    while pos + 9 <= size:
        f.seek(pos)
        op, length = f.read(1)[0], int.from_bytes(f.read(8), "little")
        if op in (_MCAP_FOOTER, _MCAP_DATA_END):
            return McapWalk(pos, None, chunks)
        if not 1 <= op <= _MCAP_LAST_OP:
            return McapWalk(pos, f"an unknown record (opcode {op})", chunks)
        end = pos + 9 + length
        if end > size:
            lost = _messages_begun(f, pos, size) if op == 0x06 else int(op == 0x05)
            return McapWalk(pos, f"a torn {_MCAP_RECORDS.get(op, f'opcode {op:#x}')} record", chunks, lost)
        if op == 0x06:
            chunks.append(_chunk_info(f, pos, length))
        elif op == 0x07 and chunks:  # a message index of the chunk before: channel id, 16 bytes per message
            channel, index_bytes = struct.unpack("<HI", f.read(6))
            chunks[-1].channel_count[channel] = index_bytes // 16
        pos = end
    return McapWalk(pos, None if pos == size else "a torn record header", chunks)


def _messages_begun(f: BinaryIO, start: int, size: int) -> int | None:
    """Message records begun in the torn chunk at ``start`` (None when it is compressed: not countable).

    A chunk's CRC covers it whole, so even its complete messages cannot be verified and are counted as lost.
    """
    f.seek(start + 9)
    info = _chunk_info(f, start, 0)
    if info.compression:
        return None
    pos, count = f.tell(), 0
    while pos + 9 <= size:
        f.seek(pos)
        op, length = f.read(1)[0], int.from_bytes(f.read(8), "little")
        count += op == 0x05
        pos += 9 + length
    return count + (0 < size - pos < 9)


def _chunk_info(f: BinaryIO, start: int, length: int) -> ChunkInfo:
    """The index entry rosbags would read from the summary, from the chunk record's own head."""
    start_time, end_time, uncompressed_size, _crc, name_length = struct.unpack("<QQQII", f.read(32))
    compression = f.read(name_length).decode()
    (compressed_size,) = struct.unpack("<Q", f.read(8))
    return ChunkInfo(
        start_time, end_time, start, 9 + length, {}, 0, compression, compressed_size, uncompressed_size, {}
    )


class RecoveringMcapReader(McapReader):
    """rosbags' mcap reader that also reads a file whose writer was killed (no footer, no summary): every
    record up to the last complete one, as if the file had been closed there; ``truncation`` says what was lost."""

    truncation: Truncation | None = None

    def open(self) -> None:
        try:
            super().open()
            return
        except ReaderError as error:
            raw = self.path.open("rb")
            size = raw.seek(0, io.SEEK_END)
            raw.seek(0)
            if raw.read(len(MCAP_MAGIC)) != MCAP_MAGIC or size < len(MCAP_MAGIC) + 9:
                raw.close()
                raise error
            raw.seek(0)
            walk = walk_mcap(raw, size)
        self.bio = io.BufferedReader(_CutFile(raw, walk.cut, _MCAP_BARE_END))
        self.truncation = Truncation(size - walk.cut, walk.torn, walk.lost_messages)
        try:
            self._open()
        except BaseException:
            self.bio.close()
            self.bio = None
            raise
        # With the chunks indexed, messages come in record-time order across chunks, as from a closed file; a
        # chunk whose message indexes were cut off may hold any channel.
        for chunk in walk.chunks:
            if not chunk.channel_count:
                chunk.channel_count.update(dict.fromkeys(self.channels, 1))
        self.chunks = walk.chunks


class _RecoveringDirectoryReader(DirectoryReader):
    STORAGE_PLUGINS = {**DirectoryReader.STORAGE_PLUGINS, "mcap": RecoveringMcapReader}


class RecoveringReader(Reader):
    """rosbags' Reader that reads recordings cut short: an mcap without footer (see RecoveringMcapReader), and
    an sqlite3 file whose last page is torn, read up to the first message it cannot read (``read_failure``)."""

    STORAGE_PLUGINS = {**Reader.STORAGE_PLUGINS, "dir": _RecoveringDirectoryReader, ".mcap": RecoveringMcapReader}
    read_failure: Truncation | None = None

    def messages(
        self, connections: Sequence[Connection] = (), start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[Connection, int, bytes]]:
        expected = sum(c.msgcount for c in (connections or self.connections))
        read = 0
        try:
            for item in super().messages(connections, start, stop):
                yield item
                read += 1
        except (apsw.Error, ReaderError) as exc:  # a torn sqlite page or a damaged mcap chunk, met while reading
            self.read_failure = Truncation(None, f"a read error ({exc})", expected - read)


def truncations(reader: Reader) -> list[Truncation]:
    """What was lost from each storage file of the bag that was cut short (empty for a complete bag)."""
    storage = reader.storage
    files = storage.storages if isinstance(storage, DirectoryReader) else [storage]
    found = [t for f in files if (t := getattr(f, "truncation", None)) is not None]
    return found + [reader.read_failure] if getattr(reader, "read_failure", None) else found


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

    A recording cut short (no metadata.yaml, an mcap without footer) is read up to its last complete record;
    ``truncations(reader)`` says what was lost.
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
