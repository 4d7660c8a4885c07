"""What several verbs share: the parser class, the camera and height flags, checks of inputs and
outputs, one-line messages."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from jointpose.errors import JointposeError

if TYPE_CHECKING:
    from jointpose.inference.lifter import Lifter

EXIT_USER_ERROR = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's stop), raised where the process stands: a
    KeyboardInterrupt, so that whatever Ctrl-C unwinds, it unwinds too."""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (exit 2) and a pointer to ``--help``, no flag
    abbreviated (``--lr`` was read as the start of ``--lr-decay``), and every negative number
    taken as a value: Python 3.11's argparse reads ``-1e3`` (an exponent) as an unknown flag, so
    ``--ring-height -1e3`` would fail with "expected one argument" instead of reaching the
    flag's own check. No flag here starts with a digit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


# Python parameters that library errors name, where the command line calls them otherwise:
# for every verb, and for one verb only.
PARAMETER_FLAGS = {"fov_deg": "--fov", "center": "--principal-point", "count": "--ring-count"}
VERB_PARAMETER_FLAGS = {"data build": {"motion": "--subjects"}}


def refuse_inapplicable(args: argparse.Namespace, flags: Sequence[str], why: str) -> None:
    """Refuse the first of ``flags`` given on the command line: ``why`` says where it applies
    (a flag that cannot act would be silently ignored)."""
    used = [flag for flag in flags if flag in getattr(args, "given", ())]
    if used:
        raise JointposeError(f"{used[0]} {why}")


def model_file(path: str | None) -> Path | None:
    """The file a ``--checkpoint`` (or ``export``'s model) reads: itself, or ``latest.pt`` in a run
    folder; a missing one as given (the loader names it, once the flags are checked)."""
    if path is None:
        return None
    from jointpose.model.loading import resolve_checkpoint

    try:
        return resolve_checkpoint(path)
    except JointposeError:
        return Path(path)


def add_model_source(p: argparse.ArgumentParser, *flags: str, help: str, **kwargs: Any) -> None:
    """The verb's own model argument (``flags``: ``--checkpoint``, or a positional with
    ``nargs="?"``) or, instead, ``--pretrained NAME`` (a bundled model); one of them is required."""
    from jointpose.inference.pretrained import PRETRAINED

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(*flags, help=help, **kwargs)
    source.add_argument("--pretrained", choices=tuple(PRETRAINED), help="a bundled model instead (docs/model-card.md)")


@contextmanager
def model_source(path: str | None, pretrained: str | None) -> Iterator[str | Path | None]:
    """The model a verb reads (:func:`add_model_source`): ``path``, or the bundled ``pretrained``
    model's file while the context lasts."""
    if pretrained is None:
        yield path
        return
    from jointpose.inference.pretrained import pretrained_file

    with pretrained_file(pretrained) as file:
        try:
            yield file
        except JointposeError as exc:  # named as given, not by the installed file's path
            raise exc.renaming(str(file), f"--pretrained {pretrained}") from None


def files_in(folder: str | Path | None, pattern: str) -> list[Path]:
    """The files matching ``pattern`` directly in ``folder`` (none when it is not a folder): those a
    verb reads from a folder input, e.g. a dataset's ``data_*.npz`` or OpenPose's ``*_keypoints.json``."""
    return sorted(Path(folder).glob(pattern)) if folder is not None and Path(folder).is_dir() else []


def add_camera_args(p: argparse.ArgumentParser, recorded: bool = False) -> None:
    """The camera-intrinsics flags of ``infer`` and ``video``; ``recorded``: the input may record a camera.
    ``--focal-length`` and ``--fov`` exclude each other, refused before any work."""
    focal = p.add_mutually_exclusive_group()
    focal.add_argument("--focal-length", type=float, default=None, help="the camera's focal length in pixels, if known")
    focal.add_argument(
        "--fov",
        type=float,
        default=None,
        help="or its horizontal field of view in degrees (without either: "
        + ("the camera a video output records, else " if recorded else "")
        + "65 degrees over the longer side assumed)",
    )
    p.add_argument(
        "--principal-point",
        type=float,
        nargs=2,
        default=None,
        metavar=("CX", "CY"),
        help="principal point in pixels (default: "
        + ("the one a video output records, else " if recorded else "")
        + "the image centre)",
    )


def add_layout_arg(p: argparse.ArgumentParser) -> None:
    """The ``--layout`` flag of ``infer`` and ``render``: the joint order of 17-joint arrays."""
    p.add_argument(
        "--layout", choices=("h36m", "coco"), default=None, help="joint order of 17-joint arrays (default h36m)"
    )


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """The ``--device`` flag of ``infer``, ``video`` and ``evaluate``."""
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")


def add_no_tta_arg(p: argparse.ArgumentParser) -> None:
    """The ``-no-tta`` flag of ``infer`` and ``evaluate`` (``args.tta``)."""
    p.add_argument(
        "-no-tta",
        "--no-test-time-augmentation",
        dest="tta",
        action="store_false",
        help="disable flip test-time augmentation",
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


def add_output_args(p: argparse.ArgumentParser) -> None:
    """The ``-o`` and ``--format`` flags of ``infer`` and ``video`` (the formats of
    :data:`jointpose.inference.export.FORMATS`, written out so that the parser does not import it)."""
    p.add_argument("-o", "--output", required=True, help="output file; the format follows its extension")
    p.add_argument(
        "--format",
        choices=("npz", "json", "csv", "bvh"),
        default=None,
        help="the format, for an output whose extension names none",
    )


def add_render_height_arg(p: argparse.ArgumentParser) -> None:
    """The ``--render-height`` flag of ``infer``, ``video`` and ``render`` (its bounds and default
    are :mod:`jointpose.render`'s, written out here so that the parser does not import it)."""
    p.add_argument(
        "--render-height",
        type=int,
        default=None,
        metavar="PX",
        help="the animation's height in pixels, 200-2160 (default 416); its width follows from the panels",
    )


def render_dpi(args: argparse.Namespace) -> float:
    """The ``dpi`` of the animation ``--render-height`` asks for (its panels at their default
    size), checked before any work; the flag is refused without ``--render`` (``infer``, ``video``)."""
    from jointpose.render import RENDER_HEIGHT, dpi_for

    if hasattr(args, "render") and not args.render:
        refuse_inapplicable(args, ("--render-height",), "sizes the animation of --render; pass --render too")
    return dpi_for(RENDER_HEIGHT if args.render_height is None else args.render_height)


def add_align_arg(p: argparse.ArgumentParser) -> None:
    """The ``--align-2d`` flag of ``infer`` and ``video``."""
    p.add_argument(
        "--align-2d",
        type=float,
        default=None,
        metavar="WEIGHT",
        help="how far (0-1) an offline model moves each joint across the image to its keypoint, keeping its "
        "depth (only the elbows, wrists, knees and ankles of a detector's keypoints); 0 = off "
        "(default: the model's own, 0.75 for the bundled offline models)",
    )


def alignment_of(args: argparse.Namespace, lifter: Lifter) -> float:
    """The alignment weight ``lifter`` runs with: ``--align-2d`` (checked), else the model's; 0
    with ``--raw``. A causal model does not align (its alignment would read future frames), so
    a weight above 0 for one is refused rather than ignored."""
    from jointpose.evaluation.evaluate import refuse_raw_with
    from jointpose.geometry.alignment import check_weight
    from jointpose.model.predict import refuse_future_frames

    raw = getattr(args, "raw", False)
    if args.align_2d is None:
        return 0.0 if raw else lifter.align_2d
    check_weight(args.align_2d, "--align-2d")
    refuse_raw_with(raw, align_2d=args.align_2d, names={"raw": "--raw", "align_2d": "--align-2d"})
    pretrained = getattr(args, "pretrained", None)
    model = getattr(args, "checkpoint", None) or (f"--pretrained {pretrained}" if pretrained else "--causal")
    refuse_future_frames("align_2d", args.align_2d, lifter.causal, model)
    return args.align_2d


def bvh_parts_note(fmt: str, parts: int) -> str | None:
    """What a BVH output of a track lifted in ``parts`` stretches (perhaps different people) says:
    a BVH file has one skeleton, so their bones share its lengths."""
    if fmt != "bvh" or parts < 2:
        return None
    return (
        f"note: a BVH file has one skeleton: the track's {parts} parts (perhaps different people) share its bone "
        "lengths, each the median over every frame; npz, JSON and CSV keep each part's own"
    )


def add_pretrained_arg(p: argparse.ArgumentParser) -> None:
    """``--pretrained NAME``: a bundled model by name, instead of the verb's default one."""
    from jointpose.inference.pretrained import PRETRAINED

    p.add_argument(
        "--pretrained", choices=tuple(PRETRAINED), default=None, help="a bundled model by name (docs/model-card.md)"
    )


def sequence_lifter(args: argparse.Namespace, offline: str, causal: str, what: str) -> Lifter:
    """The lifter ``infer`` or ``video`` (``what``) runs: ``--checkpoint``'s model, else the bundled
    ``--pretrained`` one, else the bundled ``causal`` one with ``--causal``, else the bundled
    ``offline`` one. Refused before any input is read: two of ``--checkpoint``, ``--pretrained``
    and ``--causal``, a model that cannot lift the verb's Human3.6M-17 keypoints to the 17
    joints the outputs hold, and a streaming ONNX export."""
    from jointpose.geometry import skeleton
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.onnx import OnnxModel

    if args.checkpoint and args.causal:
        raise JointposeError("--causal picks the bundled causal model; a --checkpoint is causal or not by itself")
    if args.pretrained and (args.checkpoint or args.causal):
        other = "--checkpoint" if args.checkpoint else "--causal"
        raise JointposeError(f"--pretrained {args.pretrained} names the model; leave out {other}")
    if args.checkpoint:
        lifter = Lifter.load(args.checkpoint, device=args.device)
    else:
        name = args.pretrained or (causal if args.causal else offline)
        lifter = Lifter.from_pretrained(name, device=args.device)
    joints = skeleton.NUM_JOINTS
    if (lifter.num_keypoints, lifter.model.num_joints_out) != (joints, joints):
        raise JointposeError(
            f"--checkpoint {args.checkpoint}: a model of {lifter.num_keypoints} keypoints in and "
            f"{lifter.model.num_joints_out} joints out; {what} gives Human3.6M's {joints} and needs them back"
        )
    if isinstance(lifter.model, OnnxModel):
        lifter.model.check_sequences()
    return lifter


def one_line(text: str) -> str:
    """``text`` on one line: line breaks (a file's key or name may hold them) shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
