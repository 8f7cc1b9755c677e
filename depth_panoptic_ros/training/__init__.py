"""Losses, targets, the training loop and the `depth-panoptic-train` entrypoint (never imports rclpy)."""
