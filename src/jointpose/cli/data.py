"""``jointpose data build`` and ``demo``: Human3.6M-format datasets from motion capture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from jointpose.cli.common import refuse_inapplicable
from jointpose.errors import JointposeError

if TYPE_CHECKING:
    from jointpose.motion.builder import CameraRing, NoiseModel
    from jointpose.motion.viewpoints import RandomRig


def add_build_flags(p: argparse.ArgumentParser) -> None:
    """The ``data build`` verb."""
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


def cmd_data_build(args: argparse.Namespace) -> None:
    """``jointpose data build``: BVH motion capture to Human3.6M-format dataset files."""
    from jointpose.motion.builder import dataset_paths, write_h36m_dataset
    from jointpose.motion.mocap import bvh_groups, load_bvh_folder, parse_subject_map, subject_names
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
    subject_map = parse_subject_map(args.subjects)
    motion = load_bvh_folder(
        args.bvh,
        fps=args.fps,
        subjects=subject_map,
        mapping=mapping,
        body_scaling=args.body_scaling,
        seed=args.seed,
    )
    paths = write_h36m_dataset(
        args.out, motion, fps=args.fps, cameras=ring, noise=noise, seed=args.seed, input_layout=args.input_layout
    )
    folders = {name: folder for folder, name in subject_names(list(bvh_groups(Path(args.bvh))), subject_map).items()}
    for subject, actions in motion.items():
        frames = sum(len(a) for a in actions.values())
        count = f"{len(actions)} action{'s' if len(actions) != 1 else ''}"
        print(f"{subject} (folder {folders.get(subject, '?')}): {count}, {frames} frames ({frames / args.fps:.0f} s)")
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def add_demo_flags(p: argparse.ArgumentParser) -> None:
    """The ``demo`` verb: build data, train briefly, evaluate and animate."""
    p.add_argument(
        "--bvh", default=None, help="use real BVH clips (one sub-folder per subject) instead of the synthetic motion"
    )
    p.add_argument("--out", default="jointpose-demo", help="output folder (default jointpose-demo)")
    p.add_argument("-e", "--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("-ch", "--channels", type=int, default=256, help="hidden channels (default 256)")
    p.add_argument("--animation", default="demo.gif", help="animation file name in --out (.gif or .mp4)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_dataset_args(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> None:
    """``jointpose demo``: build a dataset from motion capture, train briefly, evaluate and animate."""
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
        choices=tuple(INPUT_LAYOUTS),
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
        refuse_inapplicable(args, ring_only, f"applies to --cameras ring only (here --cameras {args.cameras})")
    if args.cameras != "random":
        refuse_inapplicable(
            args, ("--camera-ranges",), f"applies to --cameras random only (here --cameras {args.cameras})"
        )
    if args.cameras == "h36m":
        refuse_inapplicable(args, ("--ring-count",), "applies to --cameras ring or random only (here --cameras h36m)")
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


def _check_flags(rows) -> None:
    """Raise a :class:`JointposeError` naming the first ``(flag, value, ok, rule)`` whose ``ok`` is false."""
    for flag, value, ok, rule in rows:
        if not ok:
            raise JointposeError(f"{flag} must be {rule}, got {value}")


def _seed(text: str) -> int:
    """A ``--seed`` value: an integer >= 0."""
    from jointpose.training.config import seed_argument

    return seed_argument(text)
