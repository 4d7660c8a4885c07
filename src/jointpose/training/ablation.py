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
import json
from pathlib import Path

from jointpose.evaluation.evaluate import COLUMN_TITLES
from jointpose.safeio import atomic_write
from jointpose.training.config import NORMALIZATION_CONSTRAINTS, TrainConfig
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


def run_ablation(config: TrainConfig, out: str | Path) -> dict:
    """Train both models into ``out/baseline`` and ``out/joint-aware``; returns both summaries."""
    out = Path(out)
    # Both models read the same input coordinates (the joint-aware default unless given): the
    # normalisation's own effect is measured apart (docs/cameras.md).
    config = dataclasses.replace(config, normalization=config.normalization or NORMALIZATION_CONSTRAINTS)
    summaries = {}
    for name, constraints in (("baseline", False), ("joint-aware", True)):
        run = dataclasses.replace(config, constraints=constraints, checkpoint_dir=str(out / name))
        trainer = Trainer(run)
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
        print(
            f"\n=== {name} ({mode}: "
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
        handle.write(json.dumps(result, indent=2))
    print(f"\nwrote {out / 'ablation.json'}")
    return result
