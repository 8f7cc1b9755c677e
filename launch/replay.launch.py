"""depth_panoptic.launch.py on simulated time, for rosbag replay; with bag:=<path> it also plays the bag.

  ros2 launch depth_panoptic_ros replay.launch.py bag:=~/bags/drive1 image_topic:=/camera/image_raw ...
  # or, in a second terminal: ros2 bag play --clock ~/bags/drive1

`--clock` publishes /clock from the bag, so TF lookups and the node's latency use the recorded time; a looping
bag (loop:=true) makes time jump back, which the node handles by resetting its synchronizer.
All other arguments are those of depth_panoptic.launch.py.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.substitutions import FindPackageShare

# launch argument -> (default, description)
ARGUMENTS = {
    "bag": ("", "rosbag2 folder to play with --clock; empty = play it yourself"),
    "loop": ("false", "replay the bag in a loop"),
    "rate": ("1.0", "playback rate of the bag"),
}


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("depth_panoptic_ros"), "launch", "depth_panoptic.launch.py"])
        ),
        launch_arguments={"use_sim_time": "true"}.items(),
    )
    bag = LaunchConfiguration("bag")
    play = ExecuteProcess(
        cmd=[
            "ros2",
            "bag",
            "play",
            bag,
            "--clock",
            "--rate",
            LaunchConfiguration("rate"),
            PythonExpression(["'--loop' if '", LaunchConfiguration("loop"), "'.lower() == 'true' else ''"]),
        ],
        output="screen",
        condition=IfCondition(PythonExpression(["'", bag, "' != ''"])),
    )
    return LaunchDescription([*arguments, node, play])
