"""Camera model: world <-> camera transforms, projection with lens distortion, screen normalisation.

Conventions
-----------
* World and camera positions are in metres. Camera axes: x right, y down, z forward.
* ``orientation`` is a unit quaternion (w, x, y, z) rotating camera axes into world axes;
  ``translation`` is the camera centre in world coordinates (metres).
* Projection applies radial k1, k2, k3 and tangential p1, p2 distortion, then focal length
  and principal point in pixels. Two conventions for the tangential terms
  (``distortion_model``): ``"opencv"`` (Brown-Conrady, as OpenCV) and ``"h36m"``, the one
  Human3.6M's calibration is given in (and VideoPose3D's 2D ground truth was projected
  with); see :func:`project_points`. Files in the ``h36m_cameras.json`` schema use
  ``"h36m"`` unless a camera says otherwise; cameras made in code default to ``"opencv"``.
* Normalised screen coordinates map x in [0, w] pixels to [-1, 1] and scale y by the
  same factor (aspect ratio kept): ``u = x / w * 2 - 1``, ``v = y / w * 2 - h / w``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from jointpose.errors import JointposeError

DISTORTION_MODELS = ("opencv", "h36m")


@dataclass(frozen=True)
class Camera:
    """One calibrated camera. Pixels for intrinsics, metres for the translation."""

    id: str
    res_w: int
    res_h: int
    focal_length: tuple[float, float]
    center: tuple[float, float]
    radial_distortion: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential_distortion: tuple[float, float] = (0.0, 0.0)
    orientation: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distortion_model: str = "opencv"

    def __post_init__(self) -> None:
        if not (self.res_w > 0 and self.res_h > 0):
            raise JointposeError(f"camera {self.id}: resolution must be positive, got {self.res_w}x{self.res_h}")
        if self.distortion_model not in DISTORTION_MODELS:
            raise JointposeError(
                f"camera {self.id}: distortion_model must be one of {', '.join(DISTORTION_MODELS)}, "
                f"got {self.distortion_model!r}"
            )
        q = np.asarray(self.orientation, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if not np.isfinite(norm) or norm < 1e-8:
            raise JointposeError(f"camera {self.id}: orientation quaternion {self.orientation} is not a rotation")
        # Calibration files store float32 quaternions; renormalise so rotations are exact.
        object.__setattr__(self, "orientation", tuple(float(v) for v in q / norm))

    @property
    def rotation(self) -> Rotation:
        """The rotation of camera axes into world axes (``orientation``, w first)."""
        return Rotation.from_quat(self.orientation, scalar_first=True)

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """World (..., 3) metres -> camera space (..., 3) metres."""
        return _apply(self.rotation.inv(), np.asarray(points) - np.asarray(self.translation))

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        """Camera space (..., 3) metres -> world (..., 3) metres."""
        return _apply(self.rotation, np.asarray(points)) + np.asarray(self.translation)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) metres -> pixels (..., 2), with lens distortion."""
        return project_points(
            points,
            self.focal_length,
            self.center,
            self.radial_distortion,
            self.tangential_distortion,
            model=self.distortion_model,
        )

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> normalised screen coordinates for this camera's image size."""
        return normalize_screen_coordinates(pixels, self.res_w, self.res_h)

    def to_dict(self) -> dict[str, Any]:
        """Intrinsics and extrinsics in the schema of ``h36m_cameras.json`` (translation in mm)."""
        return {
            "id": self.id,
            "res_w": self.res_w,
            "res_h": self.res_h,
            "focal_length": list(self.focal_length),
            "center": list(self.center),
            "radial_distortion": list(self.radial_distortion),
            "tangential_distortion": list(self.tangential_distortion),
            "distortion_model": self.distortion_model,
            "orientation": list(self.orientation),
            "translation": [t * 1000.0 for t in self.translation],
        }


def _apply(rotation: Rotation, points: np.ndarray) -> np.ndarray:
    """``rotation`` applied to points of any leading shape (..., 3)."""
    return rotation.apply(points.reshape(-1, 3)).reshape(points.shape)


def project_points(
    points: np.ndarray,
    focal_length: tuple[float, float] | np.ndarray,
    center: tuple[float, float] | np.ndarray,
    radial: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
    tangential: tuple[float, float] | np.ndarray = (0.0, 0.0),
    model: str = "opencv",
) -> np.ndarray:
    """Project camera-space points (..., 3) metres to pixels (..., 2) with lens distortion.

    With x, y = X/Z, Y/Z, r² = x² + y² and radial factor 1 + k1 r² + k2 r⁴ + k3 r⁶, the
    tangential terms are, for ``model="opencv"`` (Brown-Conrady):
    x' = x·radial + 2 p1 x y + p2 (r² + 2x²), y' = y·radial + p1 (r² + 2y²) + 2 p2 x y;
    for ``model="h36m"`` (Human3.6M's calibration, VideoPose3D's projection):
    x' = x (radial + p1 x + p2 y) + p1 r², y' = y (radial + p1 x + p2 y) + p2 r².
    Points must lie in front of the camera (z > 0).
    """
    z = points[..., 2:3]
    if np.any(z <= 0):
        raise JointposeError("cannot project points at or behind the camera (z <= 0)")
    xy = points[..., :2] / z
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    k1, k2, k3 = radial
    p1, p2 = tangential
    radial_factor = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    if model == "h36m":
        factor = radial_factor + p1 * x + p2 * y
        xd, yd = x * factor + p1 * r2, y * factor + p2 * r2
    elif model == "opencv":
        xd = x * radial_factor + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial_factor + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    else:
        raise JointposeError(f"distortion model must be one of {', '.join(DISTORTION_MODELS)}, got {model!r}")
    return np.stack([xd, yd], axis=-1) * np.asarray(focal_length) + np.asarray(center)


def _floating(values: np.ndarray) -> np.ndarray:
    """``values`` as an array; integers become float64, floating dtypes are kept."""
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


def check_image_size(width: Any, height: Any, what: str) -> tuple[int, int]:
    """An image size (width, height) in whole pixels, each in [2, ``limit("image_px")``]."""
    from jointpose.safeio import check_limit

    try:
        w, h = float(width), float(height)
    except (TypeError, ValueError, OverflowError):
        raise JointposeError(f"{what} must be two whole numbers of pixels W H, got {width!r} {height!r}") from None
    if not (np.isfinite(w) and np.isfinite(h) and w == int(w) and h == int(h) and w >= 2 and h >= 2):
        raise JointposeError(f"{what} must be positive whole numbers of pixels (at least 2), got {width} {height}")
    check_limit("image_px", max(w, h), f"{what} (pixels)")
    return int(w), int(h)


def normalize_screen_coordinates(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels (..., 2) -> normalised coordinates: x in [0, w] -> [-1, 1], aspect ratio kept.
    Integer pixels come back as float64; floating ones keep their dtype."""
    pixels = _floating(pixels)
    return pixels / w * 2.0 - np.array([1.0, h / w], dtype=pixels.dtype)


def image_coordinates(normalized: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`: normalised (..., 2) -> pixels."""
    normalized = _floating(normalized)
    return (normalized + np.array([1.0, h / w], dtype=normalized.dtype)) * w / 2.0


def cameras_from_schema(schema: dict[str, Any], source: str) -> dict[str, list[Camera]]:
    """Build ``{subject: [Camera, ...]}`` from the ``h36m_cameras.json`` schema.

    ``schema`` holds ``intrinsic`` (a list, one per camera) and ``extrinsic``
    (subject -> list of ``{orientation, translation}`` in millimetres, same order).
    Subjects whose extrinsics are all empty are left out.
    ``source`` names where the schema came from, for error messages.
    """
    try:
        intrinsic = schema["intrinsic"]
        extrinsic = schema["extrinsic"]
        cameras: dict[str, list[Camera]] = {}
        for subject, views in extrinsic.items():
            if all(not view for view in views):
                continue  # no calibration published for this subject (S2, S3, S4)
            if len(views) != len(intrinsic):
                raise JointposeError(
                    f"subject {subject} has {len(views)} extrinsic entries but there are {len(intrinsic)} cameras"
                )
            cameras[str(subject)] = [
                Camera(
                    id=str(intr["id"]),
                    res_w=int(intr["res_w"]),
                    res_h=int(intr["res_h"]),
                    focal_length=_floats(intr["focal_length"], 2),
                    center=_floats(intr["center"], 2),
                    radial_distortion=_floats(intr.get("radial_distortion", [0, 0, 0]), 3),
                    tangential_distortion=_floats(intr.get("tangential_distortion", [0, 0]), 2),
                    orientation=_floats(ext["orientation"], 4),
                    translation=tuple(t / 1000.0 for t in _floats(ext["translation"], 3)),
                    distortion_model=str(intr.get("distortion_model", "h36m")),
                )
                for intr, ext in zip(intrinsic, views)
            ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise JointposeError(f"{source}: malformed camera calibration ({exc!r})") from None
    except JointposeError as exc:  # the checks above and each camera's own: name the file
        raise JointposeError(f"{source}: {exc}") from None
    return cameras


def _floats(values: Any, n: int) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) != n or not all(np.isfinite(out)):
        raise ValueError(f"expected {n} finite numbers, got {values!r}")
    return out


def h36m_cameras() -> dict[str, list[Camera]]:
    """The Human3.6M calibration shipped with the package: subject -> its 4 cameras."""
    text = resources.files("jointpose").joinpath("resources/h36m_cameras.json").read_text()
    return cameras_from_schema(json.loads(text), "built-in Human3.6M calibration")
