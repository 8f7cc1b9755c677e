"""The training loop: model, optimizer and schedule from a TrainConfig, batches from the data-loader workers,
AMP and gradient clipping, TensorBoard, checkpoints with exact resume, periodic validation through the
deployed pipeline, and the final export of OUTPUT_DIR/model.safetensors.

The panoptic network trains on labeled data, the completion network whenever the config asks for it; the
part that does not train is frozen, so that data-parallel training never waits for gradients that never come.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from depth_panoptic_ros import typed_config
from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.device import autocast_dtype
from depth_panoptic_ros.model import DepthPanopticModel, read_header, save_model
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.pipeline import Pipeline
from depth_panoptic_ros.training.batch import Batch, Collate, TrainingSet
from depth_panoptic_ros.training.checkpoint import find_resume_checkpoint, load_checkpoint, save_checkpoint
from depth_panoptic_ros.training.config import OptimizerConfig, RunConfig, TrainConfig
from depth_panoptic_ros.training.distributed import DistributedContext, StreamSampler, wrap_model
from depth_panoptic_ros.training.evaluate import evaluate
from depth_panoptic_ros.training.losses import depth_completion_loss, panoptic_criterion
from depth_panoptic_ros.training.merge_head import HeadExample, head_examples, merge_head_loss
from depth_panoptic_ros.training.nonfinite import NonFiniteSteps
from depth_panoptic_ros.training.schedule import build_scheduler
from depth_panoptic_ros.training.targets import depth_at_mask_stride

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

MODEL_FILE = "model.safetensors"


@dataclass
class TrainResult:
    """losses: the total loss of every iteration this process ran; model_path: the export (main process);
    skipped_steps: iterations whose gradients were not finite, so no optimizer step was taken."""

    model: DepthPanopticModel
    iterations: int
    losses: list[float] = field(default_factory=list)
    model_path: Path | None = None
    skipped_steps: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator, for libraries that draw from it
    torch.manual_seed(seed)


def build_model(config: TrainConfig) -> DepthPanopticModel:
    """The model of the config in the Cityscapes label space, encoders optionally ImageNet-initialized, or the
    whole network started from a released model (fine-tuning; a merge head the file lacks, or a completion network
    configured differently from the file's, starts untrained)."""
    model = DepthPanopticModel(config.model, ClassTable.cityscapes())
    model.pipeline_settings = typed_config.to_dict(config.pipeline)  # its classical completion makes the inputs
    path = config.run.imagenet_weights
    if path:
        if not Path(path).is_file():
            raise ValueError(f"run.imagenet_weights: file {path} does not exist")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.panoptic.load_imagenet(state)
    if config.run.init_model:
        from depth_panoptic_ros.model import load_model

        start = load_model(config.run.init_model)  # CheckpointError (a ValueError) names a bad file
        state, fresh = start.state_dict(), ("merge_head.",)
        if config.model.merge_head is None:  # a released model's head: fit to the networks this run changes
            state = {key: value for key, value in state.items() if not key.startswith("merge_head.")}
        if start.config.completion != config.model.completion:
            state = {key: value for key, value in state.items() if not key.startswith("completion.")}
            fresh += ("completion.",)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or any(not key.startswith(fresh) for key in missing):
                raise RuntimeError(f"missing keys {missing}, unexpected keys {unexpected}")
        except RuntimeError as exc:
            path = config.run.init_model
            raise ValueError(f"run.init_model: {path} does not fit the config's model: {exc}") from None
    return model


def trainable_parameters(model: DepthPanopticModel, config: TrainConfig) -> list[nn.Parameter]:
    """Freezes what this run does not train; returns the rest."""
    model.requires_grad_(False)
    if config.run.train_merge_head:
        model.merge_head.requires_grad_(True)
        return list(model.merge_head.parameters())
    if config.trains_panoptic:
        model.panoptic.requires_grad_(True)
        if model.refiner is not None:
            model.refiner.requires_grad_(True)
    if config.trains_completion:
        model.completion.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def build_optimizer(parameters: Sequence[nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(parameters, config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, config.lr, betas=config.betas, weight_decay=config.weight_decay)


def compute_losses(
    model: nn.Module, core: DepthPanopticModel, batch: Batch, config: TrainConfig, amp: torch.dtype | None
) -> tuple[torch.Tensor, PanopticOutputs | None, dict[str, torch.Tensor]]:
    """Forward pass (under autocast) and the weighted loss terms (in float32); ``model`` may be the DDP wrapper
    of ``core``. Returns (dense depth, outputs, terms); the total loss is the sum of the terms."""
    device_type = batch.rgb.device.type
    with torch.autocast(device_type, dtype=amp, enabled=amp is not None):
        dense, outputs = model(core.normalize_rgb(batch.rgb), batch.sparse, batch.init_depth, config.trains_panoptic)
    terms = {}
    if outputs is not None:
        outputs = _float_outputs(outputs)
        weights = config.loss.panoptic
        depth = depth_at_mask_stride(batch.depth, config.targets) if weights.omega > 0 else None
        terms = panoptic_criterion(outputs, batch.targets, depth, weights)
    if config.trains_completion:
        depth_loss = depth_completion_loss(dense.float(), batch.depth, config.loss.depth_kind)
        terms["depth"] = config.loss.depth_weight * depth_loss
    return dense, outputs, terms


def _float_outputs(outputs: PanopticOutputs) -> PanopticOutputs:
    """Losses are computed in float32 whatever precision autocast ran the networks in."""
    return PanopticOutputs(
        outputs.features.float(),
        [c.float() for c in outputs.centers],
        [s.float() for s in outputs.stuff],
        [k.float() for k in outputs.kernels],
    )


def _unscale_and_clip(
    scaler: torch.amp.GradScaler,
    optimizer: torch.optim.Optimizer,
    parameters: Sequence[nn.Parameter],
    clip: float | None,
) -> bool:
    """Unscales the gradients (fp16), clips their global norm to ``clip``; whether they are all finite."""
    scaler.unscale_(optimizer)
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if clip is not None:
        torch.nn.utils.clip_grads_with_norm_(parameters, clip, norm)
    return bool(torch.isfinite(norm))


def _single_threaded_worker(_: int) -> None:
    """Data-loader workers each run torch on one core; parallelism comes from their number. (OpenCV's thread
    count is left alone: cv2.setNumThreads deadlocks in a worker forked after the parent used OpenCV.)"""
    torch.set_num_threads(1)


def _data_loader(
    samples: Sequence[Sample],
    class_table: ClassTable,
    config: TrainConfig,
    context: DistributedContext,
    per_process: int,
    start: int,
) -> torch.utils.data.DataLoader:
    run = config.run
    sampler = StreamSampler(len(samples), per_process, run.seed, context.rank, context.world_size, start)
    workers = {"num_workers": run.num_workers}
    if run.num_workers:
        workers |= {"worker_init_fn": _single_threaded_worker, "prefetch_factor": 2}
    return torch.utils.data.DataLoader(
        TrainingSet(samples, config.augment, config.pipeline.completion, run.seed),
        batch_size=per_process,
        sampler=sampler,
        collate_fn=Collate(class_table, config.targets, config.trains_panoptic or run.train_merge_head),
        **workers,
    )


def _log_images(
    writer: SummaryWriter,
    core: DepthPanopticModel,
    batch: Batch,
    dense: torch.Tensor,
    outputs: PanopticOutputs | None,
    step: int,
) -> None:
    """The first image of the batch: its depth (color map) and its panoptic prediction over the image."""
    from depth_panoptic_ros.products.depth_colormap import colorize_depth
    from depth_panoptic_ros.products.palette import overlay_panoptic

    depth = dense[0, 0].detach().float().cpu().numpy()
    writer.add_image("depth/model", colorize_depth(depth), step, dataformats="HWC")
    if outputs is not None:
        rgb = batch.rgb[0].permute(1, 2, 0).cpu().numpy()
        grid_depth = core.mask_grid_depth(dense[:1].detach().float(), outputs.features)[0]
        ids = core.inference(outputs.image(0), core.class_table, depth.shape, grid_depth).ids
        image = overlay_panoptic(rgb, ids, core.class_table)
        writer.add_image("panoptic/predicted", image, step, dataformats="HWC")


class _Reporter:
    """The main process's progress bar (ETA, latest loss terms, skipped steps) and TensorBoard scalars; loss
    terms are averaged over the finite steps of each run.log_every iterations."""

    def __init__(self, output_dir: Path, run: RunConfig, start: int, progress: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(output_dir / "tensorboard"))
        self.bar = tqdm(total=run.max_iters, initial=start, unit="it", disable=not progress)
        self.every, self.sums, self.steps = run.log_every, {}, 0

    def step(self, done: int, terms: dict[str, torch.Tensor], lr: float, skipped: int) -> None:
        """terms: the loss terms of a finite step, {} for a skipped one; skipped: skipped steps so far."""
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value.detach())
        self.steps += bool(terms)
        self.bar.update()
        if done % self.every:
            return
        means = {name: value / self.steps for name, value in self.sums.items()}
        for name, value in means.items():
            self.writer.add_scalar(f"loss/{name}", value, done)
        if means:
            self.writer.add_scalar("loss/total", sum(means.values()), done)
        self.writer.add_scalar("lr", lr, done)
        self.writer.add_scalar("train/skipped_steps", skipped, done)
        postfix = {name: f"{value:.3f}" for name, value in means.items()}
        self.bar.set_postfix(postfix | ({"skipped": skipped} if skipped else {}))
        self.sums, self.steps = {}, 0

    def validate(self, core: DepthPanopticModel, config: TrainConfig, samples: Sequence[Sample], done: int) -> None:
        """The first run.val_frames frames through the deployed pipeline; headline numbers to TensorBoard."""
        core.eval()
        frames = (samples[i] for i in range(min(config.run.val_frames, len(samples))))
        for name, value in evaluate(Pipeline(config.pipeline, core), frames).scalars().items():
            self.writer.add_scalar(f"val/{name}", value, done)
        core.train()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


def train(
    config: TrainConfig,
    output_dir: Path,
    context: DistributedContext,
    resume: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Trains for config.run.max_iters iterations (continuing a checkpoint when ``resume`` names one)."""
    run, device = config.run, context.device
    if run.batch_size % context.world_size:
        raise ValueError(f"run.batch_size {run.batch_size} must be divisible by the {context.world_size} processes")
    train_samples = config.data.open("train")
    val_samples = config.data.open("val") if run.val_every else None  # opened now: a missing split fails early

    seed_everything(run.seed)
    core = build_model(config).to(device)
    core.train()
    parameters = trainable_parameters(core, config)
    model = wrap_model(core, context)
    optimizer = build_optimizer(parameters, config.optimizer)
    scheduler = build_scheduler(optimizer, config.schedule, run.max_iters)
    amp = autocast_dtype(run.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    skipped = NonFiniteSteps(run.max_nonfinite_steps)
    checkpoints = output_dir / "checkpoints"
    start = 0
    resume_from = find_resume_checkpoint(resume, checkpoints)
    if resume_from is not None:
        start = load_checkpoint(resume_from, core, optimizer, scheduler, scaler)

    per_process = run.batch_size // context.world_size
    batches = iter(_data_loader(train_samples, core.class_table, config, context, per_process, start))
    reporter = _Reporter(output_dir, run, start, progress) if context.is_main else None
    extra = {"config": typed_config.to_dict(config), "data": config.data.name, "seed": run.seed}
    if run.init_model:
        extra["init_model"] = {"path": run.init_model, "extra": read_header(run.init_model)["extra"]}
    result = TrainResult(core, start)
    head_cache: dict[int, list[HeadExample]] = {}  # run.merge_head_batches: the frozen networks' results
    try:  # an interrupted run (Ctrl-C, SIGTERM) still flushes its TensorBoard events and closes the bar
        for iteration in range(start, run.max_iters):
            if run.train_merge_head:
                key = iteration % run.merge_head_batches if run.merge_head_batches else -1
                examples = head_cache.get(key) or head_examples(core, next(batches).to(device), config, amp)
                if run.merge_head_batches:
                    head_cache[key] = examples
                batch = dense = outputs = None
                terms = merge_head_loss(core, examples, config.loss.panoptic)
            else:
                batch = next(batches).to(device)
                dense, outputs, terms = compute_losses(model, core, batch, config, amp)
            total = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            finite = _unscale_and_clip(scaler, optimizer, parameters, config.optimizer.grad_clip)
            if finite:  # the same decision in every process: the gradients were averaged over all of them
                scaler.step(optimizer)
            scaler.update()  # a skipped fp16 step lowers the loss scale
            scheduler.step()
            done = result.iterations = iteration + 1
            result.losses.append(float(total.detach()))
            skipped.update(done, finite, terms)
            result.skipped_steps = skipped.total
            if reporter is None:
                continue
            reporter.step(done, terms if finite else {}, scheduler.get_last_lr()[0], skipped.total)
            if run.image_every and done % run.image_every == 0 and batch is not None:
                _log_images(reporter.writer, core, batch, dense, outputs, done)
            if run.checkpoint_every and done % run.checkpoint_every == 0:
                extra["iterations"] = done
                save_checkpoint(checkpoints, done, core, optimizer, scheduler, scaler, extra, run.keep_checkpoints)
            if run.val_every and done % run.val_every == 0:
                reporter.validate(core, config, val_samples, done)
    finally:
        if reporter is not None:
            reporter.close()
    if reporter is not None:
        extra["iterations"] = result.iterations
        result.model_path = output_dir / MODEL_FILE
        save_model(result.model_path, core, extra)
    return result
