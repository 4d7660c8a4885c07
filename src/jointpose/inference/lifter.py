"""Python API for inference: 2D keypoints in, 3D poses (metres, root-relative) out.

    lifter = Lifter.from_pretrained()                  # bundled weights
    poses = lifter.predict(keypoints, image_size=(1920, 1080))   # (frames, 17, 3)

Input keypoints are (frames, 17, 2 or 3) PIXELS in the Human3.6M-17 order (a third column,
a confidence, is ignored; convert detector formats with :mod:`jointpose.data.keypoints`).
Output is camera space - x right, y down, z forward - in metres, relative to the root
joint (index 0, exactly zero). Sequences shorter than the receptive field are padded
with copies of their first and last frames, so any length >= 1 works.

Models are stored as safetensors (no pickle); :mod:`jointpose.model.loading` reads and
writes them, and training checkpoints. An ONNX export (:mod:`jointpose.inference.onnx`)
loads the same way and runs through onnxruntime, with the same steps around the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.cameras import check_image_size, normalize_screen_coordinates
from jointpose.inference.onnx import OnnxModel, load_onnx
from jointpose.model.loading import LoadedModel, load_model, resolve_device, save_model
from jointpose.model.predict import inference_step, model_device, predict
from jointpose.model.temporal import FusedTemporalModel, TemporalModel
from jointpose.safeio import check_finite, frame_ranges

MODEL_FORMAT = "jointpose-model-v1"
# Largest normalised screen coordinate accepted (x in [0, w] pixels maps to [-1, 1]): 500
# image widths off screen. Larger values are no detection, and could overflow float32 inside
# the network.
SCREEN_BOUND = 1000.0
SEGMENT = 4096  # output frames computed at once (bounds memory on long inputs)
PRETRAINED = {"offline": "jointpose_cmu_243f_offline.safetensors", "causal": "jointpose_cmu_243f_causal.safetensors"}


class Lifter:
    """A trained pose model (and optional trajectory model) ready for inference."""

    def __init__(
        self,
        model: TemporalModel | OnnxModel,
        *,
        trajectory_model: TemporalModel | None = None,
        fps: float = 50.0,
        keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
        keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
        flip_test: bool = True,
        skeleton_fit: bool = False,
        smooth: float = 0.0,
    ) -> None:
        """Wrap a trained model for inference (usually built by :meth:`load` or :meth:`from_pretrained`).

        Args:
            model: the pose network (eval mode is set here), or an ONNX export.
            trajectory_model: optional network for the root position in camera space.
            fps: frame rate the model was trained at (frames per second).
            keypoints_left: input keypoint indices of the left side (for flip averaging).
            keypoints_right: input keypoint indices of the right side.
            flip_test: average each prediction with that of the mirrored input.
            skeleton_fit: give each predicted sequence one consistent skeleton (a causal
                model: bone lengths from past frames only).
            smooth: Gaussian filter over each predicted sequence before the fit, sigma in
                frames (0 = off; offline models only). With ``skeleton_fit``, the joint-aware
                method's inference step (``jointpose.geometry.anatomy``, ``jointpose.geometry.filters``).
        """
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
        return model_device(self.model)

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
        """The bundled model trained on CMU motion capture.

        Args:
            variant: ``"offline"`` (243 frames centred on each output) or ``"causal"`` (past frames only).
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``...

        Returns:
            A lifter with the model card's inference step (docs/model-card.md).
        """
        if variant not in PRETRAINED:
            raise JointposeError(f"unknown pretrained variant '{variant}' (known: {', '.join(PRETRAINED)})")
        resource = resources.files("jointpose").joinpath(f"resources/pretrained/{PRETRAINED[variant]}")
        with resources.as_file(resource) as path:
            if not path.is_file():
                raise JointposeError(f"the bundled model {PRETRAINED[variant]} is missing from this installation")
            return cls.load(path, device=device)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Lifter:
        """A lifter from a saved model.

        Args:
            path: an exported ``.safetensors`` model, a training checkpoint (``.pt`` file or
                run folder) or an ONNX export (``.onnx``: run by onnxruntime on the CPU).
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``...

        Returns:
            The lifter, with the inference step the model was trained for.
        """
        if Path(path).suffix == ".onnx":
            if device not in ("auto", "cpu"):
                raise JointposeError(f"--device {device}: ONNX models run on onnxruntime's CPU provider")
            return cls.from_loaded(load_onnx(path))
        return cls.from_loaded(load_model(path, device))

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> Lifter:
        """A lifter over a model that :func:`jointpose.model.loading.load_model` returned."""
        left, right = loaded.keypoints_symmetry
        return cls(
            loaded.model,
            trajectory_model=loaded.trajectory_model,
            fps=loaded.fps,
            keypoints_left=left,
            keypoints_right=right,
            skeleton_fit=loaded.skeleton_fit,
            smooth=loaded.smooth,
        )

    def save(self, path: str | Path, *, half: bool = False) -> Path:
        """Write the model(s) as safetensors (written to a temporary file, then renamed).

        Args:
            path: the ``.safetensors`` file to write.
            half: store float16 weights (half the size; outputs move by well under a millimetre).

        Returns:
            The path written.
        """
        if isinstance(self.model, OnnxModel):
            raise JointposeError(f"{self.model.path}: an ONNX export holds no torch weights to save as safetensors")
        loaded = LoadedModel(
            self.model,
            self.trajectory_model,
            self.fps,
            (self.keypoints_left, self.keypoints_right),
            self.skeleton_fit,
            self.smooth,
        )
        return save_model(path, loaded, half=half)

    def normalize(self, keypoints: np.ndarray, image_size: tuple[int, int] | None, normalized: bool) -> np.ndarray:
        """Validate (frames, J, 2|3) keypoints and map pixels to normalised screen coordinates."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[2] not in (2, 3) or kp.shape[1] != self.num_keypoints:
            raise JointposeError(f"keypoints must be (frames, {self.num_keypoints}, 2 or 3), got shape {kp.shape}")
        if len(kp) == 0:
            raise JointposeError("keypoints: empty sequence (0 frames)")
        kp = kp[..., :2]
        if not np.isfinite(kp).all():
            raise JointposeError("keypoints hold NaN or inf values; fill missing joints first (jointpose.keypoints)")
        if not normalized:
            if image_size is None:
                raise JointposeError("pixel keypoints need image_size=(width, height) (--image-size W H)")
            try:
                w, h = image_size
            except (TypeError, ValueError):
                raise JointposeError(f"image_size must be (width, height) in pixels, got {image_size!r}") from None
            w, h = check_image_size(w, h, "image_size")
            kp = normalize_screen_coordinates(kp, w, h)
        # Checked as the network computes (float32), where 1e300 is infinite.
        with np.errstate(over="ignore"):
            out_of_range = ~(np.abs(kp.astype(np.float32)) <= SCREEN_BOUND).reshape(len(kp), -1).all(axis=1)
        if out_of_range.any():
            raise JointposeError(
                f"keypoints: {int(out_of_range.sum())} of {len(kp)} frames ("
                f"{frame_ranges(np.flatnonzero(out_of_range))}) lie more than {SCREEN_BOUND / 2:g} "
                "image widths off screen (or overflow float32)"
            )
        return kp

    def predict(
        self,
        keypoints: np.ndarray | Sequence[np.ndarray],
        image_size: tuple[int, int] | None = None,
        *,
        normalized: bool = False,
        progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Lift 2D keypoint sequences to 3D.

        Args:
            keypoints: (frames, J, 2 or 3) keypoints in the model's input layout (Human3.6M-17
                for the bundled models; a third column, a confidence, is ignored), pixels unless
                ``normalized``; or a list of such sequences.
            image_size: (width, height) in pixels, needed for pixel input.
            normalized: the keypoints are already normalised screen coordinates.
            progress: show a progress bar over long sequences.

        Returns:
            (frames, 17, 3) poses in metres, camera axes (x right, y down, z forward), root
            joint at 0; a list for a list.

        Raises:
            JointposeError: malformed or non-finite keypoints, or a non-finite prediction.
        """
        if isinstance(keypoints, (list, tuple)):
            return [self.predict(k, image_size, normalized=normalized, progress=progress) for k in keypoints]
        kp = self.normalize(keypoints, image_size, normalized)
        poses = predict(
            self._inference_model(),
            kp,
            flip_test=self.flip_test,
            keypoints_left=self.keypoints_left,
            keypoints_right=self.keypoints_right,
            segment=SEGMENT,
            progress=progress,
        )
        smooth = 0.0 if self.causal else self.smooth
        poses = inference_step(poses, smooth=smooth, skeleton_fit=self.skeleton_fit, causal=self.causal).numpy()
        check_finite(poses, "the predicted 3D poses")
        return poses

    def _inference_model(self) -> FusedTemporalModel | OnnxModel:
        """The pose model with batch norm folded in, built on first use (weights are fixed);
        an ONNX export as it is (onnxruntime folds batch norm itself)."""
        if isinstance(self.model, OnnxModel):
            return self.model
        if self._fused is None:
            self._fused = FusedTemporalModel(self.model)
        return self._fused

    def predict_trajectory(
        self, keypoints: np.ndarray, image_size: tuple[int, int] | None = None, *, normalized: bool = False
    ) -> np.ndarray:
        """The root joint's position in camera space from the trajectory model.

        Args:
            keypoints: (frames, J, 2 or 3) keypoints, as for :meth:`predict`.
            image_size: (width, height) in pixels, needed for pixel input.
            normalized: the keypoints are already normalised screen coordinates.

        Returns:
            (frames, 3) root positions in metres, camera space.
        """
        if self.trajectory_model is None:
            raise JointposeError("this model has no trajectory model (train with --trajectory)")
        kp = self.normalize(keypoints, image_size, normalized)
        out = predict(
            self.trajectory_model,
            kp,
            flip_test=self.flip_test,
            keypoints_left=self.keypoints_left,
            keypoints_right=self.keypoints_right,
            root_relative=False,
            segment=SEGMENT,
        )
        check_finite(out[:, 0], "the predicted trajectory")
        return out[:, 0].numpy()
