"""The learned pipeline as one module: RGB + sparse + classical depth -> dense depth + panoptic result.

Order (PanDepth, then the depth-aware Panoptic FCN): the completion network refines the classical completion,
the panoptic network's depth branch reads that completed depth, and PanDepth's joint branch may refine the
stuff logits with it. A checkpoint is one safetensors file whose header carries everything needed to rebuild
the model — config, class table, input normalization — so weights never travel without their meaning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depth_panoptic_ros import typed_config
from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.cuda_graph import GraphedForward
from depth_panoptic_ros.depth.network import DepthCompletionConfig, DepthCompletionNet, JointRefiner
from depth_panoptic_ros.device import autocast_dtype, torch_device
from depth_panoptic_ros.panoptic.config import InferenceConfig, PanopticNetConfig
from depth_panoptic_ros.panoptic.inference import PanopticInference, thing_score_cuts
from depth_panoptic_ros.panoptic.levels import FEATURE_STRIDE
from depth_panoptic_ros.panoptic.merge import STRATEGIES
from depth_panoptic_ros.panoptic.merge_head import MergeHead, MergeHeadConfig
from depth_panoptic_ros.panoptic.network import DepthAwarePanopticFCN
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.panoptic.thing_geometry import ThingGeometryCheck

FORMAT = "depth_panoptic_ros/1"
WARM_UP_SIZE = (375, 1242)  # a KITTI frame; compiled graphs have dynamic shapes, so any size does
# Weight names renamed to American spelling in 0.1.x: files written before (the shipped model) still load.
RENAMED_WEIGHTS = {
    "panoptic.colour_backbone.": "panoptic.color_backbone.",
    "panoptic.colour_fpn.": "panoptic.color_fpn.",
}


class CheckpointError(ValueError):
    """A model file that is missing, unreadable or not one of ours; the message names the file."""


@dataclass(frozen=True)
class Normalization:
    """Input statistics: RGB per channel (0..255 scale), depth over valid pixels only (as the paper).

    Depth outside [min_depth, max_depth] is invalid (paper: < 1 m or > 500 m) and enters the network as 0
    after normalization. `depth-panoptic-train stats` computes these over a training set.
    """

    rgb_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    rgb_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    depth_mean: float = 20.0
    depth_std: float = 15.0
    min_depth: float = 1.0
    max_depth: float = 500.0

    def __post_init__(self) -> None:
        if len(self.rgb_mean) != 3 or len(self.rgb_std) != 3 or min(self.rgb_std) <= 0:
            raise ValueError(f"rgb_mean/rgb_std need 3 values, std > 0; got {self.rgb_mean}, {self.rgb_std}")
        if not self.depth_std > 0 or not 0 <= self.min_depth < self.max_depth:
            raise ValueError(
                f"need depth_std > 0 and 0 <= min_depth < max_depth, got {self.depth_std}, "
                f"{self.min_depth}, {self.max_depth}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """completion None = no learned completion (the classical depth goes to the panoptic network as is);
    merge_head None = no learned merge head (the merge ``learned`` is then unavailable)."""

    panoptic: PanopticNetConfig = field(default_factory=PanopticNetConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    completion: DepthCompletionConfig | None = field(default_factory=DepthCompletionConfig)
    joint_refine: bool = False
    normalization: Normalization = field(default_factory=Normalization)
    merge_head: MergeHeadConfig | None = None


class DepthPanopticModel(nn.Module):
    def __init__(self, config: ModelConfig, class_table: ClassTable) -> None:
        super().__init__()
        net = config.panoptic
        table_channels = (len(class_table.thing_indices), len(class_table.stuff_indices))
        if (net.num_thing_classes, net.num_stuff_classes) != table_channels:
            raise ValueError(
                f"network has {net.num_thing_classes} thing / {net.num_stuff_classes} stuff channels but the class "
                f"table has {table_channels[0]} / {table_channels[1]}"
            )
        self.config = config
        self.class_table = class_table
        self.panoptic = DepthAwarePanopticFCN(net)
        self.completion = None if config.completion is None else DepthCompletionNet(config.completion)
        self.refiner = JointRefiner(net.num_stuff_classes) if config.joint_refine else None
        self.merge_head = (
            None
            if config.merge_head is None
            else MergeHead(config.merge_head, net.num_thing_classes, net.num_stuff_classes)
        )
        thing_score_cuts(config.inference, class_table, "cpu")  # names a per-class cut's unknown class now
        self.inference = PanopticInference(config.inference, self.merge_head)
        self.use_merge(config.inference.merge.strategy)
        norm = config.normalization
        self.register_buffer("rgb_mean", torch.tensor(norm.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(norm.rgb_std).view(1, 3, 1, 1), persistent=False)
        self.precision: torch.dtype | None = None
        self.compiled = False  # compile_networks
        self._graphed: GraphedForward | None = None  # use_cuda_graphs
        # The PipelineConfig (as a dict) whose classical completion made the training inputs: saved in the file's
        # header, so that loading can run the pipeline the networks know (pipeline.bind_to_model).
        self.pipeline_settings: dict[str, Any] | None = None

    @property
    def merge(self) -> str:
        """The merge strategy inference runs now (the stored one unless use_merge changed it)."""
        return self.inference.config.merge.strategy

    def use_merge(self, strategy: str) -> None:
        """Run-time choice of the merge (fcn | degeus | learned); ValueError for ``learned`` without a head."""
        if strategy not in STRATEGIES:
            raise ValueError(f"merge must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if strategy == "learned" and self.merge_head is None:
            raise ValueError("merge 'learned' needs a learned merge head; this model has none (docs/training.md)")
        config = self.inference.config
        self.inference.config = replace(config, merge=replace(config.merge, strategy=strategy))

    @property
    def min_thing_score(self) -> float:
        """The score below which thing candidates are dropped (the stored one unless use_min_thing_score changed
        it), for the classes without a cut of their own (min_thing_score_by_class)."""
        return self.inference.config.min_thing_score

    def use_min_thing_score(self, score: float) -> None:
        """Run-time choice of the thing score cut, the deployment's precision / recall trade-off (on real KITTI
        frames the shipped model's false things score lower than its true ones: BENCHMARKS.md, "Thing score").
        One number for every class: it replaces the stored per-class cuts too, so that the cut set is the cut
        run. ValueError outside [0, 1]."""
        self.inference.config = replace(self.inference.config, min_thing_score=score, min_thing_score_by_class={})

    def mask_grid_depth(self, dense: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) meters -> (B, h, w) normalized depth on the feature grid: the merge head's depth input."""
        padded = _pad_like(self.normalize_depth(dense), features)
        return F.avg_pool2d(padded, FEATURE_STRIDE)[:, 0]

    # -- training / export interface -------------------------------------------------------------------------
    def normalize_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) 0..255 -> normalized float."""
        return (rgb.float() - self.rgb_mean) / self.rgb_std

    def normalize_depth(self, depth: torch.Tensor) -> torch.Tensor:
        """Meters -> normalized, invalid depth (out of range or 0) -> 0 (the mean), see DepthAwarePanopticFCN."""
        norm = self.config.normalization
        valid = (depth >= norm.min_depth) & (depth <= norm.max_depth)
        return torch.where(valid, (depth - norm.depth_mean) / norm.depth_std, 0.0)

    def forward(
        self, rgb: torch.Tensor, sparse: torch.Tensor, init_depth: torch.Tensor, segment: bool = True
    ) -> tuple[torch.Tensor, PanopticOutputs | None]:
        """rgb normalized (B, 3, H, W); sparse / init_depth (B, 1, H, W) meters -> (dense meters, outputs)."""
        dense = init_depth if self.completion is None else self.completion(rgb, sparse, init_depth)
        if not segment:
            return dense, None
        depth_in = None if self.panoptic.depth_backbone is None else self.normalize_depth(dense)
        outputs = self.panoptic(rgb, depth_in)
        if self.refiner is not None:
            scaled = dense / self.config.normalization.max_depth
            outputs.stuff = [
                self.refiner(F.adaptive_avg_pool2d(_pad_like(scaled, outputs.features), s.shape[-2:]), s)
                for s in outputs.stuff
            ]
        return dense, outputs

    # -- per-frame inference ---------------------------------------------------------------------------------
    def compile_networks(self) -> None:
        """torch.compile the completion and panoptic networks in place (parameter names unchanged), with dynamic
        shapes so that one compilation serves every image size. Compilation happens at the first call."""
        if self._graphed is not None:
            raise ValueError("compile and cuda_graph: choose one (compiled networks are not captured as graphs)")
        for net in (self.completion, self.panoptic):
            if net is not None:
                net.compile(dynamic=True)
        self.compiled = True

    def use_cuda_graphs(self) -> None:
        """Replays the networks' forward pass from CUDA graphs, captured at the first frame of each size
        (cuda_graph.py): the launch-bound networks' fast setting on a GPU. ValueError off CUDA or when compiled."""
        if self.rgb_mean.device.type != "cuda":
            raise ValueError(f"cuda_graph needs the model on a CUDA device, it is on {self.rgb_mean.device}")
        if self.compiled:
            raise ValueError("cuda_graph and compile: choose one (compiled networks are not captured as graphs)")
        self._graphed = GraphedForward(self.forward)

    def warm_up(self, height: int = WARM_UP_SIZE[0], width: int = WARM_UP_SIZE[1]) -> None:
        """One blank frame through the networks, so that compilation, cuDNN's algorithm search and the
        allocator's growth happen now (at node start) rather than on the first real frame."""
        blank = np.zeros((height, width), np.float32)
        self.predict(np.zeros((height, width, 3), np.uint8), blank, blank)

    @torch.inference_mode()
    def predict(
        self,
        rgb: np.ndarray,
        sparse: np.ndarray,
        classical: np.ndarray,
        segment: bool = True,
        return_depth: bool = True,
        check: ThingGeometryCheck | None = None,
    ) -> tuple[np.ndarray | None, PanopticResult | None]:
        """One frame of numpy arrays (H x W x 3 uint8 RGB, H x W meters) -> dense depth and panoptic result.

        Without ``return_depth`` the learned depth stays on the device (None is returned): when the classical
        depth is served, only the panoptic network reads it, and on a GPU its copy to the host (4 bytes a pixel)
        would serve nothing. ``check``: the thing geometry check of the frame (panoptic/thing_geometry.py)."""
        device = self.rgb_mean.device
        height, width = rgb.shape[:2]

        def to_t(a: np.ndarray) -> torch.Tensor:  # decoded ROS images are read-only views: copy only those
            return torch.from_numpy(np.require(a, requirements=("C", "W"))).to(device)

        rgb_t = self.normalize_rgb(to_t(rgb).permute(2, 0, 1)[None])
        if device.type == "cuda":
            rgb_t = rgb_t.contiguous(memory_format=torch.channels_last)
        sparse_t, init_t = to_t(sparse)[None, None].float(), to_t(classical)[None, None].float()
        with torch.autocast(device.type, dtype=self.precision, enabled=self.precision is not None):
            dense, outputs = (self._graphed or self)(rgb_t, sparse_t, init_t, segment)
        panoptic = None
        if outputs is not None:
            grid_depth = self.mask_grid_depth(dense.float(), outputs.features)[0] if self.merge == "learned" else None
            panoptic = self.inference(outputs, self.class_table, (height, width), grid_depth, check)
        # Copied after the post-processing: on a GPU the host queues the post-processing's first kernels while the
        # networks still run, rather than waiting here for them to finish.
        depth = dense[0, 0].float().cpu().numpy() if return_depth else None
        return depth, panoptic


def _pad_like(depth: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Zero-pads depth to the padded network input that ``features`` (at FEATURE_STRIDE) came from."""
    h, w = features.shape[-2] * FEATURE_STRIDE, features.shape[-1] * FEATURE_STRIDE
    return F.pad(depth, (0, w - depth.shape[-1], 0, h - depth.shape[-2]))


def save_model(
    path: str | Path, model: DepthPanopticModel, extra: dict | None = None, dtype: torch.dtype | None = None
) -> None:
    """Weights as safetensors; config, class table, the model's pipeline settings when known (and ``extra``,
    e.g. training provenance) in its header.

    dtype stores floating-point tensors in another precision (float16 halves a shipped model's size);
    load_model copies them into the float32 parameters of the rebuilt model.
    """
    from safetensors.torch import save_file

    metadata = {
        "format": FORMAT,
        "config": json.dumps(typed_config.to_dict(model.config)),
        "class_table": json.dumps(model.class_table.to_dict()),
        "extra": json.dumps(extra or {}),
    }
    if model.pipeline_settings is not None:
        metadata["pipeline"] = json.dumps(model.pipeline_settings)
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)


def read_header(path: str | Path) -> dict:
    """The checkpoint's metadata (config, class table, extra; pipeline: the recorded pipeline settings, None in
    files written before they were recorded) without loading the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"model file {path} is not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"model file {path} is not a {FORMAT} checkpoint (format {metadata.get('format')!r})")
    try:
        header = {key: json.loads(metadata[key]) for key in ("config", "class_table", "extra")}
        header["pipeline"] = json.loads(metadata["pipeline"]) if "pipeline" in metadata else None
        return header
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"model file {path} has a damaged header: {exc!r}") from exc


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a model file under the current parameter names."""
    from safetensors.torch import load_file

    state = {}
    for name, tensor in load_file(str(path)).items():
        old = next((prefix for prefix in RENAMED_WEIGHTS if name.startswith(prefix)), None)
        state[name if old is None else RENAMED_WEIGHTS[old] + name[len(old) :]] = tensor
    return state


def load_model(
    path: str | Path, device: str = "cpu", precision: str = "fp32", compile: bool = False, cuda_graph: bool = False
) -> DepthPanopticModel:
    """Rebuilds the model from the file alone; raises CheckpointError naming the file on any problem.
    compile: DepthPanopticModel.compile_networks; cuda_graph: use_cuda_graphs (ValueError off CUDA)."""
    dtype = autocast_dtype(precision)
    dev = torch_device(device)
    header = read_header(path)
    try:
        config = typed_config.from_dict(ModelConfig, header["config"], "model")
        model = DepthPanopticModel(config, ClassTable.from_dict(header["class_table"]))
        model.load_state_dict(load_weights(path), strict=True)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"model file {path}: {exc}") from exc
    model.eval().to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model.precision = dtype
    model.pipeline_settings = header["pipeline"]
    if compile:
        model.compile_networks()
    if cuda_graph:
        model.use_cuda_graphs()
    return model
