"""``jointpose video``: a video through the bundled detector and lifter to 3D poses."""

from __future__ import annotations

import argparse

from jointpose.cli.common import (
    add_align_arg,
    add_camera_args,
    add_device_arg,
    add_height_arg,
    add_output_args,
    add_pretrained_arg,
    add_render_height_arg,
    alignment_of,
    bvh_parts_note,
    model_file,
    render_dpi,
    sequence_lifter,
)


def add_video_flags(p: argparse.ArgumentParser) -> None:
    """The ``video`` verb (extra ``jointpose[video]``)."""
    from jointpose.data.layouts import VISIBILITY_THRESHOLD

    p.add_argument("input", help="video file (any format ffmpeg reads)")
    add_output_args(p)
    p.add_argument(
        "--render", default=None, help="also write the video with the 2D skeleton beside the 3D one (.mp4 or .gif)"
    )
    add_render_height_arg(p)
    p.add_argument("--start", type=float, default=None, help="first second of the video to use (default 0)")
    p.add_argument("--end", type=float, default=None, help="last second of the video to use (default: its end)")
    add_camera_args(p)
    p.add_argument(
        "--confidence-threshold",
        type=float,
        default=VISIBILITY_THRESHOLD,
        help=f"joints whose BlazePose visibility is below it are interpolated (default {VISIBILITY_THRESHOLD})",
    )
    add_height_arg(p)
    p.add_argument(
        "--person",
        type=float,
        nargs=2,
        default=None,
        metavar=("X", "Y"),
        help="follow the person nearest to this point (pixels) of the first frames (default: the largest in the image)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="your own model instead of the bundled one: a training run, .safetensors or .onnx taking Human3.6M-17 "
        "keypoints (best trained on data build --input-layout blazepose)",
    )
    p.add_argument("--causal", action="store_true", help="use the bundled causal model (no future frames)")
    add_pretrained_arg(p)
    add_align_arg(p)
    add_device_arg(p)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=cmd_video)


def cmd_video(args: argparse.Namespace) -> None:
    """``jointpose video``: decode, detect 2D keypoints, lift, export and render a video."""
    from contextlib import nullcontext

    from jointpose.data.blazepose import native_logs_hidden, require_mediapipe
    from jointpose.inference.export import format_from_path
    from jointpose.inference.video import lift_video
    from jointpose.render import check_animation_path, render_animation, render_captions
    from jointpose.safeio import check_outputs

    fmt = format_from_path(args.output, args.format)
    check_outputs(  # before the video is read, not after it
        {"-o": args.output, "--render": check_animation_path(args.render, "--render") if args.render else None},
        {"input": args.input, "--checkpoint": model_file(args.checkpoint)},
    )
    dpi = render_dpi(args)  # before the video is read
    lifter = sequence_lifter(args, "video", "video-causal", "video")
    lifter.align_2d = alignment_of(args, lifter)  # checked before the detector is looked for
    require_mediapipe()
    with nullcontext() if args.debug else native_logs_hidden():  # MediaPipe's own log lines, shown with --debug
        result = lift_video(
            args.input,
            lifter,
            start=args.start,
            end=args.end,
            focal_length=args.focal_length,
            fov=args.fov,
            principal_point=args.principal_point,
            confidence_threshold=args.confidence_threshold,
            height=args.height,
            person=args.person,
            progress=args.progress,
        )
    print("\n".join(result.notes))
    result.export(args.output, fmt)
    if (note := bvh_parts_note(fmt, len(result.keypoints.switches) + 1)) is not None:
        print(note)
    print(f"wrote {len(result.poses)} frame(s) at {result.fps:g} fps to {args.output} ({fmt})")
    if args.render:
        render_animation(
            args.render,
            result.keypoints.xy,
            {"Prediction": result.poses},
            image_size=result.clip.size,
            fps=result.fps,
            background=result.clip,
            trajectory=result.trajectory,
            progress=args.progress,
            captions=render_captions(result.detections.found, result.detections.switches, result.fps),
            breaks=result.keypoints.switches,
            dpi=dpi,
            first_frame=result.clip.first,
        )
        print(f"wrote {args.render}")
