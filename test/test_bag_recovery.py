"""Recordings cut short (the recorder was killed): `bag process` and `bag play` read everything before the cut and
say what was lost; the output bag is finalized however `bag process` is stopped (Ctrl-C, SIGINT, SIGTERM)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("depth_panoptic_ros.msg")

import rclpy  # noqa: E402
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402

from depth_panoptic_ros.pipeline import Pipeline  # noqa: E402
from depth_panoptic_ros.ros.bags.bag_io import (  # noqa: E402
    deserialize,
    open_bag,
    read_messages,
    typestore,
)
from depth_panoptic_ros.ros.bags.bag_play import BagPlayer  # noqa: E402
from depth_panoptic_ros.ros.bags.bag_process import process_bag  # noqa: E402
from depth_panoptic_ros.ros.bags.bag_recovery import truncations  # noqa: E402
from depth_panoptic_ros.ros.bags.synthetic_bag import write_synthetic_bag  # noqa: E402

FRAMES = 6
SIZE = (320, 96)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_bag(tmp_path_factory.mktemp("rec") / "in", FRAMES, size=SIZE).path


@pytest.fixture(scope="module")
def full_run(recording: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    """/panoptic/depth of the complete recording, by stamp."""
    out = tmp_path_factory.mktemp("full") / "out"
    assert process_bag(recording, out, Pipeline(), progress=False).frames == FRAMES
    return _depths(out)


def _depths(bag: Path) -> dict[int, bytes]:
    """The pixel bytes of /panoptic/depth by record time (the CDR bytes around them hold alignment padding)."""
    with Reader(bag) as reader:  # plain rosbags: the output must be a properly closed bag
        connections = [c for c in reader.connections if c.topic == "/panoptic/depth"]
        return {t: bytes(deserialize(raw, c.msgtype).data) for c, t, raw in reader.messages(connections=connections)}


def _cut(recording: Path, dest: Path, keep: float, metadata: bool = False) -> Path:
    """A copy of the recording's storage file cut to ``keep`` of its size, as a killed recorder leaves it."""
    dest.mkdir(parents=True)
    storage = next(recording.glob("*.mcap"))
    data = storage.read_bytes()
    (dest / storage.name).write_bytes(data[: int(len(data) * keep)])
    if metadata:
        shutil.copy(recording / "metadata.yaml", dest)
    return dest


def _lidar_sets_before_the_cut(bag: Path) -> int:
    """Frames whose every message precedes the cut: the LiDAR cloud is written last in each frame."""
    with open_bag(bag) as reader:
        return sum(1 for _ in read_messages(reader, ["/lidar"]))


@pytest.mark.parametrize(("keep", "metadata"), [(0.35, False), (0.7, False), (0.9, True)])
def test_bag_process_reads_an_mcap_without_footer_up_to_the_cut(
    recording: Path, full_run: dict[int, bytes], tmp_path: Path, keep: float, metadata: bool
) -> None:
    cut = _cut(recording, tmp_path / "cut", keep, metadata)
    expected = _lidar_sets_before_the_cut(cut)
    assert 0 < expected < FRAMES
    summary = process_bag(cut, tmp_path / "out", Pipeline(), progress=False)
    assert summary.frames == expected
    (loss,) = summary.cut_short
    assert "recording cut short: its last" in loss and "a torn chunk record" in loss
    depths = _depths(tmp_path / "out")
    assert len(depths) == expected
    for stamp, raw in depths.items():  # the frames before the cut come out exactly as from the whole recording
        assert raw == full_run[stamp]


def test_a_lost_summary_loses_no_message(recording: Path, full_run: dict[int, bytes], tmp_path: Path) -> None:
    storage = next(recording.glob("*.mcap"))
    cut = tmp_path / "cut"
    cut.mkdir()
    data = storage.read_bytes()
    (cut / storage.name).write_bytes(data[:-100])  # into the summary section after the last chunk
    summary = process_bag(cut, tmp_path / "out", Pipeline(), progress=False)
    assert summary.frames == FRAMES
    assert summary.cut_short == [
        f"recording cut short: its last {_summary_bytes(storage) - 100} bytes could not be read "
        "(its summary/index only, no message)"
    ]
    assert _depths(tmp_path / "out") == full_run


def _summary_bytes(storage: Path) -> int:
    """Bytes from the DataEnd record to the end of the file (read from the footer's summary offset)."""
    data = storage.read_bytes()
    footer = data[-37:]
    summary_start = int.from_bytes(footer[9:17], "little")
    # DataEnd (opcode 0x0F, 4-byte CRC) sits right before the summary
    assert data[summary_start - 13] == 0x0F
    return len(data) - (summary_start - 13)


def test_torn_chunk_counts_the_messages_begun_in_it(recording: Path, tmp_path: Path) -> None:
    cut = _cut(recording, tmp_path / "cut", 0.5)
    with Reader(recording) as reader:
        total = sum(1 for _ in reader.messages())
    with open_bag(cut) as reader:
        read = sum(1 for _ in reader.messages())
        (truncation,) = truncations(reader)
    assert 0 < read < total
    assert truncation.lost_messages is not None and 1 <= truncation.lost_messages <= total - read
    assert truncation.lost_bytes == next(cut.glob("*.mcap")).stat().st_size - _complete_prefix_bytes(cut)


def _complete_prefix_bytes(cut: Path) -> int:
    """Independent walk: sum the record lengths from the file's header until one runs past the end."""
    data = next(cut.glob("*.mcap")).read_bytes()
    pos = 8
    while pos + 9 <= len(data) and pos + 9 + int.from_bytes(data[pos + 1 : pos + 9], "little") <= len(data):
        pos += 9 + int.from_bytes(data[pos + 1 : pos + 9], "little")
    return pos


def _as_sqlite(recording: Path, dest: Path) -> Path:
    with (
        Reader(recording) as reader,
        Writer(dest, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.SQLITE3) as w,
    ):
        connections = {
            c.id: w.add_connection(
                c.topic, c.msgtype, typestore=typestore(), offered_qos_profiles=c.ext.offered_qos_profiles
            )
            for c in reader.connections
        }
        for c, t, raw in reader.messages():
            w.write(connections[c.id], t, raw)
    return dest


def test_bag_process_reads_an_sqlite_bag_with_a_torn_last_page(
    recording: Path, full_run: dict[int, bytes], tmp_path: Path
) -> None:
    db3 = next(_as_sqlite(recording, tmp_path / "db").glob("*.db3"))
    with open(db3, "r+b") as f:
        f.truncate(db3.stat().st_size - 1000)  # the last 4096-byte page is torn
    summary = process_bag(tmp_path / "db", tmp_path / "out", Pipeline(), progress=False)
    assert summary.frames == FRAMES - 1  # the last LiDAR cloud's data ran into the torn page
    (loss,) = summary.cut_short
    assert loss.startswith("recording cut short: the rest could not be read (a read error (") and "1 message(s)" in loss
    depths = _depths(tmp_path / "out")
    assert depths == {stamp: raw for stamp, raw in full_run.items() if stamp in depths} and len(depths) == FRAMES - 1


def test_bag_play_publishes_everything_before_the_cut(recording: Path, tmp_path: Path) -> None:
    cut = _cut(recording, tmp_path / "cut", 0.7)
    with open_bag(cut) as reader:
        expected = [(c.topic, t) for c, t, _ in reader.messages() if c.topic != "/tf_static"]
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("player", context=context)
        player = BagPlayer(node, cut, ["/image", "/camera_info", "/lidar"])
        published: list[tuple[str, int]] = []
        assert player.play(rate=100.0, on_publish=lambda topic, t: published.append((topic, t))) == len(expected)
        assert published == expected
        (loss,) = player.cut_short
        assert "a torn chunk record" in loss
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def _interruptible() -> None:
    """Ctrl-C as in a terminal: a test run started in the background of a non-interactive shell inherits SIGINT
    ignored (POSIX), and Python then leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


CLI = [sys.executable, "-c", "from depth_panoptic_ros.cli import main; raise SystemExit(main())"]


def _stopped_cli(
    args: list[str], log: Path, env: dict[str, str], ready: Callable[[], bool], stop: signal.Signals, more: float
) -> int:
    """`depth-panoptic ARGS` logging to ``log``: once ``ready()`` (asked every 50 ms, 120 s at most) it gets
    ``stop``, then ``more`` seconds of SIGINT and SIGTERM back to back; its exit code."""
    with open(log, "w") as out:
        process = subprocess.Popen([*CLI, *args], stdout=out, stderr=out, env=env, cwd=REPO, preexec_fn=_interruptible)
        try:
            deadline = time.monotonic() + 120
            while not ready():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"no progress after 120 s:\n{log.read_text()}"
                time.sleep(0.05)
            process.send_signal(stop)
            end = time.monotonic() + more
            while time.monotonic() < end and process.poll() is None:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    process.send_signal(signum)
                time.sleep(0.001)
            return process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "more"), [(signal.SIGINT, 0.0), (signal.SIGTERM, 0.0), (signal.SIGINT, 1.0)], ids=["int", "term", "stream"]
)
def test_bag_process_stopped_by_a_signal_finalizes_its_output(
    tmp_path: Path, stop: signal.Signals, more: float
) -> None:
    """A real signal to a real `depth-panoptic bag process` halfway through: the output is a closed bag (footer,
    summary, metadata.yaml) holding the frames done. ``more``: seconds of SIGINT and SIGTERM back to back after
    the first (a second Ctrl-C, launch's SIGTERM after its SIGINT): they must not break the clean-up."""
    bag = write_synthetic_bag(tmp_path / "in", 40, size=SIZE).path
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "log.txt"

    def two_frames() -> bool:
        return "frames=2" in log.read_text()  # tqdm's postfix: two frames written

    code = _stopped_cli(["bag", "process", str(bag), str(tmp_path / "out")], log, env, two_frames, stop, more)
    text = log.read_text()
    assert code == 130, text
    assert "interrupted:" in text and "Traceback" not in text
    done = int(text.split("holds the outputs of ")[1].split()[0])
    assert 2 <= done < 40
    assert (tmp_path / "out" / "metadata.yaml").exists()
    assert len(_depths(tmp_path / "out")) == done


@pytest.mark.slow
def test_bag_play_stopped_by_a_stream_of_signals_exits_cleanly(tmp_path: Path) -> None:
    """`bag play --loop` (an rclpy session of its own, whose signal handlers sit in front of the CLI's) stopped by
    SIGINT, then a second of SIGINT and SIGTERM back to back: the notice, exit code 130, no traceback."""
    bag = write_synthetic_bag(tmp_path / "in", 4, size=SIZE).path
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ROS_DOMAIN_ID": "87"}  # its topics stay out of other tests' way
    log = tmp_path / "log.txt"
    playing = time.monotonic() + 5.0  # imports, the node, a few loops of the 4-frame bag
    args = ["bag", "play", str(bag), "--loop", "--wait-for-subscribers", "0"]
    code = _stopped_cli(args, log, env, lambda: time.monotonic() > playing, signal.SIGINT, 1.0)
    text = log.read_text()
    assert code == 130, text
    assert "interrupted" in text and "Traceback" not in text and "race condition" not in text, text
