"""Temporal filtering of predicted pose sequences (an optional inference step).

A network that lifts every frame from its own window of noisy 2D keypoints leaves some
frame-to-frame jitter in its output, which the velocity and acceleration errors see
directly. :func:`smooth_poses` removes it with a short Gaussian filter along time. It
reads future frames, so it is for offline models only; streaming never uses it. Its causal
form, over past frames only, filters a causal model's root path
(:func:`jointpose.geometry.alignment.root_path`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from jointpose.errors import JointposeError
from jointpose.safeio import check_limit, float_array

# Gaussian sigma (frames) of the joint-aware inference filter (off); docs/method.md, "Inference: one
# consistent skeleton, optionally a temporal filter", says why.
SMOOTH_DEFAULT = 0.0
# Taps summed at a time when folding a wide kernel's tails (bounds the memory of a large sigma).
_TAIL_CHUNK = 1 << 16
_CONV_ELEMENTS = 1 << 22  # frames x taps x channels unfolded at once by smooth_poses (32 MB in float64)
_DIRECT_TAPS = 1024  # wider kernels (sigma above about 170 frames) are applied by FFT


def check_sigma(sigma: float, name: str) -> float:
    """``sigma`` (frames) as a float, or a :class:`JointposeError` naming ``name`` when it is
    negative, NaN or infinite, or above the longest sequence allowed (``limit("frames")``,
    ``JOINTPOSE_MAX_FRAMES``): a wider Gaussian is a plain average of the ends."""
    if not 0 <= sigma < math.inf:
        raise JointposeError("{0} must be a finite number of frames >= 0, got {sigma}", fields=(name,), sigma=sigma)
    check_limit("frames", sigma, name)
    return float(sigma)


# Below this sigma (frames) a Gaussian's taps beyond the centre are 0 in float64 (exp(-1/2 / 0.025^2) = 0).
_NARROWEST = 0.025


def gaussian_kernel(
    sigma: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    max_radius: int | None = None,
) -> torch.Tensor:
    """Normalised Gaussian taps of standard deviation ``sigma`` frames, radius ceil(3 sigma).

    With ``max_radius`` (frames, >= 1) and a wider kernel, the taps beyond it are folded into
    the two outermost ones (their sums, computed in float64 a chunk at a time), so the kernel
    has at most ``2 max_radius + 1`` taps. Filtering a sequence of at most ``max_radius``
    frames whose ends are extended with copies of its first and last frame gives the same
    result with it as with the whole kernel: every tap that far out reads an end copy.
    """
    radius = max(1, math.ceil(3 * sigma))
    if sigma < _NARROWEST:  # every tap but the centre's is 0, and t / sigma would overflow
        return torch.arange(-radius, radius + 1, dtype=dtype, device=device).eq(0).to(dtype)
    if max_radius is None or radius <= max_radius:
        t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
        taps = torch.exp(-0.5 * (t / sigma) ** 2)
        return taps / taps.sum()
    t = torch.arange(-max_radius, max_radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (t / sigma) ** 2)
    tail = _gaussian_sum(sigma, max_radius, radius)
    taps[0] = taps[-1] = tail
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def _gaussian_sum(sigma: float, first: int, last: int) -> float:
    """The sum of exp(-t^2 / (2 sigma^2)) over the integers t from ``first`` to ``last`` (float64)."""
    total = 0.0
    for start in range(first, last + 1, _TAIL_CHUNK):
        t = torch.arange(start, min(start + _TAIL_CHUNK, last + 1), dtype=torch.float64)
        total += float(torch.exp(-0.5 * (t / sigma) ** 2).sum())
    return total


def past_half(kernel: torch.Tensor) -> torch.Tensor:
    """The taps of a symmetric ``kernel`` (2 r + 1 taps) over the past and the present frame,
    oldest first (r + 1 taps), normalised again: the causal filter of :func:`smooth_poses`."""
    half = kernel[: (len(kernel) - 1) // 2 + 1]
    return half / half.sum()


def smooth_poses(poses: torch.Tensor, sigma: float, *, causal: bool = False) -> torch.Tensor:
    """Gaussian-filter a sequence (frames, ...) along frames; ``sigma`` in frames, 0 = unchanged.

    The ends are extended with copies of the first and last frame, so a constant sequence
    stays constant and the output has as many frames as the input. Units are unchanged.
    The kernel never reaches further than the sequence's length (:func:`gaussian_kernel`'s
    ``max_radius``), so time and memory grow with the sequence, not with ``sigma``.
    ``causal``: each frame is filtered from itself and earlier frames only (the Gaussian's
    half over the past, normalised again), so no future frame is read; motion comes through
    about 0.8 ``sigma`` frames late. A numpy array (or nested lists) in gives a numpy array out.
    """
    if not isinstance(poses, torch.Tensor):
        return smooth_poses(torch.from_numpy(float_array(poses, "poses")), sigma, causal=causal).numpy()
    if check_sigma(sigma, "smoothing sigma") == 0 or len(poses) < 2:
        return poses
    kernel = gaussian_kernel(sigma, dtype=poses.dtype, device=poses.device, max_radius=len(poses))
    radius = (len(kernel) - 1) // 2
    if causal:
        kernel = past_half(kernel)
    series = poses.reshape(len(poses), -1).T[:, None]  # (channels, 1, frames)
    series = F.pad(series, (radius, 0 if causal else radius), mode="replicate")
    taps = len(kernel)
    if taps > _DIRECT_TAPS:  # a wide kernel: by FFT, in time N log N and memory N
        size = series.shape[-1] + taps - 1
        spectrum = torch.fft.rfft(series, size) * torch.fft.rfft(kernel.flip(0), size)
        out = torch.fft.irfft(spectrum, size)[..., taps - 1 : series.shape[-1]].to(poses.dtype)
    else:  # directly; the convolution unfolds each block's frames times its taps, so blocks bound that memory
        block = _CONV_ELEMENTS // (len(series) * taps) + 1
        parts = [
            F.conv1d(series[..., start : start + block + taps - 1], kernel[None, None])
            for start in range(0, len(poses), block)
        ]
        out = torch.cat(parts, dim=-1)
    return out.squeeze(1).T.reshape(poses.shape)
