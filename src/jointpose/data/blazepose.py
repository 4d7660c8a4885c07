"""MediaPipe's BlazePose (the optional ``video`` extra): one person followed from frame to
frame (:class:`PoseDetector`), everybody in one image (:class:`PeopleCounter`), and the
landmark geometry both use.

The detector is MediaPipe 0.10.21's legacy pose solution (``mediapipe.solutions.pose``) with
``model_complexity=1``: its two models (``pose_detection.tflite``, ``pose_landmark_full.tflite``)
ship inside the mediapipe wheel, so nothing is downloaded at run time (complexities 0 and 2
would download theirs, and are never used). In video mode it follows one person: the person
detector runs on the first frame and whenever the track is lost; in between, each frame's
landmarks give the next frame's region of interest. It sees one person, whom its person
detector scores highest.

:class:`PeopleCounter` runs the same two models through MediaPipe's PoseLandmarker task, which
finds several people per image: its model bundle is assembled in memory from the wheel's two
files, each given the input normalisation it expects as metadata (the person detector reads
pixels in [-1, 1], the landmark model in [0, 1]). BlazePose's person detector finds people by
their faces, so people it would not tell apart from a more visible one are found by painting
that one over (:func:`paint_over`) and looking again.

BlazePose gives 33 landmarks; the 17 that COCO also defines (face, shoulders, elbows, wrists,
hips, knees, ankles) are taken in COCO-17 order (:data:`BLAZEPOSE_TO_COCO`), so that the
COCO conversion of :mod:`jointpose.data.layouts` makes the network's Human3.6M-17 input.
A landmark's confidence is BlazePose's *visibility* (the probability that it is in the image
and not occluded), in [0, 1].
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np

from jointpose.errors import JointposeError

MODEL_COMPLEXITY = 1  # the only complexity whose model ships inside the mediapipe wheel
EXTRA_HINT = 'pip install "jointpose[video]"'

# BlazePose-33 landmark index of each COCO-17 keypoint (COCO order: nose, l/r eye, l/r ear,
# l/r shoulder, l/r elbow, l/r wrist, l/r hip, l/r knee, l/r ankle).
BLAZEPOSE_TO_COCO = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
BLAZEPOSE_LANDMARKS = 33
MAX_PEOPLE = 4  # the most people a count tells apart
OTHER_VISIBILITY = 0.7  # mean visibility of the body landmarks for a find to count as a person
OTHER_EXTENT = 0.75  # ... and their extent (bounding-box diagonal) in torso lengths of the tracked person
BODY_LANDMARKS = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]  # shoulders to ankles
# Torso, arms, legs and neck of BlazePose-33 as landmark pairs, painted over to hide the tracked person.
# fmt: off
PAINT_SEGMENTS = [(11, 12), (11, 23), (12, 24), (23, 24),
                  (11, 13), (13, 15), (15, 19), (12, 14), (14, 16), (16, 20),
                  (23, 25), (25, 27), (27, 31), (24, 26), (26, 28), (28, 32),
                  (0, 11), (0, 12)]
# fmt: on


def require_mediapipe() -> ModuleType:
    """The ``mediapipe`` module, or a one-line :class:`JointposeError` naming the extra to install."""
    try:
        import mediapipe
    except ImportError:
        raise JointposeError(f"video input needs MediaPipe's pose detector: {EXTRA_HINT} (Python 3.10-3.12)") from None
    if not hasattr(mediapipe, "solutions") or not hasattr(mediapipe.solutions, "pose"):
        version = getattr(mediapipe, "__version__", "?")
        raise JointposeError(
            f"mediapipe {version} has no legacy pose solution (its models ship only up to 0.10.21): {EXTRA_HINT}"
        )
    return mediapipe


@contextmanager
def native_logs_hidden() -> Iterator[None]:
    """Hide what MediaPipe's native code writes to the process's standard error (TensorFlow
    Lite's and absl's log lines: a dozen a run, from its own threads, and no switch to turn
    them off): file descriptor 2 goes to a temporary file for the duration, while Python's
    ``sys.stderr`` (progress bars, warnings, errors) keeps writing where it did."""
    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    encoding = getattr(python_stderr, "encoding", None) or "utf-8"
    try:
        with (
            tempfile.TemporaryFile() as sink,
            open(saved, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False) as terminal,
        ):
            os.dup2(sink.fileno(), 2)
            sys.stderr = terminal
            try:
                yield
            finally:
                terminal.flush()
                os.dup2(saved, 2)
                sys.stderr = python_stderr
    finally:
        os.close(saved)


class PoseDetector:
    """MediaPipe BlazePose in video mode (one person followed from frame to frame).

    ``min_detection_confidence``: person-detector score that starts a track;
    ``min_tracking_confidence``: landmark score below which the track counts as lost and the
    person detector runs again. MediaPipe's own landmark smoothing is off: jointpose filters
    in 3D, and left/right repair needs the raw labels.
    """

    def __init__(self, *, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not 0.0 <= value <= 1.0:
                raise JointposeError(f"{name} must lie in [0, 1], got {value}")
        mediapipe = require_mediapipe()
        self._pose = mediapipe.solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=MODEL_COMPLEXITY,
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pose.close()

    def reset(self) -> None:
        """Forget the track: the next frame starts with the person detector."""
        self._pose.reset()

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """BlazePose-33 landmarks (33, 3): x, y pixels and visibility, for one (H, W, 3) uint8 RGB
        frame; None when no person is found. Frames must come in video order."""
        result = self._pose.process(frame)
        if result.pose_landmarks is None:
            return None
        height, width = frame.shape[:2]
        values = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark])
        return values * np.array([width, height, 1.0])


def hip_centre(landmarks: np.ndarray) -> np.ndarray:
    """Mid-point of the hips (..., 2) in pixels, of BlazePose-33 landmarks (..., 33, >=2)."""
    return landmarks[..., [23, 24], :2].mean(axis=-2)


def torso_length(landmarks: np.ndarray) -> np.ndarray:
    """Distance (...,) in pixels from the hips' mid-point to the shoulders', of BlazePose-33 landmarks."""
    return np.linalg.norm(landmarks[..., [11, 12], :2].mean(axis=-2) - hip_centre(landmarks), axis=-1)


def paint_over(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A copy of ``frame`` with the person of BlazePose-33 ``landmarks`` (pixels) painted grey:
    limbs as strokes 0.35 torso lengths wide, the torso filled, the head a disc."""
    import cv2  # comes with mediapipe

    painted = np.array(frame, copy=True)
    torso = float(torso_length(landmarks))
    grey = (128, 128, 128)
    points = np.round(np.nan_to_num(landmarks[:, :2])).astype(np.int32)
    for a, b in PAINT_SEGMENTS:
        cv2.line(painted, tuple(map(int, points[a])), tuple(map(int, points[b])), grey, max(2, round(0.35 * torso)))
    cv2.fillPoly(painted, [points[[11, 12, 24, 23]]], grey)
    cv2.circle(painted, tuple(map(int, points[0])), max(1, round(0.45 * torso)), grey, -1)
    return painted


def body_span(landmarks: np.ndarray) -> float:
    """Diagonal (pixels) of the bounding box of a person's body landmarks (BlazePose-33)."""
    return float(np.linalg.norm(np.ptp(landmarks[BODY_LANDMARKS, :2], axis=0)))


def _same_place(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two finds (BlazePose-33) are one person found twice: hips within half a torso
    length (the longer torso of the two)."""
    return bool(np.linalg.norm(hip_centre(a) - hip_centre(b)) < 0.5 * max(torso_length(a), torso_length(b)))


class PeopleCounter:
    """The people (up to ``max_people``) BlazePose's two models find in one image."""

    def __init__(self, max_people: int = MAX_PEOPLE) -> None:
        mediapipe = require_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

        models = Path(mediapipe.__file__).parent / "modules"
        bundle = io.BytesIO()
        with zipfile.ZipFile(bundle, "w") as archive:
            for name, path, (mean, std) in (
                ("pose_detector.tflite", models / "pose_detection" / "pose_detection.tflite", (127.5, 127.5)),
                (
                    "pose_landmarks_detector.tflite",
                    models / "pose_landmark" / "pose_landmark_full.tflite",
                    (0.0, 255.0),
                ),
            ):
                model = path.read_bytes()
                writer = metadata_writer.MetadataWriter.create(model).add_general_info(name, "")
                writer.add_image_input(norm_mean=[mean], norm_std=[std])
                for _ in writer_utils.get_output_tensor_types(model):
                    writer.add_feature_output()
                archive.writestr(name, writer.populate()[0])
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=bundle.getvalue()),
            running_mode=vision.RunningMode.IMAGE,
            num_poses=max_people,
        )
        self._landmarker = vision.PoseLandmarker.create_from_options(options)
        self._max_people = max_people
        self._image = mediapipe.Image
        self._format = mediapipe.ImageFormat.SRGB

    def close(self) -> None:
        self._landmarker.close()

    def find(self, frame: np.ndarray) -> list[np.ndarray]:
        """BlazePose-33 landmarks (33, 3): x, y pixels and visibility, of each person found in one
        (H, W, 3) uint8 RGB frame whose body landmarks are visible enough (:data:`OTHER_VISIBILITY`),
        the most visible first; a find whose hips lie within half a torso length (the longer
        torso of the two) of a more visible one's is the same person found twice, and left out."""
        image = self._image(image_format=self._format, data=np.ascontiguousarray(frame))
        height, width = frame.shape[:2]
        people = [
            np.array([(p.x * width, p.y * height, p.visibility) for p in pose])
            for pose in self._landmarker.detect(image).pose_landmarks
        ]
        people.sort(key=lambda p: -p[BODY_LANDMARKS, 2].mean())
        kept: list[np.ndarray] = []
        for person in people:
            if person[BODY_LANDMARKS, 2].mean() < OTHER_VISIBILITY:
                break
            if not any(_same_place(person, k) for k in kept):
                kept.append(person)
        return kept

    def everyone(self, frame: np.ndarray) -> list[np.ndarray]:
        """Every person found in ``frame`` (BlazePose-33 each, pixels): found, painted over and
        looked for again until a look finds nobody new (at most ``max_people`` looks), so that
        people the person detector does not tell apart from a more visible one are found too.
        Finds after the first look whose body landmarks span less than :data:`OTHER_EXTENT` of
        the largest torso found are left out, as in :meth:`others`."""
        people: list[np.ndarray] = []
        painted = frame
        for _ in range(self._max_people):
            shortest = OTHER_EXTENT * max((float(torso_length(p)) for p in people), default=0.0)
            new = [
                p for p in self.find(painted) if body_span(p) >= shortest and all(not _same_place(p, q) for q in people)
            ]
            if not new:
                break
            people += new
            for person in new:
                painted = paint_over(painted, person)
        return people

    def others(self, frame: np.ndarray, track: np.ndarray | None) -> list[np.ndarray]:
        """The people in ``frame`` besides the tracked one (BlazePose-33 ``track``, None when
        the track has nobody), found with the tracked person painted over. With a track, a find
        whose body landmarks span less than :data:`OTHER_EXTENT` of the tracked person's torso
        length is left out: clutter, or somebody too far away to be taken for them."""
        if track is None:
            return self.find(frame)
        shortest = OTHER_EXTENT * torso_length(track)
        found = self.find(paint_over(frame, track))
        return [p for p in found if body_span(p) >= shortest]
