"""Dataset readers, file formats (KITTI, calibration YAML, PLY) and the synthetic scene generator."""
