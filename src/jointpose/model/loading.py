"""The one model loader: devices, training checkpoints (``torch.load(weights_only=True)``) and
exported safetensors models, for evaluation, ``infer``, ``Lifter`` and ``StreamingLifter``.

Exported models are safetensors (no pickle): tensors of the pose model under ``pose.`` and of
the optional trajectory model under ``trajectory.``, with the constructor arguments, frame
rate, keypoint symmetry, inference step and the 2D it trained on in the file's metadata.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jointpose.data.h36m import INPUT_LAYOUTS
from jointpose.errors import JointposeError, brief, first_line
from jointpose.geometry import skeleton
from jointpose.geometry.alignment import check_weight
from jointpose.geometry.cameras import check_normalization
from jointpose.geometry.filters import check_sigma
from jointpose.model.predict import configured_step
from jointpose.model.temporal import TemporalModel, load_model_state
from jointpose.safeio import (
    atomic_path,
    check_checkpoint_pickle,
    check_fps,
    check_path,
    check_switch,
    file_path,
    is_real_number,
)

MODEL_FORMAT = "jointpose-model-v1"


FORMAT = "jointpose-checkpoint-v1"


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict[str, Any]:
    """Read a jointpose checkpoint (a file, or a folder holding ``latest.pt``) safely; ``mmap``:
    its tensors mapped from the file, not read, for a look at its settings."""
    path = resolve_checkpoint(path)
    check_checkpoint_pickle(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise JointposeError(f"{path}: corrupt or unreadable checkpoint ({first_line(exc)})") from None
    except Exception as exc:  # the weights-only unpickler raises UnpicklingError and friends
        raise JointposeError(f"{path}: not a safe jointpose checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise JointposeError(f"{path}: not a jointpose checkpoint")
    for key, kind in (("model", dict), ("model_args", dict), ("config", dict), ("epoch", int)):
        if key not in ckpt:
            raise JointposeError(f"{path}: checkpoint lacks '{key}'")
        value = ckpt[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            expected = "a non-negative integer" if kind is int else "a mapping"
            raise JointposeError(f"{path}: checkpoint '{key}' must be {expected}, got {type(value).__name__}")
    averaged = ckpt.get("averaged_model")
    if averaged is not None:
        count = averaged.get("n_averaged") if isinstance(averaged, dict) else None
        if not (isinstance(count, torch.Tensor) and count.numel() == 1 and not count.is_floating_point()):
            raise JointposeError(f"{path}: checkpoint 'averaged_model' is malformed (no integer 'n_averaged')")
    config = ckpt["config"]  # the values loading reads; training.config.saved_config checks every one
    for key in ("constraints", "causal", "skeleton_fit"):
        check_switch(config.get(key, False), f"{path}: checkpoint config '{key}'")
    smooth = config.get("smooth", 0.0)
    if not is_real_number(smooth):
        raise JointposeError(f"{path}: checkpoint config 'smooth' is not a number")
    check_sigma(smooth, f"{path}: checkpoint config 'smooth'")
    align_weight_of(config.get("align_2d", 0.0), f"{path}: checkpoint config 'align_2d'")
    return ckpt


def pose_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The pose network's weights a checkpoint stands for: their mean over the epochs averaged
    so far when the run averages its last epochs (``--average-last``), else the last epoch's."""
    averaged = ckpt.get("averaged_model")
    if averaged is None or int(averaged["n_averaged"]) == 0:
        return ckpt["model"]
    return {key.removeprefix("module."): value for key, value in averaged.items() if key.startswith("module.")}


LATEST_FILE = "latest.pt"  # a training run's newest checkpoint, in its folder


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or ``latest.pt`` inside a checkpoint folder."""
    path = check_path(path, "checkpoint")
    if path.is_dir():
        latest = path / LATEST_FILE
        if not latest.is_file():
            raise JointposeError("{0}: no latest.pt in {path}", fields=("checkpoint",), path=path)
        return latest
    if not path.is_file():
        raise JointposeError("{0}: file not found: {path}", fields=("checkpoint",), path=path)
    return path


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named CPU or CUDA device."""
    if not isinstance(name, str):
        raise JointposeError(
            "{0} must be a device name (auto, cpu, cuda, cuda:N), got {name}", fields=("device",), name=brief(name)
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise JointposeError("{0}: unknown device '{name}'", fields=("device",), name=name) from None
    if device.type not in ("cpu", "cuda"):
        raise JointposeError(
            "{0} {name}: jointpose runs on the CPU or CUDA (auto, cpu, cuda, cuda:N)", fields=("device",), name=name
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise JointposeError("{0} {name}: CUDA is not available on this machine", fields=("device",), name=name)
    return device


@dataclass
class LoadedModel:
    """A pose model (eval mode) with what inference needs from its file."""

    model: TemporalModel
    trajectory_model: TemporalModel | None = None
    fps: float = 50.0
    keypoints_symmetry: tuple[tuple[int, ...], tuple[int, ...]] = (skeleton.LEFT_JOINTS, skeleton.RIGHT_JOINTS)
    skeleton_fit: bool = False
    smooth: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)  # a training run's; {"exported_model": True} for a file
    epoch: int | None = None
    normalization: str = "screen"  # the 2D input coordinates it was trained on (geometry.cameras)
    align_2d: float = 0.0  # the inference step's share of the way to the 2D rays (geometry.alignment)
    input_layout: str | None = None  # the 2D it trained on (data build --input-layout); None: not recorded


def load_model(path: str | Path, device: str | torch.device = "auto") -> LoadedModel:
    """The one model loader: evaluation, ``infer``, ``Lifter`` and ``StreamingLifter`` use it.

    Args:
        path: a training checkpoint (``.pt`` file or run folder) or an exported ``.safetensors`` model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``... or a ``torch.device``.

    Returns:
        The pose model in eval mode, its optional trajectory model, frame rate, keypoint
        symmetry and inference step (and a run's configuration and epoch).

    Raises:
        JointposeError: a missing, corrupt or unsafe file, or one that is not a jointpose model.
    """
    path = check_path(path, "path")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, dev)
    if path.suffix.lower() == ".onnx":  # read by Lifter.load, for inference only
        raise JointposeError(
            f"{path}: an ONNX export runs in inference only (Lifter.load, jointpose infer and video); "
            "give a training run or a .safetensors model here"
        )
    path = resolve_checkpoint(path)  # a run folder's latest.pt: the file the messages name
    ckpt = load_checkpoint(path, map_location=dev)
    model = load_model_state(ckpt["model_args"], pose_weights(ckpt), str(path), dev)
    trajectory = None
    if ckpt.get("trajectory_model") is not None:
        trajectory = load_model_state(ckpt.get("trajectory_args"), ckpt["trajectory_model"], str(path), dev)
    symmetry = symmetry_of(
        ckpt.get("keypoints_symmetry", (skeleton.LEFT_JOINTS, skeleton.RIGHT_JOINTS)), model.num_joints_in, path
    )
    step = configured_step(ckpt["config"])  # its values checked with the checkpoint
    return LoadedModel(
        model,
        trajectory,
        check_fps(ckpt.get("fps", 50.0), f"{path}: checkpoint 'fps'"),
        symmetry,
        config=ckpt["config"],
        epoch=ckpt["epoch"],
        normalization=normalization_of(ckpt["config"].get("normalization") or "screen", path),
        input_layout=input_layout_of(ckpt.get("input_layout"), f"{path}: checkpoint 'input_layout'"),
        **step,
    )


def _load_safetensors(path: Path, device: torch.device) -> LoadedModel:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise JointposeError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != MODEL_FORMAT:  # before any tensor is read
                raise JointposeError(f"{path}: not a jointpose model (metadata format {brief(meta.get('format'))})")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise JointposeError(f"{path}: not a readable safetensors model ({first_line(exc)})") from None
    info = metadata_json(meta, path, ("model_args", "fps", "keypoints_symmetry"), {"trajectory_args": "null"})
    trajectory_args = info["trajectory_args"]

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}  # load casts to float32

    prefixes = ("pose.", "trajectory.") if trajectory_args else ("pose.",)
    if stray := sorted(key for key in tensors if not key.startswith(prefixes)):
        raise JointposeError(
            f"{path}: tensor {stray[0]!r} belongs to no model the metadata describes ({len(stray)} such tensor(s))"
        )
    model = load_model_state(info["model_args"], part("pose."), str(path), device)
    trajectory = load_model_state(trajectory_args, part("trajectory."), str(path), device) if trajectory_args else None
    symmetry = symmetry_of(info["keypoints_symmetry"], model.num_joints_in, path)
    smooth, align = smooth_of(meta, path), align_weight_of(meta.get("align_2d", "0"), f"{path}: metadata 'align_2d'")
    refuse_offline_steps(model.causal, path, smooth=smooth, align_2d=align)
    return LoadedModel(
        model,
        trajectory,
        check_fps(info["fps"], f"{path}: metadata 'fps'"),
        symmetry,
        skeleton_fit_of(meta, path),
        smooth,
        {"exported_model": True},
        normalization=normalization_of(meta.get("normalization", "screen"), path),
        align_2d=align,
        input_layout=input_layout_of(meta.get("input_layout"), f"{path}: metadata 'input_layout'"),
    )


def save_model(path: str | Path, loaded: LoadedModel, *, half: bool = False) -> Path:
    """Write a model (and its trajectory model) as safetensors; ``half`` stores float16 weights.
    The same model gives the same bytes."""
    from safetensors.torch import save

    path = file_path(path, "path")
    if path.suffix != ".safetensors":  # a model file is read by its extension
        raise JointposeError(
            f"{path}: a model is written as safetensors, which loading knows by the extension; "
            f"name it {path.stem}.safetensors"
        )
    tensors = {f"pose.{k}": v for k, v in loaded.model.state_dict().items()}
    left, right = loaded.keypoints_symmetry
    meta = {
        "format": MODEL_FORMAT,
        "model_args": json.dumps(model_args_of(loaded.model)),
        "fps": json.dumps(loaded.fps),
        "keypoints_symmetry": json.dumps([list(left), list(right)]),
        "skeleton_fit": json.dumps(loaded.skeleton_fit),
        "smooth": json.dumps(loaded.smooth),
        "normalization": loaded.normalization,
        "align_2d": json.dumps(loaded.align_2d),
    }
    if loaded.input_layout is not None:
        meta["input_layout"] = input_layout_of(loaded.input_layout, "input_layout")
    if loaded.trajectory_model is not None:
        tensors.update({f"trajectory.{k}": v for k, v in loaded.trajectory_model.state_dict().items()})
        meta["trajectory_args"] = json.dumps(model_args_of(loaded.trajectory_model))
    tensors = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in tensors.items()
    }
    if bad := sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()):
        beyond = "beyond float16's range (save without half)" if half else "NaN or infinite"
        raise JointposeError(f"{path}: weight {bad[0]!r} is {beyond}; a file loading would refuse is not written")
    blob = _sorted_header(save(tensors, metadata=meta))
    with atomic_path(path) as partial:
        partial.write_bytes(blob)
    return path


def _sorted_header(blob: bytes) -> bytes:
    """A safetensors file's bytes with its JSON header's keys sorted (safetensors writes the
    metadata in hash order, which changes from call to call), padded with spaces to its length
    so that every offset stays; unchanged where the sorted header would be longer."""
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = header.encode()
    return blob if len(text) > size else blob[:8] + text.ljust(size, b" ") + blob[8 + size :]


def model_args_of(model: TemporalModel) -> dict:
    """The constructor arguments that rebuild ``model``."""
    return {
        "filter_widths": list(model.filter_widths),
        "channels": model.channels,
        "dropout": model.dropout,
        "causal": model.causal,
        "num_joints_in": model.num_joints_in,
        "in_features": model.in_features,
        "num_joints_out": model.num_joints_out,
    }


def symmetry_of(
    value: object, joints: int, path: Path | None, what: str = "metadata 'keypoints_symmetry'"
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (left, right) keypoint indices stored with a model (``path``; None: given from
    Python, ``what`` naming them), checked."""
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(side, (list, tuple)) for side in value)
        and all(
            isinstance(j, numbers.Integral) and not isinstance(j, bool) and 0 <= j < joints
            for side in value
            for j in side
        )
        and len(value[0]) == len(value[1])
        and len({*value[0], *value[1]}) == 2 * len(value[0])  # each joint on one side, once
    )
    if not ok:
        raise JointposeError(
            f"{'' if path is None else f'{path}: '}{what} must be two equally long lists of distinct joint indices "
            f"below {joints}"
        )
    return tuple(map(int, value[0])), tuple(map(int, value[1]))


def normalization_of(value: object, path: Path) -> str:
    """The input normalisation stored with a model, checked."""
    try:
        return check_normalization(value)
    except JointposeError as exc:
        raise JointposeError(f"{path}: {exc}") from None


def known_layout(value: object) -> bool:
    """Whether ``value`` names the 2D a model trained on: one of ``data build --input-layout``'s,
    or a detector's own order (``"NAME order"``, printable, at most 100 characters)."""
    if not isinstance(value, str):
        return False
    return value in INPUT_LAYOUTS or (value.endswith(" order") and len(value) <= 100 and value.isprintable())


def input_layout_of(value: object, what: str) -> str | None:
    """The 2D a model trained on, as ``data build --input-layout`` names it (``"h36m"``, ``"coco"``,
    ``"blazepose"``, or ``"NAME order"``: a detector's keypoints in their own order), checked; None
    where it is not recorded."""
    if value is None or known_layout(value):
        return value
    raise JointposeError(f"{what} must be one of {', '.join(INPUT_LAYOUTS)} or 'NAME order', got {brief(value)}")


def metadata_json(
    meta: dict[str, str], path: Path, required: tuple[str, ...], optional: dict[str, str] | None = None
) -> dict[str, Any]:
    """The values of a model file's metadata keys, each JSON text (an ``optional`` key's text
    when absent), parsed; a key missing or not JSON is named."""
    texts = {key: meta[key] for key in required if key in meta} | {
        key: meta.get(key, default) for key, default in (optional or {}).items()
    }
    if missing := [key for key in required if key not in meta]:
        raise JointposeError(f"{path}: model metadata lacks '{missing[0]}'")
    values = {}
    for key, text in texts.items():
        try:
            values[key] = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: not JSON, or too many digits
            raise JointposeError(f"{path}: metadata '{key}' is not valid JSON ({first_line(exc)})") from None
    return values


def skeleton_fit_of(meta: dict, path: Path) -> bool:
    """Whether a model file's metadata asks for the consistent skeleton (``"true"`` or
    ``"false"`` as written; false when absent)."""
    value = meta.get("skeleton_fit", "false")
    if value not in ("true", "false"):
        raise JointposeError(f"{path}: metadata 'skeleton_fit' must be true or false, got {brief(value)}")
    return value == "true"


def smooth_of(meta: dict, path: Path) -> float:
    """The temporal filter's sigma (frames) stored in a model file's metadata (0 when absent)."""
    value = _json_number(meta.get("smooth", "0"))
    if value is None:
        raise JointposeError(f"{path}: metadata 'smooth' is not a number ({meta['smooth'][:40]!r})")
    return check_sigma(value, f"{path}: metadata 'smooth'")


def refuse_offline_steps(causal: bool, path: Path, **values: float) -> None:
    """Refuse a causal model whose file's metadata asks for a filter (``smooth``) or an
    alignment with the 2D (``align_2d``) above 0: both read future frames, which it must not."""
    for key, value in values.items():
        if causal and value:
            raise JointposeError(
                f"{path}: metadata '{key}' is {value:g} for a causal model; that step reads future frames, "
                "which a causal model must not (0 turns it off)"
            )


def align_weight_of(value: object, where: str) -> float:
    """The alignment weight (0-1) stored with a model (JSON text in a file's metadata), checked."""
    weight = _json_number(value)
    if weight is None:
        raise JointposeError(f"{where} must be a number in [0, 1], got {brief(value)}")
    return check_weight(weight, where)


def _json_number(value: object) -> float | None:
    """``value`` (a number, or JSON text of one) as a finite float; None for anything else,
    a bool (JSON ``true``) or a quoted number among them."""
    try:
        number = json.loads(value) if isinstance(value, str) else value
    except (ValueError, RecursionError):  # ValueError: not JSON, or too many digits
        return None
    return float(number) if is_real_number(number) else None
