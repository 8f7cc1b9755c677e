"""Classical depth completion vs IP-Basic on real KITTI data, scored on measurements held out from the input.

The object frames have no depth ground truth, so each LiDAR sweep is its own reference: a seeded random
``holdout`` share of the projected points is hidden, every method completes the rest, and RMSE / MAE are
taken on the hidden points (per frame with the devkit's metric code, averaged over seeds, then over frames).
Pitfall, kept on purpose: a hidden point may be one the LiDAR saw *past* a foreground object, because the
LiDAR sits higher than and behind the camera; the image shows the foreground there, so a method that is
right about the image is scored wrong at such points. Removing them would need the very occlusion reasoning
under test.

The depth_demo frame's ground truth is semi-dense accumulated LiDAR that KITTI cleaned against stereo. Its
hidden pixels are scored; the input is the rest on every 5th row only, which gives the density (~4 % of the
image) and the line structure of one HDL-64 sweep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from depth_panoptic_ros.bench.geometry import machine

SCAN_LINE_SPACING = 5  # rows between simulated scan lines in the depth_demo input (HDL-64 in KITTI: 4-7 px)
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


def methods() -> dict[str, Method]:
    """The compared methods, (sparse, rgb) -> dense; IP-Basic as in the paper (Gaussian blur, extrapolation)."""
    from depth_panoptic_ros.depth.classical import complete_depth
    from depth_panoptic_ros.depth.ip_basic import ip_basic_complete

    return {
        "IP-Basic (paper config)": lambda sparse, rgb: ip_basic_complete(sparse),
        "classical": complete_depth,
        "classical, no image": lambda sparse, rgb: complete_depth(sparse),
    }


def holdout_split(depth: np.ndarray, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, hidden): the valid pixels of depth split at random, hidden getting the ``holdout`` share."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout: expected a share in (0, 1), got {holdout}")
    hide = (depth > 0) & (rng.random(depth.shape) < holdout)
    return np.where(hide, 0, depth).astype(np.float32), np.where(hide, depth, 0).astype(np.float32)


def scan_lines(depth: np.ndarray, rng: np.random.Generator, spacing: int = SCAN_LINE_SPACING) -> np.ndarray:
    """Only every ``spacing``-th row of depth (random phase): LiDAR-like input from denser ground truth."""
    keep = np.arange(depth.shape[0]) % spacing == rng.integers(spacing)
    return np.where(keep[:, None], depth, 0).astype(np.float32)


def load_frames(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """name -> (rgb, depth, is_lidar_sweep) for KITTI object/ (velodyne projected) and depth_demo/ (ground truth)."""
    from depth_panoptic_ros.data.images import read_rgb
    from depth_panoptic_ros.data.kitti import read_depth_png, read_kitti_calib, read_velodyne_bin
    from depth_panoptic_ros.geometry.lidar import project_points

    data_dir = Path(data_dir)
    frames = {}
    for sweep in sorted((data_dir / "object" / "velodyne").glob("*.bin")):
        rgb = read_rgb(data_dir / "object" / "image_2" / f"{sweep.stem}.png")
        camera, T_cam_lidar = read_kitti_calib(
            data_dir / "object" / "calib" / f"{sweep.stem}.txt", image_size=(rgb.shape[1], rgb.shape[0])
        )
        depth = project_points(read_velodyne_bin(sweep), T_cam_lidar, camera).depth
        frames[f"object/{sweep.stem}"] = (rgb, depth, True)
    for truth in sorted((data_dir / "depth_demo" / "depth").glob("*.png")):
        rgb = read_rgb(data_dir / "depth_demo" / "rgb" / truth.name)
        frames[f"depth_demo/{truth.stem}"] = (rgb, read_depth_png(truth), False)
    if not frames:
        raise ValueError(f"{data_dir}: no KITTI frames found (expects object/velodyne/*.bin or depth_demo/depth/*.png)")
    return frames


def run_completion_benchmark(data_dir: Path, seeds: Sequence[int] = (0, 1, 2, 3, 4), holdout: float = 0.2) -> dict:
    """Per method: RMSE / MAE (mm) on the hidden depth of every frame, and the median time per frame.

    OpenCV runs single-threaded meanwhile, to match the single-core figure IP-Basic published.
    """
    import cv2

    from depth_panoptic_ros.evaluation.depth_metrics import depth_errors

    frames = load_frames(data_dir)
    compared = methods()
    scores = {name: {frame: [] for frame in frames} for name in compared}
    times = {name: [] for name in compared}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for frame, (rgb, depth, is_lidar) in frames.items():
            for seed in seeds:
                rng = np.random.default_rng(seed)
                sparse, hidden = holdout_split(depth, holdout, rng)
                if not is_lidar:
                    sparse = scan_lines(sparse, rng)
                for name, method in compared.items():
                    start = time.perf_counter()
                    dense = method(sparse, rgb)
                    times[name].append((time.perf_counter() - start) * 1e3)
                    errors = depth_errors(dense, hidden)
                    scores[name][frame].append((errors["rmse_mm"], errors["mae_mm"]))
    finally:
        cv2.setNumThreads(threads)

    result: dict = {
        "machine": machine(),
        "seeds": list(seeds),
        "holdout": holdout,
        "frames": {frame: f"{depth.shape[0]}x{depth.shape[1]}" for frame, (_, depth, _) in frames.items()},
        "methods": {},
    }
    for name in compared:
        per_frame = {frame: np.mean(values, axis=0) for frame, values in scores[name].items()}
        result["methods"][name] = {
            "rmse_mm": float(np.mean([rmse for rmse, _ in per_frame.values()])),
            "mae_mm": float(np.mean([mae for _, mae in per_frame.values()])),
            "median_ms": float(np.median(times[name])),
            "frames": {
                frame: {"rmse_mm": float(rmse), "mae_mm": float(mae)} for frame, (rmse, mae) in per_frame.items()
            },
        }
    return result


def format_table(result: dict) -> str:
    """Markdown: one row per method, RMSE / MAE in mm per frame and overall, and the median time."""
    frames = list(result["frames"])
    header = ["method", *(f"{frame} RMSE / MAE" for frame in frames), "mean RMSE / MAE (mm)", "median ms / frame"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, row in result["methods"].items():
        scores = [row["frames"][frame] for frame in frames] + [row]
        cells = [name, *(f"{s['rmse_mm']:.0f} / {s['mae_mm']:.0f}" for s in scores), f"{row['median_ms']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\n{int(round(result['holdout'] * 100))} % of the measurements hidden, seeds {result['seeds']}, "
        f"OpenCV single-threaded; {result['machine']}."
    )
    return "\n".join(lines)
