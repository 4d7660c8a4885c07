"""Frame-rate conversion, linear in time: keypoint tracks, pose sequences and the time grid
that BVH motion shares (:func:`resample_weights`: the first frame kept, the same time span).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from jointpose.errors import JointposeError
from jointpose.safeio import check_fps, check_limit, check_resample

if TYPE_CHECKING:
    from jointpose.data.keypoints import Keypoints2D


def resample_weights(
    count: int, src_fps: float, dst_fps: float, out_count: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear resampling of ``count`` frames at ``src_fps`` to ``dst_fps`` (first frame kept).

    Returns, per output frame, the source frames ``lo`` and ``hi`` and the weight ``w`` of
    ``hi``: ``out = values[lo] + w (values[hi] - values[lo])``. ``out_count`` output frames
    (default: those within the source's time span); later ones hold the last source frame.
    """
    for name, fps in (("src_fps", src_fps), ("dst_fps", dst_fps)):
        if not np.isfinite(fps) or fps <= 0:
            raise JointposeError(f"resampling: {name} must be a positive frame rate, got {fps}")
    last = count - 1
    if out_count is None:
        out_count = int(np.floor(last * dst_fps / src_fps + 1e-9)) + 1
    times = np.minimum(np.arange(out_count) * (src_fps / dst_fps), last)
    times = np.where(np.isclose(times, np.rint(times), rtol=0.0, atol=1e-9), np.rint(times), times)
    lo = np.minimum(np.floor(times).astype(np.intp), last)
    hi = np.minimum(lo + 1, last)
    return lo, hi, times - lo


def resample(values: np.ndarray, src_fps: float, dst_fps: float, out_count: int | None = None) -> np.ndarray:
    """(F, ...) ``values`` at ``src_fps`` resampled linearly in time to ``dst_fps`` (see :func:`resample_weights`)."""
    lo, hi, w = resample_weights(len(values), src_fps, dst_fps, out_count)
    w = w.reshape((-1,) + (1,) * (values.ndim - 1))
    return values[lo] + w * (values[hi] - values[lo])


def resample_keypoints(kp: Keypoints2D, src_fps: float, dst_fps: float) -> Keypoints2D:
    """The sequence at ``dst_fps`` over the same time span (first frame kept), linear in time.

    ``confidence`` is interpolated too; a new frame counts as filled where a source frame it
    draws on was.
    """
    for name, fps in (("src_fps", src_fps), ("dst_fps", dst_fps)):
        check_fps(fps, f"resample_keypoints: {name}")
    check_resample(src_fps, dst_fps, "resample_keypoints")
    check_limit(
        "frames",
        (kp.num_frames - 1) * dst_fps / src_fps + 1,
        f"resample_keypoints: {src_fps:g} -> {dst_fps:g} fps, frames",
    )
    lo, hi, w = resample_weights(kp.num_frames, src_fps, dst_fps)
    xy = kp.xy[lo] + w[:, None, None] * (kp.xy[hi] - kp.xy[lo])
    conf = kp.confidence[lo] + w[:, None] * (kp.confidence[hi] - kp.confidence[lo])
    filled = kp.filled[lo] | (kp.filled[hi] & (w[:, None] > 0))
    note = f"resampled from {src_fps:g} to {dst_fps:g} fps: {kp.num_frames} -> {len(lo)} frames"
    # A switch moves to the first new frame at or after its time.
    switches = np.unique(np.ceil(np.asarray(kp.switches) * dst_fps / src_fps - 1e-9).astype(np.int64))
    switches = switches[(switches > 0) & (switches < len(lo))].tolist()
    return dataclasses.replace(
        kp, xy=xy, confidence=conf, filled=filled, notes=kp.notes + [note], fps=dst_fps, switches=switches
    )


def same_rate(a: float, b: float) -> bool:
    """Whether frame rates ``a`` and ``b`` (fps) are one: within a millionth of ``b``."""
    return abs(a - b) <= 1e-6 * b


def at_rate(kp: Keypoints2D, fps: float, source: float | None, what: str) -> tuple[Keypoints2D, str | None]:
    """``kp`` at ``fps``: resampled from ``source`` fps (default its file's, ``kp.fps``) where that
    differs, with a line saying so (else None); refused, naming ``what`` (the flag or the file's
    key the rate came from), beyond the resampling limit. Without any rate it is taken to be at
    ``fps``. The result's ``fps`` is ``fps``."""
    rate = kp.fps if source is None else source
    if rate is None or same_rate(rate, fps):
        return dataclasses.replace(kp, fps=fps), None
    check_resample(rate, fps, what)
    out = resample_keypoints(kp, rate, fps)
    return out, f"resampled the keypoints from {rate:g} to {fps:g} fps: {out.num_frames} frames"
