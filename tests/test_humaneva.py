"""HumanEva-I in VideoPose3D's layout: the 15-joint skeleton, every loss term and plausibility
metric on it against a first-principles reference, flip averaging and streaming on 15-joint
models, and training + evaluation + Lifter end to end on small files written in that exact
layout."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import loss_reference
from h36m_files import cli, motion
from jointpose import losses
from jointpose.cli import main
from jointpose.data.h36m import load_dataset
from jointpose.errors import JointposeError
from jointpose.evaluation.plausibility import plausibility_errors
from jointpose.geometry import skeleton
from jointpose.geometry.anatomy import bone_lengths, fit_skeleton, joint_angles, limit_range_of_motion, rom_violation
from jointpose.geometry.calibrations import humaneva_cameras
from jointpose.inference.lifter import Lifter
from jointpose.inference.streaming import StreamingLifter
from jointpose.losses import TERMS, JointAwareLoss, LossWeights
from jointpose.model.temporal import TemporalModel
from jointpose.training.config import TrainConfig
from jointpose.training.resume import check_compatible

HE = skeleton.HUMANEVA_15
# The Human3.6M-17 joint standing where each HumanEva-15 joint stands (test motion only).
H36M_OF_HUMANEVA = [0, 8, 11, 12, 13, 14, 15, 16, 4, 5, 6, 1, 2, 3, 10]
SPLITS = {
    "Train/S1": {"Walking 1 chunk0": 150, "Jog 1 chunk0": 90, "Jog 1 chunk2": 70},
    "Train/S2": {"Walking 1 chunk0": 130, "Jog 1 chunk0": 100},
    "Validate/S1": {"Walking 1 chunk0": 110, "Jog 1 chunk0": 80},
}

# First-principles reference (loss_reference), its tables typed out from VideoPose3D's
# HumanEva-15 layout (parents [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1], left joints
# 2, 3, 4, 8, 9, 10, right 5, 6, 7, 11, 12, 13) and docs/humaneva.md's angle table; nothing
# shared with the library. Lower limits: the published ones less the 15-degree placement
# tolerance; every upper limit is 180.
HE_REFERENCE = loss_reference.Tables(
    parents=(-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    twins=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
    proportions=((3, 4), (6, 7), (9, 10), (12, 13), (8, 11), (2, 5)),
    triples={
        "neck": (0, 1, 14),
        "right hip": (0, 11, 12),
        "left hip": (0, 8, 9),
        "right hip flexion": (1, 0, 12),
        "left hip flexion": (1, 0, 9),
        "right shoulder": (1, 5, 6),
        "left shoulder": (1, 2, 3),
        "right knee": (11, 12, 13),
        "left knee": (8, 9, 10),
        "right elbow": (5, 6, 7),
        "left elbow": (2, 3, 4),
    },
    limits={
        "neck": (135 - 15, 180),
        "right hip": (60 - 15, 180),
        "left hip": (60 - 15, 180),
        "right hip flexion": (25 - 15, 180),
        "left hip flexion": (25 - 15, 180),
        "right shoulder": (45 - 15, 180),
        "left shoulder": (45 - 15, 180),
        "right knee": (40 - 15, 180),
        "left knee": (40 - 15, 180),
        "right elbow": (30 - 15, 180),
        "left elbow": (30 - 15, 180),
    },
)


def humaneva_motion(frames: int, seed: int) -> np.ndarray:
    """(frames, 15, 3) world metres (HumanEva's floor at z = 0) of a walking figure."""
    return motion(frames, seed)[:, H36M_OF_HUMANEVA]


def write_humaneva(folder: Path, subjects: dict[str, dict[str, int]] = SPLITS, name: str = "gt") -> Path:
    """``data_3d_humaneva15.npz`` and ``data_2d_humaneva15_<name>.npz`` as VideoPose3D's
    prepare script writes them: 3D world metres per chunk; 2D a list of one (frames, 15, 2)
    pixel array per camera C1-C3 (a pinhole of focal length 800 px on HumanEva's extrinsics:
    its files hold no intrinsics); the metadata with the 15-joint symmetry. The 2D file also
    holds an unlabelled subject, as VideoPose3D's detections do."""
    cameras = humaneva_cameras()
    positions_3d, positions_2d = {}, {}
    for s, (subject, actions) in enumerate(subjects.items()):
        positions_3d[subject], positions_2d[subject] = {}, {}
        for a, (action, frames) in enumerate(actions.items()):
            world = humaneva_motion(frames, seed=10 * s + a)
            positions_3d[subject][action] = world.astype("float32")
            views = []
            for camera in cameras[subject]:
                cam = camera.world_to_camera(world)
                views.append((800 * cam[..., :2] / cam[..., 2:] + [320, 240]).astype("float32"))
            positions_2d[subject][action] = views
    positions_2d["Unlabeled/S4"] = {"Box 2": [np.zeros((40, 15, 2), "float32")] * 3}
    metadata = {
        "layout_name": "humaneva15",
        "num_joints": 15,
        "keypoints_symmetry": [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]],
    }
    np.savez_compressed(folder / "data_3d_humaneva15.npz", positions_3d=positions_3d)
    np.savez_compressed(folder / f"data_2d_humaneva15_{name}.npz", positions_2d=positions_2d, metadata=metadata)
    return folder


@pytest.fixture(scope="module")
def he_dir(tmp_path_factory) -> Path:
    return write_humaneva(tmp_path_factory.mktemp("humaneva"))


def _motion_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, truth) of shape (2, 6, 15, 3), float64: root-relative walking with 2 cm of
    seeded noise (no limb exactly straight), the prediction 3 cm further off (its root too) and
    its right knee folded to 15 degrees (10 below its range) in the first sequence."""
    generator = torch.Generator().manual_seed(1)
    target = torch.from_numpy(humaneva_motion(12, seed=1)).reshape(2, 6, 15, 3)
    target = target + 0.02 * torch.randn(target.shape, generator=generator, dtype=torch.float64)
    target = target - target[:, :, :1]
    pred = target + 0.03 * torch.randn(target.shape, generator=generator, dtype=torch.float64)
    hip, knee = pred[0, :, 11], pred[0, :, 12]
    thigh = (hip - knee) / (hip - knee).norm(dim=-1, keepdim=True)
    side = torch.linalg.cross(thigh, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand_as(thigh))
    side = side / side.norm(dim=-1, keepdim=True)
    pred[0, :, 13] = knee + 0.4 * (math.cos(math.radians(15)) * thigh + math.sin(math.radians(15)) * side)
    return pred, target


def test_humaneva_skeleton_is_videopose3ds_layout():
    assert HE.parents == HE_REFERENCE.parents
    assert (HE.left, HE.right) == ((2, 3, 4, 8, 9, 10), (5, 6, 7, 11, 12, 13))
    assert HE.num_joints == 15 and len(HE.bones) == 14
    assert skeleton.for_joints(15) is HE and skeleton.for_joints(17) is skeleton.H36M_17
    with pytest.raises(JointposeError, match="no skeleton layout has 16 joints"):
        skeleton.for_joints(16)
    assert HE.symmetric_bones == tuple((a - 1, b - 1) for a, b in HE_REFERENCE.twins)
    assert HE.ratio_bones == tuple((a - 1, b - 1) for a, b in HE_REFERENCE.proportions)
    assert {name: (a, v, b) for name, a, v, b in HE.angles} == HE_REFERENCE.triples
    names = HE.joint_names
    for left, right in HE.symmetric_bones:  # the upper arm pairs with the upper arm, the shin with the shin...
        assert names[HE.bones[left][0]][1:] == names[HE.bones[right][0]][1:]
        assert {names[HE.bones[left][0]][0], names[HE.bones[right][0]][0]} == {"L", "R"}
    assert HE.flip_permutation == (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 14)
    # Ancestors: the left wrist hangs from pelvis -> thorax -> shoulder -> elbow -> wrist.
    assert np.flatnonzero(HE.ancestors[4]).tolist() == [0, 1, 2, 3]
    assert [names[HE.bones[b][0]] for b in HE.kept_direction_bones] == [
        "LHip",
        "RHip",
        "LShoulder",
        "RShoulder",
        "Head",
    ]
    # Human3.6M-17's module constants are its Skeleton's, not a second copy.
    h36m = skeleton.H36M_17
    assert skeleton.BONES is h36m.bones and skeleton.SYMMETRIC_BONES is h36m.symmetric_bones
    assert skeleton.FLIP_PERMUTATION is h36m.flip_permutation and skeleton.ANCESTORS is h36m.ancestors
    with pytest.raises(ValueError, match="parents must come before"):
        skeleton.Skeleton("bad", ("a", "b"), (-1, 1), (), (), (), (), (), ())


def test_anatomy_on_humaneva_poses():
    poses = torch.from_numpy(humaneva_motion(60, seed=3))
    lengths = bone_lengths(poses)
    assert lengths.shape == (60, 14)
    assert torch.allclose(
        lengths, torch.stack(list(loss_reference.lengths(poses, HE_REFERENCE).values()), dim=-1), atol=1e-12
    )
    angles = joint_angles(poses)
    assert angles.shape == (60, len(HE.angles))
    knee = [name for name, *_ in HE.angles].index("left knee")
    h36m_knee = joint_angles(torch.from_numpy(motion(60, seed=3)))[:, 9]  # the same knee in H36M-17
    assert torch.allclose(angles[:, knee], h36m_knee, atol=1e-12)
    assert not rom_violation(poses).any()  # walking stays inside every range of motion
    folded = poses.clone()
    folded[:, 10] = folded[:, 9] + 0.9 * (folded[:, 8] - folded[:, 9])  # ankle back up at the hip
    assert (rom_violation(folded)[:, knee] > 0).all()  # the knee folded shut
    opened = limit_range_of_motion(folded)
    assert not rom_violation(opened).any() and torch.allclose(bone_lengths(opened), bone_lengths(folded))
    noisy = poses + 0.02 * torch.randn(poses.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fitted = fit_skeleton(noisy)
    fitted_lengths = bone_lengths(fitted)
    assert fitted_lengths.std(dim=0).max() < 1e-6  # one skeleton for the whole sequence
    pairs = HE.symmetric_bones
    assert torch.allclose(fitted_lengths[:, [a for a, _ in pairs]], fitted_lengths[:, [b for _, b in pairs]])
    assert torch.equal(fitted[:, 0], noisy[:, 0])  # the root stays


def test_every_loss_term_matches_the_first_principles_reference_on_humaneva():
    """Each term as JointAwareLoss computes it (and the gradient of their sum) against the
    float64 reference written from the definitions with HumanEva-15's own tables."""
    pred, target = _motion_pair()
    expected = loss_reference.terms(pred, target, HE_REFERENCE)
    assert expected["rom"] > 0.005 and all(expected[name] > 0 for name in TERMS)
    weights = LossWeights(**{name: 1.0 for name in TERMS})
    pred_ref = pred.clone().requires_grad_()
    ref_total = sum(loss_reference.terms(pred_ref, target, HE_REFERENCE).values())
    ref_total.backward()
    pred_lib = pred.clone().requires_grad_()
    total, terms = JointAwareLoss(weights)(pred_lib, target)
    total.backward()
    assert list(terms) == list(TERMS)
    for name in TERMS:  # the library's angles are smoothed: < 1e-5 rad off away from 0 and 180 degrees
        tolerance = dict(abs_tol=1e-5) if name in ("angle", "rom", "ang_vel", "ang_acc") else dict(rel_tol=1e-9)
        assert math.isclose(float(terms[name].detach()), float(expected[name]), **tolerance), name
    assert math.isclose(float(total.detach()), float(ref_total.detach()), rel_tol=1e-5)
    # Walking limbs come within 2 degrees of straight here, where the smoothed angles move the
    # gradient by up to 1e-4 of its largest entry (5e-5 measured, from the angular terms).
    scale = float(pred_ref.grad.abs().max())
    assert scale > 0.01 and torch.allclose(pred_lib.grad, pred_ref.grad, rtol=1e-4, atol=1e-4 * scale)
    # The term functions take the skeleton explicitly; their default is Human3.6M-17's.
    lengths = bone_lengths(pred)
    assert torch.equal(losses.symmetry_loss(lengths, HE), terms["sym"].detach())
    with pytest.raises(RuntimeError):
        losses.symmetry_loss(lengths)  # 14 bones are not Human3.6M-17's 16


def test_every_plausibility_metric_matches_the_reference_on_humaneva():
    pred, _ = _motion_pair()
    sequence = pred[0]  # (6, 15, 3): the folded right knee in every frame
    metrics = plausibility_errors(sequence, sequence)
    lengths = loss_reference.lengths(sequence, HE_REFERENCE)
    std = torch.stack(list(lengths.values()), dim=-1).std(dim=0, unbiased=False).mean()
    assert torch.allclose(metrics["bone_std"], std.expand(6))
    gap = torch.stack([lengths[a] - lengths[b] for a, b in HE_REFERENCE.twins], dim=-1).abs().mean(dim=-1)
    assert torch.allclose(metrics["lr_gap"], gap)
    outside = torch.stack(
        list(loss_reference.outside(loss_reference.angles(sequence, HE_REFERENCE), HE_REFERENCE).values()), -1
    )
    assert torch.equal(metrics["rom_pct"], (outside > 0).any(dim=-1).double())
    assert metrics["rom_pct"].sum() == 6  # the folded knee


def test_flip_averaging_and_streaming_on_a_15_joint_model():
    """Flip averaging mirrors 15-joint outputs with HumanEva-15's permutation: a model that
    is itself mirror-symmetric gives the same pose with and without it. Streaming a causal
    15-joint model (fit included) gives what the offline causal Lifter gives."""
    torch.manual_seed(0)
    model = TemporalModel((3, 3), num_joints_in=15, num_joints_out=15, channels=16, causal=True).eval()
    keypoints = np.random.default_rng(0).uniform(100, 500, (40, 15, 2))
    lifter = Lifter(model, keypoints_left=HE.left, keypoints_right=HE.right, skeleton_fit=True)
    offline = lifter.predict(keypoints, image_size=(640, 480))
    assert offline.shape == (40, 15, 3) and np.all(offline[:, 0] == 0)
    stream = StreamingLifter(lifter, flip_test=True)
    online = np.stack([stream.push(frame, image_size=(640, 480)) for frame in keypoints])
    assert np.abs(online - offline).max() < 1e-5
    lengths = bone_lengths(torch.from_numpy(offline))
    assert torch.allclose(
        lengths[:, [a for a, _ in HE.symmetric_bones]], lengths[:, [b for _, b in HE.symmetric_bones]]
    )
    # Mirrored input -> mirrored output: symmetric the model by averaging it with its mirror.
    plain = Lifter(model, keypoints_left=HE.left, keypoints_right=HE.right, flip_test=False)
    flipped = Lifter(model, keypoints_left=HE.left, keypoints_right=HE.right, flip_test=True)
    x = lifter.normalize(keypoints, (640, 480), False)
    mirrored = skeleton.flip_poses(x, HE.flip_permutation)
    by_hand = (
        plain.predict(x, normalized=True)
        + skeleton.flip_poses(plain.predict(mirrored, normalized=True), HE.flip_permutation)
    ) / 2
    assert np.abs(flipped.predict(x, normalized=True) - by_hand).max() < 1e-5


def test_loading_humaneva_files(he_dir):
    data = load_dataset(he_dir, "gt", ["Train/S1"], dataset="humaneva15")
    assert data.fps == 60.0 and data.num_keypoints == 15
    assert (data.keypoints_left, data.keypoints_right) == ((2, 3, 4, 8, 9, 10), (5, 6, 7, 11, 12, 13))
    assert len(data.sequences) == 3 * 3  # 3 chunks x cameras C1-C3
    seq = next(s for s in data.sequences if s.action == "Jog 1 chunk2" and s.camera_index == 1)
    assert seq.key == "Train/S1/Jog 1 chunk2/1" and seq.action_group == "Jog"
    camera = humaneva_cameras()["Train/S1"][1]
    world = humaneva_motion(70, seed=2)
    expected = camera.world_to_camera(world)
    assert np.allclose(seq.poses_3d, expected - expected[:, :1], atol=1e-5)  # camera space, root-relative
    assert np.allclose(seq.trajectory, expected[:, 0], atol=1e-5)
    pixels = 800 * expected[..., :2] / expected[..., 2:] + [320, 240]
    assert np.allclose(seq.keypoints, pixels / 640 * 2 - [1, 480 / 640], atol=1e-5)  # normalised for 640 x 480
    # HumanEva-I's camera C2 of S1 sits at (844.8131, -3805.2092, 1504.9929) mm (VideoPose3D).
    assert np.allclose(camera.camera_to_world(np.zeros(3)), [0.8448131, -3.8052092, 1.5049929])
    assert humaneva_cameras()["Validate/S3"] == humaneva_cameras()["Train/S1"]  # VideoPose3D's S3 are S1's
    with pytest.raises(JointposeError, match="subject S1 not in .*Train/S1"):
        load_dataset(he_dir, "gt", ["S1"], dataset="humaneva15")
    with pytest.raises(JointposeError, match="data_2d_h36m_gt.npz .*[(]dataset h36m keypoints"):
        load_dataset(he_dir, "gt", ["Train/S1"])  # the Human3.6M names are not there
    with pytest.raises(JointposeError, match="must be one of h36m, humaneva15, got 'humaneva20'") as info:
        load_dataset(he_dir, "gt", ["Train/S1"], dataset="humaneva20")
    assert info.value.fields == ("dataset",)
    with pytest.raises(JointposeError, match="no intrinsics"):
        camera.project(expected)
    with pytest.raises(JointposeError, match="^normalization intrinsics: camera C1 has no intrinsics") as info:
        load_dataset(he_dir, "gt", ["Train/S1"], dataset="humaneva15", normalization="intrinsics")
    assert info.value.fields == ("normalization",)


def test_dataset_is_a_config_field_with_its_flag_and_must_match_on_resume(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices
        main(["train", "-d", "humaneva", "--data-dir", str(tmp_path), "--checkpoint", str(tmp_path / "c")])
    assert exit_info.value.code == 2 and "argument -d/--dataset: invalid choice: 'humaneva'" in capsys.readouterr().err
    with pytest.raises(JointposeError, match="^dataset must be one of h36m, humaneva15, got 'x'$"):
        TrainConfig(data_dir="d", checkpoint_dir="c", dataset="x")
    # HumanEva-I's cameras have no intrinsics: screen input in both modes (Human3.6M: intrinsics with constraints).
    assert TrainConfig(data_dir="d", checkpoint_dir="c").resolved().normalization == "intrinsics"
    config = TrainConfig(data_dir="d", checkpoint_dir="c", dataset="humaneva15").resolved()
    assert config.normalization == "screen" and config.constraints
    args = {"filter_widths": [3, 3, 3], "channels": 1024, "dropout": 0.2, "causal": False, "num_joints_in": 15}
    saved = {"model_args": args, "config": {**config.to_dict(), "dataset": "h36m"}}
    with pytest.raises(JointposeError, match="dataset: h36m in the checkpoint vs humaneva15 now") as info:
        check_compatible(saved, args, config, tmp_path / "latest.pt")
    assert "dataset" in info.value.fields
    older = {"model_args": args, "config": {k: v for k, v in config.to_dict().items() if k != "dataset"}}
    with pytest.raises(JointposeError, match="dataset: h36m in the checkpoint vs humaneva15 now"):
        check_compatible(older, args, config, tmp_path / "latest.pt")  # a run from before the field: Human3.6M
    check_compatible({"model_args": args, "config": config.to_dict()}, args, config, tmp_path / "latest.pt")
    # The 2D trained on: compared where both record it, a checkpoint's value checked first.
    same = {"model_args": args, "config": config.to_dict(), "input_layout": "coco"}
    check_compatible(same, args, config, tmp_path / "latest.pt", "coco")
    check_compatible(same, args, config, tmp_path / "latest.pt", None)  # data whose kind cannot be recorded
    check_compatible({**same, "input_layout": None}, args, config, tmp_path / "latest.pt", "h36m")  # an older run
    with pytest.raises(JointposeError, match="input layout: coco in the checkpoint vs blazepose now"):
        check_compatible(same, args, config, tmp_path / "latest.pt", "blazepose")
    with pytest.raises(JointposeError, match=r"latest\.pt: checkpoint 'input_layout' must be one of .*, got 'x{20}"):
        check_compatible({**same, "input_layout": "x" * 10_000}, args, config, tmp_path / "latest.pt", "coco")


@pytest.mark.slow
def test_train_and_evaluate_humaneva_end_to_end(he_dir, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    flags = "-d humaneva15 -k gt -str Train/S1,Train/S2 -ste Validate/S1 -arc 3,3 -ch 32 -e 1 -b 128"
    assert main(cli("train", flags + " --device cpu --no-progress", data_dir=he_dir, checkpoint=ckpt)) == 0
    assert "Average" in capsys.readouterr().out
    latest = torch.load(ckpt / "latest.pt", weights_only=True)
    assert latest["config"]["dataset"] == "humaneva15" and latest["config"]["normalization"] == "screen"
    assert latest["model_args"]["num_joints_out"] == 15 and latest["model_args"]["num_joints_in"] == 15
    results, preds = tmp_path / "results.json", tmp_path / "preds.npz"
    paths = dict(data_dir=he_dir, checkpoint=ckpt, json=results, export_predictions=preds)
    assert main(cli("evaluate", "--device cpu", **paths)) == 0  # the checkpoint's dataset
    summary = json.loads(results.read_text())
    assert summary["config"]["evaluated_on"]["dataset"] == "humaneva15"
    assert summary["config"]["evaluated_on"]["subjects"] == ["Validate/S1"]
    assert set(summary["actions"]) == {"Walking", "Jog"}
    average = summary["average"]
    assert average["frames"] == 3 * (110 + 80)
    assert all(np.isfinite(average[k]) for k in ("p1", "p2", "p3", "mpjve", "accel", "bone_std", "lr_gap", "rom_pct"))
    assert average["bone_std"] < 1e-3  # joint-aware: one consistent skeleton fitted per sequence
    exported = np.load(preds)
    assert exported["Validate/S1/Walking 1 chunk0/2"].shape == (110, 15, 3)
    # The exported poses are what the Lifter gives on the same input (camera C3's normalised keypoints).
    lifter = Lifter.load(ckpt, device="cpu")
    view = load_dataset(he_dir, "gt", ["Validate/S1"], dataset="humaneva15").sequences
    seq = next(s for s in view if s.key == "Validate/S1/Walking 1 chunk0/2")
    assert np.abs(lifter.predict(seq.keypoints, normalized=True) - exported[seq.key]).max() < 1e-5
    # A 17-joint dataset does not fit a 15-joint model: one clear line naming -d.
    assert main(cli("evaluate", "-d h36m --device cpu", data_dir=he_dir, checkpoint=ckpt)) == 2
    assert "-d h36m: the dataset's poses have 17 joints but" in capsys.readouterr().err
