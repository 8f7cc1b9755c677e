"""Camera models, LiDAR projection, stereo depth, back-projection, PointCloud2 memory layout (numpy/OpenCV, no ROS)."""
