"""Evaluation: whole-sequence prediction, per-action metrics, the results table and JSON.

Errors are pooled frame-weighted within an action group (all subjects and cameras), then
averaged without weights across action groups, as in the Human3.6M literature. Values
are in millimetres (MPJVE per frame, acceleration per frame squared).
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from jointpose.data.h36m import (
    DATASETS,
    DEFAULT_KEYPOINTS,
    TEST_SUBJECTS,
    Dataset,
    PoseSequence,
    alignment_joints,
    check_downsample,
    check_keypoints_name,
    check_names,
    dataset_kind,
    load_dataset,
)
from jointpose.data.resampling import same_rate
from jointpose.errors import JointposeError, JointposeWarning, brief
from jointpose.evaluation.metrics import POSE_METRICS
from jointpose.evaluation.plausibility import plausibility_errors
from jointpose.geometry import skeleton
from jointpose.geometry.alignment import check_weight, rays_of
from jointpose.model.loading import load_model, resolve_checkpoint, symmetry_of
from jointpose.model.predict import alignment_sigma, inference_steps, predict, refuse_future_frames
from jointpose.model.temporal import TemporalModel, network_name
from jointpose.safeio import check_finite, check_fps, check_switch

# Per-frame values are metres (reported as mm) except shares in [0, 1] (reported as %).
REPORT_SCALE = {"rom_pct": 100.0}
BATCH_FRAMES = 65536  # sequences whose inference step runs together (bounds its memory)


@dataclass
class ErrorPool:
    """Running sums of per-frame errors (metres; shares for ``rom_pct``) and their frame counts, per metric."""

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
        out = {
            name: REPORT_SCALE.get(name, 1000.0) * self.sums[name] / self.counts[name]
            if self.counts[name]
            else float("nan")
            for name in self.sums
        }
        out["frames"] = self.frames
        return out


def sequence_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame errors (metres) of every pose metric for one sequence (frames, joints, 3)."""
    return {name: fn(pred, target) for name, fn in POSE_METRICS.items()}


@dataclass
class Evaluation:
    """What :func:`evaluate_model` returns.

    ``predictions``: sequence key (``subject/action/camera``) -> (frames, J, 3) predicted
    poses, metres, camera space, root at 0. ``summary``: ``{"actions": {group: metrics},
    "average": metrics}`` (and ``"subjects"`` with ``by_subject``), each metric in millimetres
    (P1, P2, P3; MPJVE per frame, acceleration error per frame squared; bone-length spread
    and left/right gap), ``rom_pct`` in percent and ``frames`` a count: the dict written to JSON."""

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
    extra_metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]] | None = plausibility_errors,
    skeleton_fit: bool = False,
    smooth: float = 0.0,
    align: float = 0.0,
    fps: float = 50.0,
    align_joints: Sequence[int] | None = None,
) -> Evaluation:
    """Predict every sequence and pool its errors per action group (and subject); a
    prediction holding NaN or infinity is refused, naming its sequence.

    ``extra_metrics(pred, target) -> {name: per-frame tensor}`` adds metrics to the table (by
    default the plausibility metrics of ``jointpose evaluate``: bone-length spread, left/right
    gap, range-of-motion share; None: the errors alone).
    ``skeleton_fit`` gives each predicted sequence one consistent skeleton
    (:func:`jointpose.geometry.anatomy.fit_skeleton`; a causal model's from past frames only), as the
    joint-aware method does at inference;
    ``smooth`` (frames) Gaussian-filters each predicted sequence first
    (:func:`jointpose.geometry.filters.smooth_poses`); ``align`` (0-1) then moves it that
    share of the way to each sequence's keypoint rays, seen by its camera, with the filters of
    a sequence at ``fps`` frames per second, moving ``align_joints`` (default all: the
    keypoints are the predicted joints; :func:`jointpose.data.h36m.alignment_joints`) by their
    keypoints' confidence where the keypoints carry one
    (:func:`jointpose.geometry.alignment.align_to_rays`).
    """
    flip_test, skeleton_fit = check_switch(flip_test, "flip_test"), check_switch(skeleton_fit, "skeleton_fit")
    align, fps = check_weight(align, "align"), check_fps(fps, "fps")
    if not isinstance(model, TemporalModel):
        raise JointposeError(
            f"model must be a TemporalModel, got {network_name(model)} (a Lifter's is lifter.model; "
            "evaluate_checkpoint scores a checkpoint or model file)"
        )
    if isinstance(sequences, Dataset):
        raise JointposeError("sequences: pass the dataset's sequences (dataset.sequences)")
    sequences = [_scored(seq, model) for seq in sequences]
    keypoints_left, keypoints_right = symmetry_of(
        (keypoints_left, keypoints_right), model.num_joints_in, None, "keypoints_left and keypoints_right"
    )
    if extra_metrics is not None and not callable(extra_metrics):
        raise JointposeError(f"extra_metrics must be a function or None, got {type(extra_metrics).__name__}")
    joints = model.num_joints_out
    if align_joints is not None and not (
        isinstance(align_joints, (list, tuple))
        and all(isinstance(j, numbers.Integral) and not isinstance(j, bool) and 0 <= j < joints for j in align_joints)
        and len(set(align_joints)) == len(align_joints)
    ):
        raise JointposeError(f"align_joints must be distinct joint indices below {joints}, got {brief(align_joints)}")
    actions: dict[str, ErrorPool] = defaultdict(ErrorPool)
    subjects: dict[str, dict[str, ErrorPool]] = defaultdict(lambda: defaultdict(ErrorPool))
    predictions = {}
    for batch in _batches(sequences, BATCH_FRAMES):
        preds = inference_steps(
            [
                predict(
                    model,
                    seq.keypoints,
                    flip_test=flip_test,
                    keypoints_left=keypoints_left,
                    keypoints_right=keypoints_right,
                )
                for seq in batch
            ],
            smooth=smooth,
            skeleton_fit=skeleton_fit,
            causal=getattr(model, "causal", False),
            rays=[rays_of(seq.keypoints, seq.camera, seq.normalization) for seq in batch] if align > 0 else None,
            align=align,
            align_sigma=alignment_sigma(fps),
            align_joints=align_joints,
        )
        for seq, pred in zip(batch, preds):
            predictions[seq.key] = pred.numpy()
            # A NaN pose would leave its action group out of the average, not show as an error.
            check_finite(predictions[seq.key], f"the model's prediction for {seq.key}")
            target = torch.from_numpy(seq.poses_3d)
            errors = sequence_errors(pred, target)
            if extra_metrics is not None:
                errors.update(extra_metrics(pred, target))
            actions[seq.action_group].add(errors, len(pred))
            subjects[seq.subject][seq.action_group].add(errors, len(pred))
    if not actions:
        raise JointposeError("sequences: none to evaluate")
    summary = {"actions": {a: p.means_mm() for a, p in sorted(actions.items())}}
    summary["average"] = average_over_actions(summary["actions"])
    if by_subject:
        summary["subjects"] = {
            s: average_over_actions({a: p.means_mm() for a, p in pools.items()})
            for s, pools in sorted(subjects.items())
        }
    return Evaluation(predictions, summary)


def _scored(seq: PoseSequence, model: TemporalModel) -> PoseSequence:
    """``seq``, refused (naming it) when ``model`` cannot score it: no 3D poses, or another
    number of keypoints or joints than the model reads and predicts."""
    if not isinstance(seq, PoseSequence):
        raise JointposeError(f"sequences must hold PoseSequences (from load_dataset), got {type(seq).__name__}")
    if seq.poses_3d is None:
        raise JointposeError(f"sequence {seq.key}: no 3D poses to score against (a 2D-only dataset)")
    if seq.keypoints.shape[1] != model.num_joints_in or seq.poses_3d.shape[1] != model.num_joints_out:
        raise JointposeError(
            f"sequence {seq.key}: {seq.keypoints.shape[1]} keypoints and {seq.poses_3d.shape[1]} joints per frame, "
            f"where the model reads {model.num_joints_in} and predicts {model.num_joints_out}"
        )
    return seq


def _batches(sequences: Iterable[PoseSequence], frames: int) -> Iterator[list[PoseSequence]]:
    """``sequences`` in order, in lists of at most ``frames`` frames (a longer sequence alone)."""
    batch: list[PoseSequence] = []
    held = 0
    for seq in sequences:
        if batch and held + len(seq.keypoints) > frames:
            yield batch
            batch, held = [], 0
        batch.append(seq)
        held += len(seq.keypoints)
    if batch:
        yield batch


class InferenceStep(Protocol):
    """A network with its inference step: a :class:`jointpose.inference.lifter.Lifter` or a
    :class:`jointpose.model.loading.LoadedModel`."""

    model: TemporalModel
    skeleton_fit: bool
    smooth: float  # frames
    align_2d: float  # 0-1


def refuse_raw_with(
    raw: bool,
    smooth: float | None = None,
    align_2d: float | None = None,
    skeleton_fit: bool | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Refuse ``raw`` (the network alone) beside a setting of the inference step it leaves
    out: a filter (``smooth``), the alignment with the 2D (``align_2d``) or the skeleton fit
    (``skeleton_fit``), each None where not given. The message names them by ``names``
    (argument -> how the caller spells it, e.g. its flags), else as the arguments."""
    if not raw:
        return
    names = names or {}
    spelled_raw = names.get("raw", "raw")
    for name, value, what in (
        ("smooth", smooth, "a filter"),
        ("align_2d", align_2d, "the alignment"),
        ("skeleton_fit", skeleton_fit, "the skeleton fit"),
    ):
        if value is not None:
            raise JointposeError(
                f"{spelled_raw} shows the network alone, without {what}; leave out {names.get(name, name)} or {spelled_raw}"
            )


def inference_settings(
    source: InferenceStep,
    data: Dataset,
    dataset: str = "h36m",
    *,
    raw: bool = False,
    smooth: float | None = None,
    align_2d: float | None = None,
    skeleton_fit: bool | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_model`'s keywords that evaluate ``source``'s network on ``data`` as it
    runs at inference: its skeleton fit (``skeleton_fit`` overrides it), filter (``smooth``
    frames overrides it) and alignment
    with the 2D (``align_2d``, 0-1, overrides its share), with ``data``'s keypoint symmetry and
    frame rate. The alignment moves the joints ``data``'s keypoints mark
    (:func:`jointpose.data.h36m.alignment_joints` for ``dataset``'s skeleton), and is off where
    they mark none. ``raw``: the network alone (refused beside an override,
    :func:`refuse_raw_with`). ``data`` loaded in other input coordinates than ``source``
    reads (``normalization``) is refused: its scores would be those of misread keypoints."""
    if not isinstance(data, Dataset):
        raise JointposeError(f"data must be a Dataset (from load_dataset), got {type(data).__name__}")
    reads = getattr(source, "normalization", None)  # a Lifter's or a LoadedModel's input coordinates
    if reads is not None and data.normalization != reads:
        raise JointposeError(
            f"data holds {data.normalization} coordinates where the model reads {reads}: "
            f"load it with load_dataset(..., normalization={reads!r})"
        )
    raw = check_switch(raw, "raw")
    refuse_raw_with(raw, smooth, align_2d, skeleton_fit)
    skeleton_fit = None if skeleton_fit is None else check_switch(skeleton_fit, "skeleton_fit")
    align_2d = None if align_2d is None else check_weight(align_2d, "align_2d")
    joints = alignment_joints(data, dataset)
    align = source.align_2d if align_2d is None else align_2d
    return {
        "keypoints_left": data.keypoints_left,
        "keypoints_right": data.keypoints_right,
        "skeleton_fit": (source.skeleton_fit if skeleton_fit is None else skeleton_fit) and not raw,
        "smooth": 0.0 if raw else source.smooth if smooth is None else smooth,
        "align": 0.0 if raw or joints == () else align,
        "fps": data.fps,
        "align_joints": joints,
    }


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
    "p1": "P1 MPJPE",
    "p2": "P2 P-MPJPE",
    "p3": "P3 N-MPJPE",
    "mpjve": "MPJVE",
    "accel": "Accel",
    "bone_std": "Bone std",
    "lr_gap": "L/R gap",
    "rom_pct": "ROM out %",
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


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    keypoints: str | None = None,
    subjects: list[str] | None = None,
    actions: list[str] | None = None,
    *,
    flip_test: bool = True,
    by_subject: bool = False,
    downsample: int | None = None,
    device: str = "auto",
    raw: bool = False,
    smooth: float | None = None,
    align_2d: float | None = None,
    skeleton_fit: bool | None = None,
    dataset: str | None = None,
) -> Evaluation:
    """Evaluate a training checkpoint (file or folder) or an exported ``.safetensors`` model on
    ``subjects``; the summary's ``config`` records what was run.

    ``keypoints``, ``subjects``, ``actions`` and ``downsample`` default to the checkpoint's, so
    that a run's own evaluation is reproduced (an exported model has none: ``cpn_ft_h36m_dbb``,
    S9, S11, every action, every frame); ``actions=[]`` scores every action. A joint-aware model runs its inference step on each
    sequence (filter, alignment with the 2D, one consistent skeleton) unless ``raw``;
    ``smooth`` (frames) overrides the model's filter, ``align_2d`` (0-1) its alignment
    with the 2D and ``skeleton_fit`` its consistent skeleton, for any model (the baseline's too; it moves the joints the keypoints mark,
    :func:`jointpose.data.h36m.alignment_joints`). ``dataset`` (``h36m`` or ``humaneva15``) defaults to the
    checkpoint's, else the one whose skeleton the model outputs.
    """
    subjects = None if subjects is None else check_names(subjects, "subjects")
    actions = None if actions is None else check_names(actions, "actions")
    flip_test, raw = check_switch(flip_test, "flip_test"), check_switch(raw, "raw")
    align_2d = None if align_2d is None else check_weight(align_2d, "align_2d")
    loaded = load_model(checkpoint, device)
    model, config, epoch = loaded.model, loaded.config, loaded.epoch
    run = _run_settings(config, resolve_checkpoint(checkpoint) if not config.get("exported_model") else checkpoint)
    for name, value in (("align_2d", align_2d), ("smooth", smooth)):
        refuse_future_frames(name, value, model.causal, str(checkpoint))
    keypoints = keypoints or run["keypoints"] or DEFAULT_KEYPOINTS
    subjects = subjects or run["subjects_test"] or list(TEST_SUBJECTS)
    inherited = {}  # what the run chose, named as such in a data error (no argument of that name was given)
    if actions is None and run["actions"] is not None:  # the run's own; an empty list: every action
        actions = run["actions"]
        inherited["actions"] = f"the run's actions ({', '.join(actions)}; {checkpoint})"
    actions = list(actions) if actions else None
    chosen = downsample is not None or run["downsample"] is not None  # else matched to the model's rate
    downsample = run["downsample"] or 1 if downsample is None else downsample
    dataset = (
        dataset
        or run["dataset"]
        or next((name for name, kind in DATASETS.items() if kind.skeleton.num_joints == model.num_joints_out), "h36m")
    )
    joints = dataset_kind(dataset).skeleton.num_joints
    if joints != model.num_joints_out:
        raise JointposeError(
            "{0} {name}: the dataset's poses have {joints} joints but {path} outputs {out}",
            fields=("dataset",),
            name=dataset,
            joints=joints,
            path=checkpoint,
            out=model.num_joints_out,
        )

    def load(downsample: int) -> Dataset:
        try:
            return load_dataset(
                data_dir,
                keypoints,
                subjects,
                actions,
                downsample=downsample,
                normalization=loaded.normalization,
                dataset=dataset,
            )
        except JointposeError as exc:
            if not exc.fields or not set(exc.fields) <= inherited.keys():
                raise
            raise JointposeError(exc.naming(inherited)) from None

    data = load(downsample)
    if not same_rate(data.fps, loaded.fps):  # velocities would be per frame of another rate
        factor = data.fps / loaded.fps
        if not chosen and factor > 1.5 and abs(factor - round(factor)) < 1e-6:
            downsample = round(factor)
            data = load(downsample)
            message = f"{checkpoint}: a {loaded.fps:g} fps model, scored at its own rate (--downsample {downsample})"
        else:
            message = (
                f"{checkpoint}: a {loaded.fps:g} fps model scored on {data.fps:g} fps data "
                "(its velocities and accelerations are per frame of another rate)"
            )
        warnings.warn(JointposeWarning(message), stacklevel=2)
    if data.num_keypoints != model.num_joints_in:
        raise JointposeError(
            "{0} {name}: {count} keypoints per frame but the checkpoint expects {expected}",
            fields=("keypoints",),
            name=keypoints,
            count=data.num_keypoints,
            expected=model.num_joints_in,
        )
    if set(zip(data.keypoints_left, data.keypoints_right)) != set(zip(*loaded.keypoints_symmetry)):  # as pairs
        warnings.warn(
            JointposeWarning(
                "{0} {name}: its left/right keypoint pairs are not those {checkpoint} was trained on: another "
                "layout (another detector's order?), read as the model's",
                fields=("keypoints",),
                name=keypoints,
                checkpoint=str(checkpoint),
            ),
            stacklevel=2,
        )
    if trained_on := sorted(set(subjects) & set(run["subjects_train"] or ())):
        warnings.warn(
            JointposeWarning(
                f"{', '.join(trained_on)}: {checkpoint} trained on them; scores on people the model trained on say "
                "nothing about new people (docs/validation.md)"
            ),
            stacklevel=2,
        )
    step = inference_settings(
        loaded, data, dataset, raw=raw, smooth=smooth, align_2d=align_2d, skeleton_fit=skeleton_fit
    )
    result = evaluate_model(
        model, data.sequences, flip_test=flip_test, by_subject=by_subject, extra_metrics=plausibility_errors, **step
    )
    result.summary = with_provenance(
        result.summary,
        config,
        checkpoint,
        epoch,
        data_dir=str(data_dir),
        dataset=dataset,
        keypoints=keypoints,
        subjects=subjects,
        actions=actions,
        downsample=downsample,
        test_time_augmentation=flip_test,
        skeleton_fit=step["skeleton_fit"],
        smooth=step["smooth"],
        align_2d=step["align"],
    )
    return result


def _run_settings(config: dict, checkpoint: str | Path) -> dict[str, Any]:
    """The settings of a run an evaluation reads (None where its configuration holds none):
    ``keypoints``, ``subjects_train``, ``subjects_test``, ``actions``, ``downsample`` and
    ``dataset``, each checked by the rule data loading applies to an argument of that name,
    the error naming the checkpoint's key."""
    checks = {
        "keypoints": check_keypoints_name,
        "subjects_train": lambda value: check_names(value, "subjects_train"),
        "subjects_test": lambda value: check_names(value, "subjects_test"),
        "actions": lambda value: check_names(value, "actions"),
        "downsample": check_downsample,
        "dataset": lambda value: dataset_kind(value).name,
    }
    try:
        return {key: None if config.get(key) is None else check(config[key]) for key, check in checks.items()}
    except JointposeError as exc:
        named = exc.naming({field: f"'{field}'" for field in exc.fields})
        raise JointposeError(f"{checkpoint}: checkpoint config {named}") from None


def with_provenance(
    summary: dict, config: dict, checkpoint: str | Path, epoch: int, **evaluated_on: Any
) -> dict[str, Any]:
    """``summary`` under a ``config`` entry saying what was evaluated: the run's configuration,
    its checkpoint and epoch, and ``evaluated_on`` (data folder, dataset, keypoints, subjects,
    actions, flip averaging, skeleton fit, filter sigma in frames)."""
    record = {**config, "checkpoint": str(checkpoint), "checkpoint_epoch": epoch, "evaluated_on": evaluated_on}
    return {"config": record, **summary}


def results_json(results: Any) -> str:
    """``results`` (an evaluation summary, or several) as JSON text: a metric without a value
    (NaN: sequences too short for a velocity) is ``null``, so that every JSON reader takes it."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(plain(results), indent=2, allow_nan=False)


def write_predictions(predictions: dict[str, np.ndarray], path: str | Path) -> None:
    """Save predictions as npz, one (frames, joints, 3) array per ``<subject>/<action>/<camera>`` key."""
    from jointpose.safeio import atomic_write

    with atomic_write(path) as handle:
        np.savez_compressed(handle, **predictions)
