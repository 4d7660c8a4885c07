"""Video in, 3D out: decode, detect 2D keypoints, lift them to 3D, back at the video's frame rate.

    lifter = Lifter.from_pretrained("video")
    result = lift_video("clip.mp4", lifter)        # needs the ``video`` extra (MediaPipe)
    result.poses                                    # (video frames, 17, 3) metres, camera space

Stages (:func:`lift_video`): the clip is decoded with ffmpeg (:mod:`jointpose.data.video`);
BlazePose finds one person's keypoints in each frame (:mod:`jointpose.data.detect`); the track
is repaired (left/right swaps), converted to the Human3.6M-17 input and its gaps filled
(:mod:`jointpose.data.tracks`); it is resampled to the model's frame rate and lifted; the 3D
poses (and root trajectory) are resampled back so that pose ``i`` belongs to video frame ``i``,
along their bones (:func:`jointpose.inference.lifter.resample_poses`: every bone keeps its length).

Camera: a model trained on the camera's rays (``normalization="intrinsics"``) reads the
points through the video's intrinsics - its focal length or field of view when given, else
an assumed :data:`~jointpose.geometry.cameras.DEFAULT_FOV_DEG` degrees over the longer side - and the root
trajectory follows through the same camera (:func:`~jointpose.geometry.cameras.root_trajectory`):
in metres given the intrinsics, with a depth that scales with the true focal length when
they are assumed.
A ``"screen"`` model reads points in image widths; given the video's focal length, they are
first moved to where its training cameras would have seen them
(:func:`jointpose.inference.lifter.screen_view`); without it they are taken as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointpose.data.detect import Detections2D, check_person, detect_frames
from jointpose.data.detector_files import camera_record, track_part
from jointpose.data.keypoints import Keypoints2D, check_confidence_threshold
from jointpose.data.layouts import VISIBILITY_THRESHOLD
from jointpose.data.resampling import same_rate
from jointpose.data.tracks import keypoints_from_detections, out_of_view_note
from jointpose.data.video import VideoClip, open_video
from jointpose.errors import JointposeError
from jointpose.geometry.bones import check_height, scale_to_height
from jointpose.geometry.cameras import Camera, camera_from_intrinsics
from jointpose.inference.export import export, format_from_path
from jointpose.inference.lifter import Lifter
from jointpose.safeio import check_resample


@dataclass
class VideoResult:
    """3D poses of the person in a video clip, one per video frame.

    ``poses`` (F, 17, 3) metres, camera space, root-relative; ``trajectory`` (F, 3) metres, or
    None for a ``"screen"`` model without the intrinsics or a trajectory model; ``keypoints``
    the Human3.6M-17 2D track (pixels, video frames) that was lifted; ``detections``
    BlazePose's raw COCO-17 points; ``seconds`` the time of each stage (decode, detect, lift);
    ``notes`` what was found or repaired; ``camera`` the intrinsics given, or None;
    ``confidence_threshold`` and ``height`` (metres, or None) as :func:`lift_video` was given them.
    """

    clip: VideoClip
    poses: np.ndarray
    trajectory: np.ndarray | None
    keypoints: Keypoints2D
    detections: Detections2D
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    camera: Camera | None = None
    confidence_threshold: float = VISIBILITY_THRESHOLD
    height: float | None = None

    @property
    def fps(self) -> float:
        """The video's frame rate (frames per second): one pose per video frame."""
        return self.clip.fps

    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the poses and trajectory to ``path`` (npz, json, csv or bvh, by ``fmt`` or the
        file's extension; :func:`jointpose.inference.export.export`); an npz or JSON file also
        holds the 2D track and what ``jointpose infer`` and ``render`` need to read it back as
        it was lifted (image size, cut, camera, stretches, threshold, height). Returns the path."""
        track = self.keypoints
        return export(
            path,
            self.poses,
            self.fps,
            trajectory=self.trajectory,
            fmt=format_from_path(path, fmt),
            extra={
                "keypoints_2d": track.xy,
                "confidence_2d": track.confidence,
                "track_part": track_part(track.switches, track.num_frames),
            },
            info={
                "keypoints_layout": track.source_layout,
                "image_size": self.clip.size,
                "confidence_threshold": float(self.confidence_threshold),
                "first_frame": self.clip.first,
                **camera_record(self.camera),
                **({} if self.height is None else {"height": float(self.height)}),
            },
        )


def lift_video(
    path: str | Path,
    lifter: Lifter,
    *,
    start: float | None = None,
    end: float | None = None,
    focal_length: float | None = None,
    fov: float | None = None,
    principal_point: tuple[float, float] | None = None,
    confidence_threshold: float = VISIBILITY_THRESHOLD,
    height: float | None = None,
    person: tuple[float, float] | None = None,
    progress: bool = True,
) -> VideoResult:
    """Detect and lift the person in video ``path`` (needs the ``jointpose[video]`` extra).

    Args:
        path: any video file ffmpeg reads.
        lifter: the model, e.g. ``Lifter.from_pretrained("video")``.
        start: the cut's start in seconds (default: the video's start).
        end: the cut's end in seconds (default: the video's end).
        focal_length: the camera's focal length in pixels, if known (see the module docstring).
        fov: or its horizontal field of view in degrees.
        principal_point: (x, y) pixels (default: the image centre).
        confidence_threshold: joints below this BlazePose visibility are interpolated in time.
        height: the person's standing height in metres, if known: the skeleton and its
            trajectory are scaled to it (:func:`jointpose.geometry.bones.scale_to_height`);
            otherwise the skeleton has about the size of the bodies the model trained on.
        person: (x, y) pixels of the clip's first frames: follow the person nearest to this
            point, not the largest (:func:`jointpose.data.detect.detect_frames`).
        progress: show a progress bar per stage.

    Returns:
        A :class:`VideoResult`: one pose (metres, camera space) per video frame, the root's
        trajectory, the 2D track and the notes of what was found or repaired.

    Raises:
        JointposeError: a file that is no video, a cut outside it, a bad argument; the extra
            missing, naming it.
    """
    if not isinstance(lifter, Lifter):
        raise JointposeError(
            f"lifter must be a Lifter, e.g. Lifter.from_pretrained('video'), got {type(lifter).__name__}"
        )
    check_confidence_threshold(confidence_threshold)  # before the slow decoding and detection
    if height is not None:
        check_height(height)
    clip = open_video(path, start, end)
    check_person(person, clip.size)
    camera = camera_from_intrinsics(clip.size, focal_length, fov, principal_point, id="video")
    model_rate = not same_rate(clip.fps, lifter.fps)
    if model_rate:
        check_resample(clip.fps, lifter.fps, str(path))
    detections = detect_frames(
        clip.frames(), total=clip.estimated_frames(), progress=progress, fps=clip.fps, person=person
    )
    short = clip.ended_early(len(detections.points))
    clip = clip.with_count(len(detections.points))
    track = keypoints_from_detections(detections, confidence_threshold=confidence_threshold, source=str(path))
    notes = [*([short] if short else []), *track.notes]
    if (outside := out_of_view_note(detections.points, clip.size)) is not None:
        notes.append(outside)
    t0 = time.perf_counter()

    # Lifted apart where the track may have moved to another person (track.switches).
    poses, trajectory = lifter.lift_track(track, clip.size, camera=camera, fps=clip.fps, progress=progress)
    if model_rate:
        notes.append(f"lifted at the model's {lifter.fps:g} fps (the video's {clip.fps:g} fps resampled)")
    if track.switches:
        notes.append(
            f"lifted in {len(track.switches) + 1} parts, split where the track may have moved to another person"
        )
    if (note := lifter.assumed_camera_note()) is not None:
        notes.append(note)
    if height is not None:
        poses, trajectory, factor = scale_to_height(poses, height, trajectory)
        notes.append(f"scaled to a standing height of {height:g} m (x {factor:.3f})")
    seconds = {
        "decode": detections.decode_seconds,
        "detect": detections.detect_seconds,
        "lift": time.perf_counter() - t0,
    }
    return VideoResult(clip, poses, trajectory, track, detections, seconds, notes, camera, confidence_threshold, height)
