"""Several people per frame in a detector's file: their detections linked into tracks, and the
track followed chosen (:func:`select_track`).

Detections are linked into tracks frame by frame, to tracks last seen up to ``max_gap`` frames
before, by an optimal one-to-one assignment (as many links as possible, then the smallest total
distance) over the pairs whose distance (between the centroids of the confident keypoints,
divided by the larger bounding-box diagonal) is at most ``max_distance``
(:func:`~jointpose.data.keypoints.load_keypoints`'s ``max_link_distance``). The track kept is
the one with the largest sum over its frames of person score times keypoint bounding-box area
(px^2): most confident, largest and longest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from jointpose.data.detector_files import Detections
from jointpose.data.layouts import LAYOUTS, usable
from jointpose.errors import JointposeError
from jointpose.safeio import frame_ranges, limit


def _boxes(people: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint bounding boxes (P, 4: x0, y0, x1, y1) and centroids (P, 2) of (P, N, 3) people.

    Uses the joints reaching ``threshold`` (all detected joints when none does); NaN for a
    person with no detected joint.
    """
    conf = np.where(np.isfinite(people[..., :2]).all(axis=-1), np.nan_to_num(people[..., 2]), 0.0)
    seen = usable(conf, threshold)
    seen = np.where(seen.any(axis=1, keepdims=True), seen, conf > 0)[..., None]
    xy = people[..., :2]
    lo = np.where(seen, xy, np.inf).min(axis=1)
    hi = np.where(seen, xy, -np.inf).max(axis=1)
    count = seen.sum(axis=1)
    centroid = np.where(seen, xy, 0.0).sum(axis=1) / np.maximum(count, 1)
    empty = count[:, 0] == 0
    boxes = np.where(empty[:, None], np.nan, np.concatenate([lo, hi], axis=1))
    return boxes, np.where(empty[:, None], np.nan, centroid)


def _match(cost: np.ndarray, max_cost: float) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs, each costing at most ``max_cost``: as many as possible,
    then the cheapest in total (``scipy.optimize.linear_sum_assignment``)."""
    allowed = cost <= max_cost
    if not allowed.any():
        return []
    # A disallowed pair costs more than any full set of allowed ones, so it is only taken
    # where nothing allowed is left (and then dropped).
    barrier = (float(cost[allowed].max()) + 1.0) * (min(cost.shape) + 1)
    rows, cols = linear_sum_assignment(np.where(allowed, cost, barrier))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


def _link(
    boxes: list[np.ndarray], centroids: list[np.ndarray], max_gap: int, max_distance: float
) -> list[list[tuple[int, int]]]:
    """Tracks as lists of (frame, person index) pairs, in order of first appearance."""
    tracks: list[list[tuple[int, int]]] = []
    # The tracks seen within the last max_gap frames (the only ones a detection may join), by
    # index into ``tracks``, with their last box, centroid and frame: linking costs the
    # number of detections times the people of max_gap frames, not times every track so far.
    ids, last_frame = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    last_box, last_centroid = np.zeros((0, 4)), np.zeros((0, 2))
    for f in (f for f, centroid in enumerate(centroids) if len(centroid)):
        box, centroid = boxes[f], centroids[f]
        people = np.flatnonzero(np.isfinite(centroid[:, 0]))
        active = f - last_frame <= max_gap
        ids, last_frame, last_box, last_centroid = (
            ids[active],
            last_frame[active],
            last_box[active],
            last_centroid[active],
        )
        scale = np.maximum(_diagonal(last_box)[:, None], _diagonal(box[people])[None])
        cost = np.linalg.norm(last_centroid[:, None] - centroid[None, people], axis=-1) / np.maximum(scale, 1.0)
        pairs = _match(cost, max_distance)
        matched = {p for _, p in pairs}
        for t, p in pairs:
            tracks[ids[t]].append((f, int(people[p])))
        rows = np.array([t for t, _ in pairs], dtype=np.intp)
        source = np.array([people[p] for _, p in pairs], dtype=np.intp)
        last_box[rows], last_centroid[rows], last_frame[rows] = box[source], centroid[source], f
        new = np.array([people[p] for p in range(len(people)) if p not in matched], dtype=np.intp)
        ids = np.concatenate([ids, np.arange(len(tracks), len(tracks) + len(new))])
        tracks += [[(f, int(p))] for p in new]
        last_frame = np.concatenate([last_frame, np.full(len(new), f, dtype=np.int64)])
        last_box, last_centroid = np.concatenate([last_box, box[new]]), np.concatenate([last_centroid, centroid[new]])
    return tracks


def _diagonal(boxes: np.ndarray) -> np.ndarray:
    return np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def _most_confident(detections: Detections, most: int, notes: list[str]) -> Detections:
    """``detections`` with at most ``most`` people per frame, those of the highest person
    scores (linking costs the square of the people per frame); a note names the frames cut."""
    crowded = [f for f, scores in enumerate(detections.scores) if len(scores) > most]
    if not crowded:
        return detections
    keep = [np.argsort(-scores, kind="stable")[:most] for scores in detections.scores]
    notes.append(
        f"kept the {most} highest-scored people of frames {frame_ranges(crowded)} "
        f"(up to {max(len(detections.scores[f]) for f in crowded)}; set JOINTPOSE_MAX_PEOPLE to keep more)"
    )
    return dataclasses.replace(
        detections,
        people=[people[k] for people, k in zip(detections.people, keep)],
        scores=[scores[k] for scores, k in zip(detections.scores, keep)],
    )


def _check_linkable(detections: Detections, path: Path, max_gap: int, max_fill_gap: int | None) -> None:
    """Refuse, before any per-frame work, detections no track can cover: a track joins frames at
    most ``max_gap`` apart, so it lies within one run of detected frames so joined, and the frames
    before or after every such run are more than ``max_fill_gap`` to fill (the check the chosen
    track meets later, :func:`~jointpose.data.detector_files.check_fill_gaps`). Sparse
    detections (one every few hundred frames, each a track of its own) would otherwise cost
    per-frame arrays for the whole span."""
    frames = len(detections.people)
    detected = np.flatnonzero(np.fromiter(map(len, detections.people), dtype=np.int64, count=frames))
    if not len(detected):
        return
    fill = limit("fill_gap") if max_fill_gap is None else max_fill_gap
    cuts = np.flatnonzero(np.diff(detected) > max_gap) + 1
    first, last = detected[np.r_[0, cuts]], detected[np.r_[cuts, len(detected)] - 1]
    outside = np.maximum(first, frames - 1 - last)  # the longer of the stretches before and after a run
    if (outside <= fill).any():
        return
    best = int(np.argmin(outside))
    raise JointposeError(
        f"{path}: no person can be followed through the {frames} frames: detections more than {max_gap} frames "
        f"apart are not linked (max_gap), and the best linked run, frames {first[best]}-{last[best]}, leaves "
        f"{outside[best]} frames in a row before or after it; at most {fill} are filled "
        f"(max_fill_gap, or set JOINTPOSE_MAX_FILL_GAP)"
    )


def select_track(
    detections: Detections,
    path: Path,
    threshold: float,
    max_gap: int,
    max_distance: float,
    notes: list[str],
    max_fill_gap: int | None = None,
) -> np.ndarray:
    """(F, N, 3) keypoints of the track kept (see the module; confidence 0 where it is absent)
    of ``detections``, read from ``path`` (named in messages); a note says which was kept.
    ``threshold``: the confidence of the keypoints that make the boxes; ``max_fill_gap``: the
    most frames in a row the kept track may leave to fill (default: the limit's)."""
    detections = _most_confident(detections, limit("people"), notes)
    frames = len(detections.people)
    _check_linkable(detections, path, max_gap, max_fill_gap)
    boxes, centroids = zip(*(_boxes(people, threshold) for people in detections.people))
    tracks = _link(list(boxes), list(centroids), max_gap, max_distance)
    if not tracks:
        raise JointposeError(f"{path}: no person with a detected joint in any of its {frames} frames")
    weights = []
    for track in tracks:
        box = np.stack([boxes[f][p] for f, p in track])
        score = np.array([detections.scores[f][p] for f, p in track])
        weights.append(float(np.sum(score * (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))))
    best = int(np.argmax(weights))
    f, p = np.array(tracks[best]).T
    out = np.zeros((frames, len(LAYOUTS[detections.layout]), 3))
    out[f] = np.stack([detections.people[i][j] for i, j in zip(f, p)])
    total = sum(len(people) for people in detections.people)
    notes.append(
        f"kept person track {best + 1} of {len(tracks)}: {len(f)} of {frames} frames "
        f"({f.min()}-{f.max()}), score x box area summed over them {weights[best]:.4g} px^2; dropped "
        f"{len(tracks) - 1} other track(s) and {total - len(f)} detection(s)"
    )
    return out
