"""Any camera: intrinsics-aware input, random cameras, root trajectory in metres."""

import dataclasses
import json

import numpy as np
import pytest

from h36m_files import cli
from jointpose.cli import build_parser, flag_message, main, train_config
from jointpose.data.h36m import load_dataset
from jointpose.errors import JointposeError
from jointpose.geometry.calibrations import h36m_cameras
from jointpose.geometry.cameras import (
    DEFAULT_FOV_DEG,
    Camera,
    input_intrinsics,
    keypoint_pixels,
    normalize_keypoints,
    root_trajectory,
)
from jointpose.inference.lifter import Lifter
from jointpose.model.temporal import TemporalModel
from jointpose.motion.builder import (
    CameraRing,
    NoiseModel,
    blazepose_keypoints,
    detector_points,
    in_camera,
    write_h36m_dataset,
)
from jointpose.motion.viewpoints import (
    CameraRanges,
    RandomRig,
    draw_camera,
    keep_in_front,
    placement,
    random_views,
    seen_through,
)
from jointpose.training.ablation import run_ablation
from jointpose.training.config import NORMALIZATION_BASELINE, NORMALIZATION_CONSTRAINTS, TrainConfig
from jointpose.training.trainer import Trainer

RNG = np.random.default_rng(0)
# A standing body, root-relative, metres (camera axes: y down): 17 joints spread over 1.7 m.
BODY = np.stack([RNG.uniform(-0.25, 0.25, 17), np.linspace(-0.9, 0.8, 17), RNG.uniform(-0.15, 0.15, 17)], axis=-1)
BODY[0] = 0.0


def _pinhole(points: np.ndarray, f: tuple[float, float], c: tuple[float, float]) -> np.ndarray:
    """Pixels of camera-space points through an undistorted camera, computed from scratch."""
    return np.stack([f[0] * points[..., 0] / points[..., 2] + c[0], f[1] * points[..., 1] / points[..., 2] + c[1]], -1)


def test_same_body_same_distance_same_input_whatever_the_lens_and_image():
    points = BODY + np.array([0.3, 0.1, 4.0])
    phone = Camera("phone", 1080, 1920, (1500.0, 1500.0), (530.0, 975.0))
    h36m = Camera("h36m", 1000, 1002, (1145.0, 1144.0), (512.5, 515.5))
    webcam = Camera("webcam", 640, 480, (500.0, 500.0), (320.0, 240.0))
    inputs = [
        normalize_keypoints(_pinhole(points, c.focal_length, c.center), c, "intrinsics") for c in (phone, h36m, webcam)
    ]
    for other in inputs[1:]:
        np.testing.assert_allclose(other, inputs[0], atol=1e-12)
    np.testing.assert_allclose(inputs[0], points[:, :2] / points[:, 2:], atol=1e-12)
    # VideoPose3D's screen normalisation: the same body looks 1.5 / 1.145 * 1000 / 1080 larger on the phone.
    screen = [normalize_keypoints(_pinhole(points, c.focal_length, c.center), c, "screen") for c in (phone, h36m)]
    spread = [np.ptp(s[:, 1]) for s in screen]
    assert spread[0] / spread[1] == pytest.approx(1500 / 1080 / (1144 / 1000), rel=1e-6)


@pytest.mark.parametrize("model", ["opencv", "h36m"])
def test_intrinsics_input_removes_the_lens_distortion(model):
    camera = Camera(
        "c", 1920, 1080, (1000.0, 1010.0), (950.0, 530.0), (-0.2, 0.05, 0.01), (0.001, -0.002), distortion_model=model
    )
    points = BODY + np.array([0.0, 0.0, 3.0])
    rays = normalize_keypoints(camera.project(points), camera, "intrinsics")
    np.testing.assert_allclose(rays, points[:, :2] / points[:, 2:], atol=1e-9)
    np.testing.assert_allclose(keypoint_pixels(rays, camera, "intrinsics"), camera.project(points), atol=1e-6)


def test_lens_is_undone_far_outside_the_image_or_refused_where_it_folds():
    """Human3.6M's lens (k1 -0.21, k2 0.25) is undone at keypoints far outside the image (a
    fixed-point iteration drifted 24 px at (-500, -500) and 220 px at (-1000, 500)). A strong
    barrel lens, k1 = -0.5 with f = 500 px, reaches at most 500 * 0.544 px from the centre
    (r (1 - r^2 / 2) peaks at r = sqrt(2/3)): beyond, no ray exists, and the error says so
    rather than give NaN or a ray through the folded lens. NaN stays NaN."""
    camera = h36m_cameras()["S1"][0]
    rays = np.array([[-1.3, -1.2], [-1.1, 0.0], [0.9, 0.8], [0.0, 0.0]])  # up to 1300 px outside
    pixels = camera.project(np.concatenate([rays, np.ones((4, 1))], axis=-1))
    assert pixels.min() < -1000
    np.testing.assert_allclose(normalize_keypoints(pixels, camera, "intrinsics"), rays, atol=1e-9)
    barrel = Camera("barrel", 1000, 1000, (500.0, 500.0), (500.0, 500.0), (-0.5, 0.0, 0.0))
    reach = 500 * np.sqrt(2 / 3) * (1 - 1 / 3)  # 272.2 px from the centre
    inside = np.array([[500.0 + reach - 1, 500.0], [500.0, 500.0 - reach + 1], [np.nan, 500.0]])
    undone = normalize_keypoints(inside, barrel, "intrinsics")
    np.testing.assert_allclose(keypoint_pixels(undone[:2], barrel, "intrinsics"), inside[:2], atol=1e-6)
    assert 0 < undone[0, 0] < np.sqrt(2 / 3) and np.isnan(undone[2, 0])
    with pytest.raises(JointposeError, match=r"camera barrel: no ray reaches pixel \(773.1\d*, 500\) through its lens"):
        normalize_keypoints(np.array([[500.0 + reach + 1, 500.0]]), barrel, "intrinsics")


@pytest.mark.parametrize("normalization", ["screen", "intrinsics"])
def test_input_intrinsics_project_into_the_input_space(normalization):
    camera = Camera("c", 1280, 720, (900.0, 905.0), (650.0, 350.0))
    points = BODY + np.array([0.5, -0.2, 5.0])
    fx, fy, cx, cy = input_intrinsics(camera, normalization)
    projected = np.stack([fx * points[:, 0] / points[:, 2] + cx, fy * points[:, 1] / points[:, 2] + cy], -1)
    np.testing.assert_allclose(projected, camera.normalize(camera.project(points), normalization), atol=1e-12)


def test_cameras_from_focal_length_and_field_of_view():
    cam = Camera.from_fov(1920, 1080, 90.0)
    assert cam.focal_length == pytest.approx((960.0, 960.0)) and cam.center == (960.0, 540.0)
    assert Camera.from_focal_length(1080, 1920, 1400.0, center=(500.0, 900.0)).center == (500.0, 900.0)
    # Errors name the Python argument; the command line writes its flag instead.
    for call, python, flag in (
        (lambda: Camera.from_fov(100, 100, 0.0), "fov_deg must be a field of view", "--fov must be"),
        (lambda: Camera.from_focal_length(100, 100, -5.0), "focal_length must be a positive", "--focal-length must"),
        (
            lambda: Camera.from_fov(100, 100, 65.0, center=(np.nan, 1.0)),
            "center must be two finite numbers",
            "--principal-point must",
        ),
    ):
        with pytest.raises(JointposeError, match=f"^{python}") as error:
            call()
        assert flag_message(error.value).startswith(flag)


def test_root_trajectory_is_exact_for_exact_poses_and_close_for_a_slightly_wrong_one():
    frames = 30
    truth = np.stack([np.linspace(-1, 1, frames), np.full(frames, 0.2), np.linspace(3.0, 7.0, frames)], -1)
    poses = np.broadcast_to(BODY, (frames, 17, 3))
    camera = Camera.from_fov(1080, 1920, 70.0)
    pixels = camera.project(poses + truth[:, None])
    rays = normalize_keypoints(pixels, camera, "intrinsics")
    np.testing.assert_allclose(root_trajectory(poses, rays), truth, atol=1e-9)
    # A body predicted 3% too large puts the person 3% further away; noise of 2 px moves little.
    noisy = normalize_keypoints(pixels + np.random.default_rng(1).normal(0, 2.0, pixels.shape), camera, "intrinsics")
    depth = root_trajectory(poses * 1.03, noisy)[:, 2]
    np.testing.assert_allclose(depth / truth[:, 2], 1.03, atol=0.03)  # at 7 m the body is 190 px tall


def test_root_trajectory_weighs_each_joints_equations_by_its_weight():
    """Worked out by hand: two joints on the vertical ray u = 0 give T_x = -P_x each (0.1 m
    and 0.3 m apart), weighted 1 and 0.25: T_x = (1 * -0.1 + 0.25 * 0.3) / 1.25 = -0.02; their
    v equations hold exactly at T_y = 0, T_z = 2."""
    poses = np.array([[[0.1, 0.2, 0.0], [-0.3, -0.2, 0.0]]])
    rays = np.array([[[0.0, 0.1], [0.0, -0.1]]])
    np.testing.assert_allclose(root_trajectory(poses, rays, np.array([[1.0, 0.25]])), [[-0.02, 0.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(root_trajectory(poses, rays), [[0.1, 0.0, 2.0]], atol=1e-12)  # unweighted: the mean


def test_lifter_trajectory_from_the_camera_is_within_five_percent_in_metres():
    """A scene with known distance: the lifter's root, from its own predicted pose and the camera."""
    torch_model = TemporalModel([3, 3], channels=16).eval()
    lifter = Lifter(torch_model, normalization="intrinsics", flip_test=False)
    frames = 40
    truth = np.stack([np.zeros(frames), np.full(frames, 0.1), np.full(frames, 4.0)], -1)
    camera = Camera.from_focal_length(1920, 1080, 1400.0)
    pixels = camera.project(BODY + truth[:, None])
    # The network is untrained: hand it the true pose so the check is the geometry's alone.
    body = np.broadcast_to(BODY, (frames, 17, 3))
    root = lifter.predict_trajectory(pixels, camera=camera, poses=body)
    np.testing.assert_allclose(root, truth, atol=1e-9)
    # Without the camera: read through the one the poses assume (65 degrees over 1920 px, a
    # focal length of 1507 px), the person comes out about 1507 / 1400 times as far away and
    # as far off the axis in metres (smaller angles at a greater depth).
    assumed = Camera.from_fov(1920, 1080, DEFAULT_FOV_DEG)
    root = lifter.predict_trajectory(pixels, (1920, 1080), poses=body)
    np.testing.assert_allclose(root, root_trajectory(body, normalize_keypoints(pixels, assumed, "intrinsics")))
    np.testing.assert_allclose(root[:, 2], 4.0 * assumed.focal_length[0] / 1400.0, rtol=0.01)
    np.testing.assert_allclose(root[:, 1], 0.1, rtol=0.01)
    assert "65 degree" in lifter.assumed_camera_note()
    screen = Lifter(torch_model, normalization="screen", flip_test=False)
    with pytest.raises(JointposeError, match="intrinsics"):
        screen.predict_trajectory(pixels, (1920, 1080), poses=body)
    # Poses given are checked as an argument: a shape or a value the fit cannot take is named.
    with pytest.raises(JointposeError, match=r"poses must be \(frames, joints, 3\) metres, got shape \(40, 17, 2\)"):
        lifter.predict_trajectory(pixels, camera=camera, poses=body[..., :2])
    with pytest.raises(JointposeError, match=r"poses: NaN or infinite values in 1 of 40 frames \(3\)"):
        lifter.predict_trajectory(
            pixels, camera=camera, poses=np.where(np.arange(frames)[:, None, None] == 3, np.nan, body)
        )


def test_the_lifters_trajectory_is_filtered_over_80_ms_offline_and_40_ms_of_past_frames_causal():
    """One frame's rays fix the root's depth through the body's size in the image, so a
    per-frame fit takes each frame's keypoint noise many times over. An offline lifter filters
    rays and path with a Gaussian of 80 ms (4 frames at 50 fps): a steady walk across the image
    comes through exactly, and white noise, filtered twice (a Gaussian of 4 x sqrt(2) frames),
    keeps 1 / sqrt(2 sqrt(pi) 4 sqrt(2)) = 0.22 of its standard deviation. A causal lifter
    filters over past frames only, with the half of a Gaussian of 40 ms (2 frames): a walk
    comes through late by twice the half-Gaussian's mean delay, and no frame reads a later one."""
    frames = 2000
    truth = np.stack([np.linspace(-1.0, 1.0, frames), np.full(frames, 0.1), np.full(frames, 5.0)], -1)
    camera = Camera.from_focal_length(1920, 1080, 1400.0)
    body = np.broadcast_to(BODY, (frames, 17, 3))
    pixels = camera.project(body + truth[:, None])
    noisy = pixels + np.random.default_rng(3).normal(0.0, 2.0, pixels.shape)
    per_frame = root_trajectory(body, normalize_keypoints(noisy, camera, "intrinsics"))
    assert np.std((per_frame - truth)[:, 2]) > 0.01  # centimetres of depth from 2 px

    def kept(path: np.ndarray, inner: slice) -> float:
        return float(np.std((path - truth)[inner, 2]) / np.std((per_frame - truth)[inner, 2]))

    offline = Lifter(TemporalModel([3, 3], channels=16).eval(), normalization="intrinsics", flip_test=False)
    inner = slice(40, frames - 40)  # the two filters reach 24 frames in all; at the ends they repeat the end frames
    steady = offline.predict_trajectory(pixels, camera=camera, poses=body)
    np.testing.assert_allclose(steady[inner], truth[inner], atol=1e-9)
    filtered = offline.predict_trajectory(noisy, camera=camera, poses=body)
    assert kept(filtered, inner) == pytest.approx((2 * np.sqrt(np.pi) * 4 * np.sqrt(2)) ** -0.5, rel=0.15)

    causal = Lifter(TemporalModel([3, 3], channels=16, causal=True).eval(), normalization="intrinsics", flip_test=False)
    half = np.exp(-0.5 * (np.arange(7) / 2.0) ** 2)  # taps over the past 6 frames, 3 sigma
    half /= half.sum()
    delay = 2 * (np.arange(7) * half).sum()  # frames, both filters
    late = causal.predict_trajectory(pixels, camera=camera, poses=body)
    step = truth[1, 0] - truth[0, 0]
    np.testing.assert_allclose(late[20:, 0], truth[20:, 0] - delay * step, atol=1e-9)
    np.testing.assert_allclose(late[20:, 1:], truth[20:, 1:], atol=1e-9)
    filtered = causal.predict_trajectory(noisy, camera=camera, poses=body)
    both = np.convolve(half, half)
    assert kept(filtered, slice(20, None)) == pytest.approx(np.sqrt((both**2).sum()), rel=0.15)
    changed = noisy.copy()
    changed[1000:] += 50.0
    np.testing.assert_array_equal(causal.predict_trajectory(changed, camera=camera, poses=body)[:1000], filtered[:1000])


def test_intrinsics_model_assumes_a_camera_without_one_and_says_so():
    lifter = Lifter(TemporalModel([3], channels=8).eval(), normalization="intrinsics", flip_test=False)
    pixels = Camera.from_fov(640, 480, 65.0).project(np.broadcast_to(BODY + [0, 0, 3.0], (5, 17, 3)))
    assumed = lifter.predict(pixels, (640, 480))
    assert lifter.assumed_camera is not None and lifter.assumed_camera.focal_length[0] == pytest.approx(
        320 / np.tan(np.radians(32.5))
    )
    assert "assumed a 65 degree" in lifter.assumed_camera_note()
    given = lifter.predict(pixels, camera=Camera.from_fov(640, 480, 65.0))
    assert lifter.assumed_camera is None and lifter.assumed_camera_note() is None
    np.testing.assert_allclose(given, assumed, atol=1e-6)
    rays = normalize_keypoints(pixels, Camera.from_fov(640, 480, 65.0), "intrinsics")
    np.testing.assert_allclose(lifter.predict(rays, normalized=True), given, atol=1e-6)
    with pytest.raises(JointposeError, match="differs"):
        lifter.predict(pixels, (640, 481), camera=Camera.from_fov(640, 480, 65.0))


def test_the_assumed_camera_has_the_same_focal_length_held_either_way():
    """A phone's lens does not change when it is turned: 65 degrees over the longer side, so a
    portrait video gets the focal length of a landscape one (960 / tan 32.5 = 1507 px for
    1920 x 1080), not the 848 px that 65 degrees over its 1080 px width would give."""
    focal = 960 / np.tan(np.radians(32.5))
    for size in [(1920, 1080), (1080, 1920)]:
        camera = Camera.assumed(*size)
        np.testing.assert_allclose(camera.focal_length, [focal, focal])
        np.testing.assert_allclose(camera.center, np.array(size) / 2)
    sliver = Camera.assumed(2, 100_000)  # 65 degrees over 100000 px would be 1 degree over 2
    assert sliver.focal_length[0] == pytest.approx(1 / np.tan(np.radians(0.5)))
    lifter = Lifter(TemporalModel([3], channels=8).eval(), normalization="intrinsics", flip_test=False)
    pixels = Camera.assumed(1080, 1920).project(np.broadcast_to(BODY + [0, 0, 3.0], (5, 17, 3)))
    lifter.predict(pixels, (1080, 1920))
    assert lifter.assumed_camera.focal_length[0] == pytest.approx(focal)
    assert "65 degree field of view over the image's longer side (focal length 1507 px)" in lifter.assumed_camera_note()
    lifter.predict(np.broadcast_to(pixels[:, :, :2] / [540, 960] * [1, 50_000], (5, 17, 2)), (2, 100_000))
    assert lifter.assumed_camera_note() == (
        "no focal length or field of view given (--focal-length, --fov): assumed the narrowest field of view an image 2 px wide admits "
        "(focal length 115 px); depths scale with the true one"
    )


# --- random cameras ---------------------------------------------------------------------


def _walk(frames: int = 60) -> np.ndarray:
    """World poses (z up) of a body walking 2 m along x, root 1 m high."""
    upright = np.stack([BODY[:, 0], BODY[:, 2], -BODY[:, 1]], -1)  # camera axes -> world (z up)
    root = np.stack([np.linspace(-1, 1, frames), np.zeros(frames), np.ones(frames)], -1)
    return upright + root[:, None]


def test_random_cameras_keep_the_person_in_front_and_mostly_in_frame():
    rng, ranges, world = np.random.default_rng(3), CameraRanges(), _walk()
    inside = []
    for _ in range(300):
        camera = draw_camera(rng, ranges, world[:, 0].mean(0), 1.0)
        eye = np.array(camera.translation)
        assert 2.0 - 1e-9 <= np.hypot(*(eye[:2] - world[:, 0].mean(0)[:2])) <= 10.0 + 1e-9
        assert 0.3 <= eye[2] <= 3.0 and (camera.res_w, camera.res_h) in ranges.image_sizes
        fov = np.degrees(2 * np.arctan(camera.res_w / 2 / camera.focal_length[0]))
        assert 40.0 - 1e-6 <= fov <= 100.0 + 1e-6
        forward = camera.rotation.apply([0.0, 0.0, 1.0])
        assert -45.0 - 1e-6 <= np.degrees(np.arcsin(forward[2])) <= 15.0 + 1e-6
        _, joints, share = seen_through(world, camera, rng, fps=50.0, noise=None)
        assert joints[..., 2].min() > 0.3  # in front of the camera
        inside.append(share.mean())
    assert np.mean(inside) > 0.95 and np.mean(np.array(inside) == 1.0) > 0.8


def test_cameras_back_off_from_motion_that_reaches_towards_them():
    """Limbs far from the root (a dancer's arms, a fall) never come within ``clearance``."""
    rng = np.random.default_rng(4)
    world = _walk(50) + np.where(np.arange(17)[None, :, None] == 16, [1.8, 0.0, 0.5], 0.0)  # a long reach
    centre, extent = placement(world)
    assert extent > 2.5  # the reach counts, not only the root's path
    for _ in range(200):
        camera = keep_in_front(draw_camera(rng, CameraRanges(pitch=(-45.0, -45.0)), centre, extent), world, 1.0)
        assert camera.world_to_camera(world)[..., 2].min() >= 1.0 - 1e-9


def test_camera_draws_are_reproducible():
    one = [draw_camera(np.random.default_rng(5), CameraRanges(), np.zeros(3)) for _ in range(2)]
    assert one[0] == one[1]
    assert draw_camera(np.random.default_rng(6), CameraRanges(), np.zeros(3)) != one[0]
    rig = RandomRig(3, CameraRanges(), seed=2)
    assert rig.cameras({"S1": {"a": _walk()}}) == rig.cameras({"S1": {"a": _walk()}})
    with pytest.raises(JointposeError, match=r"^count: the number of cameras must be 1 to 64, got 0$"):
        RandomRig(0).cameras({"S1": {"a": _walk()}})


def test_camera_ranges_parse_and_refuse():
    ranges = CameraRanges.parse("distance=3:4, fov=60:70,distortion=0.1")
    assert ranges.distance == (3.0, 4.0) and ranges.fov == (60.0, 70.0) and ranges.distortion == 0.1
    assert CameraRanges.parse("") == CameraRanges()
    for bad, match in (("distance=5:2", "distance"), ("fov=60", "LOW:HIGH"), ("zoom=1:2", "NAME"), ("aim=x", "aim")):
        with pytest.raises(JointposeError, match=match):
            CameraRanges.parse(bad)


def test_bad_camera_ranges_on_the_command_line_are_one_line(tmp_path, capsys):
    train = cli("train", "--random-cameras fov=60", data_dir=tmp_path, checkpoint=tmp_path / "ck")
    assert main(train) == 2
    assert capsys.readouterr().err == "jointpose train: error: --random-cameras: fov must be LOW:HIGH, got '60'\n"


@pytest.fixture
def sequences(h36m_dir):
    return load_dataset(h36m_dir, "gt", ["S1"], normalization="intrinsics").sequences


def test_random_views_keep_2d_and_3d_consistent_through_the_new_camera(sequences):
    ranges = CameraRanges(noise=0.0, offscreen_noise=0.0, distortion=0.1)
    views = random_views(sequences, np.random.default_rng(1), ranges, fps=50.0)
    for seq, view in zip(sequences, views):
        assert view.camera != seq.camera and view.camera.res_w in (1920, 1080, 1280, 640)
        camera_space = view.poses_3d.astype(np.float64) + view.trajectory[:, None]
        np.testing.assert_allclose(view.keypoints, camera_space[..., :2] / camera_space[..., 2:], atol=1e-5)
        # the same motion: world positions agree
        world_then = seq.camera.camera_to_world(seq.poses_3d + seq.trajectory[:, None])
        np.testing.assert_allclose(view.camera.camera_to_world(camera_space), world_then, atol=1e-4)


def test_random_views_never_put_a_joint_near_the_camera(sequences):
    views = random_views(sequences, np.random.default_rng(0), CameraRanges(distance=(0.5, 0.6)), fps=50.0)
    for view in views:
        assert (view.poses_3d + view.trajectory[:, None])[..., 2].min() >= 1.0 - 1e-5


def test_no_clearance_still_keeps_every_seen_point_half_a_metre_away(sequences, tmp_path):
    """``clearance=0`` with cameras drawn at arm's length: the drawn cameras move back to the
    builder's 0.5 m, face and toe points included, so nothing is refused part way."""
    close = CameraRanges(distance=(0.5, 0.5), pitch=(-89.0, 89.0), aim=1.0, clearance=0.0)
    for layout in ("h36m", "blazepose"):
        views = random_views(sequences, np.random.default_rng(0), close, fps=50.0, input_layout=layout)
        for seq, view in zip(sequences, views):
            world = seq.camera.camera_to_world(seq.poses_3d + seq.trajectory[:, None].astype(np.float64))
            seen = np.concatenate([world, blazepose_keypoints(world)], 1) if layout == "blazepose" else world
            assert view.camera.world_to_camera(seen)[..., 2].min() >= 0.5
    motion = {"S1": {"walk": _walk(), "reach": _walk() + [0.0, 0.0, 0.3]}}
    rig = RandomRig(4, close, seed=1)
    for camera in rig.cameras(motion, "blazepose")["S1"]:
        for world in motion["S1"].values():
            assert camera.world_to_camera(blazepose_keypoints(world))[..., 2].min() >= 0.5
    paths = write_h36m_dataset(tmp_path, motion, fps=50.0, cameras=rig, input_layout="blazepose")
    assert np.load(paths["noisy"], allow_pickle=True)["positions_2d"].item()["S1"]["walk"][3].shape == (60, 17, 2)


def test_a_camera_nearer_than_half_a_metre_is_refused_naming_clip_and_camera(tmp_path):
    ring = CameraRing(count=2, distance=0.5, height=1.0, target_height=1.0)
    near = (
        r"^S1/walk, camera \d: the person comes within 0.5 m of \(or behind\) the camera; move the cameras further out$"
    )
    with pytest.raises(JointposeError, match=near):
        write_h36m_dataset(tmp_path, {"S1": {"walk": _walk()}}, fps=50.0, cameras=ring)
    assert not any(tmp_path.iterdir())
    # The clips are checked before any camera is drawn around them, whatever the rig.
    broken = _walk()
    broken[5, 7] = np.nan
    for rig in (ring, RandomRig(2), None):
        for motion, match in (
            ({"S1": {"walk": broken}}, r"^S1/walk: motion holds NaN or inf values$"),
            ({"S1": {}}, r"^S1: no clips$"),
            ({"S1": {"walk": _walk()[:1]}}, r"^S1/walk: 1 frame\(s\) at 50 fps; a clip needs at least 2"),
        ):
            with pytest.raises(JointposeError, match=match):
                write_h36m_dataset(tmp_path, motion, fps=50.0, cameras=rig)
    camera = draw_camera(np.random.default_rng(0), CameraRanges(), np.zeros(3))
    for layout in ("h36m", "coco"):  # NaN anywhere, not only where the nearest point is sought
        with pytest.raises(JointposeError, match=r"^clip: the motion holds NaN or inf values$"):
            in_camera(broken, detector_points(broken, layout), camera, "clip")


def test_noise_scales_with_the_person_in_the_image():
    world, noise = _walk(200), NoiseModel(jitter=2.0, drift=0.0, outlier_rate=0.0)
    rng = np.random.default_rng(2)
    for _ in range(5):
        camera = draw_camera(rng, CameraRanges(), world[:, 0].mean(0), 1.0)
        exact, joints, _ = seen_through(world, camera, rng, fps=50.0, noise=None)
        noisy, _, _ = seen_through(world, camera, rng, fps=50.0, noise=noise, offscreen_noise=0.0)
        px_per_m = camera.focal_length[0] / joints[:, 0, 2].mean()
        assert np.std(noisy - exact) == pytest.approx(2.0 * px_per_m / (1150.0 / 5.0), rel=0.1)


def _config(data, ckpt, *extra) -> TrainConfig:
    flags = "-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 16 -e 1 --no-progress"
    return train_config(build_parser().parse_args([*cli("train", flags, data_dir=data, checkpoint=ckpt), *extra]))


def test_trainer_sees_new_cameras_each_epoch_reproducibly(h36m_dir, tmp_path):
    trainer = Trainer(_config(h36m_dir, tmp_path / "a", "--random-cameras", "fov=50:60"))
    assert trainer.config.random_cameras == CameraRanges(fov=(50.0, 60.0))
    plain = trainer.training_windows()
    epoch0, again, epoch1 = (trainer.training_windows(e) for e in (0, 0, 1))
    assert epoch0.singles.inputs.shape == plain.singles.inputs.shape  # same windows, same compute
    assert not np.allclose(epoch0.singles.inputs, plain.singles.inputs)
    np.testing.assert_array_equal(epoch0.singles.inputs, again.singles.inputs)
    assert not np.allclose(epoch0.singles.inputs, epoch1.singles.inputs)
    # root-relative 3D in a new camera: rotated, same bone lengths
    np.testing.assert_allclose(
        np.linalg.norm(epoch0.singles.targets[:, 1], axis=-1),
        np.linalg.norm(plain.singles.targets[:, 1], axis=-1),
        atol=1e-5,
    )


def test_normalization_defaults_per_mode_and_is_recorded(h36m_dir, tmp_path):
    assert Trainer(_config(h36m_dir, tmp_path / "b", "--no-constraints")).config.normalization == NORMALIZATION_BASELINE
    joint = Trainer(_config(h36m_dir, tmp_path / "c"))
    assert joint.config.normalization == NORMALIZATION_CONSTRAINTS == "intrinsics"
    assert joint.train_data.sequences[0].normalization == "intrinsics"
    joint.fit()
    Lifter.load(tmp_path / "c").save(tmp_path / "c.safetensors")
    assert Lifter.load(tmp_path / "c.safetensors").normalization == "intrinsics"
    assert Lifter.load(tmp_path / "c").normalization == "intrinsics"
    flags = "-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 16 -e 2 --resume --normalization screen"
    code = main(cli("train", flags, data_dir=h36m_dir, checkpoint=tmp_path / "c"))
    assert code == 2


def test_ablation_compares_both_models_at_one_normalization(h36m_dir, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        Trainer, "fit", lambda self: seen.append(self.config.normalization) or {"average": {}, "actions": {}}
    )
    monkeypatch.setattr("jointpose.training.ablation.format_comparison", lambda a, b: "")
    run_ablation(dataclasses.replace(_config(h36m_dir, tmp_path / "d"), epochs=1), tmp_path / "abl")
    assert seen == ["intrinsics", "intrinsics"]
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())["config"]["normalization"] == "intrinsics"


def test_an_ablation_testing_on_a_training_person_says_so_once(h36m_dir, tmp_path, monkeypatch):
    """Every run of an ablation (two per seed) has the same subjects: one warning, not one per run."""
    import warnings

    from jointpose.errors import JointposeWarning
    from jointpose.training.ablation import run_seeds

    monkeypatch.setattr(Trainer, "fit", lambda self: {"average": {"p1": 1.0}, "actions": {}})
    monkeypatch.setattr("jointpose.training.ablation.format_comparison", lambda a, b: "")
    config = dataclasses.replace(_config(h36m_dir, tmp_path / "d"), epochs=1, subjects_test=("S5", "S9"))
    for run, out in ((run_ablation, "abl"), (lambda c, o: run_seeds(c, o, (0, 1)), "seeds")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(config, tmp_path / out)
        noted = [str(w.message) for w in caught if issubclass(w.category, JointposeWarning)]
        assert [m for m in noted if "also in" in m] == [
            "subjects_test S5: also in subjects_train; scores on people the model trained on say nothing about "
            "new people (hold them out: docs/validation.md)"
        ]


def test_an_ablation_notes_idle_settings_once_and_not_the_baselines(h36m_dir, tmp_path, monkeypatch):
    """A causal ablation's alignment with the 2D idles in both runs: one warning. The baseline
    leaves the constraint settings idle on purpose: none."""
    import warnings

    from jointpose.training.ablation import run_seeds
    from jointpose.training.config import IdleSettingsWarning

    monkeypatch.setattr(Trainer, "fit", lambda self: {"average": {"p1": 1.0}, "actions": {}})
    monkeypatch.setattr("jointpose.training.ablation.format_comparison", lambda a, b: "")
    config = dataclasses.replace(_config(h36m_dir, tmp_path / "d"), epochs=1, causal=True, align_2d=0.5, chunk=8)
    for run, out in ((run_ablation, "abl"), (lambda c, o: run_seeds(c, o, (0, 1)), "seeds")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(config, tmp_path / out)
        assert [str(w.message) for w in caught if issubclass(w.category, IdleSettingsWarning)] == [
            "align_2d: no effect with causal=True"
        ]


def test_infer_with_focal_length_writes_the_trajectory_of_its_poses(tmp_path):
    camera = Camera.from_focal_length(1920, 1080, 1500.0)
    frames = 30
    pixels = camera.project(np.broadcast_to(BODY + [0.0, 0.0, 4.0], (frames, 17, 3)))
    np.save(tmp_path / "kp.npy", pixels)
    out = tmp_path / "out.npz"
    args = cli("infer", "--image-size 1920 1080 --no-progress", tmp_path / "kp.npy", o=out)
    assert main([*args, "--focal-length", "1500"]) == 0
    written = np.load(out)
    expected = root_trajectory(written["poses_3d"], normalize_keypoints(pixels, camera, "intrinsics"))
    np.testing.assert_allclose(written["trajectory"], expected, rtol=1e-5)
    # Without the intrinsics the bundled model reads the keypoints through the camera it
    # assumes, and the trajectory follows through the same camera.
    assert main(args) == 0
    written = np.load(out)
    assumed = Camera.from_fov(1920, 1080, DEFAULT_FOV_DEG)
    expected = root_trajectory(written["poses_3d"], normalize_keypoints(pixels, assumed, "intrinsics"))
    np.testing.assert_allclose(written["trajectory"], expected, rtol=1e-5)
    with pytest.raises(SystemExit, match="2"):  # refused as the flags are read
        main([*args, "--focal-length", "1500", "--fov", "60"])
    assert main([*args, "--principal-point", "900", "500"]) == 2


def test_data_build_with_random_cameras_loads_back(tmp_path, cmu_mocap, capsys):
    (tmp_path / "bvh").mkdir()
    (tmp_path / "bvh" / "003").symlink_to(cmu_mocap / "003")  # the smallest person folder
    out = tmp_path / "data"
    build = cli("data build", "--cameras random", bvh=tmp_path / "bvh", out=out)
    assert main([*build, "--ring-count", "3", "--camera-ranges", "fov=50:90", "--subjects", "003=S6"]) == 0
    other = cli("data build", "--cameras random --camera-ranges fov=50", bvh=tmp_path / "bvh", out=tmp_path / "other")
    assert main(other) == 2
    assert capsys.readouterr().err.strip().endswith("error: --camera-ranges: fov must be LOW:HIGH, got '50'")
    for cameras in ("random", "ring"):
        none = cli("data build", f"--cameras {cameras} --ring-count 0", bvh=tmp_path / "bvh", out=tmp_path / "none")
        assert main(none) == 2
        assert capsys.readouterr().err.strip().endswith("--ring-count: the number of cameras must be 1 to 64, got 0")
    assert not (tmp_path / "none").exists()
    data = load_dataset(out, "gt", ["S6"], normalization="intrinsics")
    cameras = {s.camera for s in data.sequences}
    assert len(cameras) == 3
    assert all(50 <= np.degrees(2 * np.arctan(c.res_w / 2 / c.focal_length[0])) <= 90 for c in cameras)
    for seq in data.sequences:
        camera_space = seq.poses_3d.astype(np.float64) + seq.trajectory[:, None]
        np.testing.assert_allclose(seq.keypoints, camera_space[..., :2] / camera_space[..., 2:], atol=1e-4)


def test_camera_constructors_refuse_what_is_not_a_size_or_a_number_naming_it():
    from jointpose.geometry.cameras import Camera

    for call, message in (
        (lambda: Camera.from_fov(1920, 1080, "60"), "fov_deg must be a field of view in degrees in [1, 179], got '60'"),
        (lambda: Camera.from_focal_length(1920, 1080, "1500"), "focal_length must be a positive number of pixels"),
        (
            lambda: Camera.from_focal_length(1920, 1080, [1500, 1500, 1]),
            "focal_length must be two positive numbers of pixels (fx, fy)",
        ),
        (lambda: Camera.from_focal_length(1920, 1080, 1500, center=(1, 2, 3)), "center must be two finite numbers"),
        (lambda: Camera.from_focal_length(1920.7, 1080, 1500), "image size must be positive whole numbers"),
        (lambda: Camera.assumed(-5, 10), "image size must be positive whole numbers of pixels (at least 2), got -5"),
    ):
        with pytest.raises(JointposeError) as info:
            call()
        assert str(info.value).startswith(message), str(info.value)
    with pytest.raises(JointposeError, match="^image size must be two whole numbers of pixels .* got '1920' '1080'"):
        Camera.from_fov("1920", "1080", 60)
    camera = Camera.from_focal_length(1920.0, 1080, (1500, 1501), center=(950, 500))
    assert (camera.res_w, camera.focal_length, camera.center) == (1920, (1500.0, 1501.0), (950.0, 500.0))
    # One number however it comes: numpy's, a 0-d array or tensor; a pair as a tensor.
    import torch

    assert Camera.from_fov(1920, 1080, np.array(60.0)) == Camera.from_fov(1920, 1080, 60.0)
    given = Camera.from_focal_length(np.int64(1920), 1080, torch.tensor(1500.0), center=torch.tensor([950.0, 500.0]))
    assert given == Camera.from_focal_length(1920, 1080, 1500.0, center=(950.0, 500.0))
