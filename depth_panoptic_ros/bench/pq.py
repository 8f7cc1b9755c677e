"""`bench pq`: the package's pq_compute beside hotcoco (Rust, panopticapi-exact) on a 1024x2048 COCO-format pair.

The pair is written by the benchmark (the geometry benchmark's street map plus persons and a car crowd region as
ground truth; a shifted copy with painted boxes and void holes as prediction), so it needs no data set. Both
evaluators read the same PNG files each call; the results must agree to 1e-9 or the benchmark fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from depth_panoptic_ros.bench.geometry import machine, scene
from depth_panoptic_ros.classes import ClassTable


def write_pair(folder: Path, height: int = 1024, width: int = 2048) -> tuple[Path, Path, Path, Path]:
    """(gt JSON, pred JSON, gt folder, pred folder) of one reproducible COCO panoptic pair under ``folder``."""
    import cv2

    table = ClassTable.cityscapes()
    ids = scene(height, width)[2]
    rng = np.random.default_rng(0)
    ids[height * 2 // 3 : height * 3 // 4, width * 3 // 4 : width * 5 // 6] = 26000  # a car crowd region
    for k in range(1, 21):
        y, x = rng.integers(height // 3, height - 130), rng.integers(0, width - 40)
        ids[y : y + rng.integers(40, 120), x : x + rng.integers(15, 40)] = 24000 + k
    ids[: height // 30] = 0
    pred = np.roll(ids, (3, -5), axis=(0, 1))
    for k in range(15):
        y, x = rng.integers(0, height - 100), rng.integers(0, width - 100)
        pred[y : y + rng.integers(20, 100), x : x + rng.integers(20, 100)] = 0 if k % 4 == 0 else 26100 + k
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.is_thing)} for c in table.classes]
    paths = []
    for name, segment_map in (("gt", ids), ("pred", pred)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        value = segment_map.astype(np.uint32)
        cv2.imwrite(str(folder / name / "frame.png"), np.dstack([value >> 16, value >> 8, value]).astype(np.uint8))
        segments = [
            {"id": int(i), "category_id": int(i // 1000), "iscrowd": int(name == "gt" and i == 26000)}
            for i in np.unique(segment_map)
            if i
        ]
        annotation = {"image_id": 1, "file_name": "frame.png", "segments_info": segments}
        image = {"id": 1, "file_name": "frame.jpg", "width": width, "height": height}
        document = {"categories": categories, "images": [image], "annotations": [annotation]}
        (folder / f"{name}.json").write_text(json.dumps(document))
        paths.append(folder / f"{name}.json")
    return paths[0], paths[1], folder / "gt", folder / "pred"


def run_pq_benchmark(repeats: int = 10, size: tuple[int, int] = (1024, 2048)) -> dict:
    """Median wall and CPU (all threads) milliseconds per evaluation of the pair, the evaluators interleaved."""
    from depth_panoptic_ros.evaluation.pq import pq_compute

    try:
        from hotcoco.panoptic import pq_compute as hotcoco_pq_compute
    except ImportError:
        hotcoco_pq_compute = None
    with tempfile.TemporaryDirectory() as tmp:
        args = write_pair(Path(tmp), *size)
        evaluators: dict[str, Callable[[], dict]] = {
            "package (threads: one per CPU)": lambda: pq_compute(*args),
            "package (1 thread)": lambda: pq_compute(*args, workers=1),
        }
        if hotcoco_pq_compute is not None:
            evaluators["hotcoco"] = lambda: _quiet(hotcoco_pq_compute, *map(str, args))
        results = {name: fn() for name, fn in evaluators.items()}  # warm-up, and the answers to compare
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in evaluators}
        for _ in range(repeats):
            for name, fn in evaluators.items():
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                times[name].append(((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3))
    reference = results["package (1 thread)"]["All"]
    for name, result in results.items():
        if any(not math.isclose(result["All"][k], reference[k], rel_tol=0, abs_tol=1e-9) for k in ("pq", "sq", "rq")):
            raise RuntimeError(f"{name} disagrees with the package: {result['All']} vs {reference}")
    return {
        "machine": machine(),
        "size": f"{size[0]}x{size[1]}",
        "repeats": repeats,
        "pq_all": reference,
        "ms": {
            name: {"wall": float(np.median([w for w, _ in t])), "cpu": float(np.median([c for _, c in t]))}
            for name, t in times.items()
        },
    }


def _quiet(fn: Callable[..., dict], *args: str) -> dict:
    """hotcoco's pq_compute prints panopticapi's table; the benchmark prints its own."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def format_table(result: dict) -> str:
    lines = [f"{result['machine']}; {result['size']} pair, PQ {100 * result['pq_all']['pq']:.2f}", ""]
    lines += ["| evaluator | wall ms (median) | CPU ms (median, all threads) |", "|---|---|---|"]
    lines += [f"| {name} | {t['wall']:.1f} | {t['cpu']:.1f} |" for name, t in result["ms"].items()]
    return "\n".join(lines)
