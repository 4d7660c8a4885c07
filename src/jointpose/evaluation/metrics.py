"""Evaluation metrics on pose sequences, per frame, in metres (reported in millimetres).

* Protocol #1, MPJPE: mean Euclidean distance between predicted and true joints.
* Protocol #2, P-MPJPE: MPJPE after aligning each predicted frame to the truth with the
  best similarity transform (rotation, uniform scale, translation; Procrustes). A reflection
  is not a rotation: a mirrored pose keeps its error, as in VideoPose3D's evaluation.
* Protocol #3, N-MPJPE: MPJPE after the least-squares optimal scale of each frame.
* MPJVE: mean joint error of the first temporal difference (velocity), per frame.
* Acceleration error: mean joint error of the second temporal difference, per frame squared.

Every function takes (..., frames, joints, 3) tensors and returns one value per frame
(fewer for the temporal metrics), so sequences can be pooled frame-weighted; numpy arrays
(as ``Lifter.predict`` gives) in give a numpy array out. A frame holding NaN scores NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from jointpose.errors import JointposeError
from jointpose.safeio import float_array

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _arrays_too(metric: Metric) -> Metric:
    """``metric`` on numpy arrays as well: read as tensors, the values returned as an array."""

    @functools.wraps(metric)
    def either(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        if not (isinstance(pred, np.ndarray) or isinstance(target, np.ndarray)):
            return metric(pred, target)
        tensors = (torch.from_numpy(float_array(v, name)) for v, name in ((pred, "pred"), (target, "target")))
        return metric(*tensors).numpy()

    return either


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


@_arrays_too
def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame mean per-joint position error: (..., J, 3) -> (...), metres."""
    _check_pair(pred, target)
    return torch.linalg.vector_norm(pred - target, dim=-1).mean(dim=-1)


@_arrays_too
def p_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame MPJPE (metres) after similarity (Procrustes) alignment of ``pred`` to ``target``."""
    _check_pair(pred, target)
    # A frame holding NaN or infinity scores NaN, as in the other metrics (its SVD would fail).
    bad = ~(torch.isfinite(pred).all(dim=(-1, -2)) & torch.isfinite(target).all(dim=(-1, -2)))[..., None, None]
    errors = mpjpe(procrustes_align(pred.masked_fill(bad, 0.0), target.masked_fill(bad, 0.0)), target)
    return errors.masked_fill(bad[..., 0, 0], float("nan"))


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


@_arrays_too
def n_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame MPJPE (metres) after scaling ``pred`` by the least-squares optimal factor."""
    _check_pair(pred, target)
    numerator = (pred * target).sum(dim=(-1, -2), keepdim=True)
    denominator = (pred * pred).sum(dim=(-1, -2), keepdim=True)
    # Scale-free at any size; a prediction of all zeros stays zeros (there is no scale to find).
    factor = torch.where(denominator > 0, numerator / denominator.masked_fill(denominator == 0, 1.0), 0.0)
    return mpjpe(pred * factor, target)


@_arrays_too
def velocity_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJVE: (..., T, J, 3) -> (..., T - 1), metres per frame."""
    _check_pair(pred, target)
    return mpjpe(torch.diff(pred, dim=-3), torch.diff(target, dim=-3))


@_arrays_too
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
