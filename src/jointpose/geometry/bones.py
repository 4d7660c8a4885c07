"""Bone geometry on (..., 17, 3) pose arrays in metres: bone vectors, rebuilding poses from
them, body-size scaling and recentring (numpy)."""

from __future__ import annotations

import numpy as np

from jointpose.geometry import skeleton


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


def body_factors(rng: np.random.Generator, height_spread: float = 0.08, proportion_spread: float = 0.05) -> np.ndarray:
    """Random per-bone scale factors (16,) for one subject: overall size and symmetric proportions."""
    overall = float(np.clip(rng.normal(1.0, height_spread), 0.8, 1.2))
    factors = np.full(len(skeleton.BONES), overall)
    for joints in _BONE_GROUPS.values():
        group = float(np.clip(rng.normal(1.0, proportion_spread), 0.85, 1.15))
        factors[[skeleton.bone_index(j) for j in joints]] *= group
    return factors


def recentre(poses: np.ndarray) -> np.ndarray:
    """Move a clip so its mean root position is at the capture-area centre (x = y = 0); Z kept."""
    centre = poses[:, 0, :2].mean(axis=0)
    return poses - np.array([centre[0], centre[1], 0.0])
