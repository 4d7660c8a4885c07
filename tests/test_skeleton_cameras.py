import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.calibrations import cameras_from_schema, h36m_cameras
from jointpose.geometry.cameras import Camera, image_coordinates, normalize_screen_coordinates

SHARED_CAMERAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m_cameras.json"


def test_layout_tables():
    assert len(skeleton.JOINT_NAMES) == len(skeleton.PARENTS) == 17
    assert skeleton.PARENTS[11] == skeleton.PARENTS[14] == 8  # shoulders hang from the thorax
    assert all(skeleton.PARENTS[j] < j for j in range(1, 17))
    for left, right in zip(skeleton.LEFT_JOINTS, skeleton.RIGHT_JOINTS):
        assert skeleton.JOINT_NAMES[left][1:] == skeleton.JOINT_NAMES[right][1:]
        assert skeleton.JOINT_NAMES[left][0] == "L" and skeleton.JOINT_NAMES[right][0] == "R"


def test_32_to_17_reduction_and_back():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(4, 32, 3))
    reduced = skeleton.reduce_32_to_17(full)
    assert reduced.shape == (4, 17, 3)
    assert np.array_equal(reduced[:, 7], full[:, 12])  # Spine is joint 12 of 32
    expanded = skeleton.expand_17_to_32(reduced)
    assert np.array_equal(skeleton.reduce_32_to_17(expanded), reduced)
    assert np.array_equal(expanded[:, 4], expanded[:, 3])  # toe copies its parent (the foot)


def test_flip_twice_is_identity_and_swaps_sides():
    poses = np.random.default_rng(1).normal(size=(3, 17, 3))
    flipped = skeleton.flip_poses(poses)
    assert np.allclose(flipped[:, 4, 0], -poses[:, 1, 0])  # LHip <- mirrored RHip
    assert np.array_equal(skeleton.flip_poses(flipped), poses)


def test_builtin_calibration_matches_shared_file():
    cams = h36m_cameras()
    assert set(cams) == {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}
    assert all(len(v) == 4 for v in cams.values())
    if not SHARED_CAMERAS.is_file():
        pytest.skip(f"{SHARED_CAMERAS} absent")
    shared = json.loads(SHARED_CAMERAS.read_text())
    assert cams["S9"][2].focal_length == tuple(shared["intrinsic"][2]["focal_length"])
    assert np.allclose(np.array(cams["S11"][0].translation) * 1000, shared["extrinsic"]["S11"][0]["translation"])
    assert cameras_from_schema(shared, "shared") == cams  # the same schema, from a dataset's own calibration


def test_camera_schema_errors_name_the_source():
    with pytest.raises(JointposeError, match="cams.json"):
        cameras_from_schema({"intrinsic": [], "extrinsic": {"S1": [{"orientation": [1, 0]}]}}, "cams.json")
    with pytest.raises(JointposeError, match="cams.json: malformed"):
        cameras_from_schema({"intrinsic": [], "extrinsic": [[]]}, "cams.json")  # a list where subjects should be
    intrinsic = {"id": "1", "res_w": 0, "res_h": 1000, "focal_length": [1000, 1000], "center": [0, 0]}
    extrinsic = {"S1": [{"orientation": [1, 0, 0, 0], "translation": [0, 0, 0]}]}
    with pytest.raises(JointposeError, match="cams.json: camera 1: resolution must be positive"):
        cameras_from_schema({"intrinsic": [intrinsic], "extrinsic": extrinsic}, "cams.json")
    for text in (["1145.0", 1145.0], [True, 1145.0]):  # numbers must be JSON numbers
        given = dict(intrinsic, res_w=1000, focal_length=text)
        with pytest.raises(JointposeError, match=r"cams.json: malformed .*expected 2 finite numbers"):
            cameras_from_schema({"intrinsic": [given], "extrinsic": extrinsic}, "cams.json")
    assert cameras_from_schema({"intrinsic": [dict(intrinsic, res_w=1000)], "extrinsic": extrinsic}, "cams.json")
    # Intrinsics the command line would refuse: a field of view of nearly 0 degrees (or 180),
    # a principal point far off the image, a resolution that is not a whole number.
    for change, needle in (
        ({"focal_length": [1e308, 1e308]}, r"camera 1: focal length must be 4.363 to 5.729e\+04 pixels"),
        ({"focal_length": [1, 1]}, r"camera 1: focal length must be 4.363 to"),
        ({"center": [1e12, 1e12]}, r"camera 1: principal point must lie within one image size of the 1000x1000"),
        ({"res_w": 1000.7}, r"camera 1: resolution must be positive whole pixels, got 1000.7x1000"),
        ({"res_w": "1000"}, r"camera 1: resolution must be positive whole pixels, got '1000'x1000"),
        ({"res_w": True}, r"camera 1: resolution must be positive whole pixels, got Truex1000"),
    ):
        given = dict(intrinsic, res_w=1000) | change
        with pytest.raises(JointposeError, match="cams.json: " + needle):
            cameras_from_schema({"intrinsic": [given], "extrinsic": extrinsic}, "cams.json")


def test_projection_of_known_point():
    # No distortion: pinhole u = f * x / z + c.
    cam = Camera("c", 1000, 1000, focal_length=(1000.0, 1000.0), center=(500.0, 500.0))
    assert np.allclose(cam.project(np.array([0.5, -0.25, 5.0])), [600.0, 450.0])
    # Radial distortion k1 scales the normalised point by 1 + k1 r^2.
    cam = Camera(
        "c", 1000, 1000, focal_length=(1000.0, 1000.0), center=(500.0, 500.0), radial_distortion=(0.1, 0.0, 0.0)
    )
    r2 = 0.1**2 + 0.05**2
    assert np.allclose(
        cam.project(np.array([0.5, -0.25, 5.0])), [500 + 100 * (1 + 0.1 * r2), 500 - 50 * (1 + 0.1 * r2)]
    )
    # Tangential (Brown-Conrady): x += 2 p1 x y + p2 (r^2 + 2 x^2); y += p1 (r^2 + 2 y^2) + 2 p2 x y.
    cam = Camera("c", 1000, 1000, focal_length=(1000.0, 1000.0), center=(0.0, 0.0), tangential_distortion=(0.01, 0.02))
    x, y = 0.1, -0.05
    r2 = x * x + y * y
    expected = [
        1000 * (x + 2 * 0.01 * x * y + 0.02 * (r2 + 2 * x * x)),
        1000 * (y + 0.01 * (r2 + 2 * y * y) + 2 * 0.02 * x * y),
    ]
    assert np.allclose(cam.project(np.array([x, y, 1.0])), expected)
    for depth in (-1.0, 0.0, np.nan):  # NaN: no depth at all (it passed as pixels of NaN)
        with pytest.raises(JointposeError, match=r"behind the camera \(z <= 0\) or of NaN depth"):
            cam.project(np.array([0.0, 0.0, depth]))
    # Human3.6M's convention: x' = x (radial + p1 x + p2 y) + p1 r^2, y' likewise with p2.
    h36m = dataclasses.replace(cam, distortion_model="h36m")
    tangent = 0.01 * x + 0.02 * y
    expected = [1000 * (x * (1 + tangent) + 0.01 * r2), 1000 * (y * (1 + tangent) + 0.02 * r2)]
    assert np.allclose(h36m.project(np.array([x, y, 1.0])), expected)
    assert not np.allclose(h36m.project(np.array([x, y, 1.0])), cam.project(np.array([x, y, 1.0])))
    # Without tangential terms the two conventions are one model.
    radial = dataclasses.replace(cam, tangential_distortion=(0.0, 0.0), radial_distortion=(0.1, -0.02, 0.003))
    points = np.random.default_rng(0).uniform([-1, -1, 2], [1, 1, 6], (50, 3))
    assert np.allclose(dataclasses.replace(radial, distortion_model="h36m").project(points), radial.project(points))
    with pytest.raises(JointposeError, match="camera c: distortion_model must be one of opencv, h36m"):
        dataclasses.replace(cam, distortion_model="fisheye")


def test_h36m_calibration_projects_in_its_own_convention():
    """Files in the h36m_cameras.json schema (the built-in calibration too) use Human3.6M's
    tangential convention unless a camera names another; written cameras say theirs."""
    camera = h36m_cameras()["S9"][1]
    assert camera.distortion_model == "h36m"
    # On this camera the two conventions differ by about a pixel towards the image corners
    # (measured: 1.07 px) and not at all on the optical axis.
    points = np.array([[-1.5, -1.5, 4.0], [1.5, 1.5, 4.0], [0.0, 0.0, 4.0]])  # camera space, metres
    gap = np.abs(camera.project(points) - dataclasses.replace(camera, distortion_model="opencv").project(points))
    assert 0.5 < gap.max() < 2.0 and gap[2].max() < 1e-9
    schema = {
        "intrinsic": [camera.to_dict()],
        "extrinsic": {
            "S1": [{"orientation": list(camera.orientation), "translation": [t * 1000 for t in camera.translation]}]
        },
    }
    assert cameras_from_schema(schema, "cams.json")["S1"][0] == camera
    schema["intrinsic"][0]["distortion_model"] = "opencv"
    assert cameras_from_schema(schema, "cams.json")["S1"][0].distortion_model == "opencv"
    del schema["intrinsic"][0]["distortion_model"]
    assert cameras_from_schema(schema, "cams.json")["S1"][0].distortion_model == "h36m"
    schema["intrinsic"][0]["distortion_model"] = "polynomial"
    with pytest.raises(JointposeError, match="cams.json: camera 55011271: distortion_model must be"):
        cameras_from_schema(schema, "cams.json")


def test_world_camera_round_trip_and_orientation():
    cam = h36m_cameras()["S1"][0]
    points = np.random.default_rng(2).normal(size=(10, 3))
    assert np.allclose(cam.camera_to_world(cam.world_to_camera(points)), points)
    # The camera centre is the origin of camera space; the subject (near the world origin) is in front.
    assert np.allclose(cam.world_to_camera(np.array(cam.translation)), 0.0, atol=1e-9)
    assert cam.world_to_camera(np.array([0.0, 0.0, 1.0]))[2] > 3.0


def _matrix_of(w: float, x: float, y: float, z: float) -> np.ndarray:
    """Rotation matrix of the unit quaternion w + xi + yj + zk (the textbook formula)."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_orientation_is_w_first_and_matches_the_textbook_matrix():
    # A quarter turn about world z (w = cos 45, z = sin 45) takes the camera's x axis to world y.
    turn = Camera(
        "t",
        10,
        10,
        (1.0, 1.0),
        (5.0, 5.0),
        orientation=(np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)),
        translation=(1.0, 2.0, 3.0),
    )
    assert np.allclose(turn.camera_to_world(np.array([1.0, 0.0, 0.0])), [1.0, 3.0, 3.0], atol=1e-12)
    points = np.random.default_rng(5).normal(size=(4, 6, 3))  # any leading shape
    for cameras in h36m_cameras().values():
        for cam in cameras:
            matrix, centre = _matrix_of(*cam.orientation), np.array(cam.translation)
            assert np.allclose(cam.camera_to_world(points), points @ matrix.T + centre, atol=1e-12)
            assert np.allclose(cam.world_to_camera(points), (points - centre) @ matrix, atol=1e-12)


def test_screen_normalisation():
    pixels = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    norm = normalize_screen_coordinates(pixels, 1000, 1002)
    assert np.allclose(norm[:, 0], [-1, 1, 0])
    assert np.allclose(norm[2], [0.0, 0.0])
    assert np.allclose(norm[1, 1] - norm[0, 1], 1002 / 1000 * 2)  # aspect ratio kept
    assert np.allclose(image_coordinates(norm, 1000, 1002), pixels)


def test_screen_normalisation_of_integer_pixels():
    pixels = np.array([[0, 0], [1920, 1080], [960, 540]])
    norm = normalize_screen_coordinates(pixels, 1920, 1080)
    assert np.allclose(norm, normalize_screen_coordinates(pixels.astype(float), 1920, 1080))
    assert np.allclose(norm[2], [0.0, 0.0]) and np.allclose(norm[0], [-1.0, -1080 / 1920])
    assert np.allclose(image_coordinates(np.zeros((1, 2), int), 1920, 1080), [[960, 540]])
