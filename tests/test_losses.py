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

# name -> function(pred, target); single-input terms ignore the target.
TERM_FUNCTIONS = {
    "mpjpe": losses.mpjpe,
    "weighted_mpjpe": lambda p, t: losses.weighted_mpjpe(p, t, torch.linspace(0.5, 1.5, 17, device=p.device)),
    "sym": lambda p, t: losses.symmetry_loss(p),
    "consistency": lambda p, t: losses.bone_consistency_loss(p),
    "ratio": losses.bone_ratio_loss,
    "length": losses.bone_length_loss,
    "angle": losses.angle_loss,
    "rom": lambda p, t: losses.range_of_motion_loss(p),
    "vel": losses.velocity_loss,
    "acc": losses.acceleration_loss,
    "ang_vel": losses.angular_velocity_loss,
    "ang_acc": losses.angular_acceleration_loss,
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
    pred = (net(torch.randn(*target.shape[:2], 16)).reshape(target.shape) * 0.3 + target)
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
    assert math.isclose(float(losses.symmetry_loss(longer)), expected, rel_tol=1e-3)


def test_bone_consistency_by_hand():
    poses = symmetric_body(real_motion(frames=10, batch=1))
    wobbly = poses.clone()
    sign = torch.tensor([1.0, -1.0] * 5)[None, :, None]
    direction = poses[..., 13, :] - poses[..., 12, :]
    wobbly[..., 13, :] += 0.01 * sign * direction / direction.norm(dim=-1, keepdim=True)
    # One bone of 16 alternates +-1 cm: variance 1e-4 m^2.
    assert math.isclose(float(losses.bone_consistency_loss(wobbly)), 1e-4 / 16, rel_tol=1e-3)


def test_bone_length_and_ratio_by_hand():
    poses = symmetric_body(real_motion())
    longer = _with_longer_left_forearm(poses, 0.02)
    assert math.isclose(float(losses.bone_length_loss(longer, poses)), (0.02 - 0.0005) / 16, rel_tol=1e-3)
    lengths = bone_lengths(poses[0, 0])
    upper, fore = float(lengths[11]), float(lengths[12])  # left upper arm, left forearm
    change = abs(upper / (upper + fore + 0.02) - upper / (upper + fore))
    expected = (change - losses.RATIO_BETA / 2 if change > losses.RATIO_BETA else 0.5 * change**2 / losses.RATIO_BETA) / 6
    assert math.isclose(float(losses.bone_ratio_loss(longer, poses)), expected, rel_tol=1e-3)


def test_velocity_and_acceleration_by_hand():
    target = real_motion(frames=10, batch=1)
    frames = torch.arange(10, dtype=torch.float32)[None, :, None, None]
    beta = losses.LENGTH_BETA  # pseudo-Huber: sqrt(e^2 + beta^2) - beta
    drifting = target + frames * torch.tensor([0.003, 0.004, 0.0])  # 5 mm/frame extra, constant
    assert math.isclose(float(losses.velocity_loss(drifting, target)), math.hypot(0.005, beta) - beta, rel_tol=1e-4)
    assert float(losses.acceleration_loss(drifting, target)) < 1e-5
    accelerating = target + 0.5 * 0.002 * frames**2 * torch.tensor([0.0, 0.0, 1.0])
    assert math.isclose(float(losses.acceleration_loss(accelerating, target)), math.hypot(0.002, beta) - beta, rel_tol=1e-3)
    short = target[:, :2]
    assert float(losses.acceleration_loss(short, short + 1)) == 0.0  # 2 frames: no acceleration


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
    rot = torch.from_numpy(Rotation.from_rotvec((0.2 * axis / axis.norm(dim=-1, keepdim=True)).reshape(-1, 3).numpy())
                           .as_matrix()).float().reshape(*axis.shape[:-1], 3, 3)
    bent[..., 13, :] = elbow + (rot @ (wrist - elbow)[..., None])[..., 0]
    change = (joint_angles(bent) - joint_angles(poses)).abs()
    assert torch.allclose(change[..., ANGLE_NAMES.index("left elbow")], torch.tensor(0.2), atol=1e-4)
    expected = (0.2 - losses.ANGLE_BETA / 2) / len(ANGLE_NAMES)
    assert math.isclose(float(losses.angle_loss(bent, poses)), expected, rel_tol=1e-3)


def test_range_of_motion_loss_by_hand():
    poses = symmetric_body(real_motion(frames=4, batch=1))
    assert float(losses.range_of_motion_loss(poses)) == 0.0
    folded = poses.clone()
    # Fold the right shin onto the thigh in every frame: knee angle 10 degrees.
    knee, hip = folded[..., 2, :], folded[..., 1, :]
    thigh = (hip - knee) / (hip - knee).norm(dim=-1, keepdim=True)
    side = torch.linalg.cross(thigh, torch.tensor([1.0, 0.0, 0.0]).expand_as(thigh))
    side = side / side.norm(dim=-1, keepdim=True)
    folded[..., 3, :] = knee + 0.4 * (math.cos(math.radians(10)) * thigh + math.sin(math.radians(10)) * side)
    out = math.radians(RANGE_OF_MOTION["right knee"][0] - 10)
    # One angle of 12 is out by `out` radians (Huber with a ROM_BETA corner), the rest inside.
    expected = (out - losses.ROM_BETA / 2) / len(ANGLE_NAMES)
    assert math.isclose(float(losses.range_of_motion_loss(folded)), expected, rel_tol=1e-3)


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
    assert torch.allclose(losses.weighted_mpjpe(traj_pred, traj_true, depth_weights),
                          (traj_pred[0] - traj_true[0]).norm() / 2)
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
    single = torch.stack([TERM_FUNCTIONS[name](pred[i:i + 1], target[i:i + 1]) for i in range(3)]).mean()
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


def test_joint_aware_terms_equal_the_standalone_functions():
    pred, target = noisy_pair(6, 2, 0.04, seed=5)
    _, terms = JointAwareLoss(LossWeights(**{t: 1.0 for t in TERMS}))(pred, target)
    standalone = {name: TERM_FUNCTIONS[name](pred, target) for name in TERMS if name != "bone"}
    standalone["bone"] = sum(TERM_FUNCTIONS[name](pred, target) for name in ("consistency", "ratio", "length"))
    for name in TERMS:
        assert torch.allclose(terms[name], standalone[name], rtol=1e-6), name


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
    totals = {subprocess.run([sys.executable, "-c", _TOTAL_SCRIPT], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                             capture_output=True, text=True, check=True).stdout for seed in range(4)}
    assert len(totals) == 1, totals


@pytest.mark.parametrize("bad", [{"rom": -0.1}, {"sym": float("nan")}, {"ang_vel": float("inf")}, {"vel": "0.1"}])
def test_loss_weights_reject_bad_values(bad):
    name = next(iter(bad))
    with pytest.raises(JointposeError, match=f"--w-{name.replace('_', '-')}"):
        LossWeights(**bad)


def test_loss_weights_need_one_positive_weight():
    with pytest.raises(JointposeError, match="at least one weight"):
        LossWeights(mpjpe=0.0, **{t: 0.0 for t in TERMS if t != "mpjpe"})
    assert LossWeights(mpjpe=0.0, rom=1.0).mpjpe == 0.0


def test_runs_on_the_input_device(device):
    target = real_motion().to(device)
    total, _ = JointAwareLoss()(target + 0.01, target)
    assert total.device.type == device
