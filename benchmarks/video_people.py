"""Other people beside the tracked one, and where the track may change person, on real footage.

For each clip: how many of every ``--step``-th frame show another person to
:class:`jointpose.data.blazepose.PeopleCounter` (the tracked person painted over, finds at least
``OTHER_VISIBILITY`` visible), the time per look, the frames ``jointpose video``'s notes name
as possible switches (:class:`jointpose.data.people.SwitchWatch`), and the frames where a person
found after a loss was somebody else and not followed (:func:`jointpose.data.people.refind`).
Clips default to the footage
.ci/run extracts: Pose2Sim's Demo_SinglePerson (one person: every find is a false one),
Demo_MultiPerson (two people; in cam03 the track slides from the man to the woman in frames
78-82) and Sports2D's demo (two people; after the man is lost in frame 170 the woman is found
and refused until he is found again).

    python benchmarks/video_people.py [--footage tests/.footage] [--step 2] [CLIP ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jointpose.data.blazepose import PeopleCounter, PoseDetector
from jointpose.data.detect import detect_frames
from jointpose.data.video import open_video

CLIPS = (
    [f"cam0{i}.mp4" for i in range(1, 5)] + [f"multi-person/cam0{i}.mp4" for i in range(1, 5)] + ["sports2d/demo.mp4"]
)


def look_for_others(path: Path, step: int) -> tuple[int, int, float]:
    """Frames looked at, frames with another person, and seconds per look, every ``step``-th frame."""
    looked = with_others = 0
    seconds = 0.0
    counter = PeopleCounter()
    with PoseDetector() as detector:
        for index, frame in enumerate(open_video(str(path)).frames()):
            track = detector.detect(frame)
            if index % step:
                continue
            start = time.perf_counter()
            others = counter.others(frame, track)
            seconds += time.perf_counter() - start
            looked += 1
            with_others += bool(others)
    counter.close()
    return looked, with_others, seconds / max(looked, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", default=CLIPS, help="clips, relative to --footage")
    parser.add_argument("--footage", type=Path, default=Path("tests/.footage"))
    parser.add_argument("--step", type=int, default=2, help="look at every STEP-th frame")
    args = parser.parse_args()
    print(f"{'clip':28} {'frames':>6} {'looked':>6} {'others':>6} {'ms/look':>7}  possible switches; refused")
    for name in args.clips:
        path = args.footage / name
        if not path.is_file():
            raise SystemExit(f"{path}: no such clip (see .ci/run for how to get the demo footage)")
        looked, with_others, seconds = look_for_others(path, args.step)
        clip = open_video(str(path))
        detections = detect_frames(clip.frames(), progress=False, fps=clip.fps)
        switches = ", ".join(map(str, detections.switches)) or "none"
        refused = ", ".join(map(str, detections.refused)) or "none"
        print(
            f"{name:28} {len(detections.points):6d} {looked:6d} {with_others:6d} {1000 * seconds:7.0f}  "
            f"{switches}; {refused}",
            flush=True,
        )


if __name__ == "__main__":
    main()
