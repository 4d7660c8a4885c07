"""jointpose: lift 2D keypoint sequences to 3D poses with a temporal dilated CNN
trained with joint-aware constraint losses.

The public API is importable from here (``from jointpose import Lifter``); each name is
loaded on first use, so ``import jointpose`` and the command line stay quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jointpose.errors import JointposeError, JointposeWarning

__version__ = "0.1.0"

_LAZY = {
    "Camera": "jointpose.geometry.cameras",
    "Lifter": "jointpose.inference.lifter",
    "StreamingLifter": "jointpose.inference.streaming",
    "load_keypoints": "jointpose.data.keypoints",
    "Keypoints2D": "jointpose.data.keypoints",
    "lift_video": "jointpose.inference.video",
    "export": "jointpose.inference.export",
    "TrainConfig": "jointpose.training.config",
    "Trainer": "jointpose.training.trainer",
    "JointAwareLoss": "jointpose.losses",
    "LossWeights": "jointpose.losses",
    "TemporalModel": "jointpose.model.temporal",
    "load_model": "jointpose.model.loading",
    "load_dataset": "jointpose.data.h36m",
    "evaluate_model": "jointpose.evaluation.evaluate",
    "evaluate_checkpoint": "jointpose.evaluation.evaluate",
    "inference_settings": "jointpose.evaluation.evaluate",
}

__all__ = [
    "Camera",
    "JointAwareLoss",
    "JointposeError",
    "JointposeWarning",
    "Keypoints2D",
    "Lifter",
    "LossWeights",
    "StreamingLifter",
    "TemporalModel",
    "TrainConfig",
    "Trainer",
    "__version__",
    "evaluate_checkpoint",
    "evaluate_model",
    "export",
    "inference_settings",
    "lift_video",
    "load_dataset",
    "load_keypoints",
    "load_model",
]

if TYPE_CHECKING:
    from jointpose.data.h36m import load_dataset as load_dataset
    from jointpose.data.keypoints import Keypoints2D as Keypoints2D
    from jointpose.data.keypoints import load_keypoints as load_keypoints
    from jointpose.evaluation.evaluate import evaluate_checkpoint as evaluate_checkpoint
    from jointpose.evaluation.evaluate import evaluate_model as evaluate_model
    from jointpose.evaluation.evaluate import inference_settings as inference_settings
    from jointpose.geometry.cameras import Camera as Camera
    from jointpose.inference.export import export as export
    from jointpose.inference.lifter import Lifter as Lifter
    from jointpose.inference.streaming import StreamingLifter as StreamingLifter
    from jointpose.inference.video import lift_video as lift_video
    from jointpose.losses import JointAwareLoss as JointAwareLoss
    from jointpose.losses import LossWeights as LossWeights
    from jointpose.model.loading import load_model as load_model
    from jointpose.model.temporal import TemporalModel as TemporalModel
    from jointpose.training.config import TrainConfig as TrainConfig
    from jointpose.training.trainer import Trainer as Trainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jointpose' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
