"""What the package's launch files make of their arguments, as plain functions (no `launch` import).

(Types live here too: launch loads a launch file as a module it does not register, where a dataclass cannot be
defined.) The launch files resolve their arguments in an OpaqueFunction and hand the strings to these functions, so that
the command lines they start can be computed, and tested, for every argument value on machines without the ROS
launch tooling. Spellings follow `ros2 launch`: booleans as launch's IfCondition reads them, an empty string as
`''` (how `name:="''"` arrives), and `none` for "no model". A launch argument that sets a node parameter is empty
by default, meaning "not given": the parameter file's value stands (given_parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LARGE_DATA_PROFILE = "config/fastdds_large_data.xml"
PROFILES_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
_TRUE, _FALSE = ("true", "1"), ("false", "0")  # launch.conditions.evaluate_condition_expression's words
_EMPTY = ("''", '""')  # `name:="''"` as the shell hands it on: an explicit empty string

ParameterValue = bool | float | str


def launch_bool(name: str, value: str) -> bool:
    """A boolean launch argument; ValueError naming it otherwise (as IfCondition would fail)."""
    text = value.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"launch argument {name}:={value!r}: expected true or false")


def launch_float(name: str, value: str) -> float:
    """A number launch argument; ValueError naming it otherwise."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"launch argument {name}:={value!r}: expected a number")
    return number


def launch_string(name: str, value: str) -> str:
    """A string launch argument: '' for `name:="''"` (or `""`), otherwise the value as given."""
    return "" if value.strip() in _EMPTY else value


def model_path(name: str, value: str) -> str:
    """The node's model_path: '' for every spelling of "no model" (`model_path:="''"`, `model_path:=none`)."""
    return "" if value.strip().lower() == "none" else launch_string(name, value)


def given_parameters(
    values: Mapping[str, str], parsers: Mapping[str, Callable[[str, str], ParameterValue]]
) -> dict[str, ParameterValue]:
    """The node parameters that launch arguments set: ``parsers`` maps each such argument (named as the parameter)
    to how its text reads (launch_bool, launch_float, launch_string, model_path). Only the arguments that were given
    are in it: an empty one (the default; `ros2 launch` rejects `name:=` on its command line) leaves the parameter
    to the parameter file, while `name:="''"` is an explicit empty string."""
    return {name: parse(name, values[name]) for name, parse in parsers.items() if values[name].strip()}


def large_data_env(enabled: bool, share: str | Path) -> dict[str, str]:
    """Environment of a process that exchanges full-size sensor messages: the package's Fast DDS profile
    (shared memory sized for a full cloud, UDP on loopback). Every process of the stack needs the same."""
    return {PROFILES_ENV: str(Path(share) / LARGE_DATA_PROFILE)} if enabled else {}


def yaml_scalar(value: ParameterValue) -> str:
    """A parameter value as `-p name:=VALUE` needs it: YAML true/false, floats with their point (0.4, -1.0: a
    double, not an integer), strings single-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


@dataclass
class NodeLaunch:
    """One ROS node as a launch file starts it; ``command()`` is the equivalent plain command line."""

    executable: str
    name: str
    namespace: str = ""
    parameter_files: list[str] = field(default_factory=list)
    parameters: dict[str, ParameterValue] = field(default_factory=dict)
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
