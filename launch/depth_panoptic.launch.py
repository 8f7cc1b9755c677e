"""depth_panoptic_node with its parameter file; every topic, the namespace, the parameter file, the mode, the
model, the merge, the grid frame, use_sim_time and large_data are launch arguments, and rviz:=true opens
config/depth_panoptic.rviz.

  ros2 launch depth_panoptic_ros depth_panoptic.launch.py \
      image_topic:=/camera/image_rect_color camera_info_topic:=/camera/camera_info lidar_topic:=/velodyne_points

Launch arguments given here win over the parameter file (config_file). No model (classical depth only):
model_path:=none, or model_path:="''". large_data:=true gives the node the package's Fast DDS profile for
full-size images and clouds; the driver or bag player must run with the same (FASTDDS_DEFAULT_PROFILES_FILE).

The node is a lifecycle node that manages itself: autostart:=true (default) configures and activates it at
start, autostart:=false leaves it unconfigured for `ros2 lifecycle set /depth_panoptic_node configure` (or a
lifecycle manager such as nav2's). It is started with launch_ros's plain Node action on purpose: `ros2 lifecycle`
and lifecycle managers talk to its services whatever action started it, and the LifecycleNode action would only
add launch-side transition events while requiring an explicit namespace.

The arguments are resolved in an OpaqueFunction and turned into the node's parameters, remappings and
environment by launch_plan(), a plain function that the package's tests run for every argument value.
"""

from __future__ import annotations

from collections.abc import Mapping

from depth_panoptic_ros.ros.runtime.launch_arguments import NodeLaunch, large_data_env, launch_bool, model_path

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

# launch argument -> (default, description); config_file's default is the package's config/depth_panoptic.yaml
ARGUMENTS = {
    "namespace": ("", "namespace of the node (and of its relative topic names)"),
    "config_file": (None, "parameter file of the node"),
    "mode": ("mono", "mono (image + camera_info + lidar) or stereo (left/ and right/ image + camera_info)"),
    "model_path": (
        f"package://{PACKAGE}/models/default.safetensors",
        "model .safetensors (absolute or package:// path); none (or \"''\") = classical depth only",
    ),
    "merge": ("", "panoptic merge: fcn, degeus or learned; '' = the model's stored choice"),
    "grid_frame": ("base_link", "ground frame of the bird's-eye grid (panoptic/occupancy, panoptic/bev)"),
    "use_sim_time": ("false", "use /clock (true when replaying a bag with `ros2 bag play --clock`)"),
    "large_data": ("false", "Fast DDS profile for full-size sensor messages (config/fastdds_large_data.xml)"),
    "rviz": ("false", "also start RViz with config/depth_panoptic.rviz"),
    "autostart": ("true", "the node configures and activates itself; false: unconfigured until `ros2 lifecycle set`"),
    **{name: (topic, f"topic the node's {topic} is remapped to") for name, topic in TOPIC_ARGUMENTS.items()},
}
BOOLEAN_ARGUMENTS = ("use_sim_time", "large_data", "rviz", "autostart")


def default_values(share: str) -> dict[str, str]:
    """What `ros2 launch` resolves each argument to when it is not given."""
    config = "/".join((share, *CONFIG_FILE))
    return {name: config if default is None else default for name, (default, _) in ARGUMENTS.items()}


def launch_plan(values: Mapping[str, str], share: str) -> list[NodeLaunch]:
    """The processes this file starts for resolved argument ``values`` (every name of ARGUMENTS) and the
    package's share directory: the node, and RViz with rviz:=true."""
    flags = {name: launch_bool(name, values[name]) for name in BOOLEAN_ARGUMENTS}
    namespace = values["namespace"]
    env = large_data_env(flags["large_data"], share)
    node = NodeLaunch(
        executable=NODE_NAME,
        name=NODE_NAME,
        namespace=namespace,
        parameter_files=[values["config_file"]],
        parameters={
            "mode": values["mode"],
            "model_path": model_path(values["model_path"]),
            "merge": values["merge"],
            "grid_frame": values["grid_frame"],
            "use_sim_time": flags["use_sim_time"],
            "autostart": flags["autostart"],
        },
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
                parameters={"use_sim_time": flags["use_sim_time"]},
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
            parameters=[*p.parameter_files, p.parameters],
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
