"""A model evaluated on a split through the deployed per-frame Pipeline, so that the numbers describe exactly
what the node computes: PQ / SQ / RQ, depth errors of the classical and of the model's depth, and merged
instances (overall and among the synthetic data's look-alike pairs, the failure the depth-aware loss targets).
Shared by the periodic validation of training and ``depth-panoptic evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.evaluation.class_iou import ThingMaskIoU
from depth_panoptic_ros.evaluation.depth_metrics import DepthMetricAccumulator
from depth_panoptic_ros.evaluation.merged_instances import MergedInstanceCounter
from depth_panoptic_ros.evaluation.pq import PQAccumulator, format_table
from depth_panoptic_ros.pipeline import Pipeline


@dataclass
class EvaluationResult:
    """panoptic: PQAccumulator.summary() (None without labels); depth_*: mean metrics over frames with ground
    truth (None without any); merged_look_alike counts predictions covering both members of look-alike pairs;
    merge: the panoptic merge the model ran (fcn | degeus | learned); thing_iou: per thing class, the IoU of
    its merged masks (evaluation.class_iou), None without labels."""

    frames: int
    panoptic: dict[str, Any] | None
    depth_classical: dict[str, float] | None
    depth_model: dict[str, float] | None
    merged_instances: int | None
    look_alike_pairs: int
    merged_look_alike: int | None
    merge: str
    thing_iou: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scalars(self) -> dict[str, float]:
        """The headline numbers (PQ in percent, RMSE in mm) for TensorBoard."""
        out: dict[str, float] = {}
        if self.panoptic is not None:
            for key, group in (("pq", "All"), ("pq_th", "Things"), ("pq_st", "Stuff")):
                value = self.panoptic[group]["pq"]
                if not math.isnan(value):
                    out[key] = 100 * value
            out["merged_instances"] = float(self.merged_instances)
        if self.merged_look_alike is not None:
            out["merged_look_alike"] = float(self.merged_look_alike)
        if self.depth_model is not None:
            out["rmse_mm"] = self.depth_model["rmse_mm"]
            out["rmse_mm_classical"] = self.depth_classical["rmse_mm"]
        return out


def evaluate(pipeline: Pipeline, samples: Iterable[Sample], progress: bool = False) -> EvaluationResult:
    """Runs every sample's sensor_frame() through ``pipeline`` (which must hold a model) and scores it."""
    if pipeline.model is None:
        raise ValueError("evaluation needs a pipeline with a model")
    table = pipeline.model.class_table
    pq, merged, merged_look_alike = (
        PQAccumulator.from_class_table(table),
        MergedInstanceCounter(table),
        MergedInstanceCounter(table),
    )
    classical, learned = DepthMetricAccumulator(), DepthMetricAccumulator()
    thing_iou = ThingMaskIoU(table)
    frames = look_alike_pairs = 0
    for sample in tqdm(samples, desc="evaluate", unit="frame", disable=not progress):
        labeled = sample.panoptic is not None
        outputs = ("panoptic" if labeled else "depth", "learned_depth")  # the learned depth: its metrics below
        products = pipeline.run(sample.sensor_frame(), outputs=outputs)
        frames += 1
        if np.any(sample.depth > 0):
            classical.add(products.classical_depth, sample.depth)
            learned.add(products.learned_depth, sample.depth)
        if not labeled:
            continue
        predicted = products.panoptic.ids
        pq.add_ids(sample.panoptic, predicted, table)
        merged.add(sample.panoptic, predicted)
        thing_iou.add(sample.panoptic, predicted)
        if sample.look_alike_pairs is not None:
            pair_members = np.where(np.isin(sample.panoptic, sample.look_alike_pairs), sample.panoptic, 0)
            merged_look_alike.add(pair_members, predicted)
            look_alike_pairs += len(sample.look_alike_pairs)
    return EvaluationResult(
        frames=frames,
        panoptic=pq.summary() if merged.images else None,
        depth_classical=classical.mean() if classical.images else None,
        depth_model=learned.mean() if learned.images else None,
        merged_instances=merged.merged if merged.images else None,
        look_alike_pairs=look_alike_pairs,
        merged_look_alike=merged_look_alike.merged if merged_look_alike.images else None,
        merge=pipeline.model.merge,
        thing_iou=thing_iou.summary() if merged.images else None,
    )


def format_report(result: EvaluationResult, split: str) -> str:
    """The panoptic table as `depth-panoptic pq` prints it, then depth errors and merged instances."""
    lines = [f"{result.frames} frames of split {split}, merge {result.merge}"]
    if result.panoptic is not None:
        lines += ["", "Panoptic quality (%)", format_table(result.panoptic)]
    if result.depth_model is not None:
        lines += ["", f"{'Depth (valid ground truth)':<28} {'classical':>12} {'model':>12}"]
        for key, model_value in result.depth_model.items():
            lines.append(f"{key:<28} {result.depth_classical[key]:12.4g} {model_value:12.4g}")
    if result.thing_iou:
        ious = ", ".join(f"{name} {100 * iou:.1f}" for name, iou in result.thing_iou.items())
        lines += ["", f"Thing mask IoU (%): {ious}"]
    if result.merged_instances is not None:
        lines += ["", f"Merged instances: {result.merged_instances}"]
    if result.merged_look_alike is not None:
        lines.append(
            f"Look-alike pairs: {result.look_alike_pairs}, merged by one prediction: {result.merged_look_alike}"
        )
    return "\n".join(lines)
