"""Animations of the 2D input beside the 3D poses, written as MP4 (H.264) or GIF.

The left panel shows the 2D keypoints (pixels, y down) over the optional background
video or frames; each named 3D sequence (metres, camera space: x right, y down,
z forward) gets its own panel to the right, drawn with "up" = -y, equal scales on all
three axes and one fixed view for the whole clip: every pose is centred on its root and
the axis limits are ``[-r, r]`` with one radius ``r`` computed from all sequences.

Bones are coloured by side in every panel: :data:`LEFT_COLOR` for the person's left,
:data:`RIGHT_COLOR` for the right, :data:`CENTRE_COLOR` for the spine and head.

The figure is built once; each frame only moves the line data and redraws those lines
over a cached image of the static parts (blitting on the Agg canvas), and frames are
streamed to the writer.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image
from tqdm import tqdm

from jointpose.data.detector_files import read_json
from jointpose.data.h36m import MAX_DISTANCE_M
from jointpose.data.video import VideoClip, ffmpeg_warnings_hidden, open_video
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton
from jointpose.safeio import (
    atomic_path,
    check_bounded,
    check_fps,
    file_path,
    load_npz,
    npz_keys,
    numeric_array,
    signals_deferred,
    stored_fps,
)

LEFT_COLOR = "#d62728"
RIGHT_COLOR = "#1f4fd6"
CENTRE_COLOR = "#6e6e6e"
TRAIL_COLOR = "#6a3d9a"  # the root's path: not a bone colour of the legend
SIDE_COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "centre": CENTRE_COLOR}
FORMATS = (".mp4", ".gif")
# A GIF stores each frame's delay in hundredths of a second, in 16 bits: at most 655.35 s.
GIF_MAX_DELAY_CS = 0xFFFF
# Browsers show a delay under 0.02 s as 0.1 s, so no GIF frame is shorter.
GIF_MIN_DELAY_CS = 2


def _bone_side(child: int) -> str:
    if child in skeleton.LEFT_JOINTS:
        return "left"
    return "right" if child in skeleton.RIGHT_JOINTS else "centre"


# Side of each bone of skeleton.BONES, from the joint it ends at.
BONE_SIDES: tuple[str, ...] = tuple(_bone_side(child) for child, _ in skeleton.BONES)

# Per side, joint indices tracing its bones as parent, child, gap (index 17 = a NaN joint),
# so that one line per side draws all of that side's bones.
_GAP = skeleton.NUM_JOINTS
_SIDE_PATHS = {
    side: np.array([[p, c, _GAP] for (c, p), s in zip(skeleton.BONES, BONE_SIDES) if s == side]).ravel()
    for side in SIDE_COLORS
}


def _sequence(name: str, values: object, dims: int) -> np.ndarray:
    """``values`` as a finite (F, 17, dims) float array, or a JointposeError naming ``name``;
    3D poses within a dataset's bound (``MAX_DISTANCE_M``), so that their extent stays finite."""
    array = numeric_array(values, name)
    if array.ndim != 3 or array.shape[1:] != (skeleton.NUM_JOINTS, dims) or len(array) == 0:
        raise JointposeError(f"{name}: expected shape (frames, {skeleton.NUM_JOINTS}, {dims}), got {array.shape}")
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        raise JointposeError(f"{name}: non-finite value at frame {bad[0, 0]}, joint {bad[0, 1]}")
    if dims == 3:
        check_bounded(array, MAX_DISTANCE_M, name, f"hold coordinates beyond {MAX_DISTANCE_M:g} m (not metres?)")
    return array


def check_frame_counts(counts: Mapping[str, int]) -> int:
    """The one frame count of ``counts`` ({what: frames}); refused, naming each, where they differ."""
    if len(set(counts.values())) > 1:
        raise JointposeError(
            "inputs have different frame counts: " + ", ".join(f"{what} {n}" for what, n in counts.items())
        )
    return next(iter(counts.values()))


def _output_arrays(path: str | Path, keys: tuple[str, ...]) -> tuple[dict[str, object], float | None]:
    """The values of ``keys`` that an output of ``jointpose infer`` or ``video`` holds, npz or
    JSON (by its extension), and its frame rate (None when it holds none)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npz", ".json", ""):  # a CSV or BVH output, an .npy: not read back
        raise JointposeError(
            f"{path}: a {suffix} file; poses are read back from the npz or JSON output of jointpose infer or video"
        )
    if suffix != ".json":
        files = load_npz(path, keys=(*keys, "fps"))
        return {key: files[key] for key in keys if key in files}, stored_fps(files, path)
    data = read_json(Path(path))
    if not isinstance(data, dict):
        raise JointposeError(f"{path}: expected the JSON object a jointpose infer or video output holds")
    fps = data.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float))):
        raise JointposeError(f"{path}: key 'fps' must be one number, got {type(fps).__name__}")
    rate = None if fps is None else check_fps(float(fps), f"{path}: key 'fps'")
    return {key: data[key] for key in keys if key in data}, rate


def read_trajectory(path: str | Path) -> np.ndarray | None:
    """The root's camera-space trajectory (frames, 3; metres) an output of ``jointpose infer`` or
    ``video`` (npz or JSON) holds under 'trajectory', or None; errors name the file and key."""
    files, _ = _output_arrays(path, ("trajectory",))
    return _trajectory(f"{path}: key 'trajectory'", files["trajectory"]) if "trajectory" in files else None


def _trajectory(name: str, values: object) -> np.ndarray:
    """``values`` as finite (frames, 3) root positions in metres within ``MAX_DISTANCE_M``, or a
    JointposeError naming ``name``."""
    trajectory = numeric_array(values, name)
    if trajectory.ndim != 2 or trajectory.shape[1] != 3 or not np.isfinite(trajectory).all():
        raise JointposeError(f"{name}: expected finite (frames, 3) positions in metres, got shape {trajectory.shape}")
    check_bounded(trajectory, MAX_DISTANCE_M, name, f"holds positions beyond {MAX_DISTANCE_M:g} m")
    return trajectory


def read_poses(path: str | Path, key: str | None = None) -> tuple[np.ndarray, float | None]:
    """3D poses (frames, 17, 3) in metres from an output of ``jointpose infer`` or ``video``
    (``poses_3d``; npz or JSON) or an npz of ``evaluate --export-predictions`` (``key``, a
    sequence), and the file's frame rate (None when it holds none); errors name the file and key."""
    name = key if key is not None else "poses_3d"
    files, fps = _output_arrays(path, (name,))
    if name not in files:
        shown = npz_keys(path) if Path(path).suffix.lower() != ".json" else []
        raise JointposeError(f"{path}: no key '{name}'" + (f" (keys: {', '.join(shown[:8])})" if shown else ""))
    return _sequence(f"{path}: key '{name}'", files[name], 3), fps


def _with_gap(array: np.ndarray) -> np.ndarray:
    """Append the NaN joint that breaks each side's line between bones."""
    return np.concatenate([array, np.full(array.shape[:1] + (1,) + array.shape[2:], np.nan)], axis=1)


def _image_size(image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    try:
        w, h = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise JointposeError(f"image_size: expected (width, height) in pixels, got {image_size!r}") from None
    if w <= 0 or h <= 0:
        raise JointposeError(f"image_size: width and height must be positive, got {image_size!r}")
    return w, h


def render_captions(found: np.ndarray, switches: Sequence[int], fps: float) -> dict[int, str]:
    """Render captions ``{frame index: text}`` of a clip at ``fps``: on the frames where nobody
    was ``found`` (frames,), that the pose is filled in; for the half second either side of
    each of the ``switches`` (frames where the track may have moved to another person), that
    it may move there (both where both hold)."""
    count = len(found)
    captions = {int(index): "person not found: pose filled in" for index in np.flatnonzero(~np.asarray(found))}
    reach = max(1, round(fps / 2))
    for frame in switches:
        switch = f"the track may move to another person at {frame / fps:.2f} s"
        for index in range(max(0, frame - reach), min(count, frame + reach + 1)):
            captions[index] = f"{captions[index]}; {switch}" if index in captions else switch
    return captions


class PoseFigure:
    """One matplotlib figure for a whole clip: a 2D panel (if ``keypoints_2d``) and one 3D panel per sequence.

    ``keypoints_2d`` (F, 17, 2) pixels, ``poses_3d`` ``{title: (F, 17, 3) metres, camera space}``,
    ``image_size`` (width, height) pixels, the 2D panel's extent (required with ``keypoints_2d``).
    ``azimuth``/``elevation`` in degrees (azimuth -90, elevation 0 looks from the camera);
    ``panel_size`` inches (height of every panel), ``dpi`` pixels per inch. ``trajectory`` (F, 3)
    metres, the root's camera-space position, adds a last panel: its path seen from above, the
    part travelled so far drawn over the whole, broken at ``breaks`` (frames that start a
    stretch lifted on its own, perhaps another person's). ``captions`` ``{frame index: text}``
    are written in the top left corner of those frames; ``first_frame`` is the video's index of
    frame 0 (a cut's first frame; None: not a cut), for the frame counter.
    Frame ``i`` is drawn by :meth:`draw`, as an (H, W, 3) uint8 image with even H and W.
    """

    def __init__(
        self,
        keypoints_2d: np.ndarray | None,
        poses_3d: Mapping[str, np.ndarray],
        *,
        image_size: tuple[int, int] | None,
        azimuth: float = -70.0,
        elevation: float = 12.0,
        panel_size: float = 4.0,
        dpi: float = 80,
        trajectory: np.ndarray | None = None,
        captions: Mapping[int, str] | None = None,
        breaks: Sequence[int] = (),
        first_frame: int | None = None,
    ) -> None:
        self.captions = dict(captions or {})
        if first_frame is not None and (
            isinstance(first_frame, bool) or not isinstance(first_frame, (int, np.integer)) or first_frame < 0
        ):
            raise JointposeError(f"first_frame: expected a frame index >= 0 or None, got {first_frame!r}")
        self.first_frame = int(first_frame or 0)
        if not isinstance(poses_3d, Mapping):
            raise JointposeError(
                f"poses_3d: expected a dict {{name: (frames, 17, 3) array}}, got {type(poses_3d).__name__}"
            )
        sequences = {str(name): _sequence(f"poses_3d[{name!r}]", value, 3) for name, value in poses_3d.items()}
        if keypoints_2d is None and not sequences:
            raise JointposeError("render: nothing to draw (keypoints_2d is None and poses_3d is empty)")
        counts = {f"poses_3d[{name!r}]": len(value) for name, value in sequences.items()}
        if keypoints_2d is not None:
            keypoints_2d = _sequence("keypoints_2d", keypoints_2d, 2)
            counts = {"keypoints_2d": len(keypoints_2d)} | counts
        if trajectory is not None:
            trajectory = _trajectory("trajectory", trajectory)
            counts["trajectory"] = len(trajectory)
        self.num_frames = check_frame_counts(counts)
        self.image_size = _image_size(image_size)
        if keypoints_2d is not None and self.image_size is None:
            raise JointposeError("image_size: required to draw keypoints_2d (the image's width and height in pixels)")
        if not (np.isfinite(panel_size) and panel_size > 0 and dpi > 0):
            raise JointposeError(f"panel_size and dpi must be positive, got panel_size={panel_size}, dpi={dpi}")

        # The 2D panel's width for a panel height of 1, bounded so that a sliver of an image
        # (100000 x 2 pixels) cannot ask for a figure millions of pixels wide.
        aspect = min(max(self.image_size[0] / self.image_size[1], 0.25), 4.0) if keypoints_2d is not None else 0.0
        widths = (
            ([aspect] if keypoints_2d is not None else [])
            + [1.0] * len(sequences)
            + ([1.0] if trajectory is not None else [])
        )
        self.figure = Figure(
            figsize=(panel_size * (sum(widths) + 0.25 * len(widths)), panel_size * PANEL_HEIGHT), dpi=dpi
        )
        self.canvas = FigureCanvasAgg(self.figure)
        grid = self.figure.add_gridspec(
            1, len(widths), width_ratios=widths, left=0.04, right=0.95, bottom=0.14, top=0.9, wspace=0.25
        )
        self._lines: list[tuple[Line2D, np.ndarray, np.ndarray]] = []  # (line, path, (F, 18, D) data)
        self.axes_2d = None
        if keypoints_2d is not None:
            self.axes_2d = self._panel_2d(grid[0], keypoints_2d)
        self.radius = self._radius(sequences.values())
        first = 1 if keypoints_2d is not None else 0
        self.axes_3d = {
            name: self._panel_3d(grid[first + i], name, poses, azimuth, elevation)
            for i, (name, poses) in enumerate(sequences.items())
        }
        self._trail: tuple[Line2D, Line2D, np.ndarray] | None = None
        if trajectory is not None:
            self._panel_trajectory(grid[len(widths) - 1], trajectory, breaks)
        labels = {"left": "person's left", "right": "person's right", "centre": "centre"}
        handles = [Line2D([], [], color=color, lw=3, label=labels[side]) for side, color in SIDE_COLORS.items()]
        self.figure.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
        self._counter = self.figure.text(0.01, 0.02, "", fontsize=9, animated=True)
        self._caption = self.figure.text(0.01, 0.985, "", fontsize=10, color="#b2182b", va="top", animated=True)
        self._image = None
        self.canvas.draw()
        self._static = self.canvas.copy_from_bbox(self.figure.bbox)
        width, height = self.canvas.get_width_height()
        self.frame_shape = (height - height % 2, width - width % 2, 3)  # even for H.264 yuv420p

    def _panel_2d(self, cell, keypoints: np.ndarray):
        ax = self.figure.add_subplot(cell)
        w, h = self.image_size
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)  # image rows go down
        ax.set_aspect("equal")
        ax.set_title("2D input (pixels)")
        ax.tick_params(labelsize=7)
        self._add_lines(ax, _with_gap(keypoints))
        return ax

    def _panel_trajectory(self, cell, trajectory: np.ndarray, breaks: Sequence[int]) -> None:
        """Top view of the root's path: x right, depth z up the panel (metres), no line drawn
        across ``breaks`` (each such frame's position follows a gap: a NaN row before it)."""
        ax = self.figure.add_subplot(cell)
        path = trajectory[:, [0, 2]]
        centre = (path.min(axis=0) + path.max(axis=0)) / 2
        half = max(float(np.ptp(path, axis=0).max()) / 2 * 1.15, 0.5)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal")
        starts = [b for b in sorted(set(breaks)) if 0 < b < len(path)]
        gapped = np.insert(path, starts, np.nan, axis=0)
        ax.plot(gapped[:, 0], gapped[:, 1], color="#c8c8c8", lw=1.5)
        ax.set_xlabel("x (m)", fontsize=8)
        ax.set_ylabel("depth z (m)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title("Predicted root path (top view)")
        (done,) = ax.plot([], [], color=TRAIL_COLOR, lw=2, animated=True)
        (here,) = ax.plot([], [], "o", color=TRAIL_COLOR, ms=6, animated=True)
        # Frame i's trail: gapped rows up to i's own, which lies i + (breaks at or before i) in.
        self._trail = (
            done,
            here,
            gapped,
            np.arange(len(path)) + np.searchsorted(starts, np.arange(len(path)), "right"),
        )

    @staticmethod
    def _radius(sequences) -> float:
        """Half-width (metres) of the cube that holds every root-centred pose of every sequence."""
        extent = max((float(np.abs(p - p[:, :1]).max()) for p in sequences), default=0.0)
        return 1.1 * extent if extent > 0 else 1.0

    def _panel_3d(self, cell, name: str, poses: np.ndarray, azimuth: float, elevation: float):
        ax = self.figure.add_subplot(cell, projection="3d")
        relative = poses - poses[:, :1]
        # Plot axes (x, depth, up) = camera (x, z, -y): a rotation, so left and right are kept.
        plot = np.stack([relative[..., 0], relative[..., 2], -relative[..., 1]], axis=-1)
        r = self.radius
        ax.set_xlim3d(-r, r)
        ax.set_ylim3d(-r, r)
        ax.set_zlim3d(-r, r)
        ax.set_box_aspect((1.0, 1.0, 1.0), zoom=1.1)
        ax.view_init(elev=elevation, azim=azimuth)
        ax.set_xlabel("x (m)", fontsize=8)
        ax.set_ylabel("depth z (m)", fontsize=8)
        ax.set_zlabel("up -y (m)", fontsize=8)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=7)
        ax.set_title(name)
        self._add_lines(ax, _with_gap(plot))
        return ax

    def _add_lines(self, ax, data: np.ndarray) -> None:
        for side, path in _SIDE_PATHS.items():
            if data.shape[-1] == 3:
                (line,) = ax.plot([], [], [], color=SIDE_COLORS[side], lw=3, solid_capstyle="round", animated=True)
            else:
                (line,) = ax.plot([], [], color=SIDE_COLORS[side], lw=3, solid_capstyle="round", animated=True)
            self._lines.append((line, path, data))

    def draw(self, index: int, background: np.ndarray | None = None) -> np.ndarray:
        """Frame ``index`` as an (H, W, 3) uint8 image; ``background`` (h, w, 3) uint8 fills the 2D panel."""
        if not 0 <= index < self.num_frames:
            raise JointposeError(f"index: frame {index} is outside 0..{self.num_frames - 1}")
        self.canvas.restore_region(self._static)
        if background is not None:
            self._draw_background(background)
        for line, path, data in self._lines:
            coords = data[index, path]
            if coords.shape[-1] == 3:
                line.set_data_3d(coords[:, 0], coords[:, 1], coords[:, 2])
            else:
                line.set_data(coords[:, 0], coords[:, 1])
            line.axes.draw_artist(line)
        if self._trail is not None:
            done, here, gapped, row = self._trail
            done.set_data(gapped[: row[index] + 1, 0], gapped[: row[index] + 1, 1])
            here.set_data(gapped[row[index] : row[index] + 1, 0], gapped[row[index] : row[index] + 1, 1])
            done.axes.draw_artist(done)
            here.axes.draw_artist(here)
        self._counter.set_text(self.counter(index))
        self._caption.set_text(self.captions.get(index, ""))
        self.figure.draw_artist(self._counter)
        self.figure.draw_artist(self._caption)
        height, width, _ = self.frame_shape
        return np.asarray(self.canvas.buffer_rgba())[:height, :width, :3].copy()

    def counter(self, index: int) -> str:
        """The frame counter under frame ``index``: its place in the animation and, for a cut
        of a video (``first_frame`` > 0), its frame number in the video (both counted from 1)."""
        here = f"frame {index + 1}/{self.num_frames}"
        return here if self.first_frame == 0 else f"{here}, the video's frame {self.first_frame + index + 1}"

    def _draw_background(self, frame: np.ndarray) -> None:
        if self.axes_2d is None:
            raise JointposeError("background: needs keypoints_2d (there is no 2D panel to draw it in)")
        w, h = self.image_size
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise JointposeError(
                f"background: frame of shape {frame.shape} ({frame.dtype}) does not match "
                f"image_size {w}x{h} as (height, width, 3) uint8"
            )
        # Every k-th pixel: no more than the panel shows (matplotlib would resample it anyway, slower).
        k = max(1, int(h // max(self.axes_2d.get_window_extent().height, 1.0)))
        frame = frame[::k, ::k]
        if self._image is None:
            self._image = self.axes_2d.imshow(frame, extent=(0, w, h, 0), animated=True, zorder=0)
            self.axes_2d.set_xlim(0, w)
            self.axes_2d.set_ylim(h, 0)
        else:
            self._image.set_data(frame)
        self.axes_2d.draw_artist(self._image)


def _background(
    background: str | Path | VideoClip | np.ndarray,
    num_frames: int,
    image_size: tuple[int, int] | None,
    what: str = "background",
) -> tuple[tuple[int, int], Iterator[np.ndarray]]:
    """Image size (width, height) and a frame iterator for a video path, a clip of one (its
    ``count`` known) or an (F, H, W, 3) uint8 array; errors name it ``what``."""
    if isinstance(background, VideoClip):
        size, count, name = background.size, background.estimated_frames(), f"{what} {background.path}"
        frames = background.frames()
    elif isinstance(background, (str, Path)):
        clip = counted_clip(background, what)
        size, count, frames, name = clip.size, clip.count, clip.frames(), f"{what} {clip.path}"
    else:
        array = np.asarray(background)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise JointposeError(
                f"{what}: expected (frames, height, width, 3) uint8 frames, got shape {array.shape} ({array.dtype})"
            )
        size, count, frames, name = (array.shape[2], array.shape[1]), len(array), iter(array), what
    if count != num_frames:
        raise JointposeError(f"{name}: has {count} frames but the poses have {num_frames}")
    if image_size is not None and tuple(image_size) != size:
        raise JointposeError(f"{name}: is {size[0]}x{size[1]} pixels but image_size is {image_size[0]}x{image_size[1]}")
    return size, frames


def counted_clip(video: str | Path, what: str = "background") -> VideoClip:
    """The whole of video file ``video`` with its exact frame count (ffmpeg counts them, unlike
    the clip's estimate); errors name it ``what``."""
    clip = open_video(video)
    try:
        count, _ = imageio_ffmpeg.count_frames_and_secs(str(clip.path))
    except (OSError, RuntimeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise JointposeError(f"{what} {clip.path}: cannot count its frames ({reason})") from None
    return clip.with_count(count)


def background_cut(
    video: str | Path, count: int, first: int | None, what: str = "background"
) -> tuple[VideoClip, str | None]:
    """The frames of ``video`` a track of ``count`` frames is drawn over, and a note or None:
    the whole video (counted once, :func:`counted_clip`) where it has as many frames or the
    track records no start; else, for a track recorded as starting at video frame ``first`` (a
    ``jointpose video`` output of a cut), those frames of it where the video holds them; else
    the whole video, which :func:`check_background` refuses, naming ``what``."""
    clip = counted_clip(video, what)
    if first is None or clip.count == count or first + count > clip.count:
        return clip, None
    cut = dataclasses.replace(clip, first=first, count=count)
    return cut, f"note: {what} drawn from its frame {first} ({cut.start:.2f} s), where the track starts"


def check_background(
    background: str | Path | VideoClip | np.ndarray,
    num_frames: int,
    image_size: tuple[int, int] | None,
    what: str = "background",
) -> tuple[int, int]:
    """Check, before any work, that a background video (or (F, H, W, 3) frames) can be read and
    fits ``num_frames`` frames of ``image_size`` (width, height) pixels; returns its size.
    Errors name it ``what`` (e.g. the flag that gave it)."""
    size, frames = _background(background, num_frames, _image_size(image_size), what)
    if hasattr(frames, "close"):
        frames.close()
    return size


@contextmanager
def _writer(path: Path, fps: float, frame_shape: tuple[int, ...]) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends one (H, W, 3) uint8 frame to an MP4 (H.264, yuv420p) or GIF file."""
    if path.suffix.lower() == ".mp4":
        height, width, _ = frame_shape
        stream = imageio_ffmpeg.write_frames(
            str(path),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        sent = 0

        def write(frame: np.ndarray) -> None:
            nonlocal sent
            with signals_deferred():  # each frame sent whole: an interruption waits for it
                stream.send(np.ascontiguousarray(frame))
            sent += 1

        try:  # closed, ffmpeg waited for, before the temporary file is removed on any error
            with signals_deferred():
                stream.send(None)
            yield write
        finally:
            with ffmpeg_warnings_hidden() if sent == 0 else nullcontext():
                stream.close()
        # ffmpeg leaves a truncated file, and exits 0, when the disk fills: count what it wrote
        try:
            written, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        except (OSError, RuntimeError):
            written = 0
        if written != sent:
            raise OSError(errno.EIO, f"the video holds {written} of its {sent} frames (is the disk full?)")
    else:  # encoded in memory, then written at once: a failed write leaves no half-closed encoder behind
        frames: list[Image.Image] = []
        starts: list[int] = []  # each kept frame's start, hundredths of a second, rounded
        count = 0

        def write(frame: np.ndarray) -> None:
            nonlocal count
            start = round(count * 100.0 / fps)
            count += 1
            if frames and start - starts[-1] < GIF_MIN_DELAY_CS:
                return  # above 50 fps: shown within its predecessor's 0.02 s
            # A palette per frame, by Pillow's fast octree quantiser (7x faster than the median
            # cut GIF encoding uses by default).
            frames.append(Image.fromarray(np.ascontiguousarray(frame)).quantize(256, method=Image.Quantize.FASTOCTREE))
            starts.append(start)

        yield write
        if not frames:
            raise ValueError("a GIF needs at least one frame")
        # Whole hundredths that add up to the clip's duration, not each 1 / fps cut short.
        ends = [*starts[1:], max(round(count * 100.0 / fps), starts[-1] + GIF_MIN_DELAY_CS)]
        durations = [10 * (end - start) for start, end in zip(starts, ends)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
        path.write_bytes(buffer.getvalue())


def check_animation_path(path: str | Path, name: str = "animation") -> Path:
    """``path`` as a Path, or a :class:`JointposeError` naming ``name`` when it is not .mp4 or .gif."""
    path = file_path(path, name)
    if path.suffix.lower() not in FORMATS:
        raise JointposeError(
            "{0} {path}: unknown animation format '{suffix}' (use {formats})",
            fields=(name,),
            path=path,
            suffix=path.suffix,
            formats=" or ".join(FORMATS),
        )
    return path


def check_animation_fps(fps: float, path: str | Path, name: str = "fps") -> float:
    """``fps`` (frames per second) as a float, or a :class:`JointposeError` naming ``name``
    unless :func:`jointpose.safeio.check_fps` admits it and, for a ``.gif`` ``path``, each
    frame's delay fits a GIF (at most :data:`GIF_MAX_DELAY_CS` hundredths of a second)."""
    fps = check_fps(fps, name)
    if Path(path).suffix.lower() == ".gif" and math.ceil(100.0 / fps - 1e-6) > GIF_MAX_DELAY_CS:
        raise JointposeError(
            "{0}: {fps:.4g} frames per second is too slow for a GIF, whose frames last at most {most:g} s "
            "(at least {least:.4g} fps); write an .mp4",
            fields=(name,),
            fps=fps,
            most=GIF_MAX_DELAY_CS / 100,
            least=100.0 / GIF_MAX_DELAY_CS,
        )
    return fps


RENDER_HEIGHTS = (200, 2160)  # pixels: the animation heights dpi_for gives
PANEL_HEIGHT = 1.3  # the figure's height over panel_size (room for the titles)
RENDER_HEIGHT = 416  # pixels: the default animation height (panel_size 4 at 80 dpi)
# Wider frames than this (pixels) many players and browsers cannot decode (H.264 beyond level 5.2).
PLAYABLE_WIDTH = 4096


def dpi_for(height: int, panel_size: float = 4.0) -> float:
    """The ``dpi`` (pixels per inch) of an animation ``height`` pixels tall whose panels are
    ``panel_size`` inches (the frames' height, evened for H.264): text, lines and markers keep
    their share of the frame at any height. Refused outside :data:`RENDER_HEIGHTS`."""
    low, high = RENDER_HEIGHTS
    if isinstance(height, bool) or not isinstance(height, int) or not low <= height <= high:
        raise JointposeError(
            "{0} must be a whole number of pixels in [{low}, {high}], got {value}",
            fields=("render_height",),
            low=low,
            high=high,
            value=height,
        )
    return height / (PANEL_HEIGHT * panel_size)


def render_animation(
    output: str | Path,
    keypoints_2d: np.ndarray | None,
    poses_3d: Mapping[str, np.ndarray],
    *,
    image_size: tuple[int, int] | None,
    fps: float,
    background: str | Path | VideoClip | np.ndarray | None = None,
    max_frames: int | None = None,
    azimuth: float = -70.0,
    elevation: float = 12.0,
    progress: bool = True,
    panel_size: float = 4.0,
    dpi: float = 80,
    trajectory: np.ndarray | None = None,
    captions: Mapping[int, str] | None = None,
    breaks: Sequence[int] = (),
    first_frame: int | None = None,
) -> Path:
    """Write the 2D input beside the 3D poses as an ``.mp4`` (H.264) or ``.gif`` animation; returns its path.

    ``keypoints_2d`` (F, 17, 2) pixels (Human3.6M-17) or None; ``poses_3d`` ``{title: (F, 17, 3)
    metres, camera space}``; ``image_size`` (width, height) pixels, taken from ``background``
    when None; ``background`` a video file, a :class:`~jointpose.data.video.VideoClip` or (F, H, W, 3) uint8
    frames under the 2D panel;
    ``fps`` frames per second (a GIF's frames last whole hundredths of a second that add up
    to the clip's duration; above 50 fps it keeps the frames 0.02 s or more apart, as browsers
    show shorter delays as 0.1 s); ``max_frames`` renders only the first frames; ``azimuth`` and
    ``elevation`` (degrees) set the fixed 3D view; ``panel_size`` inches, ``dpi`` pixels per inch;
    ``trajectory`` (F, 3) metres, the root's camera-space path, drawn from above in a last panel,
    broken at ``breaks`` (frames that start a stretch lifted on its own: a track's switches);
    ``captions`` ``{frame index: text}`` written in the top left corner of those frames;
    ``first_frame`` the video's index of frame 0 (a cut's first frame), for the counter. An
    MP4 frame wider than :data:`PLAYABLE_WIDTH` is noted (a :class:`JointposeWarning`).
    """
    output = check_animation_path(output)
    check_animation_fps(fps, output)
    if max_frames is not None and max_frames < 1:
        raise JointposeError("{0} must be at least 1, got {value}", fields=("max_frames",), value=max_frames)
    frames: Iterator[np.ndarray] | None = None
    if background is not None:
        if keypoints_2d is None:
            raise JointposeError("background: needs keypoints_2d (there is no 2D panel to draw it in)")
        num_frames = len(_sequence("keypoints_2d", keypoints_2d, 2))
        image_size, frames = _background(background, num_frames, _image_size(image_size))
    figure = PoseFigure(
        keypoints_2d,
        poses_3d,
        image_size=image_size,
        azimuth=azimuth,
        elevation=elevation,
        panel_size=panel_size,
        dpi=dpi,
        trajectory=trajectory,
        captions=captions,
        breaks=breaks,
        first_frame=first_frame,
    )
    count = figure.num_frames if max_frames is None else min(max_frames, figure.num_frames)
    if figure.frame_shape[1] > PLAYABLE_WIDTH and output.suffix.lower() == ".mp4":
        warnings.warn(
            JointposeWarning(
                f"{output}: frames {figure.frame_shape[1]} pixels wide: many players and browsers decode at most "
                f"{PLAYABLE_WIDTH} (lower the animation's height)"
            ),
            stacklevel=2,
        )

    try:
        with atomic_path(output) as partial, _writer(partial, fps, figure.frame_shape) as write:
            for index in tqdm(range(count), desc=f"rendering {output.name}", unit="frame", disable=not progress):
                frame = None if frames is None else next(frames, None)
                if frames is not None and frame is None:
                    raise JointposeError(f"background {background}: the video ended after {index} frames")
                write(figure.draw(index, frame))
    finally:
        if frames is not None and hasattr(frames, "close"):
            frames.close()
    return output
