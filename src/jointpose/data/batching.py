"""Vectorised training batches: windows of 2D input around chunks of consecutive 3D targets.

All sequences are edge-padded by the receptive field, concatenated into one tensor and
cut into windows with a single gather (``inputs[starts[:, None] + arange(width)]``), so a
batch costs a few tensor operations whatever its size - no per-sample Python loop.

A *chunk* is ``chunk`` consecutive target frames of one sequence; its input window is
``receptive_field + chunk - 1`` frames. ``chunk=1`` reproduces VideoPose3D's training (one
target per window, the strided model); ``chunk >= 3`` feeds temporal losses real
consecutive predictions. An epoch visits every target frame of every view twice, as it is
and mirrored (VideoPose3D's epoch; once without flip augmentation).

:class:`MixedWindows` builds the joint-aware training steps: mostly independent single
windows, as VideoPose3D's (every target frame twice per epoch), plus a share of chunks
for the terms that need consecutive frames. Unlabelled sequences (semi-supervised
training: 2D only) make the same steps, their own 2D at the target frames standing in for
the 3D targets, with each sample's camera intrinsics in input units for the reprojection;
with :class:`ViewPairs` some of them come in pairs, one frame seen through two cameras of
the same recording (multi-view consistency).

:func:`scale_bodies` is the optional body-size augmentation: every training sequence gets a
random body (bone lengths rescaled about the root) and its 2D moves by exactly what the
rescaled joints move on its camera's image.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from jointpose.data.h36m import PoseSequence
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.bones import LIMBS, body_factors, scale_body, swap_limb
from jointpose.geometry.cameras import input_projection

# Body-size augmentation: proportion spread per unit of height spread, as the dataset
# builder draws its subjects (8% overall size, 5% per bone group).
PROPORTION_PER_HEIGHT = 0.05 / 0.08


def _intrinsics(sequence: PoseSequence) -> np.ndarray:
    """The sequence's camera (fx, fy, cx, cy) in its input units, the lens its input keeps
    and its screen units per input unit (:func:`~jointpose.geometry.cameras.input_projection`,
    12 numbers); NaN for a camera without intrinsics (HumanEva-I's built-in ones), which
    nothing can be projected with."""
    camera = sequence.camera
    if camera.focal_length is None or camera.center is None:
        return np.full(12, np.nan)
    return input_projection(camera, sequence.normalization)


def mirror_projection(projection: torch.Tensor) -> torch.Tensor:
    """The projection (..., 12) of :func:`_intrinsics` for the mirrored view (u -> -u) of the
    mirrored scene (X -> -X): cx changes sign, and so does the tangential coefficient that
    is odd in x (p2 in OpenCV's model, p1 in Human3.6M's)."""
    h36m = projection[..., 9] > 0.5
    signs = torch.ones_like(projection)
    signs[..., 2] = -1.0
    signs[..., 7] = torch.where(h36m, -1.0, 1.0)
    signs[..., 8] = torch.where(h36m, 1.0, -1.0)
    return projection * signs


@dataclass
class Batch:
    """Inputs (batch, window, joints_2d, 2) normalised; targets (batch, chunk, 17, 3) metres,
    or for unlabelled windows the 2D inputs at the target frames (batch, chunk, joints_2d, 2)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    trajectory: torch.Tensor | None  # (batch, chunk, 3) root position in camera space, metres; None unlabelled
    indices: torch.Tensor  # (batch,) which chunks these are
    intrinsics: torch.Tensor  # (batch, 12) camera in input units, lens, screen units (mirror_projection)


class ChunkedWindows:
    """Every training chunk of a list of sequences, ready to be gathered into batches.

    ``labelled=False``: the sequences' 3D (if any) is ignored and each chunk's targets are
    its own 2D input frames. Every chunk carries its camera's intrinsics in input units, the
    lens its input keeps and its screen units per input unit
    (:func:`~jointpose.geometry.cameras.input_projection` for the sequence's normalisation).
    ``balance_subjects``: one pass draws every subject as often as the subject with the most
    chunks, whatever its own number of frames (its chunks repeated evenly).
    """

    def __init__(
        self,
        sequences: Sequence[PoseSequence],
        receptive_field: int,
        *,
        chunk: int = 1,
        causal: bool = False,
        keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
        keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
        labelled: bool = True,
        balance_subjects: bool = False,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        if labelled and any(s.poses_3d is None for s in sequences):
            raise ValueError("training sequences need 3D poses")
        self.receptive_field, self.chunk = receptive_field, chunk
        self.window = receptive_field + chunk - 1
        pad = receptive_field // 2
        left_pad, right_pad = (2 * pad, 0) if causal else (pad, pad)

        padded, input_starts, target_starts, sequence_of = [], [], [], []
        input_offset = target_offset = 0
        for index, seq in enumerate(sequences):
            frames = len(seq.keypoints)
            # Short sequences are extended at the end (edge) so that one chunk fits.
            extra = max(0, chunk - frames)
            padded.append(np.pad(seq.keypoints, ((left_pad, right_pad + extra), (0, 0), (0, 0)), mode="edge"))
            starts = np.arange(0, max(frames - chunk, 0) + 1, chunk)
            if starts[-1] + chunk < frames:  # last chunk overlaps its neighbour to reach the end
                starts = np.append(starts, frames - chunk)
            input_starts.append(input_offset + starts)
            target_starts.append(target_offset + starts)
            sequence_of.append(np.full(len(starts), index))
            input_offset += frames + extra + left_pad + right_pad
            target_offset += frames + extra

        def ends_padded(arrays: list[np.ndarray]) -> torch.Tensor:
            """Sequences extended at the end to one chunk and concatenated (float32)."""
            return torch.from_numpy(
                np.concatenate(
                    [np.pad(a, ((0, max(0, chunk - len(a))),) + ((0, 0),) * (a.ndim - 1), mode="edge") for a in arrays]
                ).astype(np.float32)
            )

        self.labelled = labelled
        self.inputs = torch.from_numpy(np.concatenate(padded).astype(np.float32))
        self.targets = ends_padded([s.poses_3d if labelled else s.keypoints for s in sequences])
        self.trajectory = ends_padded([s.trajectory for s in sequences]) if labelled else None
        self.input_starts = torch.from_numpy(np.concatenate(input_starts))
        self.target_starts = torch.from_numpy(np.concatenate(target_starts))
        self.sequence_of = torch.from_numpy(np.concatenate(sequence_of))
        self.intrinsics = torch.from_numpy(np.stack([_intrinsics(s) for s in sequences]).astype(np.float32))
        self.pool = _balanced_pool(sequences, self.sequence_of) if balance_subjects else torch.arange(len(self))
        self.flip_2d = skeleton.flip_permutation(self.inputs.shape[1], keypoints_left, keypoints_right)

    def __len__(self) -> int:
        """Number of chunks."""
        return len(self.input_starts)

    @property
    def num_target_frames(self) -> int:
        """Target frames over all chunks (chunks times chunk length)."""
        return len(self) * self.chunk

    def epoch_order(
        self, seed: int, epoch: int, *, stream: int = 0, length: int | None = None, augment: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shuffled chunk indices and, position by position, whether each is mirrored, for
        one epoch, identical on every process. With ``augment`` every chunk of the pool comes
        twice, as it is and mirrored (VideoPose3D's epoch); ``length`` > one pass appends
        further shuffles."""
        generator = torch.Generator().manual_seed(_mix(seed, epoch, *([stream] if stream else [])))
        entries = self.entries(augment)
        order = torch.randperm(entries, generator=generator)
        while length is not None and len(order) < length:
            order = torch.cat([order, torch.randperm(entries, generator=generator)])
        order = order if length is None else order[:length]
        return self.pool[order % len(self.pool)], order >= len(self.pool)

    def entries(self, augment: bool) -> int:
        """Samples in one epoch: every chunk of the pool, twice (as it is and mirrored) with ``augment``."""
        return 2 * len(self.pool) if augment else len(self.pool)

    def gather(self, indices: torch.Tensor, flip: torch.Tensor | None = None) -> Batch:
        """Build the batch of chunks ``indices``; ``flip`` (bool per chunk) mirrors some of them."""
        window = torch.arange(self.window, device=indices.device)
        inputs = self.inputs[self.input_starts[indices, None] + window]
        target_index = self.target_starts[indices, None] + torch.arange(self.chunk, device=indices.device)
        targets = self.targets[target_index]
        trajectory = None if self.trajectory is None else self.trajectory[target_index]
        intrinsics = self.intrinsics[self.sequence_of[indices]]
        if flip is not None and bool(flip.any()):
            inputs = torch.where(flip[:, None, None, None], skeleton.flip_poses(inputs, self.flip_2d), inputs)
            flip_targets = skeleton.output_flip(targets.shape[-2]) if self.labelled else self.flip_2d
            targets = torch.where(flip[:, None, None, None], skeleton.flip_poses(targets, flip_targets), targets)
            if trajectory is not None:
                trajectory = torch.where(
                    flip[:, None, None], trajectory * trajectory.new_tensor([-1.0, 1.0, 1.0]), trajectory
                )
            intrinsics = torch.where(flip[:, None], mirror_projection(intrinsics), intrinsics)
        return Batch(inputs, targets, trajectory, indices, intrinsics)

    def batches(
        self,
        batch_frames: int,
        seed: int,
        epoch: int,
        *,
        augment: bool = True,
        rank: int = 0,
        world_size: int = 1,
        stream: int = 0,
    ) -> Iterator[tuple[Batch, int]]:
        """Yield ``(batch, global_chunks)`` for one epoch.

        ``batch_frames`` target frames make one optimiser step across all processes; this
        process gets its disjoint share (every ``world_size``-th chunk of the global batch)
        and ``global_chunks`` says how many chunks the whole step holds.
        """
        if len(self) < 2 * world_size:
            # Batch norm needs two per process, and every process must take every step.
            raise ValueError(
                f"{len(self)} training chunks cannot feed {world_size} process(es): need >= {2 * world_size}"
            )
        order, flips = self.epoch_order(seed, epoch, stream=stream, augment=augment)
        bounds = self._step_bounds(batch_frames, world_size, len(order))
        for start, stop in zip(bounds[:-1], bounds[1:]):
            step = order[start:stop]
            mine = step[rank::world_size]
            flip = flips[start:stop][rank::world_size] if augment else None
            yield self.gather(mine, flip), len(step)

    def steps_per_epoch(self, batch_frames: int, world_size: int = 1, *, augment: bool = True) -> int:
        """Optimiser steps in one epoch (every chunk once, or twice with ``augment``)."""
        return len(self._step_bounds(batch_frames, world_size, self.entries(augment))) - 1

    def _step_bounds(self, batch_frames: int, world_size: int, entries: int) -> list[int]:
        """Offsets in an epoch of ``entries`` samples where optimiser steps start: 2 chunks per
        process at least, as batch norm needs (a batch of fewer frames gets them); a last step
        too small for batch norm joins the one before it."""
        per_step = max(2 * world_size, batch_frames // self.chunk)
        bounds = list(range(0, entries, per_step)) + [entries]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2 * world_size:
            del bounds[-2]
        return bounds


# Mirroring the scene (x -> -x in camera space) turns the motion [R | t] between two cameras
# into [M R M | M t], M = diag(-1, 1, 1): these signs, elementwise.
_MIRROR_MOTION = torch.tensor([[1.0, -1.0, -1.0, -1.0], [-1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])


def _balanced_pool(sequences: Sequence[PoseSequence], sequence_of: torch.Tensor) -> torch.Tensor:
    """Chunk indices of one pass in which every subject comes as often as the subject with
    the most chunks (M): a subject of n chunks has each of them floor(M / n) or ceil(M / n)
    times, the extra copies spread evenly over its chunks, M in all."""
    names = sorted({seq.subject for seq in sequences})
    subject = torch.tensor([names.index(seq.subject) for seq in sequences])[sequence_of]
    counts = torch.bincount(subject, minlength=len(names))
    by_subject = torch.argsort(subject, stable=True)
    rank = torch.empty_like(subject)
    rank[by_subject] = torch.arange(len(subject)) - (torch.cumsum(counts, 0) - counts)[subject[by_subject]]
    n, most = counts[subject], counts.max()
    copies = torch.div(most * (rank + 1), n, rounding_mode="floor") - torch.div(most * rank, n, rounding_mode="floor")
    return torch.repeat_interleave(torch.arange(len(subject)), copies)


def views_of_recordings(sequences: Sequence[PoseSequence]) -> dict[tuple[str, str], list[int]]:
    """Each recording (subject, action) with the indices of its views (its sequences)."""
    recordings: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, seq in enumerate(sequences):
        recordings[(seq.subject, seq.action)].append(index)
    return dict(recordings)


def has_several_views(sequences: Sequence[PoseSequence]) -> bool:
    """Whether some recording is seen by two or more cameras (what :class:`ViewPairs` pairs)."""
    return any(len(views) > 1 for views in views_of_recordings(sequences).values())


class ViewPairs:
    """The same frame through another camera of the same recording, for the single windows of
    unlabelled sequences (multi-view consistency, semi-supervised training).

    A recording is a (subject, action); its views are its sequences, synchronised frame by
    frame. For each view the other views and the rigid motion [R | t] from its camera space
    into theirs (from the cameras' extrinsics) are tabulated once, so drawing partners for a
    batch is a few tensor operations.
    """

    def __init__(self, sequences: Sequence[PoseSequence], windows: ChunkedWindows) -> None:
        if windows.chunk != 1:
            raise ValueError(f"view pairs need single windows (chunk 1), got chunk {windows.chunk}")
        frames = torch.tensor([len(s.keypoints) for s in sequences])
        self.frames, self.sequence_of = frames, windows.sequence_of
        self.first = torch.cumsum(frames, 0) - frames  # index of each sequence's first window
        recordings = views_of_recordings(sequences)
        width = max(1, max(len(views) for views in recordings.values()) - 1)
        self.others = torch.full((len(sequences), width), -1, dtype=torch.long)
        self.motions = torch.zeros(len(sequences), width, 3, 4)
        for views in recordings.values():
            for a in views:
                others = [b for b in views if b != a]
                self.others[a, : len(others)] = torch.tensor(others, dtype=torch.long)
                for k, b in enumerate(others):
                    self.motions[a, k] = torch.from_numpy(_camera_motion(sequences[a], sequences[b]))
        self.count = (self.others >= 0).sum(dim=1)
        self.has_partner = (self.count > 0)[windows.sequence_of]  # per window

    def partners(
        self, anchors: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For windows ``anchors`` (each with a partner view): one other view of each, drawn
        at random. Returns (partner windows, [R | t] (P, 3, 4) anchor camera -> partner
        camera, valid (P,) False where the partner's recording ends before the frame)."""
        sequence = self.sequence_of[anchors]
        frame = anchors - self.first[sequence]
        pick = (torch.rand(len(anchors), generator=generator) * self.count[sequence]).long()
        other = self.others[sequence, pick]
        valid = frame < self.frames[other]
        partner = self.first[other] + torch.minimum(frame, self.frames[other] - 1)
        return partner, self.motions[sequence, pick], valid

    def pair(
        self, mine: torch.Tensor, flips: torch.Tensor | None, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Windows ``mine`` of one process's step rearranged into pairs: up to half of them
        (those with a partner view) stay as anchors, the next as many are replaced by their
        partners (mirrored alike), the rest follow. Returns (windows, flips, [R | t] (P, 3,
        4) in the windows' own (possibly mirrored) camera spaces, valid (P,))."""
        ordered = torch.argsort((~self.has_partner[mine]).to(torch.uint8), stable=True)
        mine = mine[ordered]
        flips = None if flips is None else flips[ordered]
        n_pairs = min(len(mine) // 2, int(self.has_partner[mine].sum()))
        anchors = mine[:n_pairs]
        partner, motion, valid = self.partners(anchors, generator)
        windows = torch.cat([anchors, partner, mine[2 * n_pairs :]])
        if flips is not None:
            flips = torch.cat([flips[:n_pairs], flips[:n_pairs], flips[2 * n_pairs :]])
            motion = torch.where(flips[:n_pairs, None, None], motion * _MIRROR_MOTION, motion)
        return windows, flips, motion, valid


def _camera_motion(a: PoseSequence, b: PoseSequence) -> np.ndarray:
    """[R | t] (3, 4) taking camera-space points of ``a``'s camera into ``b``'s (metres)."""
    to_world = a.camera.rotation.as_matrix()
    from_world = b.camera.rotation.inv().as_matrix()
    offset = np.asarray(a.camera.translation) - np.asarray(b.camera.translation)
    return np.concatenate([from_world @ to_world, (from_world @ offset)[:, None]], axis=1).astype(np.float32)


@dataclass
class MixedBatch:
    """One step of single windows and chunks, as one window per target frame (singles first).

    ``windows`` (singles + chunks * chunk, receptive_field, joints_2d, 2) normalised;
    ``singles`` (S, 17, 3) and ``chunks`` (K, chunk, 17, 3) their 3D targets in metres (of
    unlabelled windows: their 2D at the target frames, (S, joints_2d, 2) and (K, chunk, joints_2d, 2));
    ``trajectory`` (S + K * chunk, 3) root positions in camera space, metres (None unlabelled);
    ``intrinsics`` (S + K * chunk, 12) each window's camera (fx, fy, cx, cy) in input units,
    its lens and its screen units per input unit (:func:`mirror_projection`);
    ``global_singles`` / ``global_chunks``: how many the whole step holds across processes;
    ``pairs`` (P, 3, 4): with :class:`ViewPairs`, singles ``[P, 2P)`` show the frames of
    singles ``[0, P)`` through another camera, and ``pairs[i]`` = [R | t] moves a point from
    the camera space of single ``i`` into that of single ``P + i`` (metres); ``pair_valid``
    (P,) False where the other camera's recording is shorter than the frame.
    """

    windows: torch.Tensor
    singles: torch.Tensor
    chunks: torch.Tensor
    trajectory: torch.Tensor | None
    intrinsics: torch.Tensor
    global_singles: int
    global_chunks: int
    pairs: torch.Tensor | None = None
    pair_valid: torch.Tensor | None = None


class MixedWindows:
    """Training steps of ``batch_frames`` target frames: about ``share`` of them in chunks of
    ``chunk`` consecutive frames (for temporal terms), the rest single windows.

    An epoch has as many steps and target frames as VideoPose3D's (``share=0`` is exactly
    its training), so the baseline and the joint-aware model get the same compute per
    epoch. Single windows come from one shuffle of every target frame and chunks from their
    own shuffle, so within one epoch a frame may be a target twice (once alone, once in a
    chunk) or not at all. ``view_pairs``: half of each step's single windows come with the
    same frame through another camera instead of their own draw (:class:`ViewPairs`).
    ``balance_subjects``: every subject drawn as often as the one with the most windows
    (:class:`ChunkedWindows`).
    """

    def __init__(
        self,
        sequences: Sequence[PoseSequence],
        receptive_field: int,
        *,
        chunk: int = 8,
        share: float = 0.0,
        causal: bool = False,
        keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
        keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
        labelled: bool = True,
        view_pairs: bool = False,
        balance_subjects: bool = False,
    ) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"share of frames in chunks must be in [0, 1), got {share}")
        kwargs = dict(
            causal=causal,
            keypoints_left=keypoints_left,
            keypoints_right=keypoints_right,
            labelled=labelled,
            balance_subjects=balance_subjects,
        )
        self.receptive_field, self.chunk, self.share = receptive_field, chunk, share
        self.singles = ChunkedWindows(sequences, receptive_field, chunk=1, **kwargs)
        self.chunks = ChunkedWindows(sequences, receptive_field, chunk=chunk, **kwargs) if share > 0 else None
        if view_pairs and not has_several_views(sequences):
            raise ValueError("view pairs need recordings seen by two or more cameras; every one here has one view")
        self.views = ViewPairs(sequences, self.singles) if view_pairs else None

    @property
    def num_target_frames(self) -> int:
        """Training frames over every view (an epoch takes each as a target twice with flip
        augmentation: ``singles.entries(augment)``)."""
        return self.singles.num_target_frames

    def split(self, batch_frames: int, world_size: int = 1) -> tuple[int, int]:
        """(single windows, chunks) per global step of ``batch_frames`` target frames."""
        if self.chunks is None:
            return batch_frames, 0
        chunks = max(world_size, round(self.share * batch_frames / self.chunk))
        return max(2 * world_size, batch_frames - chunks * self.chunk), chunks

    def steps_per_epoch(self, batch_frames: int, world_size: int = 1, *, augment: bool = True) -> int:
        """Optimiser steps per epoch: the baseline's, whatever the share of chunks."""
        return self.singles.steps_per_epoch(batch_frames, world_size, augment=augment)

    def batches(
        self,
        batch_frames: int,
        seed: int,
        epoch: int,
        *,
        augment: bool = True,
        rank: int = 0,
        world_size: int = 1,
        steps: int | None = None,
        stream: int = 0,
    ) -> Iterator[MixedBatch]:
        """One epoch of steps; this process gets its disjoint share of every step.

        ``steps``: exactly that many steps of the full size, drawn from as many shuffles as
        they need (the unlabelled stream of a semi-supervised step), instead of one pass.
        ``stream``: another shuffle for the same seed and epoch (the single windows draw
        stream ``stream``, the chunks ``stream + 1``).
        """
        if self.chunks is None and steps is None and self.views is None:
            for single, global_singles in self.singles.batches(
                batch_frames, seed, epoch, augment=augment, rank=rank, world_size=world_size, stream=stream
            ):
                yield self._step(single, None, global_singles, 0)
            return
        per_step, chunks_per_step = self.split(batch_frames, world_size)
        length = None if steps is None else steps * per_step
        steps = self.steps_per_epoch(batch_frames, world_size, augment=augment) if steps is None else steps
        order, flips = self.singles.epoch_order(seed, epoch, stream=stream, length=length, augment=augment)
        if self.chunks is not None:
            chunk_order, chunk_flips = self.chunks.epoch_order(
                seed, epoch, stream=stream + 1, length=steps * chunks_per_step, augment=augment
            )
        for i in range(steps):
            step, step_flips = order[i * per_step : (i + 1) * per_step], flips[i * per_step : (i + 1) * per_step]
            mine, mine_flips = step[rank::world_size], step_flips[rank::world_size] if augment else None
            pairs = valid = None
            if self.views is not None:
                generator = torch.Generator().manual_seed(_mix(seed, epoch, stream + 2, i, rank))
                mine, mine_flips, pairs, valid = self.views.pair(mine, mine_flips, generator)
            single = self.singles.gather(mine, mine_flips)
            part = None
            if self.chunks is not None:
                at = slice(i * chunks_per_step, (i + 1) * chunks_per_step)
                mine_flips = chunk_flips[at][rank::world_size] if augment else None
                part = self.chunks.gather(chunk_order[at][rank::world_size], mine_flips)
            batch = self._step(single, part, len(step), chunks_per_step if part is not None else 0)
            yield dataclasses.replace(batch, pairs=pairs, pair_valid=valid)

    def _step(self, single: Batch, part: Batch | None, global_singles: int, global_chunks: int) -> MixedBatch:
        """One step from a batch of single windows and one of chunks (None: no chunks)."""
        if part is None:
            part = Batch(
                single.inputs[:0, : self.receptive_field],
                single.targets.new_zeros(0, self.chunk, *single.targets.shape[2:]),
                None if single.trajectory is None else single.trajectory.new_zeros(0, self.chunk, 3),
                single.indices[:0],
                single.intrinsics[:0],
            )
        return MixedBatch(
            torch.cat([single.inputs, receptive_windows(part.inputs, self.receptive_field)]),
            single.targets[:, 0],
            part.targets,
            None if single.trajectory is None else torch.cat([single.trajectory[:, 0], part.trajectory.reshape(-1, 3)]),
            torch.cat([single.intrinsics, part.intrinsics.repeat_interleave(self.chunk, dim=0)]),
            global_singles,
            global_chunks,
        )


def receptive_windows(inputs: torch.Tensor, receptive_field: int) -> torch.Tensor:
    """Normalised 2D keypoints (chunks, receptive_field + chunk - 1, J, 2) -> (chunks * chunk,
    receptive_field, J, 2).

    One window per target frame, in order, for the strided model (a copy; chunk 1 is a view).
    """
    if inputs.shape[1] == receptive_field:
        return inputs
    windows = inputs.unfold(1, receptive_field, 1)  # (chunks, chunk, J, 2, receptive_field)
    return windows.permute(0, 1, 4, 2, 3).reshape(-1, receptive_field, *inputs.shape[2:])


def _mix(seed: int, epoch: int, *stream: int) -> int:
    """A per-epoch seed from the run seed (distinct epochs or streams -> unrelated shuffles)."""
    return int(np.random.SeedSequence([seed, epoch, *stream]).generate_state(1)[0])


def epoch_rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """Random stream ``stream`` of one epoch of an augmentation (body sizes, cameras): the
    same seed, epoch and stream give the same draws, on every process and on resume."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, stream]))


def scale_bodies(
    sequences: Sequence[PoseSequence], rng: np.random.Generator, spread: float, adult_limbs: float = 0.0
) -> list[PoseSequence]:
    """Every sequence with a random body: its bones rescaled about the root (:func:`moved_bodies`).

    Each sequence draws per-bone factors (:func:`jointpose.geometry.bones.body_factors`: overall
    size with standard deviation ``spread``, bone groups ``spread * PROPORTION_PER_HEIGHT``, left
    and right alike, the limbs' proportions centred ``adult_limbs`` of the way to typical adult ones).
    """
    if not spread > 0:
        raise ValueError(f"scale_bodies: spread must be > 0, got {spread}")
    return moved_bodies(
        sequences,
        lambda poses: scale_body(poses, body_factors(rng, spread, spread * PROPORTION_PER_HEIGHT, adult_limbs)),
        "body_scale",
    )


def mix_limbs(sequences: Sequence[PoseSequence], rng: np.random.Generator, share: float) -> list[PoseSequence]:
    """Sequences whose arms, or legs, move as in other motion (:func:`moved_bodies`): new poses
    from the same people.

    For each sequence, with probability ``share`` its arms, and independently its legs, take
    their motion from a sequence drawn from ``sequences``, from a random frame on (read back
    and forth where it is shorter), relative to the chest or pelvis
    (:func:`jointpose.geometry.bones.swap_limb`), each bone keeping its length.
    """
    if not 0 < share <= 1:
        raise ValueError(f"mix_limbs: share must be in (0, 1], got {share}")

    def change(poses: np.ndarray) -> np.ndarray:
        for limb in LIMBS:
            if rng.random() < share:
                donor = sequences[int(rng.integers(len(sequences)))].poses_3d.astype(np.float64)
                count = len(donor)
                index = (int(rng.integers(count)) + np.arange(len(poses))) % (2 * count)
                poses = swap_limb(poses, donor[np.minimum(index, 2 * count - 1 - index)], limb)
        return poses

    return moved_bodies(sequences, change, "limb_mix")


def moved_bodies(
    sequences: Sequence[PoseSequence],
    change: Callable[[np.ndarray], np.ndarray],
    setting: str,
) -> list[PoseSequence]:
    """Every sequence with its joints moved by ``change(poses)`` (called once per sequence, in
    order, with its (frames, 17, 3) camera-space poses in metres, root on its
    trajectory; the root must stay), and its 2D moved to match.

    The 3D poses become the changed ones, root-relative, and the 2D keypoints (normalised) move
    by the difference between the projections of the changed and the original joints through
    the sequence's camera, lens distortion included, so the input stays what the camera sees
    of the new body and keeps its noise. The 2D keypoints must be the 17 joints of the 3D
    poses; ``setting`` names the training setting in the error otherwise.
    """
    out = []
    for seq in sequences:
        if seq.keypoints.shape[1] != skeleton.NUM_JOINTS or seq.poses_3d is None or seq.trajectory is None:
            raise JointposeError(
                "{0} needs 2D keypoints of the {joints} Human3.6M joints and 3D poses; {key} has {count} keypoints",
                fields=(setting,),
                joints=skeleton.NUM_JOINTS,
                key=seq.key,
                count=seq.keypoints.shape[1],
            )
        original = seq.poses_3d.astype(np.float64) + seq.trajectory[:, None]
        changed = change(original)
        camera, norm = seq.camera, seq.normalization
        shift = camera.normalize(camera.project(changed), norm) - camera.normalize(camera.project(original), norm)
        out.append(
            dataclasses.replace(
                seq,
                keypoints=(seq.keypoints + shift).astype(np.float32),
                poses_3d=(changed - changed[:, :1]).astype(np.float32),
            )
        )
    return out
