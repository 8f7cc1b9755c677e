"""Pinhole camera model with the fields of sensor_msgs/CameraInfo (K, D, P, size).

Images handed to the pipeline are rectified, so projection uses P's left 3x3 (the rectified intrinsics) and
P's fourth column carries the stereo baseline; K and D describe the raw camera and are kept so that a
CameraInfo round-trips. Resizing and cropping update K and P together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    K: np.ndarray  # (3, 3) float64
    P: np.ndarray  # (3, 4) float64
    D: np.ndarray  # (n,) float64, may be empty
    distortion_model: str = "plumb_bob"

    @classmethod
    def from_matrices(
        cls,
        width: int,
        height: int,
        K: np.ndarray,
        P: np.ndarray | None = None,
        D: np.ndarray | None = None,
        distortion_model: str = "plumb_bob",
    ) -> CameraModel:
        """Validates once so that the rest of the code can trust the model; P defaults to [K | 0]."""
        K = np.asarray(K, dtype=np.float64)
        if K.size != 9:
            raise ValueError(f"camera K: expected 9 values, got shape {K.shape}")
        K = K.reshape(3, 3)
        P = np.hstack([K, np.zeros((3, 1))]) if P is None or not np.any(P) else np.asarray(P, np.float64)
        if P.size != 12:
            raise ValueError(f"camera P: expected 12 values, got shape {P.shape}")
        P = P.reshape(3, 4)
        D = np.zeros(0) if D is None else np.asarray(D, dtype=np.float64).ravel()
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"camera size must be positive, got width={width} height={height}")
        for name, m in (("K", K), ("P", P)):
            if not np.all(np.isfinite(m)):
                raise ValueError(f"camera {name} holds NaN or inf: {m.tolist()}")
            if m[0, 0] <= 0 or m[1, 1] <= 0:
                raise ValueError(f"camera {name} has a non-positive focal length (fx={m[0, 0]}, fy={m[1, 1]})")
        return cls(int(width), int(height), K, P, D, distortion_model)

    @property
    def fx(self) -> float:
        return float(self.P[0, 0])

    @property
    def fy(self) -> float:
        return float(self.P[1, 1])

    @property
    def cx(self) -> float:
        return float(self.P[0, 2])

    @property
    def cy(self) -> float:
        return float(self.P[1, 2])

    @property
    def intrinsics(self) -> np.ndarray:
        """The rectified 3x3 intrinsics used for projection and back-projection."""
        return self.P[:, :3]

    @property
    def baseline(self) -> float:
        """Stereo baseline in meters from a right camera's P (P[0, 3] = -fx * B); 0 for a left/mono camera."""
        return float(-self.P[0, 3] / self.P[0, 0])

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def resized(self, width: int, height: int) -> CameraModel:
        """The model of the same camera after resizing its images to width x height (pixel-center convention)."""
        sx, sy = width / self.width, height / self.height
        scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        return CameraModel.from_matrices(width, height, scale @ self.K, scale @ self.P, self.D, self.distortion_model)

    def cropped(self, x: int, y: int, width: int, height: int) -> CameraModel:
        """The model of the crop [y:y+height, x:x+width] of this camera's images."""
        if x < 0 or y < 0 or x + width > self.width or y + height > self.height or width <= 0 or height <= 0:
            raise ValueError(f"crop ({x}, {y}, {width}x{height}) outside a {self.width}x{self.height} image")
        shift = np.array([[1, 0, -x], [0, 1, -y], [0, 0, 1]], dtype=np.float64)
        return CameraModel.from_matrices(width, height, shift @ self.K, shift @ self.P, self.D, self.distortion_model)
