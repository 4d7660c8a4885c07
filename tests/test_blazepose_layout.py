"""``--input-layout blazepose``: BlazePose's points on built data and on the random cameras of training."""

import numpy as np
import pytest

from h36m_files import cli
from jointpose.cli import build_parser, main, train_config
from jointpose.data.h36m import H36MFiles
from jointpose.data.layouts import LAYOUTS, usable
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.motion.builder import CameraRing, blazepose_keypoints, coco_keypoints, write_h36m_dataset
from jointpose.motion.synthetic import generate
from jointpose.motion.viewpoints import CameraRanges, draw_camera, seen_through
from jointpose.safeio import load_npz
from jointpose.training.trainer import Trainer

HIP_WIDTH = 1.17  # docs/video.md: BlazePose's hips are 1.17 times as far apart as the rig's hip joints
SHOULDER_WIDTH = 1.12
LHIP, RHIP = skeleton.JOINT_NAMES.index("LHip"), skeleton.JOINT_NAMES.index("RHip")
COCO = LAYOUTS["coco17"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The same synthetic motion built as projected joints and as BlazePose's points."""
    motion = generate(["S1", "S5", "S9"], seconds=2.0, fps=50.0, seed=3)
    root = tmp_path_factory.mktemp("blazepose")
    for layout in ("h36m", "blazepose"):
        write_h36m_dataset(root / layout, motion, fps=50.0, cameras=CameraRing(), input_layout=layout, seed=0)
    return root, motion


def _spread(points: np.ndarray, left: int, right: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    middle = (points[:, left] + points[:, right]) / 2
    half = fraction * (points[:, left] - middle)
    return middle + half, middle - half


def test_blazepose_hips_are_the_documented_fraction_of_the_joints_on_built_data(built):
    root, motion = built
    joints_2d = load_npz(root / "h36m" / "data_2d_h36m_gt.npz")["positions_2d"].item()
    blaze_2d = load_npz(root / "blazepose" / "data_2d_h36m_gt.npz")["positions_2d"].item()
    cameras = CameraRing().cameras()
    for subject, actions in motion.items():
        for action, world in actions.items():
            for camera, joints, blaze in zip(cameras, joints_2d[subject][action], blaze_2d[subject][action]):
                # Worked out here: the 3D hip joints spread about their midpoint, then projected.
                hips = np.stack(_spread(world, LHIP, RHIP, HIP_WIDTH), axis=1)
                expected = camera.project(camera.world_to_camera(hips))
                np.testing.assert_allclose(blaze[:, [LHIP, RHIP]], expected, atol=1e-3)
                ratio = np.linalg.norm(blaze[:, LHIP] - blaze[:, RHIP], axis=-1) / np.linalg.norm(
                    joints[:, LHIP] - joints[:, RHIP], axis=-1
                )
                assert np.median(ratio) == pytest.approx(HIP_WIDTH, rel=0.02)
                # The root is mid-hips (as jointpose video makes it); the limbs are the joints.
                np.testing.assert_allclose(blaze[:, 0], blaze[:, [LHIP, RHIP]].mean(axis=1), atol=1e-3)
                for joint in ("LKnee", "RFoot", "LElbow", "RWrist"):
                    k = skeleton.JOINT_NAMES.index(joint)
                    np.testing.assert_allclose(blaze[:, k], joints[:, k], atol=1e-3)
    metadata = load_npz(root / "blazepose" / "data_2d_h36m_gt.npz")["metadata"].item()
    assert metadata["input_layout"] == "blazepose"


def test_blazepose_points_move_only_the_trunk_widths_and_the_face():
    world = generate(["S1"], seconds=1.0, fps=50.0, seed=1)["S1"]
    poses = next(iter(world.values()))
    coco, blaze = coco_keypoints(poses), blazepose_keypoints(poses)
    for part, fraction in (("hip", HIP_WIDTH), ("shoulder", SHOULDER_WIDTH)):
        left, right = COCO.index(f"l_{part}"), COCO.index(f"r_{part}")
        np.testing.assert_allclose(
            np.stack(_spread(coco, left, right, fraction)), blaze[:, [left, right]].swapaxes(0, 1)
        )
    limbs = [COCO.index(f"{s}_{p}") for s in "lr" for p in ("elbow", "wrist", "knee", "ankle")]
    np.testing.assert_array_equal(blaze[:, limbs], coco[:, limbs])
    face = [COCO.index(n) for n in ("nose", "l_eye", "r_eye", "l_ear", "r_ear")]
    ears = np.linalg.norm(blaze[:, COCO.index("l_ear")] - blaze[:, COCO.index("r_ear")], axis=-1)
    rig_ears = np.linalg.norm(coco[:, COCO.index("l_ear")] - coco[:, COCO.index("r_ear")], axis=-1)
    np.testing.assert_allclose(ears / rig_ears, 0.76, rtol=1e-6)  # docs/video.md: ears 0.76 as far apart
    assert (np.linalg.norm(blaze[:, face] - coco[:, face], axis=-1) > 1e-3).all()


def test_random_cameras_see_blazepose_points():
    poses = next(iter(generate(["S1"], seconds=1.0, fps=50.0, seed=2)["S1"].values()))
    rng = np.random.default_rng(0)
    camera = draw_camera(rng, CameraRanges(), poses[:, 0].mean(0), 1.0)
    pixels, joints, _ = seen_through(poses, camera, rng, fps=50.0, noise=None, input_layout="blazepose")
    hips = np.stack(_spread(poses, LHIP, RHIP, HIP_WIDTH), axis=1)
    np.testing.assert_allclose(pixels[:, [LHIP, RHIP]], camera.project(camera.world_to_camera(hips)), atol=1e-6)
    np.testing.assert_allclose(pixels[:, 0], pixels[:, [LHIP, RHIP]].mean(axis=1), atol=1e-6)  # the root: mid-hips
    plain, _, _ = seen_through(poses, camera, rng, fps=50.0, noise=None)
    np.testing.assert_allclose(pixels[:, 3], plain[:, 3], atol=1e-6)  # RFoot: the joint itself


def test_blazepose_dataset_trains_an_epoch_with_random_cameras(built, tmp_path):
    root, _ = built
    assert H36MFiles(root / "blazepose", "noisy").input_layout() == "blazepose"
    flags = "-k noisy -str S1,S5 -ste S9 -arc 3,3 -ch 16 -e 1 --no-progress"
    args = cli("train", flags, data_dir=root / "blazepose", checkpoint=tmp_path / "run")
    trainer = Trainer(train_config(build_parser().parse_args([*args, "--random-cameras", "fov=50:60"])))
    assert trainer.train_data.input_layout == "blazepose"
    windows = trainer.training_windows(0)
    assert np.isfinite(windows.singles.inputs).all()
    assert main([*args, "--random-cameras", "fov=50:60", "--checkpoint", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli").exists()


def test_unknown_input_layout_is_refused(tmp_path):
    motion = generate(["S1"], seconds=1.0, fps=50.0)
    with pytest.raises(JointposeError, match="^input_layout must be one of h36m, coco, blazepose"):
        write_h36m_dataset(tmp_path / "x", motion, fps=50.0, cameras=CameraRing(), input_layout="openpose")


def test_a_joint_counts_as_detected_at_the_threshold_and_above_zero():
    np.testing.assert_array_equal(usable(np.array([0.0, 0.3, 0.2999, 0.31]), 0.3), [False, True, False, True])
    np.testing.assert_array_equal(usable(np.array([0.0, 0.1]), 0.0), [False, True])  # 0: not seen, at any threshold
