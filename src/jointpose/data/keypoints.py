"""Read 2D keypoints from a detector's output as (frames, 17, 2) pixels in Human3.6M-17 order.

Inputs (:func:`load_keypoints`):

* COCO keypoint results JSON: a list of ``{"image_id", "keypoints": [x, y, score] * 17, "score"}``,
  one entry per person per frame; frame = ``image_id - min(image_id)`` (frames with no entry
  are missing). Always COCO-17.
* MMPose's prediction of a video (``MMPoseInferencer``'s ``pred_out_dir`` JSON): a list of
  ``{"frame_id", "instances": [{"keypoints", "keypoint_scores", "bbox_score"}, ...]}``; COCO-17,
  or Halpe-26 / COCO-WholeBody, whose first 17 keypoints are COCO-17's.
* OpenPose JSON: one ``*_keypoints.json`` file or a folder of them (one frame per file, natural
  name order); BODY_25 or COCO-18 told apart by the keypoint count. Confidence 0 or a (0, 0)
  position means missing.
* ``.npy`` / ``.npz`` arrays (frames, 17, 2 or 3), the third column a confidence; NaN means
  missing. 17 joints are Human3.6M-17 unless ``layout="coco"``. An npz's ``fps`` is the
  sequence's frame rate.
* A ``jointpose video`` output, npz or JSON: its 2D track (``keypoints_2d``, with
  ``confidence_2d`` as the third column) and its ``fps``.

Layout conversion is described in :mod:`jointpose.data.layouts`.

Several people per frame: the detections are linked into tracks and one is kept
(:func:`jointpose.data.linking.select_track`).

Joints below ``confidence_threshold`` or missing are filled by linear interpolation in time
(the nearest value held before the first and after the last detection) with a
:class:`~jointpose.errors.JointposeWarning` that counts them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jointpose.data.detector_files import (
    check_fill_gaps,
    is_mmpose,
    is_track_json,
    read_array,
    read_coco_results,
    read_json,
    read_mmpose,
    read_openpose,
    read_track_json,
    track_part,
)
from jointpose.data.layouts import CONFIDENCE_THRESHOLD, LAYOUT_TITLES, keep_never_usable, to_h36m, usable
from jointpose.data.linking import select_track
from jointpose.errors import JointposeError, JointposeWarning, brief
from jointpose.geometry import skeleton
from jointpose.geometry.cameras import Camera, check_image_size, check_image_size_pair
from jointpose.safeio import (
    check_fps,
    check_path,
    is_finite_number,
    numeric_array,
)

# Files read as video (by name), which infer points to jointpose video.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".3gp")
# What keypoints are, by their Keypoints2D.input_layout (None: Human3.6M-17 from an unknown source).
KEYPOINT_SOURCES = {
    "blazepose": "a jointpose video track (BlazePose's points)",
    "coco": "a COCO-trained detector's keypoints",
    None: "Human3.6M-17 keypoints",
}
_LAYOUT_ARGS = {"h36m": "h36m17", "h36m17": "h36m17", "coco": "coco17", "coco17": "coco17"}


@dataclass
class Keypoints2D:
    """A 2D keypoint sequence in Human3.6M-17 order.

    ``xy`` (F, 17, 2) pixels with every joint filled; ``confidence`` (F, 17) in [0, 1] (1 where
    the format has none, the detector's value for filled joints); ``filled`` (F, 17) marks the
    interpolated joints; ``notes`` reports what was chosen or repaired; ``fps`` and
    ``image_size`` (width, height; pixels) are what the file gives (an npz's 'fps', a
    ``jointpose video`` output's both), else None; ``camera`` the intrinsics a ``jointpose
    video`` output was lifted with, where given; ``switches`` the frames where a video track
    may have moved to another person (each starts a stretch lifted on its own); ``first_frame``
    the video's frame a video track starts at (its cut's first); ``height`` the standing height
    (metres) a video output's poses were scaled to, where given. ``source_format`` is ``"video"`` for a
    ``jointpose video`` track, whose ``source_layout`` is the detector layout it came from.
    """

    xy: np.ndarray
    confidence: np.ndarray
    source_format: str
    source_layout: str
    filled: np.ndarray
    notes: list[str] = field(default_factory=list)
    fps: float | None = None
    image_size: tuple[int, int] | None = None
    camera: Camera | None = None
    switches: list[int] = field(default_factory=list)
    first_frame: int | None = None
    height: float | None = None

    def __post_init__(self) -> None:
        """Refuse fields of the wrong kind or shape, naming the field (one built by hand)."""
        for name, shape in (("xy", (skeleton.NUM_JOINTS, 2)), ("confidence", (skeleton.NUM_JOINTS,))):
            value = getattr(self, name)
            array = value if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" else None
            array = numeric_array(value, f"Keypoints2D {name}") if array is None else array
            if array.shape[1:] != shape or len(array) == 0:
                raise JointposeError(
                    f"Keypoints2D {name} must be (frames, {', '.join(map(str, shape))}) with frames >= 1, "
                    f"got {array.shape}"
                )
            setattr(self, name, array)
        filled = np.asarray(self.filled)
        if filled.dtype != bool or filled.shape != self.confidence.shape or self.xy.shape[:2] != filled.shape:
            raise JointposeError(
                f"Keypoints2D xy, confidence and filled (bools) must have one row per frame and joint, got "
                f"{self.xy.shape}, {self.confidence.shape} and {filled.shape} {filled.dtype}"
            )
        self.filled = filled
        if self.fps is not None:
            self.fps = check_fps(self.fps, "Keypoints2D fps")
        if self.image_size is not None:
            self.image_size = check_image_size_pair(self.image_size, "Keypoints2D image_size")
        if self.camera is not None and not isinstance(self.camera, Camera):
            raise JointposeError(f"Keypoints2D camera must be a Camera or None, got {type(self.camera).__name__}")
        check_switches(self.switches, len(self.xy), "Keypoints2D switches")

    @property
    def input_layout(self) -> str | None:
        """The 2D these keypoints are, as ``data build --input-layout`` names it: ``"blazepose"``
        for a ``jointpose video`` track, ``"coco"`` for a COCO-trained detector's points (COCO-17,
        OpenPose's COCO-18 and BODY_25); None for Human3.6M-17 keypoints, whose source is not
        known."""
        if self.source_format == "video":
            return "blazepose"
        return "coco" if self.source_layout in ("coco17", "coco18", "body25") else None

    @property
    def found(self) -> np.ndarray:
        """(F,) the frames where the person was found: a joint at least not filled in."""
        return ~self.filled.all(axis=1)

    @property
    def num_frames(self) -> int:
        """Frames in the sequence."""
        return len(self.xy)

    @property
    def points(self) -> np.ndarray:
        """(F, 17, 3): ``xy`` with ``confidence`` as a third column, as :meth:`Lifter.predict` reads them."""
        return np.concatenate([self.xy, self.confidence[..., None]], axis=-1)


def check_switches(switches: Any, frames: int, what: str) -> None:
    """Refuse ``switches`` (of a track of ``frames`` frames) that are not a list of increasing
    whole frame numbers in 1 to frames - 1, naming ``what``."""
    if not (
        isinstance(switches, (list, tuple))
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in switches)
        and list(switches) == sorted(set(switches))
        and all(0 < s < frames for s in switches)
    ):
        raise JointposeError(f"{what} must be increasing frames in 1..{frames - 1}, got {brief(switches)}")


def require_image_size(image_size: tuple[int, int] | None, path: str | Path) -> tuple[int, int]:
    """Check the (width, height) in pixels needed to normalise pixel keypoints read from ``path``."""
    if image_size is None:
        raise JointposeError(
            "{path}: pixel keypoints need the video's image size (width, height in pixels); pass {0}",
            fields=("image_size",),
            path=path,
        )
    if len(image_size) != 2:
        raise JointposeError(
            "{0} must be two whole numbers of pixels (width, height), got {value}",
            fields=("image_size",),
            value=tuple(image_size),
        )
    return check_image_size(image_size[0], image_size[1], "image_size")


def image_size_of(
    kp: Keypoints2D, given: tuple[int, int] | None, what: str, path: str | Path
) -> tuple[int, int] | None:
    """The image size (width, height; pixels) of ``kp``'s points: ``given`` (``what`` names it,
    e.g. ``--image-size 1920 1080``), which must be the size the file ``path`` records where it
    records one; else the recorded one; None where there is neither."""
    if given is not None and kp.image_size is not None and tuple(given) != kp.image_size:
        raise JointposeError(
            f"{what} differs from the image size {path} records ({kp.image_size[0]}x{kp.image_size[1]})"
        )
    return kp.image_size if given is None else given


# Confident keypoints this far outside the image (a share of its width or height) in this
# share of the frames suggest the image size given is not the keypoints' (width and height
# swapped, or another resolution): a detector keeps what it is confident of inside the image.
OUTSIDE_MARGIN, OUTSIDE_SHARE = 0.02, 0.1
# An array whose person spans fewer pixels than this holds normalised coordinates, not pixels.
MIN_PERSON_PX = 4.0
# A frame whose points all lie closer together than this (pixels) holds no person.
COLLAPSED_PX = 1e-3
# The median spread of points 1-4 around point 0 (over the points' extent) below which an array
# read in Human3.6M-17 order looks like COCO-17, and above which one read as COCO-17 looks like
# Human3.6M-17 (see _order_note).
ORDER_SPLIT = (0.15, 0.25)


def outside_image_note(keypoints: Keypoints2D, image_size: tuple[int, int], threshold: float = 0.0) -> str | None:
    """A note when the detected keypoints (neither filled nor below ``threshold`` confidence)
    lie more than :data:`OUTSIDE_MARGIN` of the ``image_size`` (width, height; pixels) outside
    it in at least :data:`OUTSIDE_SHARE` of the frames; None otherwise."""
    size = np.asarray(image_size, dtype=np.float64)
    detected = ~keypoints.filled & (keypoints.confidence >= threshold)
    beyond = ((keypoints.xy < -OUTSIDE_MARGIN * size) | (keypoints.xy > (1 + OUTSIDE_MARGIN) * size)).any(axis=-1)
    frames = (beyond & detected).any(axis=1)
    if frames.mean() < OUTSIDE_SHARE:
        return None
    low, high = keypoints.xy[detected].min(axis=0), keypoints.xy[detected].max(axis=0)
    return (
        f"note: the keypoints lie outside the {image_size[0]}x{image_size[1]} image in {100 * frames.mean():.0f}% of "
        f"the frames (x {low[0]:.0f} to {high[0]:.0f}, y {low[1]:.0f} to {high[1]:.0f} px): is the image size right "
        "(width first, then height)?"
    )


def require_keypoint_file(path: str | Path) -> None:
    """Refuse keypoints ``path`` (a file, or an OpenPose folder) that is not there: also
    before the work that precedes reading it (loading a model)."""
    if not Path(path).exists():
        raise JointposeError(f"keypoint file not found: {path}")


def load_keypoints(
    path: str | Path,
    *,
    layout: str | None = None,
    confidence_threshold: float | None = None,
    max_gap: int = 30,
    max_link_distance: float = 0.5,
    max_fill_gap: int | None = None,
) -> Keypoints2D:
    """Read one person's 2D keypoints and convert them to Human3.6M-17.

    Several people: :mod:`jointpose.data.linking`; gap filling: the module docstring.

    Args:
        path: a COCO results JSON, an MMPose video prediction JSON, an OpenPose JSON file or
            folder of per-frame files, a ``jointpose video`` output (npz or JSON: its 2D
            track), or a ``.npy`` / ``.npz`` array of (frames, 17, 2 or 3) pixels.
        layout: joint order of 17-joint arrays, ``"h36m"`` (default) or ``"coco"``; JSON
            formats carry their own.
        confidence_threshold: joints below this confidence count as missing (0-1); None
            (default): the one a ``jointpose video`` output was filled with, else
            :data:`CONFIDENCE_THRESHOLD`.
        max_gap: frames a track may go undetected and still be linked (frames).
        max_link_distance: largest move between linked detections, in keypoint bounding-box
            diagonals (the larger of the two detections').
        max_fill_gap: most frames in a row without any detected joint that are filled by
            interpolation (default ``limit("fill_gap")``, ``jointpose.safeio``); a longer
            run is refused, not made up.

    Returns:
        The keypoints (pixels, Human3.6M-17 order), their confidence, which frames were
        filled, the frame rate and image size when the file gives them, and notes on what
        was done.

    Raises:
        JointposeError: an unreadable or malformed file, or no usable track.
    """
    path = check_path(path, "path")
    wanted = _check_reading(path, layout, confidence_threshold, max_gap, max_link_distance, max_fill_gap)
    require_keypoint_file(path)
    notes: list[str] = []
    track = None
    suffix = path.suffix.lower()
    data = read_json(path) if suffix == ".json" and not path.is_dir() else None
    if is_track_json(data):  # a `jointpose video` output: its 2D track, as from its npz
        track = read_track_json(data, path)
    elif path.is_dir() or suffix == ".json":
        confidence_threshold = CONFIDENCE_THRESHOLD if confidence_threshold is None else confidence_threshold
        if is_mmpose(data):
            detections = read_mmpose(data, path, max_fill_gap)
        elif isinstance(data, list):
            detections = read_coco_results(data, path, max_fill_gap)
        else:
            detections = read_openpose(path, data, max_fill_gap)
        for note in detections.notes:
            warnings.warn(note, JointposeWarning, stacklevel=2)
        notes += detections.notes
        if wanted is not None and wanted != detections.layout:
            raise JointposeError(
                f"{path}: layout {layout!r} does not apply: this {detections.source_format} "
                f"file is {LAYOUT_TITLES[detections.layout]}"
            )
        points = select_track(detections, path, confidence_threshold, max_gap, max_link_distance, notes, max_fill_gap)
        conversion = source_layout = detections.layout
        source_format = detections.source_format
    elif suffix in (".npy", ".npz"):
        track = read_array(path)
    elif suffix in VIDEO_SUFFIXES:
        raise JointposeError(
            f"{path}: a video, not keypoints: jointpose video detects the person and lifts them "
            "(infer reads .json, .npy, .npz or an OpenPose folder)"
        )
    else:
        raise JointposeError(f"{path}: unknown keypoint file type (expected .json, .npy, .npz or an OpenPose folder)")
    if track is not None and track.video and wanted not in (None, "h36m17"):
        raise JointposeError(
            f"{path}: layout {layout!r} does not apply: a jointpose video track is in Human3.6M-17 order"
        )
    if track is not None:  # an array or a video track, in the order --layout names (Human3.6M-17);
        # a video track converted from a detector's layout marks what that layout marks
        points, conversion = track.points, wanted or "h36m17"
        source_layout = track.layout if track.layout is not None and wanted is None else conversion
        source_format = "video" if track.video else suffix[1:]
        if track.video and track.layout is None and wanted is None:
            notes.append(
                f"{path} records no 'keypoints_layout': its track is read as Human3.6M-17 joints, every joint aligned "
                "with the 2D, where jointpose video records the detector layout it converted (its limbs alone aligned)"
            )
        if confidence_threshold is None:
            recorded = track.confidence_threshold
            confidence_threshold = CONFIDENCE_THRESHOLD if recorded is None else recorded
    if points.shape[2] == 2:  # arrays without a confidence: every point counts
        points = np.concatenate([points, np.ones(points.shape[:2] + (1,))], axis=-1)
    xy, conf = points[..., :2], points[..., 2]
    conf = np.where(np.isfinite(xy).all(axis=-1) & np.isfinite(conf), np.clip(conf, 0.0, 1.0), 0.0)
    conf = _drop_collapsed(xy, conf, path, notes)
    if track is not None and not track.video:  # an array: its units and order are the user's word
        _check_pixels(xy, conf > 0, path)
        if (note := _order_note(xy, conf > 0, conversion, path)) is not None:
            warnings.warn(note, JointposeWarning, stacklevel=2)
            notes.append(note)
    xy, conf, fallbacks = to_h36m(xy, conf, conversion, confidence_threshold)
    if conversion != "h36m17":
        notes.append(f"converted {LAYOUT_TITLES[conversion]} to Human3.6M-17")
    notes += [
        f"{skeleton.JOINT_NAMES[j]} from a fall-back construction in {n} frame(s)" for j, n in enumerate(fallbacks) if n
    ]
    valid = usable(conf, confidence_threshold)
    switches = track.switches if track is not None else []
    segments = None
    if source_format == "video":  # as the video run did: filled within each stretch of the track,
        # where a joint never usable in a stretch keeps its positions in the frames the person was found
        segments = track_part(switches, len(valid))
        valid, never = keep_never_usable(valid, (conf > 0).any(axis=1), segments)
        if never.any():
            names = ", ".join(skeleton.JOINT_NAMES[j] for j in np.flatnonzero(never.any(axis=0)))
            notes.append(f"{names}: never above confidence {confidence_threshold:g} in a stretch; its positions kept")
        _check_stretches(valid, switches, path)
    _check_coverage(valid, path, confidence_threshold)
    check_fill_gaps(np.flatnonzero(valid.any(axis=1)), len(valid), path, max_fill_gap)
    filled = ~valid
    if filled.any():
        message = (
            f"{path}: filled {int(filled.sum())} low-confidence or missing joints in "
            f"{int(filled.any(axis=1).sum())} frames by interpolation"
        )
        warnings.warn(message, JointposeWarning, stacklevel=2)
        notes.append(message)
    fps, size, camera = (track.fps, track.image_size, track.camera) if track is not None else (None, None, None)
    return Keypoints2D(
        interpolate_gaps(xy, valid, segments),
        conf,
        source_format,
        source_layout,
        filled,
        notes,
        fps,
        size,
        camera,
        switches,
        None if track is None else track.first_frame,
        None if track is None else track.height,
    )


def _check_reading(
    path: Path,
    layout: str | None,
    confidence_threshold: float | None,
    max_gap: int,
    max_link_distance: float,
    max_fill_gap: int | None,
) -> str | None:
    """:func:`load_keypoints`' options checked before the file is read (errors start with
    ``path``); returns the layout ``layout`` names (None: the file's own)."""
    if confidence_threshold is not None:
        check_confidence_threshold(confidence_threshold, path)
    if layout is not None and (not isinstance(layout, str) or layout.lower() not in _LAYOUT_ARGS):
        raise JointposeError(f"{path}: unknown keypoint layout {layout!r} (choose 'h36m' or 'coco')")
    if isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 1:
        raise JointposeError(f"{path}: max_gap must be a positive number of frames, got {max_gap!r}")
    if max_fill_gap is not None and (
        isinstance(max_fill_gap, bool) or not isinstance(max_fill_gap, int) or max_fill_gap < 0
    ):
        raise JointposeError(f"{path}: max_fill_gap must be a whole number of frames >= 0, got {max_fill_gap!r}")
    if not (is_finite_number(max_link_distance) and max_link_distance > 0):
        raise JointposeError(f"{path}: max_link_distance must be a positive number, got {max_link_distance!r}")
    return _LAYOUT_ARGS[layout.lower()] if layout is not None else None


def check_confidence_threshold(value: float, source: Path | str | None = None) -> None:
    """Refuse a confidence threshold that is not a number in [0, 1]; the message starts with
    ``source`` (the file it applies to) where given."""
    if isinstance(value, bool) or not (is_finite_number(value) and 0.0 <= value <= 1.0):
        raise JointposeError(
            "{where}{0} must lie in [0, 1], got {value!r}",
            fields=("confidence_threshold",),
            where="" if source is None else f"{source}: ",
            value=value,
        )


def _check_stretches(valid: np.ndarray, switches: list[int], path: Path) -> None:
    """Refuse a video track with a stretch (between ``switches``) where the person is never
    found: nothing there to fill from."""
    starts = np.array([0, *switches])
    empty = ~np.logical_or.reduceat(valid, starts, axis=0).any(axis=1)
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        last = (switches[first] if first < len(switches) else len(valid)) - 1
        raise JointposeError(f"{path}: no usable joint in frames {starts[first]}-{last}, a stretch of its 'track_part'")


def _extent(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(F,) the diagonal (pixels) of the box around each frame's points (F, J, 2) ``seen`` (F, J),
    every frame with one seen at least."""
    mask = seen[..., None]
    return np.linalg.norm(np.where(mask, xy, -np.inf).max(axis=1) - np.where(mask, xy, np.inf).min(axis=1), axis=-1)


def _drop_collapsed(xy: np.ndarray, conf: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """``conf`` (F, J) with frames whose seen points (two at least) all lie within
    :data:`COLLAPSED_PX` of one place set to 0: no person is that small, such a frame is a
    placeholder (zeros written for a frame the detector missed). Refuses input whose every
    frame is one; notes how many were dropped in ``notes``."""
    seen = conf > 0
    frames = np.flatnonzero(seen.sum(axis=1) >= 2)
    collapsed = frames[_extent(xy[frames], seen[frames]) < COLLAPSED_PX]
    if len(collapsed) == 0:
        return conf
    if len(collapsed) == len(frames):
        x, y = xy[collapsed[0]][seen[collapsed[0]]][0]
        raise JointposeError(
            f"{path}: in every frame all points lie at one place ({x:g}, {y:g} px in frame {collapsed[0]}): "
            "no person to lift"
        )
    note = f"{path}: {len(collapsed)} frame(s) with all points at one place read as missing (placeholders?)"
    warnings.warn(note, JointposeWarning, stacklevel=3)
    notes.append(note)
    conf = conf.copy()
    conf[collapsed] = 0.0
    return conf


def _check_pixels(xy: np.ndarray, seen: np.ndarray, path: Path) -> None:
    """Refuse an array (F, 17, 2; ``seen`` where given) whose person spans under
    :data:`MIN_PERSON_PX` pixels (the median over frames of the diagonal of the points' box):
    coordinates normalised to the image (0-1, as MediaPipe writes them) or to [-1, 1] (as
    VideoPose3D's inputs), read as pixels. Frames whose points all lie at one place are
    dropped before (:func:`_drop_collapsed`)."""
    frames = seen.sum(axis=1) >= 2
    if not frames.any():
        return
    span = float(np.median(_extent(xy[frames], seen[frames])))
    if 0 < span < MIN_PERSON_PX:
        raise JointposeError(
            f"{path}: the person spans {span:.3g} pixels (the median over frames): coordinates normalised to "
            "the image or to [-1, 1]? keypoints are read in pixels (multiply x by the image width and y by its "
            "height)"
        )


def _order_note(xy: np.ndarray, seen: np.ndarray, layout: str, path: Path) -> str | None:
    """A note when an array's joint order (F, 17, 2; ``seen`` where given) looks like the other
    layout's: points 1-4 sit close around point 0 in COCO-17 (eyes and ears around the nose) and
    far from it in Human3.6M-17 (hips, knee and foot around the pelvis). The measure: per frame
    with points 0-4 seen, the farthest of 1-4 from 0 over the extent of the points seen; its
    median lies at 0.04-0.07 for COCO-17 and 0.34-0.44 for Human3.6M-17 on real footage."""
    head = seen[:, :5].all(axis=1)  # five points seen: an extent
    if not head.any():
        return None
    points = xy[head]
    spread = np.linalg.norm(points[:, 1:5] - points[:, :1], axis=-1).max(axis=1)
    ratio = float(np.median(spread / np.maximum(_extent(points, seen[head]), 1e-9)))
    if layout == "h36m17" and ratio < ORDER_SPLIT[0]:
        return (
            f"{path}: points 1-4 lie close around point 0, as COCO-17's eyes and ears around its nose, where "
            "Human3.6M-17's hips, knee and foot lie far from its pelvis: if its order is COCO-17's, pass --layout coco"
        )
    if layout == "coco17" and ratio > ORDER_SPLIT[1]:
        return (
            f"{path}: points 1-4 lie far from point 0, as Human3.6M-17's hips, knee and foot from its pelvis, "
            "where COCO-17's eyes and ears lie close around its nose: if its order is Human3.6M-17's, leave out --layout"
        )
    return None


def _check_coverage(valid: np.ndarray, path: Path, threshold: float) -> None:
    """Refuse input with no usable frame, or with joints never usable."""
    if not valid.any():
        raise JointposeError(
            f"{path}: no valid frame: no joint is detected with confidence >= {threshold} in any of {len(valid)} frames"
        )
    never = [skeleton.JOINT_NAMES[j] for j in np.flatnonzero(~valid.any(axis=0))]
    if never:
        raise JointposeError(
            f"{path}: joint(s) {', '.join(never)} missing or below confidence "
            f"{threshold} in every one of {len(valid)} frames"
        )


def interpolate_gaps(values: np.ndarray, valid: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
    """Fill invalid entries of (F, J, D) ``values`` linearly in time from the valid ones (F, J).

    Before the first and after the last valid frame of a joint its nearest valid value is held.
    ``segments`` (F,), non-decreasing ids: no value is carried from one segment into another.
    Every joint needs at least one valid frame (in every segment).
    """
    count = len(values)
    frames = np.arange(count)[:, None]
    prev = np.maximum.accumulate(np.where(valid, frames, -1), axis=0)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, frames, count), 0), axis=0), 0)
    if segments is not None:
        own = segments[:, None]
        prev = np.where(segments[np.maximum(prev, 0)] == own, prev, -1)
        nxt = np.where(segments[np.minimum(nxt, count - 1)] == own, nxt, count)
    prev = np.where(prev < 0, nxt, prev)
    nxt = np.where(nxt >= count, prev, nxt)
    span = nxt - prev
    weight = np.where(span > 0, (frames - prev) / np.maximum(span, 1), 0.0)[..., None]
    before = np.take_along_axis(values, prev[..., None], axis=0)
    after = np.take_along_axis(values, nxt[..., None], axis=0)
    return np.where(valid[..., None], values, before + weight * (after - before))
