import copy
import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from h36m_files import cli
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.bones import bone_vectors, positions_from_bones
from jointpose.geometry.calibrations import h36m_cameras
from jointpose.inference.export import export, poses_to_motion
from jointpose.inference.lifter import Lifter
from jointpose.inference.streaming import StreamingLifter
from jointpose.model.temporal import FusedTemporalModel, TemporalModel
from jointpose.motion.bvh import global_transforms, read_bvh
from jointpose.motion.synthetic import generate
from safetensors_plain import read_plain_safetensors, save_with_weight


def _model(causal=False, widths=(3, 3, 3), channels=32, seed=0) -> TemporalModel:
    torch.manual_seed(seed)
    model = TemporalModel(widths, channels=channels, causal=causal)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _keypoints(frames=60, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(100, 900, (frames, 17, 2))


@pytest.mark.parametrize("causal", [False, True])
def test_fused_model_equals_model(causal):
    model = _model(causal, widths=(3, 3, 3, 3))
    x = torch.randn(2, 120, 17, 2)
    with torch.no_grad():
        assert (model(x) - FusedTemporalModel(model)(x)).abs().max() < 1e-5


def test_fused_model_follows_the_source_models_device_and_dtype():
    # Every part, the output layer included, must live where the source model lives (a
    # fused model on CUDA with a CPU output layer fails); dtype stands in for the device here.
    model = _model(False).double()
    fused = FusedTemporalModel(model)
    assert {p.dtype for p in fused.parameters()} == {torch.float64}
    x = torch.randn(1, 40, 17, 2, dtype=torch.float64)
    with torch.no_grad():
        assert (model(x) - fused(x)).abs().max() < 1e-9


def test_predict_shapes_lists_and_short_sequences():
    lifter = Lifter(_model())
    out = lifter.predict(_keypoints(40), image_size=(1000, 1000))
    assert out.shape == (40, 17, 3) and np.all(out[:, 0] == 0)
    outs = lifter.predict([_keypoints(40), _keypoints(5, seed=1)], image_size=(1000, 1000))
    assert [o.shape for o in outs] == [(40, 17, 3), (5, 17, 3)]  # 5 < receptive field 27: padded
    single = lifter.predict(_keypoints(1), image_size=(1000, 1000))
    assert single.shape == (1, 17, 3) and np.isfinite(single).all()
    # Confidence columns are ignored; pixels are normalised by the image width.
    with_conf = np.concatenate([_keypoints(40), np.ones((40, 17, 1))], axis=-1)
    assert np.allclose(lifter.predict(with_conf, image_size=(1000, 1000)), out)
    # A wide image: (width, height) order matters, x by the width and y offset by height / width.
    from jointpose.geometry.cameras import normalize_screen_coordinates

    pixels = _keypoints(40) * np.array([1.92, 1.08])
    wide = lifter.predict(pixels, image_size=(1920, 1080))
    assert np.allclose(wide, lifter.predict(normalize_screen_coordinates(pixels, 1920, 1080), normalized=True))
    assert not np.allclose(wide, lifter.predict(normalize_screen_coordinates(pixels, 1080, 1920), normalized=True))


def test_flip_test_augmentation_is_used():
    model = _model()
    kp = _keypoints(40)
    flipped = Lifter(model).predict(kp, image_size=(1000, 1000))
    plain = Lifter(model, flip_test=False).predict(kp, image_size=(1000, 1000))
    assert not np.allclose(flipped, plain)


def test_bad_inputs_are_clear():
    lifter = Lifter(_model())
    with pytest.raises(JointposeError, match=r"\(frames, 17, 2 or 3\)"):
        lifter.predict(np.zeros((10, 15, 2)), image_size=(100, 100))
    with pytest.raises(JointposeError, match="empty"):
        lifter.predict(np.zeros((0, 17, 2)), image_size=(100, 100))
    with pytest.raises(JointposeError, match="NaN"):
        lifter.predict(np.full((10, 17, 2), np.nan), image_size=(100, 100))
    with pytest.raises(JointposeError, match="image_size"):
        lifter.predict(_keypoints(10))
    with pytest.raises(JointposeError, match="keypoints must be an array of numbers, got <U"):
        lifter.predict(_keypoints(10).astype(str), image_size=(100, 100))
    with pytest.raises(JointposeError, match="keypoints must be an array of numbers, got object"):
        lifter.predict(_keypoints(10).astype(object), image_size=(100, 100))


def test_save_and_load_safetensors(tmp_path):
    trajectory = TemporalModel((3, 3, 3), channels=32, num_joints_out=1).eval()
    lifter = Lifter(_model(), trajectory_model=trajectory, fps=30.0)
    path = lifter.save(tmp_path / "m.safetensors")
    tensors, metadata = read_plain_safetensors(path)  # numbers and JSON only, every byte accounted for
    saved = {
        **{f"pose.{k}": v for k, v in lifter.model.state_dict().items()},
        **{f"trajectory.{k}": v for k, v in trajectory.state_dict().items()},
    }
    assert tensors.keys() == saved.keys()
    assert all(np.array_equal(tensors[k], v.numpy()) for k, v in saved.items())
    assert json.loads(metadata["fps"]) == 30.0
    # The same model, the same bytes: safetensors writes its metadata in hash order, sorted here.
    again = [lifter.save(tmp_path / f"again{i}.safetensors").read_bytes() for i in range(4)]
    assert all(blob == path.read_bytes() for blob in again)
    assert list(metadata) == sorted(metadata)
    loaded = Lifter.load(path, device="cpu")
    kp = _keypoints(50)
    assert np.array_equal(loaded.predict(kp, image_size=(1000, 1000)), lifter.predict(kp, image_size=(1000, 1000)))
    assert loaded.fps == 30.0 and loaded.trajectory_model is not None
    assert loaded.predict_trajectory(kp, image_size=(1000, 1000)).shape == (50, 3)
    half = Lifter.load(lifter.save(tmp_path / "h.safetensors", half=True), device="cpu")
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * path.stat().st_size
    # float16 keeps about 3.5 significant digits: 0.26 mm measured here (0.24-0.41 mm over four
    # seeds and three inputs, poses up to 0.9 m); 1 mm leaves room for other BLAS sums.
    assert (
        0 < np.abs(half.predict(kp, image_size=(1000, 1000)) - lifter.predict(kp, image_size=(1000, 1000))).max() < 1e-3
    )
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(JointposeError, match="bad.safetensors"):
        Lifter.load(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("flip", [False, True])
def test_streaming_equals_offline_causal_model(flip):
    model = _model(causal=True, widths=(3, 3, 3, 3))
    kp = _keypoints(120)
    offline = Lifter(model, flip_test=flip).predict(kp, image_size=(1000, 1000))
    stream = StreamingLifter(model, flip_test=flip)
    online = np.stack([stream.push(frame, image_size=(1000, 1000)) for frame in kp])
    assert np.abs(online - offline).max() < 1e-5
    stream.reset()
    again = np.stack([stream.push(frame, image_size=(1000, 1000)) for frame in kp[:10]])
    assert np.abs(again - offline[:10]).max() < 1e-5


@pytest.mark.parametrize("flip", [False, True])
def test_streaming_skeleton_fit_equals_the_causal_lifter(flip):
    """A causal joint-aware model's consistent skeleton uses past frames only, so streaming
    gives what Lifter.predict gives on the whole sequence, and frame t never depends on t+1."""
    from jointpose.geometry.anatomy import bone_lengths

    lifter = Lifter(_model(causal=True, widths=(3, 3, 3)), flip_test=flip, skeleton_fit=True)
    kp = _keypoints(60)
    offline = lifter.predict(kp, image_size=(1000, 1000))
    stream = StreamingLifter(lifter, flip_test=flip)
    assert stream.skeleton_fit
    online = np.stack([stream.push(frame, image_size=(1000, 1000)) for frame in kp])
    # 0.05 mm: the running bone lengths sum float32 outputs in another order (1.5e-5 m seen on some CPUs).
    assert np.abs(online - offline).max() < 5e-5
    assert np.abs(lifter.predict(kp[:30], image_size=(1000, 1000)) - offline[:30]).max() < 5e-5  # no future frame
    lengths = bone_lengths(torch.from_numpy(offline))
    pairs = skeleton.SYMMETRIC_BONES
    assert torch.allclose(lengths[:, [a for a, _ in pairs]], lengths[:, [b for _, b in pairs]], atol=1e-5)
    raw = np.stack([StreamingLifter(lifter, flip_test=flip, skeleton_fit=False).push(kp[0], image_size=(1000, 1000))])
    assert np.abs(raw - offline[:1]).max() > 1e-4  # the fit changes the output


def test_streaming_computes_one_time_step_per_convolution():
    model = _model(causal=True, widths=(3, 3, 3, 3))
    stream = StreamingLifter(model)
    stream.push(_keypoints(1)[0], image_size=(1000, 1000))  # warm-up fills the caches
    calls = []
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0].shape, out.shape)))
        for layer in stream.layers
    ]
    stream.push(_keypoints(1, seed=2)[0], image_size=(1000, 1000))
    for hook in hooks:
        hook.remove()
    convs = [model.expand_conv, *model.layers_conv, model.shrink]
    assert len(calls) == len(convs)  # each convolution ran once for the new frame...
    for (layer, inp, out), conv in zip(calls, convs):
        assert inp == (1, conv.in_channels) and out == (1, conv.out_channels)  # ...for one time step
        # ... reading only its kernel's span of cached steps: (width - 1) * dilation + 1.
        assert layer.span == (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
    assert [layer.span for layer in stream.layers] == [3, 7, 1, 19, 1, 55, 1, 1]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_streaming_in_reduced_precision_stays_close(precision):
    model = _model(causal=True, widths=(3, 3, 3))
    kp = _keypoints(40)
    offline = Lifter(model, flip_test=False).predict(kp, image_size=(1000, 1000))  # computed another way
    stream32, stream16 = StreamingLifter(model), StreamingLifter(model, precision=precision)
    a = np.stack([stream32.push(f, image_size=(1000, 1000)) for f in kp])
    b = np.stack([stream16.push(f, image_size=(1000, 1000)) for f in kp])
    assert np.abs(a - offline).max() < 1e-5
    assert 0 < np.abs(b - offline).max() < 0.05 * np.abs(offline).max()


def test_streaming_roots_are_the_causal_lifters_trajectory():
    """Frame by frame, the stream's root is what predict_trajectory gives for the whole
    sequence of its poses (rays and root filtered over past frames), and none reads ahead."""
    cam = h36m_cameras()["S1"][1]
    poses, trajectory = _camera_motion(1.0)
    pixels = cam.project(poses + trajectory[:, None]) + np.random.default_rng(5).normal(0, 2.0, (len(poses), 17, 2))
    lifter = Lifter(_model(causal=True), normalization="intrinsics", flip_test=False)
    stream = StreamingLifter(lifter)
    pushed = [stream.push_with_root(frame, camera=cam) for frame in pixels]
    online, roots = np.stack([p for p, _ in pushed]), np.stack([r for _, r in pushed])
    np.testing.assert_allclose(roots, lifter.predict_trajectory(pixels, camera=cam, poses=online), atol=1e-9)
    np.testing.assert_allclose(roots[:20], lifter.predict_trajectory(pixels[:20], camera=cam, poses=online[:20]))
    stream.reset()
    np.testing.assert_allclose(np.stack([stream.push_with_root(f, camera=cam)[1] for f in pixels[:5]]), roots[:5])
    screen = StreamingLifter(Lifter(_model(causal=True), flip_test=False))
    with pytest.raises(JointposeError, match="intrinsics"):
        screen.push_with_root(pixels[0], image_size=(1000, 1002))
    assert screen.frames_seen == 0
    coco18 = TemporalModel([3, 3], num_joints_in=18, channels=8, causal=True).eval()
    other = StreamingLifter(Lifter(coco18, normalization="intrinsics", keypoints_left=[1], keypoints_right=[2]))
    with pytest.raises(JointposeError, match="18 keypoints and predicts 17 joints"):
        other.push_with_root(np.full((18, 2), 400.0), image_size=(1000, 1002))
    assert other.frames_seen == 0


def test_streaming_refuses_non_causal_models():
    with pytest.raises(JointposeError, match="causal"):
        StreamingLifter(_model(causal=False))


def _camera_motion(seconds=2.0):
    world = generate(["S1"], seconds=seconds, motions=["Boxing"])["S1"]["Boxing 1"]
    cam = h36m_cameras()["S1"][1]
    points = cam.world_to_camera(world)
    return points - points[:, :1], points[:, 0]


def test_export_npz_json_csv(tmp_path):
    poses, traj = _camera_motion()
    export(tmp_path / "a.npz", poses, 50, trajectory=traj)
    data = np.load(tmp_path / "a.npz")
    assert data["poses_3d"].shape == poses.shape and list(data["joint_names"]) == list(skeleton.JOINT_NAMES)
    assert float(data["fps"]) == 50 and data["trajectory"].shape == (len(poses), 3)
    export(tmp_path / "a.json", poses, 50)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert np.allclose(doc["poses_3d"], poses, atol=1e-6) and "trajectory" not in doc
    export(tmp_path / "a.csv", poses[:3], 50)
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "frame,joint,x,y,z" and len(lines) == 1 + 3 * 17
    frame, joint, *xyz = lines[1 + 17 + 2].split(",")
    assert (frame, joint) == ("1", "RKnee") and np.allclose([float(v) for v in xyz], poses[1, 2], atol=1e-6)
    with pytest.raises(JointposeError, match="unknown output format"):
        export(tmp_path / "a.txt", poses, 50)


@pytest.mark.parametrize(
    "args, needle",
    [
        ({"fps": float("nan")}, "fps must be a positive number of frames per second, got nan"),
        ({"fps": -1.0}, "fps must be a positive number"),
        ({"fps": float("inf")}, "fps must be a positive number"),
        ({"fps": 1e-9}, "fps: 1e-09 frames per second is outside"),
        ({"trajectory": [["a", "b", "c"]] * 3}, "trajectory must be an array of numbers, got <U1"),
        ({"trajectory": [[1.0, 2.0, 3.0]] * 2 + [[1.0]]}, "trajectory must be an array of numbers"),
        ({"poses": np.full((3, 17, 3), "1.5")}, "poses must be an array of numbers, got <U3"),
        ({"poses": np.full((3, 17, 3), 1e300)}, "poses to write: 3 of 3 frames (0-2) hold coordinates beyond 10000 m"),
        ({"trajectory": np.full((3, 3), 1e307)}, "trajectory to write: 3 of 3 frames (0-2) holds positions beyond"),
    ],
)
def test_export_refuses_a_bad_frame_rate_or_values_that_are_not_numbers(tmp_path, args, needle):
    poses, fps = args.get("poses", np.zeros((3, 17, 3))), args.get("fps", 50.0)
    for suffix in ("json", "npz", "csv", "bvh"):
        with pytest.raises(JointposeError) as info:
            export(tmp_path / f"a.{suffix}", poses, fps, trajectory=args.get("trajectory"))
        assert needle in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("with_trajectory", [False, True])
def test_bvh_round_trip_reproduces_joints(tmp_path, with_trajectory):
    poses, traj = _camera_motion()
    noisy = poses + np.random.default_rng(0).normal(0, 0.01, poses.shape)  # bones change length
    noisy -= noisy[:, :1]
    path = export(tmp_path / "a.bvh", noisy, 50, trajectory=traj if with_trajectory else None)
    motion = read_bvh(path)
    names = [n.replace("/", "_") for n in skeleton.JOINT_NAMES]
    points = global_transforms(motion)[0][:, [motion.names.index(n) for n in names]] / 100.0
    camera = points * np.array([1.0, -1.0, -1.0])  # BVH (y up, facing +z) -> camera axes
    if with_trajectory:
        assert np.abs(camera[:, 0] - traj).max() < 1e-5
    else:  # root above the origin, Y up
        assert np.allclose(points[:, 0, [0, 2]], 0) and (points[:, 0, 1] > 0.5).all()
    # Predicted joints after bone-length normalisation (each bone its median length).
    vectors = bone_vectors(noisy)
    lengths = np.linalg.norm(vectors, axis=-1, keepdims=True)
    normalised = positions_from_bones(np.zeros((len(noisy), 3)), vectors / lengths * np.median(lengths, axis=0))
    assert np.abs((camera - camera[:, :1]) - normalised).max() < 1e-3
    # Constant bone lengths in the file: every offset is fixed.
    assert motion.offsets.shape[0] == len(motion.names)


def test_bvh_hips_and_chest_turn_with_the_body(tmp_path):
    # A pose turned about the vertical by a known angle per frame (a full turn), its upper body
    # turned a further, known angle about the spine: the file's root must turn by the first
    # angle and its thorax by both, read back from the file, while every joint stays in place.
    start = _camera_motion(0.2)[0][0]  # camera axes: x right, y down, z forward
    frames = 60
    turn = np.linspace(0.0, 2 * np.pi, frames)
    twist = 0.6 * np.sin(np.linspace(0.0, np.pi, frames))
    about_up = lambda angles: Rotation.from_rotvec(angles[:, None] * [0.0, -1.0, 0.0])  # noqa: E731
    upper = np.arange(7, 17)  # spine, thorax, head and arms
    spine_base = start[7]
    twisted = np.repeat(start[None], frames, axis=0)
    twisted[:, upper] = spine_base + np.einsum("fij,nj->fni", about_up(twist).as_matrix(), start[upper] - spine_base)
    poses = np.einsum("fij,fnj->fni", about_up(turn).as_matrix(), twisted)
    motion = read_bvh(export(tmp_path / "turn.bvh", poses, 50))
    _, rotations = global_transforms(motion)
    to_bvh = np.diag([1.0, -1.0, -1.0])  # camera axes -> BVH axes (y up), as the file's
    for joint, angle in (("Hip", turn), ("Thorax", turn + twist)):
        relative = (
            Rotation.from_matrix(rotations[:, motion.names.index(joint)])
            * Rotation.from_matrix(rotations[:1, motion.names.index(joint)]).inv()
        )
        expected = Rotation.from_matrix(
            to_bvh @ about_up(angle).as_matrix() @ about_up(angle[:1]).inv().as_matrix() @ to_bvh
        )
        assert (relative * expected.inv()).magnitude().max() < 1e-6, joint
    points, _ = global_transforms(motion)
    names = [n.replace("/", "_") for n in skeleton.JOINT_NAMES]
    camera = points[:, [motion.names.index(n) for n in names]] / 100.0 * np.array([1.0, -1.0, -1.0])
    assert np.abs((camera - camera[:, :1]) - (poses - poses[:, :1])).max() < 1e-6


def test_bvh_of_bones_without_length_is_written(tmp_path):
    # A bone of zero length has no direction: it keeps its rest direction, as its parent carries it.
    zeros = read_bvh(export(tmp_path / "zeros.bvh", np.zeros((5, 17, 3)), 50))
    assert zeros.num_frames == 5 and np.abs(global_transforms(zeros)[0]).max() == 0
    poses = _camera_motion(0.2)[0]
    poses[:, 3] = poses[:, 2]  # the right foot on the right knee in every frame
    motion = read_bvh(export(tmp_path / "foot.bvh", poses, 50))
    points, _ = global_transforms(motion)
    names = [n.replace("/", "_") for n in skeleton.JOINT_NAMES]
    camera = points[:, [motion.names.index(n) for n in names]] / 100.0 * np.array([1.0, -1.0, -1.0])
    assert np.abs((camera - camera[:, :1]) - poses).max() < 1e-6


def test_bvh_skeleton_has_branch_joints():
    poses, _ = _camera_motion(0.2)
    motion, where = poses_to_motion(poses, 50)
    assert "Hip_to_RHip" in motion.names and "Thorax_to_LShoulder" in motion.names
    assert motion.names[where[10]] == "Head"


@pytest.mark.parametrize("causal", [False, True])
def test_segmented_prediction_is_identical(causal):
    from jointpose.model.predict import predict

    model = _model(causal)
    kp = torch.randn(500, 17, 2) * 0.3
    whole = predict(model, kp)
    parts = predict(model, kp, segment=64)
    assert torch.allclose(whole, parts, atol=1e-5)


def test_infer_cli_from_coco_json(tmp_path, capsys):
    from jointpose.cli import main
    from jointpose.data.layouts import LAYOUTS

    lifter = Lifter(_model(), fps=50.0)
    model_path = lifter.save(tmp_path / "model.safetensors")
    frames = 40
    rng = np.random.default_rng(0)
    base = rng.uniform(300, 700, (len(LAYOUTS["coco17"]), 2))
    entries = [
        {
            "image_id": f,
            "category_id": 1,
            "score": 0.9,
            "keypoints": np.concatenate([base + f, np.full((len(base), 1), 0.9)], axis=1).ravel().tolist(),
        }
        for f in range(frames)
    ]
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(entries))
    flags = "--image-size 1000 1000 --no-progress"
    for out in ("poses.npz", "poses.bvh", "poses.csv"):
        assert main(cli("infer", flags, dets, o=tmp_path / out, checkpoint=model_path)) == 0
    data = np.load(tmp_path / "poses.npz")
    assert data["poses_3d"].shape == (frames, 17, 3)
    assert read_bvh(tmp_path / "poses.bvh").num_frames == frames
    # Recorded at 25 fps: lifted at the model's 50 fps, written at 25 fps, one pose per input
    # frame; frame i is the 50 fps lift's frame 2i (the same instant).
    flags = "--image-size 1000 1000 --fps 25 --no-progress"
    assert main(cli("infer", flags, dets, o=tmp_path / "fast.npz", checkpoint=model_path)) == 0
    fast = np.load(tmp_path / "fast.npz")
    assert fast["poses_3d"].shape[0] == frames and float(fast["fps"]) == 25.0
    assert (
        "lifted at the model's 50 fps and resampled back to 25 fps: one pose per input frame" in capsys.readouterr().out
    )
    from jointpose.data.keypoints import load_keypoints
    from jointpose.data.resampling import at_rate

    lifter = Lifter.load(model_path)
    at50, _ = at_rate(load_keypoints(dets), 50.0, 25.0, "--fps")
    np.testing.assert_allclose(fast["poses_3d"], lifter.predict(at50, (1000, 1000))[::2], atol=1e-6)
    # From Python, a Keypoints2D whose file gives another rate than the model's is refused, not lifted too fast.
    np.savez(tmp_path / "at25.npz", keypoints=np.full((frames, 17, 2), 500.0) + np.arange(17)[:, None], fps=25)
    at25 = load_keypoints(tmp_path / "at25.npz")
    with pytest.raises(
        JointposeError, match="keypoints at 25 fps .* for a model of 50 fps: lift them with Lifter.lift_track"
    ):
        Lifter.load(model_path).predict(at25, (1000, 1000))
    resampled, note = at_rate(at25, 50.0, None, "at25.npz: key 'fps'")
    assert resampled.num_frames == 2 * frames - 1 and resampled.fps == 50.0 and note is not None
    assert Lifter.load(model_path).predict(resampled, (1000, 1000)).shape == (2 * frames - 1, 17, 3)
    # An npz that gives its frame rate (as `jointpose video` writes) is resampled by it; --fps overrides it.
    np.savez(tmp_path / "rated.npz", keypoints=fast["poses_3d"][:, :, :2] * 100 + 500, fps=25)
    capsys.readouterr()
    assert (
        main(
            cli(
                "infer",
                "--image-size 1000 1000 --no-progress",
                tmp_path / "rated.npz",
                o=tmp_path / "r.npz",
                checkpoint=model_path,
            )
        )
        == 0
    )
    assert float(np.load(tmp_path / "r.npz")["fps"]) == 25.0
    assert "the keypoints are at 25 fps, the 'fps' of" in capsys.readouterr().out
    flags = "--image-size 1000 1000 --fps 50 --no-progress"
    assert main(cli("infer", flags, tmp_path / "rated.npz", o=tmp_path / "r50.npz", checkpoint=model_path)) == 0
    assert float(np.load(tmp_path / "r50.npz")["fps"]) == 50.0
    capsys.readouterr()
    assert (
        main(["infer", str(tmp_path / "dets.json"), "-o", str(tmp_path / "x.npz"), "--checkpoint", str(model_path)])
        == 2
    )
    assert "--image-size" in capsys.readouterr().err
    assert main(cli("infer", "--image-size 10 10", dets, o=tmp_path / "x.txt", checkpoint=model_path)) == 2
    assert "unknown output format" in capsys.readouterr().err
    # The same detections as MMPose writes a video's prediction: the same poses.
    mmpose = [
        {
            "frame_id": f,
            "instances": [
                {
                    "keypoints": (base + f).tolist(),
                    "keypoint_scores": [0.9] * len(base),
                    "bbox": [[0.0, 0.0, 1.0, 1.0]],
                    "bbox_score": 0.9,
                }
            ],
        }
        for f in range(frames)
    ]
    (tmp_path / "mmpose.json").write_text(json.dumps(mmpose))
    flags = "--image-size 1000 1000 --no-progress"
    assert main(cli("infer", flags, tmp_path / "mmpose.json", o=tmp_path / "mm.npz", checkpoint=model_path)) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "mm.npz")["poses_3d"], data["poses_3d"])


def test_infer_cli_refuses_bad_flags_and_files_before_any_work(tmp_path, capsys):
    from jointpose.cli import main

    model_path = Lifter(_model(), fps=50.0).save(tmp_path / "model.safetensors")
    keypoints = np.random.default_rng(0).uniform(300, 700, (40, 17, 2))
    np.savez(tmp_path / "kp.npz", keypoints=keypoints)
    (tmp_path / "kp_really_npz.npy").write_bytes((tmp_path / "kp.npz").read_bytes())
    base = [
        "-o",
        str(tmp_path / "out.npz"),
        "--checkpoint",
        str(model_path),
        "--image-size",
        "1000",
        "1000",
        "--no-progress",
    ]
    for args, needle in (
        ([str(tmp_path / "kp_really_npz.npy")], ".npz archive"),
        ([str(tmp_path / "kp.npz"), "--fps", "nan"], "--fps"),
        ([str(tmp_path / "kp.npz"), "--fps", "0"], "--fps"),
        ([str(tmp_path / "kp.npz"), "--render", str(tmp_path / "anim.avi")], "--render"),
    ):
        assert main(["infer", *args, *base]) == 2
        assert needle in capsys.readouterr().err
        assert not (tmp_path / "out.npz").exists()  # refused before lifting anything


def test_infer_refuses_what_it_cannot_do_before_it_replaces_the_output(tmp_path, capsys):
    from jointpose.cli import main

    np.savez(tmp_path / "kp.npz", keypoints=np.random.default_rng(0).uniform(300, 700, (40, 17, 2)))
    out = tmp_path / "keep.npz"
    out.write_bytes(b"previous")
    base = ["infer", str(tmp_path / "kp.npz"), "-o", str(out), "--image-size", "1000", "1000", "--no-progress"]
    slow = Lifter(_model(), fps=0.001).save(tmp_path / "slow.safetensors")  # one frame every 1000 s
    assert main([*base, "--checkpoint", str(slow), "--render", str(tmp_path / "a.gif")]) == 2
    assert "the model's frame rate: 0.001 frames per second is too slow for a GIF" in capsys.readouterr().err
    causal = Lifter(_model(causal=True), fps=50.0).save(tmp_path / "causal.safetensors")
    assert main([*base, "--checkpoint", str(causal), "--align-2d", "0.5"]) == 2
    assert f"--align-2d reads future frames, which a causal model ({causal}) must not" in capsys.readouterr().err
    assert out.read_bytes() == b"previous" and not (tmp_path / "a.gif").exists()
    # Keypoints hundreds of pixels off a 2 x 2 image put the root kilometres away: the camera is named, not -o.
    tiny = [*base[:-4], "--image-size", "2", "2", "--no-progress"]  # the bundled model
    assert main(tiny) == 2
    err = capsys.readouterr().err
    assert (
        "the predicted trajectory: 37 of 40 frames (3-39) lie more than 10000 m away: the keypoints do not fit " in err
    )
    assert "keep.npz" not in err and out.read_bytes() == b"previous"
    assert main([*base, "--checkpoint", str(causal), "--align-2d", "0"]) == 0


def test_fit_skeleton_gives_one_consistent_skeleton():
    from jointpose.geometry.anatomy import (
        ANGLES,
        bone_lengths,
        bone_vectors,
        fit_skeleton,
        joint_angles,
        set_bone_lengths,
    )

    poses, _ = _camera_motion(1.0)
    noisy = torch.from_numpy(poses + np.random.default_rng(1).normal(0, 0.01, poses.shape)).float()
    fitted = fit_skeleton(noisy)
    lengths = bone_lengths(fitted)
    assert float(lengths.std(dim=0).max()) < 1e-5
    pairs = skeleton.SYMMETRIC_BONES
    assert torch.allclose(lengths[:, [left for left, _ in pairs]], lengths[:, [right for _, right in pairs]], atol=1e-5)
    assert torch.equal(fitted[:, 0], noisy[:, 0])
    # The refined pose stays closer to the input, joint by joint, than keeping every bone's
    # direction does (which moves every joint below a bone whose length changes).
    kept = fit_skeleton(noisy, iterations=0)
    assert float(bone_lengths(kept).std(dim=0).max()) < 1e-5
    moved, moved_kept = (fitted - noisy).norm(dim=-1).mean(), (kept - noisy).norm(dim=-1).mean()
    assert float(moved) < 0.8 * float(moved_kept)

    def bone(x, y):
        return skeleton.PARENTS[x] == y or skeleton.PARENTS[y] == x

    adjacent = [k for k, (_, a, v, b) in enumerate(ANGLES) if bone(a, v) and bone(v, b)]
    assert len(adjacent) == len(ANGLES) - 2  # all but the two trunk-thigh angles
    assert torch.allclose(joint_angles(kept)[:, adjacent], joint_angles(noisy)[:, adjacent], atol=1e-4)
    cos = torch.nn.functional.cosine_similarity(bone_vectors(kept), bone_vectors(noisy), dim=-1)
    assert float(cos.min()) > 1 - 1e-5
    # A sequence that already has one consistent skeleton is left as it is.
    assert torch.allclose(fit_skeleton(fitted), fitted, atol=1e-5)
    # Degenerate input (every joint at the root: zero-length bones) stays finite.
    collapsed = torch.zeros(5, 17, 3)
    assert torch.isfinite(fit_skeleton(collapsed)).all()
    assert torch.isfinite(set_bone_lengths(collapsed, lengths[0, :, None])).all()


def test_skeleton_fit_is_the_least_squares_pose():
    """On a noisy sequence the default ten steps go most of the way from keeping every bone's
    direction to the pose with the target lengths closest to the input (which an optimiser
    over the directions of the bones that may turn finds), and more steps reach it; on a
    nearly straight, collinear
    pose (the strongest coupling between bones, where too large a step diverges) it still
    gets closer. The trunk's short segments keep their directions."""
    from jointpose.geometry.anatomy import (
        KEPT_DIRECTION_BONES,
        bone_lengths,
        bone_vectors,
        fit_skeleton,
        set_bone_lengths,
    )

    ancestors = torch.from_numpy(skeleton.ANCESTORS).float()

    poses, _ = _camera_motion(1.0)
    noisy = torch.from_numpy(poses[:40] + np.random.default_rng(2).normal(0, 0.01, poses[:40].shape)).float()
    straight = torch.zeros(1, 17, 3)
    generator = torch.Generator().manual_seed(0)
    straight[0, 1:, 2] = torch.cumsum(torch.rand(16, generator=generator) * 0.1 + 0.05, 0)
    straight = straight + 0.005 * torch.randn(straight.shape, generator=generator)  # all but collinear
    for case, share in ((noisy, 0.3), (straight, 1.0)):
        lengths = bone_lengths(case).median(dim=0).values[:, None] * 1.1
        fitted = set_bone_lengths(case, lengths, symmetric=False)
        assert torch.isfinite(fitted).all()
        assert torch.allclose(bone_lengths(fitted), lengths[:, 0].expand(len(case), -1), atol=1e-5)
        kept_bones = list(KEPT_DIRECTION_BONES)
        assert [skeleton.BONE_NAMES[b] for b in kept_bones] == [
            "Hip-RHip",
            "Hip-LHip",
            "Thorax-LShoulder",
            "Thorax-RShoulder",
            "Thorax-Neck/Nose",
            "Neck/Nose-Head",
        ]
        cos = torch.nn.functional.cosine_similarity(bone_vectors(fitted), bone_vectors(case), dim=-1)
        assert float(cos[:, kept_bones].min()) > 1 - 1e-5
        turns = torch.ones(16, 1)
        turns[kept_bones] = 0.0
        start = bone_vectors(fitted).detach()
        direction = start.clone().requires_grad_(True)
        optimiser = torch.optim.LBFGS([direction], max_iter=200, line_search_fn="strong_wolfe")

        # The closures run within this iteration (optimiser.step below): binding late is intended.
        def objective():
            free = turns * direction + (1 - turns) * start  # noqa: B023
            unit = free / free.norm(dim=-1, keepdim=True)
            pose = case[:, :1] + torch.einsum("jb,fbc->fjc", ancestors, unit * lengths)  # noqa: B023
            return ((pose - case) ** 2).sum()  # noqa: B023

        def closure():
            optimiser.zero_grad()  # noqa: B023
            loss = objective()
            loss.backward()
            return loss

        ours = float(((fitted - case) ** 2).sum())
        kept = float(((set_bone_lengths(case, lengths, symmetric=False, iterations=0) - case) ** 2).sum())
        optimiser.step(closure)
        best = float(objective().detach())
        assert best < kept
        assert ours - best < share * (kept - best)
        many = float(((set_bone_lengths(case, lengths, symmetric=False, iterations=300) - case) ** 2).sum())
        assert many <= best + 0.01 * (kept - best)
    # Targets far longer than an exactly straight body (legs down, trunk and arms up): the
    # bones must not flip back and forth (any number of steps ends no farther from the
    # input than keeping directions).
    chain = torch.zeros(1, 17, 3)
    for joint in range(1, 17):
        down = joint in (1, 2, 3, 4, 5, 6)
        chain[0, joint] = chain[0, skeleton.PARENTS[joint]] + torch.tensor([0.0, 0.0, -0.2 if down else 0.2])
    longer = bone_lengths(chain)[0, :, None] * 6.0
    kept = float(((set_bone_lengths(chain, longer, symmetric=False, iterations=0) - chain) ** 2).sum())
    for iterations in (1, 2, 9, 10, 11):
        fitted = set_bone_lengths(chain, longer, symmetric=False, iterations=iterations)
        assert float(((fitted - chain) ** 2).sum()) <= kept + 1e-6
        cos = torch.nn.functional.cosine_similarity(bone_vectors(fitted), bone_vectors(chain), dim=-1)
        assert float(cos.min()) > 0  # no bone turned round
    # Half precision is refined in float32 (a zero target length of a bone that turns, here
    # the left thigh, would overflow float16's step).
    zero = bone_lengths(noisy).median(dim=0).values[:, None].clone()
    zero[skeleton.bone_index(skeleton.JOINT_NAMES.index("LKnee"))] = 0.0
    half = set_bone_lengths(noisy.half(), zero.half(), symmetric=False)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    full = set_bone_lengths(noisy.half().float(), zero.half().float(), symmetric=False)
    assert torch.allclose(half.float(), full, atol=2e-3)
    for causal in (False, True):  # the fit's lengths, too, come from float32
        low = noisy.bfloat16()
        assert torch.equal(fit_skeleton(low, causal=causal), fit_skeleton(low.float(), causal=causal).bfloat16())


def test_bad_image_size_is_named():
    lifter = Lifter(_model(causal=True, widths=(3,)))
    kp = _keypoints(5)
    for size, needle in (
        (None, "need image_size"),
        (1920, "image_size must be"),
        ((1920, 1080, 3), "image_size must be"),
        ((0, 1080), "must be positive"),
        ((float("nan"), 1080), "must be positive"),
    ):
        with pytest.raises(JointposeError, match=needle):
            lifter.predict(kp, image_size=size)


def test_causal_skeleton_fit_takes_running_mean_lengths():
    from jointpose.geometry.anatomy import bone_lengths, fit_skeleton

    poses, _ = _camera_motion(1.0)
    noisy = torch.from_numpy(poses + np.random.default_rng(1).normal(0, 0.01, poses.shape)).float()
    fitted = fit_skeleton(noisy, causal=True)
    raw = bone_lengths(noisy)
    running = raw.cumsum(0) / torch.arange(1, len(raw) + 1)[:, None]
    pairs = skeleton.SYMMETRIC_BONES
    left, right = [a for a, _ in pairs], [b for _, b in pairs]
    running[:, left] = running[:, right] = (running[:, left] + running[:, right]) / 2
    assert torch.allclose(bone_lengths(fitted), running, atol=1e-5)
    assert torch.allclose(fit_skeleton(noisy[:20], causal=True), fitted[:20])  # past frames only
    assert torch.allclose(fitted[-1], fit_skeleton(noisy)[-1], atol=0.02)  # towards the offline fit


def test_lifter_applies_skeleton_fit_when_asked(tmp_path):
    from jointpose.geometry.anatomy import bone_lengths

    lifter = Lifter(_model(), skeleton_fit=True)
    kp = _keypoints(60)
    fitted = torch.from_numpy(lifter.predict(kp, image_size=(1000, 1000)))
    assert float(bone_lengths(fitted).std(dim=0).max()) < 1e-5
    loaded = Lifter.load(lifter.save(tmp_path / "m.safetensors"))
    assert loaded.skeleton_fit
    lifter.skeleton_fit = False
    raw = torch.from_numpy(lifter.predict(kp, image_size=(1000, 1000)))
    assert float(bone_lengths(raw).std(dim=0).max()) > 1e-3


def test_inference_with_skeleton_fit_on_each_device(device):
    """Offline prediction (flip test, consistent-skeleton fit), streaming with its running-mean
    fit, and the fit of half-precision poses give on ``device`` what float32 on the CPU gives
    (within 2 mm: CUDA convolutions may run in TF32)."""
    from jointpose.geometry.anatomy import fit_skeleton

    kp = _keypoints(60)
    for causal in (False, True):
        reference = Lifter(_model(causal=causal), flip_test=True, skeleton_fit=True)
        expected = reference.predict(kp, image_size=(1000, 1000))
        moved = Lifter(_model(causal=causal), flip_test=True, skeleton_fit=True).to(device)
        assert moved.device.type == torch.device(device).type
        assert np.abs(moved.predict(kp, image_size=(1000, 1000)) - expected).max() < 2e-3
        if causal:
            stream = StreamingLifter(moved, flip_test=True)
            online = np.stack([stream.push(frame, image_size=(1000, 1000)) for frame in kp])
            assert np.abs(online - expected).max() < 2e-3
    poses, _ = _camera_motion(1.0)
    noisy = torch.from_numpy(poses + np.random.default_rng(1).normal(0, 0.01, poses.shape)).float()
    for causal in (False, True):
        expected = fit_skeleton(noisy, causal=causal)
        for dtype, tolerance in ((torch.float32, 1e-4), (torch.float16, 3e-3), (torch.bfloat16, 2e-2)):
            fitted = fit_skeleton(noisy.to(device=device, dtype=dtype), causal=causal)
            assert fitted.device.type == torch.device(device).type and fitted.dtype == dtype
            assert float((fitted.float().cpu() - expected).abs().max()) < tolerance, (dtype, causal)


# ----------------------------------------------------------------------------- non-finite guard


def test_coordinates_infinite_in_float32_are_refused_naming_the_frames():
    """1e300 is finite in float64 (the old check passed it) and infinite in float32, which the
    network computes in: refused before the model runs, the frame named."""
    lifter = Lifter(_model(widths=(3, 3)))
    kp = _keypoints(12)
    kp[4, 3] = 1e300
    kp[7:9, 0] = -1e39  # beyond float32's range as well
    with pytest.raises(JointposeError, match=r"3 of 12 frames \(4, 7-8\) lie more than 500 image widths off screen"):
        lifter.predict(kp, image_size=(1000, 1000))
    kp[[4, 7, 8]] = kp[0]
    assert np.isfinite(lifter.predict(kp, image_size=(1000, 1000))).all()


def test_a_prediction_with_non_finite_values_is_an_error_not_a_file(tmp_path):
    model = _model(widths=(3,))
    with torch.no_grad():
        model.shrink.bias[5] = float("nan")  # after loading: as if the weights had gone bad in memory
    lifter = Lifter(model)
    with pytest.raises(
        JointposeError,
        match=r"the network's 3D poses \(its weights give no finite output\): NaN or infinite values in 9 of 9 frames \(0-8\)",
    ):
        lifter.predict(_keypoints(9), image_size=(1000, 1000))
    poses = np.zeros((5, 17, 3))
    poses[3, 2, 1] = np.nan
    with pytest.raises(JointposeError, match=r"a\.csv: poses to write: NaN or infinite values in 1 of 5 frames \(3\)"):
        export(tmp_path / "a.csv", poses, 50.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("form", ["safetensors", "checkpoint"])
def test_models_with_non_finite_weights_are_refused_at_load(tmp_path, form):
    from jointpose.model.loading import FORMAT
    from jointpose.training.checkpoint import atomic_save

    model = _model(causal=True, widths=(3, 3))
    if form == "safetensors":
        path = save_with_weight(
            Lifter(model), tmp_path / "m.safetensors", "pose.layers_conv.1.weight", (0, 0, 0), np.inf
        )
        with pytest.raises(
            JointposeError, match=r"m\.safetensors: weight 'pose\.layers_conv\.1\.weight' is NaN or inf"
        ):
            with torch.no_grad():
                model.layers_conv[1].weight[0, 0, 0] = float("inf")
            Lifter(model).save(path)  # not written: the file keeps the model it held
    else:
        with torch.no_grad():
            model.layers_conv[1].weight[0, 0, 0] = float("inf")
        args = {
            "filter_widths": [3, 3],
            "channels": 32,
            "dropout": 0.25,
            "causal": True,
            "num_joints_in": 17,
            "in_features": 2,
            "num_joints_out": 17,
        }
        path = atomic_save(
            {"format": FORMAT, "model": model.state_dict(), "model_args": args, "config": {}, "epoch": 1},
            tmp_path / "latest.pt",
        )
    with pytest.raises(
        JointposeError, match=r"1 weight tensor\(s\) hold NaN or infinite values \(e\.g\. 'layers_conv\.1\.weight'\)"
    ):
        Lifter.load(path, device="cpu")
    if form == "safetensors":  # finite, but a variance below 0 is no statistic of any data
        with torch.no_grad():
            model.layers_conv[1].weight[0, 0, 0] = 0.0
        save_with_weight(Lifter(model), path, "pose.layers_bn.0.running_var", (3,), -1.0)
        with pytest.raises(JointposeError, match=r"m\.safetensors: batch-norm variance 'layers_bn\.0\.running_var'"):
            Lifter.load(path, device="cpu")


def test_crafted_model_arguments_are_refused_before_allocating(tmp_path):
    """Metadata asking for 10**9 channels over a few kB of weights: refused from the shapes,
    built on the meta device (no memory), not by an allocation failing."""
    from safetensors.torch import save_file

    lifter = Lifter(_model(causal=True, widths=(3,)))
    path = lifter.save(tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    for key, value, needle in (
        (
            "model_args",
            json.dumps({**json.loads(meta["model_args"]), "channels": 10**9}),
            r"'channels' must be a number in",
        ),
        ("model_args", json.dumps({**json.loads(meta["model_args"]), "channels": 64}), r"weights do not match"),
        ("model_args", "[" * 100_000 + "]" * 100_000, r"metadata 'model_args' is not valid JSON \(maximum recursion"),
        ("fps", "nan", r"metadata 'fps' is not valid JSON \(Expecting value"),
        ("skeleton_fit", "True", r"metadata 'skeleton_fit' must be true or false, got 'True'"),
        ("fps", json.dumps("fifty"), r"metadata 'fps' must be a positive number"),
        ("fps", json.dumps(True), r"metadata 'fps' must be a positive number of frames per second, got True"),
        ("keypoints_symmetry", json.dumps([[1, 2], [99, 4]]), r"'keypoints_symmetry' must be two equally long"),
    ):
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, key: value})
        with pytest.raises(JointposeError, match=needle):
            Lifter.load(tmp_path / "bad.safetensors", device="cpu")
    # A tensor no model reads is not silently dropped: a trajectory model without its
    # arguments, or a stray name.
    for extra in ("trajectory.shrink.bias", "notes"):
        save_file({**tensors, extra: torch.zeros(3)}, str(tmp_path / "bad.safetensors"), metadata=meta)
        with pytest.raises(JointposeError, match=f"bad.safetensors: tensor '{extra}' belongs to no model the metadata"):
            Lifter.load(tmp_path / "bad.safetensors", device="cpu")


@pytest.mark.parametrize("fit", [False, True])
def test_stream_rejects_a_bad_frame_without_poisoning_its_state(fit):
    """Good frames, a bad one (refused), more good ones: every output equals that of a stream
    that never saw the bad frame - which differs from a fresh stream's (it has a past)."""
    model = _model(causal=True, widths=(3, 3))
    kp = _keypoints(16, seed=3)
    clean = StreamingLifter(model, skeleton_fit=fit)
    expected = np.stack([clean.push(f, image_size=(1000, 1000)) for f in kp])
    stream = StreamingLifter(model, skeleton_fit=fit)
    outputs = [stream.push(f, image_size=(1000, 1000)) for f in kp[:8]]
    for bad_value in (1e300, np.nan, -np.inf):
        bad = kp[8].copy()
        bad[5, 0] = bad_value
        with pytest.raises(JointposeError):
            stream.push(bad, image_size=(1000, 1000))
    outputs += [stream.push(f, image_size=(1000, 1000)) for f in kp[8:]]
    assert np.array_equal(np.stack(outputs), expected)
    fresh = StreamingLifter(model, skeleton_fit=fit).push(kp[8], image_size=(1000, 1000))
    assert np.abs(fresh - expected[8]).max() > 1e-3  # the past matters, so the test could fail


def test_dataset_values_infinite_in_float32_are_refused(tmp_path):
    from jointpose.data.h36m import load_dataset
    from jointpose.motion.builder import write_h36m_dataset
    from jointpose.safeio import load_npz

    write_h36m_dataset(tmp_path, generate(["S9"], seconds=0.2, motions=["Walking"]), fps=50.0)
    files = load_npz(tmp_path / "data_2d_h36m_gt.npz")
    positions = files["positions_2d"].item()
    view = positions["S9"]["Walking 1"][2].astype(np.float64)  # float64: 1e300 stays finite in the file
    view[6, 3, 0] = 1e300
    positions["S9"]["Walking 1"][2] = view
    np.savez_compressed(
        tmp_path / "data_2d_h36m_gt.npz", positions_2d=positions, metadata=files["metadata"], fps=files["fps"]
    )
    with pytest.raises(
        JointposeError, match=r"S9.*Walking 1.*\[2\] in float32: NaN or infinite values in 1 of 10 frames \(6\)"
    ):
        load_dataset(tmp_path, "gt", ["S9"])


def test_infer_refuses_a_model_that_cannot_lift_its_keypoints_before_any_work(tmp_path, capsys):
    from jointpose.cli import main
    from jointpose.model.loading import LoadedModel, save_model

    np.save(tmp_path / "kp.npy", _keypoints(30))
    base = ["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "o.npz"), "--image-size", "1000", "1000"]
    sixteen = save_model(tmp_path / "m16.safetensors", LoadedModel(TemporalModel([3], channels=8, num_joints_out=16)))
    assert main([*base, "--checkpoint", str(sixteen)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "m16.safetensors: a model of 17 keypoints in and 16 joints out; infer gives" in err
    three = save_model(tmp_path / "m3.safetensors", LoadedModel(TemporalModel([3], channels=8, in_features=3)))
    assert main([*base, "--checkpoint", str(three)]) == 2
    assert "model argument 'in_features' must be a number in [2, 2], got 3" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_infer_notes_keypoints_outside_the_image_size_given(tmp_path, capsys):
    from jointpose.cli import main

    model = Lifter(_model(), fps=50.0).save(tmp_path / "m.safetensors")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "kp.npz", keypoints=np.stack([rng.uniform(400, 700, (40, 17)), rng.uniform(600, 1700, (40, 17))], -1)
    )
    base = [
        "infer",
        str(tmp_path / "kp.npz"),
        "-o",
        str(tmp_path / "o.npz"),
        "--checkpoint",
        str(model),
        "--no-progress",
    ]
    assert main([*base, "--image-size", "1920", "1080"]) == 0
    assert "outside the 1920x1080 image in 100% of the frames" in capsys.readouterr().out
    assert main([*base, "--image-size", "1080", "1920"]) == 0
    assert "outside" not in capsys.readouterr().out


def test_a_missing_image_size_is_the_only_line_infer_prints(tmp_path, capsys):
    from jointpose.cli import main

    keypoints = np.random.default_rng(0).uniform(300, 700, (40, 17, 3))
    keypoints[5:8, 3, 2] = 0.0  # low confidence: a note when the file is read
    np.save(tmp_path / "kp.npy", keypoints)
    assert main(["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "o.npz"), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "pixel keypoints need the video's image size" in err
    assert main(["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "o.npz"), "--image-size", "0", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--image-size" in err


def test_load_model_refuses_an_onnx_export_naming_what_reads_it(tmp_path):
    from jointpose.model.loading import load_model

    (tmp_path / "m.onnx").write_bytes(b"whatever")
    with pytest.raises(JointposeError, match=r"m.onnx: an ONNX export runs in inference only \(Lifter.load"):
        load_model(tmp_path / "m.onnx", device="cpu")


def test_a_screen_model_reads_pixels_as_its_training_cameras_would_have_seen_them(tmp_path, capsys):
    """Given a camera, a "screen" model's pixels are moved to where a camera of 1.15 image
    widths' focal length, centred, sees the same rays: infer, the Python API and a stream alike."""
    from jointpose.cli import main
    from jointpose.geometry.cameras import Camera
    from jointpose.inference.lifter import SCREEN_FOCAL_WIDTHS, screen_view
    from jointpose.inference.streaming import StreamingLifter

    assert SCREEN_FOCAL_WIDTHS == pytest.approx(1150 / 1000)
    # Half that focal length (575 px on 1000 px): twice as far out, about the principal point.
    camera = Camera.from_focal_length(1000, 700, 575.0, center=(520.0, 360.0))
    pixels = np.array([[520.0, 360.0], [620.0, 300.0]])
    np.testing.assert_allclose(screen_view(pixels, camera), [[500.0, 350.0], [700.0, 230.0]])
    # The ray through each point is the same in both cameras: (x - cx) / f.
    wide = Camera.from_focal_length(1000, 700, 1150.0)
    np.testing.assert_allclose(
        (screen_view(pixels, camera) - wide.center) / wide.focal_length[0],
        (pixels - camera.center) / camera.focal_length[0],
    )
    lifter = Lifter(_model(), fps=50.0, normalization="screen")
    kp = np.random.default_rng(0).uniform(300, 700, (30, 17, 2))
    moved = np.array([500.0, 350.0]) + 2.0 * (kp - np.array([520.0, 360.0]))
    np.testing.assert_allclose(lifter.predict(kp, camera=camera), lifter.predict(moved, (1000, 700)), atol=1e-6)
    assert not np.allclose(lifter.predict(kp, camera=camera), lifter.predict(kp, (1000, 700)), atol=1e-3)
    # A lens's distortion is removed first: the rays are the undistorted ones.
    import dataclasses

    from jointpose.geometry.cameras import normalize_keypoints

    bent = dataclasses.replace(camera, radial_distortion=(-0.2, 0.05, 0.0))
    np.testing.assert_allclose(
        (screen_view(pixels, bent) - wide.center) / wide.focal_length[0],
        normalize_keypoints(pixels, bent, "intrinsics"),
        atol=1e-12,
    )
    # A camera without intrinsics (HumanEva's) gives the image size alone, as before.
    bare = Camera("bare", 1000, 700)
    np.testing.assert_allclose(lifter.predict(kp, camera=bare), lifter.predict(kp, (1000, 700)), atol=1e-6)
    stream = StreamingLifter(Lifter(_model(causal=True), fps=50.0, normalization="screen"))
    fresh = StreamingLifter(Lifter(_model(causal=True), fps=50.0, normalization="screen"))
    np.testing.assert_allclose(stream.push(kp[0], camera=camera), fresh.push(moved[0], (1000, 700)), atol=1e-6)
    model = lifter.save(tmp_path / "screen.safetensors")
    np.save(tmp_path / "kp.npy", kp)
    flags = ["--checkpoint", str(model), "--image-size", "1000", "700", "--no-progress", "--raw"]
    given = ["--focal-length", "575", "--principal-point", "520", "360"]
    assert main(["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "f.npz"), *flags, *given]) == 0
    lifter.skeleton_fit, lifter.smooth, lifter.align_2d = False, 0.0, 0.0  # --raw
    np.testing.assert_allclose(np.load(tmp_path / "f.npz")["poses_3d"], lifter.predict(moved, (1000, 700)), atol=1e-5)


def test_lift_track_lifts_each_stretch_between_switches_on_its_own():
    """A track that may have moved to another person at frame 12 is lifted as two: the poses
    of one stretch do not depend on the other's 2D, and each stretch keeps its own bone
    lengths (the skeleton fit); one pose per input frame at the track's 25 fps."""
    from jointpose.data.keypoints import Keypoints2D
    from jointpose.geometry.bones import bone_vectors

    rng = np.random.default_rng(3)
    xy = 500 + rng.normal(0, 80, (1, 17, 2)) + rng.normal(0, 3, (30, 17, 2))
    moved = xy.copy()
    moved[12:] = 400 + 0.5 * (moved[12:] - 500)  # another, smaller person from frame 12
    lifter = Lifter(_model(), fps=50.0, normalization="intrinsics", skeleton_fit=True)

    def track(points: np.ndarray, switches: list[int]) -> Keypoints2D:
        ones = np.ones(points.shape[:2])
        return Keypoints2D(points, ones, "npy", "h36m17", ones == 0, fps=25.0, switches=switches)

    split, _ = lifter.lift_track(track(moved, [12]), (1000, 1000))
    alone, _ = lifter.lift_track(track(moved[:12], []), (1000, 1000))
    assert split.shape == (30, 17, 3)
    np.testing.assert_allclose(split[:12], alone, atol=1e-6)
    whole, _ = lifter.lift_track(track(moved, []), (1000, 1000))
    assert np.abs(whole[:12] - alone).max() > 1e-3  # lifted as one, the second person's 2D reaches the first
    lengths = np.linalg.norm(bone_vectors(split), axis=-1)
    assert np.ptp(lengths[:12], axis=0).max() < 1e-5 and np.ptp(lengths[12:], axis=0).max() < 1e-5
    assert np.abs(lengths[0] - lengths[-1]).max() > 1e-3
    # predict alone would lift across the switch: refused, naming lift_track.
    with pytest.raises(
        JointposeError, match="move to another person at frames \\[12\\]: lift it with Lifter.lift_track"
    ):
        lifter.predict(dataclasses.replace(track(moved, [12]), fps=50.0), (1000, 1000))
    for switches in ([20, 10], [0], [30], [10, 10], [10.0]):
        with pytest.raises(JointposeError, match=r"^Keypoints2D switches must be increasing frames in 1..29"):
            track(moved, switches)
        changed = track(moved, [])
        changed.switches = switches  # after construction: lift_track checks them itself
        with pytest.raises(JointposeError, match=r"^keypoints.switches must be increasing frames in 1..29"):
            lifter.lift_track(changed, (1000, 1000))
    with pytest.raises(JointposeError, match="fps must be"):
        lifter.lift_track(track(moved, []), (1000, 1000), fps=0.0)


def _altered(model: TemporalModel, **attributes) -> TemporalModel:
    """``model`` with ``attributes`` set after construction."""
    for name, value in attributes.items():
        setattr(model, name, value)
    return model


def test_python_api_mistakes_are_refused_naming_the_argument(tmp_path, h36m_dir, monkeypatch):
    """The mistakes a Python user makes (a name where an object goes, an array where a track
    goes, nested lists, a file name without its extension) raise one JointposeError naming the
    argument, before any work, instead of a traceback from deep inside."""
    from jointpose import (
        Camera,
        JointAwareLoss,
        Trainer,
        evaluate_model,
        inference_settings,
        lift_video,
        load_dataset,
        load_keypoints,
    )
    from jointpose.errors import JointposeWarning
    from jointpose.geometry.cameras import camera_from_intrinsics

    lifter = Lifter(_model(causal=True), fps=50.0)
    camera = Camera.from_fov(1000, 1000, 60.0)
    frames = np.random.default_rng(0).uniform(300, 700, (9, 17, 2))
    refused = {
        "model must be a TemporalModel or an ONNX model, got str": lambda: Lifter("offline"),
        "model must be a TemporalModel or an ONNX model, got str (a bundled": lambda: StreamingLifter("causal"),
        "model must be a TemporalModel or an ONNX model, got DataParallel, a wrapper: pass its .module": lambda: Lifter(
            torch.nn.DataParallel(lifter.model)
        ),
        "model must be a TemporalModel or an ONNX model, got Linear (a bundled": lambda: Lifter(torch.nn.Linear(2, 2)),
        "lifter must be a Lifter, e.g. Lifter.from_pretrained('video'), got str": lambda: lift_video("x.mp4", "video"),
        "keypoints must be a Keypoints2D (from load_keypoints), got ndarray": lambda: lifter.lift_track(frames),
        "keypoints: a list holds one sequence per clip": lambda: lifter.predict(frames.tolist(), camera=camera),
        "keypoints must be an array of numbers": lambda: lifter.predict_trajectory("kp.npy", camera=camera),
        "keypoints must be an array of numbers, got <U1": lambda: StreamingLifter(lifter).push("a", camera=camera),
        "fps must be a positive number of frames per second, got 0": lambda: Lifter(lifter.model, fps=0),
        "normalization must be one of screen, intrinsics, got 'pixels'": lambda: Lifter(
            lifter.model, normalization="pixels"
        ),
        "smooth must be a finite number of frames >= 0, got -1": lambda: Lifter(lifter.model, smooth=-1),
        f"{tmp_path / 'm.pt'}: a model is written as safetensors, which loading knows by the extension; name it "
        "m.safetensors": lambda: lifter.save(tmp_path / "m.pt"),
        "pixel keypoints need image_size (width, height) or a camera": lambda: lifter.predict(frames),
        "flip_test must be True or False, got 'no'": lambda: StreamingLifter(lifter, flip_test="no"),
        "skeleton_fit must be True or False, got 'no'": lambda: setattr(lifter, "skeleton_fit", "no"),
        "align_2d must be a number in [0, 1], got -1": lambda: setattr(lifter, "align_2d", -1),
        "normalized must be True or False, got 'no'": lambda: lifter.predict(frames, camera=camera, normalized="no"),
        "normalized must be True or False, got 'nope'": lambda: lifter.predict_trajectory(
            frames, camera=camera, normalized="nope"
        ),
        "half must be True or False, got 'no'": lambda: lifter.save(tmp_path / "h.safetensors", half="no"),
        "keypoints_left and keypoints_right must be two equally long lists of distinct joint indices below 17": (
            lambda: Lifter(lifter.model, keypoints_left=(99,), keypoints_right=(98,))
        ),
        "TemporalModel: model argument 'filter_widths' must be 1 to 8 odd widths": lambda: Lifter(
            TemporalModel((3,) * 12, channels=8, causal=True)
        ),
        "model: model argument 'filter_widths' must be 1 to 8 odd widths": lambda: Lifter(
            _altered(TemporalModel((3,), channels=8, causal=True), filter_widths=(3,) * 12)
        ),
        "skeleton_fit must be True or False, got 'off'": lambda: Lifter(lifter.model, skeleton_fit="off"),
        "push takes one frame (17, 2 or 3), got shape (16, 2)": lambda: StreamingLifter(lifter).push(
            frames[0, :16], camera=camera
        ),
    }
    for message, call in refused.items():
        with pytest.raises(JointposeError) as info:
            call()
        assert str(info.value).startswith(message), (message, str(info.value))
    assert not (tmp_path / "m.pt").exists()
    with monkeypatch.context() as patch:  # a wrong layout is refused before the network runs
        patch.setattr("jointpose.inference.lifter.predict", lambda *args, **kwargs: pytest.fail("the network ran"))
        with pytest.raises(JointposeError, match="unknown keypoint layout 'coco'; one of"):
            lifter.predict(frames, camera=camera, source_layout="coco")
    # What is refused is not a sequence: a list of tensors or arrays is one sequence per clip.
    (as_tensor,) = lifter.predict([torch.from_numpy(frames)], camera=camera)
    np.testing.assert_array_equal(as_tensor, lifter.predict(frames, camera=camera))
    # A tensor that requires grad is read detached; under a bf16 autocast the poses are float32.
    graded = torch.tensor(frames, requires_grad=True)
    np.testing.assert_array_equal(lifter.predict(graded, camera=camera), as_tensor)
    offline = Lifter(_model(), fps=50.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = offline.predict(frames, camera=camera)
    assert autocast.dtype == np.float32 and np.abs(autocast - offline.predict(frames, camera=camera)).max() < 0.05
    # A model in another precision reads its input in that precision; its poses are float32.
    for dtype, tolerance in ((torch.float64, 1e-5), (torch.bfloat16, 0.05)):
        other = Lifter(copy.deepcopy(offline.model).to(dtype), fps=50.0).predict(frames, camera=camera)
        assert other.dtype == np.float32 and np.abs(other - offline.predict(frames, camera=camera)).max() < tolerance
    data = load_dataset(h36m_dir, "gt", ["S9"])
    model = _model()
    diverged = _model()
    with torch.no_grad():
        diverged.expand_conv.weight[0, 0, 0] = float("nan")
    for message, call in {
        "model must be a TemporalModel, got Lifter (a Lifter's is lifter.model": lambda: evaluate_model(
            Lifter(model), data.sequences
        ),
        "model must be a TemporalModel, got OptimizedModule, a wrapper: pass its ._orig_mod": lambda: evaluate_model(
            torch.compile(model), data.sequences
        ),
        "sequences: pass the dataset's sequences": lambda: evaluate_model(model, data),
        "sequences: none to evaluate": lambda: evaluate_model(model, []),
        "sequence S9/Walking/0: 17 keypoints and 17 joints per frame, where the model reads 15 and predicts 17": (
            lambda: evaluate_model(TemporalModel((3, 3), channels=8, num_joints_in=15), data.sequences)
        ),
        "sequence S9/Walking/0: no 3D poses to score against": lambda: evaluate_model(
            model, [dataclasses.replace(data.sequences[0], poses_3d=None)]
        ),
        "sequences must hold PoseSequences (from load_dataset), got str": lambda: evaluate_model(model, ["S1"]),
        "keypoints_left and keypoints_right must be two equally long lists": lambda: evaluate_model(
            model, data.sequences, keypoints_left=[99], keypoints_right=[98]
        ),
        "align_joints must be distinct joint indices below 17, got [99]": lambda: evaluate_model(
            model, data.sequences, align=0.5, align_joints=[99]
        ),
        "extra_metrics must be a function or None, got int": lambda: evaluate_model(
            model, data.sequences, extra_metrics=3
        ),
        # Its action group would drop out of the average rather than show as an error.
        "the model's prediction for S9/Walking/0: NaN or infinite values in": lambda: evaluate_model(
            diverged, data.sequences
        ),
        "fov must be a field of view in degrees in [1, 179], got 500": lambda: camera_from_intrinsics(
            (640, 480), fov=500
        ),
        "principal_point must be two numbers (x, y) in pixels, got 5": lambda: camera_from_intrinsics(
            (640, 480), fov=60, principal_point=5
        ),
        "extra 'fps': a name of its own (not poses_3d, joint_names, fps, trajectory)": lambda: export(
            tmp_path / "x.json", np.zeros((3, 17, 3)), 50.0, extra={"fps": np.zeros(3)}
        ),
        "extra 'names': an array of numbers, got dtype <U1": lambda: export(
            tmp_path / "x.json", np.zeros((3, 17, 3)), 50.0, extra={"names": np.array(["a", "b", "c"])}
        ),
        "extra 'ragged' must be an array of numbers (": lambda: export(
            tmp_path / "x.npz", np.zeros((3, 17, 3)), 50.0, extra={"ragged": [[1.0], [1.0, 2.0], []]}
        ),
        "extra 'flags' must be an array of numbers, got bool": lambda: export(
            tmp_path / "x.npz", np.zeros((3, 17, 3)), 50.0, extra={"flags": np.ones(3, bool)}
        ),
        f"{tmp_path / 'x.json'}: 'gaps' holds NaN or infinity, which JSON has no numbers for (write .npz)": lambda: (
            export(tmp_path / "x.json", np.zeros((3, 17, 3)), 50.0, extra={"gaps": np.array([1.0, np.nan, 2.0])})
        ),
        f"{tmp_path / 'x.json'}: 'focal_length' holds NaN or infinity": lambda: export(
            tmp_path / "x.json", np.zeros((3, 17, 3)), 50.0, info={"focal_length": float("inf")}
        ),
        "path must be a file or folder path, got None": lambda: Lifter.load(None),
        "device must be a device name (auto, cpu, cuda, cuda:N), got None": lambda: Lifter.load("m.pt", device=None),
        "path must be a file or folder path, got 3": lambda: export(3, np.zeros((3, 17, 3)), 50.0),
        "path must be a file or folder path, got 2.5": lambda: load_keypoints(2.5),
        "data_dir must be a file or folder path, got None": lambda: load_dataset(None, "gt", ["S1"]),
        "model: its weights are on the meta device, without values; load them first": lambda: Lifter(
            _model(causal=True).to("meta")
        ),
        "keypoints: a tensor on the meta device, without values": lambda: lifter.predict(
            torch.zeros(9, 17, 2, device="meta"), camera=camera
        ),
        "config must be a TrainConfig (e.g. TrainConfig(data_dir=...)), got str": lambda: Trainer("run"),
        "weights must be a LossWeights (e.g. LossWeights(sym=0.1)), got dict": lambda: JointAwareLoss(
            weights={"symmetry": 0.1}
        ),
        "align must be a number in [0, 1], got -5": lambda: evaluate_model(model, data.sequences, align=-5),
        "fps must be a positive number": lambda: evaluate_model(model, data.sequences, fps=0),
        "flip_test must be True or False, got 'no'": lambda: evaluate_model(model, data.sequences, flip_test="no"),
        "data must be a Dataset (from load_dataset), got list": lambda: inference_settings(lifter, data.sequences),
        "progress must be True or False, got 'no'": lambda: lifter.predict(frames, camera=camera, progress="no"),
        "data holds screen coordinates where the model reads intrinsics: load it with load_dataset(..., "
        "normalization='intrinsics')": lambda: inference_settings(Lifter(model, normalization="intrinsics"), data),
    }.items():
        with pytest.raises(JointposeError, match="^" + re.escape(message)):
            call()
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.npz").exists()
    with_gaps = export(
        tmp_path / "x.npz", np.zeros((3, 17, 3)), 50.0, extra={"gaps": [1.0, np.nan, 2.0], "n": [1, 2, 3]}
    )
    np.testing.assert_array_equal(np.load(with_gaps)["gaps"], np.array([1.0, np.nan, 2.0], np.float32))
    poses = lifter.predict(frames, camera=camera)
    with pytest.warns(JointposeWarning, match="CSV holds the root-relative joints only; the trajectory goes to"):
        export(tmp_path / "p.csv", poses, 50.0, trajectory=np.zeros((9, 3)) + [0, 0, 4])
    assert (tmp_path / "p.csv").is_file()


def test_a_stream_holds_keypoints_below_its_confidence_threshold_at_their_last_confident_position():
    """With ``confidence_threshold``, a keypoint the detector lost (confidence 0 at pixel 0, 0,
    or NaN) is lifted where it was last seen, as if the frame held that position: the stream
    then equals one fed that position by hand. Without it, the lost point is lifted as given."""
    kp = _keypoints(40)
    frames = np.concatenate([kp, np.ones((40, 17, 1))], axis=-1)
    lost = frames.copy()
    lost[20:30, 16] = [0.0, 0.0, 0.0]  # a wrist lost for 10 frames
    lost[25, 13, :2] = np.nan  # the other wrist NaN in one frame
    by_hand = frames.copy()
    by_hand[20:30, 16, :2] = frames[19, 16, :2]
    by_hand[25, 13, :2] = frames[24, 13, :2]
    lifter = Lifter(_model(causal=True), fps=50.0)

    def stream(data, **options):
        s = StreamingLifter(lifter, **options)
        return np.stack([s.push(frame, image_size=(1000, 1000)) for frame in data])

    held = stream(lost, confidence_threshold=0.3)
    np.testing.assert_allclose(held, stream(by_hand), atol=1e-6)
    assert np.abs(stream(lost[:25]) - held[:25]).max() > 0.01  # the zeros lifted as given
    with pytest.raises(JointposeError, match="NaN"):
        stream(lost)  # NaN is refused without a threshold
    # A keypoint not yet confident stands at the mean of the frame's confident ones, NaN or not;
    # a frame with none is refused, and the stream goes on as if it had not been pushed.
    first = frames[:2].copy()
    first[0, 5, :2], first[0, 16] = np.nan, [0.0, 0.0, 0.0]
    centred = first.copy()
    centred[0, [5, 16], :2] = np.delete(frames[0, :, :2], [5, 16], axis=0).mean(axis=0)
    np.testing.assert_allclose(stream(first, confidence_threshold=0.0), stream(centred), atol=1e-6)
    s = StreamingLifter(lifter, confidence_threshold=0.3)
    with pytest.raises(JointposeError, match="no keypoint of the frame is confident"):
        s.push(np.zeros((17, 3)), image_size=(1000, 1000))
    np.testing.assert_allclose(s.push(frames[0], image_size=(1000, 1000)), held[0], atol=1e-6)
    with pytest.raises(JointposeError, match="confidence_threshold must lie in"):
        StreamingLifter(lifter, confidence_threshold=3)
    from jointpose.geometry.cameras import Camera

    camera = Camera.from_fov(1000, 1000, 60.0)  # the roots' rays come from the frame as lifted
    a, b = StreamingLifter(lifter, confidence_threshold=0.3), StreamingLifter(lifter)
    for frame, hand in zip(lost, by_hand):
        np.testing.assert_allclose(a.push_with_root(frame, camera=camera)[1], b.push_with_root(hand, camera=camera)[1])


def _track_of(source_format: str, source_layout: str, frames: int = 30):
    from jointpose.data.keypoints import Keypoints2D

    xy = _keypoints(frames)
    return Keypoints2D(xy, np.ones((frames, 17)), source_format, source_layout, np.zeros((frames, 17), bool))


def test_keypoints_a_model_is_known_to_lift_worse_are_lifted_with_a_warning(tmp_path):
    """A model records the 2D it trained on (data build --input-layout). Any keypoints given to
    a model trained in a detector's own order, and a video track given to the bundled offline
    or causal model, are lifted with one warning naming what suits them; between 2D at the
    joints and the detectors' points converted, which models lift alike, silence."""
    import warnings

    from jointpose.errors import JointposeWarning
    from jointpose.geometry.cameras import Camera

    video, coco, openpose = _track_of("video", "coco17"), _track_of("json", "coco17"), _track_of("openpose", "body25")
    array = _track_of("npz", "h36m17")
    assert [t.input_layout for t in (video, coco, openpose, array)] == ["blazepose", "coco", "coco", None]

    def said(lifter, track):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lifter.predict(track, (1000, 1000))
        assert all(isinstance(w.message, JointposeWarning) for w in caught)
        return [str(w.message) for w in caught]

    lifter = Lifter(_model())
    for layout in (None, "h36m", "coco", "blazepose"):
        lifter.input_layout = layout
        assert said(lifter, video) == said(lifter, coco) == said(lifter, openpose) == said(lifter, array) == []
    lifter.bundled = "video"  # as from_pretrained names it
    assert said(lifter, coco) == said(lifter, video) == []
    for network, bundled, suits in ((_model(), "offline", "video"), (_model(causal=True), "causal", "video-causal")):
        other = Lifter(network, input_layout="coco")
        other.bundled = bundled
        assert said(other, coco) == said(other, array) == []
        assert said(other, video) == [
            f"a jointpose video track (BlazePose's points) lifted by the bundled {bundled} model; the bundled {suits} "
            "model, trained for jointpose video's tracks, lifts real footage better"
        ]
        with warnings.catch_warnings(record=True) as caught:  # once, though it lifts the poses too
            warnings.simplefilter("always")
            other.predict_trajectory(video, (1000, 1000), camera=Camera.assumed(1000, 1000))
        assert [str(w.message) for w in caught] == said(other, video)
    lifter.bundled, lifter.input_layout = None, "coco order"  # a detector's own order: any Human3.6M-17 input
    assert said(lifter, array) == [
        "Human3.6M-17 keypoints lifted by a model that trained on keypoints in coco order (a detector's own "
        "order): it reads each keypoint as the one at its index in coco order; a model trained on keypoints in "
        "Human3.6M-17 order suits them"
    ]
    assert said(lifter, video)[0].startswith("a jointpose video track (BlazePose's points) lifted by a model that")
    assert said(lifter, coco)[0].startswith("a COCO-trained detector's keypoints lifted by a model that trained")
    lifter.input_layout = None  # a file that records nothing: silent
    assert said(lifter, video) == said(lifter, coco) == []
    with pytest.raises(JointposeError, match=r"^input_layout must be one of h36m, coco, blazepose or 'NAME order'"):
        lifter.input_layout = "yolo"
    with pytest.raises(JointposeError, match=r"^input_layout must be one of .*, got 3$"):
        Lifter(_model(), input_layout=3)
    # Kept by a saved model, and by none that records nothing.
    saved = Lifter(_model(), input_layout="blazepose").save(tmp_path / "m.safetensors")
    assert read_plain_safetensors(saved)[1]["input_layout"] == "blazepose"
    assert Lifter.load(saved).input_layout == "blazepose"
    assert "input_layout" not in read_plain_safetensors(Lifter(_model()).save(tmp_path / "n.safetensors"))[1]
    assert Lifter.load(tmp_path / "n.safetensors").input_layout is None


def test_the_bundled_models_record_the_2d_they_trained_on():
    from importlib import resources

    card = json.loads(resources.files("jointpose").joinpath("resources/pretrained/model_card.json").read_text())
    for name in ("offline", "causal", "video", "video-causal"):
        lifter = Lifter.from_pretrained(name, device="cpu")
        assert lifter.input_layout == card[name]["input_layout"] == ("blazepose" if "video" in name else "coco")
