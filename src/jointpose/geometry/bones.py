"""Bone geometry on (..., 17, 3) pose arrays in metres: bone vectors, rebuilding poses from
them, body-size scaling, standing height, limbs taken from other motion, and recentring (numpy)."""

from __future__ import annotations

import numpy as np

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.safeio import float_array


def bone_vectors(poses: np.ndarray) -> np.ndarray:
    """(frames, 17, 3) -> (frames, 16, 3): child minus parent for every bone."""
    bones = np.array(skeleton.BONES)
    return poses[:, bones[:, 0]] - poses[:, bones[:, 1]]


def positions_from_bones(root: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Joint positions (frames, 17, 3) from the root (frames, 3) and bone vectors (frames, 16, 3).

    Each joint is the root plus the bone vectors on its chain: one ancestor-matrix product.
    """
    return root[:, None] + np.einsum("jb,fbc->fjc", skeleton.ANCESTORS, vectors)


def scale_body(poses: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Rescale each bone of (frames, 17, 3) poses by ``factors`` (16,), keeping the root."""
    return positions_from_bones(poses[:, 0], bone_vectors(poses) * factors[None, :, None])


# Bone groups scaled together (left and right alike): legs, torso, neck & head, shoulders, arms.
_BONE_GROUPS = {
    "hips": (1, 4),
    "thighs": (2, 5),
    "shins": (3, 6),
    "spine": (7, 8),
    "head": (9, 10),
    "shoulders": (11, 14),
    "upper_arms": (12, 15),
    "forearms": (13, 16),
}


# Typical adult limb proportions against the training motion's: every CMU clip is retargeted
# onto one character whose arms are short for its legs (thigh 48 cm, shin 50, upper arm 25,
# forearm 26: arms / legs 0.52, against about 0.68 for adults). Factors per bone group.
ADULT_LIMBS = {"upper_arms": 1.26, "forearms": 1.06, "thighs": 0.90, "shins": 0.89}


def body_factors(
    rng: np.random.Generator, height_spread: float = 0.08, proportion_spread: float = 0.05, adult_limbs: float = 0.0
) -> np.ndarray:
    """Random per-bone scale factors (16,) for one subject: overall size and symmetric proportions.

    ``adult_limbs`` in [0, 1] centres the limbs' proportions that share of the way from the
    training motion's to typical adult ones (:data:`ADULT_LIMBS`); 0 draws about the motion's own.
    """
    overall = float(np.clip(rng.normal(1.0, height_spread), 0.8, 1.2))
    factors = np.full(len(skeleton.BONES), overall)
    for name, joints in _BONE_GROUPS.items():
        group = float(np.clip(rng.normal(1.0, proportion_spread), 0.85, 1.15))
        factors[[skeleton.bone_index(j) for j in joints]] *= group * (
            1 + adult_limbs * (ADULT_LIMBS.get(name, 1.0) - 1)
        )
    return factors


# Standing height from the skeleton: the legs (hip, knee, ankle; the mean of both sides) plus
# the chain pelvis, spine, thorax, nose, head. On the training motion's character this chain
# is 1.79 m, and the character stands about 1.80 m tall (its Head joint 1.765 m above the floor
# while walking, the top of the skull a few cm higher): the chain's bends make up for the
# ankles' height above the floor and the skull above the Head joint.
HEIGHT_CHAIN = {"legs": ("RKnee", "RFoot", "LKnee", "LFoot"), "trunk": ("Spine", "Thorax", "Neck/Nose", "Head")}
HEIGHT_RANGE = (0.5, 2.6)  # metres: the standing heights a person is scaled to


def standing_height(poses: np.ndarray) -> float:
    """A skeleton's standing height in metres from its (frames, 17, 3) poses: the median bone
    lengths of the legs (the mean of both sides) and the trunk and head (:data:`HEIGHT_CHAIN`)."""
    lengths = np.median(np.linalg.norm(bone_vectors(np.asarray(poses, dtype=np.float64)), axis=-1), axis=0)
    legs, trunk = ([skeleton.bone_index(skeleton.JOINT_NAMES.index(j)) for j in HEIGHT_CHAIN[k]] for k in HEIGHT_CHAIN)
    return float(lengths[legs].sum() / 2 + lengths[trunk].sum())


def check_height(height: float) -> None:
    """Refuse a standing height (metres) outside :data:`HEIGHT_RANGE`."""
    low, high = HEIGHT_RANGE
    if not (isinstance(height, (int, float, np.floating)) and low <= height <= high):
        raise JointposeError(
            "{0} must be a standing height in metres in [{low}, {high}], got {height}",
            fields=("height",),
            low=low,
            high=high,
            height=height,
        )


def check_poses(poses: np.ndarray) -> np.ndarray:
    """``poses`` (an array), refused unless it is (frames, 17, 3) with a frame at least."""
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.NUM_JOINTS, 3) or len(poses) == 0:
        raise JointposeError(f"poses must be (frames, 17, 3) with frames >= 1, got {poses.shape}")
    return poses


def scale_to_height(
    poses: np.ndarray, height: float, trajectory: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Poses (frames, 17, 3) scaled about their root so that :func:`standing_height` is
    ``height`` metres, the root trajectory (frames, 3; camera space) by the same factor (a
    smaller person is nearer: the image stays the same), and the factor. Poses of no frame, or
    whose skeleton has no height (every joint at one place), are refused."""
    check_height(height)
    poses = check_poses(float_array(poses, "poses"))
    own = standing_height(poses)
    if not own > 0:
        raise JointposeError(f"poses: a skeleton of standing height {own:g} m cannot be scaled to a height")
    factor = height / own
    scaled = poses[:, :1] + factor * (poses - poses[:, :1])
    return scaled, None if trajectory is None else trajectory * factor, factor


# Limbs that can come from other motion: their bones (by child joint) and the body part they
# hang from (0: the chest, 1: the pelvis; see body_frames).
LIMBS = {
    "arms": (("LElbow", "LWrist", "RElbow", "RWrist"), 0),
    "legs": (("LKnee", "LFoot", "RKnee", "RFoot"), 1),
}


def body_frames(poses: np.ndarray) -> np.ndarray:
    """(frames, 17, 3) -> (frames, 2, 3, 3): the chest's and the pelvis's axes per frame, as
    columns (to the person's left, up the spine, forward), from the shoulders or hips and the
    spine."""
    j = skeleton.JOINT_NAMES.index
    across = np.stack(
        [poses[:, j("LShoulder")] - poses[:, j("RShoulder")], poses[:, j("LHip")] - poses[:, j("RHip")]], 1
    )
    up = np.stack([poses[:, j("Thorax")] - poses[:, j("Spine")], poses[:, j("Spine")] - poses[:, j("Hip")]], 1)
    left = across / np.linalg.norm(across, axis=-1, keepdims=True)
    up = up - (up * left).sum(-1, keepdims=True) * left
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)
    return np.stack([left, up, np.cross(left, up)], axis=-1)


def swap_limb(poses: np.ndarray, donor: np.ndarray, limb: str) -> np.ndarray:
    """Poses (frames, 17, 3) whose ``limb`` (a key of :data:`LIMBS`: both arms or both legs)
    moves as in ``donor`` (frames, 17, 3), another motion: each of its bones takes the donor's
    direction relative to the body part it hangs from (:func:`body_frames`) and keeps its own
    length. The root, trunk and other limbs stay where they are."""
    children, part = LIMBS[limb]
    bones = [skeleton.bone_index(skeleton.JOINT_NAMES.index(c)) for c in children]
    host, given = body_frames(poses)[:, part], body_frames(donor)[:, part]
    turn = np.einsum("fij,fkj->fik", host, given)  # donor's body axes onto the host's
    vectors = bone_vectors(poses)
    moved = np.einsum("fij,fbj->fbi", turn, bone_vectors(donor)[:, bones])
    lengths = np.linalg.norm(vectors[:, bones], axis=-1, keepdims=True)
    vectors[:, bones] = moved / np.linalg.norm(moved, axis=-1, keepdims=True) * lengths
    return positions_from_bones(poses[:, 0], vectors)


def recentre(poses: np.ndarray) -> np.ndarray:
    """Move a clip so its mean root position is at the capture-area centre (x = y = 0); Z kept."""
    centre = poses[:, 0, :2].mean(axis=0)
    return poses - np.array([centre[0], centre[1], 0.0])
