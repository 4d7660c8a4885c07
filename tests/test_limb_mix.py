"""Pose augmentation: arms or legs moving as in other motion, relative to the body, 2D re-projected
(the trainer's use of it: tests/test_augmentation.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from h36m_files import cli
from jointpose.cli import main
from jointpose.data.batching import epoch_rng, mix_limbs
from jointpose.data.h36m import load_dataset
from jointpose.geometry import skeleton
from jointpose.geometry.bones import body_frames, swap_limb

J = skeleton.JOINT_NAMES.index
ARMS = [J(n) for n in ("LElbow", "LWrist", "RElbow", "RWrist")]
LEGS = [J(n) for n in ("LKnee", "LFoot", "RKnee", "RFoot")]


def _standing() -> np.ndarray:
    """One frame (1, 17, 3) of an upright person facing +z (left +x, up +y), arms hanging."""
    pose = np.zeros((17, 3))
    pose[J("RHip")], pose[J("LHip")] = (-0.12, 0, 0), (0.12, 0, 0)
    pose[J("RKnee")], pose[J("LKnee")] = (-0.12, -0.45, 0), (0.12, -0.45, 0)
    pose[J("RFoot")], pose[J("LFoot")] = (-0.12, -0.9, 0), (0.12, -0.9, 0)
    pose[J("Spine")], pose[J("Thorax")] = (0, 0.25, 0), (0, 0.5, 0)
    pose[J("Neck/Nose")], pose[J("Head")] = (0, 0.65, 0.05), (0, 0.75, 0)
    pose[J("LShoulder")], pose[J("RShoulder")] = (0.18, 0.5, 0), (-0.18, 0.5, 0)
    pose[J("LElbow")], pose[J("RElbow")] = (0.18, 0.22, 0), (-0.18, 0.22, 0)
    pose[J("LWrist")], pose[J("RWrist")] = (0.18, -0.03, 0), (-0.18, -0.03, 0)
    return pose[None]


def test_body_frames_of_an_upright_person_are_the_axes():
    np.testing.assert_allclose(body_frames(_standing())[0], np.stack([np.eye(3), np.eye(3)]), atol=1e-12)


def test_arms_raised_sideways_by_a_turned_donor_are_raised_sideways_on_the_host():
    donor = _standing()[0] * 1.2  # a larger person...
    donor[J("LElbow")] = donor[J("LShoulder")] + (0.3, 0, 0)  # ...left arm out to the side,
    donor[J("LWrist")] = donor[J("LShoulder")] + (0.6, 0, 0)
    donor[J("RWrist")] = donor[J("RElbow")] + (0, 0, 0.3)  # right forearm forward,
    donor = donor @ Rotation.from_euler("y", 90, degrees=True).as_matrix().T  # facing elsewhere
    host = _standing()
    out = swap_limb(host, donor[None], "arms")[0]
    shoulder, elbow = host[0, J("LShoulder")], host[0, J("RElbow")]
    # The host's own lengths (0.28, 0.25 m) along the donor's directions in the body's frame.
    np.testing.assert_allclose(out[J("LElbow")], shoulder + (0.28, 0, 0), atol=1e-12)
    np.testing.assert_allclose(out[J("LWrist")], shoulder + (0.53, 0, 0), atol=1e-12)
    np.testing.assert_allclose(out[J("RElbow")], host[0, J("RElbow")], atol=1e-12)
    np.testing.assert_allclose(out[J("RWrist")], elbow + (0, 0, 0.25), atol=1e-12)
    others = [j for j in range(17) if j not in ARMS]
    np.testing.assert_array_equal(out[others], host[0, others])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), angles=st.lists(st.floats(-np.pi, np.pi), min_size=3, max_size=3))
def test_lengths_kept_donor_orientation_irrelevant_host_orientation_followed(seed, angles):
    rng = np.random.default_rng(seed)
    host = _standing() + rng.normal(0, 0.03, (1, 17, 3))
    donor = _standing() * 0.9 + rng.normal(0, 0.08, (1, 17, 3))
    out = swap_limb(host, donor, "legs")
    bones = np.array(skeleton.BONES)
    length = lambda p: np.linalg.norm(p[:, bones[:, 0]] - p[:, bones[:, 1]], axis=-1)  # noqa: E731
    np.testing.assert_allclose(length(out), length(host), atol=1e-12)
    turn = Rotation.from_rotvec(angles).as_matrix()
    np.testing.assert_allclose(swap_limb(host, donor @ turn.T, "legs"), out, atol=1e-12)
    np.testing.assert_allclose(swap_limb(host @ turn.T, donor, "legs"), out @ turn.T, atol=1e-12)
    np.testing.assert_allclose(swap_limb(host, host, "legs"), host, atol=1e-12)


@pytest.fixture
def sequences(h36m_dir):
    return load_dataset(h36m_dir, "gt", ["S1", "S5"]).sequences


def test_mixed_2d_is_the_projection_of_the_mixed_3d(sequences):
    mixed = mix_limbs(sequences, np.random.default_rng(3), 1.0)
    for before, after in zip(sequences, mixed):
        camera = before.camera
        world = after.poses_3d.astype(np.float64) + after.trajectory[:, None]
        assert np.abs(camera.normalize(camera.project(world), after.normalization) - after.keypoints).max() < 2e-5
        moved = np.abs(after.poses_3d - before.poses_3d).max(axis=(0, 2))
        assert moved[ARMS + LEGS].max() > 1e-3
        assert np.all(np.delete(moved, ARMS + LEGS) < 1e-6)  # trunk and head stay
        np.testing.assert_array_equal(after.trajectory, before.trajectory)


def test_share_and_seed(sequences):
    half = mix_limbs(sequences * 20, np.random.default_rng(0), 0.5)
    changed = [
        [np.abs(a.poses_3d[:, limb] - b.poses_3d[:, limb]).max() > 1e-6 for limb in (ARMS, LEGS)]
        for a, b in zip(half, sequences * 20)
    ]
    assert 0.3 < np.mean(changed) < 0.7  # each limb pair with probability one half
    first, again, later = (mix_limbs(sequences, epoch_rng(7, e, 1), 1.0) for e in (2, 2, 3))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    assert any(not np.array_equal(a.poses_3d, c.poses_3d) for a, c in zip(first, later))


def test_limb_mix_is_checked(h36m_dir, tmp_path, capsys):
    code = main(cli("train", "-k gt -str S1 -ste S9 --limb-mix 1.5", data_dir=h36m_dir, checkpoint=tmp_path / "d"))
    assert code == 2
    assert "--limb-mix" in capsys.readouterr().err
