"""The Human3.6M 17-joint skeleton: joint order, parents, bones, left/right symmetry.

Joint order (index: name) follows VideoPose3D's reduced Human3.6M layout::

    0 Hip (root)  1 RHip  2 RKnee  3 RFoot  4 LHip  5 LKnee  6 LFoot  7 Spine  8 Thorax
    9 Neck/Nose  10 Head  11 LShoulder  12 LElbow  13 LWrist  14 RShoulder  15 RElbow  16 RWrist
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

JOINT_NAMES: tuple[str, ...] = (
    "Hip",
    "RHip",
    "RKnee",
    "RFoot",
    "LHip",
    "LKnee",
    "LFoot",
    "Spine",
    "Thorax",
    "Neck/Nose",
    "Head",
    "LShoulder",
    "LElbow",
    "LWrist",
    "RShoulder",
    "RElbow",
    "RWrist",
)
NUM_JOINTS = 17

# Parent of each joint; both shoulders hang from the thorax.
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)

LEFT_JOINTS: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)


def flip_permutation(num_joints: int, left: Sequence[int], right: Sequence[int]) -> tuple[int, ...]:
    """Joint permutation that swaps each ``left[i]`` with ``right[i]`` and keeps the rest."""
    swap = dict(zip(left, right)) | dict(zip(right, left))
    return tuple(swap.get(j, j) for j in range(num_joints))


# Swaps every left joint with its right twin (used by flip augmentation).
FLIP_PERMUTATION: tuple[int, ...] = flip_permutation(NUM_JOINTS, LEFT_JOINTS, RIGHT_JOINTS)

# Bones as (child, parent) pairs, one per non-root joint; bone k ends at joint k + 1.
BONES: tuple[tuple[int, int], ...] = tuple((j, PARENTS[j]) for j in range(1, NUM_JOINTS))
BONE_NAMES: tuple[str, ...] = tuple(f"{JOINT_NAMES[p]}-{JOINT_NAMES[c]}" for c, p in BONES)


def bone_index(child: int) -> int:
    """Index into :data:`BONES` of the bone ending at joint ``child``."""
    return child - 1


def _ancestor_matrix() -> np.ndarray:
    """(17, 16): entry (j, b) is 1 when bone b lies on the chain from the root to joint j."""
    matrix = np.zeros((NUM_JOINTS, len(BONES)))
    for j in range(1, NUM_JOINTS):
        k = j
        while k > 0:
            matrix[j, bone_index(k)] = 1.0
            k = PARENTS[k]
    return matrix


# Joint positions = root + ANCESTORS @ bone vectors (one matrix product for a whole sequence).
ANCESTORS: np.ndarray = _ancestor_matrix()

# Left/right bone pairs as indices into BONES: hip, thigh, shin, shoulder, upper arm, forearm.
SYMMETRIC_BONES: tuple[tuple[int, int], ...] = tuple(
    (bone_index(left), bone_index(right)) for left, right in zip(LEFT_JOINTS, RIGHT_JOINTS)
)

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

# Human3.6M files hold 32 joints; these 17 are kept, in this order.
H36M_32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
# Parents in the 32-joint layout (needed to write files in that layout).
H36M_32_PARENTS: tuple[int, ...] = (
    -1,
    0,
    1,
    2,
    3,
    4,
    0,
    6,
    7,
    8,
    9,
    0,
    11,
    12,
    13,
    14,
    12,
    16,
    17,
    18,
    19,
    20,
    19,
    22,
    12,
    24,
    25,
    26,
    27,
    28,
    27,
    30,
)


def reduce_32_to_17(positions: np.ndarray) -> np.ndarray:
    """Keep the 17 joints of the reduced layout from (..., 32, 3) Human3.6M positions."""
    return positions[..., list(H36M_32_TO_17), :]


def expand_17_to_32(positions: np.ndarray) -> np.ndarray:
    """Write (..., 17, 3) positions into the 32-joint Human3.6M layout.

    The 15 joints outside the reduced set copy their parent's position (32-joint
    parents), so reducing the result gives the input back exactly.
    """
    out = np.zeros(positions.shape[:-2] + (32, positions.shape[-1]), dtype=positions.dtype)
    out[..., list(H36M_32_TO_17), :] = positions
    kept = set(H36M_32_TO_17)
    for j in range(32):  # parents come before children, so one pass suffices
        if j not in kept:
            out[..., j, :] = out[..., H36M_32_PARENTS[j], :]
    return out


def flip_poses(poses: ArrayT, permutation: Sequence[int] = FLIP_PERMUTATION) -> ArrayT:
    """Mirror poses horizontally: negate x and swap left/right joints (numpy or torch, 2D or 3D).

    Valid for root-relative camera-space 3D and for normalised screen coordinates
    (whose x is centred on 0); ``poses`` is (..., joints, D). ``permutation`` swaps the
    left and right joints (the Human3.6M-17 one by default).
    """
    out = poses[..., list(permutation), :]  # advanced indexing copies (numpy and torch)
    out[..., 0] = -out[..., 0]
    return out
