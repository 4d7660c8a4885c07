"""Every joint-aware loss term: gradients reach the model, zero at the truth, hand-computed
values under known perturbations, finite on degenerate poses, batched = per sample,
invariant to rigid motions where it should be."""

import math
import os
import subprocess
import sys

import pytest
import torch
from scipy.spatial.transform import Rotation

import loss_reference
from jointpose import losses
from jointpose.errors import JointposeError
from jointpose.geometry.anatomy import (
    ANGLE_NAMES,
    RANGE_OF_MOTION,
    bone_lengths,
    fit_skeleton,
    joint_angles,
)
from jointpose.losses import TERMS, JointAwareLoss, LossWeights
from jointpose.motion.synthetic import generate


def term(name: str):
    """The term ``name`` exactly as JointAwareLoss computes it, as a function of (pred, target)."""
    return lambda p, t: losses.compute_terms(p, t, [name])[name]


# name -> function(pred, target): every term of TERMS as it trains, plus the parts of the
# bone term and the weighted MPJPE of the trajectory model.
TERM_FUNCTIONS = {name: term(name) for name in TERMS} | {
    "weighted_mpjpe": lambda p, t: losses.weighted_mpjpe(p, t, torch.linspace(0.5, 1.5, 17, device=p.device)),
    "consistency": lambda p, t: losses.bone_consistency(bone_lengths(p)),
    "ratio": lambda p, t: losses.bone_ratio_error(bone_lengths(p), bone_lengths(t)),
    "length": lambda p, t: losses.bone_length_error(bone_lengths(p), bone_lengths(t)),
}


def real_motion(frames=12, batch=2) -> torch.Tensor:
    """(batch, frames, 17, 3) root-relative walking poses, metres, Z up (symmetric, inside ROM)."""
    world = generate(["S1"], seconds=frames * batch / 50.0 + 0.1, motions=["Walking"])["S1"]["Walking 1"]
    poses = torch.from_numpy(world - world[:, :1]).float()
    return poses[: frames * batch].reshape(batch, frames, 17, 3)


def noisy_pair(frames: int, batch: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, target): walking poses and the same with Gaussian noise of ``noise`` metres."""
    target = real_motion(frames=frames, batch=batch)
    generator = torch.Generator().manual_seed(seed)
    return target + noise * torch.randn(target.shape, generator=generator), target


def symmetric_body(poses: torch.Tensor) -> torch.Tensor:
    """One rigid, left/right symmetric skeleton per sequence, same bone directions."""
    return torch.stack([fit_skeleton(seq, iterations=0) for seq in poses])


@pytest.mark.parametrize("name", list(TERM_FUNCTIONS))
def test_gradient_reaches_the_model_parameters(name):
    torch.manual_seed(0)
    target = real_motion()
    net = torch.nn.Linear(16, 17 * 3)
    pred = net(torch.randn(*target.shape[:2], 16)).reshape(target.shape) * 0.3 + target
    TERM_FUNCTIONS[name](pred, target).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_joint_aware_total_trains_every_term():
    torch.manual_seed(0)
    target = real_motion()
    net = torch.nn.Linear(16, 17 * 3)
    pred = net(torch.randn(*target.shape[:2], 16)).reshape(target.shape) * 0.3 + target
    for name in TERMS:
        net.zero_grad()
        only = LossWeights(**{t: (1.0 if t == name else 0.0) for t in TERMS})
        total, terms = JointAwareLoss(only)(pred, target)
        assert set(terms) == set(TERMS)
        total.backward(retain_graph=True)
        assert torch.isfinite(net.weight.grad).all() and float(net.weight.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("name", list(TERM_FUNCTIONS))
def test_zero_at_the_truth(name):
    poses = symmetric_body(real_motion())  # rigid, symmetric, inside its range of motion
    value = float(TERM_FUNCTIONS[name](poses, poses))
    assert value < 2e-6, (name, value)  # safe norms leave sqrt(1e-12) at most


def _with_longer_left_forearm(poses: torch.Tensor, extra: float) -> torch.Tensor:
    out = poses.clone()
    direction = out[..., 13, :] - out[..., 12, :]
    out[..., 13, :] += extra * direction / direction.norm(dim=-1, keepdim=True)
    return out


def test_symmetry_by_hand():
    poses = symmetric_body(real_motion())
    longer = _with_longer_left_forearm(poses, 0.02)
    # One pair of six differs by 2 cm (Huber with a 1 mm corner: 2 cm - 0.5 mm).
    expected = (0.02 - losses.LENGTH_BETA / 2) / 6
    assert math.isclose(float(TERM_FUNCTIONS["sym"](longer, poses)), expected, rel_tol=1e-3)


def _wobbly_forearm() -> tuple[torch.Tensor, torch.Tensor]:
    """(poses, the same with the left forearm 1 cm longer and shorter in turn), 10 frames."""
    poses = symmetric_body(real_motion(frames=10, batch=1))
    wobbly = poses.clone()
    sign = torch.tensor([1.0, -1.0] * 5)[None, :, None]
    direction = poses[..., 13, :] - poses[..., 12, :]
    wobbly[..., 13, :] += 0.01 * sign * direction / direction.norm(dim=-1, keepdim=True)
    return poses, wobbly


def test_bone_consistency_by_hand():
    poses, wobbly = _wobbly_forearm()
    # One bone of 16 alternates +-1 cm: variance 1e-4 m^2.
    assert math.isclose(float(TERM_FUNCTIONS["consistency"](wobbly, poses)), 1e-4 / 16, rel_tol=1e-3)


def test_bone_stretch_by_hand():
    poses, wobbly = _wobbly_forearm()
    # One bone of 16 (the left forearm, length L) alternates L +- 1 cm around its mean L:
    # |l / L - 1| = 0.01 / L in every frame (Huber corner 1e-3), whatever the truth is.
    forearm = float(bone_lengths(poses)[0, 0, 12])
    expected = (0.01 / forearm - losses.RATIO_BETA / 2) / 16
    assert math.isclose(float(TERM_FUNCTIONS["stretch"](wobbly, poses)), expected, rel_tol=1e-4)
    assert float(TERM_FUNCTIONS["stretch"](wobbly, wobbly)) == float(TERM_FUNCTIONS["stretch"](wobbly, poses))


@pytest.mark.parametrize("factor", [0.6, 1.0, 1.35])
def test_bone_stretch_is_invariant_to_the_size_of_the_body(factor):
    """Scaling the whole predicted skeleton (a smaller or larger person, same motion) leaves
    the scale-free term unchanged; the absolute-length part of ``bone`` does change."""
    pred, target = noisy_pair(8, 2, 0.02, seed=3)
    stretch = float(TERM_FUNCTIONS["stretch"](pred, target))
    assert stretch > 0.01  # 2 cm of noise makes bones stray by several percent
    assert math.isclose(float(TERM_FUNCTIONS["stretch"](factor * pred, target)), stretch, rel_tol=1e-5)
    if factor != 1.0:
        assert not math.isclose(
            float(TERM_FUNCTIONS["length"](factor * pred, target)),
            float(TERM_FUNCTIONS["length"](pred, target)),
            rel_tol=0.05,
        )


def test_bone_length_and_ratio_by_hand():
    poses = symmetric_body(real_motion())
    longer = _with_longer_left_forearm(poses, 0.02)
    assert math.isclose(float(TERM_FUNCTIONS["length"](longer, poses)), (0.02 - 0.0005) / 16, rel_tol=1e-3)
    lengths = bone_lengths(poses[0, 0])
    upper, fore = float(lengths[11]), float(lengths[12])  # left upper arm, left forearm
    change = abs(upper / (upper + fore + 0.02) - upper / (upper + fore))
    expected = (
        change - losses.RATIO_BETA / 2 if change > losses.RATIO_BETA else 0.5 * change**2 / losses.RATIO_BETA
    ) / 6
    assert math.isclose(float(TERM_FUNCTIONS["ratio"](longer, poses)), expected, rel_tol=1e-3)


def test_velocity_and_acceleration_by_hand():
    target = real_motion(frames=10, batch=1)
    frames = torch.arange(10, dtype=torch.float32)[None, :, None, None]
    beta = losses.LENGTH_BETA  # pseudo-Huber: sqrt(e^2 + beta^2) - beta
    drifting = target + frames * torch.tensor([0.003, 0.004, 0.0])  # 5 mm/frame extra, constant
    assert math.isclose(float(TERM_FUNCTIONS["vel"](drifting, target)), math.hypot(0.005, beta) - beta, rel_tol=1e-4)
    assert float(TERM_FUNCTIONS["acc"](drifting, target)) < 1e-5
    accelerating = target + 0.5 * 0.002 * frames**2 * torch.tensor([0.0, 0.0, 1.0])
    assert math.isclose(
        float(TERM_FUNCTIONS["acc"](accelerating, target)), math.hypot(0.002, beta) - beta, rel_tol=1e-3
    )
    short = target[:, :2]
    assert float(TERM_FUNCTIONS["acc"](short, short + 1)) == 0.0  # 2 frames: no acceleration


@pytest.mark.parametrize("name", ["consistency", "vel", "acc", "ang_vel", "ang_acc"])
def test_too_few_frames_give_a_zero_still_attached_to_the_graph(name):
    needed = {"consistency": 2, "vel": 2, "acc": 3, "ang_vel": 2, "ang_acc": 3}[name]
    target = real_motion(frames=needed - 1, batch=2)
    pred = (target + 0.1).requires_grad_()
    value = TERM_FUNCTIONS[name](pred, target)
    assert float(value.detach()) == 0.0 and value.requires_grad
    value.backward()
    assert bool((pred.grad == 0).all())
    assert float(TERM_FUNCTIONS[name](*noisy_pair(needed, 2, 0.05, seed=4))) > 1e-4


def test_angle_terms_by_hand():
    poses = symmetric_body(real_motion(frames=6, batch=1))
    bent = poses.clone()
    # Flex the left elbow by 0.2 rad in every frame: only that angle moves.
    elbow, wrist = bent[..., 12, :], bent[..., 13, :]
    axis = torch.linalg.cross(wrist - elbow, bent[..., 11, :] - elbow)  # turns the wrist towards the shoulder
    rot = (
        torch.from_numpy(
            Rotation.from_rotvec((0.2 * axis / axis.norm(dim=-1, keepdim=True)).reshape(-1, 3).numpy()).as_matrix()
        )
        .float()
        .reshape(*axis.shape[:-1], 3, 3)
    )
    bent[..., 13, :] = elbow + (rot @ (wrist - elbow)[..., None])[..., 0]
    change = (joint_angles(bent) - joint_angles(poses)).abs()
    assert torch.allclose(change[..., ANGLE_NAMES.index("left elbow")], torch.tensor(0.2), atol=1e-4)
    expected = (0.2 - losses.ANGLE_BETA / 2) / len(ANGLE_NAMES)
    assert math.isclose(float(TERM_FUNCTIONS["angle"](bent, poses)), expected, rel_tol=1e-3)


def test_range_of_motion_loss_by_hand():
    poses = symmetric_body(real_motion(frames=4, batch=1))
    assert float(TERM_FUNCTIONS["rom"](poses, poses)) == 0.0
    folded = poses.clone()
    # Fold the right shin onto the thigh in every frame: knee angle 10 degrees.
    knee, hip = folded[..., 2, :], folded[..., 1, :]
    thigh = (hip - knee) / (hip - knee).norm(dim=-1, keepdim=True)
    side = torch.linalg.cross(thigh, torch.tensor([1.0, 0.0, 0.0]).expand_as(thigh))
    side = side / side.norm(dim=-1, keepdim=True)
    folded[..., 3, :] = knee + 0.4 * (math.cos(math.radians(10)) * thigh + math.sin(math.radians(10)) * side)
    # The knee's limit, worked out by hand: flexion up to 140 degrees (an angle of 40) widened
    # by the 15-degree tolerance for joint-centre placement, so 25 degrees.
    out = math.radians(25 - 10)
    # One angle of 12 is out by `out` radians (Huber with a ROM_BETA corner), the rest inside.
    expected = (out - losses.ROM_BETA / 2) / len(ANGLE_NAMES)
    assert math.isclose(float(TERM_FUNCTIONS["rom"](folded, poses)), expected, rel_tol=1e-3)


def test_one_list_of_terms_everywhere():
    """Each term has its function, its weight and its flag; the sets of terms name terms."""
    from jointpose.training.config import field_flags

    assert tuple(losses.TERM_FUNCTIONS) == TERMS == tuple(LossWeights().as_dict())
    assert {field_flags()[f"weights.{name}"] for name in losses.CONSTRAINT_TERMS} == {
        "--w-" + name.replace("_", "-") for name in losses.CONSTRAINT_TERMS
    }
    for group in (losses.TEMPORAL_TERMS, losses.SEQUENCE_TERMS, losses.TARGET_FREE_TERMS):
        assert set(group) <= set(TERMS)


def test_weighted_mpjpe():
    pred, target = noisy_pair(4, 2, 0.05, seed=3)
    ones = torch.ones(17)
    assert torch.allclose(losses.weighted_mpjpe(pred, target, ones), losses.mpjpe(pred, target))
    # Weight 2 on the joints of the right leg, 0 elsewhere: twice their error, averaged over all joints.
    weights = torch.zeros(17)
    weights[[1, 2, 3]] = 2.0
    errors = (pred - target).norm(dim=-1)
    expected = 2.0 * errors[..., [1, 2, 3]].sum(dim=-1).mean() / 17
    assert torch.allclose(losses.weighted_mpjpe(pred, target, weights), expected, rtol=1e-5)
    # Per-sample weights broadcast over (batch, frames, joints).
    per_sample = torch.tensor([1.0, 0.0])[:, None, None]
    assert torch.allclose(losses.weighted_mpjpe(pred, target, per_sample), losses.mpjpe(pred[:1], target[:1]) / 2)
    # Inverse-depth weights of a root trajectory (batch, 1, 3): one weight per sample.
    traj_pred, traj_true = pred[:, 0, :1], target[:, 0, :1]
    depth_weights = torch.tensor([[1.0], [0.0]])
    assert torch.allclose(
        losses.weighted_mpjpe(traj_pred, traj_true, depth_weights), (traj_pred[0] - traj_true[0]).norm() / 2
    )
    # A weight shape that would broadcast the errors into a (batch, batch) grid is refused.
    with pytest.raises(ValueError, match="do not broadcast"):
        losses.weighted_mpjpe(traj_pred, traj_true, depth_weights[..., None])


def _degenerate_poses(device: str) -> list[torch.Tensor]:
    """All joints at the origin; every joint on one line; the same with a zero-length bone."""
    zero = torch.zeros(2, 5, 17, 3, device=device)
    line = torch.zeros(2, 5, 17, 3, device=device)
    line[..., 2] = torch.linspace(0, 1, 17, device=device)
    coincident = line.clone()
    coincident[..., 5, :] = coincident[..., 4, :]
    return [zero, line, coincident]


def test_finite_on_degenerate_poses(device):
    for pose in _degenerate_poses(device):
        pose.requires_grad_()
        total, terms = JointAwareLoss(LossWeights(**{t: 1.0 for t in TERMS}))(pose, torch.zeros_like(pose.detach()))
        total.backward()
        assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
        assert torch.isfinite(pose.grad).all()


def test_finite_in_float16_and_under_autocast():
    """Float16 poses (a model run in half precision) and float16 autocast: the loss is computed
    in float32, where the terms' epsilon exists (1e-12 is 0 in float16, and an exact joint or a
    collapsed bone gave NaN gradients) and squared bones of 20 m do not overflow (65504)."""
    weights = LossWeights(**{t: 1.0 for t in TERMS})
    for pose in [*_degenerate_poses("cpu"), real_motion(frames=5, batch=2) * 20]:
        half = pose.half().requires_grad_()
        total, terms = JointAwareLoss(weights)(half, torch.zeros_like(half.detach()))
        total.backward()
        assert total.dtype == torch.float32 and torch.isfinite(total) and torch.isfinite(half.grad).all()
        full = JointAwareLoss(weights)(half.detach().float(), torch.zeros_like(pose))[0]
        torch.testing.assert_close(total, full)  # the float32 loss of the same numbers
        with torch.autocast("cpu", dtype=torch.float16):
            auto = JointAwareLoss(weights)(pose.float(), torch.zeros_like(pose.float()))[0]
        torch.testing.assert_close(auto, JointAwareLoss(weights)(pose.float(), torch.zeros_like(pose.float()))[0])
    for term in ("mpjpe", "angle"):  # the terms alone: a norm and an angle at zero-length arms
        zero = torch.zeros(1, 2, 17, 3, dtype=torch.float16, requires_grad=True)
        TERM_FUNCTIONS[term](zero, zero.detach() + 0.1).backward()
        assert torch.isfinite(zero.grad).all(), term


@pytest.mark.parametrize("name", list(TERM_FUNCTIONS))
def test_each_term_finite_on_degenerate_poses(name):
    target = real_motion(frames=5, batch=2)
    for pose in _degenerate_poses("cpu"):
        for pred, truth in ((pose.clone().requires_grad_(), target), (target.clone().requires_grad_(), pose)):
            value = TERM_FUNCTIONS[name](pred, truth)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(pred.grad).all(), name


@pytest.mark.parametrize("name", list(TERM_FUNCTIONS))
def test_batched_equals_per_sample(name):
    pred, target = noisy_pair(8, 3, 0.05, seed=1)
    batched = TERM_FUNCTIONS[name](pred, target)
    single = torch.stack([TERM_FUNCTIONS[name](pred[i : i + 1], target[i : i + 1]) for i in range(3)]).mean()
    assert torch.allclose(batched, single, rtol=1e-5, atol=1e-8), name


def _rigid(poses: torch.Tensor, seed: int) -> torch.Tensor:
    rotation = torch.from_numpy(Rotation.random(random_state=seed).as_matrix()).float()
    return poses @ rotation.T + torch.tensor([0.3, -1.2, 4.0])


@pytest.mark.parametrize("name", list(TERM_FUNCTIONS))
def test_invariant_to_rigid_motion(name):
    pred, target = noisy_pair(6, 2, 0.03, seed=2)
    before = TERM_FUNCTIONS[name](pred, target)
    after = TERM_FUNCTIONS[name](_rigid(pred, 3), _rigid(target, 3))
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-6), name


def test_joint_aware_loss_calls_the_term_functions_once_on_shared_intermediates(monkeypatch):
    """Each logged term is its function from losses applied to bone lengths and joint angles
    computed once per pose tensor; nothing else makes up the total."""
    pred, target = noisy_pair(6, 2, 0.04, seed=5)
    lengths = {"pred": bone_lengths(pred), "true": bone_lengths(target)}
    angles = {"pred": joint_angles(pred), "true": joint_angles(target)}
    expected = {
        "mpjpe": losses.mpjpe(pred, target),
        "sym": losses.symmetry_loss(lengths["pred"]),
        "bone": losses.bone_loss(lengths["pred"], lengths["true"]),
        "angle": losses.angle_loss(angles["pred"], angles["true"]),
        "rom": losses.range_of_motion_loss(angles["pred"]),
        "vel": losses.velocity_loss(pred, target),
        "acc": losses.acceleration_loss(pred, target),
        "ang_vel": losses.angular_velocity_loss(angles["pred"], angles["true"]),
        "ang_acc": losses.angular_acceleration_loss(angles["pred"], angles["true"]),
        "stretch": losses.bone_stretch(lengths["pred"]),
    }
    calls = {"lengths": 0, "angles": 0}

    def counted(key, function):
        def wrapper(poses):
            calls[key] += 1
            return function(poses)

        return wrapper

    monkeypatch.setattr(losses, "bone_lengths", counted("lengths", bone_lengths))
    monkeypatch.setattr(losses, "joint_angles", counted("angles", joint_angles))
    weights = LossWeights(**{t: 1.0 for t in TERMS})
    total, terms = JointAwareLoss(weights)(pred, target)
    assert list(terms) == list(TERMS)
    for name in TERMS:
        assert torch.equal(terms[name], expected[name]), name
    # The same terms added in another order: equal to float rounding, not bit for bit.
    assert torch.allclose(total, sum(expected[name] for name in TERMS), rtol=1e-6, atol=0)
    assert calls == {"lengths": 2, "angles": 2}  # once for the prediction, once for the truth
    calls.update(lengths=0, angles=0)
    JointAwareLoss(LossWeights(sym=0.0, angle=0.0, ang_acc=0.0))(pred, target)  # logged terms reuse them too
    assert calls == {"lengths": 2, "angles": 2}


# First-principles reference (loss_reference), with its own tables (joint indices typed out
# from the documented Human3.6M-17 order): nothing shared with the library but the
# range-of-motion table.
H36M_REFERENCE = loss_reference.Tables(
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    twins=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
    proportions=((12, 13), (15, 16), (5, 6), (2, 3), (4, 1), (11, 14)),
    triples={
        "neck": (8, 9, 10),
        "spine": (0, 7, 8),
        "right hip": (0, 1, 2),
        "left hip": (0, 4, 5),
        "right hip flexion": (7, 0, 2),
        "left hip flexion": (7, 0, 5),
        "right shoulder": (8, 14, 15),
        "left shoulder": (8, 11, 12),
        "right knee": (1, 2, 3),
        "left knee": (4, 5, 6),
        "right elbow": (14, 15, 16),
        "left elbow": (11, 12, 13),
    },
    limits=RANGE_OF_MOTION,
)


def _hand_built_pose() -> tuple[torch.Tensor, list[float], dict[str, float]]:
    """One (17, 3) pose placed joint by joint (metres, Z up), its 16 bone lengths (by end
    joint 1..16) and its joint angles (degrees), known by construction."""
    s45, s30, c30 = math.sqrt(0.5), 0.5, math.sqrt(0.75)
    p = [None] * 17
    p[0] = (0.0, 0.0, 1.0)
    p[1], p[4] = (-0.1, 0.0, 1.0), (0.1, 0.0, 1.0)  # hips 0.1 m out along x
    p[2], p[5] = (-0.1, 0.0, 0.6), (0.1, 0.0, 0.6)  # thighs 0.4 m straight down: hip angles 90
    p[3], p[6] = (-0.1, 0.4, 0.6), (0.1, 0.42, 0.6)  # shins 0.4 / 0.42 m forward: knees 90
    p[7] = (0.0, 0.0, 1.25)  # spine 0.25 m up
    p[8] = (0.0, 0.3 * s45, 1.25 + 0.3 * s45)  # thorax 0.3 m, 45 deg forward: spine angle 135
    p[9] = (p[8][0], p[8][1], p[8][2] + 0.1)  # neck 0.1 m up
    p[10] = (0.0, p[9][1] + 0.12 * s30, p[9][2] + 0.12 * c30)  # head 0.12 m, 30 deg forward: neck angle 150
    p[11], p[14] = (0.15, p[8][1], p[8][2]), (-0.15, p[8][1], p[8][2])  # shoulders 0.15 m out along x
    p[12], p[15] = (0.15, p[8][1], p[8][2] - 0.3), (-0.15, p[8][1], p[8][2] - 0.3)  # upper arms 0.3 m down: 90
    p[13], p[16] = (0.15, p[8][1] + 0.25, p[8][2] - 0.3), (-0.15, p[8][1] + 0.25, p[8][2] - 0.3)  # forearms: 90
    lengths = [0.1, 0.4, 0.4, 0.1, 0.4, 0.42, 0.25, 0.3, 0.1, 0.12, 0.15, 0.3, 0.25, 0.15, 0.3, 0.25]
    flexion = 180.0 - math.degrees(math.atan2(0.1, 0.4))  # spine straight up against the hip-knee line
    angles = {"neck": 150.0, "spine": 135.0, "right hip flexion": flexion, "left hip flexion": flexion} | {
        name: 90.0 for name in ANGLE_NAMES if name.split()[-1] in ("hip", "shoulder", "knee", "elbow")
    }
    return torch.tensor(p, dtype=torch.float64), lengths, angles


def _hand_built_motion() -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, truth) of shape (2, 6, 17, 3), float64: the hand-built pose turning about
    the vertical and drifting (lengths and angles constant), and a prediction with the right
    knee folded to 15 degrees (10 below its range) plus 1 cm of seeded noise."""
    pose, _, _ = _hand_built_pose()
    turns = torch.from_numpy(Rotation.from_euler("z", torch.linspace(0, 0.5, 12).numpy()[:, None]).as_matrix())
    drift = torch.linspace(0, 0.05, 12)[:, None] * torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    target = ((pose - pose[0]) @ turns.transpose(1, 2) + drift[:, None]).reshape(2, 6, 17, 3)
    folded = pose.clone()
    thigh = (pose[1] - pose[2]) / 0.4
    folded[3] = pose[2] + 0.4 * (
        math.cos(math.radians(15)) * thigh + math.sin(math.radians(15)) * torch.tensor([0.0, 1, 0])
    )
    folded_motion = ((folded - folded[0]) @ turns.transpose(1, 2) + drift[:, None]).reshape(2, 6, 17, 3)
    noise = torch.randn(folded_motion.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return folded_motion + 0.01 * noise, target


def test_hand_built_pose_has_its_known_lengths_and_angles():
    pose, lengths, angles = _hand_built_pose()
    reference, library = loss_reference.lengths(pose, H36M_REFERENCE), bone_lengths(pose)
    for j in range(1, 17):
        assert math.isclose(float(reference[j]), lengths[j - 1], abs_tol=1e-12)
        assert math.isclose(float(library[j - 1]), lengths[j - 1], abs_tol=1e-9)
    reference, library = loss_reference.angles(pose, H36M_REFERENCE), joint_angles(pose)
    for name in ANGLE_NAMES:
        assert math.isclose(math.degrees(float(reference[name])), angles[name], abs_tol=1e-9), name
        library_deg = math.degrees(float(library[ANGLE_NAMES.index(name)]))  # smoothed: < 1e-5 rad off here
        assert math.isclose(library_deg, angles[name], abs_tol=math.degrees(1e-5)), name
    # Known by construction: one of six twin pairs differs (shins 0.40 / 0.42 m), Huber corner 1 mm.
    assert math.isclose(
        float(TERM_FUNCTIONS["sym"](pose[None, None], pose[None, None])), (0.02 - 0.0005) / 6, rel_tol=1e-9
    )


@pytest.mark.parametrize(
    "weights",
    [LossWeights(), LossWeights(**{t: 1.0 for t in TERMS}), LossWeights(angle=0.0, vel=0.0, rom=0.3)],
    ids=["defaults", "all-1", "mixed"],
)
def test_every_term_value_and_gradient_from_first_principles(weights):
    """JointAwareLoss (what trains) against the reference on hand-built motion, float64: every
    logged term, the weighted total and its gradient with respect to the prediction."""
    pred, target = _hand_built_motion()
    reference = loss_reference.terms(pred, target, H36M_REFERENCE)
    assert reference["rom"] > 0.005 and reference["sym"] > 0.001  # the folded knee, the longer left shin
    pred_ref = pred.clone().requires_grad_()
    ref_total = sum(
        w * loss_reference.terms(pred_ref, target, H36M_REFERENCE)[name] for name, w in weights.as_dict().items()
    )
    ref_total.backward()
    pred_lib = pred.clone().requires_grad_()
    total, terms = JointAwareLoss(weights)(pred_lib, target)
    total.backward()
    for name in TERMS:  # the library's angles are smoothed: < 1e-5 rad off away from 0 and 180 degrees
        tolerance = dict(abs_tol=1e-5) if name in ("angle", "rom", "ang_vel", "ang_acc") else dict(rel_tol=1e-9)
        assert math.isclose(float(terms[name].detach()), float(reference[name]), **tolerance), name
    assert math.isclose(float(total.detach()), float(ref_total.detach()), rel_tol=1e-5)
    scale = float(pred_ref.grad.abs().max())  # smoothed angles move the gradient by < 1e-5 of its largest entry
    assert scale > 0.01 and torch.allclose(pred_lib.grad, pred_ref.grad, rtol=1e-4, atol=1e-5 * scale)


def test_joint_aware_loss_weights_and_logging():
    target = real_motion()
    pred = target + 0.02
    total, terms = JointAwareLoss(LossWeights.none())(pred, target)
    assert torch.allclose(total, terms["mpjpe"]) and set(terms) == set(TERMS)
    assert not any(terms[t].requires_grad for t in TERMS if t != "mpjpe")
    weights = LossWeights()
    total, terms = JointAwareLoss(weights)(pred, target)
    assert torch.allclose(total, sum(getattr(weights, t) * terms[t] for t in TERMS))
    ramped = JointAwareLoss(weights)
    ramped.constraint_scale = 0.5  # the warm-up scales every term but MPJPE
    half, _ = ramped(pred, target)
    constraints = sum(getattr(weights, t) * terms[t] for t in TERMS if t != "mpjpe")
    assert constraints > 0 and torch.allclose(half, terms["mpjpe"] + 0.5 * constraints)
    # The constraint part alone, as the trainer adds it for chunks and unlabelled windows:
    # MPJPE and zero-weight terms left out.
    assert torch.allclose(ramped.weighted_constraints(terms), 0.5 * constraints)
    no_bone = JointAwareLoss(LossWeights(sym=2.0, bone=0.0))
    given = {"mpjpe": terms["mpjpe"], "bone": torch.tensor(float("nan")), "sym": terms["sym"]}  # left out: no NaN
    assert torch.equal(no_bone.weighted_constraints(given), 2.0 * terms["sym"])
    assert no_bone.weighted_constraints({"mpjpe": terms["mpjpe"]}) == 0.0


def test_trajectory_loss_weighs_the_root_error_by_its_inverse_true_depth():
    """Root 2 m short of a true depth of 4 m: 2 / 4; 0.1 m off at a true depth of 0.05 m,
    clamped to 0.1 m: 0.1 / 0.1. The mean of the two: 0.75."""
    pred = torch.tensor([[[0.0, 0.0, 2.0]], [[0.1, 0.0, 0.05]]])
    true = torch.tensor([[[0.0, 0.0, 4.0]], [[0.0, 0.0, 0.05]]])
    assert math.isclose(float(losses.trajectory_loss(pred, true)), 0.75, rel_tol=1e-6)


_TOTAL_SCRIPT = """
import torch
from jointpose.losses import JointAwareLoss, LossWeights
g = torch.Generator().manual_seed(0)
target = torch.randn(4, 8, 17, 3, generator=g) * 0.3
pred = target + 0.05 * torch.randn(4, 8, 17, 3, generator=g)
print(JointAwareLoss(LossWeights(angle=0.01))(pred, target)[0].item().hex())
"""


def test_total_does_not_depend_on_the_python_hash_seed():
    """The terms are summed in a fixed order, so the logged total is reproducible bit for bit."""
    runs = [  # side by side
        subprocess.Popen(
            [sys.executable, "-c", _TOTAL_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": str(seed), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, [err[-2000:] for _, err in outputs]
    totals = {out for out, _ in outputs}
    assert len(totals) == 1 and totals != {""}, totals


@pytest.mark.parametrize(
    "bad", [{"rom": -0.1}, {"sym": float("nan")}, {"ang_vel": float("inf")}, {"vel": "0.1"}, {"acc": 1e308}]
)
def test_loss_weights_reject_bad_values(bad):
    name = next(iter(bad))
    with pytest.raises(JointposeError, match=rf"^weights.{name} must be a number in \[0, 1000000\]") as info:
        LossWeights(**bad)
    assert info.value.fields == (f"weights.{name}",)  # the CLI writes it as --w-NAME


def test_loss_weights_need_one_positive_weight():
    with pytest.raises(JointposeError, match="at least one weight"):
        LossWeights(mpjpe=0.0, **{t: 0.0 for t in TERMS if t != "mpjpe"})
    assert LossWeights(mpjpe=0.0, rom=1.0).mpjpe == 0.0


def test_runs_on_the_input_device(device):
    target = real_motion().to(device)
    total, _ = JointAwareLoss()(target + 0.01, target)
    assert total.device.type == device


def test_losses_after_a_first_call_under_inference_mode_still_train(monkeypatch):
    """The loss's constant tables are kept per device and dtype; made first under
    ``torch.inference_mode()`` (a validation pass, or a Lifter run so), they must still be
    ordinary tensors that a later backward pass can save."""
    from jointpose.geometry import anatomy

    monkeypatch.setattr(anatomy, "_CONSTANTS", {})
    anatomy._tables_of.cache_clear()
    losses._selectors.cache_clear()
    with torch.inference_mode():
        JointAwareLoss()(torch.randn(2, 5, 17, 3), torch.randn(2, 5, 17, 3))
    pred = torch.randn(2, 5, 17, 3, requires_grad=True)
    JointAwareLoss()(pred, torch.randn(2, 5, 17, 3))[0].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_loss_inputs_it_cannot_read_are_named():
    with pytest.raises(JointposeError, match="log_all must be True or False, got 'x'"):
        JointAwareLoss(log_all="x")
    loss = JointAwareLoss()
    with pytest.raises(JointposeError, match="pred and target must be torch tensors, got ndarray and Tensor"):
        loss(torch.zeros(2, 5, 17, 3).numpy(), torch.zeros(2, 5, 17, 3))
    with pytest.raises(
        JointposeError, match=r"equal shape \(batch, frames, joints, 3\), got \(2, 5, 17, 3\) and \(2, 4"
    ):
        loss(torch.zeros(2, 5, 17, 3), torch.zeros(2, 4, 17, 3))
