"""Whole-sequence prediction and the joint-aware inference step (temporal filter, alignment
with the 2D, one consistent skeleton) shared by evaluation, training's validation and the Lifter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.alignment import ALIGN_SIGMA_S, align_to_rays
from jointpose.geometry.anatomy import fit_skeleton
from jointpose.geometry.filters import smooth_poses
from jointpose.model.temporal import TemporalModel


def refuse_future_frames(name: str, value: float, causal: bool, model: str) -> None:
    """Refuse a filter (``smooth``) or an alignment with the 2D (``align_2d``) above 0 for a
    causal ``model`` (its path or name): both read future frames, which it must not; refused
    rather than ignored (and recorded as applied)."""
    if causal and value:
        raise JointposeError(
            "{0} reads future frames, which a causal model ({model}) must not; leave it out",
            fields=(name,),
            model=model,
        )


def pad_sequence(keypoints: torch.Tensor, receptive_field: int, causal: bool) -> torch.Tensor:
    """Edge-pad normalised 2D keypoints (frames, J, 2) so that a full-sequence model returns
    one output per input frame.

    Centred models get ``receptive_field // 2`` frames each side; causal ones get
    ``receptive_field - 1`` before the first frame. A sequence shorter than the receptive
    field is padded the same way, so every length >= 1 gives a prediction.
    """
    pad = receptive_field // 2
    left, right = (2 * pad, 0) if causal else (pad, pad)
    index = torch.arange(-left, keypoints.shape[0] + right, device=keypoints.device)
    return keypoints[index.clamp(0, keypoints.shape[0] - 1)]


@torch.no_grad()
def predict(
    model: TemporalModel,
    keypoints: np.ndarray | torch.Tensor,
    *,
    flip_test: bool = True,
    keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
    keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
    root_relative: bool = True,
    segment: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """3D poses (frames, J_out, 3) in metres from normalised 2D keypoints (frames, J, 2).

    ``flip_test`` averages with the prediction for the mirrored input (mirrored back).
    With ``root_relative`` the predicted root is subtracted, so joint 0 is exactly 0.
    ``segment`` bounds the output frames computed at once (each segment reads its own
    receptive field, so results are equal up to float rounding, about 1e-7 m); ``progress`` shows a bar over segments.
    Runs on the model's device; returns a CPU float32 tensor.
    """
    device = model_device(model)
    weight = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    was_training = model.training
    model.eval()
    x = torch.as_tensor(keypoints, dtype=torch.float32 if weight is None else weight.dtype, device=device)
    frames, field = x.shape[0], model.receptive_field()
    x = pad_sequence(x, field, model.causal)[None]
    if flip_test:
        x = torch.cat(
            [x, skeleton.flip_poses(x, skeleton.flip_permutation(x.shape[2], keypoints_left, keypoints_right))]
        )
    step = segment or frames
    starts = tqdm(range(0, frames, step), desc="lifting", unit="segment", disable=not progress, leave=False)
    out = torch.cat([model(x[:, s : min(s + step, frames) + field - 1]) for s in starts], dim=1)
    if flip_test:
        out = (out[0] + skeleton.flip_poses(out[1], skeleton.output_flip(model.num_joints_out))) / 2
    else:
        out = out[0]
    model.train(was_training)
    if root_relative:
        out = out - out[:, :1]
    return out.float().cpu()


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s weights live; the CPU for a model without torch weights (an ONNX runner)."""
    weight = next(model.parameters(), None)
    return weight.device if weight is not None else torch.device("cpu")


def inference_step(
    poses: torch.Tensor,
    *,
    smooth: float,
    skeleton_fit: bool,
    causal: bool = False,
    rays: np.ndarray | torch.Tensor | None = None,
    align: float = 0.0,
    align_sigma: float = 0.0,
    align_joints: Sequence[int] | None = None,
    confidence: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """The joint-aware method's steps after the network, on one predicted sequence (frames,
    17, 3) in metres: the temporal filter (sigma ``smooth`` frames); the alignment with the
    2D, ``align`` (0-1) of the way to the keypoints' ``rays`` (frames, 17, 2) with filters of
    ``align_sigma`` frames, moving ``align_joints`` (default all) by their keypoints'
    ``confidence`` (frames, 17; default 1) (:func:`jointpose.geometry.alignment.align_to_rays`;
    offline models only, skipped without rays); then one consistent skeleton when
    ``skeleton_fit`` (``causal``: bone lengths from past frames only)."""
    (poses,) = inference_steps(
        [poses],
        smooth=smooth,
        skeleton_fit=skeleton_fit,
        causal=causal,
        rays=None if rays is None else [rays],
        align=align,
        align_sigma=align_sigma,
        align_joints=align_joints,
        confidence=None if confidence is None else [confidence],
    )
    return poses


def inference_steps(
    sequences: Sequence[torch.Tensor],
    *,
    smooth: float,
    skeleton_fit: bool,
    causal: bool = False,
    rays: Sequence[np.ndarray | torch.Tensor | None] | None = None,
    align: float = 0.0,
    align_sigma: float = 0.0,
    align_joints: Sequence[int] | None = None,
    confidence: Sequence[np.ndarray | torch.Tensor | None] | None = None,
) -> list[torch.Tensor]:
    """:func:`inference_step` on several predicted sequences, ``rays`` and ``confidence``
    holding one entry (or None) per sequence; the skeleton fit runs on all their frames at
    once, each sequence keeping its own skeleton."""
    poses = []
    for i, sequence in enumerate(sequences):
        sequence = smooth_poses(sequence, smooth)
        seen = None if rays is None else rays[i]
        if align > 0 and seen is not None and not causal and seen.shape[:2] == sequence.shape[:2]:
            weights = None if confidence is None else confidence[i]
            sequence = align_to_rays(sequence, torch.as_tensor(seen), align, align_sigma, align_joints, weights)
        poses.append(sequence)
    if not skeleton_fit or not poses:
        return poses
    frames = [len(sequence) for sequence in poses]
    return list(fit_skeleton(torch.cat(poses), causal=causal, frames=frames).split(frames))


def configured_step(config: dict) -> dict[str, bool | float]:
    """The inference step a run's configuration asks for, as :class:`LoadedModel` holds it:
    ``skeleton_fit``, ``smooth`` (sigma, frames) and ``align_2d`` (0-1)."""
    return {
        "skeleton_fit": uses_skeleton_fit(config),
        "smooth": smoothing_sigma(config),
        "align_2d": alignment_weight(config),
    }


def uses_skeleton_fit(config: dict) -> bool:
    """Whether a run's configuration asks for the consistent-skeleton step at inference."""
    return bool(config.get("constraints")) and bool(config.get("skeleton_fit", True))


def smoothing_sigma(config: dict) -> float:
    """The temporal filter (sigma, frames) a run's configuration asks for at inference: the
    joint-aware method's, for offline models only (the filter reads future frames)."""
    if not config.get("constraints") or config.get("causal"):
        return 0.0
    return float(config.get("smooth", 0.0))


def alignment_weight(config: dict) -> float:
    """How far (0-1) a run's configuration moves its predictions to the 2D at inference: the
    joint-aware method's ``align_2d``, for offline models only (its filters read future
    frames); 0 for the baseline and for runs made before the step existed."""
    if not config.get("constraints") or config.get("causal"):
        return 0.0
    return float(config.get("align_2d", 0.0))


def alignment_sigma(fps: float) -> float:
    """The alignment's filter sigma in frames at ``fps`` frames per second."""
    return ALIGN_SIGMA_S * float(fps)
