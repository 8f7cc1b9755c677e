"""Reading panoptic PNGs: the compiled unfiltering against PNG files built here from the spec (every filter type,
RGB and RGBA, odd sizes), against OpenCV on files written by PIL, OpenCV and COCO, and the OpenCV fallback for
what the fast path does not read (other formats, corrupt files)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depth_panoptic_ros.evaluation import panoptic_png
from depth_panoptic_ros.evaluation.panoptic_png import decode_fast, read_panoptic_png


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered_row(kind: int, row: list[int], prior: list[int], bpp: int) -> list[int]:
    """PNG spec 9.2, byte by byte, as an encoder writes it."""
    out = []
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((x - predictor) % 256)
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(pixels: np.ndarray, kinds: list[int], interlace: int = 0) -> bytes:
    """An 8-bit RGB / RGBA PNG of ``pixels`` (H, W, 3 | 4) with row y filtered by kinds[y % len(kinds)]."""
    height, width, bpp = pixels.shape
    prior, data = [0] * (width * bpp), bytearray()
    for y in range(height):
        row = pixels[y].ravel().tolist()
        kind = kinds[y % len(kinds)]
        data += bytes([kind, *_filtered_row(kind, row, prior, bpp)])
        prior = row
    header = struct.pack(">IIBBBBB", width, height, 8, {3: 2, 4: 6}[bpp], 0, 0, interlace)
    compressed = zlib.compress(bytes(data))
    idat = [compressed[: len(compressed) // 2], compressed[len(compressed) // 2 :]]  # two IDAT chunks
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + b"".join(_chunk(b"IDAT", c) for c in idat)
        + _chunk(b"IEND", b"")
    )


def expected_ids(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels[..., :3].astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


@pytest.mark.parametrize("bpp", [3, 4])
@pytest.mark.parametrize("kinds", [[0], [1], [2], [3], [4], [4, 0, 3, 1, 2, 4, 3]])
def test_every_filter_type_is_undone(tmp_path: Path, bpp: int, kinds: list[int]) -> None:
    rng = np.random.default_rng(len(kinds) * 10 + kinds[0] + bpp)
    pixels = rng.integers(0, 256, (9, 13, bpp), dtype=np.uint8)  # random bytes: every Paeth branch, every carry
    pixels[3:6, 4:10] = pixels[3, 4]  # and a flat patch, as in a panoptic map
    path = tmp_path / "map.png"
    path.write_bytes(png_bytes(pixels, kinds))
    ids = read_panoptic_png(path)
    np.testing.assert_array_equal(ids, expected_ids(pixels))
    assert ids.dtype == np.uint32
    # The encoder above is checked by OpenCV decoding the same file.
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[..., 2::-1], pixels[..., :3])


def test_the_fast_path_reads_what_pil_and_opencv_write_as_opencv_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = np.kron(rng.integers(0, 1 << 24, (6, 9)), np.ones((21, 17), np.int64)).astype(np.uint32)
    ids[::7, ::3] = rng.integers(0, 1 << 24, ids[::7, ::3].shape)  # noise: PIL then picks several filter types
    rgb = np.dstack([ids & 255, (ids >> 8) & 255, ids >> 16]).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "pil.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "pil_rgba.png")
    cv2.imwrite(str(tmp_path / "opencv.png"), rgb[..., ::-1])
    for name in ("pil.png", "pil_rgba.png", "opencv.png"):
        data = (tmp_path / name).read_bytes()
        fast = decode_fast(data)
        assert fast is not None, name
        np.testing.assert_array_equal(fast, ids, err_msg=name)
        np.testing.assert_array_equal(panoptic_png._decode_opencv(data, tmp_path / name), ids, err_msg=name)
    raw = np.frombuffer(zlib.decompress(_idat((tmp_path / "pil.png").read_bytes())), np.uint8)
    kinds = raw[:: 1 + 3 * ids.shape[1]]
    assert len(set(kinds.tolist())) >= 3  # the file really exercises several filters


def _idat(data: bytes) -> bytes:
    """The concatenated IDAT chunks' data of a PNG file."""
    offset, out = 8, b""
    while offset < len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        out += data[offset + 8 : offset + 8 + length] if kind == b"IDAT" else b""
        offset += 12 + length
    return out


def _with_image_data(data: bytes, raw: bytes) -> bytes:
    """``data``'s header with ``raw`` as its (inflated) image data."""
    return data[:33] + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def test_coco_panoptic_files_read_as_opencv_reads_them(coco_sample: Path) -> None:
    files = sorted((coco_sample / "panoptic_examples").glob("*.png"))
    assert files
    for path in files:
        fast = decode_fast(path.read_bytes())
        assert fast is not None, path.name
        np.testing.assert_array_equal(fast, panoptic_png._decode_opencv(path.read_bytes(), path), err_msg=path.name)


def test_other_formats_go_through_opencv(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (8, 11, 3), dtype=np.uint8)
    Image.fromarray(pixels[..., 0]).convert("P").save(tmp_path / "palette.png")
    assert decode_fast((tmp_path / "palette.png").read_bytes()) is None
    palette = np.asarray(Image.open(tmp_path / "palette.png").convert("RGB"))
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "palette.png"), expected_ids(palette))
    (tmp_path / "interlaced.png").write_bytes(png_bytes(pixels, [0], interlace=1))
    assert decode_fast((tmp_path / "interlaced.png").read_bytes()) is None
    cv2.imwrite(str(tmp_path / "deep.png"), pixels.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "gray.png"), pixels[..., 0])
    for name in ("deep.png", "gray.png"):
        assert decode_fast((tmp_path / name).read_bytes()) is None
        with pytest.raises(ValueError, match="expected an 8-bit RGB panoptic PNG"):
            read_panoptic_png(tmp_path / name)


def test_corrupt_files_get_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (8, 11, 3), dtype=np.uint8)
    good = png_bytes(pixels, [1])
    raw = bytearray(zlib.decompress(_idat(good)))
    raw[3 * (1 + 33)] = 7  # row 3's filter byte: no such filter
    cases = {"truncated.png": good[: len(good) // 2], "bad_filter.png": _with_image_data(good, bytes(raw))}
    cases["not_png.png"] = b"hello"
    huge = bytearray(good)
    huge[16:24] = struct.pack(">II", 1 << 16, 1 << 16)  # IHDR width, height: 2^32 pixels claimed by 8 bytes
    cases["huge.png"] = bytes(huge)
    inflated = []  # the output sizes the fast path asked to inflate: a hostile header must not reach the inflate

    def inflate(data: bytes, size: int) -> bytes:
        inflated.append(size)
        return zlib.decompress(data, bufsize=size) if size < 1 << 20 else b""

    monkeypatch.setattr(panoptic_png, "_inflate", inflate)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert decode_fast(data) is None, name
        with pytest.raises(ValueError, match="unreadable"):
            read_panoptic_png(tmp_path / name)
    assert inflated and max(inflated) < 1 << 20, inflated
    with pytest.raises(FileNotFoundError, match="panoptic PNG not found"):
        read_panoptic_png(tmp_path / "missing.png")


def test_without_libdeflate_or_numba_the_result_is_the_same(tmp_path: Path, monkeypatch) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (10, 7, 3), dtype=np.uint8)
    path = tmp_path / "map.png"
    path.write_bytes(png_bytes(pixels, [4, 3, 2, 1, 0]))
    monkeypatch.setattr(panoptic_png, "_inflate", lambda data, size: zlib.decompress(data, bufsize=size))
    np.testing.assert_array_equal(read_panoptic_png(path), expected_ids(pixels))
    monkeypatch.setattr(panoptic_png, "unfilter_ids", None)
    assert decode_fast(path.read_bytes()) is None
    np.testing.assert_array_equal(read_panoptic_png(path), expected_ids(pixels))
