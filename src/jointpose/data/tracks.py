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
nothing is toggled. A frame whose left and right points nearly coincide (on average, weighted
as the costs are, closer than ``MIN_SEPARATION`` times the body's size) cannot carry the
labelling from the frame before it to the frame after it: across up to ``MAX_BRIDGE`` such
frames the next frame is compared with the last frame before them (a body turns round over
many frames, not two; BlazePose collapses one frame's shoulders now and then while its
labels flicker), and those frames are compared with it too.

Single-limb swaps (:func:`repair_limb_swaps`)
---------------------------------------------
Detectors also swap one limb's labels alone for a few frames (the legs as they pass each
other, one arm): the left knee and ankle sit where the right ones are and back. Each
keypoint's track is compared with a running median of itself over ``2 max_frames + 1``
detected frames, which follows the labelling of the majority of those frames: a stretch of
up to ``max_frames`` swapped frames (half that at either end of the clip) does not move it,
and smooth movement (legs crossing included) leaves it on the point itself. Per frame and
limb (shoulder-elbow-wrist, hip-knee-ankle), every exchange of a chain's end (the wrist; the
elbow and wrist; the whole arm) is weighed: the distances of its left and right points from
their medians as labelled, against from each other's medians, weighted by the pair's smaller
confidence. The exchange with the largest gain is kept where that gain exceeds
``min_evidence`` times the body's size per exchanged pair (weighted as the costs are). A
stretch of frames with the same exchange is then made only if it also continues the
movement around it better exchanged than as labelled: its first frame is compared with the
two frames before it extrapolated, its last with the two after it. That tells a label swap
(the points jump and jump back) from limbs passing each other fast (they keep their speed),
which a running median alone can mistake for one at low frame rates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import median_filter

from jointpose.data.detect import Detections2D
from jointpose.data.detector_files import track_part
from jointpose.data.keypoints import Keypoints2D, check_confidence_threshold, interpolate_gaps
from jointpose.data.layouts import LAYOUT_TITLES, LAYOUTS, VISIBILITY_THRESHOLD, keep_never_usable, to_h36m, usable
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton

MIN_EVIDENCE = 0.1
CLOSE_CALL = 0.25  # a whole-body repair of this share of the frames or more: its majority is noted
MIN_SEPARATION = 0.3  # left and right points closer than this (body sizes, on average) make a frame undecided
MAX_BRIDGE = 2  # frames: the longest run of undecided frames bridged by comparing across it
MAX_LIMB_SWAP = 5  # frames: the longest single-limb swap repaired (half that at the clip's ends)
LIMB_EVIDENCE = 0.2  # per exchanged pair, in units of the body's size
LIMBS = {"arm": ("shoulder", "elbow", "wrist"), "leg": ("hip", "knee", "ankle")}  # chains, body end first
OUT_OF_VIEW_SHARE = 0.1  # a body part outside the image in this share of the frames found is noted
# Body parts named in that note, head to feet, by their COCO-17 keypoints.
VIEW_PARTS = {
    "head": ("nose", "l_eye", "r_eye", "l_ear", "r_ear"),
    "shoulders": ("l_shoulder", "r_shoulder"),
    "elbows": ("l_elbow", "r_elbow"),
    "wrists": ("l_wrist", "r_wrist"),
    "hips": ("l_hip", "r_hip"),
    "knees": ("l_knee", "r_knee"),
    "ankles": ("l_ankle", "r_ankle"),
}


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


def body_size(points: np.ndarray) -> float:
    """The median over frames of the RMS distance of the points (T, N, 2) from their centroid."""
    spread = np.sqrt(((points - points.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean(-1))
    return max(float(np.median(spread)), 1e-9)


def swap_transitions(
    xy: np.ndarray, confidence: np.ndarray, pairs: np.ndarray, min_evidence: float = MIN_EVIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Where the left/right labels change, frame by frame (see the module docstring).

    ``xy`` (F, N, 2) pixels, NaN in frames without a detection; ``confidence`` (F, N) in
    [0, 1]; ``pairs`` (P, 2) left/right indices. Returns (F,) True at each frame whose labels
    are swapped relative to the frame it is compared with, and (F,) True at the frames that
    carry the labelling on (every detected frame but those in a bridged run of undecided
    frames, which are compared with the frame before the run and carry nothing on).
    """
    found = np.isfinite(xy).all(axis=(1, 2))
    swapped, carries = np.zeros(len(xy), dtype=bool), found.copy()
    if found.sum() < 2:
        return swapped, carries
    frames = np.flatnonzero(found)
    points, conf = xy[frames], np.nan_to_num(confidence[frames])
    left, right = points[:, pairs[:, 0]], points[:, pairs[:, 1]]  # (T, P, 2)
    size = body_size(points)
    pair_conf = np.minimum(conf[:, pairs[:, 0]], conf[:, pairs[:, 1]])  # (T, P)
    apart = (pair_conf * np.linalg.norm(left - right, axis=-1)).sum(axis=1)
    undecided = apart <= MIN_SEPARATION * size * pair_conf.sum(axis=1)  # a frame without confidence too
    edges = np.diff(np.concatenate([[0], undecided.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    short = (starts > 0) & (stops < len(frames)) & (stops - starts <= MAX_BRIDGE)  # with frames either side
    cover = np.zeros(len(frames) + 1, dtype=np.int64)
    np.add.at(cover, starts[short], 1)
    np.add.at(cover, stops[short], -1)
    bridged = np.cumsum(cover)[:-1] > 0
    index = np.arange(len(frames))
    last = np.maximum.accumulate(np.where(~bridged, index, -1))
    reference = np.concatenate([[-1], last[:-1]])  # the last frame before that carries the labelling
    has = reference >= 0
    ref = np.maximum(reference, 0)
    weight = np.minimum(pair_conf, pair_conf[ref])  # the smaller confidence of the four points

    def cost(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        return (weight * (np.linalg.norm(a - b, axis=-1) + np.linalg.norm(c - d, axis=-1))).sum(axis=1)

    keep = cost(left, left[ref], right, right[ref])
    swap = cost(left, right[ref], right, left[ref])
    swapped[frames] = has & (keep - swap > min_evidence * weight.sum(axis=1) * size)
    carries[frames] = ~bridged
    return swapped, carries


def repair_swaps(
    xy: np.ndarray, confidence: np.ndarray, pairs: np.ndarray, min_evidence: float = MIN_EVIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo whole-body left/right label swaps (see the module docstring).

    Returns the repaired ``xy`` (F, N, 2) and ``confidence`` (F, N), and the (F,) mask of the
    frames whose pairs were exchanged.
    """
    found = np.isfinite(xy).all(axis=(1, 2))
    swapped, carries = swap_transitions(xy, confidence, pairs, min_evidence)
    chain = (np.cumsum(swapped & carries) % 2).astype(bool)  # the labelling carried on, as of each frame
    toggled = np.where(carries, chain, chain ^ swapped) & found  # a bridged frame: against the one before its run
    if toggled.sum() > (found & ~toggled).sum():
        toggled = found & ~toggled
    order = np.arange(xy.shape[1])
    order[pairs[:, 0]], order[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    xy = np.where(toggled[:, None, None], xy[:, order], xy)
    confidence = np.where(toggled[:, None], confidence[:, order], confidence)
    return xy, confidence, toggled


def limb_chains(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per limb of :data:`LIMBS` that the layout ``names`` has: the (K,) indices of its pairs in
    :func:`side_pairs` ``(names)``, body end first."""
    pairs = [names[left][2:] for left, _ in side_pairs(names)]
    return {
        limb: np.array([pairs.index(part) for part in parts], dtype=np.intp)
        for limb, parts in LIMBS.items()
        if set(parts) <= set(pairs)
    }


def repair_limb_swaps(
    xy: np.ndarray,
    confidence: np.ndarray,
    names: tuple[str, ...],
    *,
    max_frames: int = MAX_LIMB_SWAP,
    min_evidence: float = LIMB_EVIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo one limb's left/right label swaps (see the module docstring).

    ``xy`` (F, N, 2) pixels in the layout ``names`` (NaN in frames without a detection),
    ``confidence`` (F, N). Returns the repaired ``xy`` and ``confidence`` and the (F, P) mask
    of the :func:`side_pairs` pairs exchanged per frame.
    """
    pairs = side_pairs(names)
    exchanged = np.zeros((len(xy), len(pairs)), dtype=bool)
    frames = np.flatnonzero(np.isfinite(xy).all(axis=(1, 2)))
    if len(frames) < 3 or not limb_chains(names):
        return xy, confidence, exchanged
    chains = np.stack(list(limb_chains(names).values()))  # (L, K)
    left, right = pairs[chains][..., 0], pairs[chains][..., 1]  # (L, K)
    # Positions about the trunk's centre (the mean of the shoulders and hips, which no label
    # swap moves), so that moving across the image moves no median.
    points = xy[frames] - xy[frames][:, pairs[chains[:, 0]].ravel()].mean(axis=1, keepdims=True)
    conf = np.nan_to_num(confidence[frames])
    reference = median_filter(points, size=(2 * max_frames + 1, 1, 1), mode="mirror")

    def gain(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(T', L, K) what exchanging each pair saves: distances of its points a from b as
        labelled, less distances from b's other-side points (weighted)."""
        keep = np.linalg.norm(a[:, left] - b[:, left], axis=-1) + np.linalg.norm(a[:, right] - b[:, right], axis=-1)
        swap = np.linalg.norm(a[:, left] - b[:, right], axis=-1) + np.linalg.norm(a[:, right] - b[:, left], axis=-1)
        return keep - swap

    def from_k(values: np.ndarray) -> np.ndarray:  # summed over the chain from joint k to its end
        return np.flip(np.cumsum(np.flip(values, -1), -1), -1)

    weight = np.minimum(conf[:, left], conf[:, right])  # (T, L, K)
    gains, weights = from_k(weight * gain(points, reference)), from_k(weight)
    best = gains.argmax(axis=-1)  # (T, L): exchange the chain from joint `best` on
    chosen = np.take_along_axis(gains, best[..., None], -1)[..., 0]
    enough = chosen > min_evidence * body_size(points) * np.take_along_axis(weights, best[..., None], -1)[..., 0]
    code = np.where(enough, best + 1, 0)  # (T, L): 0 none, else 1 + the first exchanged joint
    # A stretch of one exchange must also continue the movement around it better exchanged
    # than as labelled: its first frame against the two frames before it extrapolated, its
    # last against the two after it (one where the clip ends sooner).
    ahead = np.concatenate([points[:1], points[:1], 2 * points[1:-1] - points[:-2]])  # from the frames before
    back = np.concatenate([2 * points[1:-1] - points[2:], points[-1:], points[-1:]])  # from the frames after
    ahead[1], back[-2] = points[0], points[-1]
    before, after = np.concatenate([weight[:1], weight[:-1]]), np.concatenate([weight[1:], weight[-1:]])
    near = np.minimum(weight, np.minimum(before, after))
    entry, leave = from_k(near * gain(points, ahead)), from_k(near * gain(points, back))
    changes = code[1:] != code[:-1]
    first = np.concatenate([np.zeros((1, code.shape[1]), bool), changes]) & (code > 0)  # a stretch starts after a frame
    last = np.concatenate([changes, np.zeros((1, code.shape[1]), bool)]) & (code > 0)  # ... ends before one
    k = np.maximum(code - 1, 0)[..., None]
    ends = np.take_along_axis(entry, k, -1)[..., 0] * first + np.take_along_axis(leave, k, -1)[..., 0] * last
    first[0] = code[0] > 0  # the clip's first frame starts a stretch too, with nothing before it
    run = np.cumsum(first, axis=0) - 1 + np.arange(code.shape[1]) * len(code)  # run number per (frame, limb)
    total = np.zeros(len(code) * code.shape[1])
    np.add.at(total, run[code > 0], ends[code > 0])
    code = np.where((code > 0) & (total[np.maximum(run, 0)] > 0), code, 0)
    swap = (code[..., None] > 0) & (np.arange(chains.shape[1]) >= code[..., None] - 1)  # (T, L, K)
    exchanged[frames[:, None, None], chains[None]] = swap
    order = np.tile(np.arange(xy.shape[1]), (len(xy), 1))
    order[:, pairs[:, 0]] = np.where(exchanged, pairs[:, 1], pairs[:, 0])
    order[:, pairs[:, 1]] = np.where(exchanged, pairs[:, 0], pairs[:, 1])
    xy = np.take_along_axis(xy, order[..., None], axis=1)
    confidence = np.take_along_axis(confidence, order, axis=1)
    return xy, confidence, exchanged


def keypoints_from_detections(
    detections: Detections2D,
    *,
    layout: str = "coco17",
    confidence_threshold: float = VISIBILITY_THRESHOLD,
    source: str = "video",
) -> Keypoints2D:
    """The Human3.6M-17 track (pixels) of one detected person, ready for a :class:`Lifter`.

    Left/right swaps repaired (whole-body, then single-limb); frames without the person and joints below
    ``confidence_threshold`` filled by interpolation in time, never across a frame where the
    track may have moved to another person (``detections.switches``); a joint that is never
    above it (between two such frames) keeps the detector's positions where the person was
    found. ``confidence`` is the detector's, converted as :func:`jointpose.data.layouts.to_h36m`
    does (0 where not found). ``source`` (the clip's path) names it in the error where nobody
    was found.
    """
    check_confidence_threshold(confidence_threshold)
    found = detections.found
    if not found.any():
        raise JointposeError(f"{source}: no person found in any of its {len(found)} frames")
    notes = list(detections.notes)
    xy, conf = detections.points[..., :2], np.where(found[:, None], detections.points[..., 2], 0.0)
    parts = person_parts(len(found), detections.switches)
    xy, conf, swapped = _by_part(repair_swaps, parts, xy, conf, side_pairs(LAYOUTS[layout]))
    if swapped.any():
        edges = np.diff(np.concatenate([[0], swapped.astype(np.int8), [0]]))
        note = f"repaired left/right swaps in {int(swapped.sum())} frames ({int((edges == 1).sum())} stretch(es))"
        if swapped.sum() >= CLOSE_CALL * found.sum():  # the majority decided by little
            note += (
                f": {int(found.sum() - swapped.sum())} of the {int(found.sum())} frames with the person decided "
                "which labelling is right; if left and right look exchanged throughout, lift a longer stretch "
                "of the video around these frames"
            )
        notes.append(note)
    xy, conf, exchanged = _by_part(repair_limb_swaps, parts, xy, conf, LAYOUTS[layout])
    limbs = [
        f"{limb}s in {int(exchanged[:, chain].any(axis=1).sum())} frames"
        for limb, chain in limb_chains(LAYOUTS[layout]).items()
        if exchanged[:, chain].any()
    ]
    if limbs:
        notes.append("repaired single-limb left/right swaps: " + ", ".join(limbs))
    h36m, conf, _ = to_h36m(np.where(found[:, None, None], xy, 0.0), conf, layout, confidence_threshold)
    notes.append(f"converted {LAYOUT_TITLES[layout]} to Human3.6M-17")
    segments = track_part(detections.switches, len(found))
    valid, never = keep_never_usable(usable(conf, confidence_threshold) & found[:, None], found, segments)
    for joints, where in (
        (never.all(axis=0), ""),
        (never.any(axis=0) & ~never.all(axis=0), " in a stretch between possible switches of person"),
    ):
        if joints.any():
            names = ", ".join(skeleton.JOINT_NAMES[j] for j in np.flatnonzero(joints))
            notes.append(
                f"{names}: never above confidence {confidence_threshold}{where}; the detector's positions kept"
            )
    filled = ~valid
    if filled.any():
        notes.append(
            f"filled {int(filled.sum())} low-confidence or missing joints in "
            f"{int(filled.any(axis=1).sum())} frames by interpolation"
        )
    points = interpolate_gaps(h36m, valid, segments)
    return Keypoints2D(points, conf, "video", layout, filled, notes, switches=list(detections.switches))


def out_of_view_note(points: np.ndarray, size: tuple[int, int]) -> str | None:
    """A note naming the body parts (:data:`VIEW_PARTS`) that lie outside the image in at least
    :data:`OUT_OF_VIEW_SHARE` of the frames where the person was found, or None. ``points``
    (frames, 17, 2 or 3): COCO-17 pixels, NaN where nobody was found; ``size``: the image's
    (width, height) in pixels. A part is outside in a frame where any of its keypoints is: the
    detector guesses those points, and the lifted limbs follow its guess."""
    names = LAYOUTS["coco17"]
    xy = np.asarray(points, dtype=np.float64)[..., :2]
    found = np.isfinite(xy).all(axis=(1, 2))
    if not found.any():
        return None
    inside = (xy >= 0).all(axis=-1) & (xy[..., 0] < size[0]) & (xy[..., 1] < size[1])  # (frames, 17)
    shares = {
        part: float((~inside[found][:, [names.index(k) for k in keypoints]].all(axis=1)).mean())
        for part, keypoints in VIEW_PARTS.items()
    }
    outside = [f"{part} in {100 * share:.0f}%" for part, share in shares.items() if share >= OUT_OF_VIEW_SHARE]
    if not outside:
        return None
    return (
        f"outside the image in part of the frames where the person was found: {', '.join(outside)}; the "
        "detector guesses where they are there, and the lifted limbs follow its guess (check the render)"
    )


def _by_part(
    repair: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]],
    parts: list[slice],
    xy: np.ndarray,
    confidence: np.ndarray,
    *args: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A left/right ``repair`` run on each part of the track on its own (each person's labels
    judged by their own frames), its three outputs joined."""
    done = [repair(xy[part], confidence[part], *args) for part in parts]
    xy_parts, confidence_parts, masks = zip(*done)
    return np.concatenate(xy_parts), np.concatenate(confidence_parts), np.concatenate(masks)


def person_parts(count: int, switches: list[int]) -> list[slice]:
    """The stretches of a ``count``-frame track between the frames where it may have moved to
    another person (``switches``, increasing, each in 1..count-1): one slice per person seen."""
    edges = [0, *switches, count]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
