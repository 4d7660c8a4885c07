"""Python API for inference: 2D keypoints in, 3D poses (metres, root-relative) out.

    lifter = Lifter.from_pretrained()                  # bundled weights
    poses = lifter.predict(keypoints, image_size=(1920, 1080))   # (frames, 17, 3)
    camera = Camera.from_fov(1920, 1080, 70.0)         # or Camera.from_focal_length(1920, 1080, 1400.0)
    poses = lifter.predict(keypoints, camera=camera)   # the lens known: the right size and depth
    root = lifter.predict_trajectory(keypoints, camera=camera)  # (frames, 3) metres, camera space

Input keypoints are (frames, 17, 2 or 3) PIXELS in the Human3.6M-17 order (a third column is
each keypoint's confidence, which only the alignment with the 2D reads; convert detector
formats with :func:`jointpose.data.keypoints.load_keypoints`, whose result ``predict`` takes
as it is).
Output is camera space - x right, y down, z forward - in metres, relative to the root
joint (index 0, exactly zero).

A model trained with ``normalization="intrinsics"`` reads each point as its ray through the
camera, so it needs the camera's intrinsics: pass ``camera`` (a
:class:`~jointpose.geometry.cameras.Camera`, e.g. from its focal length or field of view);
with ``image_size`` alone, a camera of :data:`~jointpose.geometry.cameras.DEFAULT_FOV_DEG`
degrees over the image's longer side is assumed (a typical phone or webcam,
:meth:`Camera.assumed <jointpose.geometry.cameras.Camera.assumed>`) and :attr:`Lifter.assumed_camera` says so. A ``"screen"`` model (VideoPose3D's normalisation)
reads points in image widths and needs the image size only; given a ``camera``, the points
are first moved to where its training cameras would have seen them (:func:`screen_view`).
Sequences shorter than the receptive field are padded
with copies of their first and last frames, so any length >= 1 works.

Models are stored as safetensors (no pickle); :mod:`jointpose.model.loading` reads and
writes them, and training checkpoints. An ONNX export (:mod:`jointpose.inference.onnx`)
loads the same way and runs through onnxruntime, with the same steps around the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jointpose.data.h36m import INPUT_LAYOUTS, MAX_DISTANCE_M
from jointpose.data.keypoints import KEYPOINT_SOURCES, Keypoints2D, check_switches, image_size_of
from jointpose.data.layouts import aligned_joints
from jointpose.data.resampling import resample, same_rate
from jointpose.data.tracks import person_parts
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton
from jointpose.geometry.alignment import check_weight, rays_of, root_path, root_sigma
from jointpose.geometry.bones import bone_vectors, positions_from_bones
from jointpose.geometry.cameras import (
    DEFAULT_FOV_DEG,
    OFF_SCREEN,
    SCREEN_BOUND,
    Camera,
    check_image_size_pair,
    check_normalization,
    focal_length_for_fov,
    normalize_keypoints,
)
from jointpose.geometry.filters import check_sigma
from jointpose.inference.onnx import OnnxModel, export_onnx, load_onnx
from jointpose.inference.pretrained import VIDEO_MODELS, pretrained_file
from jointpose.model.loading import (
    LoadedModel,
    input_layout_of,
    load_model,
    model_args_of,
    resolve_device,
    save_model,
    symmetry_of,
)
from jointpose.model.predict import alignment_sigma, inference_step, model_device, predict, refuse_future_frames
from jointpose.model.temporal import FusedTemporalModel, TemporalModel, check_model_args, network_name
from jointpose.motion.builder import CameraRing
from jointpose.safeio import (
    check_bounded,
    check_finite,
    check_fps,
    check_limit,
    check_path,
    check_resample,
    check_switch,
    numeric_array,
)

# The focal length, in image widths, of the cameras a "screen" model saw: the synthetic
# ring's (1150 px on a 1000 px wide image), as Human3.6M's (about 1145 px).
SCREEN_FOCAL_WIDTHS = CameraRing.focal_length / CameraRing.width
MODEL_FORMAT = "jointpose-model-v1"
SEGMENT = 4096  # output frames computed at once (bounds memory on long inputs)


class _Checked:
    """An attribute checked on every assignment (``lifter.skeleton_fit = True`` as at
    construction) by ``check(value, name)``, which returns the value to keep. An
    ``offline_only`` one reads future frames: above 0 it is refused for a causal model."""

    def __init__(self, check: Callable[[Any, str], Any], *, offline_only: bool = False) -> None:
        self.check, self.offline_only = check, offline_only

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, lifter: Any, owner: type | None = None) -> Any:
        return self if lifter is None else lifter.__dict__[self.name]

    def __set__(self, lifter: Any, value: Any) -> None:
        value = self.check(value, self.name)
        if self.offline_only:
            refuse_future_frames(self.name, value, lifter.causal, "this Lifter's")
        lifter.__dict__[self.name] = value


class Lifter:
    """A trained pose model (and optional trajectory model) ready for inference."""

    skeleton_fit = _Checked(check_switch)
    smooth = _Checked(check_sigma, offline_only=True)
    flip_test = _Checked(check_switch)
    align_2d = _Checked(check_weight, offline_only=True)
    input_layout = _Checked(input_layout_of)

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
        normalization: str = "screen",
        align_2d: float = 0.0,
        input_layout: str | None = None,
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
                frames (0 = off; offline models only, refused above 0 for a causal one). With
                ``skeleton_fit``, the joint-aware method's inference step
                (``jointpose.geometry.anatomy``, ``jointpose.geometry.filters``).
            normalization: the 2D input coordinates the model was trained on, ``"screen"`` or
                ``"intrinsics"`` (:func:`jointpose.geometry.cameras.normalize_keypoints`).
            align_2d: move each joint this share (0-1) of the way across the image to its
                keypoint's ray, keeping the network's depth (offline models with a known or
                assumed camera, refused above 0 for a causal one; only the joints the
                keypoints mark themselves, each by its keypoint's confidence;
                :func:`jointpose.geometry.alignment.align_to_rays`).
            input_layout: the 2D the model trained on, as ``data build --input-layout`` names it
                (``"h36m"``, ``"coco"``, ``"blazepose"``; ``"NAME order"``: a detector's own
                order), None where unknown. A ``Keypoints2D`` given to a model trained in a
                detector's own order is lifted with a warning (:meth:`layout_mismatch`).
        """
        for name, network in (("model", model), ("trajectory_model", trajectory_model)):
            if not isinstance(network, (TemporalModel, OnnxModel)) and (name == "model" or network is not None):
                raise JointposeError(
                    f"{name} must be a TemporalModel or an ONNX model, got {network_name(network)} (a bundled "
                    "model: Lifter.from_pretrained(name); a file: Lifter.load(path))"
                )
            if isinstance(network, TemporalModel):  # the sizes a model file may hold: time and memory bounded
                check_model_args(model_args_of(network), name)
                if any(weight.is_meta for weight in network.parameters()):
                    raise JointposeError(f"{name}: its weights are on the meta device, without values; load them first")
        self.model = model.eval()
        self.skeleton_fit, self.smooth, self.flip_test, self.align_2d = skeleton_fit, smooth, flip_test, align_2d
        self.trajectory_model = trajectory_model.eval() if trajectory_model is not None else None
        self.fps = float(check_fps(fps, "fps"))
        self.keypoints_left, self.keypoints_right = symmetry_of(
            (keypoints_left, keypoints_right), model.num_joints_in, None, "keypoints_left and keypoints_right"
        )
        self.normalization = check_normalization(normalization)
        self.input_layout = input_layout
        self.assumed_camera: Camera | None = None  # set when pixel input came without intrinsics
        self.bundled: str | None = None  # the bundled model's name (from_pretrained), else None
        self._fused: FusedTemporalModel | None = None

    def _recorded(
        self, keypoints: Keypoints2D, image_size: tuple[int, int] | None, camera: Camera | None
    ) -> tuple[tuple[int, int] | None, Camera | None]:
        """The image size and camera to read ``keypoints`` with: those given, else those its file
        records. A given image size, or a given camera's, must be the recorded one. Warns where
        :meth:`layout_mismatch` says so."""
        if (mismatch := self.layout_mismatch(keypoints)) is not None:
            warnings.warn(JointposeWarning(mismatch), stacklevel=3)
        if image_size is not None:
            image_size = check_image_size_pair(image_size, "image_size")
            image_size_of(keypoints, image_size, f"image_size {image_size[0]}x{image_size[1]}", "the Keypoints2D")
        if camera is None:
            return image_size or keypoints.image_size, keypoints.camera
        if isinstance(camera, Camera):  # anything else is refused by camera_for, naming it
            size = (camera.res_w, camera.res_h)
            image_size_of(keypoints, size, f"the camera's image size {size[0]}x{size[1]}", "the Keypoints2D")
        return image_size, camera

    def layout_mismatch(self, keypoints: Keypoints2D) -> str | None:
        """A warning where ``keypoints`` are known to be lifted badly, or better by another
        model, else None: any of them to a model trained on a detector's keypoints in their own
        order (:attr:`input_layout` ``"NAME order"``: it reads them as other joints), and a
        video track to the bundled offline or causal model (the video models lift real footage
        better: docs/video.md). Between 2D at the joints and the two detectors' points
        converted (``"h36m"``, ``"coco"``, ``"blazepose"``), models trained on one lift the
        others about as well as their own (docs/tuning.md, "The 2D a model trained on"): not
        warned."""
        trained, given = self.input_layout, keypoints.input_layout
        if trained is not None and trained not in INPUT_LAYOUTS:
            return (
                f"{KEYPOINT_SOURCES[given]} lifted by a model that trained on keypoints in {trained} (a detector's own "
                f"order): it reads each keypoint as the one at its index in {trained}; a model trained on keypoints "
                "in Human3.6M-17 order suits them"
            )
        if given == "blazepose" and self.bundled is not None and self.bundled not in VIDEO_MODELS:
            return (
                f"{KEYPOINT_SOURCES[given]} lifted by the bundled {self.bundled} model; the bundled "
                f"{VIDEO_MODELS[self.causal]} model, trained for jointpose video's tracks, lifts real footage better"
            )
        return None

    @property
    def device(self) -> torch.device:
        """The device the network runs on."""
        return model_device(self.model)

    @property
    def receptive_field(self) -> int:
        """Input frames behind each output pose (243 for the bundled models)."""
        return self.model.receptive_field()

    @property
    def causal(self) -> bool:
        """Whether each pose reads past frames only (real time), not future ones."""
        return self.model.causal

    @property
    def num_keypoints(self) -> int:
        """2D keypoints per frame the network reads (17 for Human3.6M-17)."""
        return self.model.num_joints_in

    @property
    def places_root_without_camera(self) -> bool:
        """Whether :meth:`predict_trajectory` works on pixels without a ``camera``: with a
        trajectory model, or for an ``"intrinsics"`` model through the camera its poses assume
        (:meth:`camera_for`), whose depths scale with the true focal length."""
        return self.trajectory_model is not None or self.normalization == "intrinsics"

    def to(self, device: str | torch.device) -> Lifter:
        """Move the network(s) to ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``...); returns this lifter."""
        self.model.to(resolve_device(str(device)))
        self._fused = None
        if self.trajectory_model is not None:
            self.trajectory_model.to(self.device)
        return self

    @classmethod
    def from_pretrained(cls, variant: str = "offline", *, device: str = "auto") -> Lifter:
        """The bundled model trained on CMU motion capture.

        Args:
            variant: ``"offline"`` (243 frames centred on each output), ``"causal"`` (past frames
                only), both trained on 2D derived from COCO-17 detections, or ``"video"`` (as
                ``"offline"``, trained on BlazePose's points as ``jointpose video`` detects them) and
                ``"video-causal"`` (its causal counterpart).
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``...

        Returns:
            A lifter with the model card's inference step (docs/model-card.md); its
            ``bundled`` is ``variant``.
        """
        with pretrained_file(variant) as path:
            lifter = cls.load(path, device=device)
        lifter.bundled = variant
        return lifter

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
        if check_path(path, "path").suffix.lower() == ".onnx":
            if str(device).lower() not in ("auto", "cpu") and not str(device).lower().startswith("cpu:"):
                raise JointposeError(
                    "{0} {name}: ONNX models run on onnxruntime's CPU provider", fields=("device",), name=device
                )
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
            normalization=loaded.normalization,
            align_2d=loaded.align_2d,
            input_layout=loaded.input_layout,
        )

    def save(self, path: str | Path, *, half: bool = False) -> Path:
        """Write the model(s) as safetensors (written to a temporary file, then renamed).

        Args:
            path: the ``.safetensors`` file to write.
            half: store float16 weights (half the size; outputs move by well under a millimetre).

        Returns:
            The path written.
        """
        return save_model(path, self._loaded("save as safetensors"), half=check_switch(half, "half"))

    def export_onnx(self, path: str | Path, *, streaming: bool = False) -> Path:
        """Write the pose model as ONNX for onnxruntime (the optional extra ``jointpose[onnx]``;
        docs/onnx.md), with its frame rate, keypoint symmetry and inference step in the file's
        metadata, so that :meth:`load` gives a lifter that lifts as this one does. A trajectory
        model is not exported.

        Args:
            path: the ``.onnx`` file to write (written to a temporary file, then renamed).
            streaming: one step of a causal model, its layer caches as inputs and outputs
                (:class:`StreamingLifter`), instead of the full-sequence graph.

        Returns:
            The path written.
        """
        return export_onnx(self._loaded("export again"), path, streaming=check_switch(streaming, "streaming"))

    def _loaded(self, purpose: str) -> LoadedModel:
        """The model(s) with what loading restores: frame rate, symmetry, inference step."""
        if isinstance(self.model, OnnxModel):
            raise JointposeError(f"{self.model.path}: an ONNX export holds no torch weights to {purpose}")
        return LoadedModel(
            self.model,
            self.trajectory_model,
            self.fps,
            (self.keypoints_left, self.keypoints_right),
            self.skeleton_fit,
            self.smooth,
            normalization=self.normalization,
            align_2d=self.align_2d,
            input_layout=self.input_layout,
        )

    def camera_for(self, image_size: tuple[int, int] | None, camera: Camera | None) -> Camera:
        """The camera pixel keypoints are read with: ``camera`` itself, else
        :meth:`Camera.assumed` for ``image_size`` (recorded in :attr:`assumed_camera`)."""
        if camera is not None:
            if not isinstance(camera, Camera):
                raise JointposeError(f"camera must be a jointpose Camera, got {type(camera).__name__}")
            if image_size is not None and tuple(image_size) != (camera.res_w, camera.res_h):
                raise JointposeError(
                    f"image_size {tuple(image_size)} differs from the camera's {camera.res_w}x{camera.res_h}"
                )
            self.assumed_camera = None
            return camera
        if image_size is None:
            raise JointposeError("pixel keypoints need {0} (width, height) or a camera", fields=("image_size",))
        w, h = check_image_size_pair(image_size, "image_size")
        if self.assumed_camera is None or (self.assumed_camera.res_w, self.assumed_camera.res_h) != (w, h):
            self.assumed_camera = Camera.assumed(w, h)  # built once per size: a stream asks every frame
        return self.assumed_camera

    def _screen_view_of(self, camera: Camera | None, normalized: bool) -> bool:
        """Whether pixel input seen by ``camera`` is moved into a ``"screen"`` model's training
        camera (:func:`screen_view`): only where the camera's intrinsics are known."""
        known = camera is not None and camera.focal_length is not None and camera.center is not None
        return self.normalization == "screen" and known and not normalized

    def assumed_camera_note(self) -> str | None:
        """What to tell the user when the last pixel input of an ``"intrinsics"`` model came
        without a camera (None otherwise)."""
        if self.assumed_camera is None or self.normalization != "intrinsics":
            return None
        camera = self.assumed_camera
        focal = camera.focal_length[0]
        if focal < focal_length_for_fov(max(camera.res_w, camera.res_h), DEFAULT_FOV_DEG) * (1 - 1e-9):
            assumed = (
                f"the narrowest field of view an image {camera.res_w} px wide admits (focal length {focal:.0f} px)"
            )
        else:
            assumed = (
                f"a {DEFAULT_FOV_DEG:g} degree field of view over the image's longer side (focal length {focal:.0f} px)"
            )
        return f"no focal length or field of view given (--focal-length, --fov): assumed {assumed}; depths scale with the true one"

    def normalize(
        self,
        keypoints: np.ndarray,
        image_size: tuple[int, int] | None,
        normalized: bool,
        camera: Camera | None = None,
    ) -> np.ndarray:
        """Validate (frames, J, 2|3) keypoints and map pixels to the model's input coordinates."""
        normalized = check_switch(normalized, "normalized")
        kp = numeric_array(keypoints, "keypoints")
        if kp.ndim != 3 or kp.shape[2] not in (2, 3) or kp.shape[1] != self.num_keypoints:
            raise JointposeError(f"keypoints must be (frames, {self.num_keypoints}, 2 or 3), got shape {kp.shape}")
        if len(kp) == 0:
            raise JointposeError("keypoints: empty sequence (0 frames)")
        kp = kp[..., :2]
        if not np.isfinite(kp).all():
            raise JointposeError(
                "keypoints hold NaN or inf values; fill missing joints first (load_keypoints interpolates them)"
            )
        if not normalized:
            seen_by = self.camera_for(image_size, camera)
            with np.errstate(over="ignore", invalid="ignore"):  # what the check below reports
                if self._screen_view_of(camera, normalized):
                    kp = screen_view(kp, camera)
                kp = normalize_keypoints(kp, seen_by, self.normalization)
        with np.errstate(over="ignore"):  # checked as the network computes (float32), where 1e300 is infinite
            check_bounded(kp.astype(np.float32), SCREEN_BOUND, "keypoints", OFF_SCREEN)
        return kp

    def predict(
        self,
        keypoints: np.ndarray | Keypoints2D | Sequence[np.ndarray | Keypoints2D],
        image_size: tuple[int, int] | None = None,
        *,
        camera: Camera | None = None,
        normalized: bool = False,
        progress: bool = False,
        source_layout: str = "h36m17",
    ) -> np.ndarray | list[np.ndarray]:
        """Lift 2D keypoint sequences to 3D.

        Args:
            keypoints: (frames, J, 2 or 3) keypoints in the model's input layout (Human3.6M-17
                for the bundled models; a third column, each keypoint's confidence in [0, 1]
                (NaN read as 0, values outside clipped), weighs the alignment with the 2D),
                pixels unless ``normalized``; or a
                :class:`~jointpose.data.keypoints.Keypoints2D` from ``load_keypoints``, whose
                confidence and source layout are used, and its image size and camera where
                its file records them (a ``jointpose video`` output); or a list of such sequences.
            image_size: (width, height) in pixels, for pixel input without ``camera`` (for a
                ``Keypoints2D`` that records one, it must be that one).
            camera: the camera the keypoints were seen with (intrinsics in pixels); without it
                an ``"intrinsics"`` model assumes :meth:`Camera.assumed` (:data:`DEFAULT_FOV_DEG`
                degrees over the longer side).
            normalized: the keypoints are already in the model's input coordinates.
            progress: show a progress bar over long sequences.
            source_layout: the layout array keypoints were converted from (a
                :data:`jointpose.data.layouts.LAYOUTS` name, ``Keypoints2D.source_layout``):
                the alignment with the 2D moves only the joints such keypoints mark
                (:func:`jointpose.data.layouts.aligned_joints`). A ``Keypoints2D`` brings its own.

        Returns:
            (frames, 17, 3) poses in metres, camera axes (x right, y down, z forward), root
            joint at 0; a list for a list.

        Raises:
            JointposeError: malformed or non-finite keypoints, an image size or camera other
                than the one a ``Keypoints2D`` records, or a non-finite prediction.
        """
        if isinstance(keypoints, (list, tuple)):
            kinds = {
                type(k).__name__
                for k in keypoints
                if not isinstance(k, Keypoints2D) and (isinstance(k, (list, tuple, str)) or np.ndim(k) == 0)
            }
            if kinds:
                raise JointposeError(
                    f"keypoints: a list holds one sequence per clip, each an array or Keypoints2D; got items of "
                    f"type {', '.join(sorted(kinds))} (for one clip given as nested lists, pass np.asarray(...))"
                )
            return [
                self.predict(
                    k, image_size, camera=camera, normalized=normalized, progress=progress, source_layout=source_layout
                )
                for k in keypoints
            ]
        normalized = check_switch(normalized, "normalized")  # before any use: "no" would read as true
        progress = check_switch(progress, "progress")
        if isinstance(keypoints, Keypoints2D):
            image_size, camera = self._recorded(keypoints, image_size, camera)
            keypoints, source_layout = _points_of(keypoints, normalized, self.fps), keypoints.source_layout
        align_joints = aligned_joints(source_layout)  # checked before the network runs
        keypoints = numeric_array(keypoints, "keypoints")  # read once: positions, and confidence below
        kp = self.normalize(keypoints, image_size, normalized, camera)
        poses = predict(
            self._inference_model(),
            kp,
            flip_test=self.flip_test,
            keypoints_left=self.keypoints_left,
            keypoints_right=self.keypoints_right,
            segment=SEGMENT,
            progress=progress,
        )
        rays = confidence = None  # a causal model's smooth and align_2d are 0 (refused above)
        if self.align_2d > 0:
            seen_by = camera if camera is not None or normalized else self.assumed_camera
            if self._screen_view_of(camera, normalized):
                seen_by = screen_camera(camera)  # the camera the points were moved into
            rays = rays_of(kp, seen_by, self.normalization)
            if keypoints.shape[2] == 3:
                confidence = np.nan_to_num(keypoints[..., 2])
        poses = (
            inference_step(
                poses,
                smooth=self.smooth,
                skeleton_fit=self.skeleton_fit,
                causal=self.causal,
                rays=rays,
                align=self.align_2d,
                align_sigma=alignment_sigma(self.fps),
                align_joints=align_joints,
                confidence=confidence,
            )
            .float()
            .numpy()
        )  # float32 also under an autocast to bf16
        check_finite(poses, "the network's 3D poses (its weights give no finite output)")
        return poses

    def _inference_model(self) -> FusedTemporalModel | OnnxModel:
        """The pose model with batch norm folded in, built on first use (weights are fixed);
        an ONNX export as it is (onnxruntime folds batch norm itself)."""
        if isinstance(self.model, OnnxModel):
            return self.model
        if self._fused is None:
            self._fused = FusedTemporalModel(self.model)
        return self._fused

    def lift_track(
        self,
        keypoints: Keypoints2D,
        image_size: tuple[int, int] | None = None,
        *,
        camera: Camera | None = None,
        fps: float | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Poses and root trajectory of a whole keypoint track, one per frame at its own rate.

        ``image_size`` and ``camera`` default to those the track's file records (a ``jointpose
        video`` output's). Each stretch between ``keypoints.switches`` (where a video track may
        have moved to another person) is lifted on its own, so no pose mixes two people's 2D
        and each gets its own bone lengths: resampled to the model's frame rate from ``fps``
        (default ``keypoints.fps``, else the model's), lifted (:meth:`predict`), its root placed
        where a camera is given or the model places it without one (:meth:`predict_trajectory`),
        and both resampled back along the bones (:func:`resample_lifted`).

        Returns:
            (frames, 17, 3) poses in metres as :meth:`predict` gives them, and the (frames, 3)
            root trajectory in metres, or None where neither ``camera`` nor the model places it.
        """
        if not isinstance(keypoints, Keypoints2D):
            raise JointposeError(
                f"keypoints must be a Keypoints2D (from load_keypoints), got {type(keypoints).__name__}; for an "
                "array at the model's frame rate use predict and predict_trajectory"
            )
        progress = check_switch(progress, "progress")
        image_size, camera = self._recorded(keypoints, image_size, camera)
        rate = check_fps(fps if fps is not None else keypoints.fps or self.fps, "fps")
        at_model_rate = same_rate(rate, self.fps)
        if not at_model_rate:
            check_resample(rate, self.fps, "the keypoints' fps")
        check_limit("track_parts", len(keypoints.switches) + 1, "keypoints: stretches between switches of person")
        check_switches(keypoints.switches, keypoints.num_frames, "keypoints.switches")
        lifted = []
        for part in person_parts(keypoints.num_frames, keypoints.switches):  # at most limit("track_parts")
            points = keypoints.points[part]
            seen = points if at_model_rate else resample(points, rate, self.fps)
            poses = self.predict(
                seen, image_size, camera=camera, progress=progress, source_layout=keypoints.source_layout
            )
            trajectory = None
            if camera is not None or self.places_root_without_camera:
                trajectory = self.predict_trajectory(seen, image_size, camera=camera, poses=poses)
            lifted.append(
                (poses, trajectory)
                if at_model_rate
                else resample_lifted(poses, trajectory, self.fps, rate, len(points))
            )
        poses = np.concatenate([part[0] for part in lifted])
        return poses, None if lifted[0][1] is None else np.concatenate([part[1] for part in lifted])

    def predict_trajectory(
        self,
        keypoints: np.ndarray | Keypoints2D,
        image_size: tuple[int, int] | None = None,
        *,
        camera: Camera | None = None,
        normalized: bool = False,
        poses: np.ndarray | None = None,
    ) -> np.ndarray:
        """The root joint's position in camera space, metres.

        The trajectory model's prediction where it reads the lens (an ``"intrinsics"`` model),
        or where no ``camera`` is given (a ``"screen"`` model's depth is then right only for the
        focal length it trained with); otherwise the root that puts the predicted pose onto the
        keypoints' rays through ``camera``, by least squares per frame
        (:func:`jointpose.geometry.cameras.root_trajectory`), with rays and path filtered in time
        (:func:`jointpose.geometry.alignment.root_path`): a per-frame fit turns each frame's
        keypoint noise into centimetres of depth. An offline model filters as its alignment
        with the 2D does (a Gaussian of 80 ms), a causal one over past frames only (40 ms).
        Without ``camera`` or a trajectory model, an ``"intrinsics"`` model reads pixels through
        the camera :meth:`predict` assumes (:attr:`assumed_camera`): the root's depth then scales
        with the true focal length, and its sideways motion does not depend on it.

        Args:
            keypoints: (frames, J, 2 or 3) keypoints or a ``Keypoints2D``, as for :meth:`predict`.
            image_size: (width, height) in pixels, for pixel input without ``camera``.
            camera: the camera's intrinsics (needed without a trajectory model).
            normalized: the keypoints are already in the model's input coordinates.
            poses: the predicted poses (frames, 17, 3) metres, if already computed.

        Returns:
            (frames, 3) root positions in metres, camera space.
        """
        normalized = check_switch(normalized, "normalized")
        source_layout = "h36m17"  # a Keypoints2D lifts with its own confidence and layout
        if isinstance(keypoints, Keypoints2D):
            image_size, camera = self._recorded(keypoints, image_size, camera)
            keypoints, source_layout = _points_of(keypoints, normalized, self.fps), keypoints.source_layout
        if self.trajectory_model is None or (camera is not None and self.normalization == "screen"):
            if camera is None and not self.places_root_without_camera:
                raise JointposeError(
                    "a root trajectory needs the camera's intrinsics (--focal-length or --fov) "
                    "or a model with a trajectory model (train with --trajectory)"
                )
            if normalized:
                raise JointposeError("a trajectory from the camera's intrinsics needs pixel keypoints")
            pixels = numeric_array(keypoints, "keypoints")
            if poses is None:
                poses = self.predict(keypoints, image_size, camera=camera, source_layout=source_layout)
            else:
                poses = numeric_array(poses, "poses")
                if poses.ndim != 3 or poses.shape[2] != 3:
                    raise JointposeError(f"poses must be (frames, joints, 3) metres, got shape {poses.shape}")
                check_finite(poses, "poses")
            camera = self.camera_for(image_size, camera)
            if pixels.shape[:2] != np.shape(poses)[:2]:
                raise JointposeError(
                    f"a trajectory from the camera needs one keypoint per predicted joint: keypoints "
                    f"{pixels.shape[:2]} vs poses {np.shape(poses)[:2]} (frames, joints)"
                )
            rays = normalize_keypoints(pixels[..., :2], camera, "intrinsics")
            root = root_path(poses, rays, root_sigma(self.fps, self.causal), causal=self.causal)
        else:
            kp = self.normalize(keypoints, image_size, normalized, camera)
            root = predict(
                self.trajectory_model,
                kp,
                flip_test=self.flip_test,
                keypoints_left=self.keypoints_left,
                keypoints_right=self.keypoints_right,
                root_relative=False,
                segment=SEGMENT,
            )[:, 0].numpy()
        check_finite(root, "the predicted trajectory")
        beyond = f"lie more than {MAX_DISTANCE_M:g} m away: the keypoints do not fit the camera"
        check_bounded(root, MAX_DISTANCE_M, "the predicted trajectory", f"{beyond} (its image size or focal length)")
        return root


def resample_poses(poses: np.ndarray, src_fps: float, dst_fps: float, out_count: int | None = None) -> np.ndarray:
    """(F, 17, 3) poses (metres) resampled in time from ``src_fps`` to ``dst_fps`` along their
    bones (frames as :func:`jointpose.data.resampling.resample`): the root and each bone's
    length linearly, each bone's direction as the normalised linear blend. A bone of one
    length keeps it, where blending the joints' positions would shorten a bone that turns
    between two frames (by 3% at 0.5 rad)."""
    bones = bone_vectors(poses)
    lengths = resample(np.linalg.norm(bones, axis=-1, keepdims=True), src_fps, dst_fps, out_count)
    blend = resample(bones, src_fps, dst_fps, out_count)
    norm = np.linalg.norm(blend, axis=-1, keepdims=True)
    kept = np.divide(blend * lengths, norm, out=blend.copy(), where=norm > 1e-12)  # a bone reversed: the blend
    return positions_from_bones(resample(poses[:, 0], src_fps, dst_fps, out_count), kept)


def resample_lifted(
    poses: np.ndarray, trajectory: np.ndarray | None, src_fps: float, dst_fps: float, count: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Poses lifted at ``src_fps`` and their root ``trajectory`` ((F, 3) metres, or None) as
    ``count`` frames at ``dst_fps``: the poses along their bones (:func:`resample_poses`),
    the trajectory linearly."""
    poses = resample_poses(poses, src_fps, dst_fps, count)
    return poses, None if trajectory is None else resample(trajectory, src_fps, dst_fps, count)


def screen_camera(camera: Camera) -> Camera:
    """The camera a ``"screen"`` model trained with, for an image of ``camera``'s size: focal
    length :data:`SCREEN_FOCAL_WIDTHS` image widths, principal point at the image centre."""
    return Camera.from_focal_length(camera.res_w, camera.res_h, SCREEN_FOCAL_WIDTHS * camera.res_w, id="screen")


def screen_view(pixels: np.ndarray, camera: Camera) -> np.ndarray:
    """Pixels (..., 2) seen by ``camera`` where a ``"screen"`` model's training cameras would
    see the same rays (:func:`screen_camera`), ``camera``'s lens distortion removed: the
    points then make the angles at the camera they make in the world."""
    model = screen_camera(camera)
    rays = normalize_keypoints(np.asarray(pixels, dtype=np.float64), camera, "intrinsics")  # undistorted
    return np.asarray(model.center) + rays * np.asarray(model.focal_length)


def _points_of(keypoints: Keypoints2D, normalized: bool, fps: float) -> np.ndarray:
    """A loaded keypoint sequence's (frames, 17, 3) pixels and confidence; ``normalized=True``
    is refused, as they are pixels, and so is a sequence whose file gives a frame rate other
    than the model's ``fps`` (it would be lifted too fast or too slow), or switches of person
    (:meth:`Lifter.lift_track` lifts both)."""
    if normalized:
        raise JointposeError("normalized=True: a Keypoints2D holds pixels; pass its arrays instead")
    if keypoints.fps is not None and not same_rate(keypoints.fps, fps):
        raise JointposeError(
            f"keypoints at {keypoints.fps:g} fps (their file's rate) for a model of {fps:g} fps: "
            "lift them with Lifter.lift_track, which resamples them to the model's rate and back"
        )
    if keypoints.switches:
        raise JointposeError(
            f"keypoints: a track that may move to another person at frames {keypoints.switches[:6]}: lift it with "
            "Lifter.lift_track, which lifts each stretch on its own"
        )
    return keypoints.points
