"""``jointpose render``: 2D input beside 3D poses as an animation."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NamedTuple

from jointpose.cli.common import add_layout_arg, add_render_height_arg, files_in, refuse_inapplicable, render_dpi
from jointpose.errors import JointposeError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from jointpose.data.video import VideoClip


def add_render_flags(p: argparse.ArgumentParser) -> None:
    """The ``render`` verb."""
    p.add_argument("-o", "--output", required=True, help="animation file (.mp4 or .gif)")
    p.add_argument("--keypoints-file", default=None, help="2D input, any format infer reads")
    p.add_argument("--poses", default=None, help="3D poses: the npz or JSON jointpose infer or video wrote")
    p.add_argument(
        "--truth",
        default=None,
        help="ground-truth 3D poses in the form of --poses (npz or JSON with poses_3d), drawn beside",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("W", "H"),
        help="image size in pixels (default: the keypoint file's, else --video's)",
    )
    add_layout_arg(p)
    p.add_argument("--data-dir", default=None, help="dataset mode: draw a dataset sequence and its ground truth")
    p.add_argument(
        "-k", "--keypoints", default=None, help="dataset mode: 2D keypoints name (default: Human3.6M's cpn_ft_h36m_dbb)"
    )
    p.add_argument("--sequence", default=None, help="dataset mode: SUBJECT/ACTION/CAMERA, e.g. 'S9/Walking 1/0'")
    p.add_argument("--predictions", default=None, help="dataset mode: npz from evaluate --export-predictions")
    p.add_argument(
        "--downsample",
        type=int,
        default=None,
        help="dataset mode: every N-th frame, as evaluate --downsample N exported the predictions (default 1)",
    )
    p.add_argument("--video", default=None, help="video frames to draw the 2D input over")
    p.add_argument(
        "--fps", type=float, default=None, help="the animation's frame rate (default: the poses' own, else 50)"
    )
    p.add_argument("--max-frames", type=int, default=None, help="draw only the first N frames (default: all)")
    add_render_height_arg(p)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> None:
    """``jointpose render``: 2D keypoints and 3D poses, or a dataset sequence, as an animation."""
    from jointpose.render import check_animation_path, check_frame_counts, render_animation, render_captions
    from jointpose.safeio import check_outputs

    dpi = render_dpi(args)
    check_outputs(
        {"-o": check_animation_path(args.output, "-o")},
        {
            "--keypoints-file": args.keypoints_file,
            "--poses": args.poses,
            "--truth": args.truth,
            "--predictions": args.predictions,
            "--video": args.video,
            "--data-dir": files_in(args.data_dir, "data_*.npz"),
        },
    )
    scene = _dataset_scene(args) if args.data_dir else _files_scene(args)
    check_frame_counts({name: len(frames) for name, frames in scene.named.items()})  # naming the flags
    rate = args.fps if args.fps is not None else scene.fps or 50.0
    render_animation(
        args.output,
        scene.keypoints,
        scene.sequences,
        image_size=scene.size,
        fps=rate,
        background=scene.video,
        trajectory=scene.trajectory,
        max_frames=args.max_frames,
        progress=args.progress,
        dpi=dpi,
        captions=None if scene.found is None else render_captions(scene.found, scene.switches, rate),
        breaks=scene.switches,
        first_frame=scene.first_frame,
    )
    print(f"wrote {args.output}")


class _Scene(NamedTuple):
    """What render draws: 2D keypoints (frames, J, 2) pixels, 3D pose sequences by caption
    (frames, J, 3) m, each input by the flag that gave it (for frame-count checks), the image
    size, the poses' frame rate, the background video and the root trajectory; the frames
    where the person was not found, those where the track may move to another person, and
    the video's index of the first frame (None where the frames are not the video's)."""

    keypoints: np.ndarray
    sequences: dict[str, np.ndarray]
    named: dict[str, np.ndarray]
    size: tuple[int, int] | None
    fps: float | None
    video: str | VideoClip | None
    trajectory: np.ndarray | None
    found: np.ndarray | None = None
    switches: Sequence[int] = ()
    first_frame: int | None = None


def _dataset_scene(args: argparse.Namespace) -> _Scene:
    """A dataset sequence's 2D and ground truth, and ``--predictions`` of it."""
    from jointpose.data.h36m import DEFAULT_KEYPOINTS, action_group, load_dataset
    from jointpose.geometry.cameras import image_coordinates
    from jointpose.render import read_poses

    refuse_inapplicable(
        args,
        ("--keypoints-file", "--poses", "--truth", "--image-size", "--layout"),
        "does not apply with --data-dir (the dataset gives the 2D, the poses and the image size)",
    )
    sequences: dict[str, np.ndarray] = {}
    subject, action, _ = _split_key(args.sequence)
    try:  # the sequence's action group alone: other actions need not be complete
        data = load_dataset(
            args.data_dir,
            DEFAULT_KEYPOINTS if args.keypoints is None else args.keypoints,
            [subject],
            [action_group(action)],
            downsample=1 if args.downsample is None else args.downsample,
        )
    except JointposeError as exc:
        if exc.fields != ("actions",):
            raise
        raise JointposeError(exc.naming({"actions": f"--sequence {args.sequence}"})) from None
    match = [s for s in data.sequences if s.key == args.sequence]
    if not match:
        raise JointposeError(f"--sequence {args.sequence} not in {args.data_dir} (e.g. {data.sequences[0].key})")
    seq = match[0]
    keypoints = image_coordinates(seq.keypoints, seq.camera.res_w, seq.camera.res_h)
    size, fps, video = (seq.camera.res_w, seq.camera.res_h), data.fps, args.video
    named = {f"--sequence {args.sequence}": keypoints}
    if args.predictions:
        sequences["Prediction"] = read_poses(args.predictions, args.sequence)[0]
        named[f"--predictions {args.predictions}"] = sequences["Prediction"]
        if len(sequences["Prediction"]) < len(keypoints) and args.downsample is None:
            raise JointposeError(
                f"--predictions {args.predictions}: {len(sequences['Prediction'])} frames of {args.sequence}, "
                f"which has {len(keypoints)}; predictions exported by evaluate --downsample N are drawn with "
                "render --downsample N"
            )
    sequences["Ground truth"] = seq.poses_3d
    return _Scene(keypoints, sequences, named, size, fps, video, None)


def _files_scene(args: argparse.Namespace) -> _Scene:
    """``--keypoints-file`` beside ``--poses`` (and ``--truth``), each read and paired in time."""
    from jointpose.data.keypoints import image_size_of, load_keypoints, require_image_size
    from jointpose.data.resampling import at_rate, same_rate
    from jointpose.data.video import open_video
    from jointpose.render import background_cut, read_poses, read_trajectory

    refuse_inapplicable(
        args, ("--sequence", "--predictions", "-k", "--keypoints", "--downsample"), "applies with --data-dir only"
    )
    if not args.keypoints_file or not args.poses:
        raise JointposeError("render needs --keypoints-file and --poses (or --data-dir, -k and --sequence)")
    track = load_keypoints(args.keypoints_file, layout=args.layout, confidence_threshold=None)
    # The size: --image-size, else what the keypoint file records, else --video's (render
    # checks a given size against the video's).
    given = None if args.image_size is None else require_image_size(args.image_size, args.keypoints_file)
    what = "" if given is None else f"--image-size {given[0]} {given[1]}"
    size = image_size_of(track, given, what, args.keypoints_file)
    sequences: dict[str, np.ndarray] = {}
    sequences["Prediction"], fps = read_poses(args.poses)
    trajectory = read_trajectory(args.poses)
    video = args.video
    # One pose per keypoint frame (infer, video) pairs frame for frame; poses at another
    # rate and count (lifted at the model's rate alone) get the track resampled to theirs.
    first_frame = track.first_frame
    if fps is not None and track.num_frames != len(sequences["Prediction"]):
        track, resampled = at_rate(track, fps, None, f"--keypoints-file {args.keypoints_file}: key 'fps'")
        if resampled:
            print(resampled)
            first_frame = None
            if video:
                print("note: --video is not drawn behind resampled keypoints (its frames no longer line up)")
                size, video = size or open_video(video).size, None
    elif fps is not None and track.fps is not None and not same_rate(track.fps, fps):
        print(
            f"note: --poses at {fps:g} fps beside keypoints recorded at {track.fps:g} fps, as many frames: "
            "drawn frame for frame"
        )
    if video:  # a track cut from it is drawn over its own frames
        video, note = background_cut(video, track.num_frames, track.first_frame, "--video")
        if note:
            print(note)
    if size is None and video is None:
        size = require_image_size(None, args.keypoints_file)
    keypoints = track.xy
    named = {f"--keypoints-file {args.keypoints_file}": keypoints, f"--poses {args.poses}": sequences["Prediction"]}
    if args.truth:
        sequences["Ground truth"] = read_poses(args.truth)[0]
        named[f"--truth {args.truth}"] = sequences["Ground truth"]
    return _Scene(
        keypoints, sequences, named, size, fps, video, trajectory, track.found, list(track.switches), first_frame
    )


def _split_key(key: str | None) -> tuple[str, str, str]:
    parts = (key or "").split("/")
    if len(parts) != 3:
        raise JointposeError(f"--sequence must be SUBJECT/ACTION/CAMERA (e.g. 'S9/Walking 1/0'), got {key!r}")
    return parts[0], parts[1], parts[2]
