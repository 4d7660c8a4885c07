"""Real-time lifting with a causal model: push one 2D frame, get that frame's 3D pose.

A causal model's output at frame t depends on input frames t - receptive_field + 1 .. t.
:class:`StreamingLifter` gives every convolution a ring buffer of the last (k - 1) * d + 1
inputs its kernel (width k, dilation d) reads, so each new frame runs every layer for ONE
time step: read its k taps, one matrix-vector product (batch norm folded into the
weights), ReLU. Results equal the offline causal model's, including its start: before the
first frame the model sees receptive_field - 1 copies of it, exactly as the offline
model's edge padding.

Each step reads every weight once, so on a CPU its time is set by memory traffic:
``precision="bf16"`` stores the weights in bfloat16 (half the bytes) and
``precision="int8"`` in int8 with a scale per output channel (a quarter: the 1024-channel
243-frame model's 17 MB then stay in a 32 MB L3 cache), multiplying in int8 with exact
int32 sums. The benchmark reports each one's deviation from fp32 in mm.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jointpose.data.keypoints import Keypoints2D, check_confidence_threshold
from jointpose.data.layouts import usable
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.alignment import root_sigma
from jointpose.geometry.anatomy import (
    bone_lengths,
    limit_range_of_motion,
    set_bone_lengths,
)
from jointpose.geometry.cameras import Camera, normalize_keypoints, root_trajectory
from jointpose.geometry.filters import gaussian_kernel, past_half
from jointpose.inference.lifter import Lifter
from jointpose.inference.onnx import OnnxModel
from jointpose.model.temporal import TemporalModel
from jointpose.safeio import check_switch, numeric_array

_PRECISIONS = ("fp32", "bf16", "int8")


class StreamingConv(nn.Module):
    """One convolution (and its batch norm) computing only the newest time step.

    ``forward(x)`` takes the newest input (1, channels_in), stores it in the ring buffer and
    returns the output (1, channels_out) for that time step alone. ``precision`` is "fp32",
    "bf16" (weights and activations in bfloat16) or "int8" (weights as int8 with one
    scale per output channel; each step's input quantised to int8 with one scale, products
    summed exactly in int32).
    """

    def __init__(self, conv: nn.Conv1d, bn: nn.BatchNorm1d | None, precision: str = "fp32") -> None:
        super().__init__()
        weight = conv.weight.detach()  # (out, in, width)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0], device=weight.device)
        if bn is not None:
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            weight = weight * scale[:, None, None]
            bias = bn.bias.detach() - bn.running_mean * scale + bias * scale
        self.width, self.dilation = conv.kernel_size[0], conv.dilation[0]
        self.span = (self.width - 1) * self.dilation + 1
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        weight = weight.permute(0, 2, 1).reshape(weight.shape[0], -1)  # (out, width * in): taps oldest first
        if precision == "int8":
            step = weight.abs().amax(dim=1).clamp_min(1e-12) / 127
            weight = torch.round(weight / step[:, None]).to(torch.int8)
            self.register_buffer("scale", step)
        self.register_buffer("weight", weight.to(self.dtype if precision != "int8" else torch.int8).contiguous())
        self.register_buffer("bias", bias.to(self.dtype))
        # Plain (non-buffer) references and counter: the per-frame path avoids nn.Module's
        # slower attribute lookup and assignment.
        self._int8_tensors = (self.weight.t(), getattr(self, "scale", None), self.bias)
        # int8 on CPU: torch._int_mm (on CUDA it needs more than 16 rows: weights dequantised
        # once here, so each step is one plain product).
        self._int8_cpu = precision == "int8" and self.weight.device.type == "cpu"
        self._linear_weight = (
            self.weight.to(self.dtype) * self.scale[:, None]
            if precision == "int8" and not self._int8_cpu
            else self.weight
        )
        # Inputs are kept per phase (time mod dilation): a kernel's taps are consecutive inputs
        # of one phase. Each input is written twice, at slots j and j + width of its phase's
        # ring, so the taps are always the contiguous rows j + 1 .. j + width: a ready-made
        # view for every step of the cycle, no gathering or index arithmetic per frame.
        self.register_buffer(
            "buffer",
            torch.zeros(self.dilation, 2 * self.width, conv.in_channels, dtype=self.dtype, device=weight.device),
        )
        cycle = [(t % self.dilation, t // self.dilation) for t in range(self.dilation * self.width)]
        self._writes = [self.buffer[r, j : j + self.width + 1 : self.width] for r, j in cycle]
        self._taps = [self.buffer[r, j + 1 : j + 1 + self.width].view(1, -1) for r, j in cycle]
        self._cursor = [-1]  # this step's place in the cycle of tap views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution's output (1, out) for the newest input ``x`` (1, in), from its cache."""
        if self.span == 1:
            taps = x  # a 1x1 convolution needs no past
        else:
            p = self._cursor[0] = (self._cursor[0] + 1) % len(self._taps)
            self._writes[p].copy_(x)
            taps = self._taps[p]
        if self._int8_cpu:
            # One scale for this step's input: int8 products summed exactly in int32.
            weight_t, scale, bias = self._int8_tensors
            step = max(float(torch.linalg.vector_norm(taps, float("inf"))), 1e-12) / 127
            products = torch._int_mm(torch.mul(taps, 1 / step).round_().to(torch.int8), weight_t)
            return torch.addcmul(bias, products, scale, value=step)
        return F.linear(taps, self._linear_weight, self.bias)


class _Stream(nn.Module):
    """The causal model as streaming layers, for one input stream."""

    def __init__(self, model: TemporalModel, precision: str) -> None:
        super().__init__()
        self.expand = StreamingConv(model.expand_conv, model.expand_bn, precision)
        self.blocks = nn.ModuleList(
            StreamingConv(conv, bn, precision) for conv, bn in zip(model.layers_conv, model.layers_bn)
        )
        self.shrink = StreamingConv(model.shrink, None, precision)
        self.dtype = self.expand.dtype
        self.shape = (model.num_joints_out, model.out_features)
        self._pairs = list(zip(self.blocks[0::2], self.blocks[1::2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pose (joints_out, 3) of the newest frame ``x`` (joints_in, 2), float32."""
        h = torch.relu(self.expand(x.reshape(1, -1).to(self.dtype)))
        for dilated, pointwise in self._pairs:
            h = h + torch.relu(pointwise(torch.relu(dilated(h))))  # residual: the newest input (causal)
        return self.shrink(h).float().reshape(self.shape)


class StreamingLifter:
    """Frame-by-frame inference with a causal :class:`TemporalModel` (or a causal :class:`Lifter`)."""

    def __init__(
        self,
        model: TemporalModel | Lifter,
        *,
        flip_test: bool = False,
        precision: str = "fp32",
        skeleton_fit: bool | None = None,
        confidence_threshold: float | None = None,
    ) -> None:
        """Stream a causal model one frame at a time, each layer caching the frames it still needs.

        Args:
            model: a causal pose network, or a causal :class:`Lifter` (its input symmetry and
                inference step are used).
            flip_test: also stream the mirrored input and average (twice the work).
            precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` weights (torch models only).
            skeleton_fit: each bone takes its mean length over the frames pushed so far, left
                and right sharing theirs, as ``Lifter.predict`` does for a causal model
                (default: the lifter's setting).
            confidence_threshold: hold each keypoint whose confidence (a frame's third column)
                is below this (or 0), or that is NaN, at its last position above it (0-1; e.g.
                0.3, as ``jointpose infer``): the causal counterpart of ``load_keypoints``'
                filling. A keypoint never confident yet stands at the mean of the frame's
                confident keypoints; a frame with none is refused. Default None: every keypoint
                as given (as ``Lifter.predict``).

        Raises:
            JointposeError: a model that is not causal, or an unknown precision.
        """
        lifter = model if isinstance(model, Lifter) else Lifter(model)
        if not lifter.causal:
            raise JointposeError(
                "streaming needs a causal model (train with --causal, or Lifter.from_pretrained('causal'))"
            )
        if precision not in _PRECISIONS:
            raise JointposeError(f"precision must be one of {', '.join(_PRECISIONS)}, got '{precision}'")
        if precision == "int8" and not hasattr(torch, "_int_mm"):
            raise JointposeError(f"precision 'int8' needs torch >= 2.3 (this is {torch.__version__})")
        self.lifter = lifter
        self.model = lifter.model.eval()
        if confidence_threshold is not None:
            check_confidence_threshold(confidence_threshold)
        self.flip_test = check_switch(flip_test, "flip_test")
        self.skeleton_fit = lifter.skeleton_fit if skeleton_fit is None else check_switch(skeleton_fit, "skeleton_fit")
        self.confidence_threshold = confidence_threshold
        self.precision = precision
        if isinstance(self.model, OnnxModel) and precision != "fp32":
            raise JointposeError(f"precision '{precision}' applies to torch models; an ONNX export runs in fp32")
        self._perm_2d = skeleton.flip_permutation(
            self.model.num_joints_in, lifter.keypoints_left, lifter.keypoints_right
        )
        self._perm_3d = skeleton.output_flip(self.model.num_joints_out)
        sigma = root_sigma(lifter.fps, causal=True)
        self._root_taps = past_half(gaussian_kernel(sigma, dtype=torch.float64)).numpy()  # oldest first
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame starts a new sequence."""
        with torch.no_grad():
            self.streams = [
                self.model.new_stream() if isinstance(self.model, OnnxModel) else _Stream(self.model, self.precision)
                for _ in range(2 if self.flip_test else 1)
            ]
        self.frames_seen = 0
        self._length_sum = torch.zeros(self.model.num_joints_out - 1, 1, device=self.lifter.device)  # per bone
        self._held: np.ndarray | None = None  # (J, 2) each keypoint's last confident position (NaN: none yet)
        self._frame: np.ndarray | None = None  # the last frame lifted, its missing keypoints held
        self._rays: np.ndarray | None = None  # the last frames' rays, oldest first (push_with_root)
        self._roots: np.ndarray | None = None  # the last frames' least-squares roots, oldest first

    @property
    def layers(self) -> list[StreamingConv]:
        """The streaming convolutions of the main stream, input to output."""
        stream = self.streams[0]
        return [stream.expand, *stream.blocks, stream.shrink]

    @torch.no_grad()
    def push(
        self,
        keypoints: np.ndarray,
        image_size: tuple[int, int] | None = None,
        *,
        camera: Camera | None = None,
        normalized: bool = False,
    ) -> np.ndarray:
        """Lift the next frame.

        Args:
            keypoints: (J, 2 or 3) keypoints of one frame, pixels unless ``normalized``.
            image_size: (width, height) in pixels, for pixel input without ``camera``.
            camera: the camera's intrinsics, as for :meth:`Lifter.predict`.
            normalized: the keypoints are already in the model's input coordinates.

        Returns:
            (J, 3) pose of this very frame (the model's output joints: 17 Human3.6M, 15 HumanEva-I)
            in metres, camera axes, root joint at 0.

        Raises:
            JointposeError: a frame whose positions are not finite in float32 (without
                ``confidence_threshold``; with it, a frame with no confident keypoint) or lie
                far off screen (``Lifter.normalize``), raised before any state changes: the
                stream goes on as if it had never been pushed.
        """
        if isinstance(keypoints, Keypoints2D):
            raise JointposeError("push takes one frame: pass a Keypoints2D's frames one by one (kp.points[i])")
        kp = numeric_array(keypoints, "keypoints")
        joints = self.model.num_joints_in
        if kp.ndim != 2 or len(kp) != joints or kp.shape[1] not in (2, 3):
            raise JointposeError(f"push takes one frame ({joints}, 2 or 3), got shape {kp.shape}")
        held = self._held
        if self.confidence_threshold is not None:
            kp, held = self._hold_missing(kp)
        x = torch.as_tensor(
            self.lifter.normalize(kp[None], image_size, normalized, camera)[0],
            dtype=torch.float32,
            device=self._length_sum.device,
        )
        if self.frames_seen == 0:
            # The offline causal model edge-pads the start with receptive_field - 1 copies.
            for _ in range(self.model.receptive_field() - 1):
                self._step(x)
        self.frames_seen += 1
        pose = self._step(x)
        if not torch.isfinite(pose).all():
            raise JointposeError(
                f"frame {self.frames_seen - 1}: the model's output is NaN or infinite; the stream's "
                "state is no longer usable (call reset())"
            )
        if self.skeleton_fit:
            self._length_sum += bone_lengths(pose)[:, None]
            pose = limit_range_of_motion(set_bone_lengths(pose[None], self._length_sum / self.frames_seen)[0])
        self._held, self._frame = held, kp
        return pose.cpu().numpy()

    def _hold_missing(self, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frame ``kp`` with each keypoint below ``confidence_threshold`` (or NaN) at its
        last confident position, or, before it was ever confident, at the mean of the frame's
        confident keypoints; and the positions held after it."""
        xy = kp[:, :2]
        missing = ~np.isfinite(xy).all(axis=1)
        if kp.shape[1] == 3:  # the rule of load_keypoints' filling
            missing |= ~usable(np.nan_to_num(kp[:, 2], nan=0.0), self.confidence_threshold)
        if missing.all():
            raise JointposeError(
                f"keypoints: no keypoint of the frame is confident (confidence_threshold "
                f"{self.confidence_threshold}); the stream holds none yet to stand for them"
                if self._held is None
                else "keypoints: no keypoint of the frame is confident; push the next frame"
            )
        held = np.full_like(xy, np.nan) if self._held is None else self._held
        known = np.isfinite(held).all(axis=1)
        filled = kp.copy()
        filled[missing & known, :2] = held[missing & known]
        filled[missing & ~known, :2] = xy[~missing].mean(axis=0)  # never confident yet: the body's centre
        return filled, np.where(missing[:, None], held, xy)

    def push_with_root(
        self,
        keypoints: np.ndarray,
        image_size: tuple[int, int] | None = None,
        *,
        camera: Camera | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lift the next frame (:meth:`push`) and place its root joint in the camera.

        Args:
            keypoints: (J, 2 or 3) pixel keypoints of one frame.
            image_size: (width, height) in pixels, for an ``"intrinsics"`` model without ``camera``
                (read through the camera its poses assume; the root's depth then scales with
                the true focal length).
            camera: the camera's intrinsics (needed for a ``"screen"`` model).

        Returns:
            The frame's pose (J, 3), as :meth:`push` returns it, and its root's camera-space
            position (3,) in metres: the least-squares root that puts the pose onto the
            keypoints' rays, rays and root filtered over past frames only as
            ``Lifter.predict_trajectory`` does for a causal model (the half of a Gaussian of
            40 ms, :func:`jointpose.geometry.alignment.root_path`). Pushed one after another,
            the frames of a sequence get the roots ``predict_trajectory`` gives for the poses
            returned where it places the root through the camera (a lifter without a
            trajectory model); frames pushed with :meth:`push` alone do not enter the filter.
            A trajectory model, if the lifter has one, is not used.

        Raises:
            JointposeError: as :meth:`push`, and a ``"screen"`` model without ``camera`` or a
                model whose keypoints are not its joints, before any state changes.
        """
        if camera is None and self.lifter.normalization == "screen":
            raise JointposeError("a root position from a stream needs the camera's intrinsics (camera=...)")
        if self.model.num_joints_in != self.model.num_joints_out:
            raise JointposeError(
                f"a root position from a stream needs one keypoint per predicted joint: the model reads "
                f"{self.model.num_joints_in} keypoints and predicts {self.model.num_joints_out} joints"
            )
        pose = self.push(keypoints, image_size, camera=camera)
        seen_by = self.lifter.camera_for(image_size, camera)
        rays = normalize_keypoints(self._frame[None, :, :2], seen_by, "intrinsics")
        taps = self._root_taps
        if self._rays is None or self.frames_seen == 1:  # the first frame stands for the frames before it
            self._rays = np.repeat(rays, len(taps), axis=0)
        self._rays = np.concatenate([self._rays[1:], rays])
        root = root_trajectory(pose[None].astype(np.float64), np.einsum("k,kjc->jc", taps, self._rays)[None])
        if self._roots is None or self.frames_seen == 1:
            self._roots = np.repeat(root, len(taps), axis=0)
        self._roots = np.concatenate([self._roots[1:], root])
        return pose, taps @ self._roots

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        pose = self.streams[0](x)
        if self.flip_test:
            mirrored = self.streams[1](skeleton.flip_poses(x, self._perm_2d))
            pose = (pose + skeleton.flip_poses(mirrored, self._perm_3d)) / 2
        return pose - pose[:1]
