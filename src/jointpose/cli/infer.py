"""``jointpose infer``: 2D keypoints from a detector to 3D poses."""

from __future__ import annotations

import argparse
import warnings
from typing import TYPE_CHECKING

from jointpose.cli.common import (
    add_align_arg,
    add_camera_args,
    add_device_arg,
    add_height_arg,
    add_layout_arg,
    add_no_tta_arg,
    add_output_args,
    add_pretrained_arg,
    add_render_height_arg,
    alignment_of,
    bvh_parts_note,
    files_in,
    model_file,
    render_dpi,
    sequence_lifter,
)
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.inference.pretrained import VIDEO_MODELS

if TYPE_CHECKING:
    from jointpose.data.keypoints import Keypoints2D
    from jointpose.data.video import VideoClip
    from jointpose.geometry.cameras import Camera
    from jointpose.inference.lifter import Lifter


def add_infer_flags(p: argparse.ArgumentParser) -> None:
    """The ``infer`` verb."""
    from jointpose.data.layouts import CONFIDENCE_THRESHOLD

    p.add_argument(
        "input",
        help="COCO results or MMPose JSON, OpenPose JSON file or folder, a jointpose video output (npz or JSON), "
        "or .npy/.npz (frames, 17, 2|3)",
    )
    add_output_args(p)
    p.add_argument(
        "--checkpoint",
        default=None,
        help="a training checkpoint (or its folder), a .safetensors or an .onnx model (default: the bundled model)",
    )
    p.add_argument("--causal", action="store_true", help="use the bundled causal model (no future frames)")
    add_pretrained_arg(p)
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"), help="image size in pixels")
    add_camera_args(p, recorded=True)
    add_layout_arg(p)
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help=(
            "frame rate of the input, resampled to the model's and back: the output has the input's"
            " (default: the file's 'fps', else the model's)"
        ),
    )
    p.add_argument(
        "--confidence-threshold",
        type=float,
        default=None,
        help="joints whose detector score is below it are interpolated (default: a jointpose video output's "
        f"own, else {CONFIDENCE_THRESHOLD})",
    )
    add_height_arg(p)
    p.add_argument("--render", default=None, help="also write an animation (.mp4 or .gif)")
    add_render_height_arg(p)
    p.add_argument("--video", default=None, help="video to draw the 2D input over (with --render)")
    add_no_tta_arg(p)
    p.add_argument(
        "--raw",
        action="store_true",
        help="the network's output alone (no temporal filter, alignment with the 2D or consistent-skeleton fit)",
    )
    add_align_arg(p)
    add_device_arg(p)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_infer)


def cmd_infer(args: argparse.Namespace) -> None:
    """``jointpose infer``: 2D keypoints (or a video's track) in, 3D poses out."""
    from jointpose.data.detector_files import is_video_output
    from jointpose.data.keypoints import (
        image_size_of,
        load_keypoints,
        outside_image_note,
        require_image_size,
    )
    from jointpose.data.resampling import same_rate
    from jointpose.geometry.bones import scale_to_height
    from jointpose.inference.export import export, format_from_path
    from jointpose.render import check_animation_fps
    from jointpose.safeio import check_resample

    fmt = format_from_path(args.output, args.format)
    dpi, clip, size = _check_before_loading(args)
    # A jointpose video track is lifted by default as jointpose video lifted it: by a video model
    # (an npz's is known from its keys, before the reading; a JSON one's once read).
    default_model = args.checkpoint is None and args.pretrained is None
    chosen = default_model and is_video_output(args.input)
    lifter = infer_lifter(args, chosen)
    with warnings.catch_warnings():  # its notes are printed below, once
        warnings.simplefilter("ignore", JointposeWarning)
        keypoints = load_keypoints(args.input, layout=args.layout, confidence_threshold=args.confidence_threshold)
    video_track = default_model and keypoints.source_format == "video"
    if video_track and not chosen:
        lifter = infer_lifter(args, True)
    # The size given (--image-size, else --video's) must be the one a video output records;
    # refused before the keypoints' notes are printed.
    what = "--image-size {} {}" if args.image_size else "--video's {}x{}"
    size = image_size_of(keypoints, size, what.format(*size) if size else "", args.input)
    size = size or require_image_size(None, args.input)
    for note in keypoints.notes:
        print(note)
    if video_track:
        print(
            f"note: a jointpose video track: lifted by the bundled {VIDEO_MODELS[args.causal]} model, as jointpose "
            "video lifts it (--pretrained NAME or --checkpoint for another)"
        )
    fps, rate = _keypoint_rate(args, keypoints, lifter, clip)
    if args.render:  # before -o is written
        check_animation_fps(fps, args.render, rate)
    background = None
    if args.video:  # its frame count, before the npz is written
        from jointpose.render import background_cut, check_background

        background, note = background_cut(args.video, keypoints.num_frames, keypoints.first_frame, "--video")
        check_background(background, keypoints.num_frames, size, "--video")
        if note:
            print(note)
    resampled = not same_rate(fps, lifter.fps)
    if resampled:  # its limit, before the work
        check_resample(fps, lifter.fps, rate)
    if (note := outside_image_note(keypoints, size)) is not None:
        print(note)
    if keypoints.num_frames * lifter.fps / fps < lifter.receptive_field:
        print(
            f"note: {keypoints.num_frames} frames at {fps:g} fps is shorter than the receptive field "
            f"({lifter.receptive_field} frames at {lifter.fps:g} fps); the sequence is edge-padded"
        )
    camera = camera_from_args(args, size, keypoints.camera)
    taken = (args.focal_length is None and args.fov is None) or args.principal_point is None
    if keypoints.camera is not None and taken:
        print(f"note: the camera {args.input} records (--focal-length, --fov and --principal-point override its parts)")
    poses, trajectory = lifter.lift_track(keypoints, size, camera=camera, fps=fps, progress=args.progress)
    for note in camera_notes(lifter, camera):
        print(note)
    if resampled:
        print(f"lifted at the model's {lifter.fps:g} fps and resampled back to {fps:g} fps: one pose per input frame")
    if keypoints.switches:
        print(
            f"lifted in {len(keypoints.switches) + 1} parts, split where {args.input} records that the track may "
            "have moved to another person"
        )
    height = keypoints.height if args.height is None else args.height
    if height is not None:
        poses, trajectory, factor = scale_to_height(poses, height, trajectory)
        given = "" if args.height is not None else f", the height {args.input} records (--height overrides it)"
        print(f"scaled to a standing height of {height:g} m (x {factor:.3f}){given}")
    if (note := bvh_parts_note(fmt, len(keypoints.switches) + 1)) is not None:
        print(note)
    export(args.output, poses, fps, trajectory=trajectory, fmt=fmt)
    print(f"wrote {len(poses)} frame(s) to {args.output} ({fmt})")
    if args.render:
        from jointpose.render import render_animation, render_captions

        render_animation(
            args.render,
            keypoints.xy,
            {"Prediction": poses},
            image_size=size,
            fps=fps,
            background=background,
            trajectory=trajectory,
            progress=args.progress,
            dpi=dpi,
            captions=render_captions(keypoints.found, keypoints.switches, fps),
            breaks=keypoints.switches,
            first_frame=keypoints.first_frame,
        )
        print(f"wrote {args.render}")


def _check_before_loading(
    args: argparse.Namespace,
) -> tuple[float, VideoClip | None, tuple[int, int] | None]:
    """``infer``'s flags, then its files, checked before the model is loaded: the render's
    dpi, ``--video`` opened (its size and frame rate) and the image size given
    (``--image-size``, else the video's; None: the keypoint file's, once read)."""
    from jointpose.data.keypoints import require_image_size, require_keypoint_file
    from jointpose.data.video import open_video
    from jointpose.geometry.bones import check_height
    from jointpose.render import check_animation_path
    from jointpose.safeio import check_fps, check_outputs

    check_outputs(  # outputs are checked before the work, not after it
        {"-o": args.output, "--render": check_animation_path(args.render, "--render") if args.render else None},
        {
            "input": files_in(args.input, "*_keypoints.json") or args.input,
            "--checkpoint": model_file(args.checkpoint),
            "--video": args.video,
        },
    )
    if args.fps is not None:
        check_fps(args.fps, "--fps")
    if args.height is not None:
        check_height(args.height)
    if args.video and not args.render:
        raise JointposeError("--video is drawn behind the 2D input of --render; pass --render too")
    dpi = render_dpi(args)
    require_keypoint_file(args.input)
    clip = open_video(args.video) if args.video else None
    size = None if args.image_size is None else require_image_size(args.image_size, args.input)
    if clip is not None and size is not None and size != clip.size:
        raise JointposeError(f"--image-size {size[0]} {size[1]} differs from --video's {clip.width}x{clip.height}")
    return dpi, clip, size or (clip.size if clip is not None else None)


def _keypoint_rate(
    args: argparse.Namespace, keypoints: Keypoints2D, lifter: Lifter, clip: VideoClip | None
) -> tuple[float, str]:
    """The keypoints' frame rate (the output's: ``--fps``, else the file's, else the model's)
    and what gave it, for messages; a note says which was taken."""
    if args.fps is None and keypoints.fps is not None:
        print(f"note: the keypoints are at {keypoints.fps:g} fps, the 'fps' of {args.input} (--fps overrides it)")
    elif keypoints.fps is not None and args.fps != keypoints.fps:
        print(f"note: --fps {args.fps:g} overrides the 'fps' of {args.input} ({keypoints.fps:g})")
    elif args.fps is None:
        print(f"note: no --fps: the keypoints are taken to be at the model's {lifter.fps:g} fps (the output's rate)")
        if clip is not None and abs(clip.fps - lifter.fps) > 1e-6:
            print(f"note: --video plays at {clip.fps:g} fps; if the keypoints are its frames, pass --fps {clip.fps:g}")
    fps = args.fps or keypoints.fps or lifter.fps
    rate = "--fps" if args.fps else f"{args.input}: key 'fps'" if keypoints.fps else "the model's frame rate"
    return fps, rate


def infer_lifter(args: argparse.Namespace, video_track: bool) -> Lifter:
    """The lifter ``infer`` runs, with its flags applied: the model ``--checkpoint`` or
    ``--pretrained`` names, else the bundled video model for a ``video_track`` (``jointpose
    video``'s), else the bundled offline one (``--causal``: their causal ones)."""
    from jointpose.safeio import check_resample

    lifter = sequence_lifter(args, *(VIDEO_MODELS if video_track else ("offline", "causal")), "infer")
    if args.fps is not None:
        check_resample(args.fps, lifter.fps, "--fps")  # before the keypoints are read
    lifter.flip_test = args.tta
    lifter.skeleton_fit = lifter.skeleton_fit and not args.raw
    lifter.smooth = 0.0 if args.raw else lifter.smooth
    lifter.align_2d = alignment_of(args, lifter)
    return lifter


def camera_from_args(args: argparse.Namespace, size: tuple[int, int], recorded: Camera | None = None) -> Camera | None:
    """The camera ``--focal-length`` or ``--fov`` (and ``--principal-point``) describe, each part
    left out taken from ``recorded`` (the camera a video output was lifted with); or None."""
    from jointpose.geometry.cameras import camera_from_intrinsics

    focal, fov, centre = args.focal_length, args.fov, args.principal_point
    if recorded is not None:
        focal = recorded.focal_length[0] if focal is None and fov is None else focal
        centre = recorded.center if centre is None else centre
    return camera_from_intrinsics(size, focal, fov, centre)


def camera_notes(lifter: Lifter, camera: Camera | None) -> list[str]:
    """What the output says about the intrinsics the keypoints were read with."""
    if camera is not None:
        return [f"camera: focal length {camera.focal_length[0]:.0f} px, principal point {camera.center}"]
    note = lifter.assumed_camera_note()
    return [f"note: {note}"] if note else []
