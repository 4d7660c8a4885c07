"""``jointpose train``, ``evaluate`` and ``ablate``: training runs and their scores."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jointpose.cli.common import (
    PARAMETER_FLAGS,
    add_device_arg,
    add_model_source,
    add_no_tta_arg,
    files_in,
    model_file,
    model_source,
    refuse_inapplicable,
)
from jointpose.errors import JointposeError

if TYPE_CHECKING:
    from jointpose.training.config import TrainConfig


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """The ``train`` verb: one training run (flags: :class:`TrainConfig`'s fields)."""
    add_train_args(p, run=True)
    p.set_defaults(func=cmd_train)


def add_train_args(p: argparse.ArgumentParser, run: bool = False) -> None:
    """Training flags, one per :class:`TrainConfig` field (shared by ``train`` and ``ablate``);
    ``run``: also ``--checkpoint``, ``--resume`` and ``--keep-last`` (``train``). ``ablate``
    trains both modes: its ``--no-constraints`` is left out of its help and refused."""
    from jointpose.training.config import RUN_FIELDS, add_arguments

    add_arguments(p, skip=() if run else RUN_FIELDS)
    if not run:
        next(action for action in p._actions if action.dest == "constraints").help = argparse.SUPPRESS


def train_config(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``train`` arguments; errors name the flags."""
    from jointpose.training.config import field_flags, from_arguments

    try:
        return from_arguments(args, **overrides)
    except JointposeError as exc:
        raise JointposeError(exc.naming(field_flags() | PARAMETER_FLAGS)) from None


def cmd_train(args: argparse.Namespace) -> None:
    """``jointpose train``: one training run, evaluated on its test subjects."""
    from jointpose.model.loading import LATEST_FILE
    from jointpose.training.distributed import DistContext
    from jointpose.training.trainer import train

    config = train_config(args)
    dist = DistContext.from_env(config.device)
    try:
        train(config, dist)
        # Ranks leave together: none tears its process group down while rank 0 still runs
        # the final evaluation (only on success: after an error the others may never arrive).
        dist.barrier()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        if dist.is_main and (Path(config.checkpoint_dir) / LATEST_FILE).is_file():
            _resume_hint(f"the run in --checkpoint {config.checkpoint_dir}")
        raise
    finally:
        dist.close()
    if dist.distributed:
        # Every file is written and the process group is gone. torch's C++ teardown at process
        # exit, after Python's, can abort a rank ("terminate called without an active
        # exception", SIGABRT: no Python frame on any thread), a few times in 100 runs on a
        # busy CPU, failing a finished run; so a distributed rank leaves without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def add_evaluate_flags(p: argparse.ArgumentParser) -> None:
    """The ``evaluate`` verb: a checkpoint's scores on test subjects."""
    _add_evaluation_data_args(p)
    add_model_source(
        p, "--checkpoint", help="checkpoint file or folder (uses latest.pt), or an exported .safetensors model"
    )
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--export-predictions", default=None, help="write predictions (npz) here")
    p.add_argument("--by-subject", action="store_true", help="also report per test subject")
    p.add_argument(
        "--raw",
        action="store_true",
        help="the network's output alone (no temporal filter, alignment with the 2D or consistent-skeleton fit)",
    )
    p.add_argument(
        "--align-2d",
        type=float,
        default=None,
        metavar="WEIGHT",
        help="alignment with the 2D (0-1) for any checkpoint, the baseline's too "
        "(default: what the checkpoint was trained with)",
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=None,
        metavar="SIGMA",
        help="Gaussian temporal filter (sigma, frames) for any checkpoint, the baseline's too "
        "(default: what the checkpoint was trained with)",
    )
    p.add_argument(
        "--skeleton-fit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one consistent skeleton per sequence with range-of-motion limits, for any checkpoint, the "
        "baseline's too (default: on for a joint-aware checkpoint, off for the baseline)",
    )
    p.set_defaults(func=cmd_evaluate)


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
        type=_names,
        default=None,
        help="test subjects (default: the checkpoint's, else S9,S11)",
    )
    p.add_argument(
        "-a",
        "--actions",
        type=_names,
        default=None,
        help="action groups to use, e.g. Walking,Sitting, or all (default: the checkpoint's, else all)",
    )
    p.add_argument(
        "--downsample", type=int, default=None, help="keep every N-th frame (default: the checkpoint's, else 1)"
    )
    add_no_tta_arg(p)
    add_device_arg(p)


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``jointpose evaluate``: a checkpoint's metrics per action on the test subjects."""
    from jointpose.evaluation.evaluate import (
        evaluate_checkpoint,
        format_table,
        refuse_raw_with,
        results_json,
        write_predictions,
    )
    from jointpose.geometry.alignment import check_weight
    from jointpose.geometry.filters import check_sigma
    from jointpose.safeio import check_outputs

    if args.export_predictions is not None and Path(args.export_predictions).suffix.lower() != ".npz":
        raise JointposeError(f"--export-predictions {args.export_predictions}: predictions are written as .npz")
    check_outputs(  # before the evaluation, not after it
        {"--json": args.json, "--export-predictions": args.export_predictions},
        {"--checkpoint": model_file(args.checkpoint), "--data-dir": files_in(args.data_dir, "data_*.npz")},
    )
    if args.smooth is not None:
        check_sigma(args.smooth, "--smooth")
    if args.align_2d is not None:
        check_weight(args.align_2d, "--align-2d")
    flags = {"raw": "--raw", "smooth": "--smooth", "align_2d": "--align-2d"}
    flags["skeleton_fit"] = "--skeleton-fit" if args.skeleton_fit else "--no-skeleton-fit"
    refuse_raw_with(args.raw, args.smooth, args.align_2d, args.skeleton_fit, flags)  # before the work
    with model_source(args.checkpoint, args.pretrained) as checkpoint:
        result = evaluate_checkpoint(
            checkpoint,
            args.data_dir,
            args.keypoints,
            None if args.subjects_test is None else list(args.subjects_test),
            None if args.actions is None else [] if args.actions == ("all",) else list(args.actions),
            flip_test=args.tta,
            by_subject=args.by_subject,
            downsample=args.downsample,
            device=args.device,
            raw=args.raw,
            smooth=args.smooth,
            align_2d=args.align_2d,
            skeleton_fit=args.skeleton_fit,
            dataset=args.dataset,
        )
    print(format_table(result.summary))
    if args.json is not None:
        _write_text(args.json, results_json(result.summary))
        print(f"wrote {args.json}")
    if args.export_predictions is not None:
        write_predictions(result.predictions, args.export_predictions)
        print(f"wrote {len(result.predictions)} sequences to {args.export_predictions}")


def add_ablate_flags(p: argparse.ArgumentParser) -> None:
    """The ``ablate`` verb: the baseline and the joint-aware model, trained alike."""
    add_train_args(p)
    p.add_argument("--out", required=True, help="folder for both runs and ablation.json")
    p.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="several seeds, e.g. 0,1,2: one ablation per seed (OUT/seed_N) and each metric's mean and spread",
    )
    p.add_argument(
        "--resume",
        dest="resume_ablation",  # not TrainConfig.resume: each run is resumed where it has a checkpoint
        action="store_true",
        help="continue an interrupted ablation in --out with the same flags: each run from its latest.pt",
    )
    p.set_defaults(func=cmd_ablate)


def cmd_ablate(args: argparse.Namespace) -> None:
    """``jointpose ablate``: the baseline and the joint-aware model trained alike, compared."""
    from jointpose.model.loading import LATEST_FILE
    from jointpose.safeio import check_output_folder
    from jointpose.training.ablation import check_resume, run_ablation, run_seeds

    if not args.constraints:
        raise JointposeError(
            "--no-constraints: ablate trains the baseline and the joint-aware model itself; leave it out"
        )

    out = check_output_folder(args.out, "--out")
    if args.resume_ablation:
        check_resume(out, args.seeds, args.epochs)
    elif any(out.glob("*")):
        raise JointposeError(f"--out {args.out} is not empty; continue it with --resume or choose a new folder")
    if args.seeds is not None:
        refuse_inapplicable(args, ("--seed",), "gives one seed; --seeds gives several: pass one of them")
    config = train_config(args, checkpoint_dir=args.out)
    try:
        if args.seeds is not None:
            run_seeds(config, args.out, args.seeds, args.resume_ablation)
        else:
            run_ablation(config, args.out, args.resume_ablation)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        if any(out.rglob(LATEST_FILE)):
            _resume_hint(f"the ablation in --out {args.out}")
        raise


def _resume_hint(what: str) -> None:
    """Tell an interrupted run how to continue (on stderr, before main's "interrupted")."""
    print(f"{what} keeps its finished epochs: the same command with --resume continues it", file=sys.stderr)


def _seeds(text: str) -> tuple[int, ...]:
    """Distinct comma-separated random seeds (``--seeds 0,1,2``)."""
    from jointpose.training.config import seed_argument

    seeds = tuple(seed_argument(name) for name in text.split(",") if name.strip())
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise argparse.ArgumentTypeError(f"expected two or more distinct seeds (a spread needs two), got {text}")
    return seeds


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (``-ste S9,S11``)."""
    from jointpose.training.config import names_argument

    return names_argument(text)


def _write_text(path: str | Path, text: str) -> None:
    from jointpose.safeio import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
