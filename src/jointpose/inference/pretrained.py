"""The models bundled with jointpose (docs/model-card.md): their names and files. Kept apart
from :mod:`jointpose.inference.lifter` so that the command line lists them without loading
PyTorch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from jointpose.errors import JointposeError

PRETRAINED = {
    "offline": "jointpose_cmu_243f_offline.safetensors",
    "causal": "jointpose_cmu_243f_causal.safetensors",
    "video": "jointpose_cmu_243f_video.safetensors",
    "video-causal": "jointpose_cmu_243f_video_causal.safetensors",
}
# The bundled models trained on BlazePose's points as jointpose video detects them (offline,
# causal); the others trained on 2D derived from COCO-17 detections.
VIDEO_MODELS = ("video", "video-causal")


@contextmanager
def pretrained_file(variant: str) -> Iterator[Path]:
    """The bundled model file of ``variant`` (a :data:`PRETRAINED` name), as a path while the
    context lasts (``jointpose evaluate --pretrained``, :meth:`Lifter.from_pretrained`)."""
    if variant not in PRETRAINED:
        raise JointposeError(f"unknown pretrained variant '{variant}' (known: {', '.join(PRETRAINED)})")
    resource = resources.files("jointpose").joinpath(f"resources/pretrained/{PRETRAINED[variant]}")
    with resources.as_file(resource) as path:
        if not path.is_file():
            raise JointposeError(f"the bundled model {PRETRAINED[variant]} is missing from this installation")
        yield path
