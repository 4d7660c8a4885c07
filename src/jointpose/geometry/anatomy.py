"""Joint angles, bone lengths, limb segments and ranges of motion of the Human3.6M-17 skeleton.

Every angle here is the angle at the middle joint of a (parent, joint, child) triple: the
angle between the vectors from the joint to the other two, in [0, pi] radians. It is
unsigned, which shapes how published limits map onto it (see :data:`RANGE_OF_MOTION`).

All functions take (..., 17, 3) tensors in metres and work for any leading dimensions,
on any device, without Python loops over frames or joints.
"""

from __future__ import annotations

import math

import torch

from jointpose.geometry import skeleton

EPS = 1e-12

# (name, parent-side joint, vertex joint, child-side joint)
ANGLES: tuple[tuple[str, int, int, int], ...] = (
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
)
ANGLE_NAMES: tuple[str, ...] = tuple(a[0] for a in ANGLES)

# Range of motion of each angle above, in degrees of the angle computed here.
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
# Each limit is widened by a 15 deg tolerance for joint-centre placement (markers and
# detector joints sit on the skin, not on the joint centre), and clipped to [0, 180].
# Measured on all 35 CMU clips at 50 fps (walking, playground, swordplay, dance with legs
# raised above hip height, cartwheel starts; tests/test_anatomy.py): 6 of 16,622 frames
# leave this table, a knee folded to 21 deg in a playground clip (001_14).
_TOLERANCE = 15.0
_PUBLISHED = {
    "neck": (80.0, 180.0),
    "spine": (120.0, 180.0),
    "right hip": (60.0, 180.0),
    "left hip": (60.0, 180.0),
    "right hip flexion": (25.0, 180.0),
    "left hip flexion": (25.0, 180.0),
    "right shoulder": (45.0, 180.0),
    "left shoulder": (45.0, 180.0),
    "right knee": (40.0, 180.0),
    "left knee": (40.0, 180.0),
    "right elbow": (30.0, 180.0),
    "left elbow": (30.0, 180.0),
}
RANGE_OF_MOTION: dict[str, tuple[float, float]] = {
    name: (max(0.0, low - _TOLERANCE), min(180.0, high + _TOLERANCE)) for name, (low, high) in _PUBLISHED.items()
}

# Segments compared as ratios (numerator bone, denominator bone), as indices into BONES:
# upper/lower arm and upper/lower leg per side, left/right hip and shoulder widths.
RATIO_SEGMENTS: tuple[tuple[int, int], ...] = tuple(
    (skeleton.bone_index(a), skeleton.bone_index(b))
    for a, b in (
        (12, 13),
        (15, 16),  # upper arm / forearm (left, right)
        (5, 6),
        (2, 3),  # thigh / shin (left, right)
        (4, 1),  # left hip width / right hip width
        (11, 14),  # left shoulder width / right shoulder width
    )
)


def _difference_matrix(pairs) -> torch.Tensor:
    """(len(pairs), 17): row k picks joint pairs[k][0] minus joint pairs[k][1]."""
    matrix = torch.zeros(len(pairs), skeleton.NUM_JOINTS)
    for k, (plus, minus) in enumerate(pairs):
        matrix[k, plus] += 1.0
        matrix[k, minus] -= 1.0
    return matrix


# Bone vectors and the two arms of every angle are linear in the joint positions: one
# matrix product each (cheaper to differentiate than gathering joints by index).
_BONE_MATRIX = _difference_matrix(skeleton.BONES)
_ANGLE_ARMS = torch.cat(
    [_difference_matrix([(a, v) for _, a, v, _ in ANGLES]), _difference_matrix([(b, v) for _, _, v, b in ANGLES])]
)
_CONSTANTS: dict[tuple, torch.Tensor] = {}


def constant_like(name: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` on ``like``'s device and dtype, converted once per (name, device, dtype)."""
    key = (name, like.device, like.dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = value.to(device=like.device, dtype=like.dtype)
    return _CONSTANTS[key]


_ROM_LOW = torch.tensor([math.radians(RANGE_OF_MOTION[n][0]) for n in ANGLE_NAMES], dtype=torch.float64)
_ROM_HIGH = torch.tensor([math.radians(RANGE_OF_MOTION[n][1]) for n in ANGLE_NAMES], dtype=torch.float64)


def safe_norm(v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Euclidean norm with a finite gradient at zero."""
    return torch.sqrt((v * v).sum(dim=dim) + EPS)


def bone_vectors(poses: torch.Tensor) -> torch.Tensor:
    """(..., 17, 3) -> (..., 16, 3): child minus parent for every bone of ``skeleton.BONES``."""
    return constant_like("bones", _BONE_MATRIX, poses) @ poses


def bone_lengths(poses: torch.Tensor) -> torch.Tensor:
    """(..., 17, 3) -> (..., 16) bone lengths in metres."""
    return safe_norm(bone_vectors(poses))


def joint_angles(poses: torch.Tensor) -> torch.Tensor:
    """(..., 17, 3) -> (..., len(ANGLES)) angles at the middle joint of each triple, radians.

    atan2(|u x v|, u . v) with |u x v| smoothed by 1e-6 |u| |v|: differentiable at straight
    and folded joints (0 and 180 degrees, where |u x v| has a kink) and finite for
    zero-length arms; off by at most 1e-3 rad at 0 and 180 degrees and by less than 1e-5 rad
    a few degrees away. The cross product is computed exactly: the shortcut
    |u|^2 |v|^2 - (u . v)^2 cancels near 0 and 180 degrees, where float32 rounding then moves
    the gradient enough that one process and two (the same batch split differently) train
    apart within a few steps.
    """
    arms = constant_like("arms", _ANGLE_ARMS, poses) @ poses  # (..., 2 * n_angles, 3)
    u, v = arms[..., : len(ANGLES), :], arms[..., len(ANGLES) :, :]
    cross = torch.roll(u, -1, dims=-1) * torch.roll(v, -2, dims=-1) - torch.roll(u, -2, dims=-1) * torch.roll(
        v, -1, dims=-1
    )
    scale = (u * u).sum(dim=-1) * (v * v).sum(dim=-1)
    sin_part = torch.sqrt((cross * cross).sum(dim=-1) + 1e-6 * scale + EPS)
    return torch.atan2(sin_part, (u * v).sum(dim=-1))


def rom_violation_of_angles(angles: torch.Tensor) -> torch.Tensor:
    """How far (radians, >= 0) each angle lies outside its range; 0 inside."""
    low, high = constant_like("rom-low", _ROM_LOW, angles), constant_like("rom-high", _ROM_HIGH, angles)
    return torch.relu(low - angles) + torch.relu(angles - high)


def rom_violation(poses: torch.Tensor) -> torch.Tensor:
    """(..., 17, 3) -> (..., len(ANGLES)) radians outside the range of motion (0 inside)."""
    return rom_violation_of_angles(joint_angles(poses))


_ANCESTORS = torch.from_numpy(skeleton.ANCESTORS).float()
LEFT_BONES = [left for left, _ in skeleton.SYMMETRIC_BONES]  # indices into BONES
RIGHT_BONES = [right for _, right in skeleton.SYMMETRIC_BONES]


_COUPLING = _ANCESTORS.T @ _ANCESTORS  # (16, 16): joints two bones both move
_JOINTS_MOVED = _COUPLING.diagonal()[:, None].clone()  # (16, 1): joints each bone moves


def _fit_step() -> float:
    """Step size for the direction refinement of :func:`set_bone_lengths` that keeps its
    linearised steps stable even when every bone is collinear (the strongest coupling): 1.5
    over the largest eigenvalue of the bone-coupling matrix normalised by joints moved."""
    coupling, moved = _COUPLING.double(), _JOINTS_MOVED.double()
    return 1.5 / float(torch.linalg.eigvalsh(coupling / torch.sqrt(moved * moved.T)).max())


_FIT_STEP = _fit_step()
# The trunk's short segments (root to each hip, thorax to each shoulder, thorax to nose to
# head) keep their predicted direction in the fit: they carry a limb or the head, so
# turning them would be the cheapest way to move those and would bend the trunk and neck
# out of their range of motion (docs/method.md, "Inference: one consistent skeleton").
KEPT_DIRECTION_BONES = tuple(
    skeleton.bone_index(skeleton.JOINT_NAMES.index(name))
    for name in ("RHip", "LHip", "LShoulder", "RShoulder", "Neck/Nose", "Head")
)
_TURNS = torch.ones(len(skeleton.BONES), 1)
_TURNS[list(KEPT_DIRECTION_BONES)] = 0.0
FIT_ITERATIONS = 10  # refinement steps of the skeleton fit (docs/method.md, "Inference")


def fit_skeleton(
    poses: torch.Tensor,
    symmetric: bool = True,
    causal: bool = False,
    iterations: int = FIT_ITERATIONS,
    range_of_motion: bool = True,
) -> torch.Tensor:
    """One consistent skeleton for a whole sequence (frames, 17, 3), metres.

    Every bone takes its median length over the sequence; with ``causal`` (no future
    frames, for real-time models) frame t takes the mean length over frames 0..t instead.
    With ``symmetric`` left and right segments share the mean of their two lengths. Each
    frame then moves towards the pose with those lengths closest to the input, the trunk's
    short segments keeping their directions (:func:`set_bone_lengths`: ``iterations`` steps
    of the least-squares refinement), and with ``range_of_motion`` an angle below its range
    of motion opens to its limit (:func:`limit_range_of_motion`, lengths kept); the root
    stays where it is.
    """
    # Lengths in float32 at least (half precision is too coarse; set_bone_lengths refines
    # such poses in float32 too).
    lengths = bone_lengths(poses.to(torch.promote_types(poses.dtype, torch.float32)))[..., None]  # (frames, 16, 1)
    if causal:
        count = torch.arange(1, len(poses) + 1, device=poses.device, dtype=lengths.dtype)
        target = lengths.cumsum(dim=0) / count[:, None, None]
    else:
        target = lengths.median(dim=0).values
    fitted = set_bone_lengths(poses, target, symmetric, iterations)
    return limit_range_of_motion(fitted) if range_of_motion else fitted


def set_bone_lengths(
    poses: torch.Tensor, lengths: torch.Tensor, symmetric: bool = True, iterations: int = FIT_ITERATIONS
) -> torch.Tensor:
    """Poses (frames, 17, 3) metres with every bone's length set to ``lengths`` (16, 1) for
    every frame or (frames, 16, 1) per frame, metres; with ``symmetric`` left and right
    segments share the mean of their two lengths. The root stays where it is.

    Each bone first keeps its direction (``iterations=0`` stops there: angles between
    adjacent bones unchanged, but a length change moves every joint below it); then
    ``iterations`` preconditioned projected-gradient steps turn the limbs, spine and thorax
    (not the trunk's short segments, :data:`KEPT_DIRECTION_BONES`) so that the joints move
    as little as possible from the input (least squares over each frame's joints).
    """
    if iterations < 0:
        raise ValueError(f"set_bone_lengths: iterations must be >= 0, got {iterations}")
    if poses.dtype in (torch.float16, torch.bfloat16):  # too coarse for the refinement's steps
        return set_bone_lengths(poses.float(), lengths.float(), symmetric, iterations).to(poses.dtype)
    if symmetric:
        lengths = lengths.clone()
        mean = (lengths[..., LEFT_BONES, :] + lengths[..., RIGHT_BONES, :]) / 2
        lengths[..., LEFT_BONES, :], lengths[..., RIGHT_BONES, :] = mean, mean
    vectors = bone_vectors(poses)
    directions = vectors / safe_norm(vectors)[..., None]
    ancestors = constant_like("ancestors", _ANCESTORS, poses)  # joints = root + ancestors @ bones
    if iterations > 0:
        # Squared joint displacement: its gradient with respect to the bone vectors is
        # coupling @ bones - pulled (pulled: the input's root-relative joints summed over
        # each bone's descendants); a direction moves by that times its length over its
        # curvature when it turns alone (length^2 x the joints it moves), times the step.
        coupling = constant_like("coupling", _COUPLING, poses)
        pulled = ancestors.T @ (poses - poses[:, :1])
        scale = (
            _FIT_STEP
            * constant_like("turns", _TURNS, poses)
            / (lengths.clamp_min(1e-6) * constant_like("joints_moved", _JOINTS_MOVED, poses))
        )
        for _ in range(iterations):
            step = scale * (coupling @ (directions * lengths) - pulled)
            # At most half of each direction may be taken away along itself: a bone pulled
            # much longer than it is would otherwise flip through zero and oscillate.
            along = (step * directions).sum(dim=-1, keepdim=True)
            directions = directions - step + (along - along.clamp_max(0.5)) * directions
            directions = directions / safe_norm(directions)[..., None]
    return poses[:, :1] + ancestors @ (directions * lengths)


# What the range-of-motion limit turns to open each angle: the child-side joint's subtree,
# about that joint's parent (the angle's vertex, except for hip flexion, where it is the
# hip and the angle is at the root), so every other angle of the subtree stays as it is.
_ROM_PIVOTS = tuple(skeleton.PARENTS[child] for _, _, _, child in ANGLES)
# (angles, 17, 1): the joints whose chain from the root runs through the bone ending at c.
_ROM_SUBTREES = _ANCESTORS[:, [skeleton.bone_index(child) for *_, child in ANGLES]].T[..., None]
ROM_ROUNDS = 3  # passes over the angles in limit_range_of_motion


def limit_range_of_motion(poses: torch.Tensor, margin_deg: float = 0.01, rounds: int = ROM_ROUNDS) -> torch.Tensor:
    """Poses (..., 17, 3), metres, with every angle below its range of motion opened to
    ``margin_deg`` inside it; poses inside their ranges come back unchanged.

    Each angle (parent p, vertex v, child c) opens by turning c's subtree rigidly about c's
    parent, in the plane of v->p and v->c (all upper limits are 180 degrees, so only too
    small angles occur): bone lengths and every angle within the subtree are kept. The turn
    is exact when the pivot is the vertex, first-order for hip flexion (pivot at the hip);
    ``rounds`` passes over the angles, proximal first, settle those and the angles that
    share a limb (hip ab/adduction and flexion).
    """
    if poses.dtype in (torch.float16, torch.bfloat16):
        return limit_range_of_motion(poses.float(), margin_deg, rounds).to(poses.dtype)
    flat = poses.reshape(-1, skeleton.NUM_JOINTS, 3)
    outside = outside_rom(flat).nonzero().flatten()  # the only frames that change
    if len(outside) == 0:
        return poses
    fixed = _open_angles(flat[outside], constant_like("rom-low", _ROM_LOW, poses), math.radians(margin_deg), rounds)
    return flat.index_copy(0, outside, fixed).reshape(poses.shape)


def _open_angles(poses: torch.Tensor, low: torch.Tensor, margin: float, rounds: int) -> torch.Tensor:
    """:func:`limit_range_of_motion` on (frames, 17, 3) poses that each have an angle below
    ``low`` (radians)."""
    subtrees = constant_like("rom-subtrees", _ROM_SUBTREES, poses) > 0
    fallback = poses.new_tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for _ in range(rounds):
        for k, (_, parent, vertex, child) in enumerate(ANGLES):
            angle = joint_angles(poses)[:, k]
            short = torch.where(angle < low[k], low[k] + margin - angle, torch.zeros_like(angle))  # radians to open
            u = poses[:, parent] - poses[:, vertex]
            w = poses[:, child] - poses[:, vertex]
            lever = poses[:, child] - poses[:, _ROM_PIVOTS[k]]
            # Turn axis: u x w opens the angle; at a fully folded joint any axis normal to w.
            axis = torch.cross(u, w, dim=-1)
            spare = torch.cross(w, fallback[(w[:, 0].abs() > w[:, 1].abs()).long()], dim=-1)
            folded = axis.norm(dim=-1) <= 1e-6 * u.norm(dim=-1) * w.norm(dim=-1)
            axis = torch.where(folded[:, None], spare, axis)
            n = (axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-30))[:, None, :]  # exactly unit: a rotation
            # Turning c by t about the pivot opens the angle by t (lever . w) / |w|^2.
            reach = (lever * w).sum(dim=-1) / (w * w).sum(dim=-1).clamp_min(EPS)
            turn = (short / reach.clamp_min(0.25)).clamp_max(math.pi / 2)[:, None, None]
            pivot = poses[:, _ROM_PIVOTS[k], None]
            x = poses - pivot
            turned = (
                pivot
                + x * torch.cos(turn)
                + torch.cross(n.expand_as(x), x, dim=-1) * torch.sin(turn)
                + n * (n * x).sum(dim=-1, keepdim=True) * (1 - torch.cos(turn))
            )
            move = (turn > 0) & subtrees[k] & (safe_norm(w) > 1e-6)[:, None, None]
            poses = torch.where(move, turned, poses)
    return poses


def outside_rom(poses: torch.Tensor, margin_deg: float = 0.0) -> torch.Tensor:
    """(..., 17, 3) -> (...) bool: any angle more than ``margin_deg`` outside its range."""
    return (rom_violation(poses) > math.radians(margin_deg)).any(dim=-1)
