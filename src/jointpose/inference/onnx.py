"""ONNX export of the pose model, and running an exported model through onnxruntime.

Two graphs, both with a dynamic batch dimension, opset :data:`OPSET`:

* **full sequence** (inputs ``keypoints`` (batch, frames, J, 2), normalised screen
  coordinates; output ``poses`` (batch, frames - receptive_field + 1, J_out, 3), metres,
  not yet root-relative): the :class:`~jointpose.model.temporal.TemporalModel` in eval mode
  with a dynamic number of frames (at least one receptive field).
* **streaming step** of a causal model (inputs ``keypoints`` (batch, J, 2) and one cache per
  convolution wider than one frame, ``cache_in_<i>`` (batch, channels_in, span - 1); outputs
  ``pose`` (batch, J_out, 3) and ``cache_out_<i>``, the same caches advanced by one frame):
  each cache holds the last span - 1 inputs its dilated convolution reads, oldest first.

The graphs hold the network only. Edge padding, flip averaging, the root subtraction, the
temporal filter and the skeleton fit stay in Python: :class:`~jointpose.inference.lifter.Lifter`
and :class:`~jointpose.inference.streaming.StreamingLifter` apply them around an exported
model exactly as around the torch one. The model's frame rate, keypoint symmetry and
inference step are stored in the file's metadata (``metadata_props``).

onnx, onnxscript and onnxruntime are the optional extra ``jointpose[onnx]``.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jointpose.errors import JointposeError, brief, first_line
from jointpose.model.loading import (
    LoadedModel,
    align_weight_of,
    input_layout_of,
    metadata_json,
    model_args_of,
    normalization_of,
    refuse_offline_steps,
    skeleton_fit_of,
    smooth_of,
    symmetry_of,
)
from jointpose.model.temporal import FusedTemporalModel, TemporalModel, check_model_args, receptive_field
from jointpose.safeio import atomic_path, check_fps, check_path, file_path

ONNX_FORMAT = "jointpose-onnx-v1"
OPSET = 18  # the torch.export-based exporter's default opset in torch 2.6-2.13
_EXTRA = "ONNX support needs the optional extra: pip install 'jointpose[onnx]' (onnx, onnxscript, onnxruntime)"


# Operators a jointpose export may hold, whichever torch's exporter wrote it: each gives
# outputs no larger than its inputs and the file's own constants, and none loops, branches or
# runs outside ONNX's standard domain. A graph holding any other is refused before onnxruntime
# builds it: a Loop of a trillion steps, or a ConstantOfShape of ten billion elements, takes a
# few bytes of file.
GRAPH_OPERATORS = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Neg", "Relu", "Conv", "BatchNormalization", "MatMul", "Gemm",
        "Concat", "Split", "Slice", "Gather", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
        "Shape", "Identity", "Cast", "Constant",
    }
)  # fmt: skip


def _require(module: str) -> Any:
    """Import an optional ONNX dependency, or a one-line :class:`JointposeError` naming the extra."""
    try:
        return __import__(module)
    except ImportError:
        raise JointposeError(f"{_EXTRA}; '{module}' is not installed") from None


class StreamingStep(nn.Module):
    """One time step of a causal model with its layer caches as explicit inputs and outputs.

    Batch norm is folded into the convolutions (eval mode). ``forward(keypoints, *caches)``
    with keypoints (batch, J, 2) returns ``(pose (batch, J_out, 3), *new_caches)``; feeding
    the new caches back in with the next frame gives the causal model's output frame by frame.
    """

    def __init__(self, model: TemporalModel) -> None:
        super().__init__()
        if not model.causal:
            raise JointposeError(
                "a streaming ONNX export needs a causal model (a bundled one: --pretrained causal or video-causal; "
                "train one with --causal)"
            )
        fused = FusedTemporalModel(model)
        self.convs, self.shrink = fused.convs, fused.shrink
        self.num_joints_out, self.out_features = model.num_joints_out, model.out_features
        self.cached = [i for i, conv in enumerate(self.convs) if _span(conv) > 1]

    def cache_shapes(self, batch: int = 1) -> list[tuple[int, int, int]]:
        """Shapes of the caches, in input order: (batch, channels_in, span - 1)."""
        return [(batch, self.convs[i].in_channels, _span(self.convs[i]) - 1) for i in self.cached]

    def forward(self, keypoints: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(pose, *new_caches)`` for one frame of ``keypoints`` (batch, J, 2) and the caches."""
        cache_of = dict(zip(self.cached, caches))
        new_caches = []

        def conv(i: int, h: torch.Tensor) -> torch.Tensor:
            if i in cache_of:
                h = torch.cat([cache_of[i], h], dim=2)  # (batch, channels, span): the kernel's taps
                new_caches.append(h[:, :, 1:])
            return F.relu(self.convs[i](h))

        h = conv(0, keypoints.reshape(keypoints.shape[0], -1, 1))
        for i in range(1, len(self.convs), 2):
            h = h + conv(i + 1, conv(i, h))  # causal residual: the newest input
        pose = self.shrink(h).reshape(-1, self.num_joints_out, self.out_features)
        return (pose, *new_caches)


def _span(conv: nn.Conv1d) -> int:
    """Input frames one output frame of ``conv`` reads."""
    return (conv.kernel_size[0] - 1) * conv.dilation[0] + 1


def onnx_path(path: str | Path, name: str = "path") -> Path:
    """``path`` as a :class:`~pathlib.Path` when its name ends in ``.onnx``; ``name`` is what
    the error calls it (``--onnx`` on the command line)."""
    if not isinstance(path, (str, Path)) or file_path(path, name).suffix.lower() != ".onnx":
        raise JointposeError(f"{name} {path}: the file name must end in .onnx")
    return Path(path)


def export_onnx(loaded: LoadedModel, path: str | Path, *, streaming: bool = False) -> Path:
    """Write ``loaded``'s pose model as ONNX to ``path`` (atomically): the full-sequence graph,
    or with ``streaming`` one step of a causal model (see the module docstring). The model
    itself stays where it is, in the mode it is in: a copy on the CPU is exported."""
    path = onnx_path(path)
    onnx = _require("onnx")
    _require("onnxscript")
    model = copy.deepcopy(loaded.model).cpu().eval()
    field = model.receptive_field()
    if streaming:
        module: nn.Module = StreamingStep(model).eval()
        step = module
        caches = tuple(torch.zeros(shape) for shape in step.cache_shapes(2))
        args = (torch.zeros(2, model.num_joints_in, model.in_features), *caches)
        names = ["keypoints"] + [f"cache_in_{i}" for i in range(len(caches))]
        outputs = ["pose"] + [f"cache_out_{i}" for i in range(len(caches))]
        batch = torch.export.Dim("batch", min=1)
        shapes = ({0: batch}, tuple({0: batch} for _ in caches))  # forward(keypoints, *caches)
    else:
        module = model
        args = (torch.zeros(2, field + 8, model.num_joints_in, model.in_features),)
        names, outputs = ["keypoints"], ["poses"]
        shapes = ({0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("frames", min=field)},)
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms" and three more
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation notices
        try:
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=OPSET,
                input_names=names,
                output_names=outputs,
                dynamic_shapes=shapes,
                verbose=False,
            )
        finally:
            registry.setLevel(level)
    proto = program.model_proto
    left, right = loaded.keypoints_symmetry
    meta = {
        "format": ONNX_FORMAT,
        "kind": "streaming" if streaming else "sequence",
        "model_args": json.dumps(model_args_of(model)),
        "receptive_field": json.dumps(field),
        "fps": json.dumps(loaded.fps),
        "keypoints_symmetry": json.dumps([list(left), list(right)]),
        "skeleton_fit": json.dumps(loaded.skeleton_fit),
        "smooth": json.dumps(loaded.smooth),
        "normalization": json.dumps(loaded.normalization),
        "align_2d": json.dumps(loaded.align_2d),
        "input_layout": json.dumps(loaded.input_layout),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return Path(path)


class OnnxModel(nn.Module):
    """An exported model run by onnxruntime (CPU), usable where a full-sequence
    :class:`TemporalModel` in eval mode is: ``receptive_field()``, ``causal``, joint counts,
    and ``forward`` on float32 tensors. A streaming export serves :meth:`new_stream` instead."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        ort = _require("onnxruntime")
        path = check_path(path, "path")
        if not path.is_file():
            raise JointposeError(f"model file not found: {path}")
        check_graph(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: each failure is one line of jointpose's, not onnxruntime's log
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error classes for unreadable graphs
            raise JointposeError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != ONNX_FORMAT:
            raise JointposeError(f"{path}: not a jointpose ONNX export (metadata format {brief(meta.get('format'))})")
        required = ("model_args", "receptive_field", "fps", "keypoints_symmetry")
        self.meta = metadata_json(meta, path, required, {"normalization": '"screen"', "input_layout": "null"})
        args, field = self.meta.pop("model_args"), self.meta.pop("receptive_field")
        check_model_args(args, f"{path}: metadata")
        if type(field) is not int or field != receptive_field(args["filter_widths"]):
            raise JointposeError(
                f"{path}: metadata 'receptive_field' must be {receptive_field(args['filter_widths'])}, the product "
                f"of its filter widths, got {brief(field)}"
            )
        self.meta["skeleton_fit"] = skeleton_fit_of(meta, path)
        self.meta["smooth"] = smooth_of(meta, path)
        self.meta["align_2d"] = meta.get("align_2d", "0")
        if meta.get("kind") not in ("sequence", "streaming"):
            raise JointposeError(
                f"{path}: metadata 'kind' must be sequence or streaming, got {brief(meta.get('kind'))}"
            )
        self.path, self.streaming, self.receptive_field_ = path, meta["kind"] == "streaming", field
        self.causal = args["causal"]
        self.num_joints_in, self.in_features = args["num_joints_in"], args["in_features"]
        self.num_joints_out, self.out_features = args["num_joints_out"], 3
        self.eval()

    def receptive_field(self) -> int:
        """Input frames per output frame."""
        return self.receptive_field_

    def check_sequences(self) -> None:
        """Refuse a streaming export where whole sequences are to be lifted (before any work)."""
        if self.streaming:
            raise JointposeError(
                f"{self.path} is a streaming export (--streaming): use StreamingLifter, "
                f"or export without --streaming for whole sequences"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, joints_in, 2) -> (batch, frames - receptive_field + 1, joints_out, 3)."""
        self.check_sequences()
        batch, frames = x.shape[:2]
        (poses,) = _run(self.session, self.path, {"keypoints": x.detach().cpu().float().numpy()})
        expected = (batch, frames - self.receptive_field_ + 1, self.num_joints_out, 3)
        if poses.shape != expected:
            raise JointposeError(
                f"{self.path}: the graph gives poses of shape {poses.shape} where its metadata promise {expected}"
            )
        return torch.from_numpy(poses)

    def new_stream(self) -> OnnxStream:
        """A fresh stream (empty caches) over a streaming export."""
        if not self.streaming:
            raise JointposeError(f"{self.path} is a full-sequence export: export with --streaming to stream")
        return OnnxStream(self.session, self.path, self.num_joints_out)


class OnnxStream:
    """Frame-by-frame state over a streaming export: ``stream(x)`` with one frame (J, 2)
    returns that frame's pose (J_out, 3), metres, not root-relative; the caches start at zero."""

    def __init__(self, session: Any, path: Path, joints_out: int) -> None:
        self.session, self.path, self.joints_out = session, path, joints_out
        inputs = session.get_inputs()[1:]
        self.names = [i.name for i in inputs]
        self.caches = [np.zeros([1, *i.shape[1:]], dtype=np.float32) for i in inputs]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The pose (joints_out, 3) of the newest frame ``x`` (joints_in, 2), its caches kept."""
        feed = {"keypoints": x.detach().cpu().float().numpy()[None], **dict(zip(self.names, self.caches))}
        pose, *self.caches = _run(self.session, self.path, feed)
        if pose.shape != (1, self.joints_out, 3):
            raise JointposeError(
                f"{self.path}: the graph gives a pose of shape {pose.shape}, not (1, {self.joints_out}, 3)"
            )
        return torch.from_numpy(pose[0])


def check_graph(path: Path) -> None:
    """Refuse an ONNX file that is unreadable, or whose graph holds an operator outside
    :data:`GRAPH_OPERATORS`, local functions, sparse constants (a few bytes declaring a dense
    tensor of any size) or weights kept in other files."""
    onnx = _require("onnx")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's and onnx's own error classes
        raise JointposeError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None
    graph = proto.graph
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in GRAPH_OPERATORS:
            name = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
            raise JointposeError(
                f"{path}: the graph holds operator {brief(name)}, which no jointpose export does (it may loop or "
                "allocate without bound); export the model again with jointpose export"
            )
        if any(attribute.name == "sparse_value" for attribute in node.attribute):
            raise JointposeError(f"{path}: the graph holds a sparse constant, which no jointpose export does")
    if proto.functions or graph.sparse_initializer:
        raise JointposeError(f"{path}: the graph holds functions or sparse weights, which no jointpose export does")
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in graph.initializer):
        raise JointposeError(f"{path}: the model keeps its weights in other files, which jointpose does not read")


def _run(session: Any, path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``session.run`` with onnxruntime's failures (its own exception classes, each derived
    from ``Exception`` alone: a graph that cannot run on these inputs) as one line naming the file."""
    try:
        return session.run(None, feed)
    except Exception as exc:
        raise JointposeError(f"{path}: the ONNX graph failed to run ({first_line(exc)})") from None


def load_onnx(path: str | Path) -> LoadedModel:
    """An exported ``.onnx`` model with its metadata (frame rate, symmetry, inference step)."""
    model = OnnxModel(path)
    align = align_weight_of(model.meta["align_2d"], f"{model.path}: metadata 'align_2d'")
    refuse_offline_steps(model.causal, model.path, smooth=model.meta["smooth"], align_2d=align)
    return LoadedModel(
        model,
        None,
        check_fps(model.meta["fps"], f"{model.path}: metadata 'fps'"),
        symmetry_of(model.meta["keypoints_symmetry"], model.num_joints_in, model.path),
        model.meta["skeleton_fit"],
        model.meta["smooth"],
        {"exported_model": True},
        normalization=normalization_of(model.meta["normalization"], model.path),
        align_2d=align,
        input_layout=input_layout_of(model.meta["input_layout"], f"{model.path}: metadata 'input_layout'"),
    )
