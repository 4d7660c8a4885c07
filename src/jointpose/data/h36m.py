"""Human3.6M-format datasets: VideoPose3D's ``data_3d_h36m.npz`` and ``data_2d_h36m_<name>.npz``.

``data_3d_h36m.npz`` holds ``positions_3d``: subject -> action -> (frames, 32, 3) world
positions in metres (17-joint arrays are accepted too). ``data_2d_h36m_<name>.npz`` holds
``positions_2d``: subject -> action -> list of one (frames, joints, 2 or 3) pixel array per
camera, and ``metadata`` with the 2D layout's ``keypoints_symmetry``. Both are read
unchanged, through the restricted unpickler of :mod:`jointpose.safeio`.

Cameras come from a ``cameras`` entry in either file when present (the schema of
``h36m_cameras.json``, as a JSON string or a dict; written by ``jointpose data build``),
otherwise from the built-in Human3.6M calibration, looked up by subject name.

Each loaded :class:`PoseSequence` is one (subject, action, camera) view: 2D keypoints in the
network's input coordinates (``normalization``: VideoPose3D's normalised screen coordinates,
or the camera's rays through its intrinsics, see :mod:`jointpose.geometry.cameras`), and 3D
targets in camera space, root-relative, in metres.

HumanEva-I in VideoPose3D's layout (``-d humaneva15``, :data:`DATASETS`) is read the same
way from ``data_3d_humaneva15.npz`` and ``data_2d_humaneva15_<name>.npz``: 15 joints
(:data:`jointpose.geometry.skeleton.HUMANEVA_15`), subjects named by split (``Train/S1``,
``Validate/S1``), actions split into chunks (``Walking 1 chunk0``), 60 fps, and HumanEva-I's
three cameras (:func:`jointpose.geometry.calibrations.humaneva_cameras`).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jointpose.data.layouts import aligned_joints
from jointpose.errors import JointposeError, JointposeWarning, brief, listed
from jointpose.geometry import skeleton
from jointpose.geometry.calibrations import cameras_from_schema, h36m_cameras, humaneva_cameras
from jointpose.geometry.cameras import OFF_SCREEN, SCREEN_BOUND, Camera, check_normalization
from jointpose.safeio import (
    check_bounded,
    check_finite,
    check_limit,
    check_path,
    load_npz,
    npz_keys,
    pickle_budget,
    stored_fps,
)

# No joint of a person lies this far (metres) from their root, nor a person this far from a
# camera: larger values are another unit (Human3.6M's original positions are millimetres) or broken.
MAX_BODY_M = 10.0
MAX_DISTANCE_M = 10_000.0
MAX_DOWNSAMPLE = 10_000  # keep every n-th frame, n at most this
MAX_JOINTS = 64  # per pose in a dataset file (Human3.6M's have 32)

# Human3.6M's usual protocol: the 2D keypoints VideoPose3D's best model reads (CPN, fine-tuned),
# the people it trains on and the people it is tested on.
DEFAULT_KEYPOINTS = "cpn_ft_h36m_dbb"
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")

# What a built dataset's 2D points stand for (``data build --input-layout``), and the keypoint
# layout (jointpose.data.layouts.LAYOUTS) they were converted from: BlazePose's points are
# built as its COCO-17 subset.
INPUT_LAYOUTS = {"h36m": "h36m17", "coco": "coco17", "blazepose": "coco17"}


@dataclass
class PoseSequence:
    """One camera view of one recorded action."""

    subject: str
    action: str
    camera_index: int
    camera: Camera
    keypoints: np.ndarray  # (frames, joints_2d, 2) input coordinates (``normalization``), float32
    poses_3d: np.ndarray | None  # (frames, joints_3d, 3) camera space, root at 0, metres, float32
    trajectory: np.ndarray | None  # (frames, 3) root position in camera space, metres, float32
    normalization: str = "screen"  # how ``keypoints`` were normalised (geometry.cameras.NORMALIZATIONS)

    @property
    def key(self) -> str:
        """``<subject>/<action>/<camera index>``, e.g. ``S9/Walking 1/0``."""
        return f"{self.subject}/{self.action}/{self.camera_index}"

    @property
    def action_group(self) -> str:
        """The action's name before the first space (``Walking 1`` -> ``Walking``)."""
        return action_group(self.action)


@dataclass
class Dataset:
    """Sequences plus the 2D layout's left/right keypoints (for flip augmentation)."""

    sequences: list[PoseSequence]
    keypoints_left: tuple[int, ...]
    keypoints_right: tuple[int, ...]
    num_keypoints: int
    keypoints_name: str
    fps: float = 50.0  # frame rate after --downsample
    normalization: str = "screen"  # of every sequence's keypoints
    input_layout: str = "h36m"  # the points the 2D stands for: "h36m" joints, "coco"/"blazepose" converted,
    # or "NAME order": a detector's keypoints in their own order (VideoPose3D's layout_name NAME)

    @property
    def num_frames(self) -> int:
        """Frames of 2D over every sequence."""
        return sum(len(s.keypoints) for s in self.sequences)


def alignment_joints(data: Dataset, dataset: str) -> tuple[int, ...] | None:
    """The predicted joints that ``data``'s 2D keypoints mark where they are, those the
    alignment with the 2D may move. For Human3.6M-17 keypoints, the rule of the layout they
    were converted from (:data:`INPUT_LAYOUTS`, :func:`jointpose.data.layouts.aligned_joints`):
    None (every joint) for the joints themselves, the limb joints for a detector's points
    (``data build --input-layout coco|blazepose``). For another skeleton (``dataset``), None
    where the keypoints are its joints in their order, and none, ``()``, otherwise."""
    joints = dataset_kind(dataset).skeleton.num_joints
    if data.num_keypoints != joints or data.input_layout not in INPUT_LAYOUTS:  # not the joints' order
        return ()
    if joints != skeleton.NUM_JOINTS:  # another skeleton: only its own joints are the joints
        return None if data.input_layout == "h36m" else ()
    return aligned_joints(INPUT_LAYOUTS[data.input_layout])


def check_names(names: Any, name: str) -> list[str]:
    """``names`` (the argument ``name``: subjects or actions) as a list of strings, from any
    collection of them (list, tuple, set, array); a bare string, which would be read letter
    by letter, is refused."""
    items = None if isinstance(names, (str, bytes)) or not isinstance(names, Iterable) else list(names)
    if items is None or not all(isinstance(n, str) for n in items):
        shown = repr(names) if isinstance(names, (str, bytes)) else type(names).__name__
        example = "['Walking']" if name == "actions" else "['S9']"
        raise JointposeError(
            "{0} must be a list of names, e.g. {example}, got {value}", fields=(name,), example=example, value=shown
        )
    return [str(n) for n in items]


def check_downsample(value: Any) -> int:
    """``downsample`` (keep every n-th frame) as an int in [1, :data:`MAX_DOWNSAMPLE`]."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or not 1 <= value <= MAX_DOWNSAMPLE
    ):
        raise JointposeError(
            "{0} must be an integer in [1, {most}], got {value!r}",
            fields=("downsample",),
            most=MAX_DOWNSAMPLE,
            value=value,
        )
    return int(value)


def check_keypoints_name(value: Any) -> str:
    """``keypoints``, the 2D detections' name in ``data_2d_<dataset>_<keypoints>.npz``: a
    non-empty string."""
    if not isinstance(value, str) or not value:
        raise JointposeError("{0} must be a keypoints name (str), got {value!r}", fields=("keypoints",), value=value)
    if "/" in value or "\\" in value:  # a name within the data folder, not a path out of it
        raise JointposeError("{0} must be a name, without / or \\, got {value!r}", fields=("keypoints",), value=value)
    return value


def action_group(action: str) -> str:
    """Group name of an action: the part before the first space."""
    return action.split(" ")[0]


@dataclass(frozen=True)
class DatasetKind:
    """What a ``-d`` name means: the files' name, the 3D skeleton, the frame rate when the
    2D file holds none, the built-in cameras (used when the files carry no calibration) and
    whether those have intrinsics (the intrinsics-aware input needs them)."""

    name: str
    skeleton: skeleton.Skeleton
    fps: float
    cameras: Callable[[], dict[str, list[Camera]]]
    intrinsics: bool


DATASETS: dict[str, DatasetKind] = {
    "h36m": DatasetKind("h36m", skeleton.H36M_17, 50.0, h36m_cameras, intrinsics=True),
    "humaneva15": DatasetKind("humaneva15", skeleton.HUMANEVA_15, 60.0, humaneva_cameras, intrinsics=False),
}


def dataset_kind(name: str) -> DatasetKind:
    """The dataset a ``-d`` name means (:data:`DATASETS`).

    Raises:
        JointposeError: an unknown name (naming the ``dataset`` field).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise JointposeError(
            "{0} must be one of {known}, got {value!r}",
            fields=("dataset",),
            value=name,
            known=", ".join(DATASETS),
        )
    return DATASETS[name]


class H36MFiles:
    """The 3D and 2D files of one dataset directory, read once and validated on access.

    Args:
        data_dir: the folder (``--data-dir``).
        keypoints: the 2D detections' name (``-k``).
        dataset: ``h36m`` or ``humaneva15`` (:data:`DATASETS`): file names, skeleton, cameras.
    """

    def __init__(self, data_dir: str | Path, keypoints: str, dataset: str = "h36m") -> None:
        self.kind = kind = dataset_kind(dataset)
        check_keypoints_name(keypoints)
        self.data_dir = check_path(data_dir, "data_dir")
        if not self.data_dir.is_dir():
            raise JointposeError("{0}: directory not found: {path}", fields=("data_dir",), path=self.data_dir)
        self.path_3d = self.data_dir / f"data_3d_{kind.name}.npz"
        self.path_2d = self.data_dir / f"data_2d_{kind.name}_{keypoints}.npz"
        if not self.path_2d.is_file():
            prefix = f"data_2d_{kind.name}_"
            available = sorted(p.name[len(prefix) : -4] for p in self.data_dir.glob(f"{prefix}*.npz"))
            raise JointposeError(
                "{0} {keypoints}: file not found: {path} ({1} {dataset} keypoints in {folder}: {available})",
                fields=("keypoints", "dataset"),
                keypoints=keypoints,
                path=self.path_2d,
                dataset=kind.name,
                folder=self.data_dir,
                available=", ".join(available) or "none",
            )
        self.keypoints_name = keypoints
        files_2d = load_npz(self.path_2d, keys=("positions_2d", "fps", "metadata", "cameras"))
        self.fps = stored_fps(files_2d, self.path_2d) or kind.fps  # data build's rate; the dataset's own otherwise
        self.positions_2d = _nested_dict(files_2d, "positions_2d", self.path_2d)
        self.metadata = _object(files_2d, "metadata", self.path_2d) if "metadata" in files_2d else {}
        self.positions_3d: dict[str, Any] | None = None
        cameras_entry, cameras_path = files_2d.get("cameras"), self.path_2d
        if self.path_3d.is_file():
            files_3d = load_npz(self.path_3d, keys=("positions_3d", "cameras"))
            self.positions_3d = _nested_dict(files_3d, "positions_3d", self.path_3d)
            if "cameras" in files_3d:
                cameras_entry, cameras_path = files_3d["cameras"], self.path_3d
        if cameras_entry is not None:
            self.cameras = cameras_from_schema(_camera_schema(cameras_entry, cameras_path), str(cameras_path))
        else:
            self.cameras = kind.cameras()

    def input_layout(self) -> str:
        """What the 2D points stand for (metadata ``input_layout``, written by ``data build``):
        ``"coco"`` or ``"blazepose"`` when they were converted from that detector's points, else
        ``"h36m"``, the joints; a file without ``input_layout`` whose VideoPose3D ``layout_name``
        is not the dataset's skeleton (its ``detectron_pt_coco`` files: ``"coco"``) holds a
        detector's keypoints in their own order, ``"coco order"``: none marks a joint of the
        same index."""
        metadata = self.metadata if isinstance(self.metadata, dict) else {}
        named = metadata.get("layout_name")
        if "input_layout" not in metadata and isinstance(named, str) and named not in DATASETS:
            return f"{named} order"
        layout = metadata.get("input_layout", "h36m")
        if not isinstance(layout, str) or layout not in INPUT_LAYOUTS:
            raise JointposeError(
                f"{self.path_2d}: metadata['input_layout'] must be one of {', '.join(INPUT_LAYOUTS)}, got {brief(layout)}"
            )
        return str(layout)  # a numpy string too, which a checkpoint cannot hold

    def symmetry(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Left and right keypoint indices of the 2D layout (metadata, else the dataset skeleton's)."""
        sym = self.metadata.get("keypoints_symmetry") if isinstance(self.metadata, dict) else None
        if sym is None:
            return self.kind.skeleton.left, self.kind.skeleton.right
        sides = list(sym) if isinstance(sym, (list, tuple, np.ndarray)) else []
        if not (
            len(sides) == 2
            and all(isinstance(side, (list, tuple, np.ndarray)) for side in sides)
            and all(isinstance(i, numbers.Integral) and not isinstance(i, (bool, np.bool_)) for s in sides for i in s)
        ):  # whole numbers as written: not "45" read as 4 and 5, nor 4.7 as 4
            raise JointposeError(
                f"{self.path_2d}: metadata['keypoints_symmetry'] must be two lists of keypoint indices, "
                f"got {brief(sym)}"
            )
        left, right = (tuple(int(i) for i in side) for side in sides)
        if len(left) != len(right):
            raise JointposeError(f"{self.path_2d}: metadata['keypoints_symmetry'] sides differ in length")
        if not left or min(left + right) < 0 or len({*left, *right}) != 2 * len(left):
            raise JointposeError(
                f"{self.path_2d}: metadata['keypoints_symmetry'] needs left/right pairs of distinct "
                f"keypoint indices >= 0, each on one side once, got {brief([list(left), list(right)])}"
            )
        return left, right


def load_dataset(
    data_dir: str | Path,
    keypoints: str,
    subjects: list[str],
    actions: list[str] | None = None,
    *,
    subset: float = 1.0,
    downsample: int = 1,
    require_3d: bool = True,
    normalization: str = "screen",
    dataset: str = "h36m",
    use_3d: bool = True,
) -> Dataset:
    """Load the camera views of ``subjects`` (and action groups ``actions``) from ``data_dir``.

    Args:
        data_dir: folder with ``data_3d_<dataset>.npz`` and ``data_2d_<dataset>_<keypoints>.npz``.
        keypoints: the 2D detections' name (``-k``), e.g. ``gt`` or ``cpn_ft_h36m_dbb``.
        subjects: subject names, e.g. ``["S9", "S11"]``.
        actions: action groups to keep (name before the first space), or None for all.
        subset: fraction of each sequence to keep (a contiguous, deterministic chunk).
        downsample: keep every n-th frame.
        require_3d: fail when the 3D file is missing (training and evaluation need it).
        normalization: the 2D input coordinates, ``"screen"`` or ``"intrinsics"``
            (:func:`jointpose.geometry.cameras.normalize_keypoints`), with each view's camera.
        dataset: ``h36m`` or ``humaneva15`` (:data:`DATASETS`): file names, skeleton, cameras.
        use_3d: False leaves the 3D file unread even where it exists (semi-supervised
            training's unlabelled subjects): sequences carry 2D only.
    """
    subjects = check_names(subjects, "subjects")
    if actions is not None:
        actions = check_names(actions, "actions")
    check_normalization(normalization)
    if not 0.0 < subset <= 1.0:
        raise JointposeError("{0} must lie in (0, 1], got {value}", fields=("subset",), value=subset)
    downsample = check_downsample(downsample)
    files = H36MFiles(data_dir, keypoints, dataset)
    if not use_3d:
        files.positions_3d = None
    elif files.positions_3d is None and require_3d:
        raise JointposeError(f"file not found: {files.path_3d}")
    left, right = files.symmetry()
    sequences: list[PoseSequence] = []
    num_keypoints: int | None = None
    trimmed: list[str] = []
    for subject in subjects:
        actions_2d = _subject_actions(files, subject)
        selected = _select_actions(actions_2d, actions, subject, files.path_2d)
        if not selected:
            raise JointposeError(f"{files.path_2d}: subject {subject} has no actions in positions_2d")
        if files.positions_3d is not None and isinstance(files.positions_3d[subject], dict):  # none left out unsaid
            lacking = [
                a
                for a in files.positions_3d[subject]
                if a not in actions_2d and (actions is None or action_group(a) in actions)
            ]
            if lacking:
                raise JointposeError(
                    f"{files.path_2d}: {subject} '{listed(lacking[:1])}' is in {files.path_3d} but not in the 2D file"
                    + (f" ({len(lacking)} actions so)" if len(lacking) > 1 else "")
                )
        for action in selected:
            for seq in _load_views(files, subject, action, subset, downsample, trimmed, normalization):
                if num_keypoints is None:
                    num_keypoints = seq.keypoints.shape[1]
                elif seq.keypoints.shape[1] != num_keypoints:
                    raise JointposeError(
                        f"{files.path_2d}: {seq.key} has {seq.keypoints.shape[1]} keypoints, "
                        f"others have {num_keypoints}"
                    )
                sequences.append(seq)
    if trimmed:
        warnings.warn(
            f"{files.path_2d}: 2D longer than 3D in {len(trimmed)} view(s), trimmed to the 3D length "
            f"({'; '.join(trimmed[:3])}{'; ...' if len(trimmed) > 3 else ''})",
            JointposeWarning,
            stacklevel=2,
        )
    if not sequences:
        raise JointposeError(f"no sequences selected from {files.path_2d} (subjects {subjects}, actions {actions})")
    if max(left + right) >= num_keypoints:
        recorded = isinstance(files.metadata, dict) and files.metadata.get("keypoints_symmetry") is not None
        source = (
            "metadata['keypoints_symmetry']"
            if recorded
            else f"no metadata['keypoints_symmetry'], and the {files.kind.skeleton.num_joints}-joint default"
        )
        raise JointposeError(f"{files.path_2d}: {source} names keypoints beyond the {num_keypoints} present")
    return Dataset(
        sequences, left, right, num_keypoints, keypoints, files.fps / downsample, normalization, files.input_layout()
    )


def _subject_actions(files: H36MFiles, subject: str) -> dict[str, Any]:
    if subject not in files.positions_2d:
        raise JointposeError(f"subject {subject} not in {files.path_2d} (it has: {listed(files.positions_2d)})")
    if files.positions_3d is not None and subject not in files.positions_3d:
        raise JointposeError(f"subject {subject} not in {files.path_3d} (it has: {listed(files.positions_3d)})")
    if subject not in files.cameras:
        raise JointposeError(f"no camera calibration for subject {subject} (calibrated: {listed(files.cameras)})")
    actions_2d = files.positions_2d[subject]
    if not isinstance(actions_2d, dict):
        raise JointposeError(f"{files.path_2d}: positions_2d['{subject}'] is not a dict of actions")
    return actions_2d


def _select_actions(available: dict[str, Any], groups: list[str] | None, subject: str, path: Path) -> list[str]:
    if groups is None:
        return list(available)
    known = {action_group(a) for a in available}
    missing = [g for g in groups if g not in known]
    if missing:
        raise JointposeError(
            "{0}: action(s) {missing} not found for {subject} in {path} (it has: {known})",
            fields=("actions",),
            missing=listed(missing),
            subject=subject,
            path=path,
            known=listed(sorted(known)),
        )
    return [a for a in available if action_group(a) in groups]


def _load_views(
    files: H36MFiles,
    subject: str,
    action: str,
    subset: float,
    downsample: int,
    trimmed: list[str],
    normalization: str,
) -> list[PoseSequence]:
    cameras = files.cameras[subject]
    views = files.positions_2d[subject][action]
    where = f"{files.path_2d}: positions_2d['{subject}']['{action}']"
    if not isinstance(views, (list, tuple)):
        raise JointposeError(f"{where} is not a list of per-camera arrays")
    if len(views) != len(cameras):
        raise JointposeError(f"{where} has {len(views)} cameras but subject {subject} has {len(cameras)} calibrated")
    world = None
    if files.positions_3d is not None:
        if action not in files.positions_3d[subject]:
            raise JointposeError(f"action '{action}' of {subject} is in {files.path_2d} but not in {files.path_3d}")
        world = _poses_3d(
            files.positions_3d[subject][action],
            f"{files.path_3d}: positions_3d['{subject}']['{action}']",
            files.kind.skeleton,
        )
    out = []
    for index, (camera, view) in enumerate(zip(cameras, views)):
        kp = _keypoints(view, f"{where}[{index}]")
        if world is not None:
            if len(kp) < len(world):
                raise JointposeError(
                    f"{where}[{index}]: 2D has {len(kp)} frames but 3D has {len(world)} "
                    f"(subject {subject}, action '{action}', camera {index})"
                )
            if len(kp) > len(world):
                trimmed.append(f"{subject}/{action}/{index}: {len(kp)} -> {len(world)} frames")
                kp = kp[: len(world)]
        with np.errstate(over="ignore"):  # an overflow is what check_finite reports
            screen = camera.normalize(kp, "screen").astype(np.float32)
        check_finite(screen, f"{where}[{index}] in float32")  # 1e300 is finite in float64 only
        # In screen units before a lens is undone (no ray reaches 1e30 px): the bound the network's
        # input at inference is held to, there after the lens is undone.
        check_bounded(screen, SCREEN_BOUND, f"{where}[{index}]", OFF_SCREEN)
        try:
            kp = screen if normalization == "screen" else camera.normalize(kp, normalization).astype(np.float32)
        except JointposeError as exc:  # a keypoint no ray reaches through the lens: where it is
            if exc.fields:  # an argument at fault (no intrinsics for --normalization): named as it is
                raise
            raise JointposeError(f"{where}[{index}]: {exc}") from None
        poses = trajectory = None
        if world is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # what the checks below report, in one line
                cam_space = camera.world_to_camera(world)
                trajectory = cam_space[:, 0].astype(np.float32)
                poses = (cam_space - cam_space[:, :1]).astype(np.float32)
            seen = f"{files.path_3d}: positions_3d['{subject}']['{action}'] seen by camera {index}"
            check_finite(np.concatenate([poses.reshape(len(poses), -1), trajectory], axis=1), f"{seen}, in float32")
            check_bounded(
                poses, MAX_BODY_M, seen, f"have a joint more than {MAX_BODY_M:g} m from the root (not metres?)"
            )
            check_bounded(trajectory, MAX_DISTANCE_M, seen, f"lie more than {MAX_DISTANCE_M:g} m from the camera")
        frames = _subset_frames(len(kp), subset, downsample)
        out.append(
            PoseSequence(
                subject,
                action,
                index,
                camera,
                kp[frames],
                None if poses is None else poses[frames],
                None if trajectory is None else trajectory[frames],
                normalization,
            )
        )
    return out


def _subset_frames(length: int, subset: float, downsample: int) -> slice:
    """Frames kept by ``--subset`` and ``--downsample``: a deterministic contiguous chunk."""
    if subset >= 1.0:
        return slice(0, length, downsample)
    n = max(1, int(round(length // downsample * subset)))
    span = length - n * downsample + 1
    digest = hashlib.sha256(str(length).encode()).digest()
    start = int.from_bytes(digest[:4], "little") % max(span, 1)
    return slice(start, start + n * downsample, downsample)


def _poses_3d(array: Any, where: str, layout: skeleton.Skeleton) -> np.ndarray:
    """(frames, joints, 3) world positions of ``layout`` (Human3.6M's 32-joint arrays reduced to 17)."""
    arr = _finite_array(array, where)
    counts = (32, 17) if layout is skeleton.H36M_17 else (layout.num_joints,)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[1] not in counts:
        raise JointposeError(
            f"{where}: expected (frames, {' or '.join(map(str, counts))}, 3) positions, got shape {arr.shape}"
        )
    if len(arr) == 0:
        raise JointposeError(f"{where}: empty sequence")
    return skeleton.reduce_32_to_17(arr) if arr.shape[1] == 32 else arr


def _keypoints(array: Any, where: str) -> np.ndarray:
    arr = _finite_array(array, where)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3):
        raise JointposeError(f"{where}: expected (frames, joints, 2 or 3) keypoints, got shape {arr.shape}")
    if len(arr) == 0:
        raise JointposeError(f"{where}: empty sequence")
    return arr[..., :2]


def _finite_array(array: Any, where: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise JointposeError(f"{where}: expected a numeric array, got {type(array).__name__}")
    frames = len(array) if array.ndim else 1
    check_limit("frames", frames, f"{where}: frames")
    if array.ndim == 0 or array.size > frames * MAX_JOINTS * 3:  # before the float64 copy
        raise JointposeError(
            f"{where}: expected (frames, joints, 2 or 3) with at most {MAX_JOINTS} joints, got shape {array.shape}"
        )
    arr = array.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))[:, 0]
        raise JointposeError(f"{where}: NaN or inf values in {len(bad)} frame(s), first at frame {bad[0]}")
    return arr


def _object(files: dict[str, np.ndarray], key: str, path: Path) -> Any:
    if key not in files:
        raise JointposeError(f"{path}: missing key '{key}' (keys: {', '.join(npz_keys(path))})")
    value = files[key]
    return value.item() if value.dtype.hasobject and value.shape == () else value


def _nested_dict(files: dict[str, np.ndarray], key: str, path: Path) -> dict[str, Any]:
    value = _object(files, key, path)
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise JointposeError(f"{path}: '{key}' must hold a dict subject -> action -> data")
    clips = [
        clip
        for actions in value.values()
        for data in actions.values()
        for clip in (data if isinstance(data, (list, tuple)) else [data])
        if isinstance(clip, np.ndarray)
    ]
    if not all(isinstance(k, str) for actions in [value, *value.values()] for k in actions):
        raise JointposeError(f"{path}: '{key}' must name its subjects and actions with strings")
    stored = sum({id(clip): clip.nbytes for clip in clips}.values())
    # a pickle's memo can give every clip one array; each is read as float64
    if sum(8 * clip.size for clip in clips) > pickle_budget(stored):
        raise JointposeError(
            f"{path}: '{key}' repeats its arrays as more clips than its {stored} bytes of arrays may make "
            f"({len(clips)} clips)"
        )
    return {str(k): v for k, v in value.items()}


def _camera_schema(entry: np.ndarray, path: Path) -> dict[str, Any]:
    value = entry.item() if entry.shape == () else entry
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise JointposeError(f"{path}: key 'cameras' is not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # too many digits, not UTF-8, nested too deeply
            raise JointposeError(f"{path}: key 'cameras' is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise JointposeError(f"{path}: key 'cameras' must hold the h36m_cameras.json schema")
    return value
