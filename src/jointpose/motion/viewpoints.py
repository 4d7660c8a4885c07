"""Random viewpoints: cameras drawn around a person, and motion re-seen through them.

Users film with any camera, so training can see each motion through cameras drawn afresh
(``train --random-cameras``, every epoch) or a dataset can be built through them
(``data build --cameras random``). A camera is drawn within :class:`CameraRanges`:

* it stands ``distance`` metres (horizontally) from the person's mean root position, at any
  yaw around them, ``height`` metres above the floor (world z = 0, z up);
* it is aimed at the person (at the mean root position, off by up to ``aim`` of the half
  field of view), its pitch kept within ``pitch`` degrees (negative: looking down; where
  the aim needs more, the camera stays at the limit and the person sits off centre), and
  rolled by up to ``roll`` degrees;
* its image is one of ``image_sizes`` (landscape and portrait), its horizontal field of view
  ``fov`` degrees (square pixels), its principal point off the centre by up to
  ``principal_offset`` of the image size, its lens distorted radially by k1 up to
  ``distortion`` in magnitude (0: none; a barrel lens no stronger than reaches 1.5 times the
  image corner's distance from the centre before it folds back, as a real lens's model
  reaches beyond its image).

A person who walks far keeps the whole path in front of the camera: the distance grows to
the extent of the motion (every joint, horizontally) plus ``clearance`` metres where
needed, and a camera that would still come closer than ``clearance`` metres to any joint
or any point the detector sees (a steep pitch, an off-centre aim) moves back along its
optical axis; never nearer than :data:`~jointpose.motion.builder.MIN_DEPTH` (0.5 m). Parts of the person may leave the
image (a low camera close by, a wide path); the network has no confidence input, so those
keypoints keep their projected positions with extra noise (``offscreen_noise``, a detector's
guess off the image).

Detector-like noise (:class:`jointpose.motion.builder.NoiseModel`) is added in pixels after
projection, scaled with the person's size in the image (pixels per metre at the root,
relative to :data:`REFERENCE_PX_PER_M`, the builder's default ring) and by ``noise`` (0: exact
projections).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from jointpose.data.h36m import PoseSequence
from jointpose.errors import JointposeError
from jointpose.geometry.cameras import Camera, normalize_keypoints
from jointpose.motion.builder import (
    MIN_DEPTH,
    NoiseModel,
    as_network_input,
    check_camera_count,
    detector_points,
    in_camera,
)

IMAGE_SIZES = ((1920, 1080), (1080, 1920), (1280, 720), (640, 480))
REFERENCE_PX_PER_M = 1150.0 / 5.0  # the builder's default ring: 1150 px focal length, 5 m away


def _ranges_error(template: str, **values: object) -> JointposeError:
    """An error in the camera ranges, named as the training setting that holds them (``random_cameras``)."""
    return JointposeError("{0}: " + template, fields=("random_cameras",), **values)


@dataclass(frozen=True)
class CameraRanges:
    """Where random cameras are drawn (uniformly within each range). Metres, degrees, pixels."""

    distance: tuple[float, float] = (2.0, 10.0)
    height: tuple[float, float] = (0.3, 3.0)
    pitch: tuple[float, float] = (-45.0, 15.0)
    roll: tuple[float, float] = (-5.0, 5.0)
    fov: tuple[float, float] = (40.0, 100.0)
    image_sizes: tuple[tuple[int, int], ...] = IMAGE_SIZES
    principal_offset: float = 0.02
    distortion: float = 0.0
    aim: float = 0.3
    clearance: float = 1.0
    offscreen_noise: float = 3.0
    noise: float = 1.0

    def __post_init__(self) -> None:
        for name, low, high in (
            ("distance", 0.5, 100.0),
            ("height", -10.0, 50.0),
            ("pitch", -89.0, 89.0),
            ("roll", -45.0, 45.0),
            ("fov", 5.0, 170.0),
        ):
            value = getattr(self, name)
            ok = (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, (int, float)) and np.isfinite(v) for v in value)
                and low <= value[0] <= value[1] <= high
            )
            if not ok:
                raise _ranges_error(
                    "{name} must be two numbers LOW:HIGH with {low:g} <= LOW <= HIGH <= {high:g}, got {value!r}",
                    name=name,
                    low=low,
                    high=high,
                    value=value,
                )
        if not self.image_sizes or not all(
            len(size) == 2 and all(isinstance(v, int) and 16 <= v <= 16384 for v in size) for size in self.image_sizes
        ):
            raise _ranges_error("image_sizes must be (width, height) pairs, got {sizes}", sizes=self.image_sizes)
        for name, high in (
            ("principal_offset", 0.25),
            ("distortion", 0.5),
            ("aim", 1.0),
            ("clearance", 10.0),
            ("offscreen_noise", 20.0),
            ("noise", 10.0),
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= high):
                raise _ranges_error("{name} must be in [0, {high:g}], got {value!r}", name=name, high=high, value=value)

    @classmethod
    def parse(cls, text: str) -> CameraRanges:
        """Ranges from ``"distance=2:10,fov=40:100,distortion=0.1"`` (others at their defaults;
        ``""`` for all defaults)."""
        values: dict[str, object] = {}
        names = {f.name for f in dataclasses.fields(cls)} - {"image_sizes"}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            key = key.strip()
            if key in values:
                raise _ranges_error("{key} is given twice", key=key)
            if key not in names or not value:
                raise _ranges_error(
                    "expected NAME=LOW:HIGH or NAME=VALUE with NAME in {names}, got {item!r}",
                    names=", ".join(sorted(names)),
                    item=item,
                )
            try:
                numbers = tuple(float(v) for v in value.split(":"))
            except ValueError:
                raise _ranges_error("{key} must be numbers, got {value!r}", key=key, value=value) from None
            single = not isinstance(getattr(cls, key), tuple)
            if single != (len(numbers) == 1) or len(numbers) > 2:
                shape = "one number" if single else "LOW:HIGH"
                raise _ranges_error("{key} must be {shape}, got {value!r}", key=key, shape=shape, value=value)
            values[key] = numbers[0] if single else numbers
        return cls(**values)

    @classmethod
    def from_dict(cls, data: object) -> CameraRanges:
        """The ranges :meth:`to_dict` wrote (a checkpoint's), checked as when given."""
        names = {spec.name for spec in dataclasses.fields(cls)}
        if not isinstance(data, dict) or not set(data) <= names:
            raise _ranges_error("expected a mapping of {names}, got {data}", names=", ".join(sorted(names)), data=data)

        def plain(value: object) -> object:
            return tuple(map(plain, value)) if isinstance(value, list) else value

        return cls(**{key: plain(value) for key, value in data.items()})

    def to_dict(self) -> dict[str, object]:
        """Plain values (lists and numbers), for checkpoints."""
        return {
            k: [list(s) for s in v] if k == "image_sizes" else list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
        }


def aimed_camera(
    eye: np.ndarray,
    target: np.ndarray,
    size: tuple[int, int],
    focal_length: float,
    *,
    aim: tuple[float, float] = (0.0, 0.0),
    pitch_limits: tuple[float, float] = (-89.0, 89.0),
    roll: float = 0.0,
    center: tuple[float, float] | None = None,
    k1: float = 0.0,
    id: str = "camera",
) -> Camera:
    """A camera at ``eye`` (world metres, z up) looking at ``target``, turned further by ``aim``
    (yaw, pitch; radians), its pitch clipped to ``pitch_limits`` (degrees; negative: looking
    down), rolled by ``roll`` radians; ``size`` (width, height) and ``focal_length`` in pixels."""
    to_target = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    heading = np.arctan2(to_target[1], to_target[0]) + aim[0]
    pitch = np.arctan2(to_target[2], np.hypot(to_target[0], to_target[1])) + aim[1]
    pitch = np.clip(pitch, *np.radians(pitch_limits))
    forward = np.array([np.cos(pitch) * np.cos(heading), np.cos(pitch) * np.sin(heading), np.sin(pitch)])
    right = np.array([np.sin(heading), -np.cos(heading), 0.0])  # horizontal, to the right of forward
    down = np.cross(forward, right)
    axes = Rotation.from_rotvec(roll * forward) * Rotation.from_matrix(np.stack([right, down, forward], axis=1))
    width, height = size
    cx, cy = (width / 2.0, height / 2.0) if center is None else center
    return Camera(
        id=id,
        res_w=int(width),
        res_h=int(height),
        focal_length=(float(focal_length), float(focal_length)),
        center=(float(cx), float(cy)),
        radial_distortion=(float(k1), 0.0, 0.0),
        orientation=tuple(float(v) for v in axes.as_quat(scalar_first=True)),
        translation=tuple(float(v) for v in eye),
    )


# How far a random camera's lens reaches before it folds back: a multiple of the image
# corner's distance from the centre, pixels to which come back undistorted.
FOLD_REACH = 1.5


def draw_camera(
    rng: np.random.Generator,
    ranges: CameraRanges,
    centre: np.ndarray,
    extent: float = 0.0,
    *,
    id: str = "random",
) -> Camera:
    """One camera drawn within ``ranges`` around a person whose mean root is ``centre`` (world
    metres, z up) and whose root strays up to ``extent`` metres (horizontally) from it."""
    distance = max(rng.uniform(*ranges.distance), extent + ranges.clearance)
    yaw = rng.uniform(0.0, 2.0 * np.pi)
    height = rng.uniform(*ranges.height)
    width, height_px = ranges.image_sizes[int(rng.integers(len(ranges.image_sizes)))]
    fov = np.radians(rng.uniform(*ranges.fov))
    focal = width / 2.0 / np.tan(fov / 2.0)
    # Aim: at the centre, off by up to `aim` of the half field of view each way.
    half_v = np.arctan(height_px / 2.0 / focal)
    aim = rng.uniform(-1.0, 1.0, 2) * ranges.aim * np.array([fov / 2.0, half_v])
    eye = np.array([centre[0] + distance * np.cos(yaw), centre[1] + distance * np.sin(yaw), height])
    roll = np.radians(rng.uniform(*ranges.roll))
    offset = rng.uniform(-1.0, 1.0, 2) * ranges.principal_offset * np.array([width, height_px])
    k1 = rng.uniform(-ranges.distortion, ranges.distortion) if ranges.distortion > 0 else 0.0
    # A barrel lens folds back at r^2 = 1 / (3 |k1|), where the image reaches 2/3 of that
    # radius at most: kept at least FOLD_REACH times the image corner's distance.
    corner2 = (width**2 + height_px**2) / (2.0 * focal) ** 2
    k1 = max(k1, -4.0 / (27.0 * FOLD_REACH**2 * corner2))
    return aimed_camera(
        eye,
        centre,
        (width, height_px),
        focal,
        aim=(float(aim[0]), float(aim[1])),
        pitch_limits=ranges.pitch,
        roll=roll,
        center=(width / 2.0 + offset[0], height_px / 2.0 + offset[1]),
        k1=k1,
        id=id,
    )


def placement(world: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean root position (3,), largest horizontal distance of any joint from it) of a clip's
    world poses (frames, J, 3) metres."""
    centre = world[:, 0].mean(axis=0)
    return centre, float(np.hypot(*(world[..., :2] - centre[:2]).reshape(-1, 2).T).max())


def kept_clear(camera: Camera, world: np.ndarray, clearance: float, input_layout: str = "h36m") -> Camera:
    """``camera`` moved back (:func:`keep_in_front`) until every joint of world poses (frames,
    17, 3) metres, and every point ``input_layout``'s detector sees on them
    (:func:`~jointpose.motion.builder.detector_points`), lies ``clearance`` metres in front of
    it, and never nearer than the builder's :data:`~jointpose.motion.builder.MIN_DEPTH`."""
    points = world if input_layout == "h36m" else np.concatenate([world, detector_points(world, input_layout)], 1)
    return keep_in_front(camera, points, max(clearance, MIN_DEPTH))


def keep_in_front(camera: Camera, world: np.ndarray, depth: float) -> Camera:
    """``camera`` moved back along its optical axis until every point of ``world`` (..., 3)
    metres lies at least ``depth`` metres in front of it (unchanged when they already do);
    its view direction and intrinsics are kept. It goes a nanometre further, so that rounding
    never leaves a point short of ``depth``."""
    nearest = float(camera.world_to_camera(world)[..., 2].min())
    if nearest >= depth:
        return camera
    forward = camera.rotation.apply([0.0, 0.0, 1.0])
    eye = np.asarray(camera.translation) - (depth - nearest + 1e-9) * forward
    return dataclasses.replace(camera, translation=tuple(float(v) for v in eye))


def seen_through(
    world: np.ndarray,
    camera: Camera,
    rng: np.random.Generator,
    *,
    fps: float,
    noise: NoiseModel | None,
    input_layout: str = "h36m",
    noise_scale: float = 1.0,
    offscreen_noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``camera`` sees of world poses (frames, 17, 3) metres.

    Returns (pixels (frames, 17, 2) of the network's input points, with noise; camera-space
    joints (frames, 17, 3) metres; share of the points inside the image per frame). Refused
    where a point comes within :data:`~jointpose.motion.builder.MIN_DEPTH` of the camera
    (:func:`~jointpose.motion.builder.in_camera`).
    ``input_layout="coco"`` or ``"blazepose"``: that detector's points
    (:func:`~jointpose.motion.builder.detector_points`) are projected, noised and converted to
    Human3.6M-17 as ``jointpose infer`` and ``jointpose video`` convert them.
    """
    points, joints = in_camera(world, detector_points(world, input_layout), camera, f"camera {camera.id}")
    pixels = camera.project(points)
    size = np.array([camera.res_w, camera.res_h])
    inside = ((pixels >= 0) & (pixels <= size)).all(axis=-1)
    if noise is not None and noise_scale > 0:
        scale = noise_scale * camera.focal_length[0] / float(np.mean(joints[:, 0, 2])) / REFERENCE_PX_PER_M
        pixels = pixels + scale * noise.sample(pixels.shape, fps, rng)
        if offscreen_noise > 0:
            extra = rng.normal(0.0, offscreen_noise * noise.jitter * scale, pixels.shape)
            pixels = pixels + np.where(inside[..., None], 0.0, extra)
    return as_network_input(pixels, input_layout), joints, inside.mean(axis=-1)


def random_views(
    sequences: Sequence[PoseSequence],
    rng: np.random.Generator,
    ranges: CameraRanges,
    *,
    fps: float,
    noise: NoiseModel | None = None,
    input_layout: str = "h36m",
) -> list[PoseSequence]:
    """Every sequence's motion seen through a freshly drawn camera (its 2D re-projected with
    detector-like noise and normalised as the sequence's own; its 3D and root trajectory in
    the new camera's space). The sequence's own camera must place its motion in a z-up world.
    ``noise``: the detector-noise model (default :class:`NoiseModel`'s defaults), scaled by
    ``ranges.noise``.
    """
    noise = NoiseModel() if noise is None else noise
    out = []
    for seq in sequences:
        if seq.poses_3d is None or seq.trajectory is None or seq.keypoints.shape[1] != 17:
            raise JointposeError(
                "{0} needs 3D poses and 17 keypoints per frame; {key} has {what}",
                fields=("random_cameras",),
                key=seq.key,
                what="no 3D" if seq.poses_3d is None else f"{seq.keypoints.shape[1]} keypoints",
            )
        world = seq.camera.camera_to_world(seq.poses_3d.astype(np.float64) + seq.trajectory[:, None])
        centre, extent = placement(world)
        camera = draw_camera(rng, ranges, centre, extent, id=f"random-{seq.key}")
        camera = kept_clear(camera, world, ranges.clearance, input_layout)
        pixels, joints, _ = seen_through(
            world,
            camera,
            rng,
            fps=fps,
            noise=noise,
            input_layout=input_layout,
            noise_scale=ranges.noise,
            offscreen_noise=ranges.offscreen_noise,
        )
        out.append(
            dataclasses.replace(
                seq,
                camera=camera,
                keypoints=normalize_keypoints(pixels, camera, seq.normalization).astype(np.float32),
                poses_3d=(joints - joints[:, :1]).astype(np.float32),
                trajectory=joints[:, 0].astype(np.float32),
            )
        )
    return out


@dataclass(frozen=True)
class RandomRig:
    """``count`` fixed cameras per subject drawn within ``ranges`` (``data build --cameras
    random``), seeded by ``seed``."""

    count: int = 4
    ranges: CameraRanges = CameraRanges()
    seed: int = 0

    def cameras(self, motion: dict[str, dict[str, np.ndarray]], input_layout: str = "h36m") -> dict[str, list[Camera]]:
        """Each subject's cameras, around where its clips (action -> (frames, 17, 3) world
        metres, z up) take place and far enough for all of them and for the points
        ``input_layout``'s detector sees on them."""
        check_camera_count(self.count)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xCA3E]))
        out = {}
        for subject, clips in motion.items():
            world = np.concatenate(list(clips.values()))
            centre, extent = placement(world)
            out[subject] = [
                kept_clear(
                    draw_camera(rng, self.ranges, centre, extent, id=f"random{i}"),
                    world,
                    self.ranges.clearance,
                    input_layout,
                )
                for i in range(self.count)
            ]
        return out
