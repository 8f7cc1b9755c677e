"""Metrics: panoptic quality, depth-completion errors, merged-instance count."""
