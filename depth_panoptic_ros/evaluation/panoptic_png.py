"""COCO panoptic PNG files -> (H, W) uint32 segment ids, id = R + 256 G + 256^2 B.

Panoptic maps are 8-bit RGB PNGs (RGBA is read too, alpha ignored), non-interlaced in every data set and tool
seen (panopticapi and cityscapesScripts write them with PIL, this package with OpenCV). Those are decoded here:
chunks parsed, the image data inflated by libdeflate (the ``deflate`` package; ~25x faster than zlib on these
highly repetitive maps) and unfiltered by a compiled kernel (png_filters.py). Anything else — interlaced, other
bit depths or color types, a file this parser cannot follow — goes through OpenCV, which reads it or says why
not. Chunk CRCs are not checked on the fast path (zlib's Adler-32 of the image data is).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

try:  # libdeflate: the inflate is ~0.6 ms instead of ~17 ms for a 1024 x 2048 map (BENCHMARKS.md)
    from deflate import zlib_decompress as _inflate
except ImportError:  # e.g. a distro install without pip packages: stdlib zlib, same bytes

    def _inflate(data: bytes, size: int) -> bytes:
        return zlib.decompress(data, bufsize=size)


try:
    from depth_panoptic_ros.evaluation.png_filters import unfilter_ids
except ImportError:  # numba missing or not yet released for this Python: every file goes through OpenCV
    unfilter_ids = None

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # PNG color type -> bytes per pixel at bit depth 8: RGB, RGBA
# OpenCV's default CV_IO_MAX_IMAGE_PIXELS: larger headers go to OpenCV, which refuses them, instead of the inflate
# and the id map allocating what a few hostile header bytes claim.
_MAX_PIXELS = 1 << 30


def read_panoptic_png(path: str | Path) -> np.ndarray:
    """(H, W) uint32 ids of a COCO panoptic PNG; a clear error for a missing file or a non-RGB image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"panoptic PNG not found: {path}")
    data = path.read_bytes()
    ids = decode_fast(data)
    return ids if ids is not None else _decode_opencv(data, path)


def decode_fast(data: bytes) -> np.ndarray | None:
    """The ids of an 8-bit, non-interlaced RGB / RGBA PNG, or None when it is not one or cannot be followed."""
    if unfilter_ids is None or not data.startswith(_SIGNATURE):
        return None
    header, chunks = None, []
    offset = len(_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        body = data[offset + 8 : offset + 8 + length]
        if len(body) != length:  # truncated
            return None
        if kind == b"IHDR" and length == 13:
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
        offset += 12 + length  # length, type, data, CRC
    if header is None or not chunks:
        return None
    width, height, depth, color, compression, filtering, interlace = header
    bpp = _CHANNELS.get(color)
    if bpp is None or depth != 8 or compression or filtering or interlace or not 0 < width * height <= _MAX_PIXELS:
        return None
    size = height * (1 + width * bpp)
    try:
        raw = _inflate(b"".join(chunks), size)
    except Exception:  # noqa: BLE001 (deflate.DeflateError, zlib.error: OpenCV then names the problem)
        return None
    if len(raw) != size:
        return None
    ids = np.empty((height, width), np.uint32)
    if unfilter_ids(np.frombuffer(raw, np.uint8), height, width, bpp, ids) >= 0:  # a row with an unknown filter
        return None
    return ids


def _decode_opencv(data: bytes, path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] not in (3, 4) or bgr.dtype != np.uint8:
        got = "unreadable" if bgr is None else f"{bgr.dtype} with shape {bgr.shape}"
        raise ValueError(f"{path}: expected an 8-bit RGB panoptic PNG, got {got}")
    # Bytes R, G, B, A read as one little-endian word are R + 256 G + 256^2 B + 256^3 A: two passes, no casts.
    code = cv2.COLOR_BGR2RGBA if bgr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
    ids = cv2.cvtColor(bgr, code).view("<u4")[..., 0]
    return np.bitwise_and(ids, 0xFFFFFF, out=ids)
