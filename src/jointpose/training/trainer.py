"""Training: a plain loop over vectorised batches, with per-epoch checkpoints and logs.

The ``--no-constraints`` baseline trains VideoPose3D's way: one target frame per window
through the strided model. With constraints, ``chunk_share`` of each step's target frames
come as chunks of ``chunk`` consecutive frames, each predicted by the strided model (same
weights) from its own receptive-field window, so temporal losses see real consecutive
predictions; the rest are single windows as in the baseline. By default (``chunk_dropout
= "shared"``) the windows of a chunk share one dropout mask, so the temporal terms compare
predictions that differ only by their input, and MPJPE supervises the single windows; with
``"independent"`` every window draws its own mask and MPJPE covers every frame. The
constraint terms are the mean over the chunks. Training and full-sequence evaluation
models share one state dict.

Semi-supervised (``-sun``, VideoPose3D Sec. 4): after ``warmup_unlabeled`` epochs every step
also takes as many unlabelled target frames (2D only, singles and chunks alike), which go
through the pose and trajectory models in the same forward pass; their predicted joints
(pose + root) are projected back into the input through each sample's camera, and the 2D
reprojection error, the bone-length guard, (with constraints) the target-free joint-aware
terms and (``--w-multiview``) the agreement of one frame's predictions through two calibrated
cameras train both models.
"""

from __future__ import annotations

import csv
import math
import numbers
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from jointpose.data.batching import MixedBatch, MixedWindows
from jointpose.errors import JointposeError, first_line, out_of_memory
from jointpose.evaluation.evaluate import (
    evaluate_model,
    format_table,
    inference_settings,
    results_json,
    with_provenance,
)
from jointpose.geometry.anatomy import bone_lengths
from jointpose.losses import (
    TEMPORAL_TERMS,
    TERMS,
    JointAwareLoss,
    bone_length_guard,
    mpjpe,
    reprojection_loss,
    target_free_terms,
    trajectory_loss,
    view_consistency,
)
from jointpose.model.loading import FORMAT, LATEST_FILE, LoadedModel, known_layout, pose_weights
from jointpose.model.predict import configured_step
from jointpose.model.temporal import TemporalModel, build_model
from jointpose.safeio import atomic_path, atomic_write, check_limit, is_finite_number
from jointpose.training.checkpoint import (
    EVALUATION_FILE,
    atomic_save,
    prune_epochs,
    rng_state,
    run_environment,
    set_rng_state,
)
from jointpose.training.config import (
    TrainConfig,
    idle_warnings,
    model_args,
    saved_weights,
    tested_on_training_people,
)
from jointpose.training.distributed import (
    DistContext,
    global_mean,
    reduce_sums,
    wrap_model,
)
from jointpose.training.resume import check_compatible, resume_file, resumed_checkpoint, rows_of_numbers
from jointpose.training.run_data import load_run_data, training_fingerprint, training_windows, unlabelled_windows

BN_MOMENTUM_START, BN_MOMENTUM_END = 0.1, 0.001


class Trainer:
    """Owns the models, optimiser and data of one run; ``fit()`` trains to the last epoch."""

    def __init__(self, config: TrainConfig, dist: DistContext | None = None) -> None:
        """Load the data, build the model and optimiser, or restore them with ``config.resume``.

        Args:
            config: the run's configuration (validated by :class:`TrainConfig` itself).
            dist: the process context under torchrun (default: one process on ``config.device``).

        Raises:
            JointposeError: missing or malformed data, a run folder that already holds a run
                (without ``resume``), a resumed run whose settings differ, or a model too
                large for the device's memory.
        """
        if not isinstance(config, TrainConfig):
            raise JointposeError(
                "config must be a TrainConfig (e.g. TrainConfig(data_dir=...)), got {kind}",
                fields=("config",),
                kind=type(config).__name__,
            )
        if dist is not None and not isinstance(dist, DistContext):
            raise JointposeError(
                "dist must be a DistContext or None, got {kind}", fields=("dist",), kind=type(dist).__name__
            )
        if dist is None or dist.is_main:
            for warning in [tested_on_training_people(config), *idle_warnings(config)]:
                if warning is not None:
                    warnings.warn(warning, stacklevel=2)
        caller = rng_state()  # seeding the run leaves the caller's random streams as they were
        try:
            with memory_guard(config):
                self._build(config, dist)
        finally:
            set_rng_state(caller)

    def _build(self, config: TrainConfig, dist: DistContext | None) -> None:
        resumed = resumed_checkpoint(config)
        # An unset rate, dropout or set of loss weights of a resumed run is the run's own,
        # not today's default.
        run = (
            {}
            if resumed is None
            else {
                "lr": resumed["config"]["lr"],
                "dropout": resumed["model_args"]["dropout"],
                "weights": saved_weights(resumed["config"]),
                "body_scale": resumed["config"].get("body_scale") or 0.0,
                "normalization": resumed["config"].get("normalization") or "screen",
                "average_last": resumed["config"].get("average_last") or 0,
            }
        )
        # The epochs a resumed run was started for (its checkpoint's), None for a new run.
        self.planned_epochs: int | None = None if resumed is None else resumed["config"].get("epochs")
        self.config = config = config.resolved(**run)
        self.dist = dist or DistContext.single(config.device)
        self.device = self.dist.device
        self.folder = Path(config.checkpoint_dir)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)  # unused by training, but saved in every checkpoint: the same bytes

        data = load_run_data(config)
        self.config = config = data.config
        self.train_data, self.test_data, self.unlabelled_data = data.train, data.test, data.unlabelled
        self.training_data = training_fingerprint(self.train_data, self.unlabelled_data)
        self.model_args = model_args(config, self.train_data.num_keypoints)
        with torch.device("meta"):  # counted without memory or random draws
            size = sum(p.numel() for p in build_model(self.model_args).parameters())
        check_limit("parameters", size, "the model's parameters (-ch, -arc)")
        self.model = build_model(self.model_args, strided=True).to(self.device)
        # Built once (not per validation) so that no RNG draw happens between checkpoints.
        self.eval_model = build_model(self.model_args).to(self.device)
        # Stochastic weight averaging: the mean of the weights at the end of the last epochs.
        self.averaged = AveragedModel(self.model, use_buffers=True) if config.average_last else None
        self.trajectory_model = None
        params = list(self.model.parameters())
        if config.trajectory:
            self.trajectory_args = dict(self.model_args, num_joints_out=1)
            self.trajectory_model = build_model(self.trajectory_args, strided=True).to(self.device)
            params += list(self.trajectory_model.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr, amsgrad=True)
        # fp16 needs loss scaling: small gradients would flush to zero, and a step whose
        # gradients overflowed must be skipped, not applied. A no-op for fp32 and bf16.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.loss_fn = JointAwareLoss(config.loss_weights)
        self.windows = self.training_windows()
        self.unlabelled_windows, lengths = unlabelled_windows(
            config, self.train_data, self.unlabelled_data, self.model.receptive_field(), self.dist.world_size
        )
        self.reference_lengths = None if lengths is None else lengths.to(self.device)
        if len(self.windows.singles) < 2 * self.dist.world_size:  # batch norm: two frames per process
            raise JointposeError(
                "{0} {path}: {frames} training frames in {subjects}; training needs at least {needed}",
                fields=("data_dir",),
                path=config.data_dir,
                frames=len(self.windows.singles),
                subjects=",".join(config.subjects_train),
                needed=2 * self.dist.world_size,
            )
        self.epoch, self.lr, self.history = 0, config.lr, []
        self.step_log: list[dict[str, float]] = []  # per optimiser step, with --log-steps
        if self.dist.distributed:
            # Every rank built the same weights from one seed; dropout masks differ by rank.
            torch.manual_seed(config.seed + self.dist.rank)
        if resumed is not None:
            self._resume(resumed)
        self.train_model = wrap_model(self.model, self.dist, sync_bn=config.sync_bn, compile=config.compile)
        self.train_trajectory = (
            wrap_model(self.trajectory_model, self.dist, sync_bn=config.sync_bn, compile=config.compile)
            if self.trajectory_model is not None
            else None
        )
        # The run's own random streams (dropout draws from torch's global one), restored by fit
        # and the caller's given back after it: what the caller draws, or another Trainer
        # trains, between construction and fit changes nothing, and the run changes nothing of theirs.
        self.rng = rng_state()

    def training_windows(self, epoch: int | None = None) -> MixedWindows:
        """The run's training windows (:func:`~jointpose.training.run_data.training_windows`): of
        the data as loaded, or of ``epoch``'s augmented bodies and cameras."""
        return training_windows(self.config, self.train_data, self.model.receptive_field(), epoch)

    @property
    def input_layout(self) -> str | None:
        """The 2D the run trains on, as its checkpoints record it (``data build --input-layout``'s
        name, or a detector's own order), None where it cannot be recorded."""
        layout = self.train_data.input_layout
        return layout if known_layout(layout) else None

    def _resume(self, ckpt: dict[str, Any]) -> None:
        """Continue the run in ``ckpt`` (:func:`resume_file`'s): weights, optimiser, epoch, history, RNG."""
        latest = resume_file(self.folder)
        check_compatible(ckpt, self.model_args, self.config, latest, self.input_layout, self.training_data)
        for name in ("history", "step_log"):  # written back to log.csv and the next checkpoint
            if not rows_of_numbers(ckpt.get(name, [])):
                raise JointposeError(f"{latest}: cannot resume from it ('{name}' is not a list of rows of numbers)")
        if not (is_finite_number(ckpt.get("lr")) and ckpt["lr"] > 0):
            raise JointposeError(f"{latest}: cannot resume from it ('lr' is not a positive number)")
        try:  # a file of the right format whose parts do not fit: one line, not a traceback
            self.model.load_state_dict(ckpt["model"])
            if self.averaged is not None:
                self.averaged.load_state_dict(ckpt["averaged_model"])
            if self.trajectory_model is not None:
                if ckpt.get("trajectory_model") is None:
                    raise JointposeError(
                        "{0}: {path} has no trajectory model but {1} was given",
                        fields=("resume", "trajectory"),
                        path=latest,
                    )
                self.trajectory_model.load_state_dict(ckpt["trajectory_model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            self.epoch, self.lr, self.history = ckpt["epoch"], ckpt["lr"], list(ckpt["history"])
            self.step_log = list(ckpt.get("step_log", []))
            states = ckpt["rng"]
            if self.dist.rank < len(states):
                set_rng_state(states[self.dist.rank])
            else:  # more processes than the run had: a fresh stream for each new rank
                set_rng_state(states[0])
                torch.manual_seed(self.config.seed + self.dist.rank)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise JointposeError(f"{latest}: cannot resume from it ({type(exc).__name__}: {first_line(exc)})") from None
        self._move_average()
        then, now = ckpt.get("environment"), run_environment(self.device)
        if isinstance(then, dict) and then != now and self.dist.is_main:

            def described(env: dict[str, Any]) -> str:
                return f"torch {env.get('torch')}, {env.get('threads')} CPU thread(s), {env.get('device')}"

            print(
                f"note: the run so far trained with {described(then)}; it goes on with {described(now)}, so it "
                "matches an uninterrupted run only as closely as runs with another thread count do"
            )

    def _move_average(self) -> None:
        """Restart the weights' average when a larger ``-e`` moved the averaged epochs (the last
        ``average_last`` of the run's epochs) past those the checkpoint averaged: the mean
        of epochs outside the new window would be scored and exported as the run's weights.
        The new window's epochs already past cannot be recovered; the mean starts with the next
        epoch, and a note says which epochs it covers."""
        planned, average = self.planned_epochs, self.config.average_last
        # A smaller -e moves the window earlier: the epochs averaged so far all lie within it.
        if self.averaged is None or planned is None or planned >= self.config.epochs:
            return
        if int(self.averaged.n_averaged) == 0 or self.epoch >= self.config.epochs:
            return
        self.averaged.n_averaged.zero_()
        start, first = max(self.config.epochs - average + 1, self.epoch + 1), max(planned - average + 1, 1)
        dropped = f"epochs {first}-{self.epoch}" if first < self.epoch else f"epoch {self.epoch}"
        if self.dist.is_main:
            print(
                f"note: -e {self.config.epochs} moves the averaged epochs (the last {average}); the mean of "
                f"{dropped} is dropped and restarts at epoch {start}"
            )

    def fit(self, until_epoch: int | None = None) -> dict[str, Any] | None:
        """Train from the current epoch to ``config.epochs``, saving a checkpoint every epoch.

        Args:
            until_epoch: stop after saving this epoch, as an interruption would, without the
                final evaluation; ``resume`` continues the same schedule.

        Returns:
            The final evaluation's summary (per action, per test subject when there are
            several, and average; millimetres), also written to ``evaluation.json`` in the
            checkpoint folder; None when stopped early.
        """
        config = self.config
        if until_epoch is not None and (
            isinstance(until_epoch, bool) or not isinstance(until_epoch, numbers.Integral) or until_epoch < 1
        ):
            raise JointposeError(f"until_epoch must be an epoch number >= 1, got {until_epoch!r}")
        stop = config.epochs if until_epoch is None else min(until_epoch, config.epochs)
        if self.dist.is_main and self.epoch > config.epochs:
            print(
                f"note: the run is at epoch {self.epoch}, past -e {config.epochs}: nothing to train; "
                f"its epoch {self.epoch} is evaluated"
            )
        if self.dist.is_main:
            print(
                f"Training {len(self.train_data.sequences)} views, "
                f"{self.windows.singles.entries(config.augment)} target frames per epoch; "
                f"receptive field {self.model.receptive_field()} frames; "
                f"{sum(p.numel() for p in self.model.parameters()):,} parameters; device {self.device}"
            )
            if self.unlabelled_data is not None:
                print(
                    f"Unlabelled: {len(self.unlabelled_data.sequences)} views, "
                    f"{self.unlabelled_windows.num_target_frames} frames, after {config.warmup_unlabeled} "
                    "labelled-only epoch(s)"
                )
        caller = rng_state()
        set_rng_state(self.rng)
        try:
            self._train_until(stop)
        finally:
            self.rng = rng_state()
            set_rng_state(caller)
        if not self.dist.is_main or self.epoch < config.epochs:
            return None
        with memory_guard(config, evaluating=True):
            return self.final_evaluation()

    def _train_until(self, stop: int) -> None:
        """Train and save each epoch up to ``stop``."""
        config = self.config
        while self.epoch < stop:
            momentum = bn_momentum(
                self.epoch,
                config.epochs,
                self.windows.steps_per_epoch(config.batch_size, self.dist.world_size, augment=config.augment),
                floor=config.bn_floor,
            )
            for model in filter(None, (self.model, self.trajectory_model)):
                model.set_bn_momentum(momentum)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
            # Constraint terms ramp up linearly over the first `warmup` share of the epochs.
            ramp = config.warmup * config.epochs
            self.loss_fn.constraint_scale = min(1.0, (self.epoch + 1) / ramp) if ramp > 0 else 1.0
            start = time.perf_counter()
            with memory_guard(config):
                terms = self.train_one_epoch()
            self.check_diverged(terms)
            seconds = time.perf_counter() - start
            self.epoch += 1
            self.lr *= config.lr_decay
            if self.averaged is not None and self.epoch > config.epochs - config.average_last:
                self.averaged.update_parameters(self.model)
            row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds, **terms}
            rng = self.dist.gather_rng_states(rng_state())  # collective: every rank takes part
            if self.dist.is_main:
                with memory_guard(config, evaluating=True):
                    row["val_p1"] = self.quick_validation()
                self.history.append(row)
                self.save(rng)
                print(
                    f"epoch {self.epoch:3d}  {seconds:6.1f} s  train mpjpe {1000 * terms['mpjpe']:7.2f} mm  "
                    f"val P1 (no flip) {row['val_p1']:7.2f} mm"
                )
            self.dist.barrier()

    def check_diverged(self, terms: dict[str, float]) -> None:
        """Stop, before this epoch's checkpoint is written, when the epoch's loss or a weight or
        batch-norm statistic is no longer finite (the training diverged): the files of the last
        good epoch stay as they are."""
        models = list(filter(None, (self.model, self.trajectory_model)))
        tensors = [t for model in models for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        finite = bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
        if not finite or not all(math.isfinite(value) for value in terms.values()):
            raise JointposeError(
                f"training diverged in epoch {self.epoch + 1}: its loss or a weight is no longer finite; "
                "train again with a lower learning rate or smaller loss weights (or in fp32)"
            )

    def train_one_epoch(self) -> dict[str, float]:
        """One pass over the training windows (chunks drawn beside them from their own shuffle);
        returns frame-weighted mean loss terms."""
        config, dist = self.config, self.dist
        if config.redrawn_each_epoch:
            self.windows = self.training_windows(self.epoch)
        self.train_model.train()
        if self.train_trajectory is not None:
            self.train_trajectory.train()
        # Summed on the training device: no device-to-host copy (and wait) per step.
        sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64, device=self.device))
        epoch = dict(augment=config.augment, rank=dist.rank, world_size=dist.world_size)
        steps = self.windows.batches(config.batch_size, config.seed, self.epoch, **epoch)
        n_steps = self.windows.steps_per_epoch(config.batch_size, dist.world_size, augment=config.augment)
        unlabelled = None
        if self.unlabelled_windows is not None and self.epoch >= config.warmup_unlabeled:
            # As many unlabelled target frames as labelled ones in every step, from their own
            # shuffles (streams 2 and 3), drawn afresh every epoch.
            unlabelled = self.unlabelled_windows.batches(
                config.batch_size, config.seed, self.epoch, steps=n_steps, stream=2, **epoch
            )
        bar = tqdm(
            steps,
            total=n_steps,
            leave=False,
            desc=f"epoch {self.epoch + 1}/{config.epochs}",
            disable=not (config.progress and dist.is_main),
        )
        for batch in bar:
            semi = None if unlabelled is None else next(unlabelled)
            inputs = batch.windows.to(self.device, non_blocking=True)
            n_labelled = len(inputs)
            if semi is not None:  # one forward pass: batch norm sees labelled and unlabelled alike
                inputs = torch.cat([inputs, semi.windows.to(self.device, non_blocking=True)])
            with dist.autocast(config.precision):
                pred = self.train_model(inputs, groups=self._dropout_groups(batch, semi))
            pred = pred.reshape(len(inputs), -1, 3).float()
            frame_share = _frame_share(batch, dist.world_size)
            total, terms = self.step_loss(pred[:n_labelled], batch, frame_share, dist.world_size)
            if self.train_trajectory is not None:
                with dist.autocast(config.precision):
                    traj = self.train_trajectory(inputs).reshape(len(inputs), 1, 3).float()
                target_traj = batch.trajectory.to(self.device)[:, None]
                terms["trajectory"] = trajectory_loss(traj[:n_labelled], target_traj)
                total = total + terms["trajectory"] * frame_share
                terms["total"] = terms["total"] + terms["trajectory"]
            if semi is not None:
                semi_total, semi_terms = self.unlabelled_loss(pred[n_labelled:], traj[n_labelled:], semi)
                total = total + semi_total * _frame_share(semi, dist.world_size)
                terms.update(semi_terms)
                terms["total"] = terms["total"] + semi_total.detach()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            frames = n_labelled
            for name, value in terms.items():
                sums[name] += value.detach().double() * frames
            sums["_frames"] += frames
            if config.log_steps:
                self.step_log.append(
                    {
                        "epoch": self.epoch + 1,
                        "step": len(self.step_log) + 1,
                        "total": global_mean(terms["total"].detach(), frames, dist),
                        "mpjpe": global_mean(terms["mpjpe"].detach(), frames, dist),
                    }
                )
        totals = reduce_sums(sums, dist)
        frames = float(totals.pop("_frames"))
        return {name: float(value) / frames for name, value in totals.items()}

    def _dropout_groups(self, batch: MixedBatch, unlabelled: MixedBatch | None = None) -> torch.Tensor | None:
        """Dropout-mask labels giving each chunk's windows one mask (every single window its
        own), for ``batch`` and the ``unlabelled`` windows after it, or None when every
        window draws its own mask."""
        batches = [batch] if unlabelled is None else [batch, unlabelled]
        if not self.config.shared_chunk_dropout or all(b.chunks.shape[0] == 0 for b in batches):
            return None
        labels, offset = [], 0
        for part in batches:
            n_chunks, chunk = part.chunks.shape[:2]
            labels.append(offset + chunk_groups(len(part.singles), n_chunks, chunk))
            offset += len(part.singles) + n_chunks
        return torch.cat(labels).to(self.device, non_blocking=True)

    def unlabelled_loss(
        self, pred: torch.Tensor, root: torch.Tensor, batch: MixedBatch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one step's unlabelled windows: the 2D reprojection error of the predicted
        joints (pose + root) plus the bone-length guard (weight ``bone_guard``), the multi-view
        consistency of the batch's view pairs (weight ``multiview``), and with constraints (unless
        ``--no-unlabeled-constraints``) the target-free joint-aware terms at their weights.

        ``pred`` (frames, 17, 3) metres root-relative and ``root`` (frames, 1, 3) metres in
        camera space, singles first. Returns ``(total, unweighted terms)``, each a mean over
        this process's unlabelled frames.
        """
        singles, chunks = batch.singles.to(self.device), batch.chunks.to(self.device)
        keypoints = torch.cat([singles, chunks.reshape(-1, *singles.shape[1:])])
        terms = {
            "reprojection": reprojection_loss(pred, root, batch.intrinsics.to(self.device), keypoints),
            "bone_guard": bone_length_guard(bone_lengths(pred), self.reference_lengths),
        }
        total = terms["reprojection"] + self.config.bone_guard * terms["bone_guard"]
        if batch.pairs is not None:
            n = len(batch.pairs)
            terms["multiview"] = view_consistency(
                pred[:n],
                root[:n],
                pred[n : 2 * n],
                root[n : 2 * n],
                batch.pairs.to(self.device),
                batch.pair_valid.to(self.device),
            )
            total = total + self.config.multiview * terms["multiview"]
        if self.config.constraints and self.config.unlabeled_constraints:
            free = target_free_terms(
                pred[: len(singles)], pred[len(singles) :].reshape(*chunks.shape[:2], *pred.shape[1:])
            )
            total = total + self.loss_fn.weighted_constraints(free)
            terms.update({f"unlabeled_{name}": value for name, value in free.items()})
        return total, terms

    def step_loss(
        self, pred: torch.Tensor, batch: MixedBatch, frame_share: float, world_size: int
    ) -> tuple[torch.Tensor, dict]:
        """Loss of one step: MPJPE over every frame (or the single windows only, with shared
        chunk dropout unless ``chunk_mpjpe``), constraint terms over the chunks; ``terms["total"]`` is their
        weighted sum before the rescaling below (what ``--log-steps`` logs).

        ``pred`` (frames, 17, 3) metres, singles first. Each part is a mean over this
        process's frames (``frame_share``), singles or chunks, rescaled so that the gradient
        averaged across processes equals the gradient of the mean over the global step.
        """
        singles = batch.singles.to(self.device)
        chunks = batch.chunks.to(self.device)
        if len(chunks) == 0:  # the baseline: every frame its own window
            total, terms = self.loss_fn(pred[:, None], singles[:, None])
            for name in TEMPORAL_TERMS:  # one frame a window: no velocity to measure (not 0)
                terms.pop(name, None)
            terms["total"] = total.detach()
            return total * frame_share, terms
        chunk_mpjpe = not self.config.shared_chunk_dropout or self.config.chunk_mpjpe
        position, constraints, terms = mixed_loss(self.loss_fn, pred, singles, chunks, chunk_mpjpe=chunk_mpjpe)
        terms["total"] = (position + constraints).detach()
        position_share = frame_share if chunk_mpjpe else len(singles) * world_size / max(1, batch.global_singles)
        chunk_share = len(chunks) * world_size / batch.global_chunks
        return position * position_share + constraints * chunk_share, terms

    def evaluation_model(self) -> TemporalModel:
        """The full-sequence model holding the current weights, or their mean over the epochs
        averaged so far (``average_last``)."""
        averaged = None if self.averaged is None else self.averaged.state_dict()
        self.eval_model.load_state_dict(pose_weights({"model": self.model.state_dict(), "averaged_model": averaged}))
        return self.eval_model

    def evaluation_settings(self) -> dict[str, Any]:
        """:func:`evaluate_model`'s keywords for the run's inference step on the test data (its
        skeleton fit, filter and alignment with the 2D, as ``jointpose evaluate`` applies a
        saved checkpoint's: :func:`inference_settings`)."""
        config = self.config
        step = LoadedModel(self.eval_model, normalization=config.normalization, **configured_step(config.to_dict()))
        return inference_settings(step, self.test_data, config.dataset)

    def quick_validation(self) -> float:
        """Test-set P1 (mm) without test-time augmentation, for the learning curve."""
        result = evaluate_model(
            self.evaluation_model(),
            self.test_data.sequences,
            flip_test=False,
            extra_metrics=None,
            **self.evaluation_settings(),
        )
        return result.summary["average"]["p1"]

    def final_evaluation(self) -> dict[str, Any]:
        """The last epoch scored as ``jointpose evaluate`` scores it (flip averaging, the
        joint-aware inference step), per action group and, with several test subjects, per
        subject as well; the table is printed."""
        from jointpose.evaluation.plausibility import plausibility_errors

        config = self.config.to_dict()
        step = self.evaluation_settings()
        result = evaluate_model(
            self.evaluation_model(),
            self.test_data.sequences,
            flip_test=self.config.test_time_augmentation,
            by_subject=len({seq.subject for seq in self.test_data.sequences}) > 1,
            extra_metrics=plausibility_errors,
            **step,
        )
        self.final_result = result  # predictions stay available to callers (demo, benchmarks)
        print(format_table(result.summary))
        record = with_provenance(
            result.summary,
            config,
            self.folder,
            self.epoch,
            data_dir=config["data_dir"],
            dataset=config["dataset"],
            keypoints=config["keypoints"],
            subjects=config["subjects_test"],
            actions=config["actions"],
            downsample=config["downsample"],
            test_time_augmentation=config["test_time_augmentation"],
            skeleton_fit=step["skeleton_fit"],
            smooth=step["smooth"],
            align_2d=step["align"],
        )
        with atomic_write(self.folder / EVALUATION_FILE, "w", encoding="utf-8") as handle:
            handle.write(results_json(record))
        return result.summary

    def save(self, rng: list[dict[str, Any]]) -> None:
        """Write ``epoch_NNN.pt`` and replace ``latest.pt`` (atomically), the log and the curve.

        ``rng`` holds every rank's RNG state, so a resumed run continues exactly.
        """
        ckpt = {
            "format": FORMAT,
            "epoch": self.epoch,
            "lr": self.lr,
            "config": self.config.to_dict(),
            "model_args": self.model_args,
            "model": self.model.state_dict(),
            "averaged_model": None if self.averaged is None else self.averaged.state_dict(),
            "trajectory_model": None if self.trajectory_model is None else self.trajectory_model.state_dict(),
            "trajectory_args": getattr(self, "trajectory_args", None),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "history": self.history,
            "step_log": self.step_log,
            "fps": self.train_data.fps,
            "keypoints_symmetry": [list(self.train_data.keypoints_left), list(self.train_data.keypoints_right)],
            "input_layout": self.input_layout,
            "training_data": self.training_data,
            "environment": run_environment(self.device),
        }
        atomic_save(ckpt, self.folder / f"epoch_{self.epoch:03d}.pt")
        atomic_save(ckpt, self.folder / LATEST_FILE)
        prune_epochs(self.folder, self.config.keep_last)
        write_log(self.history, self.folder / "log.csv", ("epoch", "lr", "seconds", *TERMS))
        if self.config.log_steps:
            write_log(self.step_log, self.folder / "steps.csv")
        plot_learning_curve(self.history, self.folder / "learning_curve.png")


@contextmanager
def memory_guard(config: TrainConfig, evaluating: bool = False) -> Iterator[None]:
    """Turn an allocation failure (torch on CPU or CUDA, numpy) into a :class:`JointposeError`
    naming what to change: the flags that size the model and a step, or, ``evaluating`` the
    test sequences (each predicted whole), the device; any other error passes unchanged."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not out_of_memory(exc):
            raise
        if evaluating:
            raise JointposeError(
                "out of memory predicting the test sequences (each whole): the epochs saved in {path} stay; "
                "score one with jointpose evaluate on a device with more memory ({0}), or lower {1} or {2}",
                fields=("device", "channels", "architecture"),
                path=config.checkpoint_dir,
            ) from None
        raise JointposeError(
            "out of memory: lower {0} ({batch} target frames a step), {1} or {2}, or the receptive field ({3}), "
            "or choose a device with more memory ({4})",
            fields=("batch_size", "chunk", "channels", "architecture", "device"),
            batch=config.batch_size,
        ) from None


def bn_momentum(epoch: int, epochs: int, steps_per_epoch: int, floor: bool = True) -> float:
    """Batch-norm running-statistics momentum for ``epoch`` (0-based): VideoPose3D's decay from
    0.1 to 0.001 over the run, but never below 1 / ``steps_per_epoch`` (``floor=False``, the
    ``--no-bn-floor`` flag: VideoPose3D's schedule exactly).

    At 0.001 the running statistics average over the last ~1000 steps. On Human3.6M (about
    3,000 steps per epoch, every frame twice) that is under an epoch and the floor never binds; on a small
    dataset (say 40 steps per epoch) it would be most of the run, so evaluation would
    normalise with statistics of long-gone weights. The floor keeps them within about an
    epoch (docs/method.md, "Batch-norm statistics on small datasets").
    """
    decayed = BN_MOMENTUM_START * float(np.exp(-epoch / epochs * np.log(BN_MOMENTUM_START / BN_MOMENTUM_END)))
    if not floor:
        return decayed
    return min(BN_MOMENTUM_START, max(decayed, 1.0 / max(1, steps_per_epoch)))


def mixed_loss(
    loss_fn: JointAwareLoss, pred: torch.Tensor, singles: torch.Tensor, chunks: torch.Tensor, chunk_mpjpe: bool = True
) -> tuple[torch.Tensor, torch.Tensor | float, dict[str, torch.Tensor]]:
    """Weighted MPJPE and the weighted constraint terms over the chunks.

    ``pred`` (S + K * chunk, 17, 3) metres, the S single windows first; ``singles`` (S, 17, 3)
    and ``chunks`` (K, chunk, 17, 3) their targets. The MPJPE part covers every frame, or
    with ``chunk_mpjpe=False`` the single windows only. Returns ``(mpjpe part, constraint
    part, terms)``, ``terms["mpjpe"]`` being the mean over every frame either way (logged).
    """
    n_single = len(singles)
    _, terms = loss_fn(pred[n_single:].reshape(chunks.shape), chunks)
    weight = loss_fn.weights.mpjpe
    constraints = loss_fn.weighted_constraints(terms)
    single_mpjpe = mpjpe(pred[:n_single], singles) if n_single else pred.sum() * 0.0
    terms["mpjpe"] = (n_single * single_mpjpe + (len(pred) - n_single) * terms["mpjpe"]) / len(pred)
    return weight * (terms["mpjpe"] if chunk_mpjpe else single_mpjpe), constraints, terms


def chunk_groups(n_single: int, n_chunks: int, chunk: int) -> torch.Tensor:
    """Dropout-group labels of a step's windows (singles first): one per single window, one
    shared by the ``chunk`` windows of each chunk."""
    return torch.cat([torch.arange(n_single), n_single + torch.arange(n_chunks).repeat_interleave(chunk)])


def _frame_share(batch: MixedBatch, world_size: int) -> float:
    """This process's share of the step's target frames, times the number of processes."""
    frames = len(batch.singles) + batch.chunks.shape[0] * batch.chunks.shape[1]
    global_frames = batch.global_singles + batch.global_chunks * batch.chunks.shape[1]
    return frames * world_size / global_frames


def write_log(history: list[dict[str, Any]], path: Path, leading: tuple[str, ...] = ()) -> None:
    """One CSV row per entry of ``history`` with every logged value (loss terms in metres),
    the ``leading`` columns first and always there: a value a row lacks (a velocity term of the
    baseline, whose windows hold one frame each) is left empty."""
    if not history:
        return
    columns = list(dict.fromkeys([*leading, *(k for row in history for k in row)]))
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def plot_learning_curve(history: list[dict[str, Any]], path: Path) -> None:
    """Training MPJPE and validation P1 (mm) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [1000 * row["mpjpe"] for row in history], label="train MPJPE")
    ax.plot(epochs, [row["val_p1"] for row in history], label="validation P1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (mm)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=100)
    plt.close(fig)


def train(config: TrainConfig, dist: DistContext | None = None) -> dict[str, Any] | None:
    """Train (or resume) a model as configured; returns the final evaluation summary on rank 0."""
    return Trainer(config, dist).fit()
