"""The ROS 2 adapter: node, message conversions, synchronization, QoS, diagnostics. The only code importing rclpy."""
