"""sensor_msgs/CameraInfo <-> CameraModel."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.ros.codecs.validation import check_camera_info


def camera_model_from_info(msg: CameraInfo) -> CameraModel:
    """The model of the images published beside ``msg``.

    A driver that bins or crops (ROI) publishes the full-resolution calibration plus binning and ROI, so the
    matrices are mapped to the published pixels as image_geometry does: shift by the ROI offset, divide by the
    binning. An all-zero P (uncalibrated rectification), accepted only without distortion, falls back to
    [K | 0] in CameraModel.from_matrices.
    """
    check_camera_info(msg)
    bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
    roi = msg.roi
    width = int(roi.width) if roi.width else int(msg.width)
    height = int(roi.height) if roi.height else int(msg.height)
    to_published = np.array([[1 / bx, 0, -roi.x_offset / bx], [0, 1 / by, -roi.y_offset / by], [0, 0, 1]])
    K = to_published @ np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    P = to_published @ np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    return CameraModel.from_matrices(width // bx, height // by, K, P, msg.d, msg.distortion_model)


def calibration_key(msg: CameraInfo) -> bytes:
    """Everything :func:`camera_model_from_info` reads, as bytes: equal keys give equal camera models."""
    roi = msg.roi
    sizes = np.array(
        [
            msg.width,
            msg.height,
            msg.binning_x,
            msg.binning_y,
            roi.x_offset,
            roi.y_offset,
            roi.width,
            roi.height,
            len(msg.d),
        ],
        dtype=np.int64,
    )
    matrices = [np.asarray(values, dtype=np.float64).tobytes() for values in (msg.k, msg.p, msg.d)]
    return b"|".join([sizes.tobytes(), *matrices, msg.distortion_model.encode()])


def camera_info_from_model(model: CameraModel, header: Header) -> CameraInfo:
    """The CameraInfo of an image published at ``model``'s resolution (e.g. panoptic/depth at camera size)."""
    return CameraInfo(
        header=header,
        width=model.width,
        height=model.height,
        distortion_model=model.distortion_model,
        d=model.D.tolist(),
        k=model.K.ravel(),
        r=np.eye(3).ravel(),
        p=model.P.ravel(),
    )
