"""Skeleton layouts: joint order, parents, bones, left/right symmetry, joint angles.

A :class:`Skeleton` describes one layout: its joints, parents, bones, left/right twins,
the joint angles that have a range of motion (with the published ranges), the segments
compared as proportions and the bones the skeleton fit does not turn. Everything else about
a layout (flip permutation, symmetric bone pairs, ancestor matrix) is derived from those.
:func:`for_joints` finds a layout from a pose array's joint count, which is how anatomy,
losses and metrics pick theirs.

:data:`H36M_17` follows VideoPose3D's reduced Human3.6M layout (the module constants
``JOINT_NAMES``, ``BONES``, ``FLIP_PERMUTATION``... are its)::

    0 Hip (root)  1 RHip  2 RKnee  3 RFoot  4 LHip  5 LKnee  6 LFoot  7 Spine  8 Thorax
    9 Neck/Nose  10 Head  11 LShoulder  12 LElbow  13 LWrist  14 RShoulder  15 RElbow  16 RWrist

:data:`HUMANEVA_15` is VideoPose3D's 15-joint HumanEva-I layout::

    0 Pelvis (root)  1 Thorax  2 LShoulder  3 LElbow  4 LWrist  5 RShoulder  6 RElbow  7 RWrist
    8 LHip  9 LKnee  10 LAnkle  11 RHip  12 RKnee  13 RAnkle  14 Head
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from jointpose.errors import JointposeError

if TYPE_CHECKING:
    import torch


def flip_permutation(num_joints: int, left: Sequence[int], right: Sequence[int]) -> tuple[int, ...]:
    """Joint permutation that swaps each ``left[i]`` with ``right[i]`` and keeps the rest."""
    swap = dict(zip(left, right)) | dict(zip(right, left))
    return tuple(swap.get(j, j) for j in range(num_joints))


def bone_index(child: int) -> int:
    """Index into a skeleton's bones of the bone ending at joint ``child``."""
    return child - 1


@dataclass(frozen=True)
class Skeleton:
    """One joint layout and the anatomy defined on it.

    Bones are (child, parent) pairs, one per non-root joint in joint order (parents come
    before their children), so the bone ending at joint ``j`` is bone ``j - 1``
    (:func:`bone_index`).

    Args:
        name: layout name, e.g. ``h36m17``.
        joint_names: one name per joint.
        parents: parent of each joint; the root (joint 0) has -1.
        left: left joints; ``right``: their right twins (mirror images), in the same order.
        right: see ``left``.
        angles: (name, parent-side joint, vertex, child-side joint) triples whose angle at
            the vertex has a range of motion.
        published_rom: (low, high) degrees of each angle's published range of motion, before
            the placement tolerance (``anatomy.ROM_TOLERANCE``).
        ratio_joints: (joint, joint) pairs whose bones (by end joint) are compared as proportions.
        kept_direction: names of the joints whose bones keep their direction in the skeleton fit.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    angles: tuple[tuple[str, int, int, int], ...]
    published_rom: tuple[tuple[float, float], ...]
    ratio_joints: tuple[tuple[int, int], ...]
    kept_direction: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if (
            len(self.parents) != n
            or self.parents[0] != -1
            or any(not 0 <= p < j for j, p in enumerate(self.parents) if j)
        ):
            raise ValueError(f"skeleton {self.name}: parents must come before their children, root first")
        if len(self.left) != len(self.right) or len(self.angles) != len(self.published_rom):
            raise ValueError(f"skeleton {self.name}: left/right or angles/ranges differ in length")
        used = [*self.left, *self.right, *(j for *_, a, v, b in self.angles for j in (a, v, b))]
        used += [j for pair in self.ratio_joints for j in pair]
        if any(not 0 <= j < n for j in used) or 0 in (
            *self.left,
            *self.right,
            *(j for p in self.ratio_joints for j in p),
        ):
            raise ValueError(f"skeleton {self.name}: a joint index outside 0..{n - 1} (or the root as a bone end)")
        if not set(self.kept_direction) <= set(self.joint_names[1:]):
            raise ValueError(f"skeleton {self.name}: kept_direction names a joint it lacks (or the root)")

    @property
    def num_joints(self) -> int:
        """Number of joints."""
        return len(self.joint_names)

    @cached_property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) per non-root joint, in joint order."""
        return tuple((j, self.parents[j]) for j in range(1, self.num_joints))

    @cached_property
    def bone_names(self) -> tuple[str, ...]:
        """``Parent-Child`` name of each bone."""
        return tuple(f"{self.joint_names[p]}-{self.joint_names[c]}" for c, p in self.bones)

    @cached_property
    def flip_permutation(self) -> tuple[int, ...]:
        """Swaps each left joint with its right twin."""
        return flip_permutation(self.num_joints, self.left, self.right)

    @cached_property
    def symmetric_bones(self) -> tuple[tuple[int, int], ...]:
        """Left/right bone pairs as indices into :attr:`bones`."""
        return tuple((bone_index(left), bone_index(right)) for left, right in zip(self.left, self.right))

    @cached_property
    def ratio_bones(self) -> tuple[tuple[int, int], ...]:
        """Bone pairs (indices into :attr:`bones`) compared as proportions."""
        return tuple((bone_index(a), bone_index(b)) for a, b in self.ratio_joints)

    @cached_property
    def kept_direction_bones(self) -> tuple[int, ...]:
        """Indices into :attr:`bones` of the bones the skeleton fit does not turn."""
        return tuple(bone_index(self.joint_names.index(name)) for name in self.kept_direction)

    @cached_property
    def ancestors(self) -> np.ndarray:
        """(joints, bones): entry (j, b) is 1 when bone b lies on the chain from the root to
        joint j, so joint positions = root + ancestors @ bone vectors."""
        matrix = np.zeros((self.num_joints, self.num_joints - 1))
        for j in range(1, self.num_joints):
            k = j
            while k > 0:
                matrix[j, bone_index(k)] = 1.0
                k = self.parents[k]
        return matrix


# Range of motion of each Human3.6M-17 angle, in degrees of the unsigned angle at the middle
# joint of its triple (jointpose.geometry.anatomy.joint_angles).
#
# Published limits are clinical flexion/extension/abduction angles measured from the
# anatomical neutral position (AAOS, "Joint Motion: Method of Measuring and Recording",
# 1965; Norkin & White, "Measurement of Joint Motion", 5th ed.; Kapandji, "The Physiology
# of the Joints", vol. 2 for the hip). They map onto the unsigned 3-point angle through the
# neutral angle of each triple:
# * hinge joints (knee, elbow): angle = 180 - flexion. Knee flexion 0-140 deg (AAOS 0-135,
#   Norkin & White 0-140) -> 40-180; elbow flexion 0-150 (AAOS) -> 30-180. Hyperextension
#   bends the limb the other way by the same unsigned angle, so it cannot be seen here and
#   the upper limit is 180. (A sign taken about the pelvis or shoulder line is no fix: it
#   flips for turned-out legs and rotated upper arms; on the CMU dance clips it reads the
#   knee of an attitude/retire as folded backwards by up to 178 deg.)
# * spine (hip-spine-thorax, straight = 180): thoracolumbar flexion 80, extension 25,
#   lateral flexion 35 (AAOS) bend the chain away from straight; the lower spine joint takes
#   at most about 3/4 of the bend -> 180 - 0.75 * 80 = 120.
# * hip ab/adduction (pelvis line vs thigh, neutral 90): adduction 30 (AAOS) -> 60. The
#   clinical abduction limit (45, AAOS; Norkin & White 0-45) does not bound this angle for
#   real motion: flexion with external rotation and horizontal abduction also opens it,
#   and trained dancers raise the leg sideways above hip height (CMU subject 5 reaches
#   178). The upper limit is therefore the straight line, 180.
# * hip flexion (spine vs hip-knee line, neutral ~165 because the knee sits lateral of
#   the root): passive flexion with the knee bent reaches 140 (Kapandji; active 120, AAOS)
#   -> 165 - 140 = 25; the Spine joint sits mid-trunk, so lumbar flexion adds to this.
#   Extension (30, AAOS) also moves the thigh away from the trunk line (to about 147), so
#   flexion alone sets the lower limit and the upper limit is the straight line, 180.
# * shoulder (clavicle line vs upper arm, neutral 90): abduction to 90 opens it to 180
#   and full elevation (180) brings it back to about 90; cross-body adduction (horizontal
#   adduction 135 from abduction, i.e. about 45 across the chest) closes it to about 45.
# * neck (thorax-nose-head top, neutral ~125 in Human3.6M-like proportions): cervical
#   flexion 45 opens it towards 170; extension 45 closes it to about 80.
# Each limit is widened by a tolerance for joint-centre placement (anatomy.ROM_TOLERANCE).
# Measured on all 35 CMU clips at 50 fps (walking, playground, swordplay, dance with legs
# raised above hip height, cartwheel starts; tests/test_anatomy.py): 6 of 16,622 frames
# leave the widened table, a knee folded to 21 deg in a playground clip (001_14).
H36M_17 = Skeleton(
    name="h36m17",
    joint_names=(
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
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),  # both shoulders hang from the thorax
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
    angles=(  # (name, parent-side joint, vertex joint, child-side joint)
        ("neck", 8, 9, 10),  # Thorax - Neck/Nose - Head
        ("spine", 0, 7, 8),  # Hip - Spine - Thorax
        ("right hip", 0, 1, 2),  # Hip - RHip - RKnee: thigh against the pelvis line (ab/adduction)
        ("left hip", 0, 4, 5),
        ("right hip flexion", 7, 0, 2),  # Spine - Hip - RKnee: trunk against thigh
        ("left hip flexion", 7, 0, 5),
        ("right shoulder", 8, 14, 15),  # Thorax - RShoulder - RElbow
        ("left shoulder", 8, 11, 12),
        ("right knee", 1, 2, 3),  # RHip - RKnee - RFoot
        ("left knee", 4, 5, 6),
        ("right elbow", 14, 15, 16),  # RShoulder - RElbow - RWrist
        ("left elbow", 11, 12, 13),
    ),
    published_rom=(
        (80.0, 180.0),  # neck
        (120.0, 180.0),  # spine
        (60.0, 180.0),  # right hip
        (60.0, 180.0),  # left hip
        (25.0, 180.0),  # right hip flexion
        (25.0, 180.0),  # left hip flexion
        (45.0, 180.0),  # right shoulder
        (45.0, 180.0),  # left shoulder
        (40.0, 180.0),  # right knee
        (40.0, 180.0),  # left knee
        (30.0, 180.0),  # right elbow
        (30.0, 180.0),  # left elbow
    ),
    ratio_joints=(
        (12, 13),  # upper arm / forearm (left, right)
        (15, 16),
        (5, 6),  # thigh / shin (left, right)
        (2, 3),
        (4, 1),  # left hip width / right hip width
        (11, 14),  # left shoulder width / right shoulder width
    ),
    # The trunk's short segments (root to each hip, thorax to each shoulder, thorax to nose
    # to head) keep their predicted direction in the fit: they carry a limb or the head, so
    # turning them would be the cheapest way to move those and would bend the trunk and neck
    # out of their range of motion (docs/method.md, "Inference: one consistent skeleton").
    kept_direction=("RHip", "LHip", "LShoulder", "RShoulder", "Neck/Nose", "Head"),
)

# HumanEva-I's 15 joints as VideoPose3D converts them (its evaluation skeleton: proximal and
# distal marker estimates of the elbows and knees averaged; Thorax between the torso's top
# and the head's base). No spine or nose joint: the trunk is one bone (Pelvis - Thorax) and
# the head one more (Thorax - Head), so there is no spine angle.
# Angles reuse Human3.6M-17's ranges where the triple is the same joint (hips, shoulders,
# knees, elbows). Hip flexion is measured against the whole trunk line (Thorax - Pelvis)
# rather than its lower half, which only makes it stricter, so its limit (25 deg) stays.
# The neck angle (Pelvis - Thorax - Head, straight = 180) bends by the cervical spine
# alone: flexion, extension or lateral flexion of 45 deg (AAOS) -> 135.
HUMANEVA_15 = Skeleton(
    name="humaneva15",
    joint_names=(
        "Pelvis",
        "Thorax",
        "LShoulder",
        "LElbow",
        "LWrist",
        "RShoulder",
        "RElbow",
        "RWrist",
        "LHip",
        "LKnee",
        "LAnkle",
        "RHip",
        "RKnee",
        "RAnkle",
        "Head",
    ),
    parents=(-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    left=(2, 3, 4, 8, 9, 10),
    right=(5, 6, 7, 11, 12, 13),
    angles=(
        ("neck", 0, 1, 14),  # Pelvis - Thorax - Head
        ("right hip", 0, 11, 12),  # Pelvis - RHip - RKnee
        ("left hip", 0, 8, 9),
        ("right hip flexion", 1, 0, 12),  # Thorax - Pelvis - RKnee
        ("left hip flexion", 1, 0, 9),
        ("right shoulder", 1, 5, 6),  # Thorax - RShoulder - RElbow
        ("left shoulder", 1, 2, 3),
        ("right knee", 11, 12, 13),  # RHip - RKnee - RAnkle
        ("left knee", 8, 9, 10),
        ("right elbow", 5, 6, 7),  # RShoulder - RElbow - RWrist
        ("left elbow", 2, 3, 4),
    ),
    published_rom=(
        (135.0, 180.0),  # neck
        (60.0, 180.0),  # right hip
        (60.0, 180.0),  # left hip
        (25.0, 180.0),  # right hip flexion
        (25.0, 180.0),  # left hip flexion
        (45.0, 180.0),  # right shoulder
        (45.0, 180.0),  # left shoulder
        (40.0, 180.0),  # right knee
        (40.0, 180.0),  # left knee
        (30.0, 180.0),  # right elbow
        (30.0, 180.0),  # left elbow
    ),
    ratio_joints=(
        (3, 4),  # upper arm / forearm (left, right)
        (6, 7),
        (9, 10),  # thigh / shin (left, right)
        (12, 13),
        (8, 11),  # left hip width / right hip width
        (2, 5),  # left shoulder width / right shoulder width
    ),
    kept_direction=("LHip", "RHip", "LShoulder", "RShoulder", "Head"),  # the trunk's short segments and the head
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (H36M_17, HUMANEVA_15)}


def for_joints(num_joints: int) -> Skeleton:
    """The skeleton of (..., num_joints, 3) pose arrays: Human3.6M-17 or HumanEva-15.

    Raises:
        JointposeError: no known skeleton has that many joints.
    """
    for candidate in SKELETONS.values():
        if candidate.num_joints == num_joints:
            return candidate
    known = ", ".join(f"{s.name} ({s.num_joints})" for s in SKELETONS.values())
    raise JointposeError(f"no skeleton layout has {num_joints} joints (known: {known})")


def output_flip(num_joints: int) -> tuple[int, ...]:
    """The left/right swap of (..., num_joints, 3) model outputs: the permutation of the
    skeleton with that many joints, the identity for anything else (a trajectory model's
    single root joint)."""
    known = {s.num_joints: s for s in SKELETONS.values()}
    return known[num_joints].flip_permutation if num_joints in known else tuple(range(num_joints))


# Human3.6M-17's description under the module's long-standing names.
JOINT_NAMES: tuple[str, ...] = H36M_17.joint_names
NUM_JOINTS: int = H36M_17.num_joints
PARENTS: tuple[int, ...] = H36M_17.parents
LEFT_JOINTS: tuple[int, ...] = H36M_17.left
RIGHT_JOINTS: tuple[int, ...] = H36M_17.right
# Swaps every left joint with its right twin (used by flip augmentation).
FLIP_PERMUTATION: tuple[int, ...] = H36M_17.flip_permutation
# Bones as (child, parent) pairs, one per non-root joint; bone k ends at joint k + 1.
BONES: tuple[tuple[int, int], ...] = H36M_17.bones
BONE_NAMES: tuple[str, ...] = H36M_17.bone_names
# Joint positions = root + ANCESTORS @ bone vectors (one matrix product for a whole sequence).
ANCESTORS: np.ndarray = H36M_17.ancestors
# Left/right bone pairs as indices into BONES: hip, thigh, shin, shoulder, upper arm, forearm.
SYMMETRIC_BONES: tuple[tuple[int, int], ...] = H36M_17.symmetric_bones

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
