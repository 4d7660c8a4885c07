"""Ablation: the --no-constraints baseline and the joint-aware model, same seed and configuration.

Both are trained on the same data with the same seed and input normalisation, and their
tables are printed side by side with the relative change of every metric (negative is
better for every metric here: errors, bone-length spread, left/right gap, ROM violations).
Each mode keeps its own recipe where no flag sets it: VideoPose3D's learning rate and dropout
and no weight averaging for the baseline, scored by the network alone; the joint-aware
model's with its inference step (alignment with the 2D, consistent skeleton). Each run's
header and ``ablation.json`` say which; ``jointpose evaluate --align-2d --skeleton-fit``
scores the baseline with the same inference step.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from jointpose.errors import JointposeError, JointposeWarning
from jointpose.evaluation.evaluate import COLUMN_TITLES, results_json
from jointpose.model.loading import load_checkpoint
from jointpose.safeio import atomic_write, check_path
from jointpose.training.checkpoint import run_files
from jointpose.training.config import (
    NORMALIZATION_CONSTRAINTS,
    IdleSettingsWarning,
    TrainConfig,
    idle_warnings,
    saved_config,
    tested_on_training_people,
)
from jointpose.training.resume import resume_file
from jointpose.training.trainer import Trainer


def relative_change(base: float, new: float) -> float:
    """(new - base) / base in percent; 0 when both are 0."""
    if base == 0:
        return 0.0 if new == 0 else float("inf")
    return 100.0 * (new - base) / abs(base)


def format_comparison(baseline: dict, joint_aware: dict) -> str:
    """Per action and on average: baseline | joint-aware | change for every metric."""
    columns = [c for c in COLUMN_TITLES if c in baseline["average"]]
    rows = list(baseline["actions"]) + ["Average"]
    width = max(12, max(len(r) for r in rows) + 1)
    head = f"{'':<{width}}" + "".join(f"{COLUMN_TITLES[c]:>26}" for c in columns)
    sub = f"{'Action':<{width}}" + "".join(f"{'base':>9}{'joint':>9}{'change':>8}" for _ in columns)
    lines = [head, sub, "-" * len(sub)]
    for name in rows:
        a = baseline["average"] if name == "Average" else baseline["actions"][name]
        b = joint_aware["average"] if name == "Average" else joint_aware["actions"][name]
        if name == "Average":
            lines.append("-" * len(sub))
        cells = "".join(f"{a[c]:9.2f}{b[c]:9.2f}{relative_change(a[c], b[c]):7.1f}%" for c in columns)
        lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


MODES = ("baseline", "joint-aware")


def check_resume(out: str | Path, seeds: Sequence[int] | None, epochs: int | None = None) -> None:
    """Refuse, before any training, to resume in ``out`` what it does not hold: an ablation of
    one seed (``seeds`` None: ``out/baseline``, ``out/joint-aware``) or over ``seeds``
    (``out/seed_N``, each among them), whose runs each have a file to resume from
    (:func:`~jointpose.training.resume.resume_file`; started for ``epochs``, where given) or no
    file yet."""
    out = Path(out)
    single = [out / name for name in MODES if (out / name).exists()]
    seeded = sorted(path for path in out.glob("seed_*") if path.is_dir())
    if not (single or seeded):
        raise JointposeError(f"--resume: --out {out} holds no ablation to continue")
    if seeds is not None and single:
        raise JointposeError(f"--resume: --out {out} holds an ablation of one seed; resume it without --seeds")
    if seeds is None and seeded:
        raise JointposeError(f"--resume: --out {out} holds an ablation over seeds; resume it with the same --seeds")
    others = [path.name for path in seeded if path.name not in {f"seed_{seed}" for seed in seeds or ()}]
    if others:
        raise JointposeError(
            f"--resume: --out {out} holds {', '.join(others)}, not among --seeds {','.join(map(str, seeds or ()))}; "
            "resume with the seeds it was started with"
        )
    for folder in single or [seed / name for seed in seeded for name in MODES]:
        found = run_files(folder)
        resumed = resume_file(folder)
        if found and resumed is None:  # stopped before its first checkpoint
            raise JointposeError(
                f"--resume: {folder} holds {', '.join(path.name for path in found)} but no checkpoint to resume "
                "from; remove them to train that run again"
            )
        if resumed is not None and epochs is not None:
            settings = load_checkpoint(resumed, mmap=True)["config"]  # the weights left unread
            saved_config(settings, str(resumed))
            check_planned_epochs(settings.get("epochs"), epochs, folder)


def check_planned_epochs(planned: int | None, epochs: int, folder: Path) -> None:
    """Refuse to resume the run in ``folder``, started for ``planned`` epochs, for another
    number: its schedule (batch-norm momentum, constraint warm-up, weight averaging) follows
    the epochs, so it would not train as the uninterrupted run."""
    if planned != epochs:
        raise JointposeError(
            "{0} {epochs}: {path} was started with {0} {planned}; resume with {0} {planned}",
            fields=("epochs",),
            epochs=epochs,
            path=folder,
            planned=planned,
        )


@contextmanager
def _noted_once(config: TrainConfig) -> Iterator[None]:
    """Warn once where ``config`` tests on subjects it trains on, and for the settings its
    joint-aware run cannot act on, and let the runs built within say so no more: every run of
    an ablation has the same subjects and settings, and the baseline leaves the constraint
    settings idle on purpose."""
    with warnings.catch_warnings():
        if (warning := tested_on_training_people(config)) is not None:
            warnings.warn(warning, stacklevel=4)
            warnings.filterwarnings("ignore", re.escape(str(warning)), JointposeWarning)
        for idle in idle_warnings(dataclasses.replace(config, constraints=True)):
            warnings.warn(idle, stacklevel=4)
        warnings.filterwarnings("ignore", category=IdleSettingsWarning)
        yield


def run_ablation(config: TrainConfig, out: str | Path, resume: bool = False) -> dict:
    """Train both models into ``out/baseline`` and ``out/joint-aware``; returns both summaries.

    ``resume``: continue an interrupted ablation there (:func:`check_resume` says what can
    be): a model with a ``latest.pt`` is resumed from it (a finished one only evaluated
    again), with the epochs it was started for; the others are trained.
    """
    with _noted_once(config):
        return _ablation(config, out, resume)


def _ablation(config: TrainConfig, out: str | Path, resume: bool) -> dict:
    """:func:`run_ablation`'s runs."""
    out = check_path(out, "out")
    # Both models read the same input coordinates (the joint-aware default unless given): the
    # normalisation's own effect is measured apart (docs/cameras.md).
    config = dataclasses.replace(config, normalization=config.normalization or NORMALIZATION_CONSTRAINTS)
    summaries = {}
    for name, constraints in zip(MODES, (False, True)):
        folder = out / name
        resumed = resume and resume_file(folder) is not None
        run = dataclasses.replace(config, constraints=constraints, checkpoint_dir=str(folder), resume=resumed)
        trainer = Trainer(run)
        if resumed:
            check_planned_epochs(trainer.planned_epochs, config.epochs, folder)
        step = trainer.evaluation_settings()
        recipe = {  # each mode's defaults unless a flag set them
            "lr": trainer.config.lr,
            "dropout": trainer.config.dropout,
            "average_last": trainer.config.average_last,
            "normalization": trainer.config.normalization,
            "align_2d": step["align"],
            "skeleton_fit": step["skeleton_fit"],
            "smooth": step["smooth"],
        }
        mode = "joint-aware constraints" if constraints else "--no-constraints"
        progress = f", resumed after epoch {trainer.epoch}" if resumed else ""
        print(
            f"\n=== {name} ({mode}{progress}: "
            + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in recipe.items())
            + ") ==="
        )
        summaries[name] = trainer.fit()
        summaries[name].update(recipe)
        summaries[name]["seconds_per_epoch"] = sum(r["seconds"] for r in trainer.history) / max(1, len(trainer.history))
    print("\n=== baseline vs joint-aware (same seed and configuration) ===")
    print(format_comparison(summaries["baseline"], summaries["joint-aware"]))
    result = {"config": config.to_dict(), **summaries}
    with atomic_write(out / "ablation.json", "w", encoding="utf-8") as handle:
        handle.write(results_json(result))
    print(f"\nwrote {out / 'ablation.json'}")
    return result


def seed_summary(runs: dict[int, dict]) -> dict[str, dict[str, list[float] | float]]:
    """Per metric of the average rows of ``runs`` ({seed: run_ablation's result}): each model's
    values, mean and sample standard deviation over the seeds, and the same of the paired
    relative change (percent, joint-aware against baseline)."""
    first = next(iter(runs.values()))
    metrics = [c for c in COLUMN_TITLES if c in first["baseline"]["average"]]
    summary: dict[str, dict[str, list[float] | float]] = {}
    for metric in metrics:
        base = np.array([run["baseline"]["average"][metric] for run in runs.values()])
        joint = np.array([run["joint-aware"]["average"][metric] for run in runs.values()])
        change = np.array([relative_change(b, j) for b, j in zip(base, joint)])
        row: dict[str, list[float | None] | float | None] = {}
        for name, values in (("baseline", base), ("joint-aware", joint), ("change", change)):
            known = values[np.isfinite(values)]  # a change from a baseline of 0 (or a NaN metric) has no value
            row[name] = [float(v) if np.isfinite(v) else None for v in values]
            row[f"{name}_mean"] = float(known.mean()) if len(known) else None
            row[f"{name}_std"] = float(known.std(ddof=1)) if len(known) > 1 else None
        summary[metric] = row
    return summary


def format_seed_summary(summary: dict, seeds: Sequence[int]) -> str:
    """Mean ± sample standard deviation over ``seeds`` of each model's average and of the
    paired change; a change within its own spread is marked as no difference."""
    lines = [
        f"{'':<14}{'baseline':>18}{'joint-aware':>18}{'change':>20}",
        "-" * 70,
    ]

    def cell(mean: float | None, std: float | None, width: int, unit: str = "") -> str:
        text = (
            "n/a" if mean is None or std is None else f"{mean:.{1 if unit else 2}f}{unit} ± {std:.{1 if unit else 2}f}"
        )
        return f"{text:>{width}}"

    for metric, row in summary.items():
        cells = "".join(cell(row[f"{m}_mean"], row[f"{m}_std"], 18) for m in ("baseline", "joint-aware"))
        change, spread = row["change_mean"], row["change_std"]
        verdict = "" if change is None or spread is None or abs(change) > spread else "  (within the seed spread)"
        lines.append(f"{COLUMN_TITLES[metric]:<14}{cells}{cell(change, spread, 20, '%')}{verdict}")
    return f"mean ± standard deviation over seeds {', '.join(map(str, seeds))}\n" + "\n".join(lines)


def run_seeds(config: TrainConfig, out: str | Path, seeds: Sequence[int], resume: bool = False) -> dict:
    """:func:`run_ablation` once per seed into ``out/seed_N``, then the mean and spread of every
    metric over the seeds (printed, and written to ``out/ablation.json`` with each seed's
    averages). ``resume``: continue an interrupted run there, each seed as :func:`run_ablation` does."""
    with _noted_once(config):
        return _seeds(config, out, seeds, resume)


def _seeds(config: TrainConfig, out: str | Path, seeds: Sequence[int], resume: bool) -> dict:
    """:func:`run_seeds`' runs."""
    out = check_path(out, "out")
    runs = {
        seed: _ablation(
            dataclasses.replace(config, seed=seed, checkpoint_dir=str(out / f"seed_{seed}")),
            out / f"seed_{seed}",
            resume,
        )
        for seed in seeds
    }
    summary = seed_summary(runs)
    print(f"\n=== baseline vs joint-aware over {len(seeds)} seeds ===")
    print(format_seed_summary(summary, seeds))
    result = {"config": {**config.to_dict(), "seed": None}, "seeds": list(seeds), "summary": summary}
    with atomic_write(out / "ablation.json", "w", encoding="utf-8") as handle:
        handle.write(results_json(result))
    print(f"\nwrote {out / 'ablation.json'}")
    return result
