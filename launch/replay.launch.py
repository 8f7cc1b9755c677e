"""depth_panoptic.launch.py on simulated time, for rosbag replay; with bag:=<path> it also plays the bag.

  ros2 launch depth_panoptic_ros replay.launch.py bag:=~/bags/drive1 image_topic:=/camera/image_raw ...
  # or, in a second terminal: ros2 bag play --clock ~/bags/drive1

use_sim_time (default true here) is passed to the node and decides `--clock`: the bag's /clock makes TF lookups and
the node's latency use the recorded time. Being always given to depth_panoptic.launch.py, it overrides the
parameter file's use_sim_time (whose own default, empty, would leave it to the file). A looping bag (loop:=true)
makes time jump back, which the node handles by restarting its synchronizer. large_data:=true gives the node and
the player the package's Fast DDS profile. All other arguments are those of depth_panoptic.launch.py.

The arguments are resolved in an OpaqueFunction and turned into the player's command line by replay_plan(), a
plain function that the package's tests run for every argument value.
"""

from __future__ import annotations

from collections.abc import Mapping

from depth_panoptic_ros.ros.runtime.launch_arguments import ReplayPlan, large_data_env, launch_bool

PACKAGE = "depth_panoptic_ros"

# launch argument -> (default, description)
ARGUMENTS = {
    "bag": ("", "rosbag2 folder to play; empty = play it yourself"),
    "loop": ("false", "replay the bag in a loop"),
    "rate": ("1.0", "playback rate of the bag"),
    "use_sim_time": ("true", "the node uses the bag's /clock (played with --clock)"),
    "large_data": ("false", "Fast DDS profile for full-size sensor messages, for the node and the player"),
}
BOOLEAN_ARGUMENTS = ("loop", "use_sim_time", "large_data")
# arguments handed on to depth_panoptic.launch.py, so that its node sees the values used here
PASSED_ON = ("use_sim_time", "large_data")


def default_values() -> dict[str, str]:
    return {name: default for name, (default, _) in ARGUMENTS.items()}


def replay_plan(values: Mapping[str, str], share: str) -> ReplayPlan:
    """What this file starts for resolved argument ``values`` (every name of ARGUMENTS); ValueError for a bad
    boolean or rate."""
    flags = {name: launch_bool(name, values[name]) for name in BOOLEAN_ARGUMENTS}
    try:
        rate = float(values["rate"])
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise ValueError(f"launch argument rate:={values['rate']!r}: expected a number > 0")
    play = None
    if values["bag"]:
        play = ["ros2", "bag", "play", values["bag"], "--rate", values["rate"]]
        play += ["--clock"] if flags["use_sim_time"] else []
        play += ["--loop"] if flags["loop"] else []
    return ReplayPlan({name: values[name] for name in PASSED_ON}, play, large_data_env(flags["large_data"], share))


def _launch_setup(context, *args, **kwargs) -> list:
    from launch.actions import ExecuteProcess
    from launch.substitutions import LaunchConfiguration
    from launch_ros.substitutions import FindPackageShare

    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    plan = replay_plan(values, FindPackageShare(PACKAGE).perform(context))
    if plan.play is None:
        return []
    return [ExecuteProcess(cmd=plan.play, additional_env=plan.env, output="screen")]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "depth_panoptic.launch.py"])
        ),
        launch_arguments={name: LaunchConfiguration(name) for name in PASSED_ON}.items(),
    )
    return LaunchDescription([*arguments, node, OpaqueFunction(function=_launch_setup)])
