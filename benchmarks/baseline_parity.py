"""Is the ``--no-constraints`` baseline VideoPose3D's recipe? Train both on the same data, score both alike.

    git clone https://github.com/facebookresearch/VideoPose3D /path/to/VideoPose3D
    python benchmarks/baseline_parity.py --videopose3d /path/to/VideoPose3D [--folds S1,S6] [--seeds 0,1]

For every held-out person (``--folds``, leave-one-person-out over the four CMU people of
``benchmarks/cross_validate.py``, whose dataset it builds or reuses) and seed, it trains

- VideoPose3D's own ``run.py`` (a checkout you provide; nothing is downloaded) on the same
  Human3.6M-layout files, with ``torch.manual_seed(seed)`` before it starts (its code seeds
  only its batch order), in a subprocess; its final weights are passed back as safetensors;
- ``jointpose train --no-constraints`` with the same flags and seed (``--joint-aware``: the
  joint-aware model at its defaults instead, the comparison issue 20 asks for beside
  VideoPose3D's code);

then scores both networks with jointpose's evaluator on the held-out person (flip
averaging, as VideoPose3D's test-time augmentation; P1-P3 averaged over frames; the
joint-aware model with its own inference step: alignment with the 2D, skeleton fit), and prints
each run, the means, and the ratio jointpose / VideoPose3D per seed. Training time is
wall-clock, one torch thread each (``--threads``), the runs one after another.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from cross_validate import PEOPLE, ProtocolTrainer, config_of, protocol_dataset
from safetensors.torch import load_file, save_file

from jointpose.data.h36m import load_dataset
from jointpose.evaluation.evaluate import evaluate_model
from jointpose.model.predict import configured_step
from jointpose.model.temporal import TemporalModel

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("p1", "p2", "p3", "mpjve", "accel")

# Runs VideoPose3D's run.py in this process's namespace and writes the trained pose model's
# weights (run.py keeps them in its global ``model_pos``) as safetensors.
_VIDEOPOSE3D = """
import runpy, sys, torch
from safetensors.torch import save_file
code, seed, threads, out = sys.argv[1:5]
torch.manual_seed(int(seed))
torch.set_num_threads(int(threads))
sys.path.insert(0, code)
sys.argv = ["run.py", *sys.argv[5:]]
names = runpy.run_path(code + "/run.py", run_name="__main__")
save_file({k: v.contiguous() for k, v in names["model_pos"].state_dict().items()}, out)
"""


def common_flags(args: argparse.Namespace, fold: str) -> list[str]:
    """Flags both programs read the same way."""
    train = ",".join(p for p in PEOPLE.values() if p != fold)
    return [
        *("-k", "noisy", "-str", train, "-ste", fold, "-arc", args.arc, "-ch", str(args.channels)),
        *("-e", str(args.epochs), "--downsample", str(args.downsample), "-b", str(args.batch_size)),
    ]


def train_videopose3d(args: argparse.Namespace, data: Path, fold: str, seed: int, folder: Path) -> tuple[Path, float]:
    """VideoPose3D's run.py on ``data`` (cached in ``folder``); its weights and training seconds."""
    weights = folder / "model_pos.safetensors"
    if not weights.exists():
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "checkpoint").mkdir(exist_ok=True)
        for file in data.glob("data_*.npz"):  # run.py reads data/data_{3d,2d}_h36m*.npz from its cwd
            link = folder / "data" / file.name
            if not link.exists():
                link.symlink_to(file.resolve())
        flags = [*common_flags(args, fold), "-c", "checkpoint", "--no-eval"]
        start = time.time()
        log = folder / "run.log"
        with log.open("w") as out:
            code = [sys.executable, "-c", _VIDEOPOSE3D, str(args.videopose3d), str(seed), str(args.threads)]
            done = subprocess.run(
                [*code, str(weights), *flags],
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
            )
        if done.returncode != 0:
            raise SystemExit(f"VideoPose3D's run.py failed (exit {done.returncode}); see {log}")
        (folder / "seconds").write_text(f"{time.time() - start:.1f}\n")
    return weights, float((folder / "seconds").read_text())


def train_jointpose(args: argparse.Namespace, data: Path, fold: str, seed: int, folder: Path) -> tuple[Path, float]:
    """``jointpose train`` with the same flags (``--no-constraints`` unless ``--joint-aware``);
    its weights and training seconds. The model's inference step goes to ``inference.json``."""
    weights = folder / "model_pos.safetensors"
    if not weights.exists():
        flags = ["--data-dir", str(data), *common_flags(args, fold), "--seed", str(seed)]
        flags += [*([] if args.joint_aware else ["--no-constraints"]), "--no-progress", "--keep-last", "1"]
        flags += shlex.split(args.jointpose_flags)
        trainer = ProtocolTrainer(config_of([*flags, "--device", "cpu"], str(folder / "ckpt")))
        start = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.fit()
        seconds = time.time() - start
        step = {"normalization": trainer.config.normalization, **configured_step(trainer.config.to_dict())}
        (folder / "inference.json").write_text(json.dumps(step) + "\n")
        save_file({k: v.contiguous() for k, v in trainer.evaluation_model().state_dict().items()}, weights)
        (folder / "seconds").write_text(f"{seconds:.1f}\n")
    return weights, float((folder / "seconds").read_text())


def score(args: argparse.Namespace, weights: Path, data: Path, fold: str) -> dict[str, float]:
    """P1-P3, MPJVE, acceleration error (mm) of a VideoPose3D-architecture network on ``fold``,
    with the input normalisation and inference step its run wrote beside it (VideoPose3D's:
    screen coordinates, no step)."""
    model = TemporalModel([int(w) for w in args.arc.split(",")], channels=args.channels)
    model.load_state_dict(load_file(weights))
    step_file = weights.parent / "inference.json"
    step = json.loads(step_file.read_text()) if step_file.exists() else {}
    normalization = step.get("normalization", "screen")
    test = load_dataset(data, "noisy", [fold], downsample=args.downsample, normalization=normalization)
    result = evaluate_model(
        model.eval(),
        test.sequences,
        flip_test=True,
        keypoints_left=test.keypoints_left,
        keypoints_right=test.keypoints_right,
        skeleton_fit=step.get("skeleton_fit", False),
        smooth=step.get("smooth", 0.0),
        align=step.get("align_2d", 0.0),
        fps=test.fps,
    )
    return {k: float(result.summary["average"][k]) for k in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videopose3d", type=Path, required=True, help="a checkout of VideoPose3D (its run.py)")
    parser.add_argument("--cmu", type=Path, default=ROOT.parent / "shared" / "data" / "cmu-mocap")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "parity")
    parser.add_argument("--data", type=Path, default=None, help="the protocol dataset (default: --work/data)")
    parser.add_argument("--folds", default="S1,S6")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--arc", default="3,3,3")
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--downsample", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--joint-aware",
        action="store_true",
        help="train jointpose's joint-aware model at its defaults instead of --no-constraints",
    )
    parser.add_argument(
        "--label", default=None, help="name of the jointpose runs, cached under it (jointpose or jointpose-joint-aware)"
    )
    parser.add_argument(
        "--jointpose-flags",
        default="",
        help='further jointpose train flags (e.g. "-drop 0.15" or "--no-bn-floor"; needs --label)',
    )
    args = parser.parse_args()
    if args.jointpose_flags and not args.label:
        parser.error("--jointpose-flags needs --label: the runs are cached under their label, not their flags")
    args.label = args.label or ("jointpose-joint-aware" if args.joint_aware else "jointpose")
    if not (args.videopose3d / "run.py").is_file():
        parser.error(f"--videopose3d: no run.py in {args.videopose3d}")
    torch.set_num_threads(args.threads)
    data = protocol_dataset(args.cmu, args.data or args.work / "data")
    rows: dict[str, list[dict[str, float]]] = {"VideoPose3D": [], args.label: []}
    print(f"{'run':<34}{'train s':>9}" + "".join(f"{m:>9}" for m in METRICS))
    for fold in args.folds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            tag = f"{fold}-s{seed}-{args.arc.replace(',', '')}-c{args.channels}-e{args.epochs}-d{args.downsample}"
            for name, train in (("VideoPose3D", train_videopose3d), (args.label, train_jointpose)):
                weights, seconds = train(args, data, fold, seed, args.work / "runs" / f"{name}-{tag}")
                row = {"seconds": seconds, **score(args, weights, data, fold)}
                rows[name].append(row)
                label = f"{name} held out {fold} seed {seed}"
                print(f"{label:<34}{seconds:>9.0f}" + "".join(f"{row[m]:>9.2f}" for m in METRICS), flush=True)
    print()
    for name, runs in rows.items():
        cells = "".join(f"{np.mean([r[m] for r in runs]):>9.2f}" for m in METRICS)
        print(f"{name + ' mean':<34}{np.mean([r['seconds'] for r in runs]):>9.0f}{cells}")
    ratios = {
        m: [a[m] / b[m] for a, b in zip(rows[args.label], rows["VideoPose3D"], strict=True)]
        for m in ("seconds", *METRICS)
    }
    print(f"\n{args.label} / VideoPose3D, mean ± std over runs (the same fold and seed):")
    for m in ("seconds", *METRICS):
        per_run = ", ".join(f"{r:.3f}" for r in ratios[m])
        print(f"  {m:<8} {np.mean(ratios[m]):.3f} ± {np.std(ratios[m]):.3f}   ({per_run})")


if __name__ == "__main__":
    main()
