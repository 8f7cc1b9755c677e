"""Leave-one-frame-out figures of the classical completion: parameters chosen without the frame they score.

The defaults of CompletionConfig were picked on the same real frames the benchmark scores, so in-sample
figures flatter them. Here every frame of every protocol is scored with the grid point that does best on all
the *other* frames (all protocols pooled): the mean over protocols of the mean RMSE and MAE ratios to IP-Basic
(devkit figure, hold-out seed 0). The resulting figures predict unseen frames; the spread of the chosen points
shows how settled the defaults are.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from depth_panoptic_ros.bench.completion import load_protocols
from depth_panoptic_ros.depth.classical import CompletionConfig

# Around the defaults; every other field keeps its default.
GRID = {
    "extend_px": (16, 48),
    "same_surface_rel": (0.1, 0.2),
    "same_surface_abs": (0.005, 0.01),
    "same_surface_slope": (0.0, 0.004),
    "median_px": (0, 5),
    "median_clear_cols": (4,),
}


def grid_configs(grid: dict[str, tuple] = GRID) -> list[CompletionConfig]:
    """Every combination (median_clear_cols only once when the median is off)."""
    configs = []
    for values in itertools.product(*grid.values()):
        config = replace(CompletionConfig(), **dict(zip(grid, values, strict=True)))
        if config.median_px == 0 and config.median_clear_cols != grid["median_clear_cols"][0]:
            continue
        configs.append(config)
    return configs


def leave_one_frame_out(data_dir: Path, configs: list[CompletionConfig] | None = None, holdout: float = 0.2) -> dict:
    """Per protocol: per frame the LOFO-chosen config's RMSE / MAE (mm) and IP-Basic's; mean rows with ratios;
    and the in-sample figures of the defaults for comparison."""
    import cv2

    from depth_panoptic_ros.depth.classical import complete_depth
    from depth_panoptic_ros.depth.ip_basic import ip_basic_complete
    from depth_panoptic_ros.evaluation.depth_metrics import depth_errors

    configs = configs or grid_configs()
    default = CompletionConfig()
    if default not in configs:
        configs = [*configs, default]
    protocols = load_protocols(data_dir)
    names = [(protocol, frame) for protocol, frames in protocols.items() for frame in frames]
    scores = np.zeros((len(configs), len(names), 2))  # devkit RMSE, MAE (mm)
    baseline = np.zeros((len(names), 2))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for j, (protocol, frame_name) in enumerate(names):
            frame = protocols[protocol][frame_name]
            sparse, scored = frame.split(0, holdout)
            errors = depth_errors(ip_basic_complete(sparse), scored)
            baseline[j] = errors["devkit_rmse_mm"], errors["devkit_mae_mm"]
            for i, config in enumerate(configs):
                errors = depth_errors(complete_depth(sparse, frame.rgb, config), scored)
                scores[i, j] = errors["devkit_rmse_mm"], errors["devkit_mae_mm"]
    finally:
        cv2.setNumThreads(threads)

    protocol_of = np.array([protocol for protocol, _ in names])
    chosen = [_best_config(scores, baseline, protocol_of, np.arange(len(names)) != j) for j in range(len(names))]
    lofo = scores[chosen, np.arange(len(names))]
    in_sample = scores[configs.index(default)]
    result: dict = {"grid": {key: list(values) for key, values in GRID.items()}, "protocols": {}}
    for protocol in dict.fromkeys(protocol_of):
        index = np.flatnonzero(protocol_of == protocol)
        result["protocols"][protocol] = {
            "frames": {
                names[j][1]: {
                    "rmse_mm": float(lofo[j, 0]),
                    "mae_mm": float(lofo[j, 1]),
                    "ip_basic_rmse_mm": float(baseline[j, 0]),
                    "ip_basic_mae_mm": float(baseline[j, 1]),
                    "chosen": _differences(configs[chosen[j]], default),
                }
                for j in index
            },
            "lofo_mean_ratio": (lofo[index].mean(axis=0) / baseline[index].mean(axis=0)).tolist(),
            "lofo_worst_frame_ratio": (lofo[index] / baseline[index]).max(axis=0).tolist(),
            "default_mean_ratio": (in_sample[index].mean(axis=0) / baseline[index].mean(axis=0)).tolist(),
            "default_worst_frame_ratio": (in_sample[index] / baseline[index]).max(axis=0).tolist(),
        }
    return result


def _best_config(scores: np.ndarray, baseline: np.ndarray, protocol_of: np.ndarray, train: np.ndarray) -> int:
    """Index of the config with the lowest mean over protocols of its mean RMSE and MAE ratios on ``train``."""
    objective = np.zeros(scores.shape[0])
    protocols = list(dict.fromkeys(protocol_of))
    for protocol in protocols:
        index = np.flatnonzero(train & (protocol_of == protocol))
        objective += (scores[:, index].mean(axis=1) / baseline[index].mean(axis=0)).mean(axis=1)
    return int(np.argmin(objective))


def _differences(config: CompletionConfig, default: CompletionConfig) -> dict:
    """The fields in which config differs from the default ({} when it is the default)."""
    return {key: value for key, value in asdict(config).items() if value != getattr(default, key)}


def format_lofo(result: dict) -> str:
    """Markdown: per protocol the LOFO mean and worst-frame ratios next to the in-sample ones of the defaults."""
    lines = [
        "| protocol | LOFO mean RMSE / MAE (x IP-Basic) | LOFO worst frame | defaults, in-sample mean | "
        "defaults, worst frame | frames scored with the defaults |",
        "|---|---|---|---|---|---|",
    ]
    for protocol, row in result["protocols"].items():
        same = sum(not frame["chosen"] for frame in row["frames"].values())
        cells = [
            f"{row[key][0]:.3f} / {row[key][1]:.3f}"
            for key in ("lofo_mean_ratio", "lofo_worst_frame_ratio", "default_mean_ratio", "default_worst_frame_ratio")
        ]
        lines.append(f"| {protocol} | " + " | ".join(cells) + f" | {same} of {len(row['frames'])} |")
    return "\n".join(lines)
