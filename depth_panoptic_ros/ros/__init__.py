"""The ROS 2 adapter: the node, message conversions, synchronisation, parameters, diagnostics. The only subpackage that imports rclpy."""
