"""Loss-weight tuning on a validation split of training data (never the test subjects).

Builds (once) a dataset from the CMU clips with the Human3.6M cameras and noisy 2D, in
which subjects S5 and S7 train and every fourth clip of theirs is moved to a validation
subject S8 (S1, the playground clips, is left out entirely, and so is S6, the bundled
models' held-out subject: scripts/train_pretrained.py), then trains one model per
configuration and prints one JSON line of validation metrics each, with ``speed``: how fast
the predicted joints move against the true ones (jitter filtered out of both; < 1 = damped).
``--breakdown`` adds where the velocity error lies (see ``velocity_breakdown``).

    python benchmarks/tune_weights.py --work runs/tune --epochs 20 \
        "baseline:--no-constraints" "va:--w-vel 0.1 --w-acc 0.1" ...

The dataset is built once into ``--work``/data and reused; delete that folder after a change
to the builder or cameras (e.g. the Human3.6M distortion convention of 2026-11-27).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import torch

from jointpose.geometry.filters import smooth_poses
from jointpose.motion.builder import write_h36m_dataset
from jointpose.motion.mocap import load_bvh_folder
from jointpose.training.config import add_arguments, from_arguments
from jointpose.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = ("S1", "S6")  # S6: the bundled models' held-out subject, never seen while tuning


def tuning_dataset(cmu: Path, out: Path) -> Path:
    if not (out / "data_2d_h36m_noisy.npz").exists():
        motion = load_bvh_folder(cmu, fps=50.0, seed=0)
        split: dict[str, dict] = {"S8": {}}
        for subject, actions in motion.items():
            if subject in LEFT_OUT:
                continue
            for i, (action, poses) in enumerate(actions.items()):
                split.setdefault("S8" if i % 4 == 3 else subject, {})[
                    f"{subject} {action}" if i % 4 == 3 else action
                ] = poses
        write_h36m_dataset(out, split, fps=50.0, seed=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="NAME:FLAGS for jointpose train")
    parser.add_argument("--cmu", default=str(ROOT.parent / "shared" / "data" / "cmu-mocap"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "tune_clean"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--breakdown", action="store_true", help="also print where the velocity error lies")
    args = parser.parse_args()
    data = tuning_dataset(Path(args.cmu), Path(args.work) / "data")
    train_parser = argparse.ArgumentParser(prog="jointpose train")
    add_arguments(train_parser, skip=())
    for item in args.configs:
        name, _, flags = item.partition(":")
        checkpoint = Path(args.work) / name
        train_args = [
            "--data-dir",
            str(data),
            "-k",
            "noisy",
            "-str",
            "S5,S7",
            "-ste",
            "S8",
            "-arc",
            "3,3,3",
            "-ch",
            "256",
            "-e",
            str(args.epochs),
            "--no-progress",
            "--checkpoint",
            str(checkpoint),
            *flags.split(),
        ]
        start = time.time()
        trainer = Trainer(from_arguments(train_parser.parse_args(train_args)))
        with contextlib.redirect_stdout(io.StringIO()):
            summary = trainer.fit()
        row = {
            k: round(summary["average"][k], 2) for k in ("p1", "p2", "mpjve", "accel", "bone_std", "lr_gap", "rom_pct")
        }
        row["speed"] = round(speed_ratio(trainer), 3)
        if args.breakdown:
            row.update(velocity_breakdown(trainer))
        print(json.dumps({"name": name, **row, "seconds": round(time.time() - start)}), flush=True)


def speed_ratio(trainer: Trainer, sigma: float = 3.0) -> float:
    """Mean joint speed of the validation predictions over the true one, both filtered with a
    Gaussian of ``sigma`` frames (so jitter does not count as motion): < 1 means damped motion."""
    predicted = true = 0.0
    for seq in trainer.test_data.sequences:
        pred = smooth_poses(torch.from_numpy(trainer.final_result.predictions[seq.key]), sigma)
        target = smooth_poses(torch.from_numpy(seq.poses_3d), sigma)
        predicted += float(torch.diff(pred, dim=0).norm(dim=-1).sum())
        true += float(torch.diff(target, dim=0).norm(dim=-1).sum())
    return predicted / true


def velocity_breakdown(trainer: Trainer, fast: float = 0.02) -> dict[str, float]:
    """Velocity error of the validation predictions pooled over every joint and frame (mm/frame):
    ``vel`` as is, ``vel_slow`` with prediction and truth both filtered (sigma 3 frames: the
    motion part, jitter removed), ``vel_smoothed`` with the prediction alone filtered (sigma
    1.5), ``vel_x/y/z`` mean absolute error per camera axis, and ``fast_share`` / ``fast_error``:
    the share of joint-frames truly moving over ``fast`` m/frame and their share of the error."""

    def velocity(poses, sigma: float = 0.0) -> torch.Tensor:
        return torch.diff(smooth_poses(torch.from_numpy(poses), sigma), dim=0)

    parts: dict[str, list[torch.Tensor]] = {"error": [], "slow": [], "smoothed": [], "true": []}
    for seq in trainer.test_data.sequences:
        pred, true = trainer.final_result.predictions[seq.key], velocity(seq.poses_3d)
        parts["error"].append(velocity(pred) - true)
        parts["slow"].append(velocity(pred, 3.0) - velocity(seq.poses_3d, 3.0))
        parts["smoothed"].append(velocity(pred, 1.5) - true)
        parts["true"].append(true)
    error, slow, smoothed, true = (torch.cat(parts[key]) for key in ("error", "slow", "smoothed", "true"))
    norm, fast_joints = error.norm(dim=-1), true.norm(dim=-1) > fast
    axes = 1000 * error.abs().mean(dim=(0, 1))
    return {
        "vel": round(1000 * float(norm.mean()), 3),
        "vel_slow": round(1000 * float(slow.norm(dim=-1).mean()), 3),
        "vel_smoothed": round(1000 * float(smoothed.norm(dim=-1).mean()), 3),
        **{f"vel_{axis}": round(float(value), 2) for axis, value in zip("xyz", axes)},
        "fast_share": round(float(fast_joints.double().mean()), 3),
        "fast_error": round(float(norm[fast_joints].sum() / norm.sum()), 3),
    }


if __name__ == "__main__":
    main()
