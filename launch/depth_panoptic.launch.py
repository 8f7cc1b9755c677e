"""depth_panoptic_node with its parameter file; every topic, the namespace, the parameter file, the mode, the
model, the merge, the grid frame and use_sim_time are launch arguments, and rviz:=true opens config/depth_panoptic.rviz.

  ros2 launch depth_panoptic_ros depth_panoptic.launch.py \
      image_topic:=/camera/image_rect_color camera_info_topic:=/camera/camera_info lidar_topic:=/velodyne_points

Launch arguments given here win over the parameter file (config_file).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_panoptic_ros"

# launch argument -> (the node's topic name, the default it is remapped to)
TOPIC_ARGUMENTS = {
    "image_topic": ("image", "image"),
    "camera_info_topic": ("camera_info", "camera_info"),
    "lidar_topic": ("lidar", "lidar"),
    "left_image_topic": ("left/image", "left/image"),
    "left_camera_info_topic": ("left/camera_info", "left/camera_info"),
    "right_image_topic": ("right/image", "right/image"),
    "right_camera_info_topic": ("right/camera_info", "right/camera_info"),
    "panoptic_ids_topic": ("panoptic/ids", "panoptic/ids"),
    "panoptic_color_topic": ("panoptic/color", "panoptic/color"),
    "depth_color_topic": ("panoptic/depth_color", "panoptic/depth_color"),
    "depth_topic": ("panoptic/depth", "panoptic/depth"),
    "depth_camera_info_topic": ("panoptic/depth/camera_info", "panoptic/depth/camera_info"),
    "instances_topic": ("panoptic/instances", "panoptic/instances"),
    "classes_topic": ("panoptic/classes", "panoptic/classes"),
    "points_topic": ("panoptic/points", "panoptic/points"),
    "markers_topic": ("panoptic/markers", "panoptic/markers"),
    "occupancy_topic": ("panoptic/occupancy", "panoptic/occupancy"),
    "bev_topic": ("panoptic/bev", "panoptic/bev"),
    "bev_info_topic": ("panoptic/bev/info", "panoptic/bev/info"),
    "timing_topic": ("~/timing", "~/timing"),
}

# launch argument = node parameter -> (default, type, description)
PARAMETER_ARGUMENTS = {
    "mode": ("mono", "str", "mono (image + camera_info + lidar) or stereo (left/ and right/ image + camera_info)"),
    "model_path": (
        "package://depth_panoptic_ros/models/default.safetensors",
        "str",
        "model .safetensors (absolute or package:// path); '' = classical depth only",
    ),
    "merge": ("", "str", "panoptic merge: fcn, degeus or learned; '' = the model's stored choice"),
    "grid_frame": ("base_link", "str", "ground frame of the bird's-eye grid (panoptic/occupancy, panoptic/bev)"),
    "use_sim_time": ("false", "bool", "use /clock (true when replaying a bag with `ros2 bag play --clock`)"),
}

# launch-only arguments -> description
ARGUMENTS = {
    "namespace": "namespace of the node (and of its relative topic names)",
    "config_file": "parameter file of the node",
    "rviz": "also start RViz with config/depth_panoptic.rviz",
}

_TYPES = {"str": str, "bool": bool}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    defaults = {
        "namespace": "",
        "config_file": PathJoinSubstitution([share, "config", "depth_panoptic.yaml"]),
        "rviz": "false",
    }
    arguments = [
        DeclareLaunchArgument(name, default_value=defaults[name], description=text) for name, text in ARGUMENTS.items()
    ]
    arguments += [
        DeclareLaunchArgument(name, default_value=target, description=f"topic the node's {topic} is remapped to")
        for name, (topic, target) in TOPIC_ARGUMENTS.items()
    ]
    arguments += [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, _, text) in PARAMETER_ARGUMENTS.items()
    ]
    overrides = {
        name: ParameterValue(LaunchConfiguration(name), value_type=_TYPES[kind])
        for name, (_, kind, _) in PARAMETER_ARGUMENTS.items()
    }
    node = Node(
        package=PACKAGE,
        executable="depth_panoptic_node",
        name="depth_panoptic_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("config_file"), overrides],
        remappings=[(topic, LaunchConfiguration(name)) for name, (topic, _) in TOPIC_ARGUMENTS.items()],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([share, "config", "depth_panoptic.rviz"])],
        parameters=[{"use_sim_time": overrides["use_sim_time"]}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, node, rviz])
