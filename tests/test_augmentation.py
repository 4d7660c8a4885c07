"""Body-size augmentation: random bones per training sequence, 2D re-projected through its camera."""

import dataclasses

import numpy as np
import pytest

from h36m_files import cli
from jointpose.cli import build_parser, flag_message, main, train_config
from jointpose.data.batching import epoch_rng, scale_bodies
from jointpose.data.h36m import load_dataset
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.training.config import BODY_SCALE_BASELINE
from jointpose.training.trainer import Trainer


def _lengths(poses: np.ndarray) -> np.ndarray:
    bones = np.array(skeleton.BONES)
    return np.linalg.norm(poses[:, bones[:, 0]] - poses[:, bones[:, 1]], axis=-1)


def _seen(seq) -> np.ndarray:
    """What the sequence's camera sees of its 3D joints (normalised), computed here from scratch:
    pinhole projection, Human3.6M's distortion form, then the screen normalisation."""
    cam = seq.camera
    points = seq.poses_3d.astype(np.float64) + seq.trajectory[:, None]
    x, y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    r2 = x * x + y * y
    k1, k2, k3 = cam.radial_distortion
    p1, p2 = cam.tangential_distortion
    factor = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3 + p1 * x + p2 * y
    u = (x * factor + p1 * r2) * cam.focal_length[0] + cam.center[0]
    v = (y * factor + p2 * r2) * cam.focal_length[1] + cam.center[1]
    return np.stack([u / cam.res_w * 2 - 1, v / cam.res_w * 2 - cam.res_h / cam.res_w], axis=-1)


@pytest.fixture
def sequences(h36m_dir):
    return load_dataset(h36m_dir, "gt", ["S1", "S5"]).sequences


def test_scaled_2d_is_the_projection_of_the_scaled_3d(sequences):
    assert sequences[0].camera.distortion_model == "h36m"
    assert np.abs(_seen(sequences[0]) - sequences[0].keypoints).max() < 1e-5  # exact 2D to begin with
    scaled = scale_bodies(sequences, np.random.default_rng(3), 0.1)
    for before, after in zip(sequences, scaled):
        assert np.abs(_seen(after) - after.keypoints).max() < 2e-5
        assert np.abs(after.keypoints - before.keypoints).max() > 1e-3  # the 2D did move
        np.testing.assert_array_equal(after.trajectory, before.trajectory)  # the root stays
        assert np.all(after.poses_3d[:, 0] == 0)


def test_noise_on_the_2d_is_kept(sequences):
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.004, sequences[0].keypoints.shape).astype(np.float32)
    noisy = dataclasses.replace(sequences[0], keypoints=sequences[0].keypoints + noise)
    (after,) = scale_bodies([noisy], np.random.default_rng(5), 0.1)
    np.testing.assert_allclose(after.keypoints - _seen(after), noise, atol=2e-5)


def test_each_sequence_gets_one_rigid_symmetric_body(sequences):
    scaled = scale_bodies(sequences, np.random.default_rng(1), 0.1)
    factors = []
    for before, after in zip(sequences, scaled):
        ratio = _lengths(after.poses_3d) / _lengths(before.poses_3d)
        np.testing.assert_allclose(ratio, ratio[:1].repeat(len(ratio), axis=0), rtol=1e-4)  # same every frame
        left, right = np.array(skeleton.SYMMETRIC_BONES).T
        np.testing.assert_allclose(ratio[0, left], ratio[0, right], rtol=1e-4)
        assert np.all((ratio > 0.8 * 0.85 - 1e-4) & (ratio < 1.2 * 1.15 + 1e-4))  # body_factors' clipping
        factors.append(ratio[0])
    assert np.std(np.array(factors)[:, 0]) > 0.01  # bodies differ between sequences


def test_same_seed_same_bodies_other_epoch_other_bodies(sequences):
    first = scale_bodies(sequences, epoch_rng(7, 2, 1), 0.08)
    again = scale_bodies(sequences, epoch_rng(7, 2, 1), 0.08)
    later = scale_bodies(sequences, epoch_rng(7, 3, 1), 0.08)
    for a, b, c in zip(first, again, later):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
        assert not np.array_equal(a.poses_3d, c.poses_3d)


def test_other_keypoint_layouts_are_refused(sequences):
    seq = dataclasses.replace(sequences[0], keypoints=sequences[0].keypoints[:, :16])
    with pytest.raises(JointposeError, match="^body_scale needs 2D keypoints of the 17") as error:
        scale_bodies([seq], np.random.default_rng(0), 0.08)
    assert flag_message(error.value).startswith("--body-scale needs 2D keypoints of the 17")


def _config(data, ckpt, *extra):
    flags = "-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 16 -e 1 --no-progress"
    return train_config(build_parser().parse_args([*cli("train", flags, data_dir=data, checkpoint=ckpt), *extra]))


@pytest.mark.parametrize("flags", [("--body-scale", "0.1"), ("--limb-mix", "1")])
def test_trainer_draws_new_bodies_each_epoch(h36m_dir, tmp_path, flags):
    trainer = Trainer(_config(h36m_dir, tmp_path / "a", *flags))
    plain = trainer.training_windows()
    epoch0, epoch0_again, epoch1 = (trainer.training_windows(e) for e in (0, 0, 1))
    assert epoch0.singles.inputs.shape == plain.singles.inputs.shape  # same windows, same compute
    assert not np.allclose(epoch0.singles.targets, plain.singles.targets)
    np.testing.assert_array_equal(epoch0.singles.targets, epoch0_again.singles.targets)
    assert not np.allclose(epoch0.singles.targets, epoch1.singles.targets)
    trainer.train_one_epoch()
    assert trainer.windows is not plain and np.array_equal(trainer.windows.singles.targets, epoch0.singles.targets)


def test_body_scale_defaults_and_validation(h36m_dir, tmp_path):
    baseline = Trainer(_config(h36m_dir, tmp_path / "b", "--no-constraints"))
    assert baseline.config.body_scale == BODY_SCALE_BASELINE == 0.0  # VideoPose3D's recipe: no augmentation
    plain = baseline.training_windows()
    np.testing.assert_array_equal(baseline.training_windows(0).singles.targets, plain.singles.targets)
    assert (
        Trainer(_config(h36m_dir, tmp_path / "c", "--no-constraints", "--body-scale", "0.05")).config.body_scale == 0.05
    )
    code = main(cli("train", "-k gt -str S1 -ste S9 --body-scale -0.1", data_dir=h36m_dir, checkpoint=tmp_path / "d"))
    assert code == 2


def test_adult_limbs_rescale_the_limbs_of_the_same_draws(h36m_dir, tmp_path):
    """The trainer's bodies with ``--adult-limbs``: the same draws, the limbs' bones longer or
    shorter by the given share of the adult factors, every other bone as it was."""
    plain = Trainer(_config(h36m_dir, tmp_path / "a", "--body-scale", "0.1")).training_windows(0)
    adult = Trainer(_config(h36m_dir, tmp_path / "b", "--body-scale", "0.1", "--adult-limbs", "0.5")).training_windows(
        0
    )
    ratio = _lengths(adult.singles.targets.numpy()) / _lengths(plain.singles.targets.numpy())
    expected = np.ones(len(skeleton.BONES))
    # Half-way to upper arms x1.26, forearms x1.06, thighs x0.90, shins x0.89.
    for child, factor in (("Elbow", 1.13), ("Wrist", 1.03), ("Knee", 0.95), ("Foot", 0.945)):
        for side in "LR":
            expected[skeleton.bone_index(skeleton.JOINT_NAMES.index(side + child))] = factor
    np.testing.assert_allclose(ratio, np.broadcast_to(expected, ratio.shape), rtol=1e-4)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ("--adult-limbs 0.5", "--adult-limbs centres the bodies --body-scale draws"),
        ("--body-scale 0.1 --adult-limbs 1.5", "--adult-limbs must be a share in [0, 1]"),
    ],
)
def test_adult_limbs_is_checked(h36m_dir, tmp_path, capsys, flags, named):
    code = main(cli("train", f"-k gt -str S1 -ste S9 {flags}", data_dir=h36m_dir, checkpoint=tmp_path / "d"))
    assert code == 2
    assert named in capsys.readouterr().err
