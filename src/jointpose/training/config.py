"""``TrainConfig``: everything a training run depends on, with each mode's defaults.

Each field is validated here, where it is defined: an impossible value raises a
:class:`JointposeError` naming the field (``error.fields``). Each field's metadata also holds
its command-line flags and help (:func:`cli_flags`), from which ``jointpose train`` builds
its arguments, so names, defaults and help are written once.
"""

from __future__ import annotations

import argparse
import dataclasses
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jointpose.data.h36m import (
    DATASETS,
    DEFAULT_KEYPOINTS,
    TEST_SUBJECTS,
    TRAIN_SUBJECTS,
    check_downsample,
    check_keypoints_name,
    check_names,
    dataset_kind,
)
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry.alignment import ALIGN_WEIGHT_DEFAULT
from jointpose.geometry.cameras import NORMALIZATIONS
from jointpose.geometry.filters import SMOOTH_DEFAULT, check_sigma
from jointpose.losses import CONSTRAINT_TERMS, MAX_WEIGHT, LossWeights
from jointpose.model.temporal import (
    MAX_CHANNELS,
    MAX_DROPOUT,
    MAX_FILTER_WIDTH,
    MAX_LEVELS,
    MAX_RECEPTIVE_FIELD,
    receptive_field,
)
from jointpose.motion.viewpoints import CameraRanges
from jointpose.safeio import check_switch, is_finite_number
from jointpose.training.distributed import PRECISIONS

CHUNK_DROPOUT = ("shared", "independent")  # one dropout mask per chunk, or one per window
MAX_EPOCHS = 1_000_000
MAX_BATCH = 65_536  # target frames per step: 64 times VideoPose3D's 1024
MIN_CHUNK = 3  # with constraints: acceleration, a second temporal difference, needs 3 frames
MAX_CHUNK = 1024  # consecutive target frames per chunk


# Default learning rate and dropout of each mode: VideoPose3D's for the baseline; with
# constraints the rate tuned on the validation split (docs/method.md, "Loss weights": the
# joint-aware model gains far more from the larger rate than the baseline does) and the dropout
# chosen on people in no training data (docs/validation.md: its temporal terms take over part
# of the smoothing dropout gives the baseline, and less dropout is more accurate there).
LR_BASELINE, LR_CONSTRAINTS = 0.001, 0.003


DROPOUT_BASELINE, DROPOUT_CONSTRAINTS = 0.25, 0.1
# Body-size augmentation (height spread of the random bodies, data.batching.scale_bodies):
# none in VideoPose3D's recipe; with constraints see docs/validation.md.
BODY_SCALE_BASELINE, BODY_SCALE_CONSTRAINTS = 0.0, 0.0
# Weight averaging (Trainer, --average-last): none in VideoPose3D's recipe; with constraints
# the mean over the last third of the epochs (docs/validation.md, "Results").
AVERAGE_SHARE_BASELINE, AVERAGE_SHARE_CONSTRAINTS = 0.0, 1.0 / 3.0
# 2D input normalisation (geometry.cameras): VideoPose3D's image-width screen coordinates for
# the baseline; the camera's rays (intrinsics-aware, any lens and image shape) with constraints.
# A dataset whose built-in cameras have no intrinsics (HumanEva-I) takes screen in both modes.
NORMALIZATION_BASELINE, NORMALIZATION_CONSTRAINTS = "screen", "intrinsics"


def _flag(*flags: str, default: Any = dataclasses.MISSING, help: str | None = None, **options: Any) -> Any:
    """A dataclass field whose metadata holds its command-line ``flags`` (short form first),
    ``help`` (``{default}`` in it: the default as written on the command line) and further
    argparse ``options`` (``choices``, ``metavar``)."""
    metadata = {"flags": flags, "help": help, **options}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored in every checkpoint.

    Refuses impossible values (:class:`JointposeError` naming the field). ``lr``,
    ``dropout`` and ``weights`` left at None take the mode's defaults in :meth:`resolved`.
    """

    data_dir: str = _flag("--data-dir", help="folder with data_3d_<DATASET>.npz and data_2d_<DATASET>_<KEYPOINTS>.npz")
    checkpoint_dir: str = _flag("--checkpoint", help="folder for checkpoints, log.csv and the learning curve")
    dataset: str = _flag(
        "-d",
        "--dataset",
        default="h36m",
        choices=tuple(DATASETS),
        help="file layout and skeleton: h36m (Human3.6M, 17 joints) or humaneva15 (HumanEva-I, 15 joints; "
        "docs/humaneva.md) (default {default})",
    )
    keypoints: str = _flag(
        "-k",
        "--keypoints",
        default=DEFAULT_KEYPOINTS,
        help="2D keypoints name (file data_2d_<DATASET>_<name>.npz)",
    )
    subjects_train: tuple[str, ...] = _flag(
        "-str", "--subjects-train", default=TRAIN_SUBJECTS, help="training subjects (default {default})"
    )
    subjects_test: tuple[str, ...] = _flag(
        "-ste", "--subjects-test", default=TEST_SUBJECTS, help="test subjects (default {default})"
    )
    subjects_unlabeled: tuple[str, ...] | None = _flag(
        "-sun",
        "--subjects-unlabeled",
        default=None,
        help="semi-supervised training: subjects whose 2D only (3D ignored) trains the model and the trajectory "
        "model through a 2D reprojection loss, e.g. S5,S6,S7 (implies --trajectory; default none)",
    )
    warmup_unlabeled: int = _flag(
        "--warmup-unlabeled",
        default=1,
        metavar="EPOCHS",
        help="with -sun: train on the labelled subjects alone for the first EPOCHS epochs (default {default})",
    )
    bone_guard: float = _flag(
        "--w-bone-guard",
        default=1.0,
        help="with -sun: weight of the bone-length guard that holds the unlabelled predictions' mean bone lengths "
        "at the labelled subjects' (default {default}, as VideoPose3D; 0 = off)",
    )
    multiview: float = _flag(
        "--w-multiview",
        default=0.0,
        help="with -sun: weight of the multi-view consistency term: half the unlabelled frames come in pairs, one "
        "frame through two cameras of the same recording, and the two predictions, moved into one camera's space "
        "with the calibration, must agree (metres; default {default} = off, VideoPose3D's method; "
        "docs/semi-supervised.md)",
    )
    balance_unlabeled: bool = _flag(
        "--balance-unlabeled",
        default=False,
        help="with -sun: draw every unlabelled subject as often as the one with the most frames (its windows "
        "repeated evenly), so a person with a short recording weighs as much as one with hours (default: every "
        "frame alike, as VideoPose3D)",
    )
    unlabeled_constraints: bool = _flag(
        "--no-unlabeled-constraints",
        default=True,
        help="with -sun and constraints: leave the target-free joint-aware terms (symmetry, bone-length "
        "consistency over time, range of motion) off the unlabelled predictions",
    )
    actions: tuple[str, ...] | None = _flag(
        "-a", "--actions", default=None, help="action groups to use, e.g. Walking,Sitting (default all)"
    )
    architecture: tuple[int, ...] = _flag(
        "-arc", "--architecture", default=(3, 3, 3), help="filter widths (default {default} = 27 frames)"
    )
    channels: int = _flag(
        "-ch", "--channels", default=1024, help="hidden channels (default {default}; 2048 for the deeper variant)"
    )
    dropout: float | None = _flag(  # None: DROPOUT_CONSTRAINTS with constraints, else DROPOUT_BASELINE
        "-drop",
        "--dropout",
        default=None,
        help=f"dropout (default {DROPOUT_BASELINE} with --no-constraints, as VideoPose3D; {DROPOUT_CONSTRAINTS} "
        "with constraints)",
    )
    epochs: int = _flag("-e", "--epochs", default=60, help="training epochs")
    batch_size: int = _flag("-b", "--batch-size", default=1024, help="target frames per optimiser step (global)")
    lr: float | None = _flag(  # None: LR_CONSTRAINTS with constraints, else LR_BASELINE (see resolved)
        "-lr",
        "--learning-rate",
        "--lr",
        default=None,
        help=f"Adam learning rate (default {LR_BASELINE} with --no-constraints, as VideoPose3D; {LR_CONSTRAINTS} "
        "with constraints)",
    )
    lr_decay: float = _flag("-lrd", "--lr-decay", default=0.95, help="learning-rate factor per epoch")
    bn_floor: bool = _flag(
        "--no-bn-floor",
        default=True,
        help="batch-norm momentum on VideoPose3D's schedule exactly, without the floor at 1 / (steps per epoch) "
        "(the floor binds only when an epoch has fewer than 1000 steps: never on Human3.6M)",
    )
    causal: bool = _flag("--causal", default=False, help="causal model (no future frames), for real time")
    constraints: bool = _flag("--no-constraints", default=True, help="plain MPJPE baseline (VideoPose3D's training)")
    weights: LossWeights | None = _flag(  # None: LossWeights() (the tuned defaults), or a resumed run's own
        "--w-*", default=None, help="weight of each constraint term: one --w-TERM flag per term"
    )
    chunk: int = _flag(
        "--chunk",
        default=4,
        help=f"consecutive target frames per chunk with constraints (>= {MIN_CHUNK}; default {{default}})",
    )
    chunk_share: float = _flag(
        "--chunk-share",
        default=0.25,
        help="share of each step's target frames given as chunks, with constraints (default {default}; in (0, 1))",
    )
    chunk_dropout: str = _flag(
        "--chunk-dropout",
        default="shared",
        choices=CHUNK_DROPOUT,
        help="shared: one dropout mask per chunk, MPJPE on the single windows (default; see --chunk-mpjpe); "
        "independent: a mask per window, MPJPE on every frame",
    )
    chunk_mpjpe: bool = _flag(
        "--chunk-mpjpe",
        default=False,
        help="with --chunk-dropout shared: MPJPE on the chunks' frames as well as on the single windows",
    )
    body_scale: float | None = _flag(  # None: BODY_SCALE_CONSTRAINTS with constraints, else BODY_SCALE_BASELINE
        "--body-scale",
        default=None,
        metavar="SPREAD",
        help="body-size augmentation: every training sequence gets random bone lengths (overall size spread "
        "SPREAD) each epoch, its 2D re-projected to match ("
        + (
            f"default {BODY_SCALE_BASELINE:g} = off in both modes, as VideoPose3D)"
            if BODY_SCALE_BASELINE == BODY_SCALE_CONSTRAINTS
            else f"default {BODY_SCALE_BASELINE:g} with --no-constraints, as VideoPose3D; "
            f"{BODY_SCALE_CONSTRAINTS:g} with constraints; 0 = off)"
        ),
    )
    adult_limbs: float = _flag(
        "--adult-limbs",
        default=0.0,
        metavar="SHARE",
        help="with --body-scale: centre the drawn bodies' limb proportions SHARE of the way from the training "
        "motion's to typical adult ones (arms / legs from about 0.52 to 0.68; default {default}: the motion's own)",
    )
    limb_mix: float = _flag(
        "--limb-mix",
        default=0.0,
        metavar="SHARE",
        help="pose augmentation: each epoch, a training sequence's arms, and independently its legs, move as in "
        "another training sequence with probability SHARE (relative to the chest or pelvis, bone lengths kept), "
        "its 2D re-projected to match (default {default}: off)",
    )
    average_last: int | None = _flag(  # None: the mode's share of the epochs (AVERAGE_SHARE_*)
        "--average-last",
        default=None,
        metavar="N",
        help="evaluate and export the mean of the pose network's weights (and batch-norm statistics) at the end "
        "of each of the last N epochs instead of the last epoch's (stochastic weight averaging; default: the "
        "last third of the epochs with constraints, 0 (the last epoch's) with --no-constraints, as VideoPose3D)",
    )
    normalization: str | None = _flag(  # None: NORMALIZATION_CONSTRAINTS with constraints, else _BASELINE
        "--normalization",
        default=None,
        choices=NORMALIZATIONS,
        help="2D input coordinates: screen (image width only, as VideoPose3D; default with --no-constraints) "
        "or intrinsics (each point's ray through the camera's focal length, principal point and lens; default "
        "with constraints, except on a dataset whose cameras have no intrinsics: -d humaneva15)",
    )
    random_cameras: CameraRanges | None = _flag(
        "--random-cameras",
        default=None,
        nargs="?",
        const="",
        metavar="RANGES",
        help="each epoch, see every training motion through a freshly drawn camera (2D re-projected with "
        "detector-like noise); optional RANGES override the defaults, e.g. distance=2:10,fov=40:100,distortion=0.1 "
        "(docs/cameras.md)",
    )
    warmup: float = _flag(
        "--warmup",
        default=0.0,
        help="share of the epochs over which the constraint weights ramp up from 0 (default {default}: none)",
    )
    skeleton_fit: bool = _flag(
        "--no-skeleton-fit",
        default=True,
        help="joint-aware model: do not fit one consistent skeleton per sequence at inference",
    )
    smooth: float = _flag(
        "--smooth",
        default=SMOOTH_DEFAULT,
        metavar="SIGMA",
        help=f"joint-aware offline model: Gaussian filter (sigma in frames) over each predicted "
        f"sequence at inference (default {SMOOTH_DEFAULT}; 0 = off)",
    )
    align_2d: float = _flag(
        "--align-2d",
        default=ALIGN_WEIGHT_DEFAULT,
        metavar="WEIGHT",
        help=f"joint-aware offline model: at inference move each joint this share (0-1) of the way "
        f"across the image to its keypoint's ray, keeping the network's depth (default "
        f"{ALIGN_WEIGHT_DEFAULT}; 0 = off)",
    )
    augment: bool = _flag("-no-da", "--no-data-augmentation", default=True, help="no random horizontal flips")
    test_time_augmentation: bool = _flag(
        "-no-tta", "--no-test-time-augmentation", default=True, help="disable flip test-time augmentation"
    )
    resume: bool = _flag("--resume", default=False, help="continue the run in --checkpoint")
    seed: int = _flag("--seed", default=0, help="random seed (>= 0)")
    subset: float = _flag("--subset", default=1.0, help="fraction of each training sequence to use")
    downsample: int = _flag("--downsample", default=1, help="keep every N-th frame")
    keep_last: int = _flag("--keep-last", default=0, help="keep only the newest N epoch_NNN.pt files (0: all)")
    trajectory: bool = _flag("--trajectory", default=False, help="also train a root-trajectory model")
    device: str = _flag("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    sync_bn: bool = _flag("--sync-bn", default=False, help="SyncBatchNorm across processes (torchrun)")
    precision: str = _flag("--precision", default="fp32", choices=tuple(PRECISIONS), help="autocast precision")
    compile: bool = _flag("--compile", default=False, help="torch.compile the training model")
    progress: bool = _flag("--no-progress", default=True, help="no progress bar")
    log_steps: bool = _flag(
        "--log-steps", default=False, help="also write the loss of every optimiser step to steps.csv"
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):  # the plain values the command line gives and checkpoints hold
            value = getattr(self, spec.name)
            if "tuple" in str(spec.type) and isinstance(value, list):  # a list from Python: the tuple
                value = tuple(value)
            if spec.name in ("data_dir", "checkpoint_dir") and isinstance(value, os.PathLike):  # a Path: the string
                value = os.fspath(value)
            if spec.name == "device" and isinstance(value, torch.device):  # its name, as checkpoints hold it
                value = str(value)
            value = _plain(value)  # numpy's numbers, a Fraction: Python's (checkpoints hold JSON values)
            if spec.type == "bool":  # a string such as "no" would read as true
                value = check_switch(value, spec.name)
            object.__setattr__(self, spec.name, value)

        def integer(value: Any) -> bool:  # within int64: torch, numpy and float arithmetic take it
            return isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(value) < 2**63

        def number(value: Any) -> bool:
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and is_finite_number(value)

        def names(value: Any) -> bool:
            return (
                isinstance(value, tuple)
                and len(value) > 0
                and all(isinstance(v, str) and v for v in value)
                and len(set(value)) == len(value)
            )

        for name in ("subjects_train", "subjects_test", "actions", "subjects_unlabeled"):  # a bare string is refused
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(check_names(getattr(self, name), name)))
        dataset_kind(self.dataset)  # the rules data loading applies to its arguments of these names
        check_downsample(self.downsample)
        check_keypoints_name(self.keypoints)
        constraints = self.constraints
        rules = (
            (
                "architecture",
                isinstance(self.architecture, tuple)
                and len(self.architecture) > 0
                and all(integer(w) and w >= 1 and w % 2 == 1 for w in self.architecture),
                "odd filter widths >= 1",
            ),
            (
                "architecture",
                isinstance(self.architecture, tuple)
                and len(self.architecture) <= MAX_LEVELS
                and all(integer(w) and w <= MAX_FILTER_WIDTH for w in self.architecture)
                and receptive_field(self.architecture) <= MAX_RECEPTIVE_FIELD,
                f"1 to {MAX_LEVELS} odd filter widths up to {MAX_FILTER_WIDTH}, receptive field (their product) "
                f"up to {MAX_RECEPTIVE_FIELD} (the largest a model file holds)",
            ),
            (
                "channels",
                integer(self.channels) and 1 <= self.channels <= MAX_CHANNELS,
                f"in [1, {MAX_CHANNELS}] (the most a model file holds)",
            ),
            ("epochs", integer(self.epochs) and 1 <= self.epochs <= MAX_EPOCHS, f"in [1, {MAX_EPOCHS}]"),
            ("batch_size", integer(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH, f"in [1, {MAX_BATCH}]"),
            (
                "dropout",
                self.dropout is None or (number(self.dropout) and 0.0 <= self.dropout <= MAX_DROPOUT),
                f"in [0, {MAX_DROPOUT}]",
            ),
            ("lr", self.lr is None or (number(self.lr) and 0.0 < self.lr <= 1.0), "in (0, 1]"),
            ("lr_decay", number(self.lr_decay) and 0.0 < self.lr_decay <= 1.0, "in (0, 1]"),
            (
                "body_scale",
                self.body_scale is None or (number(self.body_scale) and 0.0 <= self.body_scale <= 0.25),
                "a height spread in [0, 0.25]",
            ),
            ("adult_limbs", number(self.adult_limbs) and 0.0 <= self.adult_limbs <= 1.0, "a share in [0, 1]"),
            ("limb_mix", number(self.limb_mix) and 0.0 <= self.limb_mix <= 1.0, "a share in [0, 1]"),
            (
                "average_last",
                self.average_last is None or (integer(self.average_last) and 0 <= self.average_last <= self.epochs),
                f"a number of epochs in [0, {self.epochs}] (at most the run's epochs)",
            ),
            ("warmup", number(self.warmup) and 0.0 <= self.warmup <= 1.0, "a share of the epochs in [0, 1]"),
            (
                "normalization",
                self.normalization is None or self.normalization in NORMALIZATIONS,
                f"None or one of {', '.join(NORMALIZATIONS)}",
            ),
            (
                "random_cameras",
                self.random_cameras is None or isinstance(self.random_cameras, CameraRanges),
                "None or a CameraRanges",
            ),
            (
                "chunk",
                integer(self.chunk) and (MIN_CHUNK if constraints else 1) <= self.chunk <= MAX_CHUNK,
                f"in [{MIN_CHUNK}, {MAX_CHUNK}] with constraints (temporal terms need {MIN_CHUNK} frames)"
                if constraints
                else f"in [1, {MAX_CHUNK}]",
            ),
            (
                "chunk_share",
                number(self.chunk_share)
                and (0.0 < self.chunk_share < 1.0 if constraints else 0.0 <= self.chunk_share <= 1.0),
                "between 0 and 1 (exclusive)" if constraints else "in [0, 1]",
            ),
            ("chunk_dropout", self.chunk_dropout in CHUNK_DROPOUT, f"one of {', '.join(CHUNK_DROPOUT)}"),
            ("smooth", number(self.smooth), "a finite number of frames >= 0"),
            ("align_2d", number(self.align_2d) and 0.0 <= self.align_2d <= 1.0, "in [0, 1]"),
            ("seed", integer(self.seed) and 0 <= self.seed < 2**63, "an integer in [0, 2**63)"),
            ("subset", number(self.subset) and 0.0 < self.subset <= 1.0, "in (0, 1]"),
            ("keep_last", integer(self.keep_last) and self.keep_last >= 0, ">= 0"),
            ("data_dir", isinstance(self.data_dir, str) and self.data_dir != "", "a folder (str or Path)"),
            (
                "checkpoint_dir",
                isinstance(self.checkpoint_dir, str) and self.checkpoint_dir != "",
                "a folder (str or Path)",
            ),
            ("device", isinstance(self.device, str) and self.device != "", "a device name (str)"),
            (
                "precision",
                isinstance(self.precision, str) and self.precision in PRECISIONS,
                f"one of {', '.join(PRECISIONS)}",
            ),
            ("weights", self.weights is None or isinstance(self.weights, LossWeights), "None or a LossWeights"),
            ("subjects_train", names(self.subjects_train), "a non-empty tuple of distinct subject names"),
            ("subjects_test", names(self.subjects_test), "a non-empty tuple of distinct subject names"),
            (
                "actions",
                self.actions is None or names(self.actions),
                "None or a non-empty tuple of distinct action names",
            ),
            (
                "subjects_unlabeled",
                self.subjects_unlabeled is None or names(self.subjects_unlabeled),
                "None or a non-empty tuple of subject names",
            ),
            ("warmup_unlabeled", integer(self.warmup_unlabeled) and self.warmup_unlabeled >= 0, "an integer >= 0"),
            (
                "bone_guard",
                number(self.bone_guard) and 0.0 <= self.bone_guard <= MAX_WEIGHT,
                f"in [0, {int(MAX_WEIGHT)}]",
            ),
            ("multiview", number(self.multiview) and 0.0 <= self.multiview <= MAX_WEIGHT, f"in [0, {int(MAX_WEIGHT)}]"),
        )
        for name, ok, rule in rules:
            if not ok:
                value = getattr(self, name)
                shown = (
                    ",".join(map(str, value)) if name == "architecture" and isinstance(value, tuple) else repr(value)
                )
                if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(value) >= 2**63:
                    rule, shown = "an integer of magnitude below 2**63", f"{len(str(abs(int(value))))} digits"
                raise JointposeError("{0} must be {rule}, got {value}", fields=(name,), rule=rule, value=shown)
        check_sigma(self.smooth, "smooth")
        both = sorted(set(self.subjects_unlabeled or ()) & set(self.subjects_train))
        if both:
            raise JointposeError(
                "{0}: {names} also in {1}; a subject is either labelled or unlabelled",
                fields=("subjects_unlabeled", "subjects_train"),
                names=",".join(both),
            )
        if self.causal and self.smooth > 0:
            raise JointposeError(
                "{0} reads future frames, which a {1} model must not; leave one out", fields=("smooth", "causal")
            )
        if self.adult_limbs > 0 and not self.body_scale:
            raise JointposeError(
                "{0} centres the bodies {1} draws; give {1} a spread > 0", fields=("adult_limbs", "body_scale")
            )

    def resolved(
        self,
        lr: float | None = None,
        dropout: float | None = None,
        weights: LossWeights | None = None,
        body_scale: float | None = None,
        normalization: str | None = None,
        average_last: int | None = None,
    ) -> TrainConfig:
        """This configuration with a learning rate, dropout, loss weights, body-size
        augmentation, input normalisation or weight averaging left at None filled in: with the
        argument of that name where given (a resumed run's own), else the default (the mode's: VideoPose3D's
        for the baseline, the tuned ones with constraints; screen input on a dataset whose
        cameras have no intrinsics). Kept apart from construction so that switching ``constraints`` (as
        ``ablate`` does) also switches the defaults, while values given explicitly stay.
        ``trajectory`` is switched on by ``subjects_unlabeled`` (the reprojection needs the root)."""

        def first(*values):
            return next(value for value in values if value is not None)

        return dataclasses.replace(
            self,
            lr=first(self.lr, lr, LR_CONSTRAINTS if self.constraints else LR_BASELINE),
            dropout=first(self.dropout, dropout, DROPOUT_CONSTRAINTS if self.constraints else DROPOUT_BASELINE),
            weights=first(self.weights, weights, LossWeights()),
            body_scale=first(
                self.body_scale, body_scale, BODY_SCALE_CONSTRAINTS if self.constraints else BODY_SCALE_BASELINE
            ),
            normalization=first(
                self.normalization,
                normalization,
                NORMALIZATION_CONSTRAINTS
                if self.constraints and DATASETS[self.dataset].intrinsics
                else NORMALIZATION_BASELINE,
            ),
            average_last=first(
                self.average_last,
                average_last,
                round(self.epochs * (AVERAGE_SHARE_CONSTRAINTS if self.constraints else AVERAGE_SHARE_BASELINE)),
            ),
            trajectory=self.trajectory or self.semi_supervised,
        )

    @property
    def semi_supervised(self) -> bool:
        """Unlabelled subjects (``-sun``) train through the 2D reprojection loss."""
        return bool(self.subjects_unlabeled)

    @property
    def redrawn_each_epoch(self) -> bool:
        """The training data changes every epoch: random bodies, mixed limbs or random cameras."""
        return bool(self.body_scale) or self.limb_mix > 0 or self.random_cameras is not None

    @property
    def shared_chunk_dropout(self) -> bool:
        """One dropout mask per chunk, MPJPE on the single windows (and the chunks too with
        ``chunk_mpjpe``); else a mask per window, MPJPE on every frame."""
        return self.chunk_dropout == "shared"

    @property
    def loss_weights(self) -> LossWeights:
        """The constraint terms' weights this run trains with (all zero with ``constraints`` off)."""
        return (self.weights or LossWeights()) if self.constraints else LossWeights.none()

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form (lists, dicts, numbers, strings) for checkpoints and JSON."""
        out = dataclasses.asdict(self)
        out["random_cameras"] = None if self.random_cameras is None else self.random_cameras.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _plain(value: Any) -> Any:
    """``value`` with each number as Python's int or float (a tuple's too); anything else as is."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Number):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else value


def saved_weights(config: dict[str, Any]) -> LossWeights | None:
    """The loss weights a checkpoint's configuration records (terms it lacks: today's
    defaults), or None when it records none."""
    saved = config.get("weights")
    if not isinstance(saved, dict):
        return None
    return LossWeights(**{name: saved[name] for name in LossWeights().as_dict() if name in saved})


def saved_config(saved: dict[str, Any], where: str) -> TrainConfig:
    """The configuration a checkpoint records (``where``: the checkpoint's path), checked by
    the rules a new one is; an impossible value is named as the checkpoint's key. Keys a
    checkpoint lacks (an older version's) take today's defaults; keys unknown are left out."""
    known = {spec.name for spec in dataclasses.fields(TrainConfig)}
    values = {key: value for key, value in saved.items() if key in known}
    values.setdefault("data_dir", ".")
    values.setdefault("checkpoint_dir", ".")
    try:
        values["weights"] = saved_weights(saved)
        if values.get("random_cameras") is not None:
            values["random_cameras"] = CameraRanges.from_dict(values["random_cameras"])
        return TrainConfig(**values)
    except JointposeError as exc:
        named = exc.naming({field: f"'{field}'" for field in exc.fields})
        raise JointposeError(f"{where}: checkpoint config {named}" if exc.fields else f"{where}: {exc}") from None


def model_args(config: TrainConfig, num_keypoints: int, num_joints_out: int | None = None) -> dict[str, Any]:
    """Constructor arguments of the model a configuration trains; ``num_joints_out`` defaults
    to the joints of the dataset's skeleton (17 Human3.6M, 15 HumanEva-I)."""
    if num_joints_out is None:
        num_joints_out = DATASETS[config.dataset].skeleton.num_joints
    return {
        "filter_widths": list(config.architecture),
        "channels": config.channels,
        "dropout": config.dropout,
        "causal": config.causal,
        "num_joints_in": num_keypoints,
        "in_features": 2,
        "num_joints_out": num_joints_out,
    }


# The fields a command sets its own way (``jointpose train`` has flags for them, ``ablate``
# writes both runs under its --out folder, benchmarks use a temporary folder).
RUN_FIELDS = ("checkpoint_dir", "resume", "keep_last")
# Fields that act only with the constraints (the baseline trains without them), and only
# with unlabelled subjects (-sun).
CONSTRAINT_SETTINGS = (
    "chunk",
    "chunk_share",
    "chunk_dropout",
    "chunk_mpjpe",
    "weights",
    "warmup",
    "unlabeled_constraints",
)
SEMI_SUPERVISED_SETTINGS = ("warmup_unlabeled", "bone_guard", "multiview", "balance_unlabeled", "unlabeled_constraints")


def tested_on_training_people(config: TrainConfig) -> JointposeWarning | None:
    """The warning for a run that tests on subjects it also trains on, else None: its scores
    on them say nothing about people the model never saw."""
    both = [s for s in config.subjects_test if s in config.subjects_train]
    if not both:
        return None
    return JointposeWarning(
        "{0} {both}: also in {1}; scores on people the model trained on say nothing about new people "
        "(hold them out: docs/validation.md)",
        fields=("subjects_test", "subjects_train"),
        both=",".join(both),
    )


class IdleSettingsWarning(JointposeWarning):
    """Settings a run was given that cannot act in it (:func:`idle_warnings`)."""


def idle_warnings(config: TrainConfig) -> list[IdleSettingsWarning]:
    """One warning per cause of :func:`idle_settings`, naming the settings and what idles them:
    ``weights: no effect with constraints=False`` (``--w-*: no effect with --no-constraints``
    on the command line)."""
    noted = []
    for cause, names in idle_settings(config).items():
        listed = ", ".join(f"{{{i}}}" for i in range(len(names)))
        if cause == "subjects_unlabeled":
            message, why = listed + f": no effect without unlabelled subjects ({{{len(names)}}})", cause
        else:  # the switch set away from its default: constraints=False, causal=True
            message, why = listed + f": no effect with {{{len(names)}}}", f"{cause}={getattr(config, cause)}"
        noted.append(IdleSettingsWarning(message, fields=(*names, why)))
    return noted


def idle_settings(config: TrainConfig) -> dict[str, list[str]]:
    """The fields ``config`` sets away from their defaults that cannot act in this run, under
    the field that idles them: ``constraints`` (off), ``causal`` (on: a causal model has no
    alignment with the 2D) or ``subjects_unlabeled`` (none)."""
    defaults = {spec.name: spec.default for spec in dataclasses.fields(TrainConfig)}
    groups = {
        "constraints": () if config.constraints else CONSTRAINT_SETTINGS,
        "causal": ("align_2d",) if config.causal else (),
        "subjects_unlabeled": () if config.semi_supervised else SEMI_SUPERVISED_SETTINGS,
    }
    idle = {
        cause: [name for name in names if getattr(config, name) != defaults[name]] for cause, names in groups.items()
    }
    return {cause: names for cause, names in idle.items() if names}


def _int_list(text: str) -> tuple[int, ...]:
    """argparse type of a comma-separated list of integers, none of them empty."""
    entries = text.split(",")
    if not text.strip():
        raise argparse.ArgumentTypeError("expected at least one value")
    if not all(entry.strip() for entry in entries):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers without an empty entry, got '{text}'")
    try:
        return tuple(int(entry) for entry in entries)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def names_argument(text: str) -> tuple[str, ...]:
    """argparse type of a comma-separated list of names."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected at least one comma-separated name")
    return values


def seed_argument(text: str) -> int:
    """argparse type of a random seed: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {value}")
    return value


# argparse type of each field type (the annotations are strings: ``from __future__ import annotations``).
_ARGUMENT_TYPES = {
    "tuple[int, ...]": _int_list,
    "tuple[str, ...]": names_argument,
    "tuple[str, ...] | None": names_argument,
    "int": int,
    "int | None": int,
    "float": float,
    "float | None": float,
    "str": str,
    "str | None": str,
    "CameraRanges | None": CameraRanges.parse,
}


def field_flags() -> dict[str, str]:
    """{field: its command-line flag, the short form where there is one} for every
    :class:`TrainConfig` field, ``weights.TERM`` -> ``--w-TERM`` for each loss weight, and
    ``FIELD=VALUE`` -> the switch for a boolean field set away from its default
    (``constraints=False`` -> ``--no-constraints``)."""
    fields = dataclasses.fields(TrainConfig)
    flags = {f.name: f.metadata["flags"][0] for f in fields}
    switches = {f"{f.name}={not f.default}": flags[f.name] for f in fields if isinstance(f.default, bool)}
    return flags | switches | {f"weights.{term}": f"--w-{term.replace('_', '-')}" for term in CONSTRAINT_TERMS}


def add_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = RUN_FIELDS) -> None:
    """Add an argument for every :class:`TrainConfig` field but ``skip``, from the field's
    metadata (flags, help, choices) and default: a field without a default is required, a
    boolean is a switch away from its default, the loss weights are one ``--w-TERM`` flag per
    constraint term (default None: the tuned defaults, or a resumed run's own)."""
    weight_defaults = LossWeights()
    for spec in dataclasses.fields(TrainConfig):
        if spec.name in skip:
            continue
        options = {key: value for key, value in spec.metadata.items() if key != "flags"}
        if spec.name == "weights":
            for term in CONSTRAINT_TERMS:
                parser.add_argument(
                    f"--w-{term.replace('_', '-')}",
                    dest=f"w_{term}",
                    type=float,
                    default=None,
                    help=f"weight of the {term} term (default {getattr(weight_defaults, term)}"
                    + ("; with --resume and no --w-* flag, the run's own)" if "resume" not in skip else ")"),
                )
            continue
        if spec.default is dataclasses.MISSING:
            options["required"] = True
        else:
            options["default"] = spec.default
            shown = (
                ",".join(map(str, spec.default))
                if isinstance(spec.default, tuple)
                else f"{spec.default:g}"
                if isinstance(spec.default, float)
                else str(spec.default)
            )
            options["help"] = options["help"] and options["help"].replace("{default}", shown)
            if spec.type != "bool" and spec.default is not None and "default" not in (options["help"] or ""):
                options["help"] = f"{options['help']} (default {shown})" if options["help"] else f"default {shown}"
        if spec.type == "bool":
            options["action"] = "store_false" if spec.default else "store_true"
        else:
            options["type"] = seed_argument if spec.name == "seed" else _ARGUMENT_TYPES[spec.type]
            if "choices" not in options:  # shown as the long flag says (LEARNING_RATE), not the field (LR)
                options.setdefault("metavar", spec.metadata["flags"][-1].lstrip("-").replace("-", "_").upper())
        parser.add_argument(*spec.metadata["flags"], dest=spec.name, **options)


def from_arguments(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` that arguments added by :func:`add_arguments` describe;
    ``overrides`` set fields directly (those the arguments lack, such as ``checkpoint_dir``)."""
    values = {
        spec.name: getattr(args, spec.name) for spec in dataclasses.fields(TrainConfig) if hasattr(args, spec.name)
    }
    given = {term: value for term in CONSTRAINT_TERMS if (value := getattr(args, f"w_{term}", None)) is not None}
    # No --w-* flag: None, so that a resumed run keeps its own weights (TrainConfig.resolved).
    values["weights"] = LossWeights(**given) if given else None
    values.update(overrides)
    return TrainConfig(**values)
