"""Python API for inference: 2D keypoints in, 3D poses (metres, root-relative) out.

    lifter = Lifter.from_pretrained()                  # bundled weights
    poses = lifter.predict(keypoints, image_size=(1920, 1080))   # (frames, 17, 3)

Input keypoints are (frames, 17, 2 or 3) PIXELS in the Human3.6M-17 order (a third column,
a confidence, is ignored; convert detector formats with :mod:`jointpose.keypoints`).
Output is camera space - x right, y down, z forward - in metres, relative to the root
joint (index 0, exactly zero). Sequences shorter than the receptive field are padded
with copies of their first and last frames, so any length >= 1 works.

Models are stored as safetensors (no pickle): tensors of the pose model under ``pose.``
and of the optional trajectory model under ``trajectory.``, with the constructor
arguments, frame rate and keypoint symmetry as JSON in the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from . import skeleton
from .cameras import normalize_screen_coordinates
from .distributed import resolve_device
from .errors import JointposeError
from .evaluate import inference_step, predict, smoothing_sigma, uses_skeleton_fit
from .filters import check_sigma
from .model import FusedTemporalModel, TemporalModel, load_model_state

MODEL_FORMAT = "jointpose-model-v1"
SEGMENT = 4096  # output frames computed at once (bounds memory on long inputs)
PRETRAINED = {"offline": "jointpose_cmu_243f_offline.safetensors", "causal": "jointpose_cmu_243f_causal.safetensors"}


class Lifter:
    """A trained pose model (and optional trajectory model) ready for inference."""

    def __init__(
        self,
        model: TemporalModel,
        *,
        trajectory_model: TemporalModel | None = None,
        fps: float = 50.0,
        keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
        keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
        flip_test: bool = True,
        skeleton_fit: bool = False,
        smooth: float = 0.0,
    ) -> None:
        """``skeleton_fit``: give each predicted sequence one consistent skeleton (a causal
        model: bone lengths from past frames only), and ``smooth``: Gaussian-filter it in
        time first (sigma in frames; offline models only); together the joint-aware method's
        inference step (:mod:`jointpose.anatomy`, :mod:`jointpose.filters`)."""
        self.model = model.eval()
        self.skeleton_fit = skeleton_fit
        self.smooth = float(smooth)
        self.trajectory_model = trajectory_model.eval() if trajectory_model is not None else None
        self.fps = float(fps)
        self.keypoints_left, self.keypoints_right = tuple(keypoints_left), tuple(keypoints_right)
        self.flip_test = flip_test
        self._fused: FusedTemporalModel | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def receptive_field(self) -> int:
        return self.model.receptive_field()

    @property
    def causal(self) -> bool:
        return self.model.causal

    @property
    def num_keypoints(self) -> int:
        return self.model.num_joints_in

    def to(self, device: str | torch.device) -> Lifter:
        self.model.to(resolve_device(str(device)))
        self._fused = None
        if self.trajectory_model is not None:
            self.trajectory_model.to(self.device)
        return self

    @classmethod
    def from_pretrained(cls, variant: str = "offline", *, device: str = "auto") -> Lifter:
        """The bundled model trained on CMU motion capture (``offline`` or ``causal``)."""
        if variant not in PRETRAINED:
            raise JointposeError(f"unknown pretrained variant '{variant}' (known: {', '.join(PRETRAINED)})")
        resource = resources.files("jointpose").joinpath(f"resources/pretrained/{PRETRAINED[variant]}")
        with resources.as_file(resource) as path:
            if not path.is_file():
                raise JointposeError(f"the bundled model {PRETRAINED[variant]} is missing from this installation")
            return cls.load(path, device=device)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Lifter:
        """A lifter from an exported ``.safetensors`` model or a training checkpoint (file or folder)."""
        path = Path(path)
        dev = resolve_device(device)
        if path.suffix == ".safetensors":
            return cls._load_safetensors(path, dev)
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, map_location=dev)
        model = load_model_state(ckpt["model_args"], ckpt["model"], str(path), dev)
        trajectory = None
        if ckpt.get("trajectory_model") is not None:
            trajectory = load_model_state(ckpt["trajectory_args"], ckpt["trajectory_model"], str(path), dev)
        left, right = ckpt.get("keypoints_symmetry", (skeleton.LEFT_JOINTS, skeleton.RIGHT_JOINTS))
        return cls(model, trajectory_model=trajectory, fps=ckpt.get("fps", 50.0), keypoints_left=left,
                   keypoints_right=right, skeleton_fit=uses_skeleton_fit(ckpt["config"]),
                   smooth=smoothing_sigma(ckpt["config"]))

    @classmethod
    def _load_safetensors(cls, path: Path, device: torch.device) -> Lifter:
        from safetensors import SafetensorError, safe_open

        if not path.is_file():
            raise JointposeError(f"model file not found: {path}")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                meta = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise JointposeError(f"{path}: not a readable safetensors model ({exc})") from None
        if meta.get("format") != MODEL_FORMAT:
            raise JointposeError(f"{path}: not a jointpose model (metadata format {meta.get('format')!r})")
        try:
            info = {k: json.loads(meta[k]) for k in ("model_args", "fps", "keypoints_symmetry")}
            trajectory_args = json.loads(meta["trajectory_args"]) if "trajectory_args" in meta else None
        except (KeyError, json.JSONDecodeError) as exc:
            raise JointposeError(f"{path}: malformed model metadata ({exc})") from None

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}

        model = load_model_state(info["model_args"], part("pose."), str(path), device)
        trajectory = load_model_state(trajectory_args, part("trajectory."), str(path), device) if trajectory_args else None
        left, right = info["keypoints_symmetry"]
        return cls(model, trajectory_model=trajectory, fps=info["fps"], keypoints_left=left, keypoints_right=right,
                   skeleton_fit=meta.get("skeleton_fit") == "true", smooth=_smooth_of(meta, path))

    def save(self, path: str | Path, *, half: bool = False) -> Path:
        """Write the model(s) as safetensors; ``half`` stores float16 weights (half the size)."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {f"pose.{k}": v for k, v in self.model.state_dict().items()}
        meta = {"format": MODEL_FORMAT, "model_args": json.dumps(_args_of(self.model)), "fps": json.dumps(self.fps),
                "keypoints_symmetry": json.dumps([list(self.keypoints_left), list(self.keypoints_right)]),
                "skeleton_fit": json.dumps(self.skeleton_fit), "smooth": json.dumps(self.smooth)}
        if self.trajectory_model is not None:
            tensors.update({f"trajectory.{k}": v for k, v in self.trajectory_model.state_dict().items()})
            meta["trajectory_args"] = json.dumps(_args_of(self.trajectory_model))
        tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in tensors.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=meta)
        return path

    def normalize(self, keypoints: np.ndarray, image_size: tuple[int, int] | None, normalized: bool) -> np.ndarray:
        """Validate (frames, J, 2|3) keypoints and map pixels to normalised screen coordinates."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[2] not in (2, 3) or kp.shape[1] != self.num_keypoints:
            raise JointposeError(
                f"keypoints must be (frames, {self.num_keypoints}, 2 or 3), got shape {kp.shape}")
        if len(kp) == 0:
            raise JointposeError("keypoints: empty sequence (0 frames)")
        kp = kp[..., :2]
        if not np.isfinite(kp).all():
            raise JointposeError("keypoints hold NaN or inf values; fill missing joints first (jointpose.keypoints)")
        if normalized:
            return kp
        if image_size is None:
            raise JointposeError("pixel keypoints need image_size=(width, height) (--image-size W H)")
        try:
            w, h = (float(v) for v in image_size)
        except (TypeError, ValueError):
            raise JointposeError(f"image_size must be (width, height) in pixels, got {image_size!r}") from None
        if not (w > 0 and h > 0 and np.isfinite(w) and np.isfinite(h)):
            raise JointposeError(f"image size must be positive, got {image_size}")
        return normalize_screen_coordinates(kp, w, h)

    def predict(
        self,
        keypoints: np.ndarray | Sequence[np.ndarray],
        image_size: tuple[int, int] | None = None,
        *,
        normalized: bool = False,
        progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """3D poses (frames, 17, 3), metres, camera axes, root at 0; a list in, a list out."""
        if isinstance(keypoints, (list, tuple)):
            return [self.predict(k, image_size, normalized=normalized, progress=progress) for k in keypoints]
        kp = self.normalize(keypoints, image_size, normalized)
        poses = predict(self._inference_model(), kp, flip_test=self.flip_test, keypoints_left=self.keypoints_left,
                        keypoints_right=self.keypoints_right, segment=SEGMENT, progress=progress)
        smooth = 0.0 if self.causal else self.smooth
        return inference_step(poses, smooth=smooth, skeleton_fit=self.skeleton_fit, causal=self.causal).numpy()

    def _inference_model(self) -> FusedTemporalModel:
        """The pose model with batch norm folded in, built on first use (weights are fixed)."""
        if self._fused is None:
            self._fused = FusedTemporalModel(self.model)
        return self._fused

    def predict_trajectory(
        self, keypoints: np.ndarray, image_size: tuple[int, int] | None = None, *, normalized: bool = False
    ) -> np.ndarray:
        """Root position (frames, 3) in camera space, metres, from the trajectory model."""
        if self.trajectory_model is None:
            raise JointposeError("this model has no trajectory model (train with --trajectory)")
        kp = self.normalize(keypoints, image_size, normalized)
        out = predict(self.trajectory_model, kp, flip_test=self.flip_test, keypoints_left=self.keypoints_left,
                      keypoints_right=self.keypoints_right, root_relative=False, segment=SEGMENT)
        return out[:, 0].numpy()


def _args_of(model: TemporalModel) -> dict:
    return {"filter_widths": list(model.filter_widths), "channels": model.channels, "dropout": model.dropout,
            "causal": model.causal, "num_joints_in": model.num_joints_in, "in_features": model.in_features,
            "num_joints_out": model.num_joints_out}


def _smooth_of(meta: dict, path: Path) -> float:
    """The temporal filter's sigma (frames) stored in a model file's metadata (0 when absent)."""
    try:
        value = float(json.loads(meta.get("smooth", "0")))
    except (json.JSONDecodeError, TypeError, ValueError):
        raise JointposeError(f"{path}: metadata 'smooth' is not a number ({meta['smooth']!r})") from None
    return check_sigma(value, f"{path}: metadata 'smooth'")
