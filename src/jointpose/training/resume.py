"""Resuming a run (``--resume``): the checkpoint it continues, and what must match for it to be the same run.

A new run refuses a folder that already holds one; a resumed run refuses a checkpoint whose
architecture or training settings (:data:`RESUME_MUST_MATCH`) differ from its configuration,
naming each difference by its flag.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from jointpose.errors import JointposeError
from jointpose.model.loading import LATEST_FILE, input_layout_of, load_checkpoint
from jointpose.safeio import check_output_folder, is_finite_number
from jointpose.training.checkpoint import epoch_checkpoints, run_files
from jointpose.training.config import CONSTRAINT_SETTINGS, SEMI_SUPERVISED_SETTINGS, TrainConfig, saved_config

# What a resumed run must share with the checkpoint to be the same run (TrainConfig fields).
# Free to change: epochs (train longer), evaluation and output settings, device, precision, logging.
RESUME_MUST_MATCH = (
    "dataset",
    "constraints",
    "chunk",
    "chunk_share",
    "chunk_dropout",
    "chunk_mpjpe",
    "trajectory",
    "keypoints",
    "subjects_train",
    "actions",
    "subset",
    "downsample",
    "batch_size",
    "lr",
    "lr_decay",
    "bn_floor",
    "weights",
    "warmup",
    "augment",
    "seed",
    "body_scale",
    "adult_limbs",
    "limb_mix",
    "average_last",
    "normalization",
    "random_cameras",
    "subjects_unlabeled",
    "warmup_unlabeled",
    "bone_guard",
    "multiview",
    "balance_unlabeled",
    "unlabeled_constraints",
)


# Model constructor arguments -> the TrainConfig field that sets them.
MODEL_ARG_FIELDS = {
    "filter_widths": "architecture",
    "channels": "channels",
    "dropout": "dropout",
    "causal": "causal",
    "num_joints_in": "keypoints",
}


def resume_file(folder: str | Path) -> Path | None:
    """The file a run in ``folder`` continues from: ``latest.pt``, or, where the run stopped
    between its first epoch's file and its first ``latest.pt``, its newest ``epoch_NNN.pt``;
    None where there is neither."""
    latest = Path(folder) / LATEST_FILE
    if latest.exists():
        return latest
    epochs = epoch_checkpoints(folder)
    return list(epochs.values())[-1] if epochs else None


def resumed_checkpoint(config: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint ``--resume`` continues, ``latest.pt`` or, where a run stopped before
    writing it, its newest ``epoch_NNN.pt`` (read on the CPU: RNG states must stay there;
    ``load_state_dict`` moves weights and optimiser state), or None for a new run, which
    must not overwrite one."""
    folder = Path(config.checkpoint_dir)
    latest = resume_file(folder)
    found = run_files(folder)
    epochs = epoch_checkpoints(folder)
    if not config.resume:
        check_output_folder(folder, "checkpoint_dir", field=True)  # before a whole epoch, not after it
        if found:  # a stale epoch_NNN.pt would be pruned by --keep-last in place of the new one
            advice = (
                "move them or choose"
                if latest is None
                else "continue it with {1} or choose"
                if latest.name == LATEST_FILE
                else "continue it with {1} (from its last epoch file), or move them or choose"
            )
            raise JointposeError(
                "{0} {path} already holds a run ({names}); " + advice + " another folder",
                fields=("checkpoint_dir", "resume"),
                path=folder,
                names=", ".join(path.name for path in found[:3]) + (", ..." if len(found) > 3 else ""),
            )
        return None
    if latest is None:
        raise JointposeError("{0}: no checkpoint (latest.pt) in {path}", fields=("resume",), path=folder)
    checkpoint = load_checkpoint(latest, map_location="cpu")
    planned = saved_config(checkpoint["config"], str(latest)).epochs
    if checkpoint["epoch"] > planned:
        raise JointposeError(f"{latest}: checkpoint 'epoch' {checkpoint['epoch']} is beyond the run's {planned} epochs")
    # The next epoch's file may be a crash's leftover (written before latest.pt), which the run
    # writes again; one later than that is another timeline's: --keep-last would prune the
    # resumed run's new epochs in its favour.
    later = [path for epoch, path in epochs.items() if epoch > checkpoint["epoch"] + 1]
    if later:
        raise JointposeError(
            "{0}: {path} is of a later epoch than latest.pt ({epoch}); move it or choose another folder",
            fields=("resume",),
            path=later[0],
            epoch=checkpoint["epoch"],
        )
    return checkpoint


def check_compatible(
    ckpt: dict[str, Any],
    args: dict[str, Any],
    config: TrainConfig,
    path: Path,
    input_layout: str | None = None,
    training_data: str | None = None,
) -> None:
    """Refuse to resume when the architecture or training-mode fields, the 2D trained on
    (``input_layout``, where both record it), or the training data itself
    (``training_data``: :func:`~jointpose.training.run_data.training_fingerprint`, where the
    checkpoint records it) disagree with the checkpoint."""
    saved = ckpt["model_args"]
    diffs, fields, values = [], ["resume"], {}  # a template naming field k as {k}, value v as {v}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

    def differ(name: str, then: Any, now: Any, text: str) -> None:
        if isinstance(then, bool) and isinstance(now, bool):  # a switch: whether its flag was given
            then, now = ("given" if value != defaults.get(name, False) else "not given" for value in (then, now))
        values[f"then{len(fields)}"], values[f"now{len(fields)}"] = then, now
        diffs.append(
            text.replace("FIELD", f"{{{len(fields)}}}")
            .replace("THEN", f"{{then{len(fields)}}}")
            .replace("NOW", f"{{now{len(fields)}}}")
        )
        fields.append(name)

    for key, name in MODEL_ARG_FIELDS.items():
        if saved.get(key) != args[key]:
            label = "FIELD (keypoint count)" if key == "num_joints_in" else "FIELD"
            differ(name, saved.get(key), args[key], f"{label}: THEN in the checkpoint vs NOW now")
    then_layout = input_layout_of(ckpt.get("input_layout"), f"{path}: checkpoint 'input_layout'")
    if then_layout is not None and input_layout is not None and then_layout != input_layout:
        differ("keypoints", then_layout, input_layout, "FIELD input layout: THEN in the checkpoint vs NOW now")
    saved_cfg = ckpt["config"]
    # Checkpoints from before a setting trained so.
    older = {
        "chunk_dropout": "independent",
        "dataset": "h36m",
        "subjects_unlabeled": None,
        "multiview": 0.0,
        "balance_unlabeled": False,
        "chunk_mpjpe": False,
        "limb_mix": 0.0,
        "average_last": 0,
        "adult_limbs": 0.0,
        "bn_floor": True,
    }
    current = config.to_dict()
    for key in RESUME_MUST_MATCH:
        if key in CONSTRAINT_SETTINGS and not config.constraints:
            continue  # the baseline trains without them
        if key in SEMI_SUPERVISED_SETTINGS and not (config.semi_supervised or saved_cfg.get("subjects_unlabeled")):
            continue  # neither run has unlabelled data
        if key not in saved_cfg and key not in older:
            continue  # a checkpoint from before the setting existed
        now, then = current[key], saved_cfg.get(key, older.get(key))
        if key == "weights" and isinstance(then, dict) and isinstance(now, dict):  # each term that differs
            for term in sorted(set(then) | set(now)):
                if then.get(term) != now.get(term):
                    differ(f"weights.{term}", then.get(term), now.get(term), "FIELD: THEN in the checkpoint vs NOW now")
        elif then != now:
            differ(key, then, now, "FIELD: THEN in the checkpoint vs NOW now")
    if diffs:
        raise JointposeError(
            "{0}: {path} disagrees with this configuration: " + "; ".join(diffs), fields=fields, path=path, **values
        )
    saved_data = ckpt.get("training_data")  # None: a checkpoint from before it was recorded
    if None not in (saved_data, training_data) and not (isinstance(saved_data, str) and saved_data == training_data):
        raise JointposeError(
            "{0}: the training data in {1} {folder} is not what {path} trained on (its files were rebuilt or "
            "replaced since); put the run's data back or start a new run",
            fields=("resume", "data_dir"),
            folder=config.data_dir,
            path=path,
        )


def rows_of_numbers(value: Any) -> bool:
    """Whether ``value`` is a list of dicts from names to numbers (a run's history or step log)."""
    return isinstance(value, list) and all(
        isinstance(row, dict)
        and all(isinstance(k, str) and (is_finite_number(v) or isinstance(v, float)) for k, v in row.items())
        for row in value
    )
