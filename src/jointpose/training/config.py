"""``TrainConfig``: everything a training run depends on, with each mode's defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from jointpose.errors import JointposeError
from jointpose.geometry.filters import SMOOTH_DEFAULT
from jointpose.losses import LossWeights

CHUNK_DROPOUT = ("shared", "independent")  # one dropout mask per chunk, or one per window


# Default learning rate and dropout of each mode: VideoPose3D's for the baseline; with
# constraints the values tuned on the validation split (docs/method.md, "Loss weights": the
# joint-aware model gains far more from the larger rate than the baseline does, and needs
# less dropout: its temporal terms take over part of the smoothing dropout gives the baseline).
LR_BASELINE, LR_CONSTRAINTS = 0.001, 0.003


DROPOUT_BASELINE, DROPOUT_CONSTRAINTS = 0.25, 0.2
# Body-size augmentation (height spread of the random bodies, data.batching.scale_bodies):
# none in VideoPose3D's recipe; with constraints see docs/validation.md.
BODY_SCALE_BASELINE, BODY_SCALE_CONSTRAINTS = 0.0, 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored in every checkpoint."""

    data_dir: str
    checkpoint_dir: str
    keypoints: str = "cpn_ft_h36m_dbb"
    subjects_train: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
    subjects_test: tuple[str, ...] = ("S9", "S11")
    actions: tuple[str, ...] | None = None
    architecture: tuple[int, ...] = (3, 3, 3)
    channels: int = 1024
    dropout: float | None = None  # None: DROPOUT_CONSTRAINTS with constraints, else DROPOUT_BASELINE
    epochs: int = 60
    batch_size: int = 1024
    lr: float | None = None  # None: LR_CONSTRAINTS with constraints, else LR_BASELINE (see resolved)
    lr_decay: float = 0.95
    causal: bool = False
    constraints: bool = True
    weights: LossWeights | None = None  # None: LossWeights() (the tuned defaults), or a resumed run's own
    chunk: int = 4
    chunk_share: float = 0.25
    chunk_dropout: str = "shared"
    body_scale: float | None = None  # None: BODY_SCALE_CONSTRAINTS with constraints, else BODY_SCALE_BASELINE
    warmup: float = 0.0
    skeleton_fit: bool = True
    smooth: float = SMOOTH_DEFAULT
    augment: bool = True
    test_time_augmentation: bool = True
    resume: bool = False
    seed: int = 0
    subset: float = 1.0
    downsample: int = 1
    keep_last: int = 0
    trajectory: bool = False
    device: str = "auto"
    sync_bn: bool = False
    precision: str = "fp32"
    compile: bool = False
    progress: bool = True
    log_steps: bool = False

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise JointposeError(f"seed (--seed) must be >= 0, got {self.seed}")
        if self.chunk_dropout not in CHUNK_DROPOUT:
            raise JointposeError(f"chunk_dropout (--chunk-dropout) must be one of {', '.join(CHUNK_DROPOUT)}, "
                                 f"got {self.chunk_dropout!r}")
        if self.body_scale is not None and not 0.0 <= self.body_scale <= 0.25:
            raise JointposeError(f"body_scale (--body-scale) must be a height spread in [0, 0.25], got {self.body_scale}")

    def resolved(self, lr: float | None = None, dropout: float | None = None,
                 weights: LossWeights | None = None, body_scale: float | None = None) -> TrainConfig:
        """This configuration with a learning rate, dropout, loss weights or body-size
        augmentation left at None filled in: with ``lr`` / ``dropout`` / ``weights`` /
        ``body_scale`` where given (a resumed run's own), else the default (rate, dropout and
        augmentation: the mode's, VideoPose3D's for the baseline, the tuned ones with constraints). Kept apart from construction so that switching
        ``constraints`` (as ``ablate`` does) also switches the defaults, while values given
        explicitly stay."""
        def first(*values):
            return next(value for value in values if value is not None)

        return dataclasses.replace(
            self, lr=first(self.lr, lr, LR_CONSTRAINTS if self.constraints else LR_BASELINE),
            dropout=first(self.dropout, dropout, DROPOUT_CONSTRAINTS if self.constraints else DROPOUT_BASELINE),
            weights=first(self.weights, weights, LossWeights()),
            body_scale=first(self.body_scale, body_scale, BODY_SCALE_CONSTRAINTS if self.constraints else BODY_SCALE_BASELINE))

    @property
    def shared_chunk_dropout(self) -> bool:
        """One dropout mask per chunk, MPJPE on the single windows (else a mask per window,
        MPJPE on every frame)."""
        return self.chunk_dropout == "shared"

    @property
    def loss_weights(self) -> LossWeights:
        return (self.weights or LossWeights()) if self.constraints else LossWeights.none()

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form (lists, dicts, numbers, strings) for checkpoints and JSON."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def model_args(config: TrainConfig, num_keypoints: int, num_joints_out: int = 17) -> dict[str, Any]:
    """Constructor arguments of the model a configuration trains."""
    return {
        "filter_widths": list(config.architecture), "channels": config.channels,
        "dropout": config.dropout, "causal": config.causal, "num_joints_in": num_keypoints,
        "in_features": 2, "num_joints_out": num_joints_out,
    }
