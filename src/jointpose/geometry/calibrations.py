"""Camera calibrations as :class:`~jointpose.geometry.cameras.Camera` lists per subject:
Human3.6M's (shipped with the package), HumanEva-I's, and the ``h36m_cameras.json`` schema
that datasets carry their own cameras in, read (:func:`cameras_from_schema`) and written
(:func:`cameras_schema`, :func:`subject_cameras_schema`)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from jointpose.errors import JointposeError, brief
from jointpose.geometry.cameras import Camera, finite_numbers


def cameras_from_schema(schema: dict[str, Any], source: str) -> dict[str, list[Camera]]:
    """Build ``{subject: [Camera, ...]}`` from the ``h36m_cameras.json`` schema.

    ``schema`` holds ``intrinsic`` (a list, one per camera) and ``extrinsic``
    (subject -> list of ``{orientation, translation}`` in millimetres, same order), and
    optionally ``subject_intrinsic`` (subject -> its own list of intrinsics, which replaces
    ``intrinsic`` for that subject). Subjects whose extrinsics are all empty are left out.
    ``source`` names where the schema came from, for error messages.
    """
    try:
        shared = schema["intrinsic"]
        extrinsic = schema["extrinsic"]
        own = schema.get("subject_intrinsic", {})
        cameras: dict[str, list[Camera]] = {}
        for subject, views in extrinsic.items():
            if all(not view for view in views):
                continue  # no calibration published for this subject (S2, S3, S4)
            intrinsic = own.get(subject, shared)
            if len(views) != len(intrinsic):
                raise JointposeError(
                    f"subject {subject} has {len(views)} extrinsic entries but there are {len(intrinsic)} cameras"
                )
            cameras[str(subject)] = [
                Camera(
                    id=_camera_id(intr["id"]),
                    res_w=intr["res_w"],  # whole numbers, as Camera checks: not 1000.7, "1000" or true
                    res_h=intr["res_h"],
                    focal_length=_floats(intr["focal_length"], 2),
                    center=_floats(intr["center"], 2),
                    radial_distortion=_floats(intr.get("radial_distortion", [0, 0, 0]), 3),
                    tangential_distortion=_floats(intr.get("tangential_distortion", [0, 0]), 2),
                    orientation=_floats(ext["orientation"], 4),
                    translation=tuple(t / 1000.0 for t in _floats(ext["translation"], 3)),
                    distortion_model=intr.get("distortion_model", "h36m"),
                )
                for intr, ext in zip(intrinsic, views)
            ]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise JointposeError(f"{source}: malformed camera calibration ({exc!r:.200})") from None
    except JointposeError as exc:  # the checks above and each camera's own: name the file
        raise JointposeError(f"{source}: {exc}") from None
    return cameras


def cameras_schema(cameras: list[Camera], subjects: list[str]) -> dict:
    """The ``h36m_cameras.json`` schema for one camera set shared by every subject."""
    intrinsic = [{k: v for k, v in c.to_dict().items() if k not in ("orientation", "translation")} for c in cameras]
    extrinsic = [
        {"orientation": list(c.orientation), "translation": [t * 1000.0 for t in c.translation]} for c in cameras
    ]
    return {"intrinsic": intrinsic, "extrinsic": {s: extrinsic for s in subjects}}


def subject_cameras_schema(cameras: dict[str, list[Camera]]) -> dict:
    """The schema for cameras of their own per subject (equally many each): the intrinsics
    of camera ``i`` go per subject into ``subject_intrinsic``, read by
    :func:`cameras_from_schema` before the shared ``intrinsic``."""
    schema = {
        "intrinsic": [],
        "extrinsic": {},
        "subject_intrinsic": {},
    }
    for subject, views in cameras.items():
        one = cameras_schema(views, [subject])
        schema["intrinsic"] = schema["intrinsic"] or one["intrinsic"]
        schema["extrinsic"][subject] = one["extrinsic"][subject]
        schema["subject_intrinsic"][subject] = one["intrinsic"]
    return schema


def _camera_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a camera id must be a string or a whole number, got {type(value).__name__}")
    return str(value)


def _floats(values: Any, n: int) -> tuple[float, ...]:
    """``values``' ``n`` finite numbers (:func:`~jointpose.geometry.cameras.finite_numbers`); a ValueError where it does not hold them."""
    if (numbers := finite_numbers(values, n)) is None:
        raise ValueError(f"expected {n} finite numbers, got {brief(values)}")
    return numbers


# HumanEva-I's three colour cameras C1-C3 as VideoPose3D lists them: 640 x 480 images and,
# per subject, each camera's orientation (unit quaternion w, x, y, z, camera axes to world)
# and centre (mm). VideoPose3D lists no intrinsics for them (its 2D files were made from
# HumanEva's own projections), so these cameras do not project.
_HUMANEVA_EXTRINSICS = {
    "S1": (
        ((0.424207, -0.4983646, -0.5802981, 0.4847012), (4062.227, 663.2477, 1528.397)),
        ((0.6503354, -0.7481602, -0.0919284, 0.0941766), (844.8131, -3805.2092, 1504.9929)),
        ((0.0664734, -0.0690535, 0.7416416, -0.6639132), (-797.67377, 3916.3174, 1433.6602)),
    ),
    "S2": (
        ((0.4214752, -0.4961493, -0.5838273, 0.4851187), (4112.9121, 626.4929, 1545.2988)),
        ((0.6501393, -0.7476588, -0.0954617, 0.0959808), (923.5740, -3877.9243, 1504.5518)),
        ((0.0699353, -0.0712403, 0.7421637, -0.662742), (-781.4915, 3838.8853, 1444.9929)),
    ),
}
_HUMANEVA_EXTRINSICS["S3"] = _HUMANEVA_EXTRINSICS["S1"]  # VideoPose3D lists S1's values for S3
# Subject names in VideoPose3D's HumanEva-I files: the split, then the subject.
HUMANEVA_PREFIXES = ("Train/", "Validate/", "Unlabeled/Train/", "Unlabeled/Validate/", "Unlabeled/")


def humaneva_cameras() -> dict[str, list[Camera]]:
    """HumanEva-I's cameras for every subject name of VideoPose3D's files (``Train/S1``,
    ``Validate/S2``, ...): subject -> its cameras C1, C2, C3 (extrinsics only, metres)."""
    cameras = {
        subject: [
            Camera(f"C{i + 1}", 640, 480, orientation=q, translation=tuple(v / 1000.0 for v in t))
            for i, (q, t) in enumerate(views)
        ]
        for subject, views in _HUMANEVA_EXTRINSICS.items()
    }
    return {prefix + subject: views for subject, views in cameras.items() for prefix in HUMANEVA_PREFIXES}


def h36m_cameras() -> dict[str, list[Camera]]:
    """The Human3.6M calibration shipped with the package: subject -> its 4 cameras."""
    text = resources.files("jointpose").joinpath("resources/h36m_cameras.json").read_text()
    return cameras_from_schema(json.loads(text), "built-in Human3.6M calibration")
