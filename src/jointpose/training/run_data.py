"""What a training run reads: its datasets (:func:`load_run_data`) and the windows it trains
on (:func:`training_windows`, with the per-epoch augmentations; :func:`unlabelled_windows` for
semi-supervised training)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from typing import NamedTuple

import numpy as np
import torch

from jointpose.data.batching import MixedWindows, epoch_rng, has_several_views, mix_limbs, scale_bodies
from jointpose.data.h36m import INPUT_LAYOUTS, Dataset, alignment_joints, dataset_kind, load_dataset
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry.anatomy import bone_lengths
from jointpose.model.temporal import receptive_field as receptive_field_of
from jointpose.motion.viewpoints import random_views
from jointpose.training.config import TrainConfig

# Random streams of the per-epoch augmentations; a run's draws depend on them, so they stay fixed.
BODY_SCALE_STREAM, CAMERA_STREAM, LIMB_MIX_STREAM = 0xB0D1, 0xCA3E, 0x319C


class RunData(NamedTuple):
    """A run's configuration (as :func:`load_run_data` settles it) and its datasets."""

    config: TrainConfig
    train: Dataset
    test: Dataset
    unlabelled: Dataset | None


def load_run_data(config: TrainConfig) -> RunData:
    """A run's training, test and unlabelled data, checked against the model they train; the
    configuration returned has no alignment with the 2D where the keypoints mark no joint."""

    def load(subjects: tuple[str, ...], **kwargs: object) -> Dataset:
        """Those ``subjects``' recordings of the run's actions, as the run reads them."""
        return load_dataset(
            config.data_dir,
            config.keypoints,
            list(subjects),
            list(config.actions) if config.actions else None,
            downsample=config.downsample,
            normalization=config.normalization,
            dataset=config.dataset,
            **kwargs,
        )

    train = load(config.subjects_train, subset=config.subset)
    if config.random_cameras is not None and train.input_layout not in INPUT_LAYOUTS:
        raise JointposeError(
            "{0} draws the 2D from the 3D joints; -k {keypoints} holds a detector's keypoints in their own "
            "order ({layout}), which the joints cannot give",
            fields=("random_cameras",),
            keypoints=config.keypoints,
            layout=train.input_layout,
        )
    test = load(config.subjects_test)
    # The alignment moves each joint to its own keypoint's ray: all of them where the 2D is
    # the joints, the limbs where it was converted from COCO's or BlazePose's points. Where
    # the keypoints mark no joint, the run records no alignment in its checkpoints.
    if config.align_2d > 0 and alignment_joints(test, config.dataset) == ():
        config = dataclasses.replace(config, align_2d=0.0)
        if test.input_layout not in INPUT_LAYOUTS:  # said: the default aligns
            warnings.warn(
                JointposeWarning(
                    "{0} {name}: a detector's keypoints in their own order ({layout}), none at a joint's index: "
                    "the run has no alignment with the 2D",
                    fields=("keypoints",),
                    name=config.keypoints,
                    layout=test.input_layout,
                ),
                stacklevel=2,
            )
    unlabelled = load(config.subjects_unlabeled, use_3d=False) if config.semi_supervised else None
    # Before any model or window is built: with a receptive field longer than every clip, each
    # window would be mostly edge padding, and a huge one's windows would not fit in memory.
    longest = max(len(s.keypoints) for s in train.sequences)
    if longest < receptive_field_of(config.architecture):
        raise JointposeError(
            "{0} {path}: the longest training sequence has {longest} frames, fewer than the model's receptive "
            "field ({field}); use a smaller {1} or longer clips",
            fields=("data_dir", "architecture"),
            path=config.data_dir,
            longest=longest,
            field=receptive_field_of(config.architecture),
        )
    return RunData(config, train, test, unlabelled)


def training_fingerprint(train: Dataset, unlabelled: Dataset | None) -> str:
    """SHA-256 (hex) of what a run trains on: each training and unlabelled sequence's key,
    camera, 2D as read and 3D poses and root path. Checkpoints record it, so that ``--resume``
    refuses data changed under the run (rebuilt with another seed, or other files)."""
    digest = hashlib.sha256()
    for sequence in [*train.sequences, *(unlabelled.sequences if unlabelled is not None else ())]:
        digest.update(json.dumps([sequence.key, sequence.camera.to_dict()]).encode())
        for array in (sequence.keypoints, sequence.poses_3d, sequence.trajectory):
            digest.update(b"-" if array is None else np.ascontiguousarray(array))
    return digest.hexdigest()


def training_windows(
    config: TrainConfig, data: Dataset, receptive_field: int, epoch: int | None = None
) -> MixedWindows:
    """The training windows of ``data`` for a model of ``receptive_field`` frames: as loaded,
    or with ``epoch`` and body-size or pose augmentation or random cameras on, of that epoch's
    random bodies and mixed limbs seen through that epoch's random cameras (the same for a
    seed and epoch)."""
    sequences = data.sequences
    if epoch is not None and config.body_scale > 0:
        sequences = scale_bodies(
            sequences, epoch_rng(config.seed, epoch, BODY_SCALE_STREAM), config.body_scale, config.adult_limbs
        )
    if epoch is not None and config.limb_mix > 0:
        sequences = mix_limbs(sequences, epoch_rng(config.seed, epoch, LIMB_MIX_STREAM), config.limb_mix)
    if epoch is not None and config.random_cameras is not None:
        sequences = random_views(
            sequences,
            epoch_rng(config.seed, epoch, CAMERA_STREAM),
            config.random_cameras,
            fps=data.fps,
            input_layout=data.input_layout,
        )
    return MixedWindows(
        sequences,
        receptive_field,
        chunk=config.chunk,
        share=config.chunk_share if config.constraints else 0.0,
        causal=config.causal,
        keypoints_left=data.keypoints_left,
        keypoints_right=data.keypoints_right,
    )


def unlabelled_windows(
    config: TrainConfig, labelled: Dataset, data: Dataset | None, receptive_field: int, world_size: int
) -> tuple[MixedWindows | None, torch.Tensor | None]:
    """Semi-supervised training's windows of the unlabelled ``data`` (chunks too where the
    target-free terms apply to them), for a model of ``receptive_field`` frames trained by
    ``world_size`` processes, and the ``labelled`` subjects' mean bone lengths (bones,) m;
    (None, None) without ``-sun``."""
    if data is None:
        return None, None
    joints = dataset_kind(config.dataset).skeleton  # what the model predicts
    symmetry = (tuple(data.keypoints_left), tuple(data.keypoints_right))
    layout = symmetry == (tuple(joints.left), tuple(joints.right)) and data.input_layout == "h36m"
    if data.num_keypoints != joints.num_joints or not layout:
        raise JointposeError(
            "{0} needs 2D keypoints of the {joints} joints the model predicts ({1} {dataset}), in their order "
            "(the reprojection compares them joint by joint); -k {keypoints} has {count} keypoints in the "
            "{layout} layout",
            fields=("subjects_unlabeled", "dataset"),
            joints=joints.num_joints,
            dataset=config.dataset,
            keypoints=config.keypoints,
            count=data.num_keypoints,
            layout=data.input_layout,
        )
    blind = [s.key for s in data.sequences if s.camera.focal_length is None or s.camera.center is None]
    if blind:
        raise JointposeError(
            "{0}: the reprojection needs each camera's intrinsics (focal length, centre); {views} view(s) of "
            "{1} {dataset} have none, first {first}",
            fields=("subjects_unlabeled", "dataset"),
            views=len(blind),
            dataset=config.dataset,
            first=blind[0],
        )
    if config.multiview > 0 and not has_several_views(data.sequences):
        raise JointposeError(
            "{0} needs recordings seen by two or more cameras; every recording of {1} has one view",
            fields=("multiview", "subjects_unlabeled"),
        )
    windows = MixedWindows(
        data.sequences,
        receptive_field,
        chunk=config.chunk,
        share=config.chunk_share if config.constraints and config.unlabeled_constraints else 0.0,
        causal=config.causal,
        keypoints_left=data.keypoints_left,
        keypoints_right=data.keypoints_right,
        labelled=False,
        view_pairs=config.multiview > 0,
        balance_subjects=config.balance_unlabeled,
    )
    if len(windows.singles) < 2 * world_size:
        raise JointposeError(
            "{0}: {frames} unlabelled frames; training needs at least {needed}",
            fields=("subjects_unlabeled",),
            frames=len(windows.singles),
            needed=2 * world_size,
        )
    poses = torch.from_numpy(np.concatenate([s.poses_3d for s in labelled.sequences]))
    return windows, bone_lengths(poses.double()).mean(dim=0).float()
