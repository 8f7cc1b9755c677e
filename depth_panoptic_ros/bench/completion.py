"""Classical completion vs IP-Basic on real KITTI data, three protocols, every frame scored and reported.

- ``object hold-out`` (KITTI object training and testing frames) and ``raw hold-out`` (a 20-frame raw drive):
  these frames have no depth ground truth, so each LiDAR sweep is its own reference. A seeded random
  ``holdout`` share of the projected points is hidden, every method completes the rest, errors are taken on
  the hidden points. Pitfall, kept on purpose: a hidden point may be one the LiDAR saw *past* a foreground
  object (the LiDAR sits higher than and behind the camera); the image shows the foreground there.
- ``ring geometry`` (depth_demo): semi-dense accumulated-LiDAR ground truth that KITTI cleaned against stereo.
  The input is what one HDL-64 sweep would give: a pixel is an input where one of the 64 beam elevations,
  measured from the real sweeps in the data folder (geometry/lidar_rings.py), crosses it at its ground-truth
  depth (~4 % of the image); the other ground-truth pixels are scored. The calibration is the object frame's
  whose P2 matches the demo's intrinsics (same recording day).

Errors are the devkit-style figure (evaluation/depth_metrics.py): a pixel a method leaves unknown is filled
the way the KITTI devkit fills it, so leaving hard pixels out does not pay; coverage is reported beside it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_panoptic_ros.bench.geometry import machine

if TYPE_CHECKING:
    from depth_panoptic_ros.model import DepthPanopticModel

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]
BASELINE = "IP-Basic (paper config)"
HOLDOUT_PROTOCOLS = {"object hold-out": ("object", "object_testing"), "raw hold-out": ("raw_2011_09_26",)}
RING_PROTOCOL = "ring geometry"
REFINED, LEARNED = "classical, the model's settings", "learned (model)"
# Reported per frame -> the depth_errors key: the devkit figure (holes filled), coverage, the covered pixels'.
_SCORES = {
    "rmse_mm": "devkit_rmse_mm",
    "mae_mm": "devkit_mae_mm",
    "coverage": "coverage",
    "covered_rmse_mm": "rmse_mm",
    "covered_mae_mm": "mae_mm",
}


@dataclass(frozen=True)
class Frame:
    """rgb (H, W, 3) uint8; depth: the reference in meters (a projected sweep, or ground truth), 0 = none;
    rings: for ground-truth frames, the mask of the pixels a LiDAR ring crosses (the input), else None."""

    rgb: np.ndarray
    depth: np.ndarray
    rings: np.ndarray | None = None

    def split(self, seed: int, holdout: float) -> tuple[np.ndarray, np.ndarray]:
        """(input, scored) depth maps of this frame for one seed (ring frames do not depend on it)."""
        if self.rings is None:
            return holdout_split(self.depth, holdout, np.random.default_rng(seed))
        return (
            np.where(self.rings, self.depth, 0).astype(np.float32),
            np.where(self.rings, 0, self.depth).astype(np.float32),
        )


def methods(model: DepthPanopticModel | None = None) -> dict[str, Method]:
    """The compared methods, (sparse, rgb) -> dense; IP-Basic as in the paper (Gaussian blur, extrapolation).
    With a model: its learned completion over the classical completion it was trained on, timed together as the
    pipeline runs them, and that classical completion as REFINED when its settings are not the package's."""
    from depth_panoptic_ros.depth.classical import CompletionConfig, complete_depth
    from depth_panoptic_ros.depth.ip_basic import ip_basic_complete

    compared = {
        BASELINE: lambda sparse, rgb: ip_basic_complete(sparse),
        "classical": complete_depth,
        "classical, no image": lambda sparse, rgb: complete_depth(sparse),
    }
    if model is None:
        return compared
    from depth_panoptic_ros.pipeline import bind_to_model

    trained_on = bind_to_model({}, model.pipeline_settings)[0].completion

    def learned(sparse: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        return model.predict(rgb, sparse, complete_depth(sparse, rgb, trained_on), segment=False)[0]

    if trained_on != CompletionConfig():  # else "classical" is the one it refines
        compared[REFINED] = lambda sparse, rgb: complete_depth(sparse, rgb, trained_on)
    compared[LEARNED] = learned
    return compared


def holdout_split(depth: np.ndarray, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, hidden): the valid pixels of depth split at random, hidden getting the ``holdout`` share."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout: expected a share in (0, 1), got {holdout}")
    hide = (depth > 0) & (rng.random(depth.shape) < holdout)
    return np.where(hide, 0, depth).astype(np.float32), np.where(hide, depth, 0).astype(np.float32)


def _sweep_frames(folder: Path) -> list[tuple[str, Path, Path, Path]]:
    """(stem, sweep, image, calib) of a KITTI object folder or of a raw drive folder with one calib.txt."""
    if (folder / "velodyne").is_dir():  # object layout
        return [
            (s.stem, s, folder / "image_2" / f"{s.stem}.png", folder / "calib" / f"{s.stem}.txt")
            for s in sorted((folder / "velodyne").glob("*.bin"))
        ]
    return [
        (s.stem, s, folder / "image_02" / f"{s.stem}.png", folder / "calib.txt")
        for s in sorted((folder / "velodyne_points").glob("*.bin"))
    ]


def load_protocols(data_dir: Path) -> dict[str, dict[str, Frame]]:
    """protocol -> frame name -> Frame, for every protocol whose data is in data_dir (KITTI folders as in
    ../shared/data/kitti); raises ValueError when there is none."""
    from depth_panoptic_ros.data.images import read_rgb
    from depth_panoptic_ros.data.kitti import read_depth_png, read_kitti_calib, read_velodyne_bin
    from depth_panoptic_ros.geometry.lidar import project_points
    from depth_panoptic_ros.geometry.lidar_rings import measured_ring_elevations, ring_crossings

    data_dir = Path(data_dir)
    protocols: dict[str, dict[str, Frame]] = {}
    sweeps, calibs = [], {}
    for protocol, folders in HOLDOUT_PROTOCOLS.items():
        for folder in folders:
            for stem, sweep, image, calib in _sweep_frames(data_dir / folder):
                rgb, points = read_rgb(image), read_velodyne_bin(sweep)
                camera, T_cam_lidar = read_kitti_calib(calib, image_size=(rgb.shape[1], rgb.shape[0]))
                depth = project_points(points, T_cam_lidar, camera).depth
                protocols.setdefault(protocol, {})[f"{folder}/{stem}"] = Frame(rgb, depth)
                sweeps.append(points)
                calibs[calib] = (camera.P, T_cam_lidar)
    truths = sorted((data_dir / "depth_demo" / "depth").glob("*.png"))
    if truths and sweeps:
        intrinsics = json.loads((data_dir / "depth_demo" / "intrinsics.json").read_text())
        P, T_cam_lidar = _matching_calibration(calibs, intrinsics)
        elevations = measured_ring_elevations(sweeps)
        for truth in truths:
            depth = read_depth_png(truth)
            rings = ring_crossings(depth, P, T_cam_lidar, elevations)
            rgb = read_rgb(data_dir / "depth_demo" / "rgb" / truth.name)
            protocols.setdefault(RING_PROTOCOL, {})[f"depth_demo/{truth.stem}"] = Frame(rgb, depth, rings)
    if not protocols:
        raise ValueError(
            f"{data_dir}: no KITTI sweeps found (expects object/, object_testing/ or raw_2011_09_26/; depth_demo/ "
            "is used with them, its rings and calibration come from their sweeps)"
        )
    return protocols


def _matching_calibration(calibs: dict, intrinsics: dict) -> tuple[np.ndarray, np.ndarray]:
    """(P, T_cam_lidar) of the first calibration whose fx, cx, cy are the demo's (same recording day)."""
    wanted = np.array([intrinsics["fx"], intrinsics["cx"], intrinsics["cy"]])
    for P, T_cam_lidar in calibs.values():
        if np.allclose([P[0, 0], P[0, 2], P[1, 2]], wanted, atol=1e-3):
            return P, T_cam_lidar
    raise ValueError(f"depth_demo: no KITTI calibration among the sweeps' with fx, cx, cy = {wanted.tolist()}")


def run_completion_benchmark(
    data_dir: Path,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    holdout: float = 0.2,
    model: DepthPanopticModel | None = None,
) -> dict:
    """Per protocol and method: devkit-style RMSE / MAE (mm), coverage and the covered pixels' RMSE / MAE per
    frame (mean over seeds) and their means over frames, with the ratios to IP-Basic; median time per frame, per
    protocol and over all; the 1-minute load average before and after. With a model, also its learned
    completion and, per protocol, ``learned_vs_refined``: its ratios to the classical completion it refines.

    Methods run interleaved on every input, so machine load hits all alike; OpenCV is single-threaded
    meanwhile, to match the single-core figure IP-Basic published.
    """
    import cv2

    from depth_panoptic_ros.evaluation.depth_metrics import depth_errors

    protocols = load_protocols(data_dir)
    compared = methods(model)
    times: dict[str, list[float]] = {name: [] for name in compared}
    result: dict = {"machine": machine(), "seeds": list(seeds), "holdout": holdout, "protocols": {}}
    result["load_average"] = [os.getloadavg()[0]]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for protocol, frames in protocols.items():
            scores: dict = {name: {} for name in compared}
            first_time = len(times[BASELINE])
            for frame_name, frame in frames.items():
                per_seed = {name: [] for name in compared}
                for seed in seeds:  # ring-geometry inputs do not depend on it: repeated, they give times
                    sparse, scored = frame.split(seed, holdout)
                    for name, method in compared.items():
                        start = time.perf_counter()
                        dense = method(sparse, frame.rgb)
                        times[name].append((time.perf_counter() - start) * 1e3)
                        errors = depth_errors(dense, scored)
                        per_seed[name].append([errors[key] for key in _SCORES.values()])
                for name, values in per_seed.items():
                    scores[name][frame_name] = dict(zip(_SCORES, np.mean(values, axis=0), strict=True))
            result["protocols"][protocol] = _protocol_summary(frames, scores)
            if model is not None:
                result["protocols"][protocol]["learned_vs_refined"] = _learned_vs_refined(scores)
            result["protocols"][protocol]["median_ms"] = {
                name: float(np.median(values[first_time:])) for name, values in times.items()
            }
    finally:
        cv2.setNumThreads(threads)
    result["median_ms"] = {name: float(np.median(values)) for name, values in times.items()}
    result["load_average"].append(os.getloadavg()[0])
    return result


def _protocol_summary(frames: dict[str, Frame], scores: dict) -> dict:
    """Per method: the frames' scores with their ratios to IP-Basic, and the means over frames."""
    summary: dict = {"frames": {name: f"{f.depth.shape[0]}x{f.depth.shape[1]}" for name, f in frames.items()}}
    baseline = scores[BASELINE]
    for name, per_frame in scores.items():
        rows = {
            frame: {
                **{key: float(value) for key, value in s.items()},
                "rmse_ratio": float(s["rmse_mm"] / baseline[frame]["rmse_mm"]),
                "mae_ratio": float(s["mae_mm"] / baseline[frame]["mae_mm"]),
            }
            for frame, s in per_frame.items()
        }
        means = {key: float(np.mean([r[key] for r in per_frame.values()])) for key in _SCORES}
        for key in ("rmse", "mae"):
            means[f"{key}_ratio"] = float(means[f"{key}_mm"] / np.mean([r[f"{key}_mm"] for r in baseline.values()]))
        summary.setdefault("methods", {})[name] = {"frames": rows, "mean": means}
    return summary


def _learned_vs_refined(scores: dict) -> dict:
    """Per frame the learned completion's RMSE / MAE over the classical one's it refines, the mean of those
    ratios, and the frames where it is worse on either."""
    learned, refined = scores[LEARNED], scores.get(REFINED, scores["classical"])
    rows = {
        frame: {key: float(learned[frame][f"{key}_mm"] / refined[frame][f"{key}_mm"]) for key in ("rmse", "mae")}
        for frame in learned
    }
    worse = [frame for frame, row in rows.items() if row["rmse"] > 1 or row["mae"] > 1]
    means = {key: float(np.mean([row[key] for row in rows.values()])) for key in ("rmse", "mae")}
    return {"frames": rows, "mean": means, "worse": worse}


def format_table(result: dict) -> str:
    """Markdown per protocol: one row per frame and a mean row, each method's RMSE / MAE (mm), ratios to IP-Basic
    and coverage; then the median times."""
    blocks = []
    for protocol, summary in result["protocols"].items():
        names = list(summary["methods"])
        header = ["frame", *(f"{name}: RMSE / MAE mm (x IP-Basic); coverage: covered RMSE / MAE" for name in names)]
        lines = [f"### {protocol}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for frame in [*summary["frames"], "mean"]:
            cells = [f"**{frame}**" if frame == "mean" else frame]
            for name in names:
                row = summary["methods"][name]["mean" if frame == "mean" else "frames"]
                row = row if frame == "mean" else row[frame]
                cells.append(
                    f"{row['rmse_mm']:.0f} / {row['mae_mm']:.0f} ({row['rmse_ratio']:.2f} / {row['mae_ratio']:.2f}); "
                    f"{100 * row['coverage']:.1f} %: {row['covered_rmse_mm']:.0f} / {row['covered_mae_mm']:.0f}"
                )
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Median time per frame: {_format_times(summary['median_ms'])}."]
        if "learned_vs_refined" in summary:
            versus = summary["learned_vs_refined"]
            lines.append(
                f"Learned vs the classical completion it refines: mean RMSE {versus['mean']['rmse']:.3f}x, MAE "
                f"{versus['mean']['mae']:.3f}x; worse on {len(versus['worse'])} of {len(versus['frames'])} frames"
                + (f" ({', '.join(versus['worse'])})." if versus["worse"] else ".")
            )
        blocks.append("\n".join(lines))
    blocks.append(
        "RMSE / MAE: the devkit figure, every scored pixel, holes filled as the KITTI devkit fills them; coverage: "
        "the share of scored pixels the method filled, and the RMSE / MAE over those alone.\n"
        f"Median time per frame (all protocols, interleaved, OpenCV single-threaded): "
        f"{_format_times(result['median_ms'])}.\n"
        f"Hold-out: {int(round(result['holdout'] * 100))} % of the projected points hidden, seeds {result['seeds']}; "
        f"{result['machine']}; load average {result['load_average'][0]:.2f} before, {result['load_average'][1]:.2f} "
        "after."
    )
    return "\n\n".join(blocks)


def _format_times(median_ms: dict[str, float]) -> str:
    """Each method's median time, and its ratio to IP-Basic's."""
    return ", ".join(f"{name} {ms:.1f} ms ({ms / median_ms[BASELINE]:.2f}x)" for name, ms in median_ms.items())
