"""Turning a trained run into a shipped model: half-precision storage and a recorded evaluation.

The evaluation is made with the stored (fp16-rounded) weights on a fixed split and written into the file's
header, so the model card, the file and the test that guards the file all read the same numbers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from depth_panoptic_ros.model import load_model, read_header, save_model
from depth_panoptic_ros.pipeline import Pipeline
from depth_panoptic_ros.training.config import TrainConfig
from depth_panoptic_ros.training.evaluate import EvaluationResult, evaluate


def evaluate_file(path: Path, config: TrainConfig, split: str, frames: int) -> EvaluationResult:
    """The model file on the first ``frames`` frames of ``split`` of the config's data set (CPU, deterministic)."""
    samples = config.data.open(split)
    count = min(frames, len(samples))
    return evaluate(Pipeline(config.pipeline, load_model(path)), (samples[i] for i in range(count)), progress=False)


def release_model(
    trained: Path, out: Path, config: TrainConfig, provenance: dict[str, Any], split: str = "val", frames: int = 20
) -> EvaluationResult:
    """Writes ``trained`` to ``out`` with fp16 weights and its evaluation (``split``, ``frames``) in the header."""
    model = load_model(trained)
    extra = {**read_header(trained)["extra"], **provenance}
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / "model.safetensors"
        save_model(half, model, extra, dtype=torch.float16)
        result = evaluate_file(half, config, split, frames)
    # the same fp32 weights rounded to fp16 again: exactly the weights just evaluated
    save_model(out, model, {**extra, "evaluation": {"split": split, **result.to_dict()}}, dtype=torch.float16)
    return result
