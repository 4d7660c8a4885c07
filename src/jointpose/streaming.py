"""Real-time lifting with a causal model: push one 2D frame, get that frame's 3D pose.

A causal model's output at frame t depends on input frames t - receptive_field + 1 .. t.
:class:`StreamingLifter` keeps, for every convolution, the few past activations its
(dilated) kernel reads, so each new frame runs every layer for ONE time step: a kernel of
width k and dilation d reads a window of (k - 1) * d + 1 cached activations and produces a
single output. The layers are the model's own modules in eval mode, so results equal the
offline causal model's, including its start: before the first frame the model sees
receptive_field - 1 copies of it, exactly as the offline model's edge padding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import skeleton
from .errors import JointposeError
from .lifter import Lifter
from .model import TemporalModel


class _LayerCache:
    """The last ``length`` activations (1, channels, length) feeding one convolution."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.window: torch.Tensor | None = None

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Append one time step (1, channels, 1); return the window ending with it."""
        if self.window is None:
            self.window = x.expand(-1, -1, self.length).clone()
        else:
            self.window = torch.cat([self.window[:, :, 1:], x], dim=2)
        return self.window


class StreamingLifter:
    """Frame-by-frame inference with a causal :class:`TemporalModel` (or a causal :class:`Lifter`)."""

    def __init__(self, model: TemporalModel | Lifter, *, flip_test: bool = False) -> None:
        lifter = model if isinstance(model, Lifter) else Lifter(model)
        if not lifter.causal:
            raise JointposeError("streaming needs a causal model (train with --causal, or Lifter.from_pretrained('causal'))")
        self.lifter = lifter
        self.model = lifter.model.eval()
        self.flip_test = flip_test
        self._perm_2d = skeleton.flip_permutation(self.model.num_joints_in, lifter.keypoints_left, lifter.keypoints_right)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame starts a new sequence."""
        widths, dilations = self.model.filter_widths, [1]
        for w in widths[:-1]:
            dilations.append(dilations[-1] * w)
        self._caches = [[_LayerCache((w - 1) * d + 1) for w, d in zip(widths, dilations)] for _ in range(2)]
        self.frames_seen = 0

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
        pose = self._forward(x, self._caches[0])
        if self.flip_test:
            mirrored = self._forward(skeleton.flip_poses(x, self._perm_2d), self._caches[1])
            pose = (pose + skeleton.flip_poses(mirrored)) / 2
        return pose - pose[:1]

    def _forward(self, x: torch.Tensor, caches: list[_LayerCache]) -> torch.Tensor:
        """One time step through every layer: (J, 2) -> (J_out, 3)."""
        m = self.model
        h = caches[0].push(x.reshape(1, -1, 1))
        h = F.relu(m.expand_bn(m.expand_conv(h)))  # (1, channels, 1)
        for i in range(len(m.filter_widths) - 1):
            window = caches[i + 1].push(h)
            y = F.relu(m.layers_bn[2 * i](m.layers_conv[2 * i](window)))
            h = h + F.relu(m.layers_bn[2 * i + 1](m.layers_conv[2 * i + 1](y)))  # residual: newest input
        return m.shrink(h).reshape(m.num_joints_out, m.out_features)
