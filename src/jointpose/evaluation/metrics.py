"""Evaluation metrics on pose sequences, per frame, in metres (reported in millimetres).

* Protocol #1, MPJPE: mean Euclidean distance between predicted and true joints.
* Protocol #2, P-MPJPE: MPJPE after aligning each predicted frame to the truth with the
  best similarity transform (rotation, uniform scale, translation; Procrustes). A reflection
  is not a rotation: a mirrored pose keeps its error, as in VideoPose3D's evaluation.
* Protocol #3, N-MPJPE: MPJPE after the least-squares optimal scale of each frame.
* MPJVE: mean joint error of the first temporal difference (velocity), per frame.
* Acceleration error: mean joint error of the second temporal difference, per frame squared.

Every function takes (..., frames, joints, 3) tensors and returns one value per frame
(fewer for the temporal metrics), so sequences can be pooled frame-weighted.
"""

from __future__ import annotations

import torch

from jointpose.errors import JointposeError


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Predicted and true poses of one shape (..., J, 3): broadcasting would score one pose
    against many."""
    if not (isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor)):
        raise JointposeError(f"pred and target must be tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.shape != target.shape or pred.dim() < 2 or pred.shape[-1] != 3 or pred.shape[-2] == 0:
        raise JointposeError(
            f"pred and target must be poses of one shape (..., joints, 3), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame mean per-joint position error: (..., J, 3) -> (...), metres."""
    _check_pair(pred, target)
    return torch.linalg.vector_norm(pred - target, dim=-1).mean(dim=-1)


def p_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame MPJPE (metres) after similarity (Procrustes) alignment of ``pred`` to ``target``."""
    _check_pair(pred, target)
    return mpjpe(procrustes_align(pred, target), target)


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Best rotation, uniform scale and translation of each frame of ``pred`` onto ``target``.

    (..., J, 3) -> (..., J, 3), in the units of ``target`` (metres here). Computed in float64
    for stable SVDs; degenerate frames (all joints coincident) come out as the target's centroid.
    """
    dtype = pred.dtype
    pred, target = pred.double(), target.double()
    mu_p, mu_t = pred.mean(dim=-2, keepdim=True), target.mean(dim=-2, keepdim=True)
    p, t = pred - mu_p, target - mu_t
    norm_p = torch.linalg.matrix_norm(p).clamp_min(1e-12)[..., None, None]
    norm_t = torch.linalg.matrix_norm(t).clamp_min(1e-12)[..., None, None]
    p, t = p / norm_p, t / norm_t
    u, s, vh = torch.linalg.svd(p.transpose(-1, -2) @ t)
    # Reflection fix: flip the last singular vector where the best orthogonal map is improper.
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    s = torch.cat([s[..., :2], s[..., 2:] * sign[..., None]], dim=-1)
    u = torch.cat([u[..., :2], u[..., 2:] * sign[..., None, None]], dim=-1)
    rotation = u @ vh
    scale = s.sum(dim=-1)[..., None, None] * norm_t / norm_p
    aligned = scale * (pred - mu_p) @ rotation + mu_t
    return aligned.to(dtype)


def n_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame MPJPE (metres) after scaling ``pred`` by the least-squares optimal factor."""
    _check_pair(pred, target)
    numerator = (pred * target).sum(dim=(-1, -2), keepdim=True)
    denominator = (pred * pred).sum(dim=(-1, -2), keepdim=True).clamp_min(1e-12)
    return mpjpe(pred * (numerator / denominator), target)


def velocity_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJVE: (..., T, J, 3) -> (..., T - 1), metres per frame."""
    _check_pair(pred, target)
    return mpjpe(torch.diff(pred, dim=-3), torch.diff(target, dim=-3))


def acceleration_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean acceleration error: (..., T, J, 3) -> (..., T - 2), metres per frame squared."""
    _check_pair(pred, target)
    return mpjpe(torch.diff(pred, n=2, dim=-3), torch.diff(target, n=2, dim=-3))


POSE_METRICS = {
    "p1": mpjpe,
    "p2": p_mpjpe,
    "p3": n_mpjpe,
    "mpjve": velocity_error,
    "accel": acceleration_error,
}
