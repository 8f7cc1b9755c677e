"""Losses, targets, the training loop, input statistics and release (never imports rclpy; the entrypoint
`depth-panoptic-train` is cli/train.py)."""
