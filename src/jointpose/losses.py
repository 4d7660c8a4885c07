"""Joint-aware constraint losses on batched pose sequences.

Poses are (batch, frames, J, 3) tensors in metres (camera space, root-relative); J picks
the skeleton (:func:`jointpose.geometry.skeleton.for_joints`: 17 Human3.6M, 15 HumanEva-I
joints). Each term is one function returning a scalar (a mean over the batch and frames);
it takes the poses or what several terms share, computed once from them: bone lengths
(``anatomy.bone_lengths``, (batch, frames, J - 1) m), joint angles (``anatomy.joint_angles``,
(batch, frames, angles) rad; 12 on Human3.6M-17) and the skeleton itself.
:data:`TERM_FUNCTIONS` says which function and inputs make each term;
:class:`JointAwareLoss` computes exactly those. Terms are built from torch operations
on their inputs only, so gradients reach the network; they stay finite on degenerate poses
(zero-length bones, coincident joints) through safe norms and atan2.

Terms and units:

========================= ================================================ ==========
name                      what it compares                                 unit
========================= ================================================ ==========
``mpjpe``                 joint positions vs truth                         m
``sym``                   left vs right length of 6 segment pairs          m
``bone``                  bone-length variance over frames (m^2), length m^2 + 1 + m
                          error vs truth (m) and segment-proportion error
``angle``                 joint angles vs truth                            rad
``rom``                   angles outside their range of motion (smooth     rad
                          hinge, 0.1 rad corner)
``vel`` / ``acc``         1st / 2nd temporal difference of positions       m/frame(^2)
                          (per-joint error norm, smoothed below 1 mm)
``ang_vel`` / ``ang_acc`` 1st / 2nd temporal difference of joint angles    rad/frame(^2)
``stretch``               each bone's length vs its own mean over the      1 (share of
                          sequence (scale-free; no true length involved)   the length)
========================= ================================================ ==========

With a trajectory model, :func:`trajectory_loss` (m, weighted by 1 / depth) trains the
root's camera-space position beside the pose. Semi-supervised training (VideoPose3D's
back-projection) adds, on unlabelled 2D:
:func:`reprojection_loss` (predicted joints projected back to the input, screen units),
:func:`bone_length_guard` (m), and the terms that need no ground truth
(:data:`TARGET_FREE_TERMS`, with :func:`bone_consistency` as the target-free part of
``bone``), through :func:`target_free_terms`; where the unlabelled recordings have several
calibrated cameras, :func:`view_consistency` (m) compares the predictions of one frame
seen through two of them.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.anatomy import (
    bone_lengths,
    constant_like,
    joint_angles,
    rom_violation_of_angles,
    safe_norm,
)
from jointpose.geometry.cameras import distort
from jointpose.safeio.limits import check_switch

TERMS = ("mpjpe", "sym", "bone", "angle", "rom", "vel", "acc", "ang_vel", "ang_acc", "stretch")
CONSTRAINT_TERMS = TERMS[1:]  # every term but MPJPE: those with a --w-* flag
TEMPORAL_TERMS = ("vel", "acc", "ang_vel", "ang_acc")  # differences over frames: none within one frame

# Absolute differences are taken with a Huber (smooth L1) corner this small: L1 in effect,
# but differentiable everywhere, so tiny numerical differences cannot flip a gradient.
LENGTH_BETA = 1e-3  # metres
ANGLE_BETA = 1e-3  # radians
RATIO_BETA = 1e-3
ROM_BETA = 0.1  # radians: the range-of-motion hinge bends in over ~6 degrees
MIN_DEPTH = 0.1  # metres: depths are clamped here (predicted ones in the back-projection, true ones in trajectory_loss)
MAX_WEIGHT = 1e6  # a loss weight beyond it overflows the sum and is no tuning (the defaults are 1e-2 to 1)


def huber(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Elementwise smooth |x|: quadratic below ``beta``, |x| - beta / 2 above."""
    return F.smooth_l1_loss(x, torch.zeros_like(x), beta=beta, reduction="none")


def _selector(indices, num_bones: int) -> torch.Tensor:
    """(bones, len(indices)) matrix: ``lengths @ it`` picks those bones (a matmul, cheap backward)."""
    matrix = torch.zeros(num_bones, len(indices))
    matrix[list(indices), range(len(indices))] = 1.0
    return matrix


@functools.cache
def _selectors(name: str) -> dict[str, torch.Tensor]:
    """The bone selectors of skeleton ``name``: left minus right of its symmetric pairs,
    numerator and sum of its proportion pairs."""
    layout = skeleton.SKELETONS[name]
    pairs, ratios, bones = layout.symmetric_bones, layout.ratio_bones, len(layout.bones)
    numerator = _selector([a for a, _ in ratios], bones)
    return {
        "left-right": _selector([left for left, _ in pairs], bones) - _selector([right for _, right in pairs], bones),
        "ratio-num": numerator,
        "ratio-sum": numerator + _selector([b for _, b in ratios], bones),
    }


def _select(name: str, layout: skeleton.Skeleton, like: torch.Tensor) -> torch.Tensor:
    """Selector ``name`` of ``layout`` on ``like``'s device and dtype."""
    return constant_like(f"{layout.name}/{name}", _selectors(layout.name)[name], like)


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Term ``mpjpe``: mean per-joint position error of (..., J, 3) poses, metres."""
    return safe_norm(pred - target).mean()


def weighted_mpjpe(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """MPJPE in metres with per-joint (or per-sample) weights broadcastable to the per-joint
    errors (..., joints); weights that would enlarge that shape are refused."""
    errors = safe_norm(pred - target)
    if torch.broadcast_shapes(weights.shape, errors.shape) != errors.shape:
        raise ValueError(
            f"weighted_mpjpe: weights of shape {tuple(weights.shape)} do not broadcast to the "
            f"per-joint errors {tuple(errors.shape)} (one weight per joint or per sample)"
        )
    return (weights * errors).mean()


def trajectory_loss(pred_root: torch.Tensor, true_root: torch.Tensor) -> torch.Tensor:
    """VideoPose3D's trajectory term: the root's distance (metres) from its true camera-space
    position, weighted by 1 / its true depth (clamped at :data:`MIN_DEPTH`), so that far
    people, whose depth is harder to tell, count less: metres per metre of depth (unitless).
    (N, 1, 3) metres each."""
    return weighted_mpjpe(pred_root, true_root, 1.0 / true_root[..., 2].clamp_min(MIN_DEPTH))


def symmetry_loss(pred_lengths: torch.Tensor, layout: skeleton.Skeleton = skeleton.H36M_17) -> torch.Tensor:
    """Term ``sym``: mean |left - right| length of ``layout``'s symmetric segment pairs (hip,
    thigh, shin, shoulder, upper arm, forearm), from (..., bones) lengths in metres; metres."""
    return huber(pred_lengths @ _select("left-right", layout, pred_lengths), LENGTH_BETA).mean()


def bone_consistency(pred_lengths: torch.Tensor) -> torch.Tensor:
    """Variance over frames (dim -2) of each bone length, averaged; (batch, frames, bones) m -> m^2.

    Fewer than 2 frames -> a zero still attached to the graph.
    """
    if pred_lengths.shape[-2] < 2:
        return pred_lengths.sum() * 0.0
    return pred_lengths.var(dim=-2, unbiased=False).mean()


def bone_ratio_error(
    pred_lengths: torch.Tensor, true_lengths: torch.Tensor, layout: skeleton.Skeleton = skeleton.H36M_17
) -> torch.Tensor:
    """Mean |predicted - true| proportion of ``layout``'s limb-segment pairs (upper/lower arm and
    leg, left/right hip and shoulder widths), each pair (a, b) as a / (a + b); (..., bones)
    lengths in metres.

    a / (a + b) carries the same information as the ratio a / b but stays in [0, 1] with a
    bounded gradient, so a short segment cannot blow the loss up.
    """
    num, total = _select("ratio-num", layout, pred_lengths), _select("ratio-sum", layout, pred_lengths)

    def share(lengths: torch.Tensor) -> torch.Tensor:
        return (lengths @ num) / (lengths @ total + 1e-6)

    return huber(share(pred_lengths) - share(true_lengths), RATIO_BETA).mean()


def bone_length_error(pred_lengths: torch.Tensor, true_lengths: torch.Tensor) -> torch.Tensor:
    """Mean |predicted - true| bone length over (..., bones) lengths, metres."""
    return huber(pred_lengths - true_lengths, LENGTH_BETA).mean()


def bone_loss(
    pred_lengths: torch.Tensor, true_lengths: torch.Tensor, layout: skeleton.Skeleton = skeleton.H36M_17
) -> torch.Tensor:
    """Term ``bone``: :func:`bone_consistency` (m^2) + :func:`bone_ratio_error` + :func:`bone_length_error` (m),
    from (batch, frames, bones) predicted and true bone lengths of ``layout`` in metres."""
    return (
        bone_consistency(pred_lengths)
        + bone_ratio_error(pred_lengths, true_lengths, layout)
        + bone_length_error(pred_lengths, true_lengths)
    )


def bone_stretch(pred_lengths: torch.Tensor) -> torch.Tensor:
    """Term ``stretch``: how far each bone's length strays from its own mean over the sequence.

    Mean over sequences, frames and the J - 1 bones of |l_t / mean_t(l) - 1| (Huber corner
    1e-3), from (batch, frames, J - 1) predicted bone lengths in metres; dimensionless (a share
    of the bone's mean length). It compares the prediction with itself only, never with a
    training person's true lengths, and is unchanged when the whole skeleton is scaled.
    Fewer than 2 frames -> a zero still attached to the graph.
    """
    if pred_lengths.shape[-2] < 2:
        return pred_lengths.sum() * 0.0
    mean = pred_lengths.mean(dim=-2, keepdim=True)
    return huber(pred_lengths / (mean + 1e-6) - 1.0, RATIO_BETA).mean()


def angle_loss(pred_angles: torch.Tensor, true_angles: torch.Tensor) -> torch.Tensor:
    """Term ``angle``: mean absolute joint-angle error over (..., angles) joint angles
    (:data:`~jointpose.geometry.anatomy.ANGLES` on Human3.6M-17), radians."""
    return huber(pred_angles - true_angles, ANGLE_BETA).mean()


def range_of_motion_loss(pred_angles: torch.Tensor, layout: skeleton.Skeleton = skeleton.H36M_17) -> torch.Tensor:
    """Term ``rom``: mean hinge penalty of ``layout``'s (..., angles) joint angles outside their
    anatomical range, radians."""
    return huber(rom_violation_of_angles(pred_angles, layout), ROM_BETA).mean()


def temporal_difference_error(pred: torch.Tensor, target: torch.Tensor, order: int, vector: bool) -> torch.Tensor:
    """Error of the ``order``-th difference along frames (dim 1 of (batch, frames, ...)).

    ``vector``: the last dimension holds coordinates (norm per joint); otherwise scalars.
    Too few frames -> a zero still attached to the graph.
    """
    if pred.shape[1] <= order:
        return pred.sum() * 0.0
    diff = torch.diff(pred, n=order, dim=1) - torch.diff(target, n=order, dim=1)
    if vector:  # pseudo-Huber of the per-joint error: about |e| - 1 mm above 1 mm, smooth (no kink) below
        return (torch.sqrt((diff * diff).sum(dim=-1) + LENGTH_BETA**2) - LENGTH_BETA).mean()
    return huber(diff, ANGLE_BETA).mean()


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Term ``vel``: mean per-joint velocity error of (batch, frames, J, 3) poses, metres per frame."""
    return temporal_difference_error(pred, target, 1, vector=True)


def acceleration_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Term ``acc``: mean per-joint acceleration error, metres per frame squared."""
    return temporal_difference_error(pred, target, 2, vector=True)


def angular_velocity_loss(pred_angles: torch.Tensor, true_angles: torch.Tensor) -> torch.Tensor:
    """Term ``ang_vel``: mean joint-angle velocity error of (batch, frames, angles) angles, radians per frame."""
    return temporal_difference_error(pred_angles, true_angles, 1, vector=False)


def angular_acceleration_loss(pred_angles: torch.Tensor, true_angles: torch.Tensor) -> torch.Tensor:
    """Term ``ang_acc``: mean joint-angle acceleration error, radians per frame squared."""
    return temporal_difference_error(pred_angles, true_angles, 2, vector=False)


# What the terms are computed from: the poses themselves, their skeleton ("layout", found
# from the joint count), or an intermediate result that several terms share (computed once
# per call, from the predicted or the true poses).
_INTERMEDIATES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "pred": lambda pred, target: pred,
    "target": lambda pred, target: target,
    "pred_lengths": lambda pred, target: bone_lengths(pred),
    "true_lengths": lambda pred, target: bone_lengths(target),
    "pred_angles": lambda pred, target: joint_angles(pred),
    "true_angles": lambda pred, target: joint_angles(target),
}

# term -> (function, names of its arguments in _INTERMEDIATES): exactly what JointAwareLoss calls.
TERM_FUNCTIONS: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...]]] = {
    "mpjpe": (mpjpe, ("pred", "target")),
    "sym": (symmetry_loss, ("pred_lengths", "layout")),
    "bone": (bone_loss, ("pred_lengths", "true_lengths", "layout")),
    "angle": (angle_loss, ("pred_angles", "true_angles")),
    "rom": (range_of_motion_loss, ("pred_angles", "layout")),
    "vel": (velocity_loss, ("pred", "target")),
    "acc": (acceleration_loss, ("pred", "target")),
    "ang_vel": (angular_velocity_loss, ("pred_angles", "true_angles")),
    "ang_acc": (angular_acceleration_loss, ("pred_angles", "true_angles")),
    "stretch": (bone_stretch, ("pred_lengths",)),
}


# Terms that compare the frames of one sequence with each other (the temporal ones among
# them): on unlabelled windows, only within a chunk (single windows of different people are
# no sequence).
SEQUENCE_TERMS = (*TEMPORAL_TERMS, "stretch")
# The terms whose inputs hold no ground truth: they apply to unlabelled predictions too.
TARGET_FREE_TERMS = tuple(
    name
    for name, (_, inputs) in TERM_FUNCTIONS.items()
    if not any(key == "target" or key.startswith("true_") for key in inputs)
)


def project_to_input(points: torch.Tensor, intrinsics: torch.Tensor, min_depth: float = MIN_DEPTH) -> torch.Tensor:
    """Projection of camera-space points into the network's input coordinates, through the
    lens where one is given.

    Args:
        points: (..., joints, 3) camera-space positions, metres (x right, y down, z forward).
        intrinsics: (..., 4) the camera's (fx, fy, cx, cy) in input units, one row per
            sample (``points``' leading shape), or (..., 10) with the lens after them: k1,
            k2, k3, p1, p2 and the model (1: Human3.6M's, 0: OpenCV's;
            :func:`jointpose.geometry.cameras.distort` gives both formulas), or
            (..., 12) with the screen units after those (not used here).
        min_depth: depths are clamped to at least this (metres), so a predicted root behind
            the camera cannot divide by zero.

    Returns:
        (..., joints, 2) input coordinates: (fx x' + cx, fy y' + cy), where (x', y') is
        (X / Z, Y / Z) through the lens. The lens's displacement is evaluated at (X / Z, Y / Z)
        clamped to [-1, 1] (45 degrees off the axis, as VideoPose3D's projection), so that
        the polynomial cannot explode for a prediction far outside the image.
    """
    xy = points[..., :2] / points[..., 2:].clamp_min(min_depth)
    if intrinsics.shape[-1] >= 10:
        lens = intrinsics[..., None, 4:10]
        k1, k2, k3, p1, p2, h36m = (lens[..., i] for i in range(6))
        clamped = xy.clamp(-1.0, 1.0)
        x, y = clamped.unbind(-1)
        h36m_xy, opencv_xy = (
            torch.stack(distort(x, y, (k1, k2, k3), (p1, p2), model), dim=-1) for model in ("h36m", "opencv")
        )
        distorted = torch.where(h36m[..., None] > 0.5, h36m_xy, opencv_xy)
        xy = xy + (distorted - clamped)
    return xy * intrinsics[..., None, :2] + intrinsics[..., None, 2:4]


def reprojection_loss(
    poses: torch.Tensor, root: torch.Tensor, intrinsics: torch.Tensor, keypoints: torch.Tensor
) -> torch.Tensor:
    """Mean per-joint 2D distance between predicted joints projected back to the input and
    the input keypoints (VideoPose3D's semi-supervised reconstruction loss).

    Args:
        poses: (N, J, 3) predicted root-relative poses, metres.
        root: (N, 1, 3) predicted root positions in camera space (the trajectory model), metres.
        intrinsics: (N, 4) (fx, fy, cx, cy) in input units, (N, 10) with the lens
            (:func:`project_to_input`), or (N, 12) with the screen units per input unit
            along x and y after the lens (:func:`jointpose.geometry.cameras.input_projection`).
        keypoints: (N, 17, 2) the 2D input at the predicted frames, input units.

    Returns:
        The mean distance: in screen units (VideoPose3D's, 2 / image width per pixel) with
        (N, 12) intrinsics, so that the loss weighs a pixel alike whatever the input's
        normalisation; in input units otherwise.
    """
    error = project_to_input(poses + root, intrinsics) - keypoints
    if intrinsics.shape[-1] == 12:
        error = error * intrinsics[..., None, 10:12]
    return safe_norm(error).mean()


def bone_length_guard(pred_lengths: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean over bones of |mean predicted length - reference length|: VideoPose3D's guard
    that keeps unlabelled predictions from shrinking towards the camera.

    Args:
        pred_lengths: (..., J - 1) bone lengths of the unlabelled predictions, metres.
        reference: (J - 1,) mean bone lengths of the labelled subjects, metres.

    Returns:
        The mean absolute difference of the per-bone means, metres.
    """
    return (pred_lengths.reshape(-1, pred_lengths.shape[-1]).mean(dim=0) - reference).abs().mean()


def view_consistency(
    anchor: torch.Tensor,
    anchor_root: torch.Tensor,
    partner: torch.Tensor,
    partner_root: torch.Tensor,
    motion: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """Multi-view consistency: the prediction through one camera, moved into a second
    camera's space with the calibration, against the prediction of the same frame through
    that second camera. The sum of two parts: the mean per-joint distance of the
    root-relative poses (metres), and the distance of the root positions divided by the
    second camera's predicted root depth (a relative error, as the trajectory loss weights by
    1 / depth; without it the roots' metres of depth error swamp the pose).

    Args:
        anchor, partner: (P, J, 3) root-relative poses predicted through the two cameras, metres.
        anchor_root, partner_root: (P, 1, 3) root positions in each camera's space, metres.
        motion: (P, 3, 4) [R | t] from the anchor's camera space into the partner's, metres.
        valid: (P,) bool; pairs left out of the mean (0 when none is valid).

    Returns:
        Pose distance (m) plus relative root distance (1), averaged over the valid pairs.
    """
    rotation, offset = motion[..., :3], motion[..., 3]
    pose = safe_norm(anchor @ rotation.transpose(-1, -2) - partner).mean(dim=-1)
    root = safe_norm(anchor_root @ rotation.transpose(-1, -2) + offset[:, None] - partner_root).mean(dim=-1)
    root = root / partner_root[:, 0, 2].detach().clamp_min(MIN_DEPTH)
    weight = valid.to(pose.dtype)
    return ((pose + root) * weight).sum() / weight.sum().clamp_min(1.0)


def target_free_terms(singles: torch.Tensor, chunks: torch.Tensor) -> dict[str, torch.Tensor]:
    """The joint-aware terms that need no ground truth, on unlabelled predictions.

    Args:
        singles: (S, J, 3) predicted poses of single windows, metres.
        chunks: (K, chunk, J, 3) predicted poses of chunks of consecutive frames, metres.

    Returns:
        ``{term: value}`` for each of :data:`TARGET_FREE_TERMS` (their functions in
        :data:`TERM_FUNCTIONS`): over every frame, but those of :data:`SEQUENCE_TERMS`
        (which compare a sequence's frames with each other) over each chunk; and ``bone``:
        :func:`bone_consistency` over the chunks (m^2; 0 without chunks), the part of that
        term that needs no truth.
    """
    frames = torch.cat([singles, chunks.reshape(-1, *singles.shape[1:])])[None]  # (1, frames, J, 3)
    shared: dict[str, torch.Tensor] = {}
    framewise = [name for name in TARGET_FREE_TERMS if name not in SEQUENCE_TERMS]
    out = compute_terms(frames, frames, framewise, shared)
    lengths = shared["pred_lengths"] if "pred_lengths" in shared else bone_lengths(frames)
    chunk_lengths = lengths[0, len(singles) :].reshape(*chunks.shape[:2], lengths.shape[-1])
    within = [name for name in TARGET_FREE_TERMS if name in SEQUENCE_TERMS]
    if not len(chunks):
        return out | {name: lengths.sum() * 0.0 for name in ["bone", *within]}
    out["bone"] = bone_consistency(chunk_lengths)
    return out | compute_terms(chunks, chunks, within, {"pred_lengths": chunk_lengths})


def compute_terms(
    pred: torch.Tensor, target: torch.Tensor, names: Iterable[str], shared: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Unweighted values of the terms ``names`` on (batch, frames, J, 3) poses in metres.

    Each term is its function in :data:`TERM_FUNCTIONS`; the intermediates they take (bone
    lengths, joint angles) are computed once and kept in ``shared``, so a later call with
    the same dict reuses them. The skeleton is the one with J joints.
    """
    shared = {} if shared is None else shared
    layout = skeleton.for_joints(pred.shape[-2])

    def get(key: str) -> torch.Tensor | skeleton.Skeleton:
        if key in ("pred", "target"):
            return pred if key == "pred" else target
        if key == "layout":
            return layout
        if key not in shared:
            shared[key] = _INTERMEDIATES[key](pred, target)
        return shared[key]

    out: dict[str, torch.Tensor] = {}
    for name in names:
        function, inputs = TERM_FUNCTIONS[name]
        out[name] = function(*(get(key) for key in inputs))
    return out


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term in the total; 0 switches a term off (it is still logged).

    Defaults were chosen on a validation split of the training subjects (docs/method.md,
    "Loss weights").
    """

    mpjpe: float = 1.0
    sym: float = 0.01
    bone: float = 0.01
    angle: float = 0.01
    rom: float = 0.01
    vel: float = 0.4
    acc: float = 0.4
    ang_vel: float = 0.005
    ang_acc: float = 0.005
    stretch: float = 0.0

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= MAX_WEIGHT:
                raise JointposeError(
                    "{0} must be a number in [0, {most}], got {value!r}",
                    fields=(f"weights.{name}",),
                    most=int(MAX_WEIGHT),
                    value=value,
                )
            object.__setattr__(self, name, float(value))  # numpy's or a Fraction: a plain number in checkpoints
        if not any(self.as_dict().values()):
            raise JointposeError("{0}: at least one weight must be positive, all are 0", fields=("weights",))

    @classmethod
    def none(cls) -> LossWeights:
        """The plain MPJPE baseline: every constraint off."""
        return cls(**{name: 0.0 for name in CONSTRAINT_TERMS})

    def as_dict(self) -> dict[str, float]:
        """{term: weight} for every term of :data:`TERMS`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class JointAwareLoss(nn.Module):
    """Weighted sum of every term; returns ``(total, {term: unweighted value})`` in the order of
    :data:`TERMS`.

    Each term is the function :data:`TERM_FUNCTIONS` names (through :func:`compute_terms`).
    Terms with zero weight are computed without gradient, for logging only (or skipped
    entirely with ``log_all=False``). Bone lengths and joint angles are computed once per
    call and shared by the terms that use them.

    Args:
        weights: each constraint term's weight (MPJPE's is 1); :class:`LossWeights` holds the
            tuned defaults.
        log_all: also compute the terms of zero weight, without gradient, for the log.
    """

    def __init__(self, weights: LossWeights = LossWeights(), log_all: bool = True) -> None:
        super().__init__()
        log_all = check_switch(log_all, "log_all")
        if not isinstance(weights, LossWeights):
            raise JointposeError(
                "weights must be a LossWeights (e.g. LossWeights(sym=0.1)), got {kind}",
                fields=("weights",),
                kind=type(weights).__name__,
            )
        self.weights = weights
        self.log_all = log_all
        self.constraint_scale = 1.0  # multiplies every term but MPJPE (training ramps it up)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted loss of predicted against true pose sequences.

        Args:
            pred: (batch, frames, J, 3) predicted poses, metres, root-relative (J = 17
                Human3.6M or 15 HumanEva-I joints: the skeleton of the structural terms).
            target: the true poses, same shape.

        Returns:
            ``(total, terms)``: the weighted sum (a scalar with gradient) and each term's
            unweighted value (metres, radians or their temporal differences; see the module
            docstring).
        """
        if not (torch.is_tensor(pred) and torch.is_tensor(target)):
            raise JointposeError(
                f"pred and target must be torch tensors, got {type(pred).__name__} and {type(target).__name__}"
            )
        if pred.dim() != 4 or pred.shape != target.shape:
            raise JointposeError(
                f"expected pred and target of equal shape (batch, frames, joints, 3), got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        w = self.weights.as_dict()
        active = [name for name in TERMS if w[name] != 0.0]  # fixed order: a reproducible sum
        shared: dict[str, torch.Tensor] = {}
        # In float32 at least, autocast or not: float16's range overflows squared metres, and
        # its smallest numbers are above the terms' epsilon.
        with torch.autocast(pred.device.type, enabled=False):
            if torch.float16 in (pred.dtype, target.dtype):
                pred, target = pred.float(), target.float()
            terms = compute_terms(pred, target, active, shared)
            if self.log_all and len(active) < len(TERMS):
                with torch.no_grad():
                    detached = {key: value.detach() for key, value in shared.items()}
                    terms.update(compute_terms(pred.detach(), target, [n for n in TERMS if n not in active], detached))
        position = w["mpjpe"] * terms["mpjpe"] if "mpjpe" in active else 0.0
        total = position + self.weighted_constraints({name: terms[name] for name in active})
        return total, {name: terms[name] for name in TERMS if name in terms}

    def weighted_constraints(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor | float:
        """The constraint part of the total: ``constraint_scale`` times the weighted sum of the
        constraint ``terms`` given (any of :data:`CONSTRAINT_TERMS`; MPJPE and zero-weight
        terms are left out), in :data:`TERMS`' order; 0.0 when none is weighted."""
        w = self.weights.as_dict()
        weighted = [w[name] * terms[name] for name in CONSTRAINT_TERMS if name in terms and w[name] != 0.0]
        return self.constraint_scale * sum(weighted) if weighted else 0.0
