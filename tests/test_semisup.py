"""Semi-supervised back-projection training (-sun): projection, losses, batches, end to end."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import jointpose
from h36m_files import motion
from jointpose.cli import build_parser, flag_message, main, train_config
from jointpose.data.batching import ChunkedWindows, MixedWindows, mirror_projection
from jointpose.data.h36m import PoseSequence, load_dataset
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.calibrations import h36m_cameras
from jointpose.geometry.cameras import Camera, input_intrinsics, input_projection
from jointpose.losses import (
    TARGET_FREE_TERMS,
    bone_length_guard,
    project_to_input,
    reprojection_loss,
    target_free_terms,
    view_consistency,
)
from jointpose.model.loading import load_checkpoint
from jointpose.training.config import idle_warnings
from jointpose.training.trainer import Trainer


def _pinhole(camera: Camera) -> Camera:
    """``camera`` without lens distortion (the back-projection leaves distortion out)."""
    return dataclasses.replace(camera, radial_distortion=(0.0, 0.0, 0.0), tangential_distortion=(0.0, 0.0))


def _sequence(camera: Camera, frames: int = 60, seed: int = 0, normalization: str = "screen") -> PoseSequence:
    """A walking figure seen by ``camera`` (no distortion, no noise): 2D, 3D and trajectory."""
    cam_space = camera.world_to_camera(motion(frames, seed=seed))
    keypoints = camera.normalize(camera.project(cam_space), normalization).astype(np.float32)
    return PoseSequence(
        "S1",
        "Walking",
        0,
        camera,
        keypoints,
        (cam_space - cam_space[:, :1]).astype(np.float32),
        cam_space[:, 0].astype(np.float32),
        normalization,
    )


@pytest.mark.parametrize("normalization", ["screen", "intrinsics"])
def test_torch_back_projection_equals_the_numpy_camera(device, normalization):
    rng = np.random.default_rng(3)
    cameras = [_pinhole(c) for c in h36m_cameras()["S1"]] + [
        Camera("odd", 640, 1080, (700.0, 650.0), (300.0, 560.0)),
    ]
    for camera in cameras:
        points = np.concatenate([rng.uniform(-2, 2, (50, 17, 2)), rng.uniform(1, 9, (50, 17, 1))], axis=-1)
        expected = camera.normalize(camera.project(points), normalization)
        intrinsics = torch.tensor(input_intrinsics(camera, normalization), device=device).expand(50, 4)
        got = project_to_input(torch.tensor(points, device=device), intrinsics)
        assert got.device.type == torch.device(device).type
        np.testing.assert_allclose(got.cpu().numpy(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("model", ["h36m", "opencv"])
def test_back_projection_through_the_lens_equals_the_numpy_camera(device, model):
    """Screen input keeps the lens: projecting with input_projection's 12 numbers lands where
    the numpy camera (with its distortion) and the screen normalisation put the points, for
    a sample as it is and mirrored (u -> -u of the mirrored scene X -> -X)."""
    rng = np.random.default_rng(6)
    lens = dict(radial_distortion=(-0.21, 0.24, -0.0026), tangential_distortion=(-0.0015, 0.0011))
    cameras = [dataclasses.replace(c, distortion_model=model, **lens) for c in h36m_cameras()["S9"]]
    cameras.append(
        Camera(
            "portrait",
            1080,
            1920,
            (1400.0, 1390.0),
            (530.0, 980.0),
            (0.08, -0.02, 0.0),
            (0.002, -0.003),
            distortion_model=model,
        )
    )
    mirror = np.array([-1.0, 1.0, 1.0])
    for camera in cameras:
        points = np.concatenate([rng.uniform(-1.2, 1.2, (40, 17, 2)), rng.uniform(3, 7, (40, 17, 1))], axis=-1)
        projection = torch.tensor(input_projection(camera, "screen"), device=device)
        expected = camera.normalize(camera.project(points), "screen")
        got = project_to_input(torch.tensor(points, device=device), projection.expand(40, 12))
        np.testing.assert_allclose(got.cpu().numpy(), expected, atol=1e-9, rtol=0)
        mirrored = project_to_input(
            torch.tensor(points * mirror, device=device), mirror_projection(projection).expand(40, 12)
        )
        np.testing.assert_allclose(mirrored.cpu().numpy(), expected * np.array([-1.0, 1.0]), atol=1e-9, rtol=0)
    assert not np.allclose(  # the lens matters: a pinhole projection misses by pixels
        project_to_input(torch.tensor(points), projection[:4].cpu().expand(40, 4)).numpy(), expected, atol=1e-3
    )
    assert not input_projection(cameras[0], "intrinsics")[4:10].any()  # undistorted input: no lens


@pytest.mark.parametrize("normalization", ["screen", "intrinsics"])
def test_mirrored_samples_project_onto_their_mirrored_input(device, normalization):
    """A flipped labelled sample's 3D + trajectory, projected with the flipped projection (cx
    and one tangential coefficient negated), lands on the same sample's flipped 2D, as the
    unlabelled batch holds it; through the cameras' own lenses (screen input keeps them)."""
    cameras = h36m_cameras()["S5"]
    assert all(c.distorted for c in cameras)
    sequences = [_sequence(c, seed=i, normalization=normalization) for i, c in enumerate(cameras)]
    labelled = ChunkedWindows(sequences, 9, chunk=4)
    unlabelled = ChunkedWindows(sequences, 9, chunk=4, labelled=False)
    indices = torch.arange(len(labelled))
    flip = indices % 2 == 0
    a, b = labelled.gather(indices, flip), unlabelled.gather(indices, flip)
    assert b.trajectory is None and b.targets.shape == (len(indices), 4, 17, 2)
    assert torch.equal(a.intrinsics, b.intrinsics) and torch.equal(a.inputs, b.inputs)
    assert torch.equal(b.intrinsics[flip, 2], -unlabelled.intrinsics[unlabelled.sequence_of[indices[flip]], 2])
    points = (a.targets + a.trajectory[:, :, None]).double().to(device)
    projected = project_to_input(points, b.intrinsics.double().to(device)[:, None])
    np.testing.assert_allclose(projected.cpu().numpy(), b.targets.double().numpy(), atol=2e-6, rtol=0)
    # The 2D targets are the input window's frames at the targets (centre of each window).
    centre = a.inputs[:, 4 : 4 + 4]
    assert torch.equal(b.targets, centre)


def test_reprojection_loss_is_zero_for_the_truth_only(device):
    sequences = [_sequence(_pinhole(c), seed=i) for i, c in enumerate(h36m_cameras()["S9"])]
    windows = MixedWindows(sequences, 9, chunk=4, share=0.25)
    unlabelled = MixedWindows(sequences, 9, chunk=4, share=0.25, labelled=False)
    a = next(windows.batches(64, 0, 0, augment=True))
    b = next(unlabelled.batches(64, 0, 0, augment=True))  # same seed and stream: the same samples
    poses = torch.cat([a.singles, a.chunks.reshape(-1, 17, 3)]).double().to(device)
    root = a.trajectory[:, None].double().to(device)
    keypoints = torch.cat([b.singles, b.chunks.reshape(-1, 17, 2)]).double().to(device)
    intrinsics = b.intrinsics.double().to(device)
    assert reprojection_loss(poses, root, intrinsics, keypoints) < 2e-6  # sqrt of safe_norm's epsilon
    for wrong_poses, wrong_root in (
        (poses * 1.1, root),  # a bigger body at the same place
        (poses, root * 1.1),  # farther away
        (poses + torch.tensor([0.0, 0.05, 0.0], device=device, dtype=poses.dtype), root),
    ):
        assert reprojection_loss(wrong_poses, wrong_root, intrinsics, keypoints) > 1e-3
    # Mean per-joint distance, worked out directly: a shift of every projected joint by d.
    shift = torch.tensor([0.003, -0.004], device=device, dtype=keypoints.dtype)
    assert torch.isclose(reprojection_loss(poses, root, intrinsics, keypoints + shift), shift.norm(), atol=1e-6)


@pytest.mark.parametrize("normalization", ["screen", "intrinsics"])
def test_reprojection_loss_weighs_a_pixel_alike_whatever_the_input(device, normalization):
    """The reprojection error is in VideoPose3D's screen units (2 / image width per pixel)
    for both normalisations: every keypoint moved by (dx, dy) pixels costs
    2 |(dx, dy)| / width, though rays put 1 / f per pixel and the screen 2 / width."""
    camera = dataclasses.replace(_pinhole(h36m_cameras()["S9"][1]), res_w=1500, focal_length=(1400.0, 1390.0))
    sequence = _sequence(camera, normalization=normalization)
    projection = torch.tensor(input_projection(camera, normalization), device=device).expand(60, 12)
    poses = torch.tensor(sequence.poses_3d, device=device, dtype=torch.float64)
    root = torch.tensor(sequence.trajectory, device=device, dtype=torch.float64)[:, None]
    shift = np.array([3.0, -4.0])  # pixels
    pixels = camera.project(camera.world_to_camera(motion(60, seed=0))) + shift
    moved = torch.tensor(camera.normalize(pixels, normalization), device=device)
    expected = 2.0 * np.linalg.norm(shift) / camera.res_w
    assert float(reprojection_loss(poses, root, projection, moved)) == pytest.approx(expected, rel=1e-4)
    # Without the screen units (10 numbers), the loss is in the input's own units.
    in_input = float(reprojection_loss(poses, root, projection[:, :10], moved))
    own = np.linalg.norm(shift / np.asarray(camera.focal_length)) if normalization == "intrinsics" else expected
    assert in_input == pytest.approx(own, rel=1e-4)


def test_bone_length_guard_equals_a_direct_computation():
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.3, (5, 4, 17, 3))
    reference = rng.uniform(0.1, 0.5, 16)
    lengths = np.stack([np.linalg.norm(poses[..., c, :] - poses[..., p, :], axis=-1) for c, p in skeleton.BONES], -1)
    expected = np.abs(lengths.reshape(-1, 16).mean(axis=0) - reference).mean()
    from jointpose.geometry.anatomy import bone_lengths

    got = bone_length_guard(bone_lengths(torch.tensor(poses)), torch.tensor(reference))
    assert abs(float(got) - expected) < 1e-9
    assert float(bone_length_guard(torch.tensor(lengths), torch.tensor(lengths.reshape(-1, 16).mean(0)))) < 1e-12


def test_target_free_terms_are_those_without_ground_truth():
    assert TARGET_FREE_TERMS == ("sym", "rom", "stretch")
    rng = np.random.default_rng(1)
    singles, chunks = torch.tensor(rng.normal(0, 0.3, (3, 17, 3))), torch.tensor(rng.normal(0, 0.3, (2, 4, 17, 3)))
    terms = target_free_terms(singles, chunks)
    assert set(terms) == {"sym", "rom", "bone", "stretch"}
    lengths = np.stack(
        [np.linalg.norm(chunks[..., c, :].numpy() - chunks[..., p, :].numpy(), axis=-1) for c, p in skeleton.BONES], -1
    )
    assert abs(float(terms["bone"]) - lengths.var(axis=1).mean()) < 1e-6  # variance over each chunk's frames
    share = np.abs(lengths / lengths.mean(axis=1, keepdims=True) - 1)  # stretch: within each chunk only
    expected = np.where(share < 1e-3, 0.5 * share**2 / 1e-3, share - 0.5e-3).mean()
    assert abs(float(terms["stretch"]) - expected) < 1e-5
    assert float(target_free_terms(singles, chunks[:0])["bone"]) == 0.0


def test_a_target_free_temporal_term_compares_frames_of_one_chunk_only(monkeypatch):
    """A term without ground truth that differences frames (here a speed) sees each chunk on
    its own: never the step from one chunk's last frame to the next chunk's first, nor the
    single windows of other people."""
    from jointpose import losses

    def speed(pred):
        return (pred[:, 1:] - pred[:, :-1]).norm(dim=-1).mean()

    terms = {**losses.TERM_FUNCTIONS, "speed": (speed, ("pred",))}
    monkeypatch.setattr(losses, "TERM_FUNCTIONS", terms)
    monkeypatch.setattr(losses, "TEMPORAL_TERMS", (*losses.TEMPORAL_TERMS, "speed"))
    monkeypatch.setattr(losses, "SEQUENCE_TERMS", (*losses.SEQUENCE_TERMS, "speed"))
    monkeypatch.setattr(losses, "TARGET_FREE_TERMS", (*TARGET_FREE_TERMS, "speed"))
    still = torch.zeros(2, 5, 17, 3) + torch.tensor([[[[0.0, 0.0, 0.0]]], [[[9.0, 0.0, 0.0]]]])  # far apart
    far_singles = torch.full((3, 17, 3), -7.0)
    assert float(target_free_terms(far_singles, still)["speed"]) == 0.0
    moving = still + torch.arange(5.0)[None, :, None, None] * torch.tensor([0.0, 0.1, 0.0])
    assert abs(float(target_free_terms(far_singles, moving)["speed"]) - 0.1) < 1e-6
    assert float(target_free_terms(far_singles, moving[:0])["speed"]) == 0.0


def _args(data, ckpt, *extra):
    """``jointpose train`` on the small dataset: S1 labelled, S5 unlabelled, tested on S9."""
    flags = "-k gt -str S1 -sun S5 -ste S9 -arc 3,3 -ch 32 -b 128 --no-progress --device cpu --seed 5"
    return ["train", "--data-dir", str(data), "--checkpoint", str(ckpt), *flags.split(), *extra]


def _config(*args):
    return train_config(build_parser().parse_args(list(args)))


def test_config_flags_validation_and_implied_trajectory(tmp_path):
    config = _config(*_args("d", tmp_path))
    assert config.subjects_unlabeled == ("S5",) and config.warmup_unlabeled == 1 and config.unlabeled_constraints
    assert config.trajectory is False and config.resolved().trajectory is True
    assert _config(*_args("d", tmp_path, "--no-unlabeled-constraints")).unlabeled_constraints is False
    assert config.bone_guard == 1.0 and _config(*_args("d", tmp_path, "--w-bone-guard", "0.5")).bone_guard == 0.5
    with pytest.raises(JointposeError, match=r"^--w-bone-guard must be in \[0, 1000000\]"):
        _config(*_args("d", tmp_path, "--w-bone-guard", "-1"))
    with pytest.raises(JointposeError) as error:
        _config(*_args("d", tmp_path, "-str", "S1,S5"))
    assert str(error.value).startswith("-sun: S5 also in -str")
    with pytest.raises(JointposeError, match="^--warmup-unlabeled must be an integer >= 0"):
        _config(*_args("d", tmp_path, "--warmup-unlabeled", "-1"))
    assert main(_args(tmp_path / "missing", tmp_path / "ck", "-str", "S1,S5")) == 2


def test_settings_that_cannot_act_are_named(tmp_path):
    """The settings a run cannot act on: in Python the fields, on the command line the flags
    (the warnings come from the Trainer, test_config has the whole path)."""

    def noted(*args: str) -> list[tuple[str, str]]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # reading the flags warns of nothing
            config = _config(*args)
        return [(str(w), flag_message(w, "train")) for w in idle_warnings(config)]

    alone = ["train", "--data-dir", "d", "--checkpoint", str(tmp_path), "--w-multiview", "0.5", "--balance-unlabeled"]
    assert noted(*alone) == [
        (
            "multiview, balance_unlabeled: no effect without unlabelled subjects (subjects_unlabeled)",
            "--w-multiview, --balance-unlabeled: no effect without unlabelled subjects (-sun)",
        )
    ]
    assert _config(*alone).multiview == 0.5
    assert noted(*_args("d", tmp_path, "--w-multiview", "0.5", "--balance-unlabeled")) == []  # with -sun: silent
    baseline = ["train", "--data-dir", "d", "--checkpoint", str(tmp_path), "--no-constraints", "--w-sym", "1"]
    assert noted(*baseline, "--chunk", "8", "--no-unlabeled-constraints") == [
        (
            "chunk, weights, unlabeled_constraints: no effect with constraints=False",
            "--chunk, --w-*, --no-unlabeled-constraints: no effect with --no-constraints",
        ),
        (
            "unlabeled_constraints: no effect without unlabelled subjects (subjects_unlabeled)",
            "--no-unlabeled-constraints: no effect without unlabelled subjects (-sun)",
        ),
    ]
    causal = ["train", "--data-dir", "d", "--checkpoint", str(tmp_path), "--causal", "--align-2d", "0.5"]
    assert noted(*causal) == [("align_2d: no effect with causal=True", "--align-2d: no effect with --causal")]
    assert noted(*causal[:-2]) == []  # its default alignment: silent


def test_unlabelled_3d_is_ignored(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S5"], use_3d=False)
    assert all(s.poses_3d is None and s.trajectory is None for s in data.sequences)
    windows = MixedWindows(data.sequences, 9, chunk=4, share=0.25, labelled=False)
    batch = next(windows.batches(32, 0, 0, steps=3, stream=2))
    assert batch.trajectory is None and batch.singles.shape[1:] == (17, 2) and batch.chunks.shape[2:] == (17, 2)
    assert len(list(windows.batches(32, 0, 0, steps=3, stream=2))) == 3


@pytest.mark.parametrize("chunk", [1, 4])
def test_balanced_subjects_come_equally_often(chunk):
    camera = _pinhole(h36m_cameras()["S1"][0])
    frames = {"S1": 96, "S5": 24, "S6": 28, "S7": 8, "S9": 72}
    sequences = [
        dataclasses.replace(_sequence(camera, n, seed=i), subject=name) for i, (name, n) in enumerate(frames.items())
    ]
    windows = ChunkedWindows(sequences, 9, chunk=chunk, labelled=False, balance_subjects=True)
    order, flips = windows.epoch_order(0, 0, augment=True)
    most = frames["S1"] // chunk  # chunks of the largest subject: every subject comes that often
    assert len(order) == windows.entries(True) == 2 * most * len(frames)
    subject_of = np.array([s.subject for s in sequences])[windows.sequence_of[order].numpy()]
    for name, n in frames.items():  # as it is and mirrored alike: each chunk floor or ceil of most / chunks
        for mirrored in (False, True):
            drawn = order[torch.from_numpy(subject_of == name) & (flips == mirrored)]
            times = torch.bincount(drawn, minlength=len(windows))[drawn.unique()]
            assert len(drawn) == most and len(times) == n // chunk
            assert set(times.tolist()) <= {most // (n // chunk), -(-most // (n // chunk))}
    plain = ChunkedWindows(sequences, 9, chunk=chunk, labelled=False)
    order, flips = plain.epoch_order(0, 0, augment=True)  # every chunk once each way
    assert torch.equal(torch.sort(order[flips]).values, torch.arange(len(plain)))
    assert torch.equal(torch.sort(order[~flips]).values, torch.arange(len(plain)))


def test_reprojection_trains_pose_and_trajectory_models(h36m_dir, tmp_path):
    # Weights away from their defaults, and the constraint ramp part-way, so that each reaches the total.
    trainer = Trainer(_config(*_args(h36m_dir, tmp_path / "ck", "--w-bone-guard", "0.5", "--w-stretch", "1")))
    assert trainer.trajectory_model is not None and trainer.unlabelled_windows is not None
    trainer.loss_fn.constraint_scale = 0.25
    semi = next(trainer.unlabelled_windows.batches(64, 0, 0, steps=1, stream=2))
    inputs = semi.windows.to(trainer.device)
    pred = trainer.model(inputs).reshape(len(inputs), 17, 3)
    root = trainer.trajectory_model(inputs).reshape(len(inputs), 1, 3)
    total, terms = trainer.unlabelled_loss(pred, root, semi)
    assert set(terms) == {
        "reprojection",
        "bone_guard",
        "unlabeled_sym",
        "unlabeled_rom",
        "unlabeled_bone",
        "unlabeled_stretch",
    }
    w = trainer.config.weights
    assert w.stretch == 1.0 and trainer.config.bone_guard == 0.5
    free = (
        w.sym * terms["unlabeled_sym"]
        + w.rom * terms["unlabeled_rom"]
        + w.bone * terms["unlabeled_bone"]
        + w.stretch * terms["unlabeled_stretch"]
    )
    assert float(terms["unlabeled_stretch"]) > 0
    assert torch.isclose(total, terms["reprojection"] + 0.5 * terms["bone_guard"] + 0.25 * free)
    total.backward()
    for model in (trainer.model, trainer.trajectory_model):
        assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


@pytest.mark.slow
def test_semi_supervised_run_trains_resumes_and_reproduces(h36m_dir, tmp_path):
    def run(name, epochs, *extra):
        return main(_args(h36m_dir, tmp_path / name, "-e", str(epochs), "--warmup-unlabeled", "0", *extra))

    assert run("a", 2) == 0
    assert run("b", 2) == 0
    Trainer(_config(*_args(h36m_dir, tmp_path / "c", "-e", "2", "--warmup-unlabeled", "0"))).fit(until_epoch=1)
    assert run("c", 2, "--resume") == 0
    a, b, c = (load_checkpoint(tmp_path / name) for name in "abc")
    assert a["config"]["subjects_unlabeled"] == ["S5"] and a["config"]["trajectory"] is True
    assert a["trajectory_model"] is not None
    assert all(row["reprojection"] > 0 and row["bone_guard"] >= 0 for row in a["history"])
    for other in (b, c):  # same seed, same result; a resumed run continues exactly
        assert all(torch.equal(a["model"][k], other["model"][k]) for k in a["model"])
        assert all(torch.equal(a["trajectory_model"][k], other["trajectory_model"][k]) for k in a["trajectory_model"])
        assert [row["reprojection"] for row in a["history"]] == [row["reprojection"] for row in other["history"]]
    with pytest.raises(JointposeError, match=r"subjects_unlabeled: \['S5'\] in the checkpoint vs \['S11'\] now"):
        Trainer(
            _config(*_args(h36m_dir, tmp_path / "c", "-e", "3", "--warmup-unlabeled", "0", "-sun", "S11", "--resume"))
        )
    assert run("c", 3, "-sun", "S11", "--resume") == 2
    assert run("c", 3, "--no-unlabeled-constraints", "--resume") == 2
    assert run("c", 3, "--w-bone-guard", "0.5", "--resume") == 2
    assert run("c", 3, "--w-multiview", "0.5", "--resume") == 2
    assert run("c", 3, "--balance-unlabeled", "--resume") == 2
    assert run("c", 3, "--resume") == 0  # -e may grow


def test_semi_supervised_needs_the_human36m_layout(h36m_dir, tmp_path):
    from h36m_files import write_dataset

    data = write_dataset(tmp_path / "data", {"S1": {"Walking": 80}, "S5": {"Walking": 80}, "S9": {"Walking": 80}})
    files = np.load(data / "data_2d_h36m_gt.npz", allow_pickle=True)
    positions = files["positions_2d"].item()
    short = {s: {a: [v[:, :15] for v in views] for a, views in acts.items()} for s, acts in positions.items()}
    metadata = {"keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 10, 9]]}
    np.savez_compressed(data / "data_2d_h36m_short.npz", positions_2d=short, metadata=metadata)
    metadata = {"keypoints_symmetry": [list(skeleton.LEFT_JOINTS), list(skeleton.RIGHT_JOINTS)], "input_layout": "coco"}
    np.savez_compressed(data / "data_2d_h36m_coco.npz", positions_2d=positions, metadata=metadata)
    for name, what in (("short", "15 keypoints in the h36m layout"), ("coco", "17 keypoints in the coco layout")):
        with pytest.raises(
            JointposeError,
            match="^subjects_unlabeled needs 2D keypoints of the 17 joints the model predicts \\(dataset h36m\\)",
        ) as e:
            Trainer(_config(*_args(data, tmp_path / name, "-k", name)))
        assert str(e.value).endswith(f"-k {name} has {what}")


def test_semi_supervised_needs_camera_intrinsics(tmp_path):
    """HumanEva-I's built-in cameras have no intrinsics: nothing to project the unlabelled joints with."""
    from test_humaneva import write_humaneva

    data = write_humaneva(tmp_path)
    flags = "-d humaneva15 -k gt -str Train/S1 -sun Train/S2 -ste Validate/S1 -arc 3,3 -ch 32 -b 128 --device cpu"
    config = _config("train", "--data-dir", str(data), "--checkpoint", str(tmp_path / "ck"), *flags.split())
    with pytest.raises(JointposeError, match=r"^subjects_unlabeled: the reprojection needs each camera's intrinsics"):
        Trainer(config)


def _views(normalization: str = "intrinsics") -> list[PoseSequence]:
    """One walk seen by the four S5 cameras (a recording with four views), and a second walk
    seen by one camera only (no partner view)."""
    cameras = [_pinhole(c) for c in h36m_cameras()["S5"]]
    views = [
        dataclasses.replace(_sequence(c, frames=40, seed=7, normalization=normalization), camera_index=i)
        for i, c in enumerate(cameras)
    ]
    alone = dataclasses.replace(_sequence(cameras[0], frames=30, seed=8, normalization=normalization), action="Alone")
    return views + [alone]


def test_view_pairs_show_one_frame_through_two_cameras(device):
    """Partners are the anchor's frame in another view of its recording; the batch's [R | t]
    moves the anchor's true 3D (mirrored or not) onto the partner's, as going through the
    world with each camera's own transforms does; the consistency term is 0 on the truth."""
    windows = MixedWindows(_views(), 9, view_pairs=True)
    for batch in windows.batches(40, 3, 1, steps=4):
        n = len(batch.pairs)
        assert n == 20 and bool(batch.pair_valid.all()) and batch.global_singles == 40
        rotation = batch.pairs[..., :3]
        assert bool(((rotation - torch.eye(3)).abs().amax(dim=(1, 2)) > 0.1).all())  # always another camera
        a_pose, p_pose = batch.singles[:n].double(), batch.singles[n : 2 * n].double()
        a_root, p_root = batch.trajectory[:n, None].double(), batch.trajectory[n : 2 * n, None].double()
        motion = batch.pairs.double()
        moved = (a_pose + a_root) @ motion[..., :3].transpose(-1, -2) + motion[:, None, :, 3]
        np.testing.assert_allclose(moved.numpy(), (p_pose + p_root).numpy(), atol=1e-5)
        args = [t.to(device) for t in (a_pose, a_root, p_pose, p_root, motion, batch.pair_valid)]
        assert float(view_consistency(*args)) < 1e-5
        bigger = [args[0] * 1.1, *args[1:]]
        assert float(view_consistency(*bigger)) > 1e-3


def test_view_consistency_equals_a_direct_computation(device):
    rng = np.random.default_rng(4)
    anchor, partner = rng.normal(0, 0.3, (2, 6, 17, 3))
    anchor_root, partner_root = rng.normal(0, 2, (2, 6, 1, 3))
    rotations = Rotation.random(6, random_state=5).as_matrix()
    offsets = rng.normal(0, 3, (6, 3))
    valid = np.array([True, True, False, True, False, True])
    expected = np.mean(
        [
            np.linalg.norm(anchor[i] @ rotations[i].T - partner[i], axis=-1).mean()
            + np.linalg.norm(rotations[i] @ anchor_root[i, 0] + offsets[i] - partner_root[i, 0])
            / max(partner_root[i, 0, 2], 0.1)
            for i in range(6)
            if valid[i]
        ]
    )
    motion = np.concatenate([rotations, offsets[..., None]], axis=-1)
    args = [torch.tensor(a, device=device) for a in (anchor, anchor_root, partner, partner_root, motion, valid)]
    assert abs(float(view_consistency(*args)) - expected) < 1e-9
    assert float(view_consistency(*args[:5], torch.zeros(6, dtype=torch.bool, device=device))) == 0.0


def test_view_pairs_leave_out_frames_a_shorter_view_lacks():
    """Views of one recording may differ in length (VideoPose3D's files): a frame the partner
    view does not have is marked invalid, never paired with another frame."""
    views = _views()[:2]
    views[1] = dataclasses.replace(
        views[1],
        keypoints=views[1].keypoints[:25],
        poses_3d=views[1].poses_3d[:25],
        trajectory=views[1].trajectory[:25],
    )
    windows = MixedWindows(views, 9, view_pairs=True)
    pairs = windows.views
    anchors = torch.arange(40)  # every frame of the long view
    partner, motion, valid = pairs.partners(anchors, torch.Generator().manual_seed(0))
    assert torch.equal(valid, anchors < 25) and torch.equal(partner[valid], 40 + anchors[valid])
    partner, _, valid = pairs.partners(40 + torch.arange(25), torch.Generator().manual_seed(0))
    assert bool(valid.all()) and torch.equal(partner, torch.arange(25))
    with pytest.raises(ValueError, match="two or more cameras"):
        MixedWindows(views[:1], 9, view_pairs=True)


def test_multiview_term_trains_and_needs_several_views(h36m_dir, tmp_path):
    trainer = Trainer(_config(*_args(h36m_dir, tmp_path / "ck", "--w-multiview", "0.5", "--no-unlabeled-constraints")))
    semi = next(trainer.unlabelled_windows.batches(64, 0, 0, steps=1, stream=2))
    assert semi.pairs is not None and len(semi.pairs) == 32
    assert len(trainer.unlabelled_windows.singles.pool) == len(trainer.unlabelled_windows.singles)
    balanced = Trainer(_config(*_args(h36m_dir, tmp_path / "b", "-sun", "S5,S11", "--balance-unlabeled")))
    assert len(balanced.unlabelled_windows.singles.pool) == 2 * 4 * 270  # S5: 270 frames x 4 views, S11: 190 x 4
    inputs = semi.windows.to(trainer.device)
    pred = trainer.model(inputs).reshape(len(inputs), 17, 3)
    root = trainer.trajectory_model(inputs).reshape(len(inputs), 1, 3)
    total, terms = trainer.unlabelled_loss(pred, root, semi)
    assert set(terms) == {"reprojection", "bone_guard", "multiview"} and float(terms["multiview"].detach()) > 0
    assert torch.isclose(total, terms["reprojection"] + terms["bone_guard"] + 0.5 * terms["multiview"])
    with pytest.raises(JointposeError, match=r"^--w-multiview must be in \[0, 1000000\]"):
        _config(*_args("d", tmp_path, "--w-multiview", "-1"))
    from h36m_files import write_dataset

    data = write_dataset(tmp_path / "data", {"S1": {"Walking": 80}, "S5": {"Walking": 80}, "S9": {"Walking": 80}})
    files = np.load(data / "data_2d_h36m_gt.npz", allow_pickle=True)
    positions = files["positions_2d"].item()
    positions["S5"]["Walking"] = positions["S5"]["Walking"][:1]  # S5 seen by one camera
    schema = json.loads((Path(jointpose.__file__).parent / "resources" / "h36m_cameras.json").read_text())
    schema["extrinsic"]["S5"] = schema["extrinsic"]["S5"][:1]
    schema["subject_intrinsic"] = {"S5": schema["intrinsic"][:1]}
    np.savez_compressed(
        data / "data_2d_h36m_one.npz",
        positions_2d=positions,
        metadata=files["metadata"].item(),
        cameras=json.dumps(schema),
    )
    with pytest.raises(
        JointposeError,
        match="^multiview needs recordings seen by two or more cameras; every recording of subjects_unlabeled",
    ):
        Trainer(_config(*_args(data, tmp_path / "one", "-k", "one", "--w-multiview", "1")))
