"""Whom the track follows: the person chosen at the start (:func:`start_on`), the frames where
it may have moved to somebody else (:class:`SwitchWatch`), and somebody else refused after a
loss (:func:`refind`).

The legacy solution sees one person, whom its person detector scores highest. jointpose
chooses instead: everybody in view in the first frame where anybody is found
(:meth:`~jointpose.data.blazepose.PeopleCounter.everyone`), the largest of them (the longest
torso in the image) or, given a point of the image, the one nearest to it
(:func:`nearest_person`). The others are painted over in the frame the tracker starts on, and
the tracker, reset until it starts on the person chosen, follows them.

Where the track comes close to where another person was last seen, or is found again after a
loss far from where it was lost, it may have moved from one person to another
(:meth:`SwitchWatch.moved`). After a loss, a person found where another was last seen, and
too far from where the track was lost to be the person followed, is painted over and the
detector looks again (:func:`refind`).
"""

from __future__ import annotations

import numpy as np

from jointpose.data.blazepose import (
    BODY_LANDMARKS,
    MAX_PEOPLE,
    PeopleCounter,
    PoseDetector,
    hip_centre,
    paint_over,
    torso_length,
)

COUNT_SECONDS = 1.0  # seconds between two counts of the people in view
SWITCH_TORSOS = 0.6  # hip centre this near (in torso lengths) to where another stood: a possible switch
REFOUND_TORSOS = 1.0  # a track found again this far (torso lengths) from where it was lost, plus ...
REFOUND_TORSOS_PER_SECOND = 8.0  # ... this much per second lost (a run: about 4 m/s), is somebody else


def nearest_person(people: list[np.ndarray], point: tuple[float, float]) -> int:
    """Index of the person (BlazePose-33 each, pixels) nearest to ``point`` (x, y pixels): the
    smallest distance from the point to the bounding box of their body landmarks (0 inside
    it), then, among those whose boxes hold it, the nearest hip centre."""
    where = np.asarray(point, dtype=np.float64)
    body = np.stack(people)[:, BODY_LANDMARKS, :2]
    outside = np.maximum(np.maximum(body.min(axis=1) - where, where - body.max(axis=1)), 0.0)
    hips = np.linalg.norm(hip_centre(np.stack(people)) - where, axis=-1)
    return int(np.lexsort((hips, np.linalg.norm(outside, axis=-1)))[0])


def start_on(
    detector: PoseDetector, counter: PeopleCounter, frame: np.ndarray, point: tuple[float, float] | None
) -> tuple[np.ndarray | None, int]:
    """Start ``detector``'s track on the person nearest to ``point`` (x, y pixels) in ``frame``,
    or without a point on the largest (the longest torso in the image). Returns their
    BlazePose-33 landmarks, None when nobody is found or the track cannot be started on them,
    and how many people were found. Without a point, where nobody is seen well enough to
    choose from (:data:`~jointpose.data.blazepose.OTHER_VISIBILITY`), the detector's own pick
    is taken. Where the detector's own pick is somebody else than the person chosen (hips
    farther than :data:`SWITCH_TORSOS` torso lengths), the track is forgotten
    (:meth:`PoseDetector.reset`) and started again on the frame with the others painted over."""
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


class SwitchWatch:
    """Tells the frames where the track may have moved from one person to another.

    Two signs: the track comes within :data:`SWITCH_TORSOS` of where another person was last
    seen (``update`` with the others found at each count; a place is remembered until a later
    count sees others, or for a second after a count that sees none, as they may be hidden
    behind the tracked person), or the track is found again after a loss farther from where it
    was lost than a person moves in that time (:data:`REFOUND_TORSOS`,
    :data:`REFOUND_TORSOS_PER_SECOND`). Others closer than :data:`SWITCH_TORSOS` to the track
    at a count are not remembered, and a place is forgotten once reached. The same places
    tell somebody else found after a loss (:meth:`is_other`).
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
