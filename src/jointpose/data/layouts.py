"""2D detector keypoint layouts and their conversion to Human3.6M-17 (the files that hold
them are read by :mod:`jointpose.data.detector_files`).

Layouts (``source_layout`` names)
---------------------------------
``coco17``  COCO: nose, left/right eye, left/right ear, then shoulders, elbows, wrists, hips,
            knees, ankles (left before right).
``coco18``  OpenPose COCO-18: nose, neck, right then left arm, right then left leg, eyes, ears.
``body25``  OpenPose BODY_25: COCO-18 with a mid-hip joint after the neck, plus six foot points.
``h36m17``  already Human3.6M-17 (order of :data:`jointpose.geometry.skeleton.JOINT_NAMES`).

Conversion to Human3.6M-17 (pixels in, pixels out)
--------------------------------------------------
Every Human3.6M joint is a fixed weighted sum of source joints. Some have fall-backs; per frame
the first construction whose source joints all reach the confidence threshold is used (the
first one when none does, and the joint then counts as missing). The confidence of a joint is
the minimum confidence of the source joints of its construction.

============  ================================================================================
Hip           MidHip (BODY_25); else mid-hips (the mean of the two hips)
limbs         directly: hips, knees, ankles (RFoot/LFoot), shoulders, elbows, wrists
Thorax        Neck (OpenPose, itself a mid-shoulder point); else mid-shoulders
Spine         Hip + 0.5 (Thorax - Hip) (:data:`SPINE_FRACTION`; Human3.6M's spine sits 0.45-0.5
              of the way up, 0.49 in jointpose's CMU rig map)
Neck/Nose     the nose; else mid-ears (seen from behind)
Head          the head top: mid-eyes + 1.75 (mid-eyes - nose); else the same with the one eye
              that is seen; else mid-ears + 0.5 (mid-ears - mid-shoulders)
============  ================================================================================

Head: the nose tip sits about 4 cm below and 3 cm in front of the eyes and Human3.6M's head
joint (as jointpose's rig map places it) about 7 cm above and 5 cm behind them, so the
eye-from-nose vector scaled by 1.75 reaches it from the front and in profile alike. From
behind, the ears sit about 9 cm below it and about 18 cm above the shoulders.
"""

from __future__ import annotations

from functools import cache
from itertools import product

import numpy as np

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton

SPINE_FRACTION = 0.5
HEAD_FROM_EYES = 1.75  # head top = eyes + HEAD_FROM_EYES * (eyes - nose)
HEAD_FROM_EARS = 0.5  # head top = ears + HEAD_FROM_EARS * (ears - shoulders)
# A detector's score below which a joint's point is replaced by interpolation in time
# (`jointpose infer`'s keypoint files: COCO scores, OpenPose confidences).
CONFIDENCE_THRESHOLD = 0.3
# BlazePose's visibility below which a joint's point is replaced by interpolation in time.
# Its points for joints it sees poorly (an arm behind the body) are guesses from the rest of
# the body, and lift better than a line drawn across the gap (docs/tuning.md, "Video: the
# detector's own guesses for hidden joints").
VISIBILITY_THRESHOLD = 0.1

_ARM = ("shoulder", "elbow", "wrist")
_LEG = ("hip", "knee", "ankle")


def _side(side: str, parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{side}_{part}" for part in parts)


_COCO18 = (
    ("nose", "neck")
    + _side("r", _ARM)
    + _side("l", _ARM)
    + _side("r", _LEG)
    + _side("l", _LEG)
    + ("r_eye", "l_eye", "r_ear", "l_ear")
)
LAYOUTS: dict[str, tuple[str, ...]] = {
    "coco17": ("nose", "l_eye", "r_eye", "l_ear", "r_ear") + tuple(f"{s}_{p}" for p in _ARM + _LEG for s in "lr"),
    "coco18": _COCO18,
    "body25": _COCO18[:8]
    + ("mid_hip",)
    + _COCO18[8:]
    + _side("l", ("big_toe", "small_toe", "heel"))
    + _side("r", ("big_toe", "small_toe", "heel")),
    "h36m17": skeleton.JOINT_NAMES,
}
LAYOUT_TITLES = {
    "coco17": "COCO-17",
    "coco18": "OpenPose COCO-18",
    "body25": "OpenPose BODY_25",
    "h36m17": "Human3.6M-17",
}

# The Human3.6M joints whose converted keypoint is the detector's point for that joint itself:
# elbows, wrists, knees and ankles. A detector's hips and shoulders sit elsewhere on the body
# than Human3.6M's joints (BlazePose's hips ~190 mm apart against ~250), and the rest are built.
LIMB_JOINTS = tuple(
    skeleton.JOINT_NAMES.index(f"{side}{part}") for side in "LR" for part in ("Elbow", "Wrist", "Knee", "Foot")
)


def aligned_joints(layout: str) -> tuple[int, ...] | None:
    """The Human3.6M-17 joints that keypoints converted from ``layout`` (a :data:`LAYOUTS`
    name) mark where they are, the joints the alignment with the 2D may move: None (every
    joint) for Human3.6M-17 itself, :data:`LIMB_JOINTS` for a detector's layout."""
    if layout not in LAYOUTS:
        raise JointposeError(f"unknown keypoint layout {layout!r}; one of {', '.join(LAYOUTS)}")
    return None if layout == "h36m17" else LIMB_JOINTS


Recipe = dict[str, float]


def _mean(*names: str) -> Recipe:
    return {name: 1.0 / len(names) for name in names}


def _lerp(a: Recipe, b: Recipe, t: float) -> Recipe:
    """The recipe of ``a + t (b - a)`` (t outside [0, 1] extrapolates)."""
    out = {name: (1.0 - t) * w for name, w in a.items()}
    for name, w in b.items():
        out[name] = out.get(name, 0.0) + t * w
    return out


def _recipes(names: tuple[str, ...]) -> tuple[tuple[Recipe, ...], ...]:
    """Constructions (best first) of each Human3.6M joint from a detector layout's joints."""
    if names == skeleton.JOINT_NAMES:
        return tuple(({name: 1.0},) for name in names)
    pelvis = ([{"mid_hip": 1.0}] if "mid_hip" in names else []) + [_mean("l_hip", "r_hip")]
    thorax = ([{"neck": 1.0}] if "neck" in names else []) + [_mean("l_shoulder", "r_shoulder")]
    ears, shoulders = _mean("l_ear", "r_ear"), _mean("l_shoulder", "r_shoulder")
    nose = {"nose": 1.0}
    head = [_lerp(eyes, nose, -HEAD_FROM_EYES) for eyes in (_mean("l_eye", "r_eye"), {"l_eye": 1.0}, {"r_eye": 1.0})]
    head.append(_lerp(ears, shoulders, -HEAD_FROM_EARS))
    side = {"R": "r", "L": "l"}
    limb = {"Hip": "hip", "Knee": "knee", "Foot": "ankle", "Shoulder": "shoulder", "Elbow": "elbow", "Wrist": "wrist"}
    table: dict[str, list[Recipe]] = {
        "Hip": pelvis,
        "Thorax": thorax,
        "Neck/Nose": [nose, ears],
        "Head": head,
        "Spine": [_lerp(p, t, SPINE_FRACTION) for p, t in product(pelvis, thorax)],
    }
    table |= {s + part: [{f"{side[s]}_{limb[part]}": 1.0}] for s in side for part in limb}
    return tuple(tuple(table[name]) for name in skeleton.JOINT_NAMES)


@cache
def _compiled(layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Recipes as arrays: index and weight (C, 17, K), used (C, 17, K), exists (C, 17)."""
    names = LAYOUTS[layout]
    recipes = _recipes(names)
    c = max(len(r) for r in recipes)
    k = max(len(recipe) for rs in recipes for recipe in rs)
    index = np.zeros((c, skeleton.NUM_JOINTS, k), dtype=np.intp)
    weight = np.zeros((c, skeleton.NUM_JOINTS, k))
    used = np.zeros((c, skeleton.NUM_JOINTS, k), dtype=bool)
    for j, constructions in enumerate(recipes):
        for i, recipe in enumerate(constructions):
            index[i, j, : len(recipe)] = [names.index(name) for name in recipe]
            weight[i, j, : len(recipe)] = list(recipe.values())
            used[i, j, : len(recipe)] = True
    return index, weight, used, used.any(axis=-1)


def usable(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Joints that count as detected: confidence > 0 and >= ``threshold``."""
    return (confidence > 0) & (confidence >= threshold)


def keep_never_usable(valid: np.ndarray, found: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, J) ``valid`` where, in each stretch of a track (``segments``: (F,) ids, one run per
    stretch), a joint never valid there counts as valid in the frames where the person was
    ``found`` (F,): its positions are the detector's, not filled in. Also the (F, J) mask of
    such joints. Refuses nothing: a stretch without a found frame stays invalid."""
    start = np.r_[True, segments[1:] != segments[:-1]]
    never = ~np.logical_or.reduceat(valid, np.flatnonzero(start), axis=0)[np.cumsum(start) - 1]
    return valid | (never & found[:, None]), never


def to_h36m(
    xy: np.ndarray, confidence: np.ndarray, layout: str, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert (F, N, 2) pixels and (F, N) confidence in ``layout`` to Human3.6M-17.

    Returns pixels (F, 17, 2), confidence (F, 17) and, per Human3.6M joint, the number of
    frames where a fall-back construction was used (17,). Non-finite pixels must carry
    confidence 0.
    """
    index, weight, used, exists = _compiled(layout)
    xy = np.where(np.isfinite(xy), xy, 0.0)
    candidate = np.where(used, confidence[:, index], np.inf).min(axis=-1)  # (F, C, 17)
    candidate = np.where(exists, candidate, -1.0)
    choice = usable(candidate, threshold).argmax(axis=1)  # (F, 17): first usable, else 0
    joints = np.arange(skeleton.NUM_JOINTS)
    sources = index[choice, joints]  # (F, 17, K)
    gathered = xy[np.arange(len(xy))[:, None, None], sources]  # (F, 17, K, 2)
    out = np.einsum("fjk,fjkd->fjd", weight[choice, joints], gathered)
    conf = np.take_along_axis(candidate, choice[:, None, :], axis=1)[:, 0]
    return out, conf, (choice > 0).sum(axis=0)
