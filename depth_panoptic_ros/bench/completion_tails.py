"""Where the large completion errors are: per-pixel error maps and the top 1 % errors broken down by cause.

RMSE on real LiDAR is a tail statistic (on the ring-geometry frames the top 1 % of the errors hold most of the
squared error), so the mean alone does not say what to fix. Each of the top 1 % scored pixels of a frame gets
the first of these causes that applies, judged from what the method saw (the input) and the reference:

- ``above top ring``: above the top measurement of its column (nothing to interpolate from);
- ``parallax``: the reference lies > 25 % behind the median input depth within 2 px, i.e. the LiDAR saw past
  a nearer surface that the camera sees there (hold-out protocols; the reference itself is "wrong" for the image);
- ``thin structure``: > 25 % nearer than the nearest inputs on both sides along its row or its column, i.e.
  narrower than the gap between samples (poles, sign posts, wires);
- ``depth edge``: the inputs within 4 px span more than 25 % in depth;
- ``far range``: reference beyond 40 m;
- ``other``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from depth_panoptic_ros.bench.completion import BASELINE, load_protocols, methods

CAUSES = ("above top ring", "parallax", "thin structure", "depth edge", "far range", "other")
STEP = 1.25  # a depth ratio beyond this counts as another surface
FAR_M = 40.0


def error_causes(sparse: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(H, W) int8 index into CAUSES for every pixel (meaningful where reference > 0)."""
    measured = sparse > 0
    height, width = sparse.shape
    rows = np.arange(height)[:, None]
    top = np.where(measured.any(axis=0), measured.argmax(axis=0), height)
    above_top = rows < top[None, :]
    near_median = _masked_median(sparse, 2)
    parallax = (near_median > 0) & (reference > STEP * near_median)
    thin = _nearer_than_both_sides(sparse, reference, axis=1) | _nearer_than_both_sides(sparse, reference, axis=0)
    far_value = np.where(measured, sparse, 0).astype(np.float32)
    near_value = np.where(measured, sparse, np.inf).astype(np.float32)
    window = np.ones((9, 9), np.uint8)
    span_high, span_low = cv2.dilate(far_value, window), cv2.erode(near_value, window)
    span_low[~(span_low < 1e6)] = 0  # no input within reach (inf, or the border's float max)
    edge = (span_low > 0) & (span_high > STEP * span_low)
    far = reference > FAR_M
    cause = np.full(sparse.shape, len(CAUSES) - 1, np.int8)
    for index, mask in reversed(list(enumerate((above_top, parallax, thin, edge, far)))):  # first cause wins
        cause[mask] = index
    return cause


def _masked_median(sparse: np.ndarray, radius: int) -> np.ndarray:
    """Median of the measured values within radius px (0 where none); a stack of shifted copies."""
    padded = np.pad(np.where(sparse > 0, sparse, np.nan), radius, constant_values=np.nan)
    height, width = sparse.shape
    size = 2 * radius + 1
    stack = np.stack([padded[i : i + height, j : j + width] for i in range(size) for j in range(size)])
    counts = np.isfinite(stack).sum(axis=0)
    median = np.zeros(sparse.shape, np.float32)
    has = counts > 0
    median[has] = np.nanmedian(stack[:, has], axis=0)
    return median


def _nearer_than_both_sides(sparse: np.ndarray, reference: np.ndarray, axis: int) -> np.ndarray:
    """reference > STEP times nearer than the nearest measurement on both sides along axis."""
    measured = sparse > 0
    length = sparse.shape[axis]
    index = np.arange(length).reshape((-1, 1) if axis == 0 else (1, -1))
    before = np.maximum.accumulate(np.where(measured, index, -1), axis=axis)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(measured, index, length), axis), axis=axis), axis)
    ok = (before >= 0) & (after < length)
    first = np.take_along_axis(sparse, np.clip(before, 0, length - 1), axis=axis)
    second = np.take_along_axis(sparse, np.clip(after, 0, length - 1), axis=axis)
    return ok & (reference > 0) & (first > STEP * reference) & (second > STEP * reference)


def top_error_breakdown(dense: np.ndarray, scored: np.ndarray, causes: np.ndarray, share: float = 0.01) -> dict:
    """Per cause (``causes`` from error_causes): the share of the top ``share`` errors (the ceil(share * n)
    largest |error|, holes filled as the devkit does) and the share of the frame's squared error they hold."""
    from depth_panoptic_ros.evaluation.depth_metrics import devkit_fill

    filled = devkit_fill(dense)
    valid = scored > 0
    error = np.abs((np.zeros_like(scored) if filled is None else filled) - scored)[valid]
    cause = causes[valid]
    top = np.zeros(error.size, bool)
    top[np.argsort(-error, kind="stable")[: max(1, math.ceil(share * error.size))]] = True
    squared = error**2
    return {
        name: {
            "pixels": float(np.mean(cause[top] == index)),
            "squared_error": float(squared[top & (cause == index)].sum() / squared.sum()),
        }
        for index, name in enumerate(CAUSES)
    }


def error_map(rgb: np.ndarray, dense: np.ndarray, scored: np.ndarray, max_error_m: float = 5.0) -> np.ndarray:
    """BGR image: the dimmed camera image with every scored pixel (3x3 for visibility, as the devkit draws it)
    colored by |error| from blue (0) to red (>= max_error_m); holes scored as their full depth."""
    error = np.where(scored > 0, np.abs(np.where(dense > 0, dense, 0) - scored), 0)
    level = np.clip(error / max_error_m * 255, 0, 255).astype(np.uint8)
    colored = cv2.applyColorMap(cv2.dilate(level, np.ones((3, 3), np.uint8)), cv2.COLORMAP_JET)
    shown = cv2.dilate((scored > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    out = (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) // 3).astype(np.uint8)
    out[shown] = colored[shown]
    return out


def run_tails(data_dir: Path, out_dir: Path | None = None, holdout: float = 0.2) -> dict:
    """Per protocol and method (classical, IP-Basic): the mean over frames of top_error_breakdown (seed 0); with
    out_dir, one PNG per frame: the classical completion's error map above IP-Basic's."""
    compared = {name: method for name, method in methods().items() if name in ("classical", BASELINE)}
    result: dict = {}
    for protocol, frames in load_protocols(data_dir).items():
        per_method: dict = {name: [] for name in compared}
        for frame_name, frame in frames.items():
            sparse, scored = frame.split(0, holdout)
            causes, maps = error_causes(sparse, scored), []
            for name, method in compared.items():
                dense = method(sparse, frame.rgb)
                per_method[name].append(top_error_breakdown(dense, scored, causes))
                maps.append(error_map(frame.rgb, dense, scored))
            if out_dir is not None:
                path = Path(out_dir) / protocol.replace(" ", "_") / f"{frame_name.replace('/', '_')}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), np.vstack(maps))
        result[protocol] = {
            name: {
                cause: {key: float(np.mean([b[cause][key] for b in breakdowns])) for key in ("pixels", "squared_error")}
                for cause in CAUSES
            }
            for name, breakdowns in per_method.items()
        }
    return result


def format_tails(result: dict) -> str:
    """Markdown: per protocol and method, each cause's share of the top 1 % errors (pixels / squared error)."""
    header = ["protocol", "method", *CAUSES]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for protocol, by_method in result.items():
        for name, causes in by_method.items():
            cells = [f"{100 * c['pixels']:.0f} % / {100 * c['squared_error']:.0f} %" for c in causes.values()]
            lines.append(f"| {protocol} | {name} | " + " | ".join(cells) + " |")
    lines.append(
        "\nEach cell: share of the frame's top 1 % errors with that cause / share of the frame's whole squared "
        "error they hold (mean over frames, hold-out seed 0)."
    )
    return "\n".join(lines)
