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
* The network reads 2D keypoints in one of two normalisations (:data:`NORMALIZATIONS`,
  :func:`normalize_keypoints`):

  - ``"screen"`` (VideoPose3D's): x in [0, w] pixels maps to [-1, 1] and y is scaled by the
    same factor (aspect ratio kept): ``u = x / w * 2 - 1``, ``v = y / w * 2 - h / w``. It
    depends on the image width only, so the same body at the same distance looks larger to
    the network through a longer lens.
  - ``"intrinsics"``: the ray through each point, ``u = (x - cx) / fx``, ``v = (y - cy) / fy``
    after removing the lens distortion (the tangent of the angle off the optical axis). The
    same body at the same distance gives the same input whatever the lens and image size,
    and a root depth follows in metres (:func:`root_trajectory`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from jointpose.errors import JointposeError, brief
from jointpose.safeio import is_real_number

DISTORTION_MODELS = ("opencv", "h36m")
NORMALIZATIONS = ("screen", "intrinsics")
# Field of view (degrees) over the image's longer side assumed when a camera's focal length
# is unknown: a typical phone main camera or webcam (about 26 mm equivalent, i.e. 65-70
# degrees over the long side), held either way (:meth:`Camera.assumed`).
DEFAULT_FOV_DEG = 65.0
# Horizontal fields of view (degrees) a camera may have; the focal lengths they give for an
# image's width bound a focal length given in pixels (:func:`focal_length_range`).
FOV_RANGE_DEG = (1.0, 179.0)


def focal_length_for_fov(width: float, fov_deg: float) -> float:
    """The focal length (pixels) that gives an image ``width`` pixels wide a horizontal field
    of view of ``fov_deg`` degrees."""
    return float(width / 2.0 / np.tan(np.radians(fov_deg) / 2.0))


def focal_length_range(width: float) -> tuple[float, float]:
    """The focal lengths (pixels; fewest, most) of the widest and the narrowest field of view
    in :data:`FOV_RANGE_DEG` for an image ``width`` pixels wide."""
    narrowest, widest = FOV_RANGE_DEG
    return focal_length_for_fov(width, widest), focal_length_for_fov(width, narrowest)


def check_focal_length(focal_length: float, width: float, name: str = "focal_length") -> float:
    """``focal_length`` (pixels) as a float, or a :class:`JointposeError` naming ``name`` unless it
    lies in :func:`focal_length_range` for an image ``width`` pixels wide (a horizontal field
    of view within :data:`FOV_RANGE_DEG`)."""
    low, high = focal_length_range(width)
    if not (is_real_number(focal_length) and low <= focal_length <= high):
        raise JointposeError(
            "{0} must be {low:.4g} to {high:.4g} pixels for an image {width} pixels wide (a horizontal field of "
            "view of {widest:g} to {narrowest:g} degrees), got {value}",
            fields=(name,),
            low=low,
            high=high,
            width=width,
            widest=FOV_RANGE_DEG[1],
            narrowest=FOV_RANGE_DEG[0],
            value=focal_length,
        )
    return float(focal_length)


def _center_in_reach(cx: float, cy: float, width: float, height: float) -> bool:
    """Whether a principal point (pixels) lies within one image size of the image: beyond it,
    another unit or a typo."""
    return -width <= cx <= 2 * width and -height <= cy <= 2 * height


@dataclass(frozen=True)
class Camera:
    """One calibrated camera. Pixels for intrinsics, metres for the translation.

    ``focal_length`` and ``center`` may be None where only the extrinsics are known
    (HumanEva-I in VideoPose3D's layout): such a camera transforms and normalises but does
    not project.
    """

    id: str
    res_w: int
    res_h: int
    focal_length: tuple[float, float] | None = None
    center: tuple[float, float] | None = None
    radial_distortion: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential_distortion: tuple[float, float] = (0.0, 0.0)
    orientation: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distortion_model: str = "opencv"

    def __post_init__(self) -> None:
        sizes = (self.res_w, self.res_h)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in sizes):
            raise JointposeError(
                f"camera {self.id}: resolution must be positive whole pixels, got {brief(self.res_w)}x{brief(self.res_h)}"
            )
        from jointpose.safeio import check_limit

        check_limit("image_px", max(self.res_w, self.res_h), f"camera {self.id}: resolution")
        object.__setattr__(self, "res_w", int(self.res_w))
        object.__setattr__(self, "res_h", int(self.res_h))
        for name, count in _CAMERA_NUMBERS.items():  # tuples of finite floats (numpy arrays, lists taken)
            value = getattr(self, name)
            if value is None and name in ("focal_length", "center"):
                continue
            numbers = finite_numbers(value, count)
            if numbers is None:
                raise JointposeError(f"camera {self.id}: {name} must be {count} finite numbers, got {brief(value)}")
            object.__setattr__(self, name, numbers)
        if self.focal_length is not None and not all(f > 0 for f in self.focal_length):
            raise JointposeError(f"camera {self.id}: focal length must be positive, got {self.focal_length}")
        if self.focal_length is not None:  # as the command line's --focal-length: a field of view in range
            low, high = focal_length_range(self.res_w)
            if not all(low <= f <= high for f in self.focal_length):
                raise JointposeError(
                    f"camera {self.id}: focal length must be {low:.4g} to {high:.4g} pixels for an image "
                    f"{self.res_w} pixels wide (a field of view of {FOV_RANGE_DEG[1]:g} to {FOV_RANGE_DEG[0]:g} "
                    f"degrees), got {brief(self.focal_length)}"
                )
        if self.center is not None and not _center_in_reach(*self.center, self.res_w, self.res_h):
            raise JointposeError(
                f"camera {self.id}: principal point must lie within one image size of the "
                f"{self.res_w}x{self.res_h} image, got {brief(self.center)}"
            )
        if self.distortion_model not in DISTORTION_MODELS:
            raise JointposeError(
                f"camera {self.id}: distortion_model must be one of {', '.join(DISTORTION_MODELS)}, "
                f"got {brief(self.distortion_model)}"
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
        if self.focal_length is None or self.center is None:
            raise JointposeError(f"camera {self.id}: no intrinsics (focal length, centre) to project with")
        return project_points(
            points,
            self.focal_length,
            self.center,
            self.radial_distortion,
            self.tangential_distortion,
            model=self.distortion_model,
        )

    def normalize(self, pixels: np.ndarray, normalization: str = "screen") -> np.ndarray:
        """Pixels (..., 2) -> the network's input coordinates (:func:`normalize_keypoints`)."""
        return normalize_keypoints(pixels, self, normalization)

    @property
    def distorted(self) -> bool:
        """Whether the lens has any distortion coefficient."""
        return any(self.radial_distortion) or any(self.tangential_distortion)

    @classmethod
    def from_fov(
        cls,
        width: int,
        height: int,
        fov_deg: float,
        *,
        center: tuple[float, float] | None = None,
        id: str = "camera",
    ) -> Camera:
        """An undistorted camera of ``width`` x ``height`` pixels whose horizontal field of view
        is ``fov_deg`` degrees (square pixels; principal point at the image centre unless given)."""
        width, height = check_image_size(width, height, "image size")
        low, high = FOV_RANGE_DEG
        fov = _real(fov_deg)
        if fov is None or not low <= fov <= high:
            raise JointposeError(
                "{0} must be a field of view in degrees in [{low:g}, {high:g}], got {value}",
                fields=("fov_deg",),
                low=low,
                high=high,
                value=brief(fov_deg),
            )
        focal = focal_length_for_fov(width, fov)
        return cls.from_focal_length(width, height, focal, center=center, id=id)

    @classmethod
    def assumed(cls, width: int, height: int) -> Camera:
        """The camera assumed for a ``width`` x ``height`` image whose intrinsics are unknown:
        :data:`DEFAULT_FOV_DEG` degrees over the longer side, so a phone's portrait and landscape
        video get the same focal length (pixels), as they do in the phone; for an image taller than
        about 180 times its width, the longest focal length its width admits
        (:func:`focal_length_range`)."""
        width, height = check_image_size(width, height, "image size")
        focal = min(focal_length_for_fov(max(width, height), DEFAULT_FOV_DEG), focal_length_range(width)[1])
        return cls.from_focal_length(width, height, focal, id="assumed")

    @classmethod
    def from_focal_length(
        cls,
        width: int,
        height: int,
        focal_length: float | tuple[float, float],
        *,
        center: tuple[float, float] | None = None,
        id: str = "camera",
    ) -> Camera:
        """An undistorted camera of ``width`` x ``height`` pixels with ``focal_length`` pixels
        (one value, or fx and fy; each within :func:`focal_length_range` of ``width``, square
        pixels); principal point at the image centre unless given."""
        width, height = check_image_size(width, height, "image size")
        one = np.ndim(focal_length) == 0
        fx, fy = (_real(focal_length),) * 2 if one else _pair(focal_length)
        if fx is None or fy is None or fx <= 0 or fy <= 0:
            raise JointposeError(
                "{0} must be "
                + ("a positive number of pixels" if one else "two positive numbers of pixels (fx, fy)")
                + ", got {value}",
                fields=("focal_length",),
                value=brief(focal_length),
            )
        for f in (fx, fy):
            check_focal_length(f, width)
        cx, cy = (width / 2.0, height / 2.0) if center is None else _pair(center)
        if cx is None or cy is None:
            raise JointposeError(
                "{0} must be two finite numbers of pixels, got {value}", fields=("center",), value=brief(center)
            )
        if not _center_in_reach(cx, cy, width, height):
            raise JointposeError(
                "{0} must lie within one image size of the {w}x{h} image, got ({x:g}, {y:g})",
                fields=("center",),
                w=width,
                h=height,
                x=cx,
                y=cy,
            )
        return cls(id, int(width), int(height), (float(fx), float(fy)), (float(cx), float(cy)))

    def to_dict(self) -> dict[str, Any]:
        """Intrinsics and extrinsics in the schema of ``h36m_cameras.json`` (translation in mm)."""
        return {
            "id": self.id,
            "res_w": self.res_w,
            "res_h": self.res_h,
            "focal_length": None if self.focal_length is None else list(self.focal_length),
            "center": None if self.center is None else list(self.center),
            "radial_distortion": list(self.radial_distortion),
            "tangential_distortion": list(self.tangential_distortion),
            "distortion_model": self.distortion_model,
            "orientation": list(self.orientation),
            "translation": [t * 1000.0 for t in self.translation],
        }


def camera_from_intrinsics(
    size: tuple[int, int],
    focal_length: float | None = None,
    fov: float | None = None,
    principal_point: tuple[float, float] | None = None,
    *,
    id: str = "given",
) -> Camera | None:
    """The camera a user's ``--focal-length`` (pixels) or ``--fov`` (horizontal degrees), and
    ``--principal-point`` (pixels, default the image centre), describe for an image of
    ``size`` (width, height) pixels; None when neither is given."""
    if focal_length is not None and fov is not None:
        raise JointposeError("{0} and {1} describe the same thing; pass one", fields=("focal_length", "fov"))
    centre = None
    if principal_point is not None:
        centre = _pair(principal_point)
        if None in centre:
            raise JointposeError(
                "{0} must be two numbers (x, y) in pixels, got {value!r}",
                fields=("principal_point",),
                value=principal_point,
            )
    if focal_length is not None:
        return Camera.from_focal_length(*size, focal_length, center=centre, id=id)
    if fov is not None:
        try:
            return Camera.from_fov(*size, fov, center=centre, id=id)
        except JointposeError as exc:  # Camera.from_fov's fov_deg is this function's fov
            if "fov_deg" not in exc.fields:
                raise
            raise JointposeError(
                exc.template, fields=["fov" if f == "fov_deg" else f for f in exc.fields], **exc.values
            ) from None
    if centre is not None:
        raise JointposeError("{0} needs {1} or {2}", fields=("principal_point", "focal_length", "fov"))
    return None


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
    if not (z > 0).all():
        raise JointposeError("cannot project points at or behind the camera (z <= 0) or of NaN depth")
    if model not in DISTORTION_MODELS:
        raise JointposeError(f"distortion model must be one of {', '.join(DISTORTION_MODELS)}, got {brief(model)}")
    xy = points[..., :2] / z
    return _distort(xy[..., 0], xy[..., 1], radial, tangential, model) * np.asarray(focal_length) + np.asarray(center)


def distort(x: Any, y: Any, radial: Sequence[Any], tangential: Sequence[Any], model: str) -> tuple[Any, Any]:
    """Pinhole points ``(X/Z, Y/Z)`` -> their distorted normalised image coordinates
    ``(x', y')``, by the lens model of :func:`project_points` (``model``: one of
    :data:`DISTORTION_MODELS`). Elementwise on numpy arrays or torch tensors alike (the
    semi-supervised back-projection uses it too); ``radial`` (k1, k2, k3) and ``tangential``
    (p1, p2) are numbers or arrays broadcasting with ``x``."""
    r2 = x * x + y * y
    k1, k2, k3 = radial
    p1, p2 = tangential
    radial_factor = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    if model == "h36m":
        factor = radial_factor + p1 * x + p2 * y
        return x * factor + p1 * r2, y * factor + p2 * r2
    xd = x * radial_factor + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial_factor + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def _distort(x: np.ndarray, y: np.ndarray, radial: Any, tangential: Any, model: str) -> np.ndarray:
    """:func:`distort` as one (..., 2) numpy array."""
    return np.stack(distort(x, y, radial, tangential, model), axis=-1)


def _floating(values: np.ndarray) -> np.ndarray:
    """``values`` as an array; integers become float64, floating dtypes are kept."""
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


def _real(value: Any) -> float | None:
    """``value`` as a finite float where it is one number (Python's, numpy's, a 0-d array or
    tensor), else None (text, a bool, several numbers, NaN): the caller refuses it."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or np.ndim(value) != 0:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


# The numbers each field of a Camera holds.
_CAMERA_NUMBERS = {
    "focal_length": 2,
    "center": 2,
    "radial_distortion": 3,
    "tangential_distortion": 2,
    "orientation": 4,
    "translation": 3,
}


def finite_numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """``value``'s ``count`` finite numbers (:func:`_real`) as a tuple, or None where it does
    not hold exactly that many."""
    if isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) != count:
        return None
    numbers = tuple(_real(v) for v in value)
    return None if None in numbers else numbers


def _pair(value: Any) -> tuple[float | None, float | None]:
    """``value``'s two finite numbers (:func:`finite_numbers`), or two Nones where it does not hold them."""
    return finite_numbers(value, 2) or (None, None)


def check_image_size(width: Any, height: Any, what: str) -> tuple[int, int]:
    """An image size (width, height) in whole pixels, each in [2, ``limit("image_px")``];
    errors name ``what`` (an argument's name, or a description)."""
    from jointpose.safeio import check_limit

    try:
        if isinstance(width, (str, bytes)) or isinstance(height, (str, bytes)):
            raise TypeError("text")
        w, h = float(width), float(height)
    except (TypeError, ValueError, OverflowError):
        raise JointposeError(
            "{0} must be two whole numbers of pixels (width, height), got {w!r} {h!r}",
            fields=(what,),
            w=width,
            h=height,
        ) from None
    if not (np.isfinite(w) and np.isfinite(h) and w == int(w) and h == int(h) and w >= 2 and h >= 2):
        raise JointposeError(
            "{0} must be positive whole numbers of pixels (at least 2), got {w} {h}", fields=(what,), w=width, h=height
        )
    check_limit("image_px", max(w, h), what)
    return int(w), int(h)


def check_image_size_pair(value: Any, what: str) -> tuple[int, int]:
    """An image size given as one (width, height) pair, checked as :func:`check_image_size`
    checks it; errors name ``what``."""
    if isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) != 2:
        raise JointposeError(f"{what} must be (width, height), got {brief(value)}")
    return check_image_size(value[0], value[1], what)


# Largest normalised coordinate the network is given (screen: x in [0, w] pixels maps to
# [-1, 1], so 500 image widths off screen); larger values are no detection, and could
# overflow float32 inside the network.
SCREEN_BOUND = 1000.0
OFF_SCREEN = f"lie more than {SCREEN_BOUND / 2:g} image widths off screen (or overflow float32)"


def bad_normalization(normalization: Any) -> JointposeError:
    """The error for a ``normalization`` that is not one of :data:`NORMALIZATIONS`."""
    return JointposeError(
        "{0} must be one of {choices}, got {value}",
        fields=("normalization",),
        choices=", ".join(NORMALIZATIONS),
        value=brief(normalization),
    )


def check_normalization(normalization: Any) -> str:
    """``normalization`` if it is one of :data:`NORMALIZATIONS`, else :func:`bad_normalization`."""
    if not isinstance(normalization, str) or normalization not in NORMALIZATIONS:
        raise bad_normalization(normalization)
    return normalization


def normalize_keypoints(pixels: np.ndarray, camera: Camera, normalization: str) -> np.ndarray:
    """Pixels (..., 2) seen by ``camera`` -> the network's input in ``normalization``
    (``"screen"`` or ``"intrinsics"``, see the module docstring). Integer pixels come back as
    float64; floating ones keep their dtype."""
    if normalization == "screen":
        return normalize_screen_coordinates(pixels, camera.res_w, camera.res_h)
    if normalization == "intrinsics":
        if camera.focal_length is None or camera.center is None:
            raise JointposeError(
                "{0} intrinsics: camera {camera} has no intrinsics (focal length, centre); use {0} screen",
                fields=("normalization",),
                camera=camera.id,
            )
        pixels = _floating(pixels)
        rays = (pixels - np.asarray(camera.center)) / np.asarray(camera.focal_length)
        if camera.distorted:
            rays = undistort(rays, camera)
        return rays.astype(pixels.dtype, copy=False)
    raise bad_normalization(normalization)


def input_intrinsics(camera: Camera, normalization: str) -> np.ndarray:
    """(fx, fy, cx, cy) in the network's input units: an undistorted camera-space point
    (X, Y, Z) appears at ``(fx X / Z + cx, fy Y / Z + cy)`` in :func:`normalize_keypoints`."""
    if normalization == "screen":
        w, h = camera.res_w, camera.res_h
        fx, fy = camera.focal_length
        cx, cy = camera.center
        return np.array([2.0 * fx / w, 2.0 * fy / w, 2.0 * cx / w - 1.0, 2.0 * cy / w - h / w])
    if normalization == "intrinsics":
        return np.array([1.0, 1.0, 0.0, 0.0])
    raise bad_normalization(normalization)


def screen_units(camera: Camera, normalization: str) -> np.ndarray:
    """(2,) screen units (VideoPose3D's input: 2 / image width per pixel) per unit of the
    network's input along x and y: 1 for ``screen`` input, 2 f / width for ``intrinsics``
    input (rays, 1 / f per pixel). The ratio of the two inputs' focal lengths
    (:func:`input_intrinsics`)."""
    return input_intrinsics(camera, "screen")[:2] / input_intrinsics(camera, normalization)[:2]


def input_projection(camera: Camera, normalization: str) -> np.ndarray:
    """(fx, fy, cx, cy, k1, k2, k3, p1, p2, h36m, sx, sy) (12,): :func:`input_intrinsics`, the
    lens a camera-space point goes through on its way into the network's input
    (``jointpose.losses.project_to_input``) and :func:`screen_units` (``sx, sy``, what
    ``jointpose.losses.reprojection_loss`` measures in). ``screen`` input keeps the lens
    distortion, so its coefficients and model (``h36m``: 1 for Human3.6M's, 0 for OpenCV's)
    come along; ``intrinsics`` input is undistorted, so its lens is all zeros."""
    lens = np.zeros(6)
    if normalization == "screen":
        lens = np.array([*camera.radial_distortion, *camera.tangential_distortion, camera.distortion_model == "h36m"])
    return np.concatenate(
        [input_intrinsics(camera, normalization), lens.astype(np.float64), screen_units(camera, normalization)]
    )


# Newton steps of undistort, and the residual (normalised image units: 1e-9 is about 1e-6 px
# for a 1000 px focal length) a point must reach.
UNDISTORT_STEPS, UNDISTORT_TOLERANCE = 30, 1e-9


def undistort(distorted: np.ndarray, camera: Camera) -> np.ndarray:
    """Distorted normalised image points (..., 2), i.e. ``(pixels - center) / focal_length``,
    -> the pinhole points ``(X/Z, Y/Z)`` (float64) whose projection through ``camera``'s lens
    they are.

    A fixed-point iteration first (fast, and exact for real lenses within the image), then, for
    the points it leaves further than :data:`UNDISTORT_TOLERANCE` away (far outside the image,
    strong lenses), a damped Newton iteration on the distortion model of :func:`project_points`
    from the distorted point itself. Raises
    :class:`JointposeError` naming the camera and the point when no ray maps there within the
    radius where the radial distortion folds back (a strong lens model does); a NaN point
    stays NaN.
    """
    lens = (camera.radial_distortion, camera.tangential_distortion, camera.distortion_model)
    target = np.asarray(distorted, dtype=np.float64)
    flat = target.reshape(-1, 2)
    with np.errstate(all="ignore"):  # where it diverges, Newton starts again from the point itself
        point = _fixed_point(flat, camera)
        residual = _distort(point[:, 0], point[:, 1], *lens) - flat
    active = np.flatnonzero(~(np.abs(residual) <= UNDISTORT_TOLERANCE).all(axis=1) & np.isfinite(flat).all(axis=1))
    point[active] = flat[active]
    residual[active] = _distort(flat[active, 0], flat[active, 1], *lens) - flat[active]
    for _ in range(UNDISTORT_STEPS):
        if len(active) == 0:
            break
        p, r, aim = point[active], residual[active], flat[active]
        jacobian = _lens_jacobian(p, r + aim, lens)
        a, b, c, d = jacobian[:, 0, 0], jacobian[:, 0, 1], jacobian[:, 1, 0], jacobian[:, 1, 1]
        with np.errstate(divide="ignore", invalid="ignore"):  # Cramer's rule on each 2x2
            step = np.stack([d * r[:, 0] - b * r[:, 1], a * r[:, 1] - c * r[:, 0]], axis=-1) / (a * d - b * c)[:, None]
        step = np.where(np.isfinite(step), step, 0.0)
        for _ in range(8):  # halve the step where it would not bring the point closer; else stay
            trial = p - step
            trial_residual = _distort(trial[:, 0], trial[:, 1], *lens) - aim
            better = ((trial_residual**2).sum(axis=-1) <= (r**2).sum(axis=-1))[:, None]
            p, r = np.where(better, trial, p), np.where(better, trial_residual, r)
            if better.all():
                break
            step = np.where(better, 0.0, step / 2)
        point[active], residual[active] = p, r
        active = active[(np.abs(r) > UNDISTORT_TOLERANCE).any(axis=1)]
    # Past the fold the radial factor r (1 + k1 r^2 + k2 r^4 + k3 r^6) no longer grows with r
    # (or turns negative): a solution there is a ray the lens cannot show.
    k1, k2, k3 = camera.radial_distortion
    r2 = (point**2).sum(axis=-1)
    with np.errstate(invalid="ignore"):  # NaN points
        folded = (1.0 + 3 * k1 * r2 + 5 * k2 * r2**2 + 7 * k3 * r2**3 <= 0) | (
            1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3 <= 0
        )
    missed = np.isfinite(flat).all(axis=-1) & (~(np.abs(residual) <= UNDISTORT_TOLERANCE).all(axis=-1) | folded)
    if missed.any():
        pixel = flat[np.flatnonzero(missed)[0]] * np.asarray(camera.focal_length) + np.asarray(camera.center)
        raise JointposeError(
            f"camera {camera.id}: no ray reaches pixel ({pixel[0]:.6g}, {pixel[1]:.6g}) through its lens model "
            f"(radial {tuple(camera.radial_distortion)}, tangential {tuple(camera.tangential_distortion)}): "
            "a point far outside the image, or a distortion fitted for a smaller field of view"
        )
    return point.reshape(target.shape)


def _fixed_point(distorted: np.ndarray, camera: Camera, iterations: int = 20) -> np.ndarray:
    """(N, 2) distorted normalised points -> the pinhole points the lens model's fixed-point
    iteration reaches in ``iterations`` steps (it may diverge far outside the image)."""
    k1, k2, k3 = camera.radial_distortion
    p1, p2 = camera.tangential_distortion
    xd, yd = distorted[:, 0], distorted[:, 1]
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        if camera.distortion_model == "h36m":
            factor = radial + p1 * x + p2 * y
            x, y = (xd - p1 * r2) / factor, (yd - p2 * r2) / factor
        else:
            x = (xd - 2.0 * p1 * x * y - p2 * (r2 + 2.0 * x * x)) / radial
            y = (yd - p1 * (r2 + 2.0 * y * y) - 2.0 * p2 * x * y) / radial
    return np.stack([x, y], axis=-1)


def _lens_jacobian(point: np.ndarray, distorted: np.ndarray, lens: tuple) -> np.ndarray:
    """(..., 2, 2) derivatives of :func:`_distort` at ``point`` (..., 2), whose image is
    ``distorted``, by forward differences: ``[..., i, j]`` = d distorted_i / d point_j."""
    x, y, h = point[..., 0], point[..., 1], 1e-7
    return np.stack([(_distort(x + h, y, *lens) - distorted) / h, (_distort(x, y + h, *lens) - distorted) / h], -1)


def root_trajectory(poses: np.ndarray, rays: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The root's camera-space position (frames, 3) in metres that puts root-relative ``poses``
    (frames, J, 3) metres onto their image ``rays`` (frames, J, 2) (``"intrinsics"``
    normalisation: undistorted ``(x - cx) / fx``), by linear least squares per frame.

    Each joint gives two equations linear in the root T: ``T_x - u T_z = u P_z - P_x`` and
    ``T_y - v T_z = v P_z - P_y`` (the projection of P + T lands on (u, v)); ``weights``
    (frames, J), e.g. detector confidences, weight them. Exact when poses and rays agree;
    rays that fix no depth (all alike) give the least-norm solution.
    """
    poses, rays = np.asarray(poses, dtype=np.float64), np.asarray(rays, dtype=np.float64)
    u, v = rays[..., 0], rays[..., 1]
    zeros, ones = np.zeros_like(u), np.ones_like(u)
    a = np.concatenate(
        [np.stack([ones, zeros, -u], axis=-1), np.stack([zeros, ones, -v], axis=-1)], axis=1
    )  # (frames, 2J, 3)
    b = np.concatenate([u * poses[..., 2] - poses[..., 0], v * poses[..., 2] - poses[..., 1]], axis=1)
    if weights is not None:
        w = np.sqrt(np.concatenate([weights, weights], axis=1))
        a, b = a * w[..., None], b * w
    ata = np.einsum("fji,fjk->fik", a, a)
    atb = np.einsum("fji,fj->fi", a, b)
    return np.einsum("fik,fk->fi", np.linalg.pinv(ata), atb)  # pinv: rays all alike give a finite answer


def normalize_screen_coordinates(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels (..., 2) -> normalised coordinates: x in [0, w] -> [-1, 1], aspect ratio kept.
    Integer pixels come back as float64; floating ones keep their dtype."""
    pixels = _floating(pixels)
    return pixels / w * 2.0 - np.array([1.0, h / w], dtype=pixels.dtype)


def keypoint_pixels(normalized: np.ndarray, camera: Camera, normalization: str) -> np.ndarray:
    """Inverse of :func:`normalize_keypoints`: the network's input (..., 2) -> pixels of ``camera``."""
    if normalization == "screen":
        return image_coordinates(normalized, camera.res_w, camera.res_h)
    if normalization == "intrinsics":
        rays = _floating(normalized)
        points = np.concatenate([rays, np.ones_like(rays[..., :1])], axis=-1)
        return camera.project(points).astype(rays.dtype, copy=False)
    raise bad_normalization(normalization)


def image_coordinates(normalized: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`: normalised (..., 2) -> pixels."""
    normalized = _floating(normalized)
    return (normalized + np.array([1.0, h / w], dtype=normalized.dtype)) * w / 2.0
