"""The ROS 2 adapter, the only code importing rclpy, split by role: runtime/ (the node), codecs/ (messages <->
arrays), bags/ (rosbag2 tools) and demo/."""
