"""Reading recordings cut short: an mcap whose writer was killed (no footer, no summary, maybe a torn last
chunk) and an sqlite3 bag whose last page is torn, read up to the cut, with what was lost.

rosbags refuses an mcap without its footer ("File end magic is invalid") although every record before the
cut is intact: records are length-prefixed, so a walk over their heads finds the last complete one, and the
file is then shown to rosbags as if it had been closed there (a bare footer appended in a file view). The
complete chunks are indexed from their own heads, so messages come in record-time order as from a closed file.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import apsw
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import ChunkInfo, McapReader

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
