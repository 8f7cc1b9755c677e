"""The launch files, expanded through their own argument logic for every boolean argument value (the ROS
launch tooling is not installable here), and the resulting node command line run against the real node."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from depth_panoptic_ros.ros.runtime.launch_arguments import PROFILES_ENV, launch_bool, model_path, yaml_scalar

REPO = Path(__file__).resolve().parents[1]
SHARE = "/opt/ros/share/depth_panoptic_ros"
CONFIG = f"{SHARE}/config/depth_panoptic.yaml"
PROFILE = f"{SHARE}/config/fastdds_large_data.xml"
DEFAULT_MODEL = "package://depth_panoptic_ros/models/default.safetensors"


def load_launch_file(name: str) -> ModuleType:
    """As launch's load_python_launch_file_as_module does it: a module that sys.modules does not hold."""
    loader = importlib.machinery.SourceFileLoader(name.replace(".", "_"), str(REPO / "launch" / name))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


NODE_LAUNCH = load_launch_file("depth_panoptic.launch.py")
REPLAY_LAUNCH = load_launch_file("replay.launch.py")


def boolean_combinations(names: tuple[str, ...]) -> list[dict[str, str]]:
    return [dict(zip(names, values, strict=True)) for values in itertools.product(("true", "false"), repeat=len(names))]


def node_command(ros_args: list[str], executable: str = "depth_panoptic_node") -> list[str]:
    return [executable, "--ros-args", "-r", "__node:=depth_panoptic_node", *ros_args]


@pytest.mark.parametrize("flags", boolean_combinations(NODE_LAUNCH.BOOLEAN_ARGUMENTS), ids=str)
def test_node_launch_for_every_boolean_value(flags: dict[str, str]) -> None:
    values = {**NODE_LAUNCH.default_values(SHARE), **flags}
    processes = NODE_LAUNCH.launch_plan(values, SHARE)
    sim = flags["use_sim_time"]
    node = processes[0]
    assert node.command() == node_command(
        ["--params-file", CONFIG, "-p", "mode:='mono'", "-p", f"model_path:='{DEFAULT_MODEL}'", "-p", "merge:=''",
         "-p", "grid_frame:='base_link'", "-p", f"use_sim_time:={sim}", "-p", f"autostart:={flags['autostart']}"]
    )  # fmt: skip
    env = {PROFILES_ENV: PROFILE} if flags["large_data"] == "true" else {}
    assert node.env == env
    if flags["rviz"] == "true":
        assert len(processes) == 2
        rviz = processes[1]
        assert rviz.command() == [
            "rviz2", "-d", f"{SHARE}/config/depth_panoptic.rviz",
            "--ros-args", "-r", "__node:=rviz2", "-p", f"use_sim_time:={sim}",
        ]  # fmt: skip
        assert rviz.env == env
    else:
        assert len(processes) == 1
    for process in processes:
        assert "" not in process.command()


def test_node_launch_namespace_topics_and_config_file() -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {
        "namespace": "perception",
        "config_file": "/etc/dp.yaml",
        "mode": "stereo",
        "image_topic": "/camera/image_raw",
        "lidar_topic": "/velodyne_points",
        "timing_topic": "/perf/timing",
    }
    (node,) = NODE_LAUNCH.launch_plan(values, SHARE)
    assert node.command() == [
        "depth_panoptic_node", "--ros-args", "-r", "__node:=depth_panoptic_node", "-r", "__ns:=/perception",
        "--params-file", "/etc/dp.yaml",
        "-p", "mode:='stereo'", "-p", f"model_path:='{DEFAULT_MODEL}'", "-p", "merge:=''",
        "-p", "grid_frame:='base_link'", "-p", "use_sim_time:=false", "-p", "autostart:=true",
        "-r", "image:=/camera/image_raw", "-r", "lidar:=/velodyne_points", "-r", "~/timing:=/perf/timing",
    ]  # fmt: skip


@pytest.mark.parametrize("spelling", ["''", '""', "none", "None", "NONE", ""])
def test_every_spelling_of_no_model_reaches_the_node_as_an_empty_string(spelling: str) -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {"model_path": spelling}
    (node,) = NODE_LAUNCH.launch_plan(values, SHARE)
    assert node.parameters["model_path"] == ""
    assert "model_path:=''" in node.command()


def test_a_model_path_is_kept_and_quoted_for_yaml() -> None:
    assert model_path("/models/it's.safetensors") == "/models/it's.safetensors"
    assert yaml_scalar("/models/it's.safetensors") == "'/models/it''s.safetensors'"
    assert yaml_scalar(True) == "true" and yaml_scalar("true") == "'true'"


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ("1", True), ("false", False), ("0", False)]
)
def test_launch_booleans_read_as_launch_reads_them(text: str, value: bool) -> None:
    assert launch_bool("rviz", text) is value


def test_a_bad_boolean_names_the_argument() -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {"rviz": "yes"}
    with pytest.raises(ValueError, match="rviz:='yes': expected true or false"):
        NODE_LAUNCH.launch_plan(values, SHARE)


@pytest.mark.parametrize("bag", ["", "/bags/drive1"])
@pytest.mark.parametrize("flags", boolean_combinations(REPLAY_LAUNCH.BOOLEAN_ARGUMENTS), ids=str)
def test_replay_launch_for_every_boolean_value(flags: dict[str, str], bag: str) -> None:
    values = {**REPLAY_LAUNCH.default_values(), **flags, "bag": bag}
    plan = REPLAY_LAUNCH.replay_plan(values, SHARE)
    # what the included depth_panoptic.launch.py is given, and so what its node runs with
    assert plan.node_arguments == {"use_sim_time": flags["use_sim_time"], "large_data": flags["large_data"]}
    node_values = NODE_LAUNCH.default_values(SHARE) | plan.node_arguments
    (node,) = NODE_LAUNCH.launch_plan(node_values, SHARE)
    assert f"use_sim_time:={flags['use_sim_time']}" in node.command()
    env = {PROFILES_ENV: PROFILE} if flags["large_data"] == "true" else {}
    assert plan.env == env and node.env == env
    if not bag:
        assert plan.play is None
        return
    expected = ["ros2", "bag", "play", bag, "--rate", "1.0"]
    expected += ["--clock"] if flags["use_sim_time"] == "true" else []
    expected += ["--loop"] if flags["loop"] == "true" else []
    assert plan.play == expected


def test_replay_defaults_to_sim_time_as_it_uses_it() -> None:
    assert REPLAY_LAUNCH.default_values()["use_sim_time"] == "true"
    plan = REPLAY_LAUNCH.replay_plan(REPLAY_LAUNCH.default_values() | {"bag": "b"}, SHARE)
    assert plan.play == ["ros2", "bag", "play", "b", "--rate", "1.0", "--clock"]
    assert plan.node_arguments["use_sim_time"] == "true"


@pytest.mark.parametrize("rate", ["0", "-1", "fast"])
def test_replay_rejects_a_bad_rate(rate: str) -> None:
    with pytest.raises(ValueError, match=f"rate:={rate!r}"):
        REPLAY_LAUNCH.replay_plan(REPLAY_LAUNCH.default_values() | {"rate": rate}, SHARE)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("autostart", ["true", "false"])
def test_the_launched_command_line_starts_the_node_without_a_model(tmp_path: Path, autostart: str) -> None:
    """autostart:=true: configured (no model) and active; false: unconfigured, waiting for `ros2 lifecycle`."""
    pytest.importorskip("rclpy")
    values = NODE_LAUNCH.default_values(str(REPO))
    values |= {"model_path": "none", "namespace": "launch_test", "autostart": autostart}
    (node,) = NODE_LAUNCH.launch_plan(values, str(REPO))
    command = [sys.executable, "-m", "depth_panoptic_ros.ros.runtime.main", *node.command()[1:]]
    command += ["-p", "use_tf:=false", "-p", f"lidar_to_camera:=[{', '.join(['1.0', *['0.0'] * 4] * 3)}, 1.0]"]
    if autostart == "true":
        ready = "active: inputs /launch_test/image"
    else:
        ready = "waiting for `ros2 lifecycle set /launch_test/depth_panoptic_node configure`"
    log = tmp_path / "node.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while ready not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(20)
    text = log.read_text()
    assert ready in text and process.returncode == 0, text
    assert ("model none: model_path is empty (classical depth only)" in text) == (autostart == "true"), text


def test_every_launch_argument_reaches_a_topic_or_a_declared_parameter() -> None:
    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.codecs.products_to_msgs import CLASSES, FRAME_TOPICS
    from depth_panoptic_ros.ros.runtime.node import TIMING
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters, flatten

    cameras = {f"{side}{topic}" for side in ("", "left/", "right/") for topic in ("image", "camera_info")}
    assert set(NODE_LAUNCH.TOPIC_ARGUMENTS.values()) == cameras | {"lidar"} | set(FRAME_TOPICS) | {CLASSES, TIMING}
    (node,) = NODE_LAUNCH.launch_plan(NODE_LAUNCH.default_values(SHARE), SHARE)
    defaults = flatten(NodeParameters()) | {"use_sim_time": False}
    assert set(node.parameters) <= set(defaults)
    # the launch file's defaults are the node's own
    assert {name: defaults[name] for name in node.parameters} == node.parameters
