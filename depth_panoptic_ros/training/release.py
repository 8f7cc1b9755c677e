"""Turning a trained run into a shipped model: half-precision storage and a recorded evaluation.

The evaluation is made with the stored (fp16-rounded) weights on a fixed split and written into the file's
header, so the model card, the file and the test that guards the file all read the same numbers.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from depth_panoptic_ros import typed_config
from depth_panoptic_ros.model import DepthPanopticModel, load_model, read_header, save_model
from depth_panoptic_ros.pipeline import Pipeline
from depth_panoptic_ros.training.config import TrainConfig
from depth_panoptic_ros.training.evaluate import EvaluationResult, evaluate


def evaluate_file(path: Path, config: TrainConfig, split: str, frames: int) -> EvaluationResult:
    """The model file on the first ``frames`` frames of ``split`` of the config's data set (CPU, deterministic)."""
    samples = config.data.open(split)
    count = min(frames, len(samples))
    return evaluate(Pipeline(config.pipeline, load_model(path)), (samples[i] for i in range(count)), progress=False)


def graft_merge_head(model: DepthPanopticModel, donor: Path) -> DepthPanopticModel:
    """``model`` with the learned merge head (settings and weights) of the model file ``donor``, which must
    share its class table: a head trained on one release of the networks, carried over to the next."""
    head = load_model(donor)
    if head.merge_head is None:
        raise ValueError(f"{donor} has no learned merge head to graft")
    if head.class_table != model.class_table:
        raise ValueError(f"{donor} has another class table than the model: its merge head does not fit")
    grafted = DepthPanopticModel(replace(model.config, merge_head=head.config.merge_head), model.class_table)
    grafted.load_state_dict({**model.state_dict(), **head.merge_head.state_dict(prefix="merge_head.")})
    return grafted


def release_model(
    trained: Path,
    out: Path,
    config: TrainConfig,
    provenance: dict[str, Any],
    split: str = "val",
    frames: int = 20,
    merge_head: Path | None = None,
    merge: str | None = None,
    min_thing_score_by_class: dict[str, float] | None = None,
) -> EvaluationResult:
    """Writes ``trained`` to ``out`` with fp16 weights and its evaluation (``split``, ``frames``) in the header;
    ``merge_head``: a model file whose merge head to graft on; ``merge``: the merge to store;
    ``min_thing_score_by_class``: the per-class thing score cuts to store (InferenceConfig); each None = the file's."""
    model = load_model(trained)
    # the settings the networks were trained with; a file from before they were recorded gets the release config's
    settings = model.pipeline_settings or typed_config.to_dict(config.pipeline)
    if merge_head is not None:
        model = graft_merge_head(model, merge_head)
    inference = model.config.inference
    if merge is not None:
        inference = replace(inference, merge=replace(inference.merge, strategy=merge))
    if min_thing_score_by_class is not None:
        inference = replace(inference, min_thing_score_by_class=min_thing_score_by_class)
    if inference != model.config.inference:
        # the model checks the stored settings (a merge it can run, the cuts' class names)
        rebuilt = DepthPanopticModel(replace(model.config, inference=inference), model.class_table)
        rebuilt.load_state_dict(model.state_dict())
        model = rebuilt
    model.pipeline_settings = settings
    extra = {**read_header(trained)["extra"], **provenance}
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / "model.safetensors"
        save_model(half, model, extra, dtype=torch.float16)
        result = evaluate_file(half, config, split, frames)
    # the same fp32 weights rounded to fp16 again: exactly the weights just evaluated
    save_model(out, model, {**extra, "evaluation": {"split": split, **result.to_dict()}}, dtype=torch.float16)
    return result
