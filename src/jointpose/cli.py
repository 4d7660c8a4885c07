"""Command-line interface: ``jointpose <verb> ...``, a thin layer over the Python API.

User mistakes raise :class:`JointposeError`, printed here as one line with a non-zero
exit code; ``--debug`` shows the traceback. Any other exception is a bug and propagates.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from jointpose.errors import JointposeError, JointposeWarning

if TYPE_CHECKING:
    from jointpose.geometry.cameras import Camera
    from jointpose.inference.lifter import Lifter
    from jointpose.motion.builder import CameraRing, NoiseModel
    from jointpose.motion.viewpoints import RandomRig
    from jointpose.training.config import TrainConfig

EXIT_USER_ERROR = 2


def _str_list(text: str) -> tuple[str, ...]:
    from jointpose.training.config import names_argument

    return names_argument(text)


def _seed(text: str) -> int:
    from jointpose.training.config import seed_argument

    return seed_argument(text)


def _check_flags(rows) -> None:
    """Raise a :class:`JointposeError` naming the first ``(flag, value, ok, rule)`` whose ``ok`` is false."""
    for flag, value, ok, rule in rows:
        if not ok:
            raise JointposeError(f"{flag} must be {rule}, got {value}")


def _add_evaluation_data_args(p: argparse.ArgumentParser) -> None:
    """Dataset flags of ``evaluate`` (defaults: the checkpoint's own)."""
    from jointpose.data.h36m import DATASETS

    p.add_argument(
        "--data-dir", required=True, help="folder with data_3d_<DATASET>.npz and data_2d_<DATASET>_<KEYPOINTS>.npz"
    )
    p.add_argument(
        "-d",
        "--dataset",
        choices=tuple(DATASETS),
        default=None,
        help="file layout and skeleton: h36m or humaneva15 (default: the checkpoint's, else the one whose "
        "joints the model outputs)",
    )
    p.add_argument(
        "-k",
        "--keypoints",
        default=None,
        help="2D keypoints name (file data_2d_<DATASET>_<name>.npz; default: the checkpoint's, else cpn_ft_h36m_dbb)",
    )
    p.add_argument(
        "-ste",
        "--subjects-test",
        type=_str_list,
        default=None,
        help="test subjects (default: the checkpoint's, else S9,S11)",
    )
    p.add_argument(
        "-a", "--actions", type=_str_list, default=None, help="action groups to use, e.g. Walking,Sitting (default all)"
    )
    p.add_argument("--downsample", type=int, default=1, help="keep every N-th frame")
    p.add_argument(
        "-no-tta",
        "--no-test-time-augmentation",
        dest="tta",
        action="store_false",
        help="disable flip test-time augmentation",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")


def add_train_args(p: argparse.ArgumentParser, run: bool = False) -> None:
    """Training flags, one per :class:`TrainConfig` field (shared by ``train`` and ``ablate``);
    ``run``: also ``--checkpoint``, ``--resume`` and ``--keep-last`` (``train``)."""
    from jointpose.training.config import RUN_FIELDS, add_arguments

    add_arguments(p, skip=() if run else RUN_FIELDS)


# Python parameters that library errors name, where the command line calls them otherwise.
_PARAMETER_FLAGS = {"fov_deg": "--fov", "center": "--principal-point", "count": "--ring-count"}


def argument_flags() -> dict[str, str]:
    """{argument name: its flag} over every verb's options (an option's name is its flag's
    destination: ``focal_length`` -> ``--focal-length``), with the parameters above."""
    flags = dict(_PARAMETER_FLAGS)
    parsers = [build_parser()]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings:
                flags.setdefault(action.dest, action.option_strings[-1])
    return flags


def flag_message(exc: JointposeError) -> str:
    """``exc``'s message with each configuration field or argument it names written as its flag."""
    from jointpose.training.config import field_flags

    if not exc.fields:
        return str(exc)
    return exc.naming(argument_flags() | field_flags())


def train_config(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``train`` arguments; errors name the flags, and a
    warning names flags that cannot act in this run."""
    from jointpose.training.config import field_flags, from_arguments, idle_settings

    try:
        config = from_arguments(args, **overrides)
    except JointposeError as exc:
        raise JointposeError(flag_message(exc)) from None
    flags = field_flags()
    for cause, names in idle_settings(config).items():
        condition = (
            f"with {flags[cause]}" if cause == "constraints" else f"without unlabelled subjects ({flags[cause]})"
        )
        warnings.warn(JointposeWarning(f"{', '.join(flags[n] for n in names)}: no effect {condition}"), stacklevel=2)
    if both := [s for s in config.subjects_test if s in config.subjects_train]:
        warnings.warn(
            JointposeWarning(
                f"{flags['subjects_test']} {','.join(both)}: also in {flags['subjects_train']}; scores on people the "
                "model trained on say nothing about new people (hold them out: docs/validation.md)"
            ),
            stacklevel=2,
        )
    return config


def cmd_train(args: argparse.Namespace) -> None:
    from jointpose.training.distributed import DistContext
    from jointpose.training.trainer import train

    config = train_config(args)
    dist = DistContext.from_env(config.device)
    try:
        train(config, dist)
        # Ranks leave together: none tears its process group down while rank 0 still runs
        # the final evaluation (only on success: after an error the others may never arrive).
        dist.barrier()
    finally:
        dist.close()


def cmd_evaluate(args: argparse.Namespace) -> None:
    from jointpose.evaluation.evaluate import (
        evaluate_checkpoint,
        format_table,
        write_predictions,
    )
    from jointpose.geometry.filters import check_sigma
    from jointpose.safeio import check_outputs

    if args.export_predictions is not None and args.export_predictions.suffix.lower() != ".npz":
        raise JointposeError(f"--export-predictions {args.export_predictions}: predictions are written as .npz")
    check_outputs(  # before the evaluation, not after it
        {"--json": args.json, "--export-predictions": args.export_predictions},
        {"--checkpoint": _model_file(args.checkpoint), "--data-dir": _files_in(args.data_dir, "data_*.npz")},
    )
    if args.smooth is not None:
        check_sigma(args.smooth, "--smooth")
        if args.raw:
            raise JointposeError("--raw shows the network alone, without a filter; leave out --smooth or --raw")
    result = evaluate_checkpoint(
        args.checkpoint,
        args.data_dir,
        args.keypoints,
        None if args.subjects_test is None else list(args.subjects_test),
        list(args.actions) if args.actions else None,
        flip_test=args.tta,
        by_subject=args.by_subject,
        downsample=args.downsample,
        device=args.device,
        raw=args.raw,
        smooth=args.smooth,
        dataset=args.dataset,
    )
    print(format_table(result.summary))
    if args.json is not None:
        _write_text(args.json, json.dumps(result.summary, indent=2))
        print(f"wrote {args.json}")
    if args.export_predictions is not None:
        write_predictions(result.predictions, args.export_predictions)
        print(f"wrote {len(result.predictions)} sequences to {args.export_predictions}")


def _model_file(path: str | None) -> Path | None:
    """The file a ``--checkpoint`` (or ``export``'s model) reads: itself, or ``latest.pt`` in a run
    folder; a missing one as given (the loader names it, once the flags are checked)."""
    from jointpose.model.loading import resolve_checkpoint

    if path is None:
        return None
    try:
        return resolve_checkpoint(path)
    except JointposeError:
        return Path(path)


def _files_in(folder: str | Path | None, pattern: str) -> list[Path]:
    """The files matching ``pattern`` directly in ``folder`` (none when it is not a folder): those a
    verb reads from a folder input, e.g. a dataset's ``data_*.npz`` or OpenPose's ``*_keypoints.json``."""
    return sorted(Path(folder).glob(pattern)) if folder is not None and Path(folder).is_dir() else []


def _write_text(path: Path, text: str) -> None:
    from jointpose.safeio import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """Camera and noise flags of dataset building (shared by ``data build`` and ``demo``)."""
    from jointpose.data.h36m import INPUT_LAYOUTS

    p.add_argument("--fps", type=float, default=50.0, help="frame rate of the dataset (default 50)")
    p.add_argument(
        "--cameras",
        choices=("h36m", "ring", "random"),
        default="h36m",
        help="Human3.6M's calibrated rig (default), a ring of virtual cameras, or random cameras per subject",
    )
    p.add_argument("--ring-count", type=int, default=4, help="ring or random: number of cameras")
    p.add_argument(
        "--camera-ranges",
        default="",
        metavar="RANGES",
        help="random: ranges to draw from, e.g. distance=2:10,fov=40:100 (docs/cameras.md; default all defaults)",
    )
    p.add_argument("--ring-distance", type=float, default=5.0, help="ring: distance from the centre (m)")
    p.add_argument("--ring-height", type=float, default=1.5, help="ring: camera height (m)")
    p.add_argument("--focal-length", type=float, default=1150.0, help="ring: focal length (px)")
    p.add_argument(
        "--image-size", type=int, nargs=2, default=(1000, 1000), metavar=("W", "H"), help="ring: image size (px)"
    )
    p.add_argument("--noise-jitter", type=float, default=2.0, help="noisy 2D: white jitter std (px)")
    p.add_argument("--noise-drift", type=float, default=4.0, help="noisy 2D: slow drift std (px)")
    p.add_argument("--noise-drift-time", type=float, default=1.0, help="noisy 2D: drift correlation time (s)")
    p.add_argument(
        "--noise-outlier-rate", type=float, default=0.002, help="noisy 2D: share of joints replaced by outliers"
    )
    p.add_argument("--noise-outlier-px", type=float, default=80.0, help="noisy 2D: outlier displacement radius (px)")
    p.add_argument(
        "--input-layout",
        choices=INPUT_LAYOUTS,
        default="h36m",
        help="2D as projected joints (h36m), as jointpose infer converts COCO detections (coco), or as jointpose "
        "video converts BlazePose's (blazepose)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="random seed (>= 0)")


def dataset_options(args: argparse.Namespace) -> tuple[CameraRing | RandomRig | None, NoiseModel]:
    """(CameraRing, RandomRig or None for Human3.6M's, NoiseModel) from :func:`add_dataset_args` flags."""
    from jointpose.motion.builder import CameraRing, NoiseModel
    from jointpose.motion.viewpoints import CameraRanges, RandomRig

    ring_only = ("--ring-distance", "--ring-height", "--focal-length", "--image-size")
    if args.cameras != "ring":
        _refuse_inapplicable(args, ring_only, f"applies to --cameras ring only (here --cameras {args.cameras})")
    if args.cameras != "random":
        _refuse_inapplicable(
            args, ("--camera-ranges",), f"applies to --cameras random only (here --cameras {args.cameras})"
        )
    if args.cameras == "h36m":
        _refuse_inapplicable(args, ("--ring-count",), "applies to --cameras ring or random only (here --cameras h36m)")
    ring = None
    if args.cameras == "random":
        try:
            ranges = CameraRanges.parse(args.camera_ranges)
        except JointposeError as exc:  # the ranges' errors name the training flag; here they come from this one
            raise JointposeError(exc.naming({"random_cameras": "--camera-ranges"})) from None
        ring = RandomRig(args.ring_count, ranges, args.seed)
    elif args.cameras == "ring":
        ring = CameraRing(
            args.ring_count,
            args.ring_distance,
            args.ring_height,
            focal_length=args.focal_length,
            width=args.image_size[0],
            height_px=args.image_size[1],
        )
    noise = NoiseModel(
        args.noise_jitter, args.noise_drift, args.noise_drift_time, args.noise_outlier_rate, args.noise_outlier_px
    )
    return ring, noise


def cmd_data_build(args: argparse.Namespace) -> None:
    from jointpose.motion.builder import CameraRing, dataset_paths, write_h36m_dataset
    from jointpose.motion.mocap import load_bvh_folder, parse_subject_map
    from jointpose.motion.rigs import load_rig_mapping
    from jointpose.safeio import check_fps, check_output_folder

    check_output_folder(args.out, "--out")  # before the BVH work, not after it
    check_fps(args.fps, "--fps")
    existing = [str(path) for path in dataset_paths(args.out).values() if path.exists()]
    if existing and not args.overwrite:
        raise JointposeError(
            f"--out {args.out} already holds {', '.join(existing)}; choose another folder or pass --overwrite"
        )

    ring, noise = dataset_options(args)  # before the BVH work, not after it
    mapping = load_rig_mapping(args.rig) if args.rig else None
    motion = load_bvh_folder(
        args.bvh,
        fps=args.fps,
        subjects=parse_subject_map(args.subjects),
        mapping=mapping,
        body_scaling=args.body_scaling,
        seed=args.seed,
    )
    if not isinstance(ring, CameraRing) and ring is not None:  # random cameras: drawn around the motion
        ring = ring.cameras(motion)
    paths = write_h36m_dataset(
        args.out, motion, fps=args.fps, cameras=ring, noise=noise, seed=args.seed, input_layout=args.input_layout
    )
    for subject, actions in motion.items():
        frames = sum(len(a) for a in actions.values())
        print(f"{subject}: {len(actions)} actions, {frames} frames ({frames / args.fps:.0f} s)")
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def add_camera_args(p: argparse.ArgumentParser) -> None:
    """The camera-intrinsics flags of ``infer`` and ``video``."""
    p.add_argument("--focal-length", type=float, default=None, help="the camera's focal length in pixels, if known")
    p.add_argument(
        "--fov", type=float, default=None, help="or its horizontal field of view in degrees (default: assumed 65)"
    )
    p.add_argument(
        "--principal-point",
        type=float,
        nargs=2,
        default=None,
        metavar=("CX", "CY"),
        help="principal point in pixels (default: the image centre)",
    )


def add_height_arg(p: argparse.ArgumentParser) -> None:
    """The ``--height`` flag of ``infer`` and ``video``."""
    p.add_argument(
        "--height",
        type=float,
        default=None,
        metavar="METRES",
        help="the person's standing height, if known: the skeleton and its trajectory are scaled to it "
        "(default: about the size of the bodies the model trained on)",
    )


def camera_from_args(args: argparse.Namespace, size: tuple[int, int]) -> Camera | None:
    """The camera ``--focal-length`` or ``--fov`` (and ``--principal-point``) describe, or None."""
    from jointpose.geometry.cameras import camera_from_intrinsics

    return camera_from_intrinsics(size, args.focal_length, args.fov, args.principal_point)


def camera_notes(lifter: Lifter, camera: Camera | None) -> list[str]:
    """What the output says about the intrinsics the keypoints were read with."""
    if camera is not None:
        return [f"camera: focal length {camera.focal_length[0]:.0f} px, principal point {camera.center}"]
    note = lifter.assumed_camera_note()
    return [f"note: {note}"] if note else []


def cmd_infer(args: argparse.Namespace) -> None:
    from jointpose.data.keypoints import (
        load_keypoints,
        require_image_size,
        resample_keypoints,
    )
    from jointpose.geometry.bones import check_height, scale_to_height
    from jointpose.inference.export import export, format_from_path
    from jointpose.inference.lifter import Lifter
    from jointpose.render import check_animation_path
    from jointpose.safeio import check_fps, check_outputs, check_resample

    fmt = format_from_path(args.output, args.format)
    check_outputs(  # outputs are checked before the work, not after it
        {"-o": args.output, "--render": check_animation_path(args.render, "--render") if args.render else None},
        {
            "input": _files_in(args.input, "*_keypoints.json") or args.input,
            "--checkpoint": _model_file(args.checkpoint),
            "--video": args.video,
        },
    )
    if args.checkpoint and args.causal:
        raise JointposeError("--causal picks the bundled causal model; a --checkpoint is causal or not by itself")
    if args.fps is not None:
        check_fps(args.fps, "--fps")
    if args.height is not None:
        check_height(args.height)
    if args.video and not args.render:
        raise JointposeError("--video is drawn behind the 2D input of --render; pass --render too")
    lifter = (
        Lifter.load(args.checkpoint, device=args.device)
        if args.checkpoint
        else Lifter.from_pretrained("causal" if args.causal else "offline", device=args.device)
    )
    if args.fps is not None:
        check_resample(args.fps, lifter.fps, "--fps")  # before the keypoints are read
    lifter.flip_test = args.tta
    lifter.skeleton_fit = lifter.skeleton_fit and not args.raw
    lifter.smooth = 0.0 if args.raw else lifter.smooth
    with warnings.catch_warnings():  # its notes are printed below, once
        warnings.simplefilter("ignore", JointposeWarning)
        keypoints = load_keypoints(args.input, layout=args.layout, confidence_threshold=args.confidence_threshold)
    for note in keypoints.notes:
        print(note)
    video = args.video
    if args.fps is not None and abs(args.fps - lifter.fps) > 1e-6:
        keypoints = resample_keypoints(keypoints, args.fps, lifter.fps)
        print(f"resampled {args.fps:g} fps input to the model's {lifter.fps:g} fps: {keypoints.num_frames} frames")
        if video:
            print("note: --video is not drawn behind resampled keypoints (its frames no longer line up)")
            video = None
    size = require_image_size(args.image_size, args.input)
    if video:
        from jointpose.render import check_background

        check_background(video, keypoints.num_frames, size)  # before the npz is written
    if keypoints.num_frames < lifter.receptive_field:
        print(
            f"note: {keypoints.num_frames} frames is shorter than the receptive field "
            f"({lifter.receptive_field}); the sequence is edge-padded"
        )
    camera = camera_from_args(args, size)
    poses = lifter.predict(keypoints.xy, size, camera=camera, progress=args.progress)
    print("\n".join(camera_notes(lifter, camera)))
    trajectory = None
    if camera is not None or lifter.places_root_without_camera:
        trajectory = lifter.predict_trajectory(keypoints.xy, size, camera=camera, poses=poses)
    if args.height is not None:
        poses, trajectory, factor = scale_to_height(poses, args.height, trajectory)
        print(f"scaled to a standing height of {args.height:g} m (x {factor:.3f})")
    export(args.output, poses, lifter.fps, trajectory=trajectory, fmt=fmt)
    print(f"wrote {len(poses)} frames to {args.output} ({fmt})")
    if args.render:
        from jointpose.render import render_animation

        render_animation(
            args.render,
            keypoints.xy,
            {"Prediction": poses},
            image_size=size,
            fps=lifter.fps,
            background=video,
            progress=args.progress,
        )
        print(f"wrote {args.render}")


def cmd_video(args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from jointpose.data.blazepose import native_logs_hidden, require_mediapipe
    from jointpose.inference.export import export, format_from_path
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video, render_captions
    from jointpose.render import check_animation_path, render_animation
    from jointpose.safeio import check_outputs

    fmt = format_from_path(args.output, args.format)
    check_outputs(  # before the video is read, not after it
        {"-o": args.output, "--render": check_animation_path(args.render, "--render") if args.render else None},
        {"input": args.input},
    )
    require_mediapipe()
    lifter = Lifter.from_pretrained("video-causal" if args.causal else "video", device=args.device)
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
    export(
        args.output,
        result.poses,
        result.fps,
        trajectory=result.trajectory,
        fmt=fmt,
        extra={"keypoints_2d": result.keypoints.xy, "confidence_2d": result.keypoints.confidence},
    )
    print(f"wrote {len(result.poses)} frames at {result.fps:g} fps to {args.output} ({fmt})")
    if args.render:
        render_animation(
            args.render,
            result.keypoints.xy,
            {"3D": result.poses},
            image_size=result.clip.size,
            fps=result.fps,
            background=result.clip,
            trajectory=result.trajectory,
            progress=args.progress,
            captions=render_captions(result.detections, result.fps),
        )
        print(f"wrote {args.render}")


def _poses_file(path: str, key: str | None = None) -> tuple[np.ndarray, float | None]:
    """3D poses (frames, 17, 3) from an infer npz (``poses_3d``) or an evaluate export (``key``)."""
    from jointpose.safeio import check_fps, load_npz, npz_keys

    name = key if key is not None else "poses_3d"
    files = load_npz(path, keys=(name, "fps"))
    if name not in files:
        raise JointposeError(f"{path}: no key '{name}' (keys: {', '.join(npz_keys(path)[:8])})")
    if "fps" not in files:
        return files[name], None
    if files["fps"].shape != () or files["fps"].dtype.kind not in "iuf":
        raise JointposeError(f"{path}: key 'fps' must be one number, got {files['fps'].dtype} {files['fps'].shape}")
    return files[name], check_fps(float(files["fps"]), f"{path}: key 'fps'")


def cmd_render(args: argparse.Namespace) -> None:
    from jointpose.render import check_animation_path, render_animation
    from jointpose.safeio import check_outputs

    check_outputs(
        {"-o": check_animation_path(args.output, "-o")},
        {
            "--keypoints-file": args.keypoints_file,
            "--poses": args.poses,
            "--truth": args.truth,
            "--predictions": args.predictions,
            "--video": args.video,
            "--data-dir": _files_in(args.data_dir, "data_*.npz"),
        },
    )
    sequences = {}
    if args.data_dir:
        from jointpose.data.h36m import load_dataset
        from jointpose.geometry.cameras import image_coordinates

        _refuse_inapplicable(
            args,
            ("--keypoints-file", "--poses", "--truth", "--image-size", "--layout"),
            "does not apply with --data-dir (the dataset gives the 2D, the poses and the image size)",
        )

        subject, action, camera = _split_key(args.sequence)
        data = load_dataset(args.data_dir, args.keypoints, [subject])
        match = [s for s in data.sequences if s.key == args.sequence]
        if not match:
            raise JointposeError(f"--sequence {args.sequence} not in {args.data_dir} (e.g. {data.sequences[0].key})")
        seq = match[0]
        keypoints = image_coordinates(seq.keypoints, seq.camera.res_w, seq.camera.res_h)
        size, fps, video = (seq.camera.res_w, seq.camera.res_h), data.fps, args.video
        if args.predictions:
            sequences["Prediction"] = _poses_file(args.predictions, args.sequence)[0]
        sequences["Ground truth"] = seq.poses_3d
    else:
        from jointpose.data.keypoints import load_keypoints, require_image_size

        _refuse_inapplicable(args, ("--sequence", "--predictions", "-k", "--keypoints"), "applies with --data-dir only")
        if not args.keypoints_file or not args.poses:
            raise JointposeError("render needs --keypoints-file and --poses (or --data-dir, -k and --sequence)")
        keypoints = load_keypoints(args.keypoints_file, layout=args.layout).xy
        size = require_image_size(args.image_size, args.keypoints_file)
        sequences["Prediction"], fps = _poses_file(args.poses)
        if args.truth:
            sequences["Ground truth"] = _poses_file(args.truth)[0]
        video = args.video
    render_animation(
        args.output,
        keypoints,
        sequences,
        image_size=size,
        fps=args.fps if args.fps is not None else fps or 50.0,
        background=video,
        max_frames=args.max_frames,
        progress=args.progress,
    )
    print(f"wrote {args.output}")


def _split_key(key: str | None) -> tuple[str, str, str]:
    parts = (key or "").split("/")
    if len(parts) != 3:
        raise JointposeError(f"--sequence must be SUBJECT/ACTION/CAMERA (e.g. 'S9/Walking 1/0'), got {key!r}")
    return parts[0], parts[1], parts[2]


def cmd_ablate(args: argparse.Namespace) -> None:
    from jointpose.training.ablation import run_ablation

    if not args.constraints:
        raise JointposeError(
            "--no-constraints: ablate trains the baseline and the joint-aware model itself; leave it out"
        )
    from jointpose.safeio import check_output_folder

    if any(check_output_folder(args.out, "--out").glob("*")):
        raise JointposeError(f"--out {args.out} is not empty; choose a new folder")
    run_ablation(train_config(args, checkpoint_dir=args.out), args.out)


def cmd_demo(args: argparse.Namespace) -> None:
    from jointpose.demo import DemoConfig, run_demo
    from jointpose.safeio import check_output_folder, check_outputs

    _check_flags((("-e", args.epochs, args.epochs >= 1, ">= 1"), ("-ch", args.channels, args.channels >= 1, ">= 1")))
    check_output_folder(args.out, "--out")
    ring, noise = dataset_options(args)
    config = DemoConfig(
        out=args.out,
        bvh=args.bvh,
        epochs=args.epochs,
        channels=args.channels,
        seed=args.seed,
        animation=args.animation,
        cameras=ring,
        noise=noise,
        fps=args.fps,
        input_layout=args.input_layout,
        progress=args.progress,
    )
    for folder in (config.paths["data"], config.paths["checkpoint"]):  # before the work, not after it
        check_output_folder(folder, "--out")
    check_outputs({"--animation": config.paths["animation"]}, {"--bvh": args.bvh})
    run_demo(config)


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (exit 2) and a pointer to ``--help``, and
    every negative number taken as a value: Python 3.11's argparse reads ``-1e3`` (an
    exponent) as an unknown flag, so ``--ring-height -1e3`` would fail with "expected one
    argument" instead of reaching the flag's own check. No flag here starts with a digit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def cmd_export(args: argparse.Namespace) -> None:
    from jointpose.inference.onnx import OPSET, export_onnx
    from jointpose.model.loading import load_model
    from jointpose.safeio import check_outputs

    if Path(args.onnx).suffix != ".onnx":
        raise JointposeError(f"--onnx {args.onnx}: the file name must end in .onnx")
    check_outputs({"--onnx": args.onnx}, {"model": _model_file(args.model)})  # before the export, not after it
    try:
        loaded = load_model(args.model, "cpu")
    except JointposeError as exc:  # the loader names a --checkpoint; export reads its positional model
        raise JointposeError(exc.naming({"checkpoint": "model"})) from None
    path = export_onnx(loaded, args.onnx, streaming=args.streaming)
    print(f"wrote {path} ({'streaming step' if args.streaming else 'full sequence'}, ONNX opset {OPSET})")


def add_export_parser(verbs: Any) -> None:
    """The ``export`` verb: a model as ONNX (docs/onnx.md)."""
    p = verbs.add_parser(
        "export", help="write a model as ONNX (full sequence, or one streaming step of a causal model)"
    )
    p.add_argument("model", help="training checkpoint (file or folder) or .safetensors model")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument(
        "--streaming", action="store_true", help="export one step of a causal model, layer caches as inputs/outputs"
    )
    p.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jointpose", description="3D human pose estimation in video with joint-aware constraints")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("train", help="train a model on a Human3.6M-format dataset")
    add_train_args(p, run=True)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("infer", help="2D keypoints from a detector -> 3D poses (npz, json, csv or bvh)")
    p.add_argument("input", help="COCO results JSON, OpenPose JSON file or folder, or .npy/.npz (frames, 17, 2|3)")
    p.add_argument("-o", "--output", required=True, help="output file; the format follows its extension")
    p.add_argument("--format", choices=("npz", "json", "csv", "bvh"), default=None, help="override the extension")
    p.add_argument("--checkpoint", default=None, help="checkpoint or .safetensors model (default: the bundled model)")
    p.add_argument("--causal", action="store_true", help="use the bundled causal model (no future frames)")
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"), help="image size in pixels")
    add_camera_args(p)
    p.add_argument(
        "--layout", choices=("h36m", "coco"), default=None, help="joint order of 17-joint arrays (default h36m)"
    )
    p.add_argument("--fps", type=float, default=None, help="frame rate of the input (resampled to the model's)")
    p.add_argument("--confidence-threshold", type=float, default=0.3, help="joints below it are interpolated")
    add_height_arg(p)
    p.add_argument("--render", default=None, help="also write an animation (.mp4 or .gif)")
    p.add_argument("--video", default=None, help="video to draw the 2D input over (with --render)")
    p.add_argument("-no-tta", "--no-test-time-augmentation", dest="tta", action="store_false")
    p.add_argument(
        "--raw", action="store_true", help="the network's output alone (no temporal filter, no consistent-skeleton fit)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_infer)

    p = verbs.add_parser(
        "video", help="video -> 2D keypoints (MediaPipe BlazePose) -> 3D poses (npz, json, csv or bvh)"
    )
    p.add_argument("input", help="video file (any format ffmpeg reads)")
    p.add_argument("-o", "--output", required=True, help="output file; the format follows its extension")
    p.add_argument("--format", choices=("npz", "json", "csv", "bvh"), default=None, help="override the extension")
    p.add_argument(
        "--render", default=None, help="also write the video with the 2D skeleton beside the 3D one (.mp4 or .gif)"
    )
    p.add_argument("--start", type=float, default=None, help="first second of the video to use (default 0)")
    p.add_argument("--end", type=float, default=None, help="last second of the video to use (default: its end)")
    add_camera_args(p)
    p.add_argument("--confidence-threshold", type=float, default=0.3, help="joints below it are interpolated")
    add_height_arg(p)
    p.add_argument(
        "--person",
        type=float,
        nargs=2,
        default=None,
        metavar=("X", "Y"),
        help="follow the person nearest to this point (pixels) of the first frames (default: the largest in the image)",
    )
    p.add_argument("--causal", action="store_true", help="use the bundled causal model (no future frames)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_video)

    p = verbs.add_parser("render", help="animate 2D input beside 3D poses (MP4 or GIF)")
    p.add_argument("-o", "--output", required=True, help="animation file (.mp4 or .gif)")
    p.add_argument("--keypoints-file", default=None, help="2D input, any format infer reads")
    p.add_argument("--poses", default=None, help="3D poses: an npz written by jointpose infer")
    p.add_argument("--truth", default=None, help="ground-truth 3D poses (npz with poses_3d), drawn beside")
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"))
    p.add_argument("--layout", choices=("h36m", "coco"), default=None)
    p.add_argument("--data-dir", default=None, help="dataset mode: draw a dataset sequence and its ground truth")
    p.add_argument("-k", "--keypoints", default="cpn_ft_h36m_dbb", help="dataset mode: 2D keypoints name")
    p.add_argument("--sequence", default=None, help="dataset mode: SUBJECT/ACTION/CAMERA, e.g. 'S9/Walking 1/0'")
    p.add_argument("--predictions", default=None, help="dataset mode: npz from evaluate --export-predictions")
    p.add_argument("--video", default=None, help="video frames to draw the 2D input over")
    p.add_argument("--fps", type=float, default=None)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_render)

    p = verbs.add_parser("ablate", help="train the baseline and the joint-aware model alike and compare them")
    add_train_args(p)
    p.add_argument("--out", required=True, help="folder for both runs and ablation.json")
    p.set_defaults(func=cmd_ablate)

    p = verbs.add_parser("evaluate", help="evaluate a checkpoint on test subjects")
    _add_evaluation_data_args(p)
    p.add_argument("--checkpoint", required=True, help="checkpoint file or folder (uses latest.pt)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--export-predictions", type=Path, default=None, help="write predictions (npz) here")
    p.add_argument("--by-subject", action="store_true", help="also report per test subject")
    p.add_argument(
        "--raw", action="store_true", help="the network's output alone (no temporal filter, no consistent-skeleton fit)"
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=None,
        metavar="SIGMA",
        help="Gaussian temporal filter (sigma, frames) for any checkpoint, the baseline's too "
        "(default: what the checkpoint was trained with)",
    )
    p.set_defaults(func=cmd_evaluate)

    data = verbs.add_parser("data", help="build datasets").add_subparsers(
        dest="data_verb", required=True, metavar="ACTION"
    )
    p = data.add_parser("build", help="BVH motion capture -> Human3.6M-format dataset through cameras")
    p.add_argument("--bvh", required=True, help="folder with one sub-folder of .bvh files per subject")
    p.add_argument("--out", required=True, help="output folder for the npz files")
    p.add_argument("--overwrite", action="store_true", help="replace the dataset files already in --out")
    p.add_argument(
        "--subjects", default=None, help="FOLDER=NAME,... (default: sorted folders -> S1,S5,S6,S7,S8,S9,S11)"
    )
    p.add_argument("--rig", default=None, help="rig mapping JSON for rigs other than the built-in ones")
    p.add_argument(
        "--no-body-scaling",
        dest="body_scaling",
        action="store_false",
        help="keep the rig's bone lengths (default: each subject gets its own body size and proportions)",
    )
    add_dataset_args(p)
    p.set_defaults(func=cmd_data_build)

    p = verbs.add_parser("demo", help="build data, train briefly, evaluate and animate (offline, minutes)")
    p.add_argument(
        "--bvh", default=None, help="use real BVH clips (one sub-folder per subject) instead of the synthetic motion"
    )
    p.add_argument("--out", default="jointpose-demo", help="output folder (default jointpose-demo)")
    p.add_argument("-e", "--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("-ch", "--channels", type=int, default=256)
    p.add_argument("--animation", default="demo.gif", help="animation file name in --out (.gif or .mp4)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_dataset_args(p)
    p.set_defaults(func=cmd_demo)
    add_export_parser(verbs)
    for sub in [*verbs.choices.values(), *data.choices.values()]:  # --debug after the verb works too
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for user errors"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(given)
    except JointposeError as exc:  # from an option's own parser, e.g. --random-cameras RANGES
        verb = " ".join(given[: 2 if given[:1] == ["data"] else 1])
        print(f"jointpose {verb}: error: {one_line(flag_message(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    args.given = frozenset(token.split("=", 1)[0] for token in given if token.startswith("-"))
    empty = _empty_option(given)
    if empty is not None:
        print(
            f"jointpose {args.verb}: error: {empty}: an empty value (give a value or leave the flag out)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    warnings.simplefilter("always", JointposeWarning)
    warnings.formatwarning = _format_warning
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except JointposeError as exc:
        if args.debug:
            raise
        verb = " ".join(filter(None, (args.verb, getattr(args, "data_verb", None))))
        print(f"jointpose {verb}: error: {one_line(flag_message(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _refuse_inapplicable(args: argparse.Namespace, flags: Sequence[str], why: str) -> None:
    """Refuse the first of ``flags`` given on the command line: ``why`` says where it applies
    (a flag that cannot act would be silently ignored)."""
    used = [flag for flag in flags if flag in getattr(args, "given", ())]
    if used:
        raise JointposeError(f"{used[0]} {why}")


def _empty_option(argv: Sequence[str]) -> str | None:
    """The flag given an empty value (``-o ""``, ``--checkpoint=``), if any: argparse takes it, and
    an empty path would mean the current folder, or an empty ``--checkpoint`` the bundled model."""
    for i, token in enumerate(argv):
        if token.startswith("-") and token.endswith("=") and "=" not in token[:-1]:
            return token[:-1]
        if token == "":
            return argv[i - 1] if i and argv[i - 1].startswith("-") else "an argument"
    return None


def one_line(text: str) -> str:
    """``text`` on one line: line breaks (a file's key or name may hold them) shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return (
        f"warning: {one_line(str(message))}\n"
        if issubclass(category, JointposeWarning)
        else f"{filename}:{lineno}: {category.__name__}: {message}\n"
    )
