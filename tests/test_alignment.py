"""The inference step's alignment with the 2D: network depth kept, x and y towards the rays."""

import json

import numpy as np
import pytest
import torch

from jointpose.data.h36m import PoseSequence
from jointpose.data.layouts import LIMB_JOINTS as LIMBS
from jointpose.data.layouts import aligned_joints
from jointpose.errors import JointposeError
from jointpose.evaluation.evaluate import evaluate_model
from jointpose.geometry.alignment import align_to_rays, rays_of
from jointpose.geometry.calibrations import h36m_cameras
from jointpose.geometry.cameras import Camera, normalize_keypoints, root_trajectory
from jointpose.geometry.filters import smooth_poses
from jointpose.geometry.skeleton import JOINT_NAMES
from jointpose.inference.lifter import Lifter
from jointpose.model.loading import load_model
from jointpose.model.predict import alignment_sigma
from jointpose.model.temporal import TemporalModel

RNG = np.random.default_rng(3)
FRAMES = 40
# A body (root-relative, metres, camera axes) that turns and bends over the frames, and a root
# that walks from 3 m to 6 m away across the image.
_base = np.stack([RNG.uniform(-0.25, 0.25, 17), np.linspace(-0.9, 0.8, 17), RNG.uniform(-0.2, 0.2, 17)], -1)
_base[0] = 0.0
_angle = np.linspace(0.0, 1.2, FRAMES)
_turn = np.stack(
    [
        np.stack([np.cos(_angle), np.zeros(FRAMES), np.sin(_angle)], -1),
        np.tile([0.0, 1.0, 0.0], (FRAMES, 1)),
        np.stack([-np.sin(_angle), np.zeros(FRAMES), np.cos(_angle)], -1),
    ],
    1,
)
POSES = np.einsum("fij,kj->fki", _turn, _base)
ROOT = np.stack([np.linspace(-0.8, 0.8, FRAMES), np.full(FRAMES, 0.1), np.linspace(3.0, 6.0, FRAMES)], -1)
CAMERA = Camera.from_focal_length(1920, 1080, 1400.0)
RAYS = normalize_keypoints(CAMERA.project(POSES + ROOT[:, None]), CAMERA, "intrinsics")


def _align(poses, rays, weight, sigma=0.0, joints=None, confidence=None):
    return align_to_rays(torch.from_numpy(poses), torch.from_numpy(rays), weight, sigma, joints, confidence).numpy()


def test_exact_poses_on_their_rays_stay_where_they_are():
    for weight in (0.3, 1.0):
        np.testing.assert_allclose(_align(POSES, RAYS, weight), POSES, atol=1e-9)


def test_weight_one_lands_every_joint_on_its_ray_and_keeps_the_depths():
    wrong = POSES.copy()
    wrong[..., :2] += RNG.normal(0.0, 0.05, wrong[..., :2].shape)  # 5 cm off across the image
    wrong -= wrong[:, :1]
    out = _align(wrong, RAYS, 1.0)
    np.testing.assert_allclose(out[..., 2], wrong[..., 2], atol=1e-12)  # depths as the network said
    # Some root puts every joint of the output exactly on its keypoint's ray.
    placed = out + root_trajectory(out, RAYS)[:, None]
    np.testing.assert_allclose(placed[..., :2] / placed[..., 2:], RAYS, atol=1e-9)
    assert np.abs(out - POSES).mean() < 0.2 * np.abs(wrong - POSES).mean()


def test_a_partial_weight_moves_that_share_of_the_way():
    wrong = POSES.copy()
    wrong[..., 0] += 0.04
    wrong -= wrong[:, :1]
    full, half = _align(wrong, RAYS, 1.0), _align(wrong, RAYS, 0.5)
    np.testing.assert_allclose(half, (full + wrong) / 2, atol=1e-12)
    np.testing.assert_array_equal(_align(wrong, RAYS, 0.0), wrong)


def test_the_filters_take_out_jitter_of_the_rays():
    noisy = RAYS + RNG.normal(0.0, 3.0 / 1400.0, RAYS.shape)  # 3 px of white jitter
    velocity = np.diff(POSES, axis=0)

    def velocity_error(poses):
        return np.linalg.norm(np.diff(poses, axis=0) - velocity, axis=-1).mean()

    assert velocity_error(_align(POSES, noisy, 1.0, sigma=4.0)) < 0.4 * velocity_error(_align(POSES, noisy, 1.0))


def test_frames_no_pose_in_front_of_the_camera_fits_keep_the_network():
    rays = RAYS.copy()
    rays[5] = 0.0  # every joint on the optical axis: no depth to fit
    out = _align(POSES, rays, 1.0)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[5], POSES[5], atol=1e-12)
    np.testing.assert_allclose(np.delete(out, 5, axis=0), np.delete(POSES, 5, axis=0), atol=1e-9)
    with pytest.raises(JointposeError, match="align weight must be a number in \\[0, 1\\], got 1.5"):
        _align(POSES, RAYS, 1.5)


def test_rays_of_undoes_the_input_normalisation_and_the_lens():
    camera = h36m_cameras()["S1"][0]  # distorted
    pixels = camera.project(POSES + np.array([0.0, 0.0, 5.0]))
    truth = POSES[..., :2] / (POSES[..., 2:] + 5.0)
    for normalization in ("screen", "intrinsics"):
        kp = normalize_keypoints(pixels, camera, normalization)
        np.testing.assert_allclose(rays_of(kp, camera, normalization), truth, atol=1e-7)
    assert rays_of(pixels, Camera("blind", 100, 100), "screen") is None


def test_evaluation_aligns_each_sequence_through_its_own_camera(monkeypatch):
    """The evaluation's path: keypoints in screen units of a distorted Human3.6M camera, and a
    stand-in network whose poses are 4 cm off across the image."""
    import jointpose.evaluation.evaluate as evaluate

    camera = h36m_cameras()["S1"][1]
    kp = normalize_keypoints(camera.project(POSES + ROOT[:, None]), camera, "screen").astype(np.float32)
    seq = PoseSequence("S1", "Walking", 1, camera, kp, POSES.astype(np.float32), ROOT.astype(np.float32))
    network = POSES.copy()
    network[..., :2] += RNG.normal(0.0, 0.04, network[..., :2].shape)
    network -= network[:, :1]
    monkeypatch.setattr(evaluate, "predict", lambda *args, **kwargs: torch.from_numpy(network).float())
    model = TemporalModel([3, 3], channels=16).eval()
    plain = evaluate_model(model, [seq], flip_test=False).predictions["S1/Walking/1"]
    aligned = evaluate_model(model, [seq], flip_test=False, align=1.0, fps=25.0).predictions["S1/Walking/1"]
    depth = smooth_poses(torch.from_numpy(network[..., 2]), 2.0).numpy()  # 80 ms at 25 fps
    np.testing.assert_allclose(aligned[..., 2], depth, atol=1e-6)
    assert np.abs(aligned[..., :2] - POSES[..., :2]).mean() < 0.3 * np.abs(plain[..., :2] - POSES[..., :2]).mean()


def test_the_weight_travels_with_the_model_file_and_the_lifter_aligns(tmp_path, monkeypatch):
    import jointpose.inference.lifter as lifter_module

    lifter = Lifter(TemporalModel([3, 3], channels=16), align_2d=0.75)
    path = lifter.save(tmp_path / "m.safetensors")
    assert load_model(path, "cpu").align_2d == 0.75
    assert Lifter.load(path, device="cpu").align_2d == 0.75
    network = POSES.copy()
    network[..., :2] += RNG.normal(0.0, 0.04, network[..., :2].shape)
    network -= network[:, :1]
    monkeypatch.setattr(lifter_module, "predict", lambda *args, **kwargs: torch.from_numpy(network).float())
    pixels = CAMERA.project(POSES + ROOT[:, None])
    off = Lifter(lifter.model).predict(pixels, camera=CAMERA)
    on = Lifter(lifter.model, align_2d=1.0).predict(pixels, camera=CAMERA)
    assumed = Lifter(lifter.model, align_2d=1.0).predict(pixels, image_size=(1920, 1080))
    np.testing.assert_allclose(off, network, atol=1e-6)
    error = np.abs(off - POSES)[..., :2].mean()
    assert np.abs(on - POSES)[..., :2].mean() < 0.3 * error
    assert np.abs(assumed - POSES)[..., :2].mean() < 0.5 * error  # through a guessed focal length


def test_a_bad_weight_in_a_model_file_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = Lifter(TemporalModel([3, 3], channels=16)).save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    for value in ("2.5", '"x"', "nan"):
        save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata={**meta, "align_2d": value})
        with pytest.raises(JointposeError, match="metadata 'align_2d' must be a number in \\[0, 1\\]"):
            load_model(tmp_path / "bad.safetensors", "cpu")
    old = {k: v for k, v in meta.items() if k != "align_2d"}
    save_file(load_file(str(path)), str(tmp_path / "old.safetensors"), metadata=old)
    assert load_model(tmp_path / "old.safetensors", "cpu").align_2d == 0.0
    assert json.loads(meta["align_2d"]) == 0.0


@pytest.mark.parametrize("name", ["smooth", "align_2d"])
def test_a_causal_model_refuses_steps_that_read_future_frames(tmp_path, name):
    """A filter and an alignment with the 2D read future frames: a causal Lifter refuses
    them above 0, at construction and on assignment, and a causal model file asking for one
    is refused naming its key (it was loaded, run without it, and saved or reported with it)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    causal = TemporalModel([3, 3], channels=16, causal=True)
    with pytest.raises(JointposeError, match=f"^{name} reads future frames, which a causal model"):
        Lifter(causal, **{name: 0.5})
    lifter = Lifter(causal)
    with pytest.raises(JointposeError, match=f"^{name} reads future frames, which a causal model"):
        setattr(lifter, name, 0.5)
    assert getattr(lifter, name) == 0.0
    setattr(lifter, name, 0.0)
    assert getattr(Lifter(TemporalModel([3, 3], channels=16), **{name: 0.5}), name) == 0.5  # an offline model's
    path = lifter.save(tmp_path / "causal.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata={**meta, name: "0.5"})
    with pytest.raises(JointposeError, match=f"bad.safetensors: metadata '{name}' is 0.5 for a causal model"):
        Lifter.load(tmp_path / "bad.safetensors")
    assert Lifter.load(path).causal


def test_the_training_flag_is_checked_and_a_converted_layout_aligns_the_limbs_only():
    from jointpose.data.h36m import Dataset, alignment_joints
    from jointpose.training.config import TrainConfig

    assert TrainConfig(data_dir="d", checkpoint_dir="c").align_2d == 0.75
    with pytest.raises(JointposeError, match="align_2d must be in \\[0, 1\\], got 1.5"):
        TrainConfig(data_dir="d", checkpoint_dir="c", align_2d=1.5)
    joints = Dataset([], (4, 5, 6), (1, 2, 3), 17, "gt", input_layout="h36m")
    assert alignment_joints(joints, "h36m") is None
    for layout in ("coco", "blazepose"):
        converted = Dataset([], (1,), (2,), 17, layout, input_layout=layout)
        assert alignment_joints(converted, "h36m") == LIMBS
    assert alignment_joints(joints, "humaneva15") == ()  # 17 keypoints for 15 joints


def test_evaluation_runs_the_models_own_inference_step_and_aligns_only_marked_joints():
    from types import SimpleNamespace

    from jointpose.data.h36m import Dataset
    from jointpose.evaluation.evaluate import inference_settings

    model = SimpleNamespace(model=None, skeleton_fit=True, smooth=2.5, align_2d=0.4)
    converted = Dataset([], (1, 7), (2, 8), 17, "noisy", fps=25.0, input_layout="blazepose")
    step = inference_settings(model, converted)
    assert step == {
        "keypoints_left": (1, 7),
        "keypoints_right": (2, 8),
        "skeleton_fit": True,
        "smooth": 2.5,
        "align": 0.4,
        "fps": 25.0,
        "align_joints": LIMBS,
    }
    assert inference_settings(model, converted, smooth=0.0, align_2d=1.0) | {"smooth": 2.5, "align": 0.4} == step
    raw = inference_settings(model, converted, raw=True)
    assert (raw["skeleton_fit"], raw["smooth"], raw["align"]) == (False, 0.0, 0.0)
    with pytest.raises(JointposeError, match="raw shows the network alone, without a filter; leave out smooth or raw"):
        inference_settings(model, converted, raw=True, smooth=3.0, align_2d=1.0)  # raw no longer wins silently
    # 17 keypoints for HumanEva's 15 joints mark none of them: no alignment, whatever is asked.
    assert inference_settings(model, converted, "humaneva15", align_2d=1.0)["align"] == 0.0


def test_the_limb_joints_are_the_elbows_wrists_knees_and_ankles():
    names = {JOINT_NAMES[j] for j in aligned_joints("coco17")}
    assert names == {f"{s}{p}" for s in "LR" for p in ("Elbow", "Wrist", "Knee", "Foot")}
    assert aligned_joints("body25") == aligned_joints("coco18") == LIMBS
    assert aligned_joints("h36m17") is None
    with pytest.raises(JointposeError, match="unknown keypoint layout 'mpii'"):
        aligned_joints("mpii")


def _network_off_by(scale: float) -> np.ndarray:
    network = POSES.copy()
    network[..., :2] += RNG.normal(0.0, scale, network[..., :2].shape)
    return network - network[:, :1]


def test_confidence_scales_the_share_and_a_guessed_keypoint_pulls_nothing():
    wrong = _network_off_by(0.04)
    ones = np.ones((FRAMES, 17))
    np.testing.assert_allclose(_align(wrong, RAYS, 1.0, confidence=ones), _align(wrong, RAYS, 1.0), atol=1e-12)
    # Half the confidence everywhere is half the weight (the root's least squares are unchanged).
    np.testing.assert_allclose(_align(wrong, RAYS, 1.0, confidence=ones / 2), _align(wrong, RAYS, 0.5), atol=1e-9)
    # The left wrist's keypoint lands 40 cm off, with confidence 0: nothing moves for it, the
    # wrist keeps the network's place, the other limbs and the root are placed without it.
    misplaced = RAYS.copy()
    misplaced[:, 13] += 0.1
    doubtful = ones.copy()
    doubtful[:, 13] = 0.0
    out = _align(wrong, misplaced, 1.0, joints=LIMBS, confidence=doubtful)
    np.testing.assert_allclose(out, _align(wrong, RAYS, 1.0, joints=LIMBS, confidence=doubtful), atol=1e-9)
    np.testing.assert_allclose(out[:, 13], wrong[:, 13], atol=1e-12)
    trusted = _align(wrong, misplaced, 1.0, joints=LIMBS)
    assert np.abs(trusted - POSES)[:, LIMBS].mean() > 2 * np.abs(out - POSES)[:, LIMBS].mean()
    with pytest.raises(JointposeError, match=r"confidence must be \(frames, joints\)"):
        _align(wrong, RAYS, 1.0, confidence=ones[:, :5])


def test_the_lifter_aligns_a_converted_layouts_limbs_by_their_confidence(monkeypatch):
    import jointpose.inference.lifter as lifter_module

    network = _network_off_by(0.04)
    monkeypatch.setattr(lifter_module, "predict", lambda *args, **kwargs: torch.from_numpy(network).float())
    pixels = CAMERA.project(POSES + ROOT[:, None])
    confidence = np.ones((FRAMES, 17, 1))
    confidence[:, 16] = 0.0  # the right wrist: a guess
    lifter = Lifter(TemporalModel([3, 3], channels=16), align_2d=1.0)
    coco = lifter.predict(np.concatenate([pixels, confidence], -1), camera=CAMERA, source_layout="coco17")
    sigma = alignment_sigma(lifter.fps)
    np.testing.assert_allclose(coco, _align(network, RAYS, 1.0, sigma, LIMBS, confidence[..., 0]), atol=1e-5)
    fixed = [j for j in range(17) if j not in LIMBS] + [16]
    np.testing.assert_allclose(coco[:, fixed, :2], network[:, fixed, :2] - coco[:, :1, :2], atol=1e-5)
    moved = [j for j in LIMBS if j != 16]
    assert np.abs(coco[:, moved] - POSES[:, moved]).mean() < 0.5 * np.abs(network[:, moved] - POSES[:, moved]).mean()
    every = lifter.predict(np.concatenate([pixels, confidence], -1), camera=CAMERA)  # Human3.6M-17 keypoints
    np.testing.assert_allclose(every, _align(network, RAYS, 1.0, sigma, confidence=confidence[..., 0]), atol=1e-5)


def test_only_the_joints_named_move_and_place_the_root():
    wrong = POSES.copy()
    wrong[..., :2] += RNG.normal(0.0, 0.04, wrong[..., :2].shape)
    wrong -= wrong[:, :1]
    rays = RAYS.copy()
    rays[:, 7:11] += 0.05  # the spine, thorax, neck and head's keypoints far off: not the joints
    limbs = [2, 3, 5, 6, 12, 13, 15, 16]
    out = _align(wrong, rays, 1.0, joints=limbs)
    others = [j for j in range(17) if j not in limbs]
    np.testing.assert_allclose(out[:, others, :2], wrong[:, others, :2] - out[:, :1, :2], atol=1e-12)
    shins_forearms = ([2, 5, 12, 15], [3, 6, 13, 16])  # knee to ankle, elbow to wrist: both ends aligned

    def error(poses):
        return np.abs(
            np.subtract(*(poses[:, j] for j in shins_forearms[::-1]))
            - np.subtract(*(POSES[:, j] for j in shins_forearms[::-1]))
        )[..., :2].mean()

    assert error(out) < 0.3 * error(wrong)
    placed = out + root_trajectory(out, RAYS, np.isin(np.arange(17), limbs)[None].repeat(FRAMES, 0) * 1.0)[:, None]
    np.testing.assert_allclose(placed[:, limbs, :2] / placed[:, limbs, 2:], RAYS[:, limbs], atol=1e-9)


def test_infer_aligns_coco_limbs_by_confidence_and_takes_align_2d(tmp_path, capsys):
    from h36m_files import cli
    from jointpose.cli import main
    from jointpose.data.keypoints import load_keypoints

    base = CAMERA.project(POSES + ROOT[:, None])  # a body's Human3.6M-17 joints, for a COCO-17 track
    coco = np.zeros((FRAMES, 17, 3))
    names = ("nose", None, None, None, None, "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist")
    names += ("LHip", "RHip", "LKnee", "RKnee", "LFoot", "RFoot")
    for i, name in enumerate(names):
        coco[:, i, :2] = base[:, JOINT_NAMES.index(name if name not in ("nose", None) else "Head")]
    coco[:, 1:5, :2] += [[-8, -6], [8, -6], [-14, 0], [14, 0]]  # eyes and ears about the head
    coco[..., 2] = np.linspace(0.4, 1.0, FRAMES)[:, None]
    entries = [
        {"image_id": f, "category_id": 1, "score": 0.9, "keypoints": coco[f].ravel().tolist()} for f in range(FRAMES)
    ]
    (tmp_path / "dets.json").write_text(json.dumps(entries))
    flags = "--image-size 1920 1080 --focal-length 1400 --no-progress"
    outputs = {}
    for name, extra in (("default", ""), ("off", " --align-2d 0"), ("full", " --align-2d 1")):
        out = tmp_path / f"{name}.npz"
        assert main(cli("infer", flags + extra, tmp_path / "dets.json", o=out)) == 0
        outputs[name] = np.load(out)["poses_3d"]
    keypoints = load_keypoints(tmp_path / "dets.json")
    assert keypoints.source_layout == "coco17"
    for name, weight in (("default", 0.75), ("off", 0.0), ("full", 1.0)):
        lifter = Lifter.from_pretrained("offline", device="cpu")
        assert lifter.align_2d == 0.75
        lifter.align_2d = weight
        expected = lifter.predict(keypoints.points, camera=CAMERA, source_layout="coco17")
        np.testing.assert_allclose(outputs[name], expected, atol=1e-5)
        # The loaded keypoints as they are: their confidence and layout come with them.
        np.testing.assert_array_equal(lifter.predict(keypoints, camera=CAMERA), expected)
        np.testing.assert_array_equal(
            lifter.predict_trajectory(keypoints, camera=CAMERA),
            lifter.predict_trajectory(keypoints.points, camera=CAMERA, poses=expected),
        )
    assert np.abs(outputs["default"] - outputs["off"]).max() > 1e-3  # the step ran
    for call in (lifter.predict, lambda k, **kw: lifter.predict_trajectory(k, poses=outputs["off"], **kw)):
        with pytest.raises(JointposeError, match="a Keypoints2D holds pixels"):
            call(keypoints, normalized=True)
    # Bare pixels align every joint by the full weight: not what the detector's points warrant.
    lifter = Lifter.from_pretrained("offline", device="cpu")
    assert np.abs(lifter.predict(keypoints.xy, camera=CAMERA) - outputs["default"]).max() > 1e-3
    capsys.readouterr()
    for bad, message in (("--align-2d 1.5", "--align-2d must be a number in"), ("--align-2d 0.5 --raw", "--raw shows")):
        assert main(cli("infer", f"{flags} {bad}", tmp_path / "dets.json", o=tmp_path / "bad.npz")) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad.npz").exists()


def test_a_keypoint_confidence_outside_zero_to_one_weighs_as_its_nearest_end():
    """Some detectors score a keypoint a little past 1; a NaN score is none. The alignment
    weighs each keypoint by its confidence read within [0, 1]."""
    from h36m_files import pixels

    lifter = Lifter.from_pretrained("offline", device="cpu")
    assert lifter.align_2d > 0
    points = pixels(60)
    camera = Camera.from_focal_length(1000, 1000, 1200.0)
    scores = np.random.default_rng(0).uniform(0.2, 0.9, (60, 17, 1))

    def lifted(confidence):
        return lifter.predict(np.concatenate([points, confidence], axis=-1), camera=camera)

    np.testing.assert_array_equal(
        lifted(np.where(scores > 0.5, 7.0, scores)), lifted(np.where(scores > 0.5, 1.0, scores))
    )
    np.testing.assert_array_equal(
        lifted(np.where(scores > 0.5, -3.0, scores)), lifted(np.where(scores > 0.5, 0.0, scores))
    )
    np.testing.assert_array_equal(
        lifted(np.where(scores > 0.5, np.nan, scores)), lifted(np.where(scores > 0.5, 0.0, scores))
    )
    assert not np.array_equal(lifted(scores), lifted(np.where(scores > 0.5, 1.0, scores)))  # the scores act
