"""The ROS 2 adapter: node, message conversions, synchronisation, QoS, diagnostics. The only code importing rclpy."""
