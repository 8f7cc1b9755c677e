"""Camera models, LiDAR projection, stereo depth, back-projection and point-cloud memory layouts (numpy/OpenCV, no ROS)."""
