"""Evaluation: whole-sequence prediction, per-action metrics, the results table and JSON.

Errors are pooled frame-weighted within an action group (all subjects and cameras), then
averaged without weights across action groups, as in the Human3.6M literature. Values
are in millimetres (MPJVE per frame, acceleration per frame squared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import skeleton
from .anatomy import fit_skeleton
from .data import PoseSequence, load_dataset
from .errors import JointposeError
from .filters import smooth_poses
from .metrics import POSE_METRICS
from .model import TemporalModel, load_model_state


def pad_sequence(keypoints: torch.Tensor, receptive_field: int, causal: bool) -> torch.Tensor:
    """Edge-pad normalised 2D keypoints (frames, J, 2) so that a full-sequence model returns
    one output per input frame.

    Centred models get ``receptive_field // 2`` frames each side; causal ones get
    ``receptive_field - 1`` before the first frame. A sequence shorter than the receptive
    field is padded the same way, so every length >= 1 gives a prediction.
    """
    pad = receptive_field // 2
    left, right = (2 * pad, 0) if causal else (pad, pad)
    index = torch.arange(-left, keypoints.shape[0] + right, device=keypoints.device)
    return keypoints[index.clamp(0, keypoints.shape[0] - 1)]


@torch.no_grad()
def predict(
    model: TemporalModel,
    keypoints: np.ndarray | torch.Tensor,
    *,
    flip_test: bool = True,
    keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
    keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
    root_relative: bool = True,
    segment: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """3D poses (frames, J_out, 3) in metres from normalised 2D keypoints (frames, J, 2).

    ``flip_test`` averages with the prediction for the mirrored input (mirrored back).
    With ``root_relative`` the predicted root is subtracted, so joint 0 is exactly 0.
    ``segment`` bounds the output frames computed at once (each segment reads its own
    receptive field, so results are identical); ``progress`` shows a bar over segments.
    Runs on the model's device; returns a CPU float32 tensor.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.as_tensor(keypoints, dtype=torch.float32, device=device)
    frames, field = x.shape[0], model.receptive_field()
    x = pad_sequence(x, field, model.causal)[None]
    if flip_test:
        x = torch.cat([x, skeleton.flip_poses(x, skeleton.flip_permutation(x.shape[2], keypoints_left, keypoints_right))])
    step = segment or frames
    starts = tqdm(range(0, frames, step), desc="lifting", unit="segment", disable=not progress, leave=False)
    out = torch.cat([model(x[:, s: min(s + step, frames) + field - 1]) for s in starts], dim=1)
    if flip_test:
        perm_3d = skeleton.FLIP_PERMUTATION if model.num_joints_out == skeleton.NUM_JOINTS else range(model.num_joints_out)
        out = (out[0] + skeleton.flip_poses(out[1], perm_3d)) / 2
    else:
        out = out[0]
    model.train(was_training)
    if root_relative:
        out = out - out[:, :1]
    return out.float().cpu()


# Per-frame values are metres (reported as mm) except shares in [0, 1] (reported as %).
REPORT_SCALE = {"rom_pct": 100.0}


@dataclass
class ErrorPool:
    """Running sums of per-frame errors (metres) and their frame counts, per metric."""

    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    frames: int = 0

    def add(self, per_frame: dict[str, torch.Tensor], frames: int) -> None:
        for name, values in per_frame.items():
            self.sums[name] += float(values.double().sum())
            self.counts[name] += values.numel()
        self.frames += frames

    def means_mm(self) -> dict[str, float]:
        """Frame-weighted means in report units (mm; percent for shares)."""
        out = {name: REPORT_SCALE.get(name, 1000.0) * self.sums[name] / self.counts[name]
               if self.counts[name] else float("nan") for name in self.sums}
        out["frames"] = self.frames
        return out


def sequence_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame errors (metres) of every pose metric for one sequence (frames, 17, 3)."""
    return {name: fn(pred, target) for name, fn in POSE_METRICS.items()}


@dataclass
class Evaluation:
    """Predictions per sequence key and the summary dict written to JSON."""

    predictions: dict[str, np.ndarray]
    summary: dict


def evaluate_model(
    model: TemporalModel,
    sequences: Iterable[PoseSequence],
    *,
    flip_test: bool = True,
    keypoints_left: Sequence[int] = skeleton.LEFT_JOINTS,
    keypoints_right: Sequence[int] = skeleton.RIGHT_JOINTS,
    by_subject: bool = False,
    extra_metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]] | None = None,
    skeleton_fit: bool = False,
    smooth: float = 0.0,
) -> Evaluation:
    """Predict every sequence and pool its errors per action group (and subject).

    ``extra_metrics(pred, target) -> {name: per-frame tensor}`` adds metrics to the table.
    ``skeleton_fit`` gives each predicted sequence one consistent skeleton
    (:func:`jointpose.anatomy.fit_skeleton`; a causal model's from past frames only), as the
    joint-aware method does at inference;
    ``smooth`` (frames) Gaussian-filters each predicted sequence first
    (:func:`jointpose.filters.smooth_poses`).
    """
    actions: dict[str, ErrorPool] = defaultdict(ErrorPool)
    subjects: dict[str, dict[str, ErrorPool]] = defaultdict(lambda: defaultdict(ErrorPool))
    predictions = {}
    for seq in sequences:
        pred = predict(model, seq.keypoints, flip_test=flip_test,
                       keypoints_left=keypoints_left, keypoints_right=keypoints_right)
        pred = inference_step(pred, smooth=smooth, skeleton_fit=skeleton_fit, causal=getattr(model, "causal", False))
        predictions[seq.key] = pred.numpy()
        target = torch.from_numpy(seq.poses_3d)
        errors = sequence_errors(pred, target)
        if extra_metrics is not None:
            errors.update(extra_metrics(pred, target))
        actions[seq.action_group].add(errors, len(pred))
        subjects[seq.subject][seq.action_group].add(errors, len(pred))
    summary = {"actions": {a: p.means_mm() for a, p in sorted(actions.items())}}
    summary["average"] = average_over_actions(summary["actions"])
    if by_subject:
        summary["subjects"] = {
            s: average_over_actions({a: p.means_mm() for a, p in pools.items()})
            for s, pools in sorted(subjects.items())
        }
    return Evaluation(predictions, summary)


def inference_step(poses: torch.Tensor, *, smooth: float, skeleton_fit: bool, causal: bool = False) -> torch.Tensor:
    """The joint-aware method's steps after the network, on one predicted sequence (frames,
    17, 3) in metres: the temporal filter (sigma ``smooth`` frames), then one consistent
    skeleton when ``skeleton_fit`` (``causal``: bone lengths from past frames only)."""
    poses = smooth_poses(poses, smooth)
    return fit_skeleton(poses, causal=causal) if skeleton_fit else poses


def average_over_actions(per_action: dict[str, dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over action groups of every metric; ``frames`` is summed. A group
    without a value for a metric (NaN: too short for velocity or acceleration) is left out
    of that metric's mean."""
    if not per_action:
        return {}
    names = [k for k in next(iter(per_action.values())) if k != "frames"]
    out = {}
    for name in names:
        values = [row[name] for row in per_action.values() if not np.isnan(row[name])]
        out[name] = float(np.mean(values)) if values else float("nan")
    out["frames"] = int(sum(row["frames"] for row in per_action.values()))
    return out


COLUMN_TITLES = {
    "p1": "P1 MPJPE", "p2": "P2 P-MPJPE", "p3": "P3 N-MPJPE", "mpjve": "MPJVE", "accel": "Accel",
    "bone_std": "Bone std", "lr_gap": "L/R gap", "rom_pct": "ROM out %",
}


def format_table(summary: dict) -> str:
    """The evaluation as a fixed-width text table: one row per action, then the average."""
    rows = dict(summary["actions"])
    rows["Average"] = summary["average"]
    if "subjects" in summary:
        rows.update({f"[{s}]": v for s, v in summary["subjects"].items()})
    columns = [c for c in COLUMN_TITLES if c in summary["average"]]
    width = max(12, max(len(r) for r in rows) + 1)
    lines = [f"{'Action':<{width}}" + "".join(f"{COLUMN_TITLES[c]:>12}" for c in columns) + f"{'frames':>9}"]
    lines.append("-" * len(lines[0]))
    for name, row in rows.items():
        if name == "Average" or (name.startswith("[") and not lines[-1].startswith("[")):
            lines.append("-" * len(lines[0]))
        lines.append(f"{name:<{width}}" + "".join(f"{row[c]:12.2f}" for c in columns) + f"{row['frames']:9d}")
    return "\n".join(lines)


def load_model(checkpoint: str | Path, device: str = "auto") -> tuple[TemporalModel, dict]:
    """The full-sequence pose model of a checkpoint, in eval mode, and the checkpoint dict."""
    from .checkpoint import load_checkpoint
    from .distributed import resolve_device

    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    return load_model_state(ckpt["model_args"], ckpt["model"], str(checkpoint), dev), ckpt


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    keypoints: str | None = None,
    subjects: list[str] | None = None,
    actions: list[str] | None = None,
    *,
    flip_test: bool = True,
    by_subject: bool = False,
    downsample: int = 1,
    device: str = "auto",
    raw: bool = False,
    smooth: float | None = None,
) -> Evaluation:
    """Evaluate a training checkpoint (file or folder) or an exported ``.safetensors`` model on
    ``subjects``; the summary's ``config`` records what was run.

    ``keypoints`` and ``subjects`` default to the checkpoint's (an exported model has none:
    ``cpn_ft_h36m_dbb`` and S9, S11). A joint-aware model filters each sequence in time and
    fits one consistent skeleton to it unless ``raw``; ``smooth`` (frames) overrides the
    model's filter, for any model (the baseline's too).
    """
    from .plausibility import plausibility_errors

    if Path(checkpoint).suffix == ".safetensors":
        from .lifter import Lifter

        lifter = Lifter.load(checkpoint, device=device)
        model, config, epoch = lifter.model, {"exported_model": True}, None
        default_fit, default_smooth = lifter.skeleton_fit, lifter.smooth
    else:
        model, ckpt = load_model(checkpoint, device)
        config, epoch = ckpt["config"], ckpt["epoch"]
        default_fit, default_smooth = uses_skeleton_fit(config), smoothing_sigma(config)
    keypoints = keypoints or config.get("keypoints", "cpn_ft_h36m_dbb")
    subjects = subjects or list(config.get("subjects_test", ("S9", "S11")))
    data = load_dataset(data_dir, keypoints, subjects, actions, downsample=downsample)
    if data.num_keypoints != model.num_joints_in:
        raise JointposeError(
            f"-k {keypoints}: {data.num_keypoints} keypoints per frame but the checkpoint expects {model.num_joints_in}"
        )
    fit = default_fit and not raw
    if raw:
        smooth = 0.0
    elif smooth is None:
        smooth = default_smooth
    result = evaluate_model(model, data.sequences, flip_test=flip_test, keypoints_left=data.keypoints_left,
                            keypoints_right=data.keypoints_right, by_subject=by_subject,
                            extra_metrics=plausibility_errors, skeleton_fit=fit, smooth=smooth)
    result.summary = {
        "config": {**config, "checkpoint": str(checkpoint), "checkpoint_epoch": epoch,
                   "evaluated_on": {"data_dir": str(data_dir), "keypoints": keypoints, "subjects": subjects,
                                    "actions": actions, "test_time_augmentation": flip_test,
                                    "skeleton_fit": fit, "smooth": smooth}},
        **result.summary,
    }
    return result


def uses_skeleton_fit(config: dict) -> bool:
    """Whether a run's configuration asks for the consistent-skeleton step at inference."""
    return bool(config.get("constraints")) and bool(config.get("skeleton_fit", True))


def smoothing_sigma(config: dict) -> float:
    """The temporal filter (sigma, frames) a run's configuration asks for at inference: the
    joint-aware method's, for offline models only (the filter reads future frames)."""
    if not config.get("constraints") or config.get("causal"):
        return 0.0
    return float(config.get("smooth", 0.0))


def write_predictions(predictions: dict[str, np.ndarray], path: str | Path) -> None:
    """Save predictions as npz, one (frames, 17, 3) array per ``<subject>/<action>/<camera>`` key."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **predictions)
    except OSError as exc:
        raise JointposeError(f"cannot write {path}: {exc.strerror}") from None
