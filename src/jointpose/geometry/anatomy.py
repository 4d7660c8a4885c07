"""Joint angles, bone lengths, limb segments and ranges of motion on a skeleton's poses.

Every angle here is the angle at the middle joint of a (parent, joint, child) triple: the
angle between the vectors from the joint to the other two, in [0, pi] radians. It is
unsigned, which shapes how published limits map onto it (see
:data:`jointpose.geometry.skeleton.H36M_17`'s ranges).

All functions take (..., J, 3) tensors in metres and work for any leading dimensions,
on any device, without Python loops over frames or joints. J picks the skeleton
(:func:`jointpose.geometry.skeleton.for_joints`: 17 Human3.6M, 15 HumanEva-I), whose
constant matrices :func:`tables` builds once; the module-level tables (``ANGLES``,
``RANGE_OF_MOTION``...) are Human3.6M-17's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from jointpose.geometry import skeleton
from jointpose.safeio import float_array

EPS = 1e-12

# Each published range of motion (skeleton.Skeleton.published_rom; the sources and how they
# map onto these unsigned angles are given beside Human3.6M-17's table) is widened by this
# tolerance for joint-centre placement (markers and detector joints sit on the skin, not on
# the joint centre), and clipped to [0, 180] degrees.
ROM_TOLERANCE = 15.0


def rom_degrees(layout: skeleton.Skeleton) -> dict[str, tuple[float, float]]:
    """{angle name: (low, high)} degrees of ``layout``'s ranges of motion, tolerance included."""
    return {
        name: (max(0.0, low - ROM_TOLERANCE), min(180.0, high + ROM_TOLERANCE))
        for (name, *_), (low, high) in zip(layout.angles, layout.published_rom)
    }


# Human3.6M-17's tables under their long-standing names.
ANGLES: tuple[tuple[str, int, int, int], ...] = skeleton.H36M_17.angles  # (name, parent-side, vertex, child-side)
ANGLE_NAMES: tuple[str, ...] = tuple(a[0] for a in ANGLES)
RANGE_OF_MOTION: dict[str, tuple[float, float]] = rom_degrees(skeleton.H36M_17)  # degrees
# Segments compared as ratios (numerator bone, denominator bone), as indices into BONES:
# upper/lower arm and upper/lower leg per side, left/right hip and shoulder widths.
RATIO_SEGMENTS: tuple[tuple[int, int], ...] = skeleton.H36M_17.ratio_bones
KEPT_DIRECTION_BONES = skeleton.H36M_17.kept_direction_bones  # bones the skeleton fit does not turn
FIT_ITERATIONS = 10  # refinement steps of the skeleton fit (docs/method.md, "Inference")
ROM_ROUNDS = 3  # passes over the angles in limit_range_of_motion


def _difference_matrix(pairs, num_joints: int) -> torch.Tensor:
    """(len(pairs), joints): row k picks joint pairs[k][0] minus joint pairs[k][1]."""
    matrix = torch.zeros(len(pairs), num_joints)
    for k, (plus, minus) in enumerate(pairs):
        matrix[k, plus] += 1.0
        matrix[k, minus] -= 1.0
    return matrix


class Tables:
    """The constant matrices of one skeleton's anatomy (CPU; float32, limits float64).

    Args:
        layout: the skeleton they describe.
    """

    def __init__(self, layout: skeleton.Skeleton) -> None:
        self.skeleton, n = layout, layout.num_joints
        # Bone vectors and the two arms of every angle are linear in the joint positions:
        # one matrix product each (cheaper to differentiate than gathering joints by index).
        self.bone_matrix = _difference_matrix(layout.bones, n)
        self.angle_arms = torch.cat(
            [
                _difference_matrix([(a, v) for _, a, v, _ in layout.angles], n),
                _difference_matrix([(b, v) for _, _, v, b in layout.angles], n),
            ]
        )
        rom = rom_degrees(layout)
        self.rom_low = torch.tensor([math.radians(rom[a[0]][0]) for a in layout.angles], dtype=torch.float64)
        self.rom_high = torch.tensor([math.radians(rom[a[0]][1]) for a in layout.angles], dtype=torch.float64)
        self.ancestors = torch.from_numpy(layout.ancestors).float()  # joints = root + ancestors @ bones
        self.left_bones = [left for left, _ in layout.symmetric_bones]
        self.right_bones = [right for _, right in layout.symmetric_bones]
        self.coupling = self.ancestors.T @ self.ancestors  # (bones, bones): joints two bones both move
        self.joints_moved = self.coupling.diagonal()[:, None].clone()  # (bones, 1): joints each bone moves
        # Step size for the direction refinement of set_bone_lengths that keeps its
        # linearised steps stable even when every bone is collinear (the strongest
        # coupling): 1.5 over the largest eigenvalue of the coupling normalised by joints moved.
        coupling, moved = self.coupling.double(), self.joints_moved.double()
        self.fit_step = 1.5 / float(torch.linalg.eigvalsh(coupling / torch.sqrt(moved * moved.T)).max())
        self.turns = torch.ones(len(layout.bones), 1)
        self.turns[list(layout.kept_direction_bones)] = 0.0
        # What the range-of-motion limit turns to open each angle: the child-side joint's
        # subtree, about that joint's parent (the angle's vertex, except for hip flexion,
        # where it is the hip and the angle is at the root), so every other angle of the
        # subtree stays as it is. Subtrees (angles, joints, 1): the joints whose chain from
        # the root runs through the bone ending at the child.
        self.rom_pivots = tuple(layout.parents[child] for *_, child in layout.angles)
        self.rom_subtrees = self.ancestors[:, [skeleton.bone_index(child) for *_, child in layout.angles]].T[..., None]

    def const(self, name: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``value`` on ``like``'s device and dtype (converted once per skeleton and name)."""
        return constant_like(f"{self.skeleton.name}/{name}", value, like)


@functools.cache
def _tables_of(name: str) -> Tables:
    return Tables(skeleton.SKELETONS[name])


def tables(num_joints: int) -> Tables:
    """The anatomy tables of the skeleton with ``num_joints`` joints (17 or 15)."""
    return _tables_of(skeleton.for_joints(num_joints).name)


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def constant_like(name: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` on ``like``'s device and dtype, converted once per (name, device, dtype).

    The copy kept is an ordinary tensor even when first asked for under
    ``torch.inference_mode()``: an inference tensor kept here would break every later
    backward pass through it."""
    key = (name, like.device, like.dtype)
    if key not in _CONSTANTS:
        with torch.inference_mode(False):
            _CONSTANTS[key] = value.to(device=like.device, dtype=like.dtype).clone()
    return _CONSTANTS[key]


def safe_norm(v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Euclidean norm with a finite gradient at zero (float16 computed in float32, where
    :data:`EPS` exists)."""
    w = _wide(v)
    return torch.sqrt((w * w).sum(dim=dim) + EPS).to(v.dtype)


def _wide(v: torch.Tensor) -> torch.Tensor:
    """``v`` in float32 where it is float16: :data:`EPS` underflows to 0 there, and squared
    lengths of a few metres overflow."""
    return v.float() if v.dtype == torch.float16 else v


def bone_vectors(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> (..., J - 1, 3): child minus parent for every bone of the skeleton with
    J joints (``skeleton.BONES`` for Human3.6M-17)."""
    t = tables(poses.shape[-2])
    return t.const("bones", t.bone_matrix, poses) @ poses


def bone_lengths(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> (..., J - 1) bone lengths in metres."""
    return safe_norm(bone_vectors(poses))


def joint_angles(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> (..., angles) angles at the middle joint of each of the skeleton's
    triples (``ANGLES`` for Human3.6M-17), radians.

    atan2(|u x v|, u . v) with |u x v| smoothed by 1e-6 |u| |v|: differentiable at straight
    and folded joints (0 and 180 degrees, where |u x v| has a kink) and finite for
    zero-length arms; off by at most 1e-3 rad at 0 and 180 degrees and by less than 1e-5 rad
    a few degrees away. The cross product is computed exactly: the shortcut
    |u|^2 |v|^2 - (u . v)^2 cancels near 0 and 180 degrees, where float32 rounding then moves
    the gradient enough that one process and two (the same batch split differently) train
    apart within a few steps.
    """
    t = tables(poses.shape[-2])
    n = len(t.skeleton.angles)
    arms = t.const("arms", t.angle_arms, poses) @ poses  # (..., 2 * n_angles, 3)
    return _angle(arms[..., :n, :], arms[..., n:, :])


def _angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The angle (radians) between arms ``u`` and ``v`` (..., 3), as :func:`joint_angles` says."""
    dtype, u, v = u.dtype, _wide(u), _wide(v)
    cross = torch.roll(u, -1, dims=-1) * torch.roll(v, -2, dims=-1) - torch.roll(u, -2, dims=-1) * torch.roll(
        v, -1, dims=-1
    )
    scale = (u * u).sum(dim=-1) * (v * v).sum(dim=-1)
    sin_part = torch.sqrt((cross * cross).sum(dim=-1) + 1e-6 * scale + EPS)
    return torch.atan2(sin_part, (u * v).sum(dim=-1)).to(dtype)


def rom_violation_of_angles(angles: torch.Tensor, layout: skeleton.Skeleton = skeleton.H36M_17) -> torch.Tensor:
    """How far (radians, >= 0) each of ``layout``'s angles (..., angles) lies outside its range; 0 inside."""
    t = tables(layout.num_joints)
    low, high = t.const("rom-low", t.rom_low, angles), t.const("rom-high", t.rom_high, angles)
    return torch.relu(low - angles) + torch.relu(angles - high)


def rom_violation(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> (..., angles) radians outside the range of motion (0 inside)."""
    return rom_violation_of_angles(joint_angles(poses), skeleton.for_joints(poses.shape[-2]))


def fit_skeleton(
    poses: torch.Tensor,
    symmetric: bool = True,
    causal: bool = False,
    iterations: int = FIT_ITERATIONS,
    range_of_motion: bool = True,
    frames: Sequence[int] | None = None,
) -> torch.Tensor:
    """One consistent skeleton for a whole sequence (frames, J, 3), metres; with ``frames``
    (frame counts summing to ``len(poses)``), one for each of several sequences stored one
    after another, fitted together (the same result as one call per sequence, in far fewer
    operations).

    Every bone takes its median length over the sequence; with ``causal`` (no future
    frames, for real-time models) frame t takes the mean length over frames 0..t instead.
    With ``symmetric`` left and right segments share the mean of their two lengths. Each
    frame then moves towards the pose with those lengths closest to the input, the trunk's
    short segments keeping their directions (:func:`set_bone_lengths`: ``iterations`` steps
    of the least-squares refinement), and with ``range_of_motion`` an angle below its range
    of motion opens to its limit (:func:`limit_range_of_motion`, lengths kept); the root
    stays where it is. A frame holding NaN comes out NaN and the lengths come from the other
    frames. A numpy array (or nested lists) in gives a numpy array out.
    """
    if not isinstance(poses, torch.Tensor):
        tensor = torch.from_numpy(float_array(poses, "poses"))
        return fit_skeleton(tensor, symmetric, causal, iterations, range_of_motion, frames).numpy()
    # Lengths in float32 at least (half precision is too coarse; set_bone_lengths refines
    # such poses in float32 too).
    lengths = bone_lengths(poses.to(torch.promote_types(poses.dtype, torch.float32)))[..., None]  # (frames, bones, 1)
    parts = lengths.split(list(frames)) if frames is not None else [lengths]
    if causal:
        seen = [torch.isfinite(part) for part in parts]
        target = torch.cat(
            [torch.where(ok, part, 0.0).cumsum(dim=0) / ok.cumsum(dim=0) for part, ok in zip(parts, seen)]
        )
    elif frames is None:
        target = lengths.nanmedian(dim=0).values
    else:
        target = torch.cat([part.nanmedian(dim=0).values.expand_as(part) for part in parts])
    fitted = set_bone_lengths(poses, target, symmetric, iterations)
    return limit_range_of_motion(fitted) if range_of_motion else fitted


def set_bone_lengths(
    poses: torch.Tensor, lengths: torch.Tensor, symmetric: bool = True, iterations: int = FIT_ITERATIONS
) -> torch.Tensor:
    """Poses (frames, J, 3) metres with every bone's length set to ``lengths`` (J - 1, 1) for
    every frame or (frames, J - 1, 1) per frame, metres; with ``symmetric`` left and right
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
    t = tables(poses.shape[-2])
    if symmetric:
        lengths = lengths.clone()
        mean = (lengths[..., t.left_bones, :] + lengths[..., t.right_bones, :]) / 2
        lengths[..., t.left_bones, :], lengths[..., t.right_bones, :] = mean, mean
    vectors = bone_vectors(poses)
    directions = vectors / safe_norm(vectors)[..., None]
    ancestors = t.const("ancestors", t.ancestors, poses)  # joints = root + ancestors @ bones
    if iterations > 0:
        # Squared joint displacement: its gradient with respect to the bone vectors is
        # coupling @ bones - pulled (pulled: the input's root-relative joints summed over
        # each bone's descendants); a direction moves by that times its length over its
        # curvature when it turns alone (length^2 x the joints it moves), times the step.
        coupling = t.const("coupling", t.coupling, poses)
        pulled = ancestors.T @ (poses - poses[:, :1])
        scale = (
            t.fit_step
            * t.const("turns", t.turns, poses)
            / (lengths.clamp_min(1e-6) * t.const("joints_moved", t.joints_moved, poses))
        )
        for _ in range(iterations):
            step = scale * (coupling @ (directions * lengths) - pulled)
            # At most half of each direction may be taken away along itself: a bone pulled
            # much longer than it is would otherwise flip through zero and oscillate.
            along = (step * directions).sum(dim=-1, keepdim=True)
            directions = directions - step + (along - along.clamp_max(0.5)) * directions
            directions = directions / safe_norm(directions)[..., None]
    return poses[:, :1] + ancestors @ (directions * lengths)


def limit_range_of_motion(poses: torch.Tensor, margin_deg: float = 0.01, rounds: int = ROM_ROUNDS) -> torch.Tensor:
    """Poses (..., J, 3), metres, with every angle below its range of motion opened to
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
    t = tables(poses.shape[-2])
    flat = poses.reshape(-1, t.skeleton.num_joints, 3)
    outside = outside_rom(flat).nonzero().flatten()  # the only frames that change
    if len(outside) == 0:
        return poses
    fixed = _open_angles(flat[outside], t, t.const("rom-low", t.rom_low, poses), math.radians(margin_deg), rounds)
    return flat.index_copy(0, outside, fixed).reshape(poses.shape)


def _open_angles(poses: torch.Tensor, t: Tables, low: torch.Tensor, margin: float, rounds: int) -> torch.Tensor:
    """:func:`limit_range_of_motion` on (frames, J, 3) poses of ``t``'s skeleton that each
    have an angle below ``low`` (radians)."""
    subtrees = t.const("rom-subtrees", t.rom_subtrees, poses) > 0
    fallback = poses.new_tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for _ in range(rounds):
        for k, (_, parent, vertex, child) in enumerate(t.skeleton.angles):
            u = poses[:, parent] - poses[:, vertex]
            w = poses[:, child] - poses[:, vertex]
            angle = _angle(u, w)
            below = angle < low[k]
            if not bool(below.any()):  # nothing to open: the pass would leave every pose as it is
                continue
            short = torch.where(below, low[k] + margin - angle, torch.zeros_like(angle))  # radians to open
            lever = poses[:, child] - poses[:, t.rom_pivots[k]]
            # Turn axis: u x w opens the angle; at a fully folded joint any axis normal to w.
            axis = torch.cross(u, w, dim=-1)
            spare = torch.cross(w, fallback[(w[:, 0].abs() > w[:, 1].abs()).long()], dim=-1)
            folded = axis.norm(dim=-1) <= 1e-6 * u.norm(dim=-1) * w.norm(dim=-1)
            axis = torch.where(folded[:, None], spare, axis)
            n = (axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-30))[:, None, :]  # exactly unit: a rotation
            # Turning c by t about the pivot opens the angle by t (lever . w) / |w|^2.
            reach = (lever * w).sum(dim=-1) / (w * w).sum(dim=-1).clamp_min(EPS)
            turn = (short / reach.clamp_min(0.25)).clamp_max(math.pi / 2)[:, None, None]
            pivot = poses[:, t.rom_pivots[k], None]
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
    """(..., J, 3) -> (...) bool: any angle more than ``margin_deg`` outside its range."""
    return (rom_violation(poses) > math.radians(margin_deg)).any(dim=-1)
