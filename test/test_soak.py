"""`depth-panoptic bench node --soak`: the figures it derives, and one short run over real DDS."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("depth_panoptic_ros.msg")

from depth_panoptic_ros.ros.runtime.soak import Window, percentiles, proc_status, rss_slope_mb_per_min  # noqa: E402


def _window(minute: float, rss: float) -> Window:
    return Window(minute, 1, 1, 0, percentiles([1.0]), 1.0, rss, 3)


def test_rss_slope_leaves_out_the_start_and_fits_the_rest() -> None:
    # a start-up jump (model load, first frames), then 0.5 MB/min
    windows = [_window(1, 100.0), _window(2, 400.0), _window(3, 400.5), _window(4, 401.0), _window(5, 401.5)]
    assert rss_slope_mb_per_min(windows) == pytest.approx(0.5)


def test_percentiles_and_proc_status() -> None:
    # numpy's linear interpolation: p90 of 1..4 is 1 + 0.9 * 3
    assert percentiles([1.0, 2.0, 3.0, 4.0]) == {
        "p50": 2.5,
        "p90": pytest.approx(3.7),
        "p99": pytest.approx(3.97),
        "max": 4.0,
    }
    rss, threads = proc_status(os.getpid())
    assert rss > 10 and threads >= 1


def test_the_soak_gives_both_processes_the_package_profile_unless_the_caller_chose(tmp_path: Path) -> None:
    from depth_panoptic_ros.ros.runtime.soak import _environment, soak_transport

    changes, report = soak_transport(None, {})
    profile = Path(changes["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.name == "fastdds_large_data.xml" and profile.is_file() and "package" in report
    assert changes["FASTDDS_BUILTIN_TRANSPORTS"] is None
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS"):
        assert soak_transport(None, {name: "LARGE_DATA"}) == ({}, f"the environment's ({name}=LARGE_DATA)")
    assert soak_transport("", {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"})[0] == {
        "FASTDDS_DEFAULT_PROFILES_FILE": None,
        "FASTDDS_BUILTIN_TRANSPORTS": None,
    }
    with pytest.raises(ValueError, match="no such file"):
        soak_transport(str(tmp_path / "missing.xml"), {})
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    changes, report = soak_transport(str(mine), {})
    assert changes["FASTDDS_DEFAULT_PROFILES_FILE"] == str(mine) and str(mine) in report
    before = dict(os.environ)
    with _environment({"FASTDDS_DEFAULT_PROFILES_FILE": str(mine), "PATH": None}):
        assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(mine) and "PATH" not in os.environ
    assert dict(os.environ) == before


@pytest.mark.slow
def test_bench_node_soak_runs_the_node_over_dds(capsys: pytest.CaptureFixture[str]) -> None:
    from depth_panoptic_ros.cli import main

    args = ["bench", "node", "--soak", "0.2", "--rate", "2", "--model", "", "--size", "96x320", "--window", "6"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answered"] >= 5 and result["sent"] >= result["answered"]
    assert result["latency_ms"]["p50"] > 0 and result["threads"]["min"] >= 1 and result["rss_mb"]["max"] > 50
    assert len(result["windows"]) >= 2
    assert result["dds"].startswith(("the package's profile", "the environment's"))
