"""Detector output files read as keypoints: COCO results, MMPose and OpenPose JSON, arrays
(``.npy``/``.npz``) and ``jointpose video`` tracks (npz or JSON), with what each records.

Each reader refuses a malformed file with one line naming the file and the key or frame at
fault; the points keep their detector's layout (:mod:`jointpose.data.layouts` converts them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jointpose.data.layouts import LAYOUTS
from jointpose.errors import JointposeError, brief, first_line, listed
from jointpose.geometry import skeleton
from jointpose.geometry.bones import HEIGHT_RANGE
from jointpose.geometry.cameras import Camera, check_image_size
from jointpose.safeio import (
    check_fps,
    check_limit,
    frame_ranges,
    is_real_number,
    limit,
    load_npy,
    load_npz,
    npz_keys,
    numeric_array,
    read_text_file,
    stored_fps,
)

# Largest keypoint coordinate read from a JSON file (pixels): beyond it nothing is a detection,
# and the layout conversions' sums (a head from the eyes) would overflow.
MAX_PIXEL_VALUE = 1e9


@dataclass
class Detections:
    """People detected per frame: ``people[f]`` is (P, N, 3) x, y pixels and confidence
    (0 = missing), ``scores[f]`` is (P,) person scores."""

    people: list[np.ndarray]
    scores: list[np.ndarray]
    layout: str
    source_format: str
    notes: list[str] = field(default_factory=list)


def check_fill_gaps(detected: np.ndarray, count: int, path: Path, max_gap: int | None = None) -> None:
    """Refuse more than ``max_gap`` frames in a row (default ``limit("fill_gap")``) without any
    detection among ``count`` frames, ``detected`` (sorted, unique, 0-based) being those with
    one: they would be made up by interpolation or by holding the nearest pose. The message
    names the longest such run. Costs O(len(detected)), whatever ``count``."""
    max_gap = limit("fill_gap") if max_gap is None else max_gap
    detected = np.asarray(detected, dtype=np.int64)
    starts = np.concatenate([[0], detected + 1])
    ends = np.concatenate([detected, [count]])  # run i: frames starts[i] .. ends[i] - 1
    i = int(np.argmax(ends - starts))
    if ends[i] - starts[i] > max_gap:
        raise JointposeError(
            f"{path}: no detection in frames {starts[i]}-{ends[i] - 1} ({ends[i] - starts[i]} frames in a row); "
            f"at most {max_gap} are filled by interpolation (max_fill_gap, or set JOINTPOSE_MAX_FILL_GAP)"
        )


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file and line."""
    text = read_text_file(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JointposeError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise JointposeError(f"{path}: not valid JSON ({first_line(exc)})") from None
    except RecursionError:
        raise JointposeError(f"{path}: JSON nested too deeply to be keypoints") from None


def _numbers(value: Any, lengths: tuple[int, ...], where: str) -> np.ndarray:
    """A flat list of numbers of one of ``lengths`` as floats; NaN allowed, inf refused."""
    if not isinstance(value, list) or len(value) not in lengths:
        count = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise JointposeError(
            f"{where}: expected a list of {' or '.join(map(str, lengths))} numbers "
            f"(x, y, confidence per joint), got {count}"
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise JointposeError(f"{where}: holds values that are not numbers")
    try:
        out = np.array(value, dtype=np.float64)
    except OverflowError:  # a JSON integer beyond any float
        raise JointposeError(f"{where}: holds a number too large for a float") from None
    if (np.abs(out) > MAX_PIXEL_VALUE).any():  # inf too; NaN is a missing value
        raise JointposeError(f"{where}: holds a value beyond {MAX_PIXEL_VALUE:g} (or infinite)")
    return out


def read_coco_results(data: list, path: Path, max_fill_gap: int | None = None) -> Detections:
    """COCO keypoint results: ``[{"image_id", "keypoints": [x, y, score] * 17, "score"}, ...]``.

    Frame ``image_id - min(image_id)``; ids missing in between are frames without detections,
    at most ``max_fill_gap`` in a row (:func:`check_fill_gaps`)."""
    if not data:
        raise JointposeError(f"{path}: empty list: no COCO detections or MMPose frames")
    ids, keypoints, scores = [], [], []
    for i, entry in enumerate(data):
        if isinstance(entry, dict) and "keypoint_scores" in entry and "image_id" not in entry:
            raise JointposeError(
                f"{path}: entry {i}: an MMPose prediction of one image; jointpose reads MMPose's prediction "
                "of a video (a list of {'frame_id', 'instances'})"
            )
        if not isinstance(entry, dict) or "image_id" not in entry or "keypoints" not in entry:
            raise JointposeError(f"{path}: entry {i}: expected an object with 'image_id' and 'keypoints'")
        image_id = entry["image_id"]
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise JointposeError(
                f"{path}: entry {i}: 'image_id' must be an integer frame number, got {brief(image_id)}"
            )
        kp = _numbers(entry["keypoints"], (51,), f"{path}: entry {i} (image_id {brief(image_id)}) 'keypoints'").reshape(
            17, 3
        )
        ids.append(image_id)
        keypoints.append(kp)
        scores.append(_person_score(entry.get("score"), kp, f"{path}: entry {i} (image_id {brief(image_id)}): 'score'"))
    first = min(ids)
    detected = sorted({i - first for i in ids})  # exact: ids may be any JSON integers
    count = detected[-1] + 1
    if count < 2**62:  # else far beyond the frame limit below
        check_fill_gaps(np.array(detected, dtype=np.int64), count, path, max_fill_gap)
    check_limit("frames", count, f"{path}: image_id values span frames")
    frame = np.array([i - first for i in ids], dtype=np.int64)  # ids themselves may exceed int64
    order = np.argsort(frame, kind="stable")
    cuts = np.cumsum(np.bincount(frame, minlength=count))[:-1]
    people = np.split(np.stack(keypoints)[order], cuts)
    return Detections(people, np.split(np.array(scores)[order], cuts), "coco17", "coco-json")


# MMPose keypoint counts whose first 17 keypoints are COCO-17's: COCO, Halpe-26, COCO-WholeBody.
MMPOSE_COUNTS = (17, 26, 133)


def is_mmpose(data: Any) -> bool:
    """Whether parsed JSON is MMPose's prediction of a video: a list of ``{"frame_id", "instances"}``."""
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "instances" in data[0]


def read_mmpose(data: list, path: Path, max_fill_gap: int | None = None) -> Detections:
    """MMPose's prediction of a video (``MMPoseInferencer(...)(video, pred_out_dir=...)``):
    ``[{"frame_id", "instances": [{"keypoints": [[x, y]] * K, "keypoint_scores": [s] * K,
    "bbox", "bbox_score"}, ...]}, ...]``, K one of :data:`MMPOSE_COUNTS`, of which the first
    17 are read as COCO-17's (a 17-keypoint file is taken as COCO-17: an animal model's
    AP-10K keypoints cannot be told apart). Frame ``frame_id - min(frame_id)``; ids missing in
    between are frames without detections, at most ``max_fill_gap`` in a row. A person's
    score is its ``bbox_score``, else the mean confidence of its COCO-17 keypoints.

    Where its person detector finds nobody, a top-down MMPose model estimates a pose over the
    whole image and writes it as the frame's one instance with ``bbox`` [[0, 0, width,
    height]] and ``bbox_score`` 1: such stand-ins are left out (a note counts them)."""
    if not data:
        raise JointposeError(f"{path}: empty MMPose prediction (no frames)")
    check_limit("frames", len(data), f"{path}: MMPose frames")
    none = (np.zeros((0, 17, 3)), np.zeros(0))
    ids: dict[int, int] = {}  # frame_id -> its entry
    found: list[tuple[np.ndarray, np.ndarray]] = []
    stand_ins = 0
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "frame_id" not in entry or not isinstance(entry.get("instances"), list):
            raise JointposeError(f"{path}: entry {i}: expected an object with 'frame_id' and an 'instances' list")
        frame_id = entry["frame_id"]
        if not isinstance(frame_id, int) or isinstance(frame_id, bool):
            raise JointposeError(
                f"{path}: entry {i}: 'frame_id' must be an integer frame number, got {brief(frame_id)}"
            )
        if frame_id in ids:
            raise JointposeError(
                f"{path}: entry {i}: frame_id {brief(frame_id)} already given by entry {ids[frame_id]}"
            )
        ids[frame_id] = i
        instances = entry["instances"]
        if len(instances) == 1 and _whole_image_stand_in(instances[0]):
            stand_ins += 1
            instances = []
        people = [_mmpose_person(p, f"{path}: entry {i} instance {k}") for k, p in enumerate(instances)]
        found.append((np.stack([kp for kp, _ in people]), np.array([sc for _, sc in people])) if people else none)
    first = min(ids)
    detected = sorted(frame_id - first for frame_id, (kp, _) in zip(ids, found) if len(kp))
    if not detected:
        raise JointposeError(f"{path}: no person detected in any of its {len(ids)} frame(s)")
    count = max(ids) - first + 1
    if count < 2**62:  # else far beyond the frame limit below
        check_fill_gaps(np.array(detected, dtype=np.int64), count, path, max_fill_gap)
    check_limit("frames", count, f"{path}: frame_id values span frames")
    frames = [none] * count
    for frame_id, people in zip(ids, found):
        frames[frame_id - first] = people
    notes = []
    if stand_ins:
        notes.append(
            f"{path}: left out MMPose's whole-image pose in {stand_ins} frame(s), made where its person "
            "detector found nobody (bbox from [0, 0], bbox_score 1)"
        )
    return Detections([f[0] for f in frames], [f[1] for f in frames], "coco17", "mmpose-json", notes)


def _whole_image_stand_in(person: Any) -> bool:
    """Whether an MMPose instance is a top-down model's pose over the whole image, made where
    its person detector found nobody: ``bbox`` [[0, 0, width, height]], ``bbox_score`` 1."""
    score = person.get("bbox_score") if isinstance(person, dict) else None
    if not is_real_number(score) or score != 1:
        return False
    box = person.get("bbox")
    return isinstance(box, list) and len(box) == 1 and isinstance(box[0], list) and box[0][:2] == [0, 0]


def _mmpose_person(person: Any, where: str) -> tuple[np.ndarray, float]:
    """One MMPose instance -> its COCO-17 keypoints (17, 3) and its score."""
    if not isinstance(person, dict) or "keypoints" not in person or "keypoint_scores" not in person:
        raise JointposeError(f"{where}: expected an object with 'keypoints' and 'keypoint_scores'")
    points, confidence = person["keypoints"], person["keypoint_scores"]
    counts = " or ".join(map(str, MMPOSE_COUNTS))
    if not isinstance(points, list) or len(points) not in MMPOSE_COUNTS:
        got = f"{len(points)}" if isinstance(points, list) else type(points).__name__
        raise JointposeError(f"{where}: 'keypoints' must hold {counts} [x, y] pairs, got {got}")
    if all(isinstance(p, list) and len(p) == 3 for p in points):
        raise JointposeError(f"{where}: 'keypoints' are 3D [x, y, z] (MMPose's pose3d output); 2D keypoints are read")
    if not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise JointposeError(f"{where}: 'keypoints' must be a list of [x, y] pairs")
    if not isinstance(confidence, list) or len(confidence) != len(points):
        raise JointposeError(f"{where}: 'keypoint_scores' must hold one number per keypoint ({len(points)})")
    n = len(points)
    xy = _numbers([v for p in points for v in p], (2 * n,), f"{where} 'keypoints'").reshape(n, 2)[:17]
    kp = np.column_stack([xy, _numbers(confidence, (n,), f"{where} 'keypoint_scores'")[:17]])
    return kp, _person_score(person.get("bbox_score"), kp, f"{where}: 'bbox_score'")


def _mean_confidence(confidence: np.ndarray) -> np.ndarray:
    """(..., N) keypoint confidences -> (...) a person's score where its file gives none: the
    mean over all N keypoints, those not seen (0, negative or NaN) counting 0, so that a
    detection of a few confident points does not outscore a whole body."""
    return np.clip(np.nan_to_num(confidence, nan=0.0), 0.0, None).mean(axis=-1)


def _person_score(score: Any, keypoints: np.ndarray, where: str) -> float:
    """A detection's person score as its file gives it (a finite number), or when it gives
    none, the mean confidence of its keypoints (N, 3) (:func:`_mean_confidence`)."""
    if score is None:
        return float(_mean_confidence(keypoints[:, 2]))
    if not is_real_number(score):
        raise JointposeError(f"{where} must be a finite number")
    return float(score)


_OPENPOSE_LAYOUTS = {75: "body25", 54: "coco18"}


def openpose_people(data: Any, path: Path) -> np.ndarray | None:
    """The (P, N, 3) people of one OpenPose frame; None when it has none. (0, 0) = missing."""
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise JointposeError(
            f"{path}: unrecognised JSON structure: expected an OpenPose object "
            '{"people": [...]} or a COCO results list'
        )
    people = []
    for i, person in enumerate(data["people"]):
        keys = ("pose_keypoints_2d", "pose_keypoints")
        key = next((k for k in keys if isinstance(person, dict) and k in person), None)
        if key is None:
            raise JointposeError(f"{path}: person {i}: has no 'pose_keypoints_2d' list")
        people.append(_numbers(person[key], tuple(_OPENPOSE_LAYOUTS), f"{path}: person {i} '{key}'"))
    if not people:
        return None
    if len({len(p) for p in people}) > 1:
        raise JointposeError(f"{path}: people have different keypoint counts {sorted({len(p) // 3 for p in people})}")
    out = np.stack(people).reshape(len(people), -1, 3)
    out[..., 2] = np.where((out[..., 0] == 0) & (out[..., 1] == 0), 0.0, out[..., 2])
    return out


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_openpose(path: Path, data: Any = None, max_fill_gap: int | None = None) -> Detections:
    """OpenPose output: one ``*_keypoints.json`` file (``data`` if already parsed) or a folder of them.

    Folder files are taken in natural name order (``f2`` before ``f10``), one frame each. When
    every name carries a frame number (the last number in it, as OpenPose writes
    ``video_000000000012_keypoints.json``), numbers missing in between are frames without
    detections (a note names them; at most ``max_fill_gap`` in a row), not closed up.
    """
    files = sorted(path.glob("*_keypoints.json"), key=_natural_key) if path.is_dir() else [path]
    if not files:
        raise JointposeError(f"{path}: folder holds no OpenPose '*_keypoints.json' files")
    check_limit("frames", len(files), f"{path}: OpenPose files (frames)")
    numbers, notes = _frame_numbers(files), []
    if numbers is not None and numbers[-1] - numbers[0] + 1 > len(files):
        check_fill_gaps(numbers - numbers[0], numbers[-1] - numbers[0] + 1, path, max_fill_gap)
        check_limit("frames", numbers[-1] - numbers[0] + 1, f"{path}: OpenPose file numbers span frames")
        present = np.zeros(numbers[-1] - numbers[0] + 1, dtype=bool)
        present[numbers - numbers[0]] = True
        missing = np.flatnonzero(~present)
        notes.append(
            f"{path}: no file for {len(missing)} frame(s) ({frame_ranges(missing + numbers[0])} by file "
            "number); they are treated as frames without detections"
        )
    frames = [openpose_people(data if data is not None else read_json(f), f) for f in files]
    if numbers is not None and notes:
        slots: list[np.ndarray | None] = [None] * int(numbers[-1] - numbers[0] + 1)
        for number, people in zip(numbers, frames):
            slots[number - numbers[0]] = people
        frames = slots
    counts = {p.shape[1] for p in frames if p is not None}
    if not counts:
        raise JointposeError(f"{path}: no person detected in any of its {len(files)} frame(s)")
    if len(counts) > 1:
        raise JointposeError(f"{path}: files mix keypoint counts {sorted(counts)} (BODY_25 and COCO-18)")
    n = counts.pop()
    layout = _OPENPOSE_LAYOUTS[3 * n]
    people = [p if p is not None else np.zeros((0, n, 3)) for p in frames]
    scores = [_mean_confidence(p[..., 2]) for p in people]
    return Detections(people, scores, layout, f"openpose-{layout}", notes)


def _frame_numbers(files: list[Path]) -> np.ndarray | None:
    """The frame number in each file name (its last number), or None when a name has none or
    two names share one."""
    found = [re.findall(r"\d+", f.name.removesuffix("_keypoints.json")) for f in files]
    if not all(found) or any(len(n[-1]) > 15 for n in found):
        return None
    numbers = np.array([int(n[-1]) for n in found], dtype=np.int64)
    return numbers if (np.diff(numbers) > 0).all() else None


# What a `jointpose video` output records beside its 2D track, so that reading the track back
# lifts it as the video run did.
TRACK_KEYS = (
    "fps",
    "keypoints_layout",
    "image_size",
    "confidence_threshold",
    "focal_length",
    "principal_point",
    "track_part",
    "first_frame",
    "height",
)


@dataclass
class TrackFile:
    """Keypoints read from an array file or a ``jointpose video`` output: ``points`` (F, 17, 2|3)
    and what the file records, None where it does not: ``fps``, ``layout`` (the detector layout
    the track was converted from), ``image_size`` (width, height; pixels) and
    ``confidence_threshold`` (the one it was filled with), ``camera`` (the intrinsics it was
    lifted with: 'focal_length' and 'principal_point', pixels), ``switches`` (the frames where
    the track may have moved to another person, from 'track_part'), ``first_frame`` (the
    video's frame the track starts at: a cut's first), ``height`` (the standing height in metres
    its poses were scaled to); ``video`` marks a video output."""

    points: np.ndarray
    fps: float | None = None
    layout: str | None = None
    image_size: tuple[int, int] | None = None
    confidence_threshold: float | None = None
    camera: Camera | None = None
    switches: list[int] = field(default_factory=list)
    first_frame: int | None = None
    height: float | None = None
    video: bool = False


def read_array(path: Path) -> TrackFile:
    """A (F, 17, 2|3) float array from ``.npy`` or ``.npz``: key 'keypoints', or the 2D track of
    a ``jointpose video`` output ('keypoints_2d', with 'confidence_2d' as a third column), or
    the only array besides those of :data:`TRACK_KEYS`; with what the npz records of them."""
    if path.suffix.lower() != ".npz":
        return TrackFile(_points(load_npy(path), None, path, None))
    keys = npz_keys(path)  # only the arrays used are decompressed
    key = _array_key(keys, path)
    wanted = (key, "confidence_2d") if key == "keypoints_2d" and "confidence_2d" in keys else (key,)
    files = load_npz(path, keys=(*wanted, *TRACK_KEYS))
    confidence = files.get("confidence_2d") if key == "keypoints_2d" else None
    return _track(_points(files[key], confidence, path, key), files, path, video=key == "keypoints_2d")


def is_video_output(path: str | Path) -> bool:
    """Whether ``path`` is an npz holding a ``jointpose video`` output's 2D track, as
    :func:`read_array` tells it, from the archive's keys alone (nothing decompressed); False
    for anything else, unreadable files included (their reader names the fault). A JSON
    output is told once read (``Keypoints2D.source_format``)."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        return _array_key(npz_keys(path), path) == "keypoints_2d"
    except JointposeError:
        return False


def _array_key(keys: list[str], path: Path) -> str:
    """The key of an npz's keypoints: 'keypoints', else a video output's 'keypoints_2d', else
    the only array besides those of :data:`TRACK_KEYS`."""
    arrays = [k for k in keys if k not in TRACK_KEYS]
    if "keypoints" in keys:
        return "keypoints"
    if "keypoints_2d" in keys:
        return "keypoints_2d"
    if len(arrays) == 1:
        return arrays[0]
    raise JointposeError(
        f"{path}: no key 'keypoints' or 'keypoints_2d' and not exactly one array to choose "
        f"(keys: {listed(sorted(keys)) or 'none'})"
    )


def is_track_json(data: Any) -> bool:
    """Whether parsed JSON is a ``jointpose video`` output, whose 'keypoints_2d' is its 2D track."""
    return isinstance(data, dict) and "keypoints_2d" in data


def read_track_json(data: dict, path: Path) -> TrackFile:
    """The 2D track of a ``jointpose video`` JSON output as :func:`read_array` reads its npz:
    (F, 17, 3) with 'confidence_2d' as the third column (2 columns without it), and what it
    records of :data:`TRACK_KEYS`."""
    arrays = {
        key: numeric_array(data[key], f"{path} key '{key}'") for key in ("keypoints_2d", "confidence_2d") if key in data
    }
    points = _points(arrays["keypoints_2d"], arrays.get("confidence_2d"), path, "keypoints_2d")
    return _track(points, {key: data[key] for key in TRACK_KEYS if key in data}, path, video=True)


def _track(points: np.ndarray, recorded: dict[str, Any], path: Path, video: bool) -> TrackFile:
    """``points`` with the :data:`TRACK_KEYS` values ``recorded`` (npz arrays or JSON values), each checked."""
    track = TrackFile(points, video=video)
    if "fps" in recorded:
        fps = recorded["fps"]
        if isinstance(fps, np.ndarray):
            track.fps = stored_fps(recorded, path)
        else:
            track.fps = check_fps(fps, f"{path}: key 'fps'")
    if "keypoints_layout" in recorded:
        layout = recorded["keypoints_layout"]
        layout = layout.item() if isinstance(layout, np.ndarray) and layout.shape == () else layout
        if not (isinstance(layout, str) and layout in LAYOUTS):
            raise JointposeError(
                f"{path}: key 'keypoints_layout' must be one of {', '.join(LAYOUTS)}, got {brief(layout)}"
            )
        track.layout = layout
    if "image_size" in recorded:
        size = numeric_array(recorded["image_size"], f"{path} key 'image_size'")
        if size.shape != (2,):
            raise JointposeError(f"{path}: key 'image_size' must be a width and a height, got {brief(size.tolist())}")
        track.image_size = check_image_size(size[0], size[1], f"{path}: key 'image_size'")
    if "confidence_threshold" in recorded:
        value = numeric_array(recorded["confidence_threshold"], f"{path} key 'confidence_threshold'")
        if value.shape != () or not 0.0 <= float(value) <= 1.0:
            raise JointposeError(
                f"{path}: key 'confidence_threshold' must be one number in [0, 1], got {brief(value.tolist())}"
            )
        track.confidence_threshold = round(float(value), 6)  # as given, not its float32 neighbour
    if video and ("focal_length" in recorded or "principal_point" in recorded):  # a video output's own keys
        track.camera = _recorded_camera(recorded, track.image_size, path)
    if video and "track_part" in recorded:
        part = numeric_array(recorded["track_part"], f"{path} key 'track_part'")
        if part.shape != (len(points),) or not (np.isfinite(part) & (part == np.round(part))).all():
            raise JointposeError(
                f"{path}: key 'track_part' must be one whole number per frame ({len(points)}), got {brief(part.tolist())}"
            )
        track.switches = (np.flatnonzero(np.diff(part)) + 1).tolist()
        check_limit("track_parts", len(track.switches) + 1, f"{path} key 'track_part': stretches")
    if video and "first_frame" in recorded:
        first = numeric_array(recorded["first_frame"], f"{path} key 'first_frame'")
        if first.shape != () or not (0 <= float(first) < 2**53 and float(first) == round(float(first))):
            raise JointposeError(
                f"{path}: key 'first_frame' must be one whole number >= 0, got {brief(first.tolist())}"
            )
        track.first_frame = int(first)
    if video and "height" in recorded:
        value = numeric_array(recorded["height"], f"{path} key 'height'")
        low, high = HEIGHT_RANGE
        if value.shape != () or not low <= float(value) <= high:
            raise JointposeError(
                f"{path}: key 'height' must be one standing height in metres in [{low}, {high}], "
                f"got {brief(value.tolist())}"
            )
        track.height = round(float(value), 6)  # as given, not its float32 neighbour
    return track


def track_part(switches: list[int], count: int) -> np.ndarray:
    """(count,) the stretch of a track each frame belongs to (0, 1, ...), a new one from each
    frame of ``switches`` on: what a video output records as 'track_part'."""
    return np.searchsorted(np.asarray(switches, dtype=np.int64), np.arange(count), side="right")


def camera_record(camera: Camera | None) -> dict[str, float | tuple[float, ...]]:
    """What a video output records of the ``camera`` it was lifted with, read back by
    :func:`read_array` and :func:`read_track_json`: its focal length and principal point
    (pixels); nothing without one."""
    if camera is None:
        return {}
    return {"focal_length": float(camera.focal_length[0]), "principal_point": tuple(map(float, camera.center))}


def _recorded_camera(recorded: dict[str, Any], size: tuple[int, int] | None, path: Path) -> Camera:
    """The camera a video output records ('focal_length' and 'principal_point', pixels, for
    its 'image_size'), checked as ``--focal-length`` and ``--principal-point`` are."""
    if "focal_length" not in recorded or size is None:
        missing = "focal_length" if "focal_length" not in recorded else "image_size"
        raise JointposeError(f"{path}: a recorded camera needs key '{missing}'")
    focal = numeric_array(recorded["focal_length"], f"{path} key 'focal_length'")
    if focal.shape != ():
        raise JointposeError(f"{path}: key 'focal_length' must be one number of pixels, got {brief(focal.tolist())}")
    centre = None
    if "principal_point" in recorded:
        point = numeric_array(recorded["principal_point"], f"{path} key 'principal_point'")
        if point.shape != (2,):
            raise JointposeError(
                f"{path}: key 'principal_point' must be two numbers (x, y), got {brief(point.tolist())}"
            )
        centre = (float(point[0]), float(point[1]))
    names = {"focal_length": f"{path}: key 'focal_length'", "center": f"{path}: key 'principal_point'"}
    try:
        return Camera.from_focal_length(*size, float(focal), center=centre, id="recorded")
    except JointposeError as exc:
        raise JointposeError(exc.naming(names)) from None


def _points(array: np.ndarray, confidence: np.ndarray | None, path: Path, key: str | None) -> np.ndarray:
    """``array`` (F, 17, 2|3) checked and as float64, ``confidence`` (F, 17) finite or NaN
    appended as its third column where given (clipped to [0, 1] by the loader); errors name the
    file and the key at fault."""
    where = str(path) if key is None else f"{path} key '{key}'"
    if array.dtype.kind not in "iuf":
        raise JointposeError(f"{where}: expected numbers, got dtype {array.dtype}")
    columns = (2,) if confidence is not None else (2, 3)
    if array.ndim != 3 or array.shape[1] != skeleton.NUM_JOINTS or array.shape[2] not in columns:
        expected = "(frames, 17, 2) beside 'confidence_2d'" if confidence is not None else "(frames, 17, 2 or 3)"
        raise JointposeError(f"{where}: expected shape {expected}, got {array.shape}")
    if len(array) == 0:
        raise JointposeError(f"{where}: empty (0 frames)")
    check_limit("frames", len(array), f"{where}: frames")
    array = array.astype(np.float64)
    if confidence is not None:
        if confidence.dtype.kind not in "iuf" or confidence.shape != array.shape[:2]:
            raise JointposeError(
                f"{path} key 'confidence_2d': expected numbers of shape {array.shape[:2]} beside "
                f"'{key}' {array.shape}, got {confidence.dtype} {confidence.shape}"
            )
        if np.isinf(confidence).any():
            frame = int(np.isinf(confidence).any(axis=1).argmax())
            raise JointposeError(f"{path} key 'confidence_2d': an infinite value at frame {frame}")
        array = np.concatenate([array, confidence[..., None]], axis=-1)
    bad = np.isinf(array).any(axis=(1, 2)) | (np.abs(array[..., :2]) > MAX_PIXEL_VALUE).any(axis=(1, 2))
    if bad.any():  # NaN is a missing value
        raise JointposeError(
            f"{where}: a coordinate beyond {MAX_PIXEL_VALUE:g} px or an infinite value at frame {int(bad.argmax())}"
        )
    return array
