"""Temporal dilated convolutional network lifting 2D keypoint sequences to 3D poses.

The architecture follows VideoPose3D (Pavllo et al., CVPR 2019): an expanding convolution,
then residual blocks of (dilated convolution, batch norm, ReLU, dropout, 1x1 convolution,
batch norm, ReLU, dropout), then a 1x1 convolution to 3D joints. With filter widths
``(3, 3, 3, 3, 3)`` the dilations are 1, 3, 9, 27, 81 and the receptive field 243 frames.

Two models share one state dict (parameter names follow VideoPose3D's):

* :class:`TemporalModel` runs dilated convolutions over a whole sequence: input
  ``(batch, frames, joints, 2)`` gives ``(batch, frames - receptive_field + 1, joints_out, 3)``.
* :class:`StridedTemporalModel` computes exactly one output frame from a window of
  ``receptive_field`` frames, replacing each dilated convolution by a strided one so no
  intermediate frame is computed that the output does not need. It is what training uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jointpose.errors import JointposeError, brief

# The largest model any file may hold, and any run may train or build: hidden channels,
# levels (filter widths) of at most this width each, and a receptive field (their product) of
# at most 3**8 frames, 27 times VideoPose3D's 243 (the padding and activations of inference
# grow with it).
MAX_CHANNELS = 16384
MAX_LEVELS = 8
MAX_FILTER_WIDTH = 15
MAX_RECEPTIVE_FIELD = 3**8
MAX_DROPOUT = 0.999  # a larger probability leaves the network next to nothing to train


def receptive_field(filter_widths: Sequence[int]) -> int:
    """Input frames one output frame depends on, for odd ``filter_widths``: their product
    (the dilation of each level is the product of the widths before it)."""
    return math.prod(int(w) for w in filter_widths)


class TemporalModel(nn.Module):
    """Full-sequence temporal model (evaluation and inference)."""

    def __init__(
        self,
        filter_widths: Sequence[int],
        *,
        num_joints_in: int = 17,
        in_features: int = 2,
        num_joints_out: int = 17,
        out_features: int = 3,
        channels: int = 1024,
        dropout: float = 0.25,
        causal: bool = False,
    ) -> None:
        """Args:
        filter_widths: kernel width of each level, all odd, e.g. (3, 3, 3) for 27 frames.
        num_joints_in / in_features: input joints and coordinates per joint (2D: 2).
        num_joints_out / out_features: output joints and coordinates (3D: 3).
        channels: width of every hidden layer (1024 default, 2048 for the deeper variant), at
            most :data:`MAX_CHANNELS`.
        dropout: dropout probability after every hidden layer (0-1).
        causal: output frame t sees only input frames <= t (for real-time use).

        Raises :class:`~jointpose.errors.JointposeError` naming the argument when it is of
        the wrong type or beyond the ``MAX_*`` bounds.
        """
        super().__init__()
        if hasattr(filter_widths, "tolist"):  # a numpy array or tensor of widths
            filter_widths = filter_widths.tolist()
        if isinstance(filter_widths, Sequence) and not isinstance(filter_widths, str):
            filter_widths = tuple(_plain(w) for w in filter_widths)
        args = dict(
            filter_widths=filter_widths,
            num_joints_in=_plain(num_joints_in),
            in_features=_plain(in_features),
            num_joints_out=_plain(num_joints_out),
            out_features=_plain(out_features),
            channels=_plain(channels),
            dropout=_plain(dropout),
            causal=_plain(causal),
        )
        _check_args(args, "TemporalModel", _CONSTRUCTOR_ARGS)
        filter_widths, num_joints_in, in_features = args["filter_widths"], args["num_joints_in"], args["in_features"]
        num_joints_out, out_features, channels = args["num_joints_out"], args["out_features"], args["channels"]
        dropout, causal = float(args["dropout"]), args["causal"]
        self.filter_widths = filter_widths
        self.num_joints_in, self.in_features = num_joints_in, in_features
        self.num_joints_out, self.out_features = num_joints_out, out_features
        self.channels, self.dropout, self.causal = channels, dropout, causal

        self.expand_conv = nn.Conv1d(num_joints_in * in_features, channels, filter_widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=0.1)
        convs, bns = [], []
        self.pad = [filter_widths[0] // 2]
        dilation = filter_widths[0]
        for width in filter_widths[1:]:
            self.pad.append((width - 1) * dilation // 2)
            convs.append(nn.Conv1d(channels, channels, width, dilation=dilation, bias=False))
            convs.append(nn.Conv1d(channels, channels, 1, bias=False))
            bns.append(nn.BatchNorm1d(channels, momentum=0.1))
            bns.append(nn.BatchNorm1d(channels, momentum=0.1))
            dilation *= width
        self.layers_conv = nn.ModuleList(convs)
        self.layers_bn = nn.ModuleList(bns)
        self.shrink = nn.Conv1d(channels, num_joints_out * out_features, 1)
        # A causal model takes each residual from the last frame of the window, not the centre.
        self.causal_shift = [p if causal else 0 for p in self.pad]

    def receptive_field(self) -> int:
        """Number of input frames that one output frame depends on."""
        return receptive_field(self.filter_widths)

    def set_bn_momentum(self, momentum: float) -> None:
        """Set the running-statistics momentum of every batch norm layer (synchronised ones too)."""
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum

    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the dtype of the network's weights; an input it cannot read (not a tensor,
        another shape than (batch, frames, joints_in, in_features)) raises :class:`JointposeError`."""
        shape = f"(batch, frames, {self.num_joints_in}, {self.in_features})"
        if not torch.is_tensor(x):
            raise JointposeError(f"expected input {shape} as a torch tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[2] != self.num_joints_in or x.shape[3] != self.in_features:
            raise JointposeError(f"expected input {shape}, got {tuple(x.shape)}")
        return x.to(self.expand_conv.weight.dtype)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.dropout, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift a window of keypoints (no padding: each output needs a whole receptive field).

        Args:
            x: (batch, frames, joints_in, 2) normalised 2D keypoints (the coordinates the model
                trained on: screen coordinates, or rays through the camera), read in the
                dtype of the model's weights.

        Returns:
            (batch, frames - receptive_field + 1, joints_out, 3) root-relative joints, metres.
        """
        x = self._checked(x)
        if x.shape[1] < self.receptive_field():
            raise JointposeError(
                f"sequence of {x.shape[1]} frames is shorter than the receptive field "
                f"({self.receptive_field()}); pad it first"
            )
        batch = x.shape[0]
        x = x.reshape(batch, x.shape[1], -1).permute(0, 2, 1)  # (batch, channels_in, frames)
        x = self._drop(F.relu(self.expand_bn(self.expand_conv(x))))
        for i in range(len(self.pad) - 1):
            pad, shift = self.pad[i + 1], self.causal_shift[i + 1]
            res = x[:, :, pad + shift : x.shape[2] - pad + shift]
            x = self._drop(F.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x))))
            x = res + self._drop(F.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x))))
        x = self.shrink(x).permute(0, 2, 1)  # (batch, frames_out, joints_out * 3)
        return x.reshape(batch, -1, self.num_joints_out, self.out_features)


class StridedTemporalModel(TemporalModel):
    """One output frame per window of ``receptive_field`` frames (training model).

    Same parameters as :class:`TemporalModel`; each dilated convolution becomes a strided
    one, computed as a matrix product on channels-last activations (a reshape, no copy);
    batch norm layers see (rows, channels) matrices, which BatchNorm1d accepts as they are.
    """

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Windows of normalised 2D keypoints (batch, receptive_field, joints_in, 2) -> the
        window's 3D joints in metres, root-relative (batch, 1, joints_out, 3).

        ``groups`` (batch,) integer labels below ``batch``: in training, windows with one label share
        their dropout masks, so one sub-network predicts them all (a chunk of consecutive
        frames); None draws a mask per window, as usual.
        """
        x = self._checked(x)
        if x.shape[1] != self.receptive_field():
            raise ValueError(
                f"strided model takes windows of exactly {self.receptive_field()} frames, got {x.shape[1]}"
            )
        batch = x.shape[0]
        drop = self._drop
        if groups is not None and self.training and self.dropout > 0:
            if groups.shape != (batch,):
                raise ValueError(f"groups must hold one label per window ({batch},), got {tuple(groups.shape)}")
            # Masks for the groups that exist where the labels can be read without a device
            # sync (the CPU), else one per window (labels are below that); counted once per step.
            count = int(groups.max()) + 1 if groups.device.type == "cpu" else batch
            index = groups.to(x.device)
            drop = lambda h: _grouped_dropout(h, index, count, self.dropout)  # noqa: E731
        # Rows of x are consecutive frames, so grouping `width` rows is one strided window.
        x = x.reshape(-1, self.filter_widths[0] * self.num_joints_in * self.in_features)
        x = drop(F.relu(self.expand_bn(x @ _flat_weight(self.expand_conv).t())))
        for i, width in enumerate(self.filter_widths[1:]):
            windows = x.reshape(-1, width, self.channels)
            res = windows[:, (width // 2) + (width // 2 if self.causal else 0)]
            x = windows.reshape(-1, width * self.channels) @ _flat_weight(self.layers_conv[2 * i]).t()
            x = drop(F.relu(self.layers_bn[2 * i](x)))
            x = x @ self.layers_conv[2 * i + 1].weight[:, :, 0].t()
            x = res + drop(F.relu(self.layers_bn[2 * i + 1](x)))
        x = F.linear(x, self.shrink.weight[:, :, 0], self.shrink.bias)
        return x.reshape(batch, 1, self.num_joints_out, self.out_features)


def _grouped_dropout(x: torch.Tensor, groups: torch.Tensor, count: int, p: float) -> torch.Tensor:
    """Dropout of probability ``p`` on (windows * positions, channels) activations, one mask
    (positions, channels) per group of windows, ``groups`` (windows,) labelling each on
    ``x``'s device, every label below ``count`` (masks drawn)."""
    rows = x.reshape(len(groups), -1, x.shape[-1])
    masks = _scaled_mask(rows[:count], p)
    return (rows * masks.index_select(0, groups)).reshape(x.shape)


def _scaled_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout mask shaped like ``x``: 0 with probability ``p`` (to the nearest 1/65536),
    else the scale that keeps the mean.

    Drawn as 16-bit uniform integers, four from each 64-bit random number, compared with
    ``p``: on the CPU this is ~2.6x faster than comparing ``torch.rand``'s floats, which in
    turn beat the Bernoulli sampler behind ``F.dropout`` (docs/tuning.md, "Faster CPU
    dropout masks")."""
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)  # all 64 bits
    drop = min(round(p * 65536), 65535)  # p < 1
    keep = words.view(torch.int16)[:n].reshape(x.shape) >= drop - 32768
    return keep.to(x.dtype).mul_(65536.0 / (65536 - drop))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` (probability ``p``), with the faster mask of :func:`_scaled_mask` on the CPU."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    return x * _scaled_mask(x, p)


def network_name(network: object) -> str:
    """``network``'s type as an error names it; a wrapper around a :class:`TemporalModel`
    (DistributedDataParallel, DataParallel, ``torch.compile``) points to the network inside."""
    name = type(network).__name__
    for attribute in ("module", "_orig_mod"):
        if isinstance(getattr(network, attribute, None), TemporalModel):
            return f"{name}, a wrapper: pass its .{attribute}"
    return name


def _flat_weight(conv: nn.Conv1d) -> torch.Tensor:
    """Conv weight (out, in, width) as a (out, width * in) matrix for frame-major windows."""
    return conv.weight.permute(0, 2, 1).reshape(conv.weight.shape[0], -1)


class FusedTemporalModel(nn.Module):
    """Inference form of a :class:`TemporalModel`: batch norm folded into the convolutions.

    Same outputs as the source model in eval mode (up to float rounding), fewer passes
    over memory: no separate batch-norm or dropout step, ReLU and residual adds in place.
    Built from a model's current weights; rebuild it after the weights change.
    """

    def __init__(self, model: TemporalModel) -> None:
        super().__init__()
        self.receptive_field_, self.pad, self.causal_shift = (
            model.receptive_field(),
            list(model.pad),
            list(model.causal_shift),
        )
        self.num_joints_out, self.out_features = model.num_joints_out, model.out_features
        self.num_joints_in, self.causal = model.num_joints_in, model.causal
        convs = [(model.expand_conv, model.expand_bn)] + list(zip(model.layers_conv, model.layers_bn))
        self.convs = nn.ModuleList(_fold(conv, bn) for conv, bn in convs)
        # Built where the source model lives (device and dtype), like the folded convolutions.
        self.shrink = nn.Conv1d(
            model.channels,
            model.num_joints_out * model.out_features,
            1,
            device=model.shrink.weight.device,
            dtype=model.shrink.weight.dtype,
        )
        self.shrink.load_state_dict(model.shrink.state_dict())
        self.eval()

    def receptive_field(self) -> int:
        """Input frames per output frame."""
        return self.receptive_field_

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, joints_in, 2) -> (batch, frames - receptive_field + 1, joints_out, 3)."""
        batch = x.shape[0]
        x = x.reshape(batch, x.shape[1], -1).permute(0, 2, 1)
        x = F.relu_(self.convs[0](x))
        for i in range(len(self.pad) - 1):
            pad, shift = self.pad[i + 1], self.causal_shift[i + 1]
            res = x[:, :, pad + shift : x.shape[2] - pad + shift]
            y = F.relu_(self.convs[1 + 2 * i](x))
            x = F.relu_(self.convs[2 + 2 * i](y)).add_(res)
        x = self.shrink(x).permute(0, 2, 1)
        return x.reshape(batch, -1, self.num_joints_out, self.out_features)


@torch.no_grad()
def _fold(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> nn.Conv1d:
    """A convolution with bias computing bn(conv(x)) in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv1d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size[0],
        dilation=conv.dilation[0],
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_(conv.weight * scale[:, None, None])
    fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused


def build_model(args: dict, *, strided: bool = False) -> TemporalModel:
    """A model from the ``model_args`` dict stored in checkpoints (keys: filter_widths,
    channels, dropout, causal, num_joints_in, in_features, num_joints_out)."""
    cls = StridedTemporalModel if strided else TemporalModel
    return cls(
        args["filter_widths"],
        num_joints_in=args["num_joints_in"],
        in_features=args["in_features"],
        num_joints_out=args["num_joints_out"],
        channels=args["channels"],
        dropout=args["dropout"],
        causal=args["causal"],
    )


def load_model_state(args: dict, state: dict, source: str, device: torch.device | str = "cpu") -> TemporalModel:
    """A full-sequence model in eval mode from stored constructor ``args`` and weights.

    The architecture is first built without memory (torch's meta device) and every stored
    tensor's shape compared with it, so crafted arguments cannot make it allocate more than
    the weights the file holds. Raises :class:`JointposeError` naming ``source`` when they do
    not fit together, when the weights exceed ``limit("parameters")``, when a weight claims
    more elements than its storage holds (zero strides) or is not real numbers, or when a
    weight is NaN or infinite, or a batch-norm variance negative.
    """

    check_model_args(args, source)
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(args).state_dict().items()}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise JointposeError(f"{source}: invalid model arguments ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise JointposeError(f"{source}: the weights are not a dict of tensors")
    wrong = sorted(
        k for k in shapes.keys() | state.keys() if shapes.get(k) != (tuple(state[k].shape) if k in state else None)
    )
    if wrong:
        raise JointposeError(
            f"{source}: weights do not match the stored architecture (e.g. {wrong[0]!r}; "
            f"{len(wrong)} tensor(s) missing, extra or of another shape)"
        )
    from jointpose.safeio import check_limit

    check_limit("parameters", sum(v.numel() for v in state.values()), f"{source}: parameters")
    hollow = sorted(k for k, v in state.items() if v.numel() > _stored_elements(v))
    if hollow:
        raise JointposeError(f"{source}: weight {hollow[0]!r} has more elements than its file stores (zero strides)")
    odd = sorted(k for k, v in state.items() if not (v.is_floating_point() or v.dtype in _INTEGER_DTYPES))
    if odd:
        raise JointposeError(f"{source}: weight {odd[0]!r} is of dtype {state[odd[0]].dtype}, not real numbers")
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise JointposeError(f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. {bad[0]!r})")
    negative = sorted(k for k, v in state.items() if k.endswith("running_var") and bool((v < 0).any()))
    if negative:
        raise JointposeError(f"{source}: batch-norm variance {negative[0]!r} holds negative values (no data has them)")
    model = build_model(args)
    model.load_state_dict(state)
    return model.to(device).eval()


def _stored_elements(tensor: torch.Tensor) -> int:
    """Elements the tensor's storage holds from its offset on (fewer than ``numel`` when a
    file's strides repeat them: ``torch.zeros(1).expand(...)``)."""
    return tensor.untyped_storage().nbytes() // tensor.element_size() - tensor.storage_offset()


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)

# Constructor arguments of a stored model: name -> (type, smallest, largest).
_MODEL_ARGS = {
    "channels": (int, 1, MAX_CHANNELS),
    "num_joints_in": (int, 1, 1024),
    "in_features": (int, 2, 2),  # x and y: what every jointpose model reads
    "num_joints_out": (int, 1, 1024),
    "dropout": (float, 0.0, 1.0),
}


# What the constructor takes besides: any number of coordinates in and out; a dropout below 1.
_CONSTRUCTOR_ARGS = _MODEL_ARGS | {
    "in_features": (int, 1, 1024),
    "out_features": (int, 1, 1024),
    "dropout": (float, 0.0, MAX_DROPOUT),
}


def _plain(value: object) -> object:
    """A numpy or torch scalar as the Python number (or bool) it holds; anything else as it is."""
    if isinstance(value, bool) or not hasattr(value, "item") or getattr(value, "ndim", 1) != 0:
        return value
    return value.item()


def check_model_args(args: dict, source: str) -> None:
    """Refuse stored constructor arguments of the wrong type or far outside any real model's."""
    _check_args(args, source, _MODEL_ARGS)


def _check_args(args: dict, source: str, table: dict[str, tuple[type, float, float]]) -> None:
    """Refuse constructor arguments outside ``table`` (name -> type, smallest, largest) or
    filter widths beyond the ``MAX_*`` bounds, naming ``source``."""

    if not isinstance(args, dict):
        raise JointposeError(f"{source}: model arguments must be a dict, got {type(args).__name__}")
    for name, (kind, low, high) in table.items():
        value = args.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float) if kind is float else int)
            or not low <= value <= high
        ):
            raise JointposeError(
                f"{source}: model argument {name!r} must be a number in [{low}, {high}], got {brief(value)}"
            )
    widths = args.get("filter_widths")
    if (
        not isinstance(widths, (list, tuple))
        or not 1 <= len(widths) <= MAX_LEVELS
        or not all(type(w) is int and 1 <= w <= MAX_FILTER_WIDTH and w % 2 for w in widths)
        or receptive_field(widths) > MAX_RECEPTIVE_FIELD
    ):
        raise JointposeError(
            f"{source}: model argument 'filter_widths' must be 1 to {MAX_LEVELS} odd widths up to "
            f"{MAX_FILTER_WIDTH} with a product (receptive field) up to {MAX_RECEPTIVE_FIELD}, got {brief(widths)}"
        )
    if not isinstance(args.get("causal"), bool):
        raise JointposeError(
            f"{source}: model argument 'causal' must be true or false, got {brief(args.get('causal'))}"
        )
