"""Real-time lifting with a causal model: push one 2D frame, get that frame's 3D pose.

A causal model's output at frame t depends on input frames t - receptive_field + 1 .. t.
:class:`StreamingLifter` gives every convolution a ring buffer of the last (k - 1) * d + 1
inputs its kernel (width k, dilation d) reads, so each new frame runs every layer for ONE
time step: gather k taps, one matrix-vector product (batch norm folded into the weights),
ReLU. Results equal the offline causal model's, including its start: before the first
frame the model sees receptive_field - 1 copies of it, exactly as the offline model's
edge padding. ``precision="bf16"`` stores the weights in bfloat16 (half the memory
traffic per frame; the benchmark reports its deviation from fp32 in mm).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import skeleton
from .errors import JointposeError
from .lifter import Lifter
from .model import TemporalModel

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class StreamingConv(nn.Module):
    """One convolution (and its batch norm) computing only the newest time step.

    ``forward(x)`` takes the newest input (channels_in,), stores it in the ring buffer and
    returns the output (channels_out,) for that time step alone.
    """

    def __init__(self, conv: nn.Conv1d, bn: nn.BatchNorm1d | None, dtype: torch.dtype) -> None:
        super().__init__()
        weight = conv.weight.detach()  # (out, in, width)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0], device=weight.device)
        if bn is not None:
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            weight = weight * scale[:, None, None]
            bias = bn.bias.detach() - bn.running_mean * scale + bias * scale
        self.width, self.dilation = conv.kernel_size[0], conv.dilation[0]
        self.span = (self.width - 1) * self.dilation + 1
        # Taps oldest first, each a block of input channels: (out, width * in).
        self.register_buffer("weight", weight.permute(0, 2, 1).reshape(weight.shape[0], -1).to(dtype).contiguous())
        self.register_buffer("bias", bias.to(dtype))
        self.register_buffer("buffer", torch.zeros(self.span, conv.in_channels, dtype=dtype, device=weight.device))
        self.position = -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.position = (self.position + 1) % self.span
        self.buffer[self.position] = x
        taps = (self.position - self.dilation * torch.arange(self.width - 1, -1, -1)) % self.span
        return F.linear(self.buffer[taps.to(self.buffer.device)].reshape(-1), self.weight, self.bias)


class _Stream(nn.Module):
    """The causal model as streaming layers, for one input stream."""

    def __init__(self, model: TemporalModel, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.expand = StreamingConv(model.expand_conv, model.expand_bn, dtype)
        self.blocks = nn.ModuleList(
            StreamingConv(conv, bn, dtype) for conv, bn in zip(model.layers_conv, model.layers_bn))
        self.shrink = StreamingConv(model.shrink, None, dtype)
        self.shape = (model.num_joints_out, model.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.expand(x.reshape(-1).to(self.dtype)))
        for i in range(0, len(self.blocks), 2):
            y = F.relu(self.blocks[i](h))
            h = h + F.relu(self.blocks[i + 1](y))  # residual: the newest input (causal)
        return self.shrink(h).float().reshape(self.shape)


class StreamingLifter:
    """Frame-by-frame inference with a causal :class:`TemporalModel` (or a causal :class:`Lifter`)."""

    def __init__(self, model: TemporalModel | Lifter, *, flip_test: bool = False, precision: str = "fp32") -> None:
        lifter = model if isinstance(model, Lifter) else Lifter(model)
        if not lifter.causal:
            raise JointposeError("streaming needs a causal model (train with --causal, or Lifter.from_pretrained('causal'))")
        if precision not in _DTYPES:
            raise JointposeError(f"precision must be one of {', '.join(_DTYPES)}, got '{precision}'")
        self.lifter = lifter
        self.model = lifter.model.eval()
        self.flip_test = flip_test
        self.precision = precision
        self._perm_2d = skeleton.flip_permutation(self.model.num_joints_in, lifter.keypoints_left, lifter.keypoints_right)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame starts a new sequence."""
        with torch.no_grad():
            self.streams = [_Stream(self.model, _DTYPES[self.precision]) for _ in range(2 if self.flip_test else 1)]
        self.frames_seen = 0

    @property
    def layers(self) -> list[StreamingConv]:
        """The streaming convolutions of the main stream, input to output."""
        stream = self.streams[0]
        return [stream.expand, *stream.blocks, stream.shrink]

    @torch.no_grad()
    def push(self, keypoints: np.ndarray, image_size: tuple[int, int] | None = None, *, normalized: bool = False) -> np.ndarray:
        """One frame of 2D keypoints (J, 2|3) -> its 3D pose (17, 3), metres, root at 0."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 2:
            raise JointposeError(f"push takes one frame (joints, 2 or 3), got shape {kp.shape}")
        x = torch.as_tensor(self.lifter.normalize(kp[None], image_size, normalized)[0], dtype=torch.float32,
                            device=self.lifter.device)
        if self.frames_seen == 0:
            # The offline causal model edge-pads the start with receptive_field - 1 copies.
            for _ in range(self.model.receptive_field() - 1):
                self._step(x)
        self.frames_seen += 1
        return self._step(x).cpu().numpy()

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        pose = self.streams[0](x)
        if self.flip_test:
            mirrored = self.streams[1](skeleton.flip_poses(x, self._perm_2d))
            pose = (pose + skeleton.flip_poses(mirrored)) / 2
        return pose - pose[:1]
