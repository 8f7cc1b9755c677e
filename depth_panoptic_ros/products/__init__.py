"""What the pipeline hands out per frame: instance depth tables, 3D panoptic clouds, color maps."""
