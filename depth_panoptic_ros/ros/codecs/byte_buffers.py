"""Moving bytes between numpy arrays and the ``uint8[] data`` fields of rclpy messages.

rclpy keeps ``uint8[]`` fields as ``array.array('B')``. Measured with the generated sensor_msgs of ROS 2 Kilted
(1920x1080 32FC1, 8.3 MB): passing ``data=`` to the message constructor copies the buffer twice more (5.6 ms);
assigning ``msg.data = array.array`` afterwards copies once more (3.8 ms), or not at all when field checks are on
(ROS_PYTHON_CHECK_FIELDS=1, 2.5 ms); assigning ``bytes`` is as fast by default (3.3 ms) but is checked element by
element with field checks on (3.3 s). So outgoing data is an array.array assigned after construction; incoming
data is read through np.frombuffer without copying.
"""

from __future__ import annotations

import array

import numpy as np


def to_byte_array(values: np.ndarray) -> array.array:
    """The bytes of ``values`` (C order) as the array.array that rclpy keeps without conversion."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(values)).cast("B"))
    return out


def message_bytes(data: array.array | bytes | memoryview | np.ndarray) -> np.ndarray:
    """A zero-copy uint8 view of a message's ``data`` field."""
    return np.frombuffer(data, dtype=np.uint8)
