"""Vectorised training batches: windows of 2D input around chunks of consecutive 3D targets.

All sequences are edge-padded by the receptive field, concatenated into one tensor and
cut into windows with a single gather (``inputs[starts[:, None] + arange(width)]``), so a
batch costs a few tensor operations whatever its size - no per-sample Python loop.

A *chunk* is ``chunk`` consecutive target frames of one sequence; its input window is
``receptive_field + chunk - 1`` frames. ``chunk=1`` reproduces VideoPose3D's training (one
target per window, the strided model); ``chunk >= 3`` feeds temporal losses real
consecutive predictions. An epoch visits every target frame of every view once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import skeleton
from .data import PoseSequence


@dataclass
class Batch:
    """Inputs (batch, window, joints_2d, 2) normalised; targets (batch, chunk, 17, 3) metres."""

    inputs: torch.Tensor
    targets: torch.Tensor
    trajectory: torch.Tensor  # (batch, chunk, 3) root position in camera space, metres
    indices: torch.Tensor  # (batch,) which chunks these are


class ChunkedWindows:
    """Every training chunk of a list of sequences, ready to be gathered into batches."""

    def __init__(
        self,
        sequences: Sequence[PoseSequence],
        receptive_field: int,
        *,
        chunk: int = 1,
        causal: bool = False,
        keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
        keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        if any(s.poses_3d is None for s in sequences):
            raise ValueError("training sequences need 3D poses")
        self.receptive_field, self.chunk = receptive_field, chunk
        self.window = receptive_field + chunk - 1
        pad = receptive_field // 2
        left_pad, right_pad = (2 * pad, 0) if causal else (pad, pad)

        padded, input_starts, target_starts = [], [], []
        input_offset = target_offset = 0
        for seq in sequences:
            frames = len(seq.keypoints)
            # Short sequences are extended at the end (edge) so that one chunk fits.
            extra = max(0, chunk - frames)
            padded.append(np.pad(seq.keypoints, ((left_pad, right_pad + extra), (0, 0), (0, 0)), mode="edge"))
            starts = np.arange(0, max(frames - chunk, 0) + 1, chunk)
            if starts[-1] + chunk < frames:  # last chunk overlaps its neighbour to reach the end
                starts = np.append(starts, frames - chunk)
            input_starts.append(input_offset + starts)
            target_starts.append(target_offset + starts)
            input_offset += frames + extra + left_pad + right_pad
            target_offset += frames + extra

        self.inputs = torch.from_numpy(np.concatenate(padded).astype(np.float32))
        self.targets = torch.from_numpy(np.concatenate(
            [np.pad(s.poses_3d, ((0, max(0, chunk - len(s.poses_3d))), (0, 0), (0, 0)), mode="edge") for s in sequences]
        ).astype(np.float32))
        self.trajectory = torch.from_numpy(np.concatenate(
            [np.pad(s.trajectory, ((0, max(0, chunk - len(s.trajectory))), (0, 0)), mode="edge") for s in sequences]
        ).astype(np.float32))
        self.input_starts = torch.from_numpy(np.concatenate(input_starts))
        self.target_starts = torch.from_numpy(np.concatenate(target_starts))
        self.flip_2d = skeleton.flip_permutation(self.inputs.shape[1], keypoints_left, keypoints_right)

    def __len__(self) -> int:
        """Number of chunks."""
        return len(self.input_starts)

    @property
    def num_target_frames(self) -> int:
        return len(self) * self.chunk

    def epoch_order(self, seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Shuffled chunk indices and flip decisions for one epoch, identical on every process."""
        generator = torch.Generator().manual_seed(_mix(seed, epoch))
        order = torch.randperm(len(self), generator=generator)
        flips = torch.rand(len(self), generator=generator) < 0.5
        return order, flips

    def gather(self, indices: torch.Tensor, flip: torch.Tensor | None = None) -> Batch:
        """Build the batch of chunks ``indices``; ``flip`` (bool per chunk) mirrors some of them."""
        window = torch.arange(self.window)
        inputs = self.inputs[self.input_starts[indices, None] + window]
        target_index = self.target_starts[indices, None] + torch.arange(self.chunk)
        targets = self.targets[target_index]
        trajectory = self.trajectory[target_index]
        if flip is not None and bool(flip.any()):
            inputs = torch.where(flip[:, None, None, None], skeleton.flip_poses(inputs, self.flip_2d), inputs)
            targets = torch.where(flip[:, None, None, None], skeleton.flip_poses(targets), targets)
            trajectory = torch.where(flip[:, None, None], trajectory * torch.tensor([-1.0, 1.0, 1.0]), trajectory)
        return Batch(inputs, targets, trajectory, indices)

    def batches(
        self, batch_frames: int, seed: int, epoch: int, *, augment: bool = True,
        rank: int = 0, world_size: int = 1,
    ) -> Iterator[tuple[Batch, int]]:
        """Yield ``(batch, global_chunks)`` for one epoch.

        ``batch_frames`` target frames make one optimiser step across all processes; this
        process gets its disjoint share (every ``world_size``-th chunk of the global batch)
        and ``global_chunks`` says how many chunks the whole step holds.
        """
        order, flips = self.epoch_order(seed, epoch)
        bounds = self._step_bounds(batch_frames, world_size)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            step = order[start:stop]
            mine = step[rank::world_size]
            if len(mine) == 0:
                continue
            flip = flips[mine] if augment else None
            yield self.gather(mine, flip), len(step)

    def steps_per_epoch(self, batch_frames: int, world_size: int = 1) -> int:
        return len(self._step_bounds(batch_frames, world_size)) - 1

    def _step_bounds(self, batch_frames: int, world_size: int) -> list[int]:
        """Chunk offsets where optimiser steps start; a last step too small for batch norm
        (fewer than 2 chunks per process) joins the one before it."""
        per_step = max(1, batch_frames // self.chunk)
        bounds = list(range(0, len(self), per_step)) + [len(self)]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2 * world_size:
            del bounds[-2]
        return bounds


def _mix(seed: int, epoch: int) -> int:
    """A per-epoch seed from the run seed (distinct epochs -> unrelated shuffles)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
