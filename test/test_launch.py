"""The launch files, expanded through their own argument logic for every boolean argument value (the ROS
launch tooling is not installable here), and the resulting node command line run against the real node: launch
arguments that set node parameters override the parameter file only when given."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from depth_panoptic_ros.ros.runtime.launch_arguments import (
    PROFILES_ENV,
    launch_bool,
    launch_float,
    model_path,
    yaml_scalar,
)

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


# what depth_panoptic.launch.py's parameter arguments defaulted to before they meant "the parameter file's"
OLD_DEFAULTS = {
    "mode": "mono",
    "model_path": DEFAULT_MODEL,
    "merge": "",
    "grid_frame": "base_link",
    "use_sim_time": False,
    "autostart": True,
    "min_thing_score": -1.0,  # no launch argument before: the node's and the file's
}


def boolean_combinations(names: tuple[str, ...], words: tuple[str, ...] = ("true", "false")) -> list[dict[str, str]]:
    return [dict(zip(names, values, strict=True)) for values in itertools.product(words, repeat=len(names))]


def node_command(ros_args: list[str], executable: str = "depth_panoptic_node") -> list[str]:
    return [executable, "--ros-args", "-r", "__node:=depth_panoptic_node", *ros_args]


@pytest.mark.parametrize(
    "flags",
    [
        switches | parameters
        for switches in boolean_combinations(NODE_LAUNCH.BOOLEAN_ARGUMENTS)
        for parameters in boolean_combinations(("use_sim_time", "autostart"), ("", "true", "false"))
    ],
    ids=str,
)
def test_node_launch_for_every_boolean_value(flags: dict[str, str]) -> None:
    """use_sim_time and autostart: empty (not given) leaves them to the parameter file; given, they follow it."""
    values = {**NODE_LAUNCH.default_values(SHARE), **flags}
    processes = NODE_LAUNCH.launch_plan(values, SHARE)
    node = processes[0]
    given = [f"{name}:={flags[name]}" for name in ("use_sim_time", "autostart") if flags[name]]
    assert node.command() == node_command(["--params-file", CONFIG, *itertools.chain(*(["-p", p] for p in given))])
    env = {PROFILES_ENV: PROFILE} if flags["large_data"] == "true" else {}
    assert node.env == env
    if flags["rviz"] == "true":
        assert len(processes) == 2
        rviz = processes[1]
        sim = flags["use_sim_time"] or "false"  # RViz has no parameter file: false when not given
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
        "--params-file", "/etc/dp.yaml", "-p", "mode:='stereo'",
        "-r", "image:=/camera/image_raw", "-r", "lidar:=/velodyne_points", "-r", "~/timing:=/perf/timing",
    ]  # fmt: skip


def test_arguments_not_given_leave_every_parameter_to_the_parameter_file() -> None:
    values = NODE_LAUNCH.default_values(SHARE)
    assert all(values[name] == "" for name in NODE_LAUNCH.PARAMETER_ARGUMENTS)
    (node,) = NODE_LAUNCH.launch_plan(values | {"config_file": "/etc/my.yaml"}, SHARE)
    assert node.parameters == {}
    assert node.command() == node_command(["--params-file", "/etc/my.yaml"])


@pytest.mark.parametrize(
    ("name", "text", "value", "rendered"),
    [
        ("mode", "stereo", "stereo", "'stereo'"),
        ("model_path", "/my/model.safetensors", "/my/model.safetensors", "'/my/model.safetensors'"),
        ("merge", "degeus", "degeus", "'degeus'"),
        ("grid_frame", "odom", "odom", "'odom'"),
        ("min_thing_score", "0.4", 0.4, "0.4"),
        ("use_sim_time", "True", True, "true"),
        ("autostart", "0", False, "false"),
    ],
)
def test_a_given_argument_alone_is_passed_after_the_parameter_file(name: str, text: str, value, rendered: str) -> None:
    (node,) = NODE_LAUNCH.launch_plan(NODE_LAUNCH.default_values(SHARE) | {name: text}, SHARE)
    assert node.parameters == {name: value} and type(node.parameters[name]) is type(value)
    # -p after --params-file: the later rule wins, as launch_ros's parameter file for the dict does
    assert node.command() == node_command(["--params-file", CONFIG, "-p", f"{name}:={rendered}"])


def test_given_arguments_keep_the_declared_order() -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {"autostart": "false", "mode": "stereo", "min_thing_score": "-1"}
    (node,) = NODE_LAUNCH.launch_plan(values, SHARE)
    assert node.command() == node_command(
        ["--params-file", CONFIG, "-p", "mode:='stereo'", "-p", "min_thing_score:=-1.0", "-p", "autostart:=false"]
    )


@pytest.mark.parametrize("spelling", ["''", '""', "none", "None", "NONE", " none "])
def test_every_spelling_of_no_model_reaches_the_node_as_an_empty_string(spelling: str) -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {"model_path": spelling}
    (node,) = NODE_LAUNCH.launch_plan(values, SHARE)
    assert node.parameters == {"model_path": ""}
    assert node.command()[-2:] == ["-p", "model_path:=''"]


@pytest.mark.parametrize("name", ["model_path", "merge", "mode", "grid_frame"])
@pytest.mark.parametrize("text", ["", " "])
def test_an_empty_string_argument_is_not_given(name: str, text: str) -> None:
    (node,) = NODE_LAUNCH.launch_plan(NODE_LAUNCH.default_values(SHARE) | {name: text}, SHARE)
    assert node.parameters == {}


@pytest.mark.parametrize("spelling", ["''", '""'])
def test_merge_can_be_set_explicitly_to_the_models_stored_choice(spelling: str) -> None:
    """merge:="''" over a parameter file that names a merge: the node's merge is '' (the model's own)."""
    values = NODE_LAUNCH.default_values(SHARE) | {"config_file": "/etc/fcn.yaml", "merge": spelling}
    (node,) = NODE_LAUNCH.launch_plan(values, SHARE)
    assert node.parameters == {"merge": ""}
    assert node.command() == node_command(["--params-file", "/etc/fcn.yaml", "-p", "merge:=''"])


def test_a_model_path_is_kept_and_quoted_for_yaml() -> None:
    assert model_path("model_path", "/models/it's.safetensors") == "/models/it's.safetensors"
    assert yaml_scalar("/models/it's.safetensors") == "'/models/it''s.safetensors'"
    assert yaml_scalar(True) == "true" and yaml_scalar("true") == "'true'"


@pytest.mark.parametrize(("value", "rendered"), [(0.4, "0.4"), (-1.0, "-1.0"), (1.0, "1.0"), (0.0, "0.0")])
def test_a_float_is_rendered_as_a_yaml_float(value: float, rendered: str) -> None:
    assert yaml_scalar(value) == rendered
    assert yaml.safe_load(rendered) == value and type(yaml.safe_load(rendered)) is float


@pytest.mark.parametrize(("text", "value"), [("0.4", 0.4), ("-1", -1.0), (" 1 ", 1.0), ("5e-1", 0.5)])
def test_launch_numbers_read_as_floats(text: str, value: float) -> None:
    assert launch_float("min_thing_score", text) == value


@pytest.mark.parametrize("text", ["high", "''", "nan", "inf", "0.4.1"])
def test_a_bad_number_names_the_argument(text: str) -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {"min_thing_score": text}
    with pytest.raises(ValueError, match=re.escape(f"min_thing_score:={text!r}: expected a number")):
        NODE_LAUNCH.launch_plan(values, SHARE)


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ("1", True), ("false", False), ("0", False)]
)
def test_launch_booleans_read_as_launch_reads_them(text: str, value: bool) -> None:
    assert launch_bool("rviz", text) is value


@pytest.mark.parametrize("name", ["rviz", "use_sim_time", "autostart"])
def test_a_bad_boolean_names_the_argument(name: str) -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {name: "yes"}
    with pytest.raises(ValueError, match=f"{name}:='yes': expected true or false"):
        NODE_LAUNCH.launch_plan(values, SHARE)


@pytest.mark.parametrize(("sim", "expected"), [("", False), ("true", True), ("false", False)])
def test_rviz_uses_sim_time_as_given_and_false_otherwise(sim: str, expected: bool) -> None:
    values = NODE_LAUNCH.default_values(SHARE) | {"rviz": "true", "use_sim_time": sim}
    node, rviz = NODE_LAUNCH.launch_plan(values, SHARE)
    assert rviz.parameters == {"use_sim_time": expected}
    assert node.parameters == ({"use_sim_time": expected} if sim else {})


@pytest.mark.parametrize("bag", ["", "/bags/drive1"])
@pytest.mark.parametrize("flags", boolean_combinations(REPLAY_LAUNCH.BOOLEAN_ARGUMENTS), ids=str)
def test_replay_launch_for_every_boolean_value(flags: dict[str, str], bag: str) -> None:
    values = {**REPLAY_LAUNCH.default_values(), **flags, "bag": bag}
    plan = REPLAY_LAUNCH.replay_plan(values, SHARE)
    # what the included depth_panoptic.launch.py is given, and so what its node runs with
    assert plan.node_arguments == {"use_sim_time": flags["use_sim_time"], "large_data": flags["large_data"]}
    node_values = NODE_LAUNCH.default_values(SHARE) | plan.node_arguments
    (node,) = NODE_LAUNCH.launch_plan(node_values, SHARE)
    # given, so it overrides the parameter file; nothing else is
    assert node.parameters == {"use_sim_time": flags["use_sim_time"] == "true"}
    assert node.command()[-2:] == ["-p", f"use_sim_time:={flags['use_sim_time']}"]
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
    (node,) = NODE_LAUNCH.launch_plan(NODE_LAUNCH.default_values(SHARE) | plan.node_arguments, SHARE)
    assert node.parameters == {"use_sim_time": True}


@pytest.mark.parametrize("rate", ["0", "-1", "fast"])
def test_replay_rejects_a_bad_rate(rate: str) -> None:
    with pytest.raises(ValueError, match=f"rate:={rate!r}"):
        REPLAY_LAUNCH.replay_plan(REPLAY_LAUNCH.default_values() | {"rate": rate}, SHARE)


# (arguments, the parameter file's changes to config/depth_panoptic.yaml, the log line that shows the node ready,
# whether it runs without a model)
LAUNCHED = {
    "model-argument": ({"model_path": "none", "autostart": "true"}, {}, "active: inputs /launch_test/image", True),
    "unconfigured": (
        {"model_path": "none", "autostart": "false"},
        {},
        "waiting for `ros2 lifecycle set /launch_test/depth_panoptic_node configure`",
        False,
    ),
    # arguments not given: the file's no model, stereo mode and autostart stand
    "file": ({}, {"model_path": "", "mode": "stereo"}, "active: inputs /launch_test/left/image", True),
    # given: they win over a file whose model does not exist and which leaves the node unconfigured
    "argument-over-file": (
        {"model_path": "''", "autostart": "true"},
        {"model_path": "/nonexistent/model.safetensors", "autostart": False},
        "active: inputs /launch_test/image",
        True,
    ),
}


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("case", LAUNCHED)
def test_the_launched_command_line_starts_the_node_without_a_model(tmp_path: Path, case: str) -> None:
    """The command line of launch_plan run as the node: given arguments win over the parameter file, arguments not
    given leave its values; autostart true: configured (no model) and active; false: unconfigured."""
    pytest.importorskip("rclpy")
    arguments, changes, ready, no_model = LAUNCHED[case]
    config = yaml.safe_load((REPO / "config" / "depth_panoptic.yaml").read_text())
    params = config["/**/depth_panoptic_node"]["ros__parameters"]
    params |= {"use_tf": False, "lidar_to_camera": [*([1.0, 0.0, 0.0, 0.0, 0.0] * 3), 1.0], **changes}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    values = NODE_LAUNCH.default_values(str(REPO))
    values |= {"namespace": "launch_test", "config_file": str(config_file), **arguments}
    (node,) = NODE_LAUNCH.launch_plan(values, str(REPO))
    command = [sys.executable, "-m", "depth_panoptic_ros.ros.runtime.main", *node.command()[1:]]
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
    assert ("model none: model_path is empty (classical depth only)" in text) == no_model, text


def test_every_launch_argument_reaches_a_topic_or_a_declared_parameter() -> None:
    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.codecs.products_to_msgs import CLASSES, FRAME_TOPICS
    from depth_panoptic_ros.ros.runtime.node import TIMING
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters, flatten

    cameras = {f"{side}{topic}" for side in ("", "left/", "right/") for topic in ("image", "camera_info")}
    assert set(NODE_LAUNCH.TOPIC_ARGUMENTS.values()) == cameras | {"lidar"} | set(FRAME_TOPICS) | {CLASSES, TIMING}
    defaults = flatten(NodeParameters()) | {"use_sim_time": False}
    # every parameter argument, given, names a declared parameter and reaches it with the parameter's type
    given = {"mode": "stereo", "model_path": "/m.safetensors", "merge": "fcn", "min_thing_score": "0.5"}
    given |= {"grid_frame": "odom", "use_sim_time": "true", "autostart": "false"}
    assert set(given) == set(NODE_LAUNCH.PARAMETER_ARGUMENTS)
    (node,) = NODE_LAUNCH.launch_plan(NODE_LAUNCH.default_values(SHARE) | given, SHARE)
    assert set(node.parameters) == set(given) and set(given) <= set(defaults)
    assert {name: type(value) for name, value in node.parameters.items()} == {n: type(defaults[n]) for n in given}
    # not given, the package's parameter file decides (the node's default where the file is silent, as for
    # use_sim_time): the values the launch arguments defaulted to before, so nothing changes without config_file
    config = yaml.safe_load((REPO / "config" / "depth_panoptic.yaml").read_text())
    params = config["/**/depth_panoptic_node"]["ros__parameters"]
    assert {name: params.get(name, defaults[name]) for name in given} == OLD_DEFAULTS
