"""Temporal filtering of predicted pose sequences (an optional inference step).

A network that lifts every frame from its own window of noisy 2D keypoints leaves some
frame-to-frame jitter in its output, which the velocity and acceleration errors see
directly. :func:`smooth_poses` removes it with a short Gaussian filter along time. It
reads future frames, so it is for offline models only; streaming never uses it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from jointpose.errors import JointposeError

# Gaussian sigma (frames) of the joint-aware inference filter (off); docs/method.md, "Inference: one
# consistent skeleton, optionally a temporal filter", says why.
SMOOTH_DEFAULT = 0.0


def check_sigma(sigma: float, name: str) -> float:
    """``sigma`` (frames) as a float, or a :class:`JointposeError` naming ``name`` when it is
    negative, NaN or infinite."""
    if not 0 <= sigma < math.inf:
        raise JointposeError(f"{name} must be a finite number of frames >= 0, got {sigma}")
    return float(sigma)


def gaussian_kernel(
    sigma: float, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Normalised Gaussian taps of standard deviation ``sigma`` frames, radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (t / sigma) ** 2)
    return taps / taps.sum()


def smooth_poses(poses: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-filter a sequence (frames, ...) along frames; ``sigma`` in frames, 0 = unchanged.

    The ends are extended with copies of the first and last frame, so a constant sequence
    stays constant and the output has as many frames as the input. Units are unchanged.
    """
    if check_sigma(sigma, "smoothing sigma") == 0 or len(poses) < 2:
        return poses
    kernel = gaussian_kernel(sigma, dtype=poses.dtype, device=poses.device)
    radius = (len(kernel) - 1) // 2
    series = poses.reshape(len(poses), -1).T[:, None]  # (channels, 1, frames)
    series = F.pad(series, (radius, radius), mode="replicate")
    return F.conv1d(series, kernel[None, None]).squeeze(1).T.reshape(poses.shape)
