"""What the package's launch files make of their arguments, as plain functions (no `launch` import).

(Types live here too: launch loads a launch file as a module it does not register, where a dataclass cannot be
defined.) The launch files resolve their arguments in an OpaqueFunction and hand the strings to these functions, so that
the command lines they start can be computed, and tested, for every argument value on machines without the ROS
launch tooling. Spellings follow `ros2 launch`: booleans as launch's IfCondition reads them, an empty string as
`''` (how `name:="''"` arrives), and `none` for "no model".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LARGE_DATA_PROFILE = "config/fastdds_large_data.xml"
PROFILES_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
_TRUE, _FALSE = ("true", "1"), ("false", "0")  # launch.conditions.evaluate_condition_expression's words
_NO_MODEL = ("", "''", '""', "none")


def launch_bool(name: str, value: str) -> bool:
    """A boolean launch argument; ValueError naming it otherwise (as IfCondition would fail)."""
    text = value.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"launch argument {name}:={value!r}: expected true or false")


def model_path(value: str) -> str:
    """The node's model_path: '' for every spelling of "no model" (`model_path:="''"`, `model_path:=none`)."""
    return "" if value.strip().lower() in _NO_MODEL else value


def large_data_env(enabled: bool, share: str | Path) -> dict[str, str]:
    """Environment of a process that exchanges full-size sensor messages: the package's Fast DDS profile
    (shared memory sized for a full cloud, UDP on loopback). Every process of the stack needs the same."""
    return {PROFILES_ENV: str(Path(share) / LARGE_DATA_PROFILE)} if enabled else {}


def yaml_scalar(value: bool | str) -> str:
    """A parameter value as `-p name:=VALUE` needs it: YAML true/false, strings single-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + value.replace("'", "''") + "'"


@dataclass
class NodeLaunch:
    """One ROS node as a launch file starts it; ``command()`` is the equivalent plain command line."""

    executable: str
    name: str
    namespace: str = ""
    parameter_files: list[str] = field(default_factory=list)
    parameters: dict[str, bool | str] = field(default_factory=dict)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        """What launch_ros runs, with -p instead of its temporary parameter file (same precedence: later wins)."""
        ros_args = ["-r", f"__node:={self.name}"]
        if self.namespace:
            ros_args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for path in self.parameter_files:
            ros_args += ["--params-file", path]
        for name, value in self.parameters.items():
            ros_args += ["-p", f"{name}:={yaml_scalar(value)}"]
        for source, target in self.remappings:
            ros_args += ["-r", f"{source}:={target}"]
        return [self.executable, *self.arguments, "--ros-args", *ros_args]


@dataclass
class ReplayPlan:
    """What replay.launch.py starts: node_arguments for the depth_panoptic.launch.py it includes; play, the bag
    player's command line (None without a bag), and the player's environment."""

    node_arguments: dict[str, str]
    play: list[str] | None
    env: dict[str, str]
