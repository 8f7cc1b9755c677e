"""depth_panoptic_node with its parameter file; every topic, the namespace, the parameter file, the mode, the
model, the merge, min_thing_score, the grid frame, use_sim_time, autostart and large_data are launch arguments,
and rviz:=true opens config/depth_panoptic.rviz.

  ros2 launch depth_panoptic_ros depth_panoptic.launch.py \
      image_topic:=/camera/image_rect_color camera_info_topic:=/camera/camera_info lidar_topic:=/velodyne_points

The arguments that set node parameters (PARAMETER_ARGUMENTS) override the parameter file (config_file) only when
given: their default is empty, meaning "as the parameter file says" (the package's config/depth_panoptic.yaml
holds mono, the shipped model, merge "", min_thing_score -1, base_link and autostart true; use_sim_time is the
node's false unless the file sets it). `name:="''"` sets a string parameter to "" over the file's value, e.g.
merge:="''" (the model's stored choice). No model (classical depth only): model_path:=none, or model_path:="''".
RViz gets use_sim_time as given, false when it is not. large_data:=true gives the node the package's Fast DDS
profile for full-size images and clouds; the driver or bag player must run with the same
(FASTDDS_DEFAULT_PROFILES_FILE).

The node is a lifecycle node that manages itself: autostart:=true (the package's file) configures and activates it
at start, autostart:=false leaves it unconfigured for `ros2 lifecycle set /depth_panoptic_node configure` (or a
lifecycle manager such as nav2's). It is started with launch_ros's plain Node action on purpose: `ros2 lifecycle`
and lifecycle managers talk to its services whatever action started it, and the LifecycleNode action would only
add launch-side transition events while requiring an explicit namespace.

The arguments are resolved in an OpaqueFunction and turned into the node's parameters, remappings and
environment by launch_plan(), a plain function that the package's tests run for every argument value.
"""

from __future__ import annotations

from collections.abc import Mapping

from depth_panoptic_ros.ros.runtime.launch_arguments import (
    NodeLaunch,
    given_parameters,
    large_data_env,
    launch_bool,
    launch_float,
    launch_string,
    model_path,
)

PACKAGE = "depth_panoptic_ros"
NODE_NAME = "depth_panoptic_node"
CONFIG_FILE = ("config", "depth_panoptic.yaml")  # in the package's share directory

# launch argument -> the node's topic name it remaps (defaults keep the node's names)
TOPIC_ARGUMENTS = {
    "image_topic": "image",
    "camera_info_topic": "camera_info",
    "lidar_topic": "lidar",
    "left_image_topic": "left/image",
    "left_camera_info_topic": "left/camera_info",
    "right_image_topic": "right/image",
    "right_camera_info_topic": "right/camera_info",
    "panoptic_ids_topic": "panoptic/ids",
    "panoptic_color_topic": "panoptic/color",
    "depth_color_topic": "panoptic/depth_color",
    "depth_topic": "panoptic/depth",
    "depth_camera_info_topic": "panoptic/depth/camera_info",
    "instances_topic": "panoptic/instances",
    "classes_topic": "panoptic/classes",
    "points_topic": "panoptic/points",
    "markers_topic": "panoptic/markers",
    "occupancy_topic": "panoptic/occupancy",
    "bev_topic": "panoptic/bev",
    "bev_info_topic": "panoptic/bev/info",
    "timing_topic": "~/timing",
}

# launch argument -> how its text reads, for those that set the node parameter of the same name; empty by default:
# the parameter file's value (given_parameters)
PARAMETER_ARGUMENTS = {
    "mode": launch_string,
    "model_path": model_path,
    "merge": launch_string,
    "min_thing_score": launch_float,
    "grid_frame": launch_string,
    "use_sim_time": launch_bool,
    "autostart": launch_bool,
}
_FILE = "; empty: the parameter file's"

# launch argument -> (default, description); config_file's default is the package's config/depth_panoptic.yaml
ARGUMENTS = {
    "namespace": ("", "namespace of the node (and of its relative topic names)"),
    "config_file": (None, "parameter file of the node"),
    "mode": ("", f"mono (image + camera_info + lidar) or stereo (left/ and right/ image + camera_info){_FILE}"),
    "model_path": (
        "",
        f"model .safetensors (absolute or package:// path); none (or \"''\") = classical depth only{_FILE}",
    ),
    "merge": ("", f"panoptic merge: fcn, degeus or learned; \"''\" = the model's stored choice{_FILE}"),
    "min_thing_score": (
        "",
        f"drop things scoring below it, in [0, 1], one cut for every class; -1 = the model's stored cuts{_FILE}",
    ),
    "grid_frame": ("", f"ground frame of the bird's-eye grid (panoptic/occupancy, panoptic/bev){_FILE}"),
    "use_sim_time": (
        "",
        "use /clock (true when replaying a bag with `ros2 bag play --clock`); empty: the parameter file's for the "
        "node, false for RViz",
    ),
    "large_data": ("false", "Fast DDS profile for full-size sensor messages (config/fastdds_large_data.xml)"),
    "rviz": ("false", "also start RViz with config/depth_panoptic.rviz"),
    "autostart": (
        "",
        f"true: the node configures and activates itself; false: unconfigured until `ros2 lifecycle set`{_FILE}",
    ),
    **{name: (topic, f"topic the node's {topic} is remapped to") for name, topic in TOPIC_ARGUMENTS.items()},
}
BOOLEAN_ARGUMENTS = ("large_data", "rviz")  # the booleans that set no node parameter: never empty


def default_values(share: str) -> dict[str, str]:
    """What `ros2 launch` resolves each argument to when it is not given."""
    config = "/".join((share, *CONFIG_FILE))
    return {name: config if default is None else default for name, (default, _) in ARGUMENTS.items()}


def launch_plan(values: Mapping[str, str], share: str) -> list[NodeLaunch]:
    """The processes this file starts for resolved argument ``values`` (every name of ARGUMENTS) and the
    package's share directory: the node, and RViz with rviz:=true. The node's parameters are its parameter file,
    then (later wins) the PARAMETER_ARGUMENTS that were given; ValueError for a bad boolean or number."""
    flags = {name: launch_bool(name, values[name]) for name in BOOLEAN_ARGUMENTS}
    parameters = given_parameters(values, PARAMETER_ARGUMENTS)
    namespace = values["namespace"]
    env = large_data_env(flags["large_data"], share)
    node = NodeLaunch(
        executable=NODE_NAME,
        name=NODE_NAME,
        namespace=namespace,
        parameter_files=[values["config_file"]],
        parameters=parameters,
        remappings=[(topic, values[name]) for name, topic in TOPIC_ARGUMENTS.items() if values[name] != topic],
        env=env,
    )
    processes = [node]
    if flags["rviz"]:
        processes.append(
            NodeLaunch(
                executable="rviz2",
                name="rviz2",
                namespace=namespace,
                arguments=["-d", f"{share}/config/depth_panoptic.rviz"],
                parameters={"use_sim_time": parameters.get("use_sim_time", False)},
                env=env,
            )
        )
    return processes


def _launch_setup(context, *args, **kwargs) -> list:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = FindPackageShare(PACKAGE).perform(context)
    packages = {NODE_NAME: PACKAGE, "rviz2": "rviz2"}
    return [
        Node(
            package=packages[p.executable],
            executable=p.executable,
            name=p.name,
            namespace=p.namespace or None,
            # a dict only when it sets something (its values are str, bool or float, never substitutions)
            parameters=[*p.parameter_files, *([p.parameters] if p.parameters else [])],
            remappings=p.remappings,
            arguments=p.arguments,
            additional_env=p.env,
            output="screen",
            emulate_tty=True,
        )
        for p in launch_plan(values, share)
    ]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    config = PathJoinSubstitution([FindPackageShare(PACKAGE), *CONFIG_FILE])
    arguments = [
        DeclareLaunchArgument(name, default_value=config if default is None else default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_setup)])
