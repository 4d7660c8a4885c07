"""Standing height of a skeleton and ``--height``: scaling a lifted person to a known height."""

import numpy as np
import pytest
import torch

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.bones import HEIGHT_RANGE, scale_to_height, standing_height
from jointpose.inference.lifter import Lifter
from jointpose.model.temporal import TemporalModel

J = skeleton.JOINT_NAMES.index


def standing_pose() -> np.ndarray:
    """One (17, 3) pose, metres, y up, with lengths chosen to differ between the sides."""
    pose = np.zeros((17, 3))
    for side, x, shin in (("R", -0.10, 0.45), ("L", 0.10, 0.43)):
        pose[J(f"{side}Hip")] = (x, -0.02, 0.0)
        pose[J(f"{side}Knee")] = (x, -0.47, 0.0)  # thigh 0.45
        pose[J(f"{side}Foot")] = (x, -0.47 - shin, 0.0)
        pose[J(f"{side}Shoulder")] = (1.8 * x, 0.50, 0.0)
        pose[J(f"{side}Elbow")] = (1.8 * x, 0.22, 0.0)
        pose[J(f"{side}Wrist")] = (1.8 * x, -0.02, 0.0)
    pose[J("Spine")] = (0.0, 0.24, 0.0)
    pose[J("Thorax")] = (0.0, 0.50, 0.0)
    pose[J("Neck/Nose")] = (0.0, 0.60, 0.08)
    pose[J("Head")] = (0.0, 0.72, 0.0)
    return pose


def test_standing_height_is_the_legs_and_trunk_chain():
    poses = np.repeat(standing_pose()[None], 5, axis=0)
    # Legs: thigh 0.45 and shins 0.45 / 0.43, the mean of both sides; trunk: hip-spine 0.24,
    # spine-thorax 0.26, thorax-nose hypot(0.10, 0.08), nose-head hypot(0.12, 0.08).
    expected = 0.45 + (0.45 + 0.43) / 2 + 0.24 + 0.26 + np.hypot(0.10, 0.08) + np.hypot(0.12, 0.08)
    assert standing_height(poses) == pytest.approx(expected, abs=1e-12)
    # The median over frames: a few frames with a stretched leg do not move it.
    poses[:2, J("RFoot"), 1] -= 0.3
    assert standing_height(poses) == pytest.approx(expected, abs=1e-12)


def test_scale_to_height_keeps_the_image():
    rng = np.random.default_rng(0)
    poses = np.repeat(standing_pose()[None], 8, axis=0) + rng.normal(0, 0.01, (8, 17, 3))
    poses -= poses[:, :1]  # root-relative, as lifted
    trajectory = np.stack([rng.uniform(-0.5, 0.5, 8), rng.uniform(-0.2, 0.2, 8), rng.uniform(3, 5, 8)], -1)
    scaled, moved, factor = scale_to_height(poses, 1.55, trajectory)
    assert standing_height(scaled) == pytest.approx(1.55, abs=1e-9)
    assert factor == pytest.approx(1.55 / standing_height(poses))
    shifted = poses + np.array([0.3, -0.1, 4.0])  # scaled about the root, wherever it is
    np.testing.assert_allclose(scale_to_height(shifted, 1.55)[0], shifted[:, :1] + scaled, atol=1e-12)

    def pixels(p: np.ndarray, t: np.ndarray) -> np.ndarray:  # a pinhole camera, 1000 px focal length
        world = p + t[:, None]
        return 1000.0 * world[..., :2] / world[..., 2:]

    np.testing.assert_allclose(pixels(scaled, moved), pixels(poses, trajectory), atol=1e-9)
    assert scale_to_height(poses, 1.55)[1] is None


def test_poses_without_a_height_are_refused():
    """No frame, or every joint at one place (standing height 0: the factor was a division by
    zero), is refused, naming the poses."""
    for poses, message in (
        (np.zeros((3, 17, 3)), "a skeleton of standing height 0 m cannot be scaled"),
        (np.zeros((0, 17, 3)), r"poses must be \(frames, 17, 3\) with frames >= 1, got \(0, 17, 3\)"),
        (np.zeros((3, 16, 3)), r"poses must be \(frames, 17, 3\)"),
    ):
        with pytest.raises(JointposeError, match=message):
            scale_to_height(poses, 1.7)


@pytest.mark.parametrize("height", [float("nan"), 0.3, 3.0, -1.7, float("inf")])
def test_heights_outside_the_range_are_refused(height):
    with pytest.raises(JointposeError, match=r"^height must be a standing height in metres in \[0.5, 2.6\]"):
        scale_to_height(np.repeat(standing_pose()[None], 2, axis=0), height)
    assert HEIGHT_RANGE == (0.5, 2.6)


def test_infer_cli_scales_to_the_given_height(tmp_path, capsys):
    from jointpose.cli import main

    torch.manual_seed(0)
    model = Lifter(TemporalModel((3, 3), channels=32).eval(), fps=50.0).save(tmp_path / "model.safetensors")
    keypoints = np.random.default_rng(0).uniform(300, 700, (30, 17, 2))
    np.save(tmp_path / "kp.npy", keypoints)
    flags = ["--checkpoint", str(model), "--image-size", "1000", "1000", "--focal-length", "1000", "--no-progress"]
    assert main(["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "plain.npz"), *flags]) == 0
    assert main(["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "tall.npz"), "--height", "1.9", *flags]) == 0
    plain, tall = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "tall.npz")
    factor = 1.9 / standing_height(plain["poses_3d"])
    assert f"scaled to a standing height of 1.9 m (x {factor:.3f})" in capsys.readouterr().out
    np.testing.assert_allclose(tall["poses_3d"], factor * plain["poses_3d"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tall["trajectory"], factor * plain["trajectory"], rtol=1e-5)
    assert main(["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "bad.npz"), "--height", "17", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--height must be a standing height" in err
    assert not (tmp_path / "bad.npz").exists()
