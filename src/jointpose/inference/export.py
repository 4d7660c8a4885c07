"""Write predicted motion: npz, JSON, CSV and BVH.

npz / JSON / CSV hold camera-space positions in metres - x right, y down, z forward -
relative to the root (joint 0 at the origin):

* npz: ``poses_3d`` (frames, 17, 3), ``joint_names``, ``fps`` and, when predicted,
  ``trajectory`` (frames, 3), the root's camera-space position;
* JSON: ``{"fps", "joint_names", "units": "metres", "axes": ..., "poses_3d": [[[x, y, z]] ...],
  "trajectory": ...}``;
* CSV: one row per frame and joint, ``frame,joint,x,y,z``.

BVH is for animation tools: Y up, centimetres, the character facing the camera (+Z). The
skeleton has constant bone lengths (each bone's median over the sequence) and one joint
per bone; at the pelvis and the thorax, zero-length branch joints let every outgoing bone
turn on its own, so forward kinematics of the file reproduces every predicted bone
direction. The root (the pelvis) and the thorax carry the body's orientation: the frame of
the hips and the spine, and of the shoulders and the spine (:func:`jointpose.geometry.bones.body_frames`;
the rest pose, a T-pose facing +Z, has the BVH axes), so a character driven by the file turns
its hips and chest with the person. Every other joint turns its bone by the shortest
rotation from its rest direction, as its parent carries it, to its direction in the frame.
The root moves along the trajectory when one is given; otherwise it stays above the origin
at leg height.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from jointpose.data.h36m import MAX_DISTANCE_M
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton
from jointpose.geometry.bones import body_frames, bone_vectors, check_poses
from jointpose.motion.bvh import Motion, write_bvh
from jointpose.safeio import atomic_path, check_bounded, check_finite, check_fps, file_path, numeric_array

FORMATS = ("npz", "json", "csv", "bvh")
AXES = "camera space: x right, y down, z forward; metres; root joint at the origin"
BRANCHES = {0: "Hip", 8: "Thorax"}  # joints with several outgoing bones
# Rest (T-pose) direction of the bone ending at each joint, BVH axes: x = character's left, y up, z forward.
_REST_DIRECTIONS = {
    1: (-1, 0, 0),
    2: (0, -1, 0),
    3: (0, -1, 0),
    4: (1, 0, 0),
    5: (0, -1, 0),
    6: (0, -1, 0),
    7: (0, 1, 0),
    8: (0, 1, 0),
    9: (0, 1, 0),
    10: (0, 1, 0),
    11: (1, 0, 0),
    12: (1, 0, 0),
    13: (1, 0, 0),
    14: (-1, 0, 0),
    15: (-1, 0, 0),
    16: (-1, 0, 0),
}
# Camera space (x right, y down, z forward) -> BVH (y up, character facing +z): turn 180 deg about x.
_CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])


def format_from_path(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` when given, else the output file's extension. A ``fmt`` other
    than the format the extension names is refused: the file would not read back as its name says."""
    suffix = Path(path).suffix.lstrip(".").lower()
    if fmt is not None and suffix in FORMATS and suffix != fmt.lower():
        raise JointposeError(
            "{path}: its extension names the {suffix} format, and {0} {fmt}; leave out {0} or name the file .{fmt}",
            fields=("format",),
            path=path,
            suffix=suffix,
            fmt=fmt,
        )
    fmt = (fmt or suffix).lower()
    if fmt not in FORMATS:
        raise JointposeError(
            "{path}: unknown output format '{fmt}' (use {0} {formats} or one of those extensions)",
            fields=("format",),
            path=path,
            fmt=fmt,
            formats="|".join(FORMATS),
        )
    return fmt


def export(
    path: str | Path,
    poses: np.ndarray,
    fps: float,
    *,
    trajectory: np.ndarray | None = None,
    fmt: str | None = None,
    extra: dict[str, np.ndarray] | None = None,
    info: dict[str, str | float | tuple[float, ...]] | None = None,
) -> Path:
    """Write (frames, 17, 3) camera-space poses (metres, root-relative) in the chosen format.

    ``extra`` per-frame arrays (first axis = frames), e.g. the 2D input and its confidence, and
    ``info`` values describing them (a name, a number, a few numbers), go into npz and JSON files
    under their names. The file appears complete or not at all: it is written beside ``path``
    under a temporary name, then renamed.
    """
    path = file_path(path, "path")
    poses = check_poses(numeric_array(poses, "poses"))
    if trajectory is not None:
        trajectory = numeric_array(trajectory, "trajectory")
        if trajectory.shape != (len(poses), 3):
            raise JointposeError(f"trajectory must be ({len(poses)}, 3), got {trajectory.shape}")
    fps = check_fps(fps, "fps")
    check_finite(poses, f"{path}: poses to write")
    check_bounded(poses, MAX_DISTANCE_M, f"{path}: poses to write", f"hold coordinates beyond {MAX_DISTANCE_M:g} m")
    if trajectory is not None:
        check_finite(trajectory, f"{path}: trajectory to write")
        check_bounded(
            trajectory, MAX_DISTANCE_M, f"{path}: trajectory to write", f"holds positions beyond {MAX_DISTANCE_M:g} m"
        )
    if extra is not None and not isinstance(extra, dict):
        raise JointposeError(f"extra must be a dict of per-frame arrays, got {type(extra).__name__}")
    reserved = ("poses_3d", "joint_names", "fps", "trajectory")
    for name in extra or {}:
        if not isinstance(name, str) or name in reserved:
            raise JointposeError(f"extra {name!r}: a name of its own (not {', '.join(reserved)})")
    extra = {name: _extra_array(name, value) for name, value in (extra or {}).items()}
    wrong = [f"{name} {value.shape}" for name, value in extra.items() if value.ndim == 0 or len(value) != len(poses)]
    if wrong:
        raise JointposeError(f"extra arrays must have {len(poses)} frames, got {', '.join(wrong)}")
    for name, value in (info or {}).items():
        small = isinstance(value, str) or np.asarray(value).dtype.kind in "iuf" and np.asarray(value).size <= 16
        if name in extra or name in reserved or not small:
            raise JointposeError(f"info {name!r}: a name or up to 16 numbers, under a key of its own")
        extra[name] = np.asarray(value)
    fmt = format_from_path(path, fmt)
    if fmt == "json" and (odd := [k for k, v in extra.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]):
        raise JointposeError(f"{path}: {odd[0]!r} holds NaN or infinity, which JSON has no numbers for (write .npz)")
    if fmt == "csv" and trajectory is not None:
        warnings.warn(
            JointposeWarning(
                f"{path}: CSV holds the root-relative joints only; the trajectory goes to npz, JSON or BVH"
            ),
            stacklevel=2,
        )
    with atomic_path(path) as partial:
        if fmt in ("npz", "json"):
            {"npz": _write_npz, "json": _write_json}[fmt](partial, poses, fps, trajectory, extra)
        else:
            {"csv": _write_csv, "bvh": _write_bvh}[fmt](partial, poses, fps, trajectory)
    return path


def _extra_array(name: str, value: Any) -> np.ndarray:
    """An ``extra`` or ``info`` array: numbers only (an integer array keeps its type)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biufO":  # text, bytes, dates
        raise JointposeError(f"extra {name!r}: an array of numbers, got dtype {value.dtype}")
    checked = numeric_array(value, f"extra {name!r}")
    as_given = np.asarray(value)  # nested lists of whole numbers stay integers
    return as_given if as_given.dtype.kind in "iu" else checked


def _write_npz(
    path: Path, poses: np.ndarray, fps: float, trajectory: np.ndarray | None, extra: dict[str, np.ndarray]
) -> None:
    arrays = {name: value.astype(np.float32) if value.dtype.kind == "f" else value for name, value in extra.items()}
    if trajectory is not None:
        arrays["trajectory"] = np.asarray(trajectory, np.float32)
    with open(path, "wb") as handle:
        np.savez_compressed(
            handle,
            poses_3d=poses.astype(np.float32),
            joint_names=np.array(skeleton.JOINT_NAMES),
            fps=np.array(fps),
            **arrays,
        )


def _write_json(
    path: Path, poses: np.ndarray, fps: float, trajectory: np.ndarray | None, extra: dict[str, np.ndarray]
) -> None:
    doc = {
        "fps": fps,
        "joint_names": list(skeleton.JOINT_NAMES),
        "units": "metres",
        "axes": AXES,
        "poses_3d": np.round(poses, 6).tolist(),
    }
    if trajectory is not None:
        doc["trajectory"] = np.round(trajectory, 6).tolist()
    doc |= {name: (np.round(value, 6) if value.dtype.kind == "f" else value).tolist() for name, value in extra.items()}
    path.write_text(json.dumps(doc))


def _write_csv(path: Path, poses: np.ndarray, fps: float, trajectory: np.ndarray | None) -> None:
    frames, joints = np.meshgrid(np.arange(len(poses)), np.arange(skeleton.NUM_JOINTS), indexing="ij")
    names = np.array(skeleton.JOINT_NAMES)[joints.ravel()]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "joint", "x", "y", "z"])
        flat = poses.reshape(-1, 3)
        writer.writerows(zip(frames.ravel(), names, *(np.round(flat[:, k], 6) for k in range(3))))


def bvh_skeleton(lengths: np.ndarray) -> tuple[list[str], list[int], np.ndarray, list[bool], list[int]]:
    """The BVH hierarchy for the 17 joints with branch joints, from bone lengths (16,) in cm.

    Returns names, parents, rest offsets (J, 3), End-Site flags, and for each H36M joint
    its index in the hierarchy.
    """
    names, parents, offsets, ends = [], [], [], []
    where: dict[int, int] = {}

    def add(name: str, parent: int, offset, end: bool = False) -> int:
        names.append(name)
        parents.append(parent)
        offsets.append(np.asarray(offset, dtype=np.float64))
        ends.append(end)
        return len(names) - 1

    children = {
        j: [c for c in range(skeleton.NUM_JOINTS) if skeleton.PARENTS[c] == j] for j in range(skeleton.NUM_JOINTS)
    }

    def place(joint: int, bvh_parent: int, offset) -> None:
        where[joint] = add(skeleton.JOINT_NAMES[joint], bvh_parent, offset)
        kids = children[joint]
        if not kids:
            add(f"{skeleton.JOINT_NAMES[joint]}_End", where[joint], np.zeros(3), end=True)
            return
        for child in kids:
            rest = np.asarray(_REST_DIRECTIONS[child], float) * lengths[skeleton.bone_index(child)]
            if joint in BRANCHES:  # a zero-length joint per outgoing bone turns that bone alone
                branch = add(f"{BRANCHES[joint]}_to_{skeleton.JOINT_NAMES[child]}", where[joint], np.zeros(3))
                place(child, branch, rest)
            else:
                place(child, where[joint], rest)

    place(0, -1, np.zeros(3))
    names = [n.replace("/", "_") for n in names]  # "Neck/Nose" -> "Neck_Nose": safe in any tool
    return names, parents, np.stack(offsets), ends, [where[j] for j in range(skeleton.NUM_JOINTS)]


def _shortest_rotation(a: np.ndarray, b: np.ndarray) -> Rotation:
    """Rotations (per row) taking unit vectors ``a`` onto unit vectors ``b`` by the smallest angle."""
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.clip((a * b).sum(-1), -1.0, 1.0)
    angle = np.arctan2(sin, cos)
    # Opposite vectors: any perpendicular axis will do.
    fallback = np.cross(a, np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    axis = np.where(sin[:, None] > 1e-9, axis, fallback)
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    return Rotation.from_rotvec(axis * angle[:, None])


def _orientation(axes: np.ndarray) -> Rotation:
    """Rotations from (frames, 3, 3) body axes as columns (left, up, forward, BVH axes); a frame
    whose axes are undefined (coinciding joints) keeps the rest orientation."""
    defined = np.isfinite(axes).all(axis=(1, 2))
    return Rotation.from_matrix(np.where(defined[:, None, None], np.nan_to_num(axes), np.eye(3)))


def poses_to_motion(poses: np.ndarray, fps: float, trajectory: np.ndarray | None = None) -> tuple[Motion, list[int]]:
    """Inverse kinematics: camera-space poses (metres) -> a BVH :class:`Motion` (cm, Y up).

    Returns the motion and each H36M joint's index in it.
    """
    pts = np.einsum("ab,fjb->fja", _CAMERA_TO_BVH, poses) * 100.0
    vectors = bone_vectors(pts)
    lengths = np.median(np.linalg.norm(vectors, axis=-1), axis=0)
    names, parents, offsets, ends, where = bvh_skeleton(lengths)
    frames = len(poses)
    glob = [Rotation.identity(frames) for _ in names]
    local = np.tile([1.0, 0.0, 0.0, 0.0], (frames, len(names), 1))
    bvh_to_h36m = {b: j for j, b in enumerate(where)}
    with np.errstate(invalid="ignore"):  # coinciding joints: axes undefined, see _orientation
        chest, pelvis = np.moveaxis(body_frames(pts), 1, 0)
    carried = {where[0]: _orientation(pelvis), where[8]: _orientation(chest)}  # the body's turn
    for b in range(len(names)):
        parent = parents[b]
        parent_glob = glob[parent] if parent >= 0 else Rotation.identity(frames)
        if b in carried:
            glob[b] = carried[b]
            local[:, b] = (parent_glob.inv() * glob[b]).as_quat(scalar_first=True)
            continue
        child_bvh = [c for c in range(len(names)) if parents[c] == b and not ends[c]]
        # The joint turns its single outgoing bone; branch joints and the root carry one each.
        bone_child = next((bvh_to_h36m[c] for c in child_bvh if c in bvh_to_h36m), None)
        if parent < 0 or bone_child is None or len(child_bvh) != 1:
            glob[b] = parent_glob
            continue
        # A bone of zero length in a frame (or in all: its offset too) has no direction: it keeps
        # its rest direction there, as its parent carries it.
        rest = parent_glob.apply(np.tile(_REST_DIRECTIONS[bone_child], (frames, 1)).astype(np.float64))
        target = vectors[:, skeleton.bone_index(bone_child)]
        target = target / np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), 1e-9)
        glob[b] = _shortest_rotation(rest, target) * parent_glob
        local[:, b] = (parent_glob.inv() * glob[b]).as_quat(scalar_first=True)
    if trajectory is not None:
        root = np.einsum("ab,fb->fa", _CAMERA_TO_BVH, trajectory) * 100.0
    else:
        leg = lengths[skeleton.bone_index(2)] + lengths[skeleton.bone_index(3)]
        root = np.tile([0.0, leg, 0.0], (frames, 1))
    motion = Motion.from_arrays(names, parents, offsets, local, root, fps, rotation_order="ZXY", end_sites=ends)
    return motion, where


def _write_bvh(path: Path, poses: np.ndarray, fps: float, trajectory: np.ndarray | None) -> None:
    motion, _ = poses_to_motion(poses, fps, trajectory)
    write_bvh(motion, path)
