"""2D keypoints from video frames with MediaPipe's BlazePose (the optional ``video`` extra).

The detector is MediaPipe 0.10.21's legacy pose solution (``mediapipe.solutions.pose``) with
``model_complexity=1``: its two models (``pose_detection.tflite``, ``pose_landmark_full.tflite``)
ship inside the mediapipe wheel, so nothing is downloaded at run time (complexities 0 and 2
would download theirs, and are never used). In video mode it follows one person: the person
detector runs on the first frame and whenever the track is lost; in between, each frame's
landmarks give the next frame's region of interest.

BlazePose gives 33 landmarks; the 17 that COCO also defines (face, shoulders, elbows, wrists,
hips, knees, ankles) are taken in COCO-17 order (:data:`BLAZEPOSE_TO_COCO`), so that the
COCO conversion of :mod:`jointpose.data.layouts` makes the network's Human3.6M-17 input.
A landmark's confidence is BlazePose's *visibility* (the probability that it is in the image
and not occluded), in [0, 1].

The legacy solution sees one person, whom its person detector scores highest. jointpose
chooses instead (:func:`start_on`): everybody in view in the first frame where anybody is
found (:meth:`PeopleCounter.everyone`), the largest of them (the longest torso in the image)
or, given a point of the image (``person``), the one nearest to it. The others are painted
over in the frame the tracker starts on, and the tracker, reset until it starts on the
person chosen, follows them.

To say when there are several, :class:`PeopleCounter` runs the same two models through
MediaPipe's PoseLandmarker task, which finds several people per image, on a frame every
:data:`COUNT_SECONDS` (every :data:`CLOSE_COUNT_SECONDS` while others are in view): its model
bundle is assembled in memory from the wheel's two files, each given the input normalisation
it expects as metadata (the person detector reads pixels in [-1, 1], the landmark model in
[0, 1]). The tracked person is painted over first, so that the
count also finds people whom the person detector would not tell apart from them (BlazePose's
detector finds people by their faces). Where the track comes close to where another person
was last seen, or is found again after a loss far from where it was lost, it may have moved
from one person to another: a note names the frame (:class:`SwitchWatch`). After a loss, a
person found where another was last seen, and too far from where the track was lost to be
the person followed, is painted over and the detector looks again (:func:`refind`).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
from tqdm import tqdm

from jointpose.errors import JointposeError

MODEL_COMPLEXITY = 1  # the only complexity whose model ships inside the mediapipe wheel
EXTRA_HINT = 'pip install "jointpose[video]"'

# BlazePose-33 landmark index of each COCO-17 keypoint (COCO order: nose, l/r eye, l/r ear,
# l/r shoulder, l/r elbow, l/r wrist, l/r hip, l/r knee, l/r ankle).
BLAZEPOSE_TO_COCO = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
BLAZEPOSE_LANDMARKS = 33
COUNT_SECONDS = 1.0  # seconds between two counts of the people in view
CLOSE_COUNT_SECONDS = 0.25  # ... while others are in view
MAX_PEOPLE = 4  # the most people a count tells apart
OTHER_VISIBILITY = 0.7  # mean visibility of the body landmarks for a find to count as a person
OTHER_EXTENT = 0.75  # ... and their extent (bounding-box diagonal) in torso lengths of the tracked person
SWITCH_TORSOS = 0.6  # hip centre this near (in torso lengths) to where another stood: a possible switch
REFOUND_TORSOS = 1.0  # a track found again this far (torso lengths) from where it was lost, plus ...
REFOUND_TORSOS_PER_SECOND = 8.0  # ... this much per second lost (a run: about 4 m/s), is somebody else
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
        raise JointposeError(f"video input needs MediaPipe's pose detector: {EXTRA_HINT} (Python 3.9-3.12)") from None
    if not hasattr(mediapipe, "solutions") or not hasattr(mediapipe.solutions, "pose"):
        version = getattr(mediapipe, "__version__", "?")
        raise JointposeError(
            f"mediapipe {version} has no legacy pose solution (its models ship only up to 0.10.21): {EXTRA_HINT}"
        )
    return mediapipe


@dataclass
class Detections2D:
    """BlazePose output for a clip, in COCO-17 order.

    ``points`` (F, 17, 3): x, y pixels and confidence (visibility); NaN where no person was
    found. ``found`` (F,) marks frames with a person. ``decode_seconds`` and
    ``detect_seconds`` time the two stages. ``people``: how many people were seen, by frame
    index, in the frames where they were counted (:class:`PeopleCounter`). ``switches``:
    frames where the track may have moved to another person (:class:`SwitchWatch`). ``refused``:
    frames where the person found after the track was lost was somebody else, and left out
    (:func:`refind`).
    """

    points: np.ndarray
    found: np.ndarray
    decode_seconds: float = 0.0
    detect_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    people: dict[int, int] = field(default_factory=dict)
    switches: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


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


def nearest_person(people: list[np.ndarray], point: tuple[float, float]) -> int:
    """Index of the person (BlazePose-33 each, pixels) nearest to ``point`` (x, y pixels): the
    smallest distance from the point to the bounding box of their body landmarks (0 inside
    it), then, among those whose boxes hold it, the nearest hip centre."""
    where = np.asarray(point, dtype=np.float64)
    body = np.stack(people)[:, BODY_LANDMARKS, :2]
    outside = np.maximum(np.maximum(body.min(axis=1) - where, where - body.max(axis=1)), 0.0)
    hips = np.linalg.norm(hip_centre(np.stack(people)) - where, axis=-1)
    return int(np.lexsort((hips, np.linalg.norm(outside, axis=-1)))[0])


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


class SwitchWatch:
    """Tells the frames where the track may have moved from one person to another.

    Two signs: the track comes within :data:`SWITCH_TORSOS` of where another person was last
    seen (``update`` with the others found at each count; a place is remembered until a later
    count sees others, or for a second after a count that sees none, as they may be hidden
    behind the tracked person), or the track is found again after a loss farther from where it
    was lost than a person moves in that time (:data:`REFOUND_TORSOS`,
    :data:`REFOUND_TORSOS_PER_SECOND`). Others closer than :data:`SWITCH_TORSOS` to the track
    at a count are not remembered, and a place is forgotten once reached.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.places = np.zeros((0, 2))
        self.seen_at = -np.inf
        self.last: tuple[int, np.ndarray] | None = None

    def update(self, frame: int, track: np.ndarray | None, others: list[np.ndarray]) -> None:
        """Take the others (BlazePose-33 each) found at count ``frame`` beside ``track``."""
        if others:
            places = hip_centre(np.stack(others))
            if track is not None:
                far = np.linalg.norm(places - hip_centre(track), axis=-1) >= SWITCH_TORSOS * torso_length(track)
                places = places[far]
            self.places, self.seen_at = places, frame
        elif frame - self.seen_at > self.fps * COUNT_SECONDS:
            self.places = np.zeros((0, 2))

    def moved(self, frame: int, track: np.ndarray) -> bool:
        """Whether the track (BlazePose-33) in ``frame`` may be on somebody else than before;
        call for every frame with a track, in order."""
        hip, torso = hip_centre(track), torso_length(track)
        near = np.linalg.norm(self.places - hip, axis=-1) < SWITCH_TORSOS * torso
        self.places = self.places[~near]
        if self.last is None:  # the first person tracked: nobody to move from
            self.last = (frame, hip)
            return False
        refound = frame - self.last[0] > 1 and not self._within_reach(hip, torso, self.last[1], frame - self.last[0])
        self.last = (frame, hip)
        return bool(near.any()) or refound

    def is_other(self, frame: int, track: np.ndarray) -> bool:
        """Whether ``track`` (BlazePose-33), found in ``frame`` after the track was lost, is
        somebody else: farther from where the track was lost than a person moves in that time
        (as in :meth:`moved`), and within that reach of where another person was last seen,
        whose place then moves to it (so that they are known again in the next frame)."""
        if self.last is None or frame - self.last[0] <= 1 or not len(self.places):
            return False
        hip, torso = hip_centre(track), torso_length(track)
        if self._within_reach(hip, torso, self.last[1], frame - self.last[0]):
            return False
        nearest = int(np.argmin(np.linalg.norm(self.places - hip, axis=-1)))
        if not self._within_reach(hip, torso, self.places[nearest], frame - self.seen_at):
            return False
        self.places[nearest], self.seen_at = hip, frame
        return True

    def _within_reach(self, hip: np.ndarray, torso: float, place: np.ndarray, frames: float) -> bool:
        """Whether hips at ``hip`` (pixels; ``torso`` pixels long) could be a person's who stood
        at ``place`` ``frames`` frames before (:data:`REFOUND_TORSOS`, :data:`REFOUND_TORSOS_PER_SECOND`)."""
        allowed = REFOUND_TORSOS + REFOUND_TORSOS_PER_SECOND * frames / self.fps
        return bool(np.linalg.norm(hip - place) <= allowed * torso)


def detect_frames(
    frames: Iterable[np.ndarray],
    *,
    total: int | None = None,
    progress: bool = True,
    detector: PoseDetector | None = None,
    fps: float | None = None,
    person: tuple[float, float] | None = None,
) -> Detections2D:
    """Run BlazePose over ``frames`` (RGB uint8, in video order): COCO-17 points per frame.

    ``total`` (frames) sizes the progress bar only. ``fps``: the clip's frame rate; given, the
    people in view are counted (:class:`PeopleCounter`) every :data:`COUNT_SECONDS` from the
    first frame (every :data:`CLOSE_COUNT_SECONDS` within a second of seeing others), and
    notes say where there were several and where the track may have moved from one person to
    another (:class:`SwitchWatch`); the track starts on the largest person in the first frame
    where anybody is found (:func:`start_on`; should it fail to start on them for a second of
    frames, on the person detector's own pick). ``person`` (x, y pixels): the person nearest to
    this point instead. Frames before the start have nobody. Without ``fps`` nor ``person``
    the track is the person detector's own.
    """
    check_person(person)
    owned = detector is None
    detector = PoseDetector() if detector is None else detector
    counter = None
    rows: list[np.ndarray] = []
    people: dict[int, int] = {}
    switches: list[int] = []
    others_refused: list[int] = []  # frames where a person found after a loss was somebody else
    next_count = 0.0
    started: int | None = None  # the frame the track started on the person chosen
    at_start = missed = 0  # people found in that frame; frames where a start failed
    patience = round(fps * COUNT_SECONDS) if fps else 0  # failed starts before the detector's own pick
    first_others: tuple[int, np.ndarray, np.ndarray] | None = None  # frame, the track's hips, the others'
    watch = SwitchWatch(fps) if fps else None
    decode = detect = 0.0
    missing = np.full((BLAZEPOSE_LANDMARKS, 3), np.nan)
    try:
        counter = PeopleCounter() if watch is not None or person is not None else None
        iterator = iter(frames)
        with tqdm(total=total, desc="detecting 2D keypoints", unit="frame", disable=not progress) as bar:
            while True:
                t0 = time.perf_counter()
                frame = next(iterator, None)
                t1 = time.perf_counter()
                decode += t1 - t0
                if frame is None:
                    break
                index = len(rows)
                if counter is not None and started is None and (person is not None or missed < patience):
                    landmarks, seen = start_on(detector, counter, frame, person)
                    missed += seen > 0 and landmarks is None
                    if landmarks is not None:
                        started, at_start = index, seen
                else:
                    landmarks = detector.detect(frame)
                    if watch is not None and landmarks is not None and index > 0 and np.isnan(rows[-1][0, 0]):
                        landmarks, refused = refind(detector, watch, frame, index, landmarks)
                        others_refused += [index] if refused else []
                if counter is not None and watch is not None and index >= next_count:
                    others = counter.others(frame, landmarks)
                    people[index] = len(others) + (landmarks is not None)
                    if others and landmarks is not None and first_others is None:
                        first_others = (index, hip_centre(landmarks), hip_centre(np.stack(others)))
                    watch.update(index, landmarks, others)
                    close = index - watch.seen_at <= watch.fps * COUNT_SECONDS
                    next_count = index + watch.fps * (CLOSE_COUNT_SECONDS if close else COUNT_SECONDS)
                if watch is not None and landmarks is not None and watch.moved(index, landmarks):
                    switches.append(index)
                detect += time.perf_counter() - t1
                rows.append(missing if landmarks is None else landmarks)
                bar.update()
    finally:
        if owned:
            detector.close()
        if counter is not None:
            counter.close()
    if not rows:
        raise JointposeError("video: no frame decoded (empty clip)")
    if person is not None and started is None:
        raise JointposeError(
            "{0} {x:g} {y:g}: nobody to follow there in any of the clip's {count} frames",
            fields=("person",),
            x=person[0],
            y=person[1],
            count=len(rows),
        )
    points = np.stack(rows)[:, BLAZEPOSE_TO_COCO]
    found = np.isfinite(points[:, 0, 0])
    notes = _lost_notes(found)
    if watch is not None:
        notes += _people_notes(people, first_others, watch.fps) + _switch_notes(switches, watch.fps)
        notes += _refused_notes(others_refused)
    if person is not None:
        notes.append(f"followed the person nearest to ({person[0]:g}, {person[1]:g}) px from frame {started}")
    elif at_start > 1:
        notes.append(
            f"followed the largest of the {at_start} people found in frame {started} (--person chooses another)"
        )
    return Detections2D(points, found, decode, detect, notes, people, switches, others_refused)


def check_person(person: tuple[float, float] | None, size: tuple[int, int] | None = None) -> None:
    """Refuse a point to follow the person nearest to that is not two finite pixel coordinates
    or, given the frame's ``size`` (width, height), that lies outside the frame."""
    if person is None:
        return
    values = np.asarray(person, dtype=np.float64)
    if values.shape != (2,) or not np.isfinite(values).all():
        raise JointposeError(
            "{0} must be two finite pixel coordinates X Y, got {person}", fields=("person",), person=person
        )
    if size is not None and not (0 <= values[0] < size[0] and 0 <= values[1] < size[1]):
        raise JointposeError(
            "{0} {x:g} {y:g} lies outside the video's {width}x{height} frame (x right, y down, pixels)",
            fields=("person",),
            x=values[0],
            y=values[1],
            width=size[0],
            height=size[1],
        )


def start_on(
    detector: PoseDetector, counter: PeopleCounter, frame: np.ndarray, point: tuple[float, float] | None
) -> tuple[np.ndarray | None, int]:
    """Start ``detector``'s track on the person nearest to ``point`` (x, y pixels) in ``frame``,
    or without a point on the largest (the longest torso in the image). Returns their
    BlazePose-33 landmarks, None when nobody is found or the track cannot be started on them,
    and how many people were found. Without a point, where nobody is seen well enough to
    choose from (:data:`OTHER_VISIBILITY`), the detector's own pick is taken. Where the
    detector's own pick is somebody else than the person chosen (hips farther than
    :data:`SWITCH_TORSOS` torso lengths), the track is forgotten (:meth:`PoseDetector.reset`)
    and started again on the frame with the others painted over."""
    people = counter.everyone(frame)
    if not people:  # nobody seen well enough to choose from
        if point is not None:
            return None, 0
        landmarks = detector.detect(frame)  # the detector's own pick, seen less well
        return landmarks, int(landmarks is not None)
    if point is None:
        chosen = int(np.argmax(torso_length(np.stack(people))))
    else:
        chosen = nearest_person(people, point)
    target = people[chosen]

    def on_target(landmarks: np.ndarray | None) -> bool:
        reach = SWITCH_TORSOS * torso_length(target)
        return landmarks is not None and bool(np.linalg.norm(hip_centre(landmarks) - hip_centre(target)) <= reach)

    landmarks = detector.detect(frame)  # the detector's own pick, where it is the person chosen
    if on_target(landmarks):
        return landmarks, len(people)
    detector.reset()
    painted = frame
    for index, other in enumerate(people):
        if index != chosen:
            painted = paint_over(painted, other)
    landmarks = detector.detect(painted)
    if on_target(landmarks):
        return landmarks, len(people)
    detector.reset()
    return None, len(people)


def refind(
    detector: PoseDetector, watch: SwitchWatch, frame: np.ndarray, index: int, landmarks: np.ndarray
) -> tuple[np.ndarray | None, bool]:
    """The person to follow in ``frame`` (frame ``index``) after the track was lost, given the
    ``landmarks`` (BlazePose-33) ``detector`` found there: where they are somebody else
    (:meth:`SwitchWatch.is_other`), they are painted over and the detector, reset, looks
    again, until it finds nobody, somebody who may be the person followed, or has been refused
    :data:`MAX_PEOPLE` times. Returns the landmarks kept (None: nobody), and whether anybody
    was refused."""
    painted, refused = frame, False
    for _ in range(MAX_PEOPLE):
        if not watch.is_other(index, landmarks):
            return landmarks, refused
        refused = True
        painted = paint_over(painted, landmarks)
        detector.reset()
        found = detector.detect(painted)
        if found is None:
            return None, refused
        landmarks = found
    detector.reset()
    return None, refused


def _people_notes(
    people: dict[int, int], first: tuple[int, np.ndarray, np.ndarray] | None = None, fps: float = 0.0
) -> list[str]:
    """A note when some of the counted frames show several people; with ``first`` (the frame
    where others were first seen beside the track, the track's hip centre and the others',
    pixels; at ``fps``), where they stood, for ``--person``."""
    several = [frame for frame, count in people.items() if count > 1]
    if not several:
        return []
    most = max(people.values())
    note = (
        f"several people in view: {len(several)} of {len(people)} counted frames show "
        f"{most if most == 2 else f'2 to {most}'} (first in frame {several[0]}); the track follows one person, "
        "keeping whom it found until it loses them, and can move to another where they overlap: check the render"
    )
    if first is not None:
        frame, track, others = first
        places = ", ".join(f"({x:.0f}, {y:.0f})" for x, y in others)
        when = f" ({frame / fps:.2f} s into the clip)" if frame > 0 else ""
        start = ", with --start there," if frame > 0 else ""
        whose = "the others'" if len(others) > 1 else "the other's"
        note += (
            f". In frame {frame}{when} the track's hips are at ({track[0]:.0f}, {track[1]:.0f}) px, {whose} at "
            f"{places}: --person X Y{start} follows another"
        )
    return [note]


def _switch_notes(switches: list[int], fps: float) -> list[str]:
    """A note naming the frames (and times, at ``fps``) where the track may have moved to another person."""
    if not switches:
        return []
    frames = ", ".join(f"{frame} ({frame / fps:.2f} s)" for frame in switches[:5])
    frames += f" and {len(switches) - 5} more" if len(switches) > 5 else ""
    return [
        f"the track may have moved to another person in frame{'s' if len(switches) > 1 else ''} {frames} "
        "(it came to where another had been seen, or was found again far from where it was lost): "
        "check the render, or cut the clip there (--start/--end)"
    ]


def _refused_notes(refused: list[int]) -> list[str]:
    """A note naming the frames where a person found after the track was lost was left out."""
    if not refused:
        return []
    mask = np.zeros(refused[-1] + 1, dtype=bool)
    mask[refused] = True
    return [
        f"after the track was lost, somebody else was found in frames {_frame_ranges(mask)} (where another person "
        "had been seen, farther from where the track was lost than a person moves): not followed"
    ]


def _lost_notes(found: np.ndarray) -> list[str]:
    """Notes naming the frame ranges without a person (at most five ranges listed)."""
    if found.all():
        return [f"person found in all {len(found)} frames"]
    return [
        f"person found in {int(found.sum())} of {len(found)} frames ({100 * found.mean():.1f}%); "
        f"lost in frames {_frame_ranges(~found)}"
    ]


def _frame_ranges(mask: np.ndarray) -> str:
    """The runs of True in ``mask`` (F,) as frame ranges, "3-7, 9" (at most five, then how many more)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    ranges = ", ".join(f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in zip(starts[:5], stops[:5]))
    return ranges + (f" and {len(starts) - 5} more" if len(starts) > 5 else "")
