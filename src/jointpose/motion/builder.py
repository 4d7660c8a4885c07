"""Build Human3.6M-format datasets from 3D motion: cameras, projection, detector-like noise.

Input is motion per subject and action as (frames, 17, 3) world positions in metres, Z up
(from BVH files via :mod:`jointpose.motion.bvh` and :mod:`jointpose.motion.rigs`, or from the synthetic
source). Each clip is re-centred in the capture area, optionally rescaled per subject
(body proportions), seen by every camera, and written as VideoPose3D's files:

* ``data_3d_h36m.npz`` - ``positions_3d``: subject -> action -> (frames, 32, 3) metres, the
  15 joints outside the 17 copying their parent;
* ``data_2d_h36m_gt.npz`` - exact projections, (frames, 17, 2) pixels per camera;
* ``data_2d_h36m_noisy.npz`` - the same with detector-like noise (white jitter, slow drift,
  rare outliers), seeded.

Every file also holds ``fps``, the frame rate (VideoPose3D's loader ignores extra keys).

With the Human3.6M rig, subjects must carry Human3.6M names (S1, S5, ...) because the
calibration is looked up by name. With a ring of virtual cameras the calibration is
written into every file under ``cameras`` (a JSON string in the schema of
``h36m_cameras.json``) and jointpose reads it from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from jointpose.data.h36m import INPUT_LAYOUTS, TEST_SUBJECTS, TRAIN_SUBJECTS
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.calibrations import cameras_schema, h36m_cameras, subject_cameras_schema
from jointpose.geometry.cameras import Camera, check_focal_length, check_image_size
from jointpose.safeio import atomic_folder, check_fps, check_limit, check_path, is_real_number

H36M_SUBJECTS = TRAIN_SUBJECTS + TEST_SUBJECTS
MAX_RING_CAMERAS = 64
MIN_CLIP_FRAMES = 2  # motion needs two frames (velocity); shorter clips are refused
MIN_DEPTH = 0.5  # metres: the nearest a projected point may come to its camera (nearer or behind is refused)
# A ring camera's distance from the centre of the capture area, and its and its target's
# heights (metres): nearer than MIN_DEPTH sees nobody, and within these the look-at
# geometry stays well conditioned.
RING_DISTANCE_M = (MIN_DEPTH, 1000.0)
RING_HEIGHT_M = (-1000.0, 1000.0)
# Detector noise: jitter, drift and outlier radius (pixels), drift correlation time (seconds).
NOISE_MAX_PX = 10_000.0
NOISE_MAX_DRIFT_TIME_S = 3600.0
METADATA = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [list(skeleton.LEFT_JOINTS), list(skeleton.RIGHT_JOINTS)],
}


def _check_range(value: float, low: float, high: float, field: str, what: str) -> None:
    """Raise a :class:`JointposeError` naming ``field`` unless ``value`` is a number in [low, high]
    (``what``: the quantity and its unit, as the message reads it)."""
    if not (is_real_number(value) and low <= value <= high):
        raise JointposeError(
            "{0}: {what} must be in [{low:g}, {high:g}], got {value}",
            fields=(field,),
            what=what,
            low=low,
            high=high,
            value=value,
        )


def check_camera_count(count: int) -> None:
    """Raise a :class:`JointposeError` naming ``count`` unless it is 1 to ``MAX_RING_CAMERAS``."""
    if not 1 <= count <= MAX_RING_CAMERAS:
        raise JointposeError(
            "{0}: the number of cameras must be 1 to {limit}, got {count}",
            fields=("count",),
            limit=MAX_RING_CAMERAS,
            count=count,
        )


@dataclass(frozen=True)
class CameraRing:
    """``count`` cameras evenly spaced on a circle around the capture area, aimed at its centre.

    Distances and heights in metres, focal length in pixels, image size in pixels. Checked
    when made: ``distance`` within :data:`RING_DISTANCE_M`, ``height`` and ``target_height``
    within :data:`RING_HEIGHT_M`, the image size as every image's, and the focal length
    within :func:`jointpose.geometry.cameras.focal_length_range` of the width (a horizontal
    field of view of 1 to 179 degrees). Errors name the ``data build`` option's destination
    (``ring_distance``, ``ring_height``, ``focal_length``).
    """

    count: int = 4
    distance: float = 5.0
    height: float = 1.5
    target_height: float = 1.0
    focal_length: float = 1150.0
    width: int = 1000
    height_px: int = 1000

    def __post_init__(self) -> None:
        check_camera_count(self.count)
        _check_range(self.distance, *RING_DISTANCE_M, "ring_distance", "the camera ring's distance (m)")
        _check_range(self.height, *RING_HEIGHT_M, "ring_height", "the camera ring's height (m)")
        _check_range(self.target_height, *RING_HEIGHT_M, "target_height", "the camera ring's target height (m)")
        check_image_size(self.width, self.height_px, "camera ring: image size")
        check_focal_length(self.focal_length, self.width)

    def cameras(self) -> list[Camera]:
        """The ring's cameras, ``ring0`` to ``ring<count - 1>``."""
        out = []
        for i in range(self.count):
            angle = 2 * np.pi * i / self.count + np.pi / 4
            centre = np.array([self.distance * np.cos(angle), self.distance * np.sin(angle), self.height])
            out.append(
                Camera(
                    id=f"ring{i}",
                    res_w=self.width,
                    res_h=self.height_px,
                    focal_length=(self.focal_length, self.focal_length),
                    center=(self.width / 2, self.height_px / 2),
                    orientation=_look_at(centre, np.array([0.0, 0.0, self.target_height])),
                    translation=tuple(centre),
                )
            )
        return out


def _look_at(eye: np.ndarray, target: np.ndarray) -> tuple[float, float, float, float]:
    """Quaternion (w, x, y, z) rotating camera axes (x right, y down, z forward) into world axes."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    from scipy.spatial.transform import Rotation

    return tuple(
        float(v) for v in Rotation.from_matrix(np.stack([right, down, forward], axis=1)).as_quat(scalar_first=True)
    )


@dataclass(frozen=True)
class NoiseModel:
    """Detector-like 2D noise in pixels: white jitter, slow drift, rare outliers.

    * ``jitter``: standard deviation (px) of independent Gaussian noise per joint and frame.
    * ``drift``: standard deviation (px) of a slowly varying offset per joint, an
      Ornstein-Uhlenbeck process with correlation time ``drift_time`` seconds.
    * ``outlier_rate``: probability that a joint in a frame is replaced by a wild guess,
      displaced uniformly in a disc of radius ``outlier_px``.

    Checked when made: ``jitter``, ``drift`` and ``outlier_px`` in [0, :data:`NOISE_MAX_PX`]
    pixels, ``drift_time`` in [0, :data:`NOISE_MAX_DRIFT_TIME_S`] seconds (0: no drift),
    ``outlier_rate`` in [0, 1]. Errors name the ``data build`` option's destination
    (``noise_jitter``, ...).
    """

    jitter: float = 2.0
    drift: float = 4.0
    drift_time: float = 1.0
    outlier_rate: float = 0.002
    outlier_px: float = 80.0

    def __post_init__(self) -> None:
        for name, high, what in (
            ("jitter", NOISE_MAX_PX, "the noise's jitter (px)"),
            ("drift", NOISE_MAX_PX, "the noise's drift (px)"),
            ("drift_time", NOISE_MAX_DRIFT_TIME_S, "the noise's drift time (s)"),
            ("outlier_rate", 1.0, "the noise's outlier rate"),
            ("outlier_px", NOISE_MAX_PX, "the noise's outlier radius (px)"),
        ):
            _check_range(getattr(self, name), 0.0, high, f"noise_{name}", what)

    def sample(self, shape: tuple[int, ...], fps: float, rng: np.random.Generator) -> np.ndarray:
        """Noise (frames, joints, 2) in pixels for a clip of the given shape and frame rate."""
        frames = shape[0]
        noise = rng.normal(0.0, self.jitter, shape) if self.jitter > 0 else np.zeros(shape)
        if self.drift > 0 and self.drift_time > 0:
            noise += self.drift * _ou_process(frames, shape[1:], fps * self.drift_time, rng)
        if self.outlier_rate > 0:
            hit = rng.random(shape[:-1]) < self.outlier_rate
            radius = self.outlier_px * np.sqrt(rng.random(shape[:-1]))
            angle = rng.uniform(0, 2 * np.pi, shape[:-1])
            jump = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
            noise = np.where(hit[..., None], jump, noise)
        return noise


def _ou_process(frames: int, shape: tuple[int, ...], tau_frames: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance stationary AR(1) series along axis 0 with correlation time ``tau_frames``.

    x[t] = a x[t-1] + sqrt(1 - a^2) e[t] is a linear filter, applied with scipy.signal.lfilter.
    """
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / tau_frames))
    shocks = rng.normal(size=(frames,) + shape) * np.sqrt(1 - a * a)
    shocks[0] = rng.normal(size=shape)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -a], shocks, axis=0)


def check_input_layout(input_layout: str) -> None:
    """Refuse an ``--input-layout`` other than :data:`INPUT_LAYOUTS`."""
    if input_layout not in INPUT_LAYOUTS:
        raise JointposeError(
            "{0} must be one of {layouts}, got '{value}'",
            fields=("input_layout",),
            layouts=", ".join(INPUT_LAYOUTS),
            value=input_layout,
        )


def detector_points(poses: np.ndarray, input_layout: str) -> np.ndarray:
    """The 3D points (frames, N, 3) metres whose projections stand for a detector's keypoints:
    the joints themselves (``"h36m"``), COCO-17 points (``"coco"``, :func:`coco_keypoints`) or
    BlazePose's COCO-17 subset (``"blazepose"``, :func:`blazepose_keypoints`)."""
    check_input_layout(input_layout)
    if input_layout == "coco":
        return coco_keypoints(poses)
    if input_layout == "blazepose":
        return blazepose_keypoints(poses)
    return poses


def in_camera(
    world: np.ndarray, seen: np.ndarray, camera: Camera, where: str, hint: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """World poses (frames, 17, 3) metres and ``seen``, the points a detector sees on them
    (:func:`detector_points`: ``world`` itself for the joints), in ``camera``'s space: (those
    points, the joints), each (frames, N, 3) metres. Refused when they hold NaN or inf, or
    when any of them comes within :data:`MIN_DEPTH` of the camera or behind it; ``where`` (the
    clip and camera) starts the message and ``hint`` ends it."""
    joints = camera.world_to_camera(world)
    points = joints if seen is world else camera.world_to_camera(seen)
    if not (np.isfinite(joints).all() and np.isfinite(points).all()):
        raise JointposeError(f"{where}: the motion holds NaN or inf values")
    if min(float(points[..., 2].min()), float(joints[..., 2].min())) < MIN_DEPTH:
        raise JointposeError(f"{where}: the person comes within {MIN_DEPTH:g} m of (or behind) the camera{hint}")
    return points, joints


def as_network_input(pixels: np.ndarray, input_layout: str) -> np.ndarray:
    """Projected :func:`detector_points` (frames, N, 2) as the Human3.6M-17 pixels a model
    gets: COCO-17 points (from COCO or BlazePose) converted as ``jointpose infer`` and
    ``jointpose video`` convert them (:func:`jointpose.data.layouts.to_h36m`)."""
    check_input_layout(input_layout)
    if input_layout != "h36m":
        from jointpose.data.layouts import to_h36m

        pixels = to_h36m(pixels, np.ones(pixels.shape[:2]), INPUT_LAYOUTS[input_layout], 0.0)[0]
    return pixels


# Face points in the head frame of the CMU rig (cm; x to the person's left, y up, z forward),
# relative to the rig map's Neck/Nose (0, 5, 8.5) and Head (0, 15.5, 3.5) points.
_FACE = {
    "nose": (0.0, 4.5, 11.0),
    "l_eye": (3.3, 8.2, 8.2),
    "r_eye": (-3.3, 8.2, 8.2),
    "l_ear": (7.5, 6.0, -1.5),
    "r_ear": (-7.5, 6.0, -1.5),
}
_HEAD_NOSE, _HEAD_TOP = np.array([0.0, 5.0, 8.5]), np.array([0.0, 15.5, 3.5])
_COCO_FROM_H36M = {
    "l_shoulder": 11,
    "r_shoulder": 14,
    "l_elbow": 12,
    "r_elbow": 15,
    "l_wrist": 13,
    "r_wrist": 16,
    "l_hip": 4,
    "r_hip": 1,
    "l_knee": 5,
    "r_knee": 2,
    "l_ankle": 6,
    "r_ankle": 3,
}


def coco_keypoints(poses: np.ndarray, face: dict[str, tuple[float, float, float]] | None = None) -> np.ndarray:
    """COCO-17 points (frames, 17, 3) a detector would see on Human3.6M-17 poses (metres).

    Limb points are the joints themselves; nose, eyes and ears sit at fixed places of a head
    frame spanned by Neck/Nose -> Head (in the sagittal plane) and the shoulder line (lateral),
    scaled with the head: ``face`` (cm in the CMU rig's head frame, default :data:`_FACE`).
    """
    face = _FACE if face is None else face
    from jointpose.data.layouts import LAYOUTS

    nose_point, head = poses[:, 9], poses[:, 10]
    up_len = np.linalg.norm(head - nose_point, axis=-1, keepdims=True)
    e1 = (head - nose_point) / np.maximum(up_len, 1e-9)
    lateral = poses[:, 11] - poses[:, 14]
    lateral = lateral - (lateral * e1).sum(-1, keepdims=True) * e1
    lateral /= np.maximum(np.linalg.norm(lateral, axis=-1, keepdims=True), 1e-9)
    e2 = np.cross(lateral, e1)
    rig_up = _HEAD_TOP - _HEAD_NOSE
    rig_e1 = rig_up / np.linalg.norm(rig_up)
    rig_e2 = np.cross([1.0, 0.0, 0.0], rig_e1)
    scale = up_len / np.linalg.norm(rig_up)
    out = np.empty((len(poses), len(LAYOUTS["coco17"]), 3))
    for k, name in enumerate(LAYOUTS["coco17"]):
        if name in face:
            rel = np.asarray(face[name]) - _HEAD_NOSE
            out[:, k] = nose_point + scale * (rel @ rig_e1 * e1 + rel @ rig_e2 * e2 + rel[0] * lateral)
        else:
            out[:, k] = poses[:, _COCO_FROM_H36M[name]]
    return out


# BlazePose's keypoints against the CMU rig's joints and COCO face points (benchmarks/
# blazepose_layout.py: BlazePose triangulated from the four calibrated views of Pose2Sim's
# Demo_SinglePerson, medians over 100 frames, divided by the person's size relative to the
# rig, 0.848, the mean of two estimates that agree within 3%: shin plus forearm, 0.837, and
# standing nose-to-ankle height, 0.859). Measured in mm, BlazePose / scaled / rig:
# hip width 193 / 227 / 194, shoulder width 350 / 413 / 367, eye width 48 / 57 / 66, ear
# width 96 / 114 / 150, mid-ears to mid-eyes 45 / 53 / 99, nose to mid-eyes 33 / 39 / 46.
# The rig's hips are narrower than Human3.6M's own (about 250 mm, as reported): BlazePose's sit wider
# than the rig's for the body's size. Lengths along the body (scaled: trunk +25%, upper arm
# +25%, thigh -4%, shin -12%) mix one person's build with where the points sit, and are not
# modelled.
BLAZEPOSE_OFFSETS = {
    "hip width": 1.17,  # BlazePose's hips about mid-hips, as a fraction of the rig's hip joints' spacing
    "shoulder width": 1.12,  # shoulders about mid-shoulders
    "eye width": 0.86,  # eyes' lateral offsets from the head's midline
    "ear width": 0.76,  # ears' lateral offsets
    "ears to eyes": 0.53,  # ears' offset from mid-eyes in the midline plane (they sit further forward)
    "nose to eyes": 0.83,  # the nose's offset from mid-eyes
}


def _blazepose_face() -> dict[str, tuple[float, float, float]]:
    """:data:`_FACE` moved by :data:`BLAZEPOSE_OFFSETS` (cm, the rig's head frame)."""
    k = BLAZEPOSE_OFFSETS
    eyes = (np.asarray(_FACE["l_eye"]) + np.asarray(_FACE["r_eye"])) / 2
    out = {}
    for name, point in _FACE.items():
        point = np.asarray(point, dtype=np.float64)
        if name == "nose":
            point = eyes + k["nose to eyes"] * (point - eyes)
        elif name.endswith("_eye"):
            point = point * [k["eye width"], 1.0, 1.0]
        else:
            point = np.concatenate([[k["ear width"] * point[0]], eyes[1:] + k["ears to eyes"] * (point[1:] - eyes[1:])])
        out[name] = tuple(float(v) for v in point)
    return out


def blazepose_keypoints(poses: np.ndarray) -> np.ndarray:
    """BlazePose's COCO-17 subset (frames, 17, 3) as it would sit on Human3.6M-17 poses (metres).

    :func:`coco_keypoints` with BlazePose's measured offsets (:data:`BLAZEPOSE_OFFSETS`): the
    hips and shoulders spread about their midpoints (which stay where they are), and the face
    points moved in the head frame. Elbows, wrists, knees and ankles are the joints.
    """
    from jointpose.data.layouts import LAYOUTS

    out = coco_keypoints(poses, _blazepose_face())
    names = LAYOUTS["coco17"]
    for part in ("hip", "shoulder"):
        left, right = names.index(f"l_{part}"), names.index(f"r_{part}")
        middle = (out[:, left] + out[:, right]) / 2
        half = BLAZEPOSE_OFFSETS[f"{part} width"] * (out[:, left] - middle)
        out[:, left], out[:, right] = middle + half, middle - half
    return out


def dataset_paths(out_dir: str | Path) -> dict[str, Path]:
    """The files :func:`write_h36m_dataset` writes in ``out_dir``, keyed ``3d``, ``gt`` and ``noisy``."""
    out_dir = Path(out_dir)
    return {
        "3d": out_dir / "data_3d_h36m.npz",
        "gt": out_dir / "data_2d_h36m_gt.npz",
        "noisy": out_dir / "data_2d_h36m_noisy.npz",
    }


class DrawnCameras(Protocol):
    """Cameras drawn around each subject's motion (:class:`jointpose.motion.viewpoints.RandomRig`)."""

    def cameras(self, motion: dict[str, dict[str, np.ndarray]], input_layout: str) -> dict[str, list[Camera]]:
        """Each subject's cameras for its clips (action -> (frames, 17, 3) world metres) as
        ``input_layout``'s detector sees them."""
        ...


def _check_clips(motion: dict[str, dict[str, np.ndarray]], fps: float) -> None:
    """Refuse a subject without clips, and a clip (frames, 17, 3) holding NaN or inf, shorter
    than :data:`MIN_CLIP_FRAMES` or longer than the frame limit."""
    for subject, clips in motion.items():
        if not clips:
            raise JointposeError(f"{subject}: no clips")
        for action, world in clips.items():
            if not np.isfinite(world).all():
                raise JointposeError(f"{subject}/{action}: motion holds NaN or inf values")
            if len(world) < MIN_CLIP_FRAMES:
                raise JointposeError(
                    f"{subject}/{action}: {len(world)} frame(s) at {fps:g} fps; a clip needs at "
                    f"least {MIN_CLIP_FRAMES} (a lower --fps than the motion allows?)"
                )
            check_limit("frames", len(world), f"{subject}/{action}: frames")


def write_h36m_dataset(
    out_dir: str | Path,
    motion: dict[str, dict[str, np.ndarray]],
    *,
    fps: float,
    cameras: CameraRing | DrawnCameras | dict[str, list[Camera]] | None = None,
    noise: NoiseModel = NoiseModel(),
    seed: int = 0,
    input_layout: str = "h36m",
) -> dict[str, Path]:
    """Project ``motion`` (subject -> action -> (frames, 17, 3) world metres) and write the npz files.

    ``input_layout="coco"`` makes the 2D keypoints what ``jointpose infer`` feeds a model
    from a COCO detector: COCO-17 points (:func:`coco_keypoints`) are projected, noised
    and converted to Human3.6M-17 with :func:`jointpose.data.layouts.to_h36m`;
    ``"blazepose"`` does the same with BlazePose's points (:func:`blazepose_keypoints`), as
    ``jointpose video`` converts them.
    ``cameras``: Human3.6M's rig (None), a ring shared by every subject, random cameras
    drawn around each subject's motion (a :class:`~jointpose.motion.viewpoints.RandomRig`),
    or a list of cameras per subject (equally many each). A point of the motion nearer a
    camera than :data:`MIN_DEPTH` is refused.
    Returns the paths written, keyed ``3d``, ``gt`` and ``noisy``.
    """
    check_input_layout(input_layout)
    check_fps(fps, "fps")
    out_dir = check_path(out_dir, "out_dir")
    _check_clips(motion, fps)  # before any camera is drawn around them
    subjects = list(motion)
    if cameras is None:
        calibration = h36m_cameras()
        unknown = [s for s in subjects if s not in calibration]
        if unknown:
            raise JointposeError(
                "{0}: subjects {unknown} have no Human3.6M calibration; name them {known} or give {1} (a ring of "
                "virtual cameras or random ones)",
                fields=("motion", "cameras"),
                unknown=", ".join(unknown),
                known=", ".join(H36M_SUBJECTS),
            )
        per_subject = {s: calibration[s] for s in subjects}
        schema = None
    elif not isinstance(cameras, CameraRing):  # cameras of their own per subject
        drawn = cameras if isinstance(cameras, dict) else cameras.cameras(motion, input_layout)
        per_subject = {s: drawn[s] for s in subjects}
        schema = json.dumps(subject_cameras_schema(per_subject))
    else:
        ring = cameras.cameras()
        per_subject = {s: ring for s in subjects}
        schema = json.dumps(cameras_schema(ring, subjects))
    rng = np.random.default_rng(seed)
    positions_3d: dict[str, dict[str, np.ndarray]] = {}
    exact: dict[str, dict[str, list[np.ndarray]]] = {}
    noisy: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in subjects:
        positions_3d[subject], exact[subject], noisy[subject] = {}, {}, {}
        for action, world in motion[subject].items():
            positions_3d[subject][action] = skeleton.expand_17_to_32(world).astype(np.float32)
            seen = detector_points(world, input_layout)  # the same points for every camera
            views, noisy_views = [], []
            for index, camera in enumerate(per_subject[subject]):
                where = f"{subject}/{action}, camera {index}"
                cam_space, _ = in_camera(world, seen, camera, where, "; move the cameras further out")
                pixels = camera.project(cam_space)
                jittered = pixels + noise.sample(pixels.shape, fps, rng)
                views.append(as_network_input(pixels, input_layout).astype(np.float32))
                noisy_views.append(as_network_input(jittered, input_layout).astype(np.float32))
            exact[subject][action] = views
            noisy[subject][action] = noisy_views
    extra = {"fps": np.array(float(fps))}
    if schema is not None:
        extra["cameras"] = np.array(schema)
    with atomic_folder(out_dir) as building:  # the three files replace the old ones as a set
        staged = dataset_paths(building)
        np.savez_compressed(staged["3d"], positions_3d=positions_3d, **extra)
        metadata = {**METADATA, "input_layout": input_layout}
        np.savez_compressed(staged["gt"], positions_2d=exact, metadata=metadata, **extra)
        np.savez_compressed(staged["noisy"], positions_2d=noisy, metadata=metadata, **extra)
    return dataset_paths(out_dir)
