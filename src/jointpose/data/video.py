"""Video files as RGB frames, decoded one at a time with ffmpeg (imageio-ffmpeg).

:func:`open_video` reads a file's size and frame rate and cuts a clip out of it by time
(``start``/``end`` in seconds, rounded to the nearest frame); :meth:`VideoClip.frames` then
decodes that clip's frames as (height, width, 3) uint8 arrays. Frames are numbered from the
first frame of the file at the file's frame rate (its average rate: a file of variable frame
rate is decoded at that constant rate, so that frame ``i`` is the video at ``i / fps`` seconds).
A file stored with a rotation
(phones record portrait video as landscape frames and a display rotation) is decoded as it
is displayed: ffmpeg turns the frames, and the size is the turned one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from jointpose.errors import JointposeError
from jointpose.safeio import check_fps, check_limit, check_path


@contextmanager
def ffmpeg_warnings_hidden() -> Iterator[None]:
    """Silence imageio-ffmpeg's warnings where they are expected: that the frames differ in
    size from the stored ones (what a file with a display rotation gives, and is meant), that
    a video closed before its first frame is invalid (an interrupted render, removed), and
    that ffmpeg had to be killed (a reader closed before the end of its file)."""
    log = logging.getLogger("imageio_ffmpeg")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@dataclass(frozen=True)
class VideoClip:
    """A cut of a video file: ``count`` frames (None: to the end) from frame ``first``.

    ``width``/``height`` in pixels, ``fps`` frames per second, ``duration`` of the whole
    file in seconds (ffmpeg's estimate).
    """

    path: Path
    width: int
    height: int
    fps: float
    duration: float
    first: int = 0
    count: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def start(self) -> float:
        """Time of the clip's first frame, seconds from the start of the file."""
        return self.first / self.fps

    def estimated_frames(self) -> int:
        """The clip's frame count, from the file's duration when ``count`` is not known yet."""
        if self.count is not None:
            return self.count
        return max(0, int(round(self.duration * self.fps)) - self.first)

    def frames(self) -> Iterator[np.ndarray]:
        """The clip's frames as (height, width, 3) uint8 RGB, decoded one at a time: frame ``i``
        shows the video at ``i / fps`` seconds from the clip's start. A clip of variable frame
        rate (phones lower it in dim light) is decoded at ``fps`` (its average rate: each frame
        the one shown within half a frame of its time), not at the container's nominal rate."""
        # Seek a hundredth of a frame early: ffmpeg drops every frame before the wanted one, and
        # its fps filter (for each output time, the last frame whose time rounds to it) puts the
        # wanted one first.
        seek = ["-ss", f"{(self.first - 0.01) / self.fps:.6f}"] if self.first > 0 else []
        reader = imageio_ffmpeg.read_frames(
            str(self.path), input_params=seek, output_params=["-vf", f"fps={self.fps!r}"]
        )
        try:
            with ffmpeg_warnings_hidden():
                next(reader)
            shape = (self.height, self.width, 3)
            for index, raw in enumerate(reader):
                if self.count is not None and index >= self.count:
                    break
                yield np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        finally:
            with ffmpeg_warnings_hidden():  # "We had to kill ffmpeg to stop it": a cut that ends early
                reader.close()

    def with_count(self, count: int) -> VideoClip:
        return dataclasses.replace(self, count=count)

    def ended_early(self, decoded: int) -> str | None:
        """A note when decoding gave ``decoded`` frames, fewer than the file's duration
        announces for the clip by more than half a second's and :data:`_SHORT_TOLERANCE` of
        them (a duration is an estimate, and a variable frame rate's count is approximate): a
        truncated or damaged file, whose frames after the break are missing."""
        announced = max(0, int(round(self.duration * self.fps)) - self.first)
        if self.count is not None:
            announced = min(announced, self.count)
        if announced - decoded <= max(0.5 * self.fps, _SHORT_TOLERANCE * announced):
            return None
        return (
            f"note: decoding {self.path} ended after {decoded} frames where its duration "
            f"({self.duration:.2f} s) announces {announced}: the file may be truncated or damaged"
        )


_SHORT_TOLERANCE = 0.05  # share of the announced frames that decoding may fall short by unnoted
_BEYOND_ANY_VIDEO = 2**53  # frames (exact as a float): 11 million years at 25 fps


def _frame_at(seconds: float, fps: float) -> int:
    """The number of the frame shown at ``seconds`` (rounded to the nearest); a time beyond
    :data:`_BEYOND_ANY_VIDEO` frames (1e308 s too) counts as that frame, still past the end."""
    return int(round(min(seconds * fps, _BEYOND_ANY_VIDEO)))


def open_video(path: str | Path, start: float | None = None, end: float | None = None) -> VideoClip:
    """The clip of video ``path`` from ``start`` to ``end`` seconds (default: the whole file).

    Raises :class:`JointposeError` naming the file when it is missing or not a video, and
    naming ``--start``/``--end`` when the cut is empty or outside the video.
    """
    path = check_path(path, "path")
    if not path.is_file():
        raise JointposeError(f"video {path}: " + ("a folder, not a video file" if path.is_dir() else "no such file"))
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            with ffmpeg_warnings_hidden():
                meta = next(reader)
        finally:
            with ffmpeg_warnings_hidden():
                reader.close()
    except (OSError, RuntimeError, StopIteration) as err:
        streams = sorted(set(re.findall(r"Stream #\S+: (\w+):", str(err))))  # ffmpeg's listing of the file
        if streams and "Video" not in streams:
            raise JointposeError(f"video {path}: holds no video stream, only {' and '.join(streams).lower()}") from None
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise JointposeError(f"video {path}: cannot read it as a video ({reason})") from None
    fps, duration = float(meta.get("fps") or 0.0), float(meta.get("duration") or 0.0)
    if not (math.isfinite(fps) and fps > 0):
        raise JointposeError(f"video {path}: has no frame rate (is it a still image?)")
    check_fps(fps, f"video {path}: frame rate")  # before the work: the poses are written at it
    width, height = (int(v) for v in meta["size"])
    check_limit("video_pixels", width * height, f"video {path}: {width}x{height} frames: pixels")
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise JointposeError("{0} must be a finite time in seconds >= 0, got {value}", fields=(name,), value=value)
    first = _frame_at(start, fps) if start is not None else 0
    frames = _frame_at(duration, fps) if duration > 0 else None  # as the duration announces them
    if frames is not None and first >= frames:
        raise JointposeError(
            "{0} {start:g} s rounds to frame {first}, past the last frame of {path} ({last}, shown from {shown:.3f} s)",
            fields=("start",),
            start=start,
            path=path,
            first=first,
            last=frames - 1,
            shown=(frames - 1) / fps,
        )
    count = None
    if end is not None:
        count = _frame_at(end, fps) - first
        if count < 1:
            raise JointposeError(
                "{0} {end:g} s must come at least one frame after {1} {start:g} s",
                fields=("end", "start"),
                end=end,
                start=start or 0,
            )
        if frames is not None and first + count >= frames:  # to the end: counted as decoded
            count = None
    return VideoClip(path, width, height, fps, duration, first, count)
