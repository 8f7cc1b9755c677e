"""rosbag2 without the ros2 CLI: reading and writing bags, playing them to ROS 2, processing them offline."""
