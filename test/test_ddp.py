"""Data-parallel training: two CPU processes (gloo) launched by torchrun on 127.0.0.1 keep identical replicas."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_training import REPO, SYNTHETIC, TINY

WORKER = """
import sys
from pathlib import Path

import numpy as np
import torch

from depth_panoptic_ros.training.config import load_train_config
from depth_panoptic_ros.training.distributed import distributed_session
from depth_panoptic_ros.training.loop import build_model, seed_everything, train

out = Path(sys.argv[1])
config = load_train_config(sys.argv[2], sys.argv[3:])
flat = lambda model: torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
with distributed_session("cpu") as context:
    seed_everything(config.run.seed)  # as train() does before building its model
    np.save(out / f"init{context.rank}.npy", flat(build_model(config)))
    result = train(config, out / "run", context, progress=False)
    np.save(out / f"rank{context.rank}.npy", flat(result.model))
    np.save(out / f"losses{context.rank}.npy", np.array(result.losses))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_replicas(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    overrides = [*TINY, "run.max_iters=3", "run.checkpoint_every=3"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        str(script), str(tmp_path), str(SYNTHETIC), *overrides,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    replicas = [np.load(tmp_path / f"rank{rank}.npy") for rank in range(2)]
    assert np.array_equal(replicas[0], replicas[1])
    assert not np.array_equal(replicas[0], np.load(tmp_path / "init0.npy"))  # training moved them
    # each rank saw its own half of the global batch, so their losses differ
    assert not np.array_equal(np.load(tmp_path / "losses0.npy"), np.load(tmp_path / "losses1.npy"))
    # only rank 0 writes: one checkpoint, one export, one TensorBoard log
    run = tmp_path / "run"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["iter_0000003"]
    assert (run / "model.safetensors").is_file() and len(list((run / "tensorboard").iterdir())) == 1
