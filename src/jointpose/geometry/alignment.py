"""Aligning predicted poses with the 2D they were lifted from (an inference step).

A network that lifts 2D to 3D places every joint across the image from its whole receptive
field, and on people and motion it never saw it places them worse than the keypoints
themselves say: the keypoint is where the joint is seen. :func:`align_to_rays` keeps what
only the network knows, each joint's depth, filtered in time, and moves each joint across
the image towards the point of its keypoint's ray at that depth:

1. the keypoints' rays (undistorted ``(x - cx) / fx``, ``(y - cy) / fy``) are filtered in
   time with a Gaussian of ``sigma`` frames, which takes out most of a detector's jitter;
2. the root is placed in the camera by least squares on those rays
   (:func:`jointpose.geometry.cameras.root_trajectory`), and its path filtered alike;
3. each joint's depth relative to the root is filtered alike, and its camera-space x and y
   move ``weight`` of the way to ``ray * depth``, where ``depth`` is its depth in the camera.

Only the joints that the keypoints mark themselves move (``joints``: all for Human3.6M-17
2D, the limb joints for 2D converted from a detector's points,
:func:`jointpose.data.layouts.aligned_joints`), each by ``weight`` times its keypoint's
``confidence`` (filtered alike), so an occluded joint the detector only guessed keeps the
network's place; the root is placed on those joints, weighted the same way.

The result is root-relative again. The filters read future frames, so the step is for
offline models only. A frame whose fitted root or a joint lies less than :data:`MIN_DEPTH_M`
in front of the camera (rays that no pose of that shape fits) keeps the network's x and y.

Steps 1 and 2 alone (:func:`root_path`) give a model's root trajectory in the camera
(``Lifter.predict_trajectory``); for a causal model both filters read past frames only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jointpose.errors import JointposeError
from jointpose.geometry.cameras import Camera, keypoint_pixels, normalize_keypoints, root_trajectory
from jointpose.geometry.filters import check_sigma, smooth_poses
from jointpose.safeio import is_finite_number

ALIGN_WEIGHT_DEFAULT = 0.75  # share of the way to the rays; docs/tuning.md, "Aligning with the 2D"
ALIGN_SIGMA_S = 0.08  # the filters' sigma in seconds (4 frames at 50 fps)
CAUSAL_ROOT_SIGMA_S = 0.04  # a causal model's root path filter, past frames only; docs/tuning.md
MIN_DEPTH_M = 0.05  # a joint nearer the camera than this (or behind it) leaves its frame unaligned


def check_weight(weight: float, name: str) -> float:
    """``weight`` as a float in [0, 1], or a :class:`JointposeError` naming ``name``."""
    if isinstance(weight, bool) or not is_finite_number(weight) or not 0.0 <= weight <= 1.0:
        raise JointposeError(f"{name} must be a number in [0, 1], got {weight!r}")
    return float(weight)


def align_to_rays(
    poses: torch.Tensor,
    rays: torch.Tensor,
    weight: float,
    sigma: float,
    joints: Sequence[int] | None = None,
    confidence: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Root-relative poses (frames, J, 3) metres, camera axes, moved ``weight`` (0-1) of the
    way across the image to their keypoints' ``rays`` (frames, J, 2), undistorted normalised
    image points, one per joint; ``sigma`` (frames) filters rays, root path and relative
    depths first (see the module docstring). ``joints``: the joints whose keypoints are the
    joints themselves, the only ones moved and used to place the root (default: all).
    ``confidence`` (frames, J) in [0, 1]: each keypoint's, scaling its joint's share and its
    weight in placing the root (default: 1). Returns root-relative poses like ``poses``."""
    check_weight(weight, "align weight")
    if weight == 0 or len(poses) == 0:
        return poses
    check_sigma(sigma, "align sigma")
    work = poses.detach().to("cpu", torch.float64)
    rays = smooth_poses(torch.as_tensor(rays, dtype=torch.float64), sigma)
    moved = torch.ones(poses.shape[1], dtype=torch.float64)
    if joints is not None:
        moved = torch.zeros_like(moved).index_fill_(0, torch.as_tensor(list(joints), dtype=torch.long), 1.0)
    trust = moved.expand(len(poses), -1)
    if confidence is not None:
        given = torch.as_tensor(confidence, dtype=torch.float64)
        if given.shape != poses.shape[:2]:
            raise JointposeError(
                f"confidence must be (frames, joints) {tuple(poses.shape[:2])}, got {tuple(given.shape)}"
            )
        trust = trust * smooth_poses(given.nan_to_num(0.0).clamp(0.0, 1.0)[..., None], sigma)[..., 0]
    root = torch.from_numpy(_fitted_path(work.numpy(), rays.numpy(), sigma, trust.numpy()))
    depth = smooth_poses(work[..., 2], sigma)  # relative to the root
    absolute = depth + root[:, None, 2]
    seen = rays * absolute[..., None] - root[:, None, :2]
    usable = (absolute.amin(dim=1) > MIN_DEPTH_M) & (root[:, 2] > MIN_DEPTH_M) & torch.isfinite(seen).all(dim=(1, 2))
    share = torch.where(usable, weight, 0.0)[:, None, None] * trust[..., None]
    xy = share * torch.nan_to_num(seen) + (1 - share) * work[..., :2]
    out = torch.cat([xy, depth[..., None]], dim=-1)
    return (out - out[:, :1]).to(poses.device, poses.dtype)


def root_path(
    poses: np.ndarray,
    rays: np.ndarray,
    sigma: float,
    weights: np.ndarray | None = None,
    *,
    causal: bool = False,
) -> np.ndarray:
    """The root's camera-space path (frames, 3) in metres that puts root-relative ``poses``
    (frames, J, 3) metres onto their keypoints' ``rays`` (frames, J, 2), undistorted normalised
    image points: the rays filtered in time with a Gaussian of ``sigma`` frames, the root placed
    on them by least squares (:func:`~jointpose.geometry.cameras.root_trajectory`; ``weights``
    (frames, J) weigh the joints), and its path filtered alike; with ``causal`` both filters
    read past frames only (:func:`~jointpose.geometry.filters.smooth_poses`). ``sigma`` 0 gives
    the per-frame fit, whose depth takes each frame's keypoint noise many times over (the
    body's size in the image sets it)."""
    check_sigma(sigma, "root path sigma")
    rays = smooth_poses(torch.as_tensor(np.asarray(rays, dtype=np.float64)), sigma, causal=causal).numpy()
    return _fitted_path(poses, rays, sigma, weights, causal=causal)


def _fitted_path(
    poses: np.ndarray, filtered_rays: np.ndarray, sigma: float, weights: np.ndarray | None, *, causal: bool = False
) -> np.ndarray:
    """:func:`root_path` on rays already filtered: the least-squares root, its path filtered."""
    root = root_trajectory(np.asarray(poses, dtype=np.float64), filtered_rays, weights)
    return smooth_poses(torch.from_numpy(root), sigma, causal=causal).numpy()


def root_sigma(fps: float, causal: bool) -> float:
    """The root path's filter sigma in frames at ``fps`` frames per second: the alignment's
    (:data:`ALIGN_SIGMA_S`) for an offline model, :data:`CAUSAL_ROOT_SIGMA_S` over past frames
    for a causal one."""
    return (CAUSAL_ROOT_SIGMA_S if causal else ALIGN_SIGMA_S) * float(fps)


def rays_of(keypoints: np.ndarray, camera: Camera | None, normalization: str) -> np.ndarray | None:
    """The undistorted image rays (frames, J, 2) of keypoints in a network's input
    ``normalization`` seen by ``camera``; None when the camera has no intrinsics."""
    if normalization == "intrinsics":
        return np.asarray(keypoints, dtype=np.float64)
    if camera is None or camera.focal_length is None or camera.center is None:
        return None
    pixels = keypoint_pixels(np.asarray(keypoints, dtype=np.float64), camera, normalization)
    return normalize_keypoints(pixels, camera, "intrinsics")
