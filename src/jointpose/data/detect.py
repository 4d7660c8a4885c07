"""2D keypoints from video frames with MediaPipe's BlazePose (the optional ``video`` extra).

:func:`detect_frames` runs the detector (:mod:`jointpose.data.blazepose`) over a clip and
returns one person's COCO-17 keypoints per frame (:class:`Detections2D`), with notes. Given the
clip's frame rate it counts the people in view (:class:`~jointpose.data.blazepose.PeopleCounter`)
on a frame every :data:`~jointpose.data.people.COUNT_SECONDS` (every
:data:`CLOSE_COUNT_SECONDS` while others are in view), the tracked person painted over first,
and chooses and watches whom the track follows (:mod:`jointpose.data.people`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from jointpose.data.blazepose import BLAZEPOSE_LANDMARKS, BLAZEPOSE_TO_COCO, PeopleCounter, PoseDetector, hip_centre
from jointpose.data.people import COUNT_SECONDS, SwitchWatch, refind, start_on
from jointpose.errors import JointposeError
from jointpose.safeio import frame_ranges

CLOSE_COUNT_SECONDS = 0.25  # seconds between two counts while others are in view


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
    frames, on the person detector's own pick), and after a loss it is not started again on
    somebody found where another person was seen (:func:`refind`). ``person`` (x, y pixels):
    the person nearest to this point instead of the largest. Frames before the start have
    nobody. Without ``fps`` nor ``person`` the track is the person detector's own.
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
                    bar.total = bar.n  # the container's frame count is an estimate: end on the frames read
                    bar.refresh()
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
    return [
        f"after the track was lost, somebody else was found in frames {frame_ranges(refused)} (where another person "
        "had been seen, farther from where the track was lost than a person moves): not followed"
    ]


def _lost_notes(found: np.ndarray) -> list[str]:
    """Notes naming the frame ranges without a person (at most five ranges listed)."""
    if found.all():
        return [f"person found in all {len(found)} frames"]
    return [
        f"person found in {int(found.sum())} of {len(found)} frames ({100 * found.mean():.1f}%); "
        f"lost in frames {frame_ranges(np.flatnonzero(~found))}"
    ]
