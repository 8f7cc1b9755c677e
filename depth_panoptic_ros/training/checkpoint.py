"""Training checkpoints from which a run continues exactly as if it had never stopped.

A checkpoint is a folder ``iter_<NNNNNNN>`` holding ``model.safetensors`` (save_model's file: also a usable
model), ``optimizer.safetensors`` (the optimizer's tensors; param groups and non-tensor state in its header) and
``state.json`` (iteration, LR scheduler, AMP grad scaler, RNG states of Python, NumPy, torch CPU and CUDA).
It is written under a temporary name and renamed, so an interrupted write never looks like a checkpoint.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_panoptic_ros.model import CheckpointError, DepthPanopticModel, load_weights, save_model

PREFIX = "iter_"
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "state.json"


def checkpoint_name(iteration: int) -> str:
    return f"{PREFIX}{iteration:07d}"


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(f"{PREFIX}*") if p.name[len(PREFIX) :].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def save_checkpoint(
    directory: Path,
    iteration: int,
    model: DepthPanopticModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    extra: dict[str, Any],
    keep: int,
) -> Path:
    """Writes the checkpoint of ``iteration`` iterations done, then deletes all but the ``keep`` newest."""
    from safetensors.torch import save_file

    final = directory / checkpoint_name(iteration)
    partial = directory / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(partial / MODEL_FILE, model, extra)
    tensors, scalars = {}, {}
    optimizer_state = optimizer.state_dict()
    for param, values in optimizer_state["state"].items():
        for name, value in values.items():
            key = f"{param}/{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().contiguous().cpu()
            else:
                scalars[key] = value
    metadata = {"param_groups": json.dumps(optimizer_state["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(partial / OPTIMIZER_FILE), metadata=metadata)
    state = {
        "iteration": iteration,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": _rng_states(),
    }
    (partial / STATE_FILE).write_text(json.dumps(state))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old)
    return final


def load_checkpoint(
    path: Path,
    model: DepthPanopticModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> int:
    """Restores everything save_checkpoint wrote (RNG states included); returns the iterations done."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    missing = [name for name in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE) if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: {', '.join(missing)} missing")
    try:
        model.load_state_dict(load_weights(path / MODEL_FILE), strict=True)
        with safe_open(str(path / OPTIMIZER_FILE), framework="pt") as f:
            metadata = f.metadata()
        values = load_file(str(path / OPTIMIZER_FILE)) | json.loads(metadata["scalars"])
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in values.items():
            param, name = key.split("/", 1)
            per_param.setdefault(int(param), {})[name] = value
        optimizer.load_state_dict({"state": per_param, "param_groups": json.loads(metadata["param_groups"])})
        state = json.loads((path / STATE_FILE).read_text())
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_states(state["rng"])
        return int(state["iteration"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {exc}") from exc


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode()


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _rng_states() -> dict[str, Any]:
    """Every global generator; the package draws from seeded Generators, but libraries may use the globals."""
    name, keys, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    version, python_state, python_gauss = random.getstate()
    return {
        "python": [version, list(python_state), python_gauss],
        "numpy": [name, keys.tolist(), position, has_gauss, gauss],
        "torch": _encode(torch.get_rng_state()),
        "cuda": [_encode(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    version, python_state, python_gauss = states["python"]
    random.setstate((version, tuple(python_state), python_gauss))
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))  # noqa: NPY002
    torch.set_rng_state(_decode(states["torch"]))
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_decode(s) for s in states["cuda"]])


def find_resume_checkpoint(resume: str | None, checkpoints: Path) -> Path | None:
    """``--resume``: None = fresh start; "auto" = the newest checkpoint in ``checkpoints`` if any; otherwise a
    checkpoint folder, or a run's output folder whose newest checkpoint is taken."""
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(checkpoints)
        return found[-1] if found else None
    path = Path(resume)
    if (path / STATE_FILE).is_file():
        return path
    found = list_checkpoints(path / checkpoints.name)
    if not found:
        raise CheckpointError(f"--resume {path}: neither a checkpoint folder nor a run folder with checkpoints")
    return found[-1]
