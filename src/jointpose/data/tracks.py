"""One person's 2D track from per-frame detections: left/right swaps repaired, gaps filled.

Left/right repair (:func:`repair_swaps`)
----------------------------------------
Detectors sometimes label a whole body mirrored for a stretch of frames (typically while the
person faces away): every left keypoint jumps to where the right one was and back. A real
movement moves points a little from one frame to the next; a label swap moves every left/right
pair by about the body's width. For each detected frame and the detected frame before it the
repair compares two costs, summed over the left/right pairs and weighted by the smaller
confidence of the four points involved: *keep* (left to left, right to right) and *swap*
(left to right, right to left). A transition is a swap when keep exceeds swap by more than
``min_evidence`` times the summed weights times the body's size (the median RMS distance of
its points from their centroid). Swaps toggle the labelling; the frames whose labelling is
toggled, taken as a whole, are the minority (the detector is right more often than not), and
their pairs are exchanged. A person turning round moves the points continuously, so it
makes no swap; in profile, where left and right nearly coincide, the two costs are close and
nothing is toggled.
"""

from __future__ import annotations

import numpy as np

from jointpose.data.detect import Detections2D
from jointpose.data.keypoints import Keypoints2D, interpolate_gaps
from jointpose.data.layouts import LAYOUT_TITLES, LAYOUTS, to_h36m, usable
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton

MIN_EVIDENCE = 0.1


def side_pairs(names: tuple[str, ...]) -> np.ndarray:
    """(P, 2) indices of the ``l_*``/``r_*`` keypoint pairs of a layout's names."""
    return np.array(
        [
            (i, names.index("r_" + name[2:]))
            for i, name in enumerate(names)
            if name.startswith("l_") and "r_" + name[2:] in names
        ],
        dtype=np.intp,
    )


def swap_transitions(
    xy: np.ndarray, confidence: np.ndarray, pairs: np.ndarray, min_evidence: float = MIN_EVIDENCE
) -> np.ndarray:
    """(F,) True at each frame whose left/right labels are swapped relative to the previous
    detected frame. ``xy`` (F, N, 2) pixels, NaN in frames without a detection; ``confidence``
    (F, N) in [0, 1]; ``pairs`` (P, 2) left/right indices."""
    found = np.isfinite(xy).all(axis=(1, 2))
    out = np.zeros(len(xy), dtype=bool)
    if found.sum() < 2:
        return out
    frames = np.flatnonzero(found)
    points, conf = xy[frames], np.nan_to_num(confidence[frames])
    left, right = points[:, pairs[:, 0]], points[:, pairs[:, 1]]  # (T, P, 2)
    weight = np.minimum(
        np.minimum(conf[1:, pairs[:, 0]], conf[1:, pairs[:, 1]]),
        np.minimum(conf[:-1, pairs[:, 0]], conf[:-1, pairs[:, 1]]),
    )  # (T-1, P)

    def cost(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        return (weight * (np.linalg.norm(a - b, axis=-1) + np.linalg.norm(c - d, axis=-1))).sum(axis=1)

    keep = cost(left[1:], left[:-1], right[1:], right[:-1])
    swap = cost(left[1:], right[:-1], right[1:], left[:-1])
    spread = np.sqrt(((points - points.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean(-1))
    scale = max(float(np.median(spread)), 1e-9)
    out[frames[1:]] = keep - swap > min_evidence * weight.sum(axis=1) * scale
    return out


def repair_swaps(
    xy: np.ndarray, confidence: np.ndarray, pairs: np.ndarray, min_evidence: float = MIN_EVIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo whole-body left/right label swaps (see the module docstring).

    Returns the repaired ``xy`` (F, N, 2) and ``confidence`` (F, N), and the (F,) mask of the
    frames whose pairs were exchanged.
    """
    found = np.isfinite(xy).all(axis=(1, 2))
    toggled = (np.cumsum(swap_transitions(xy, confidence, pairs, min_evidence)) % 2).astype(bool) & found
    if toggled.sum() > (found & ~toggled).sum():
        toggled = found & ~toggled
    order = np.arange(xy.shape[1])
    order[pairs[:, 0]], order[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    xy = np.where(toggled[:, None, None], xy[:, order], xy)
    confidence = np.where(toggled[:, None], confidence[:, order], confidence)
    return xy, confidence, toggled


def keypoints_from_detections(
    detections: Detections2D, *, layout: str = "coco17", confidence_threshold: float = 0.3
) -> Keypoints2D:
    """The Human3.6M-17 track (pixels) of one detected person, ready for a :class:`Lifter`.

    Left/right swaps repaired; frames without the person and joints below
    ``confidence_threshold`` filled by interpolation in time; a joint that is never above it
    keeps the detector's positions where the person was found. ``confidence`` is the
    detector's, converted as :func:`jointpose.data.layouts.to_h36m` does (0 where not found).
    """
    if not 0.0 <= confidence_threshold <= 1.0:
        raise JointposeError(f"--confidence-threshold must lie in [0, 1], got {confidence_threshold}")
    found = detections.found
    if not found.any():
        raise JointposeError(f"video: no person found in any of its {len(found)} frames")
    notes = list(detections.notes)
    xy, conf = detections.points[..., :2], np.where(found[:, None], detections.points[..., 2], 0.0)
    xy, conf, swapped = repair_swaps(xy, conf, side_pairs(LAYOUTS[layout]))
    if swapped.any():
        edges = np.diff(np.concatenate([[0], swapped.astype(np.int8), [0]]))
        notes.append(
            f"repaired left/right swaps in {int(swapped.sum())} frames ({int((edges == 1).sum())} stretch(es))"
        )
    h36m, conf, _ = to_h36m(np.where(found[:, None, None], xy, 0.0), conf, layout, confidence_threshold)
    notes.append(f"converted {LAYOUT_TITLES[layout]} to Human3.6M-17")
    valid = usable(conf, confidence_threshold) & found[:, None]
    never = ~valid.any(axis=0)
    if never.any():
        valid |= never[None] & found[:, None]
        names = ", ".join(skeleton.JOINT_NAMES[j] for j in np.flatnonzero(never))
        notes.append(f"{names}: never above confidence {confidence_threshold}; the detector's positions kept")
    filled = ~valid
    if filled.any():
        notes.append(
            f"filled {int(filled.sum())} low-confidence or missing joints in "
            f"{int(filled.any(axis=1).sum())} frames by interpolation"
        )
    return Keypoints2D(interpolate_gaps(h36m, valid), conf, "video", layout, filled, notes)
