"""pip install for machines without ROS (offline training, evaluation, `depth-panoptic` tools).

The ROS node needs the package's messages, which only the CMake build makes (`make setup` in a venv of
ROS 2 wheels, or `colcon build` on a ROS 2 distro). Do not pip-install into a prefix where CMake installed
this package: both would own `depth_panoptic_ros/`.
"""

from setuptools import find_packages, setup

setup(
    name="depth_panoptic_ros",
    version="0.1.0",
    description="Depth-aware panoptic segmentation for camera + LiDAR (ROS 2 package; core usable without ROS)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["depth_panoptic_ros", "depth_panoptic_ros.*"]),
    install_requires=[
        "numpy>=1.26",
        "numba>=0.59",  # the compiled kernels of the per-frame path and of the PQ evaluation
        "opencv-python-headless>=4.8,<5",  # OpenCV 5 breaks a distro cv_bridge sharing the Python
        "pyyaml>=6.0",
        "safetensors>=0.4",
        "torch>=2.2",
        "tqdm>=4.66",
        "tensorboard>=2.15",
        "rosbags>=0.10",
        "cityscapesscripts>=2.2",
        "pillow>=10",
        "deflate>=0.9",  # libdeflate for reading panoptic PNGs fast (stdlib zlib without it)
    ],
    extras_require={"export": ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"]},
    entry_points={
        "console_scripts": [
            "depth-panoptic = depth_panoptic_ros.cli:main",
            "depth-panoptic-train = depth_panoptic_ros.cli.train:main",
        ]
    },
)
