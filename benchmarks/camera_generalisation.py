"""Any camera: does a model trained on random cameras work on camera setups it never saw?

Builds (once, cached in ``--work``/data-SETUP) the CMU clips of the four people (001=S1,
002=S5, 003=S6, 005=S7, bodies as benchmarks/cross_validate.py draws them) seen by each
camera setup, with detector-like noise and 2D as ``jointpose infer`` derives it from COCO
detections:

* ``h36m``   - Human3.6M's four calibrated cameras;
* ``ring``   - the bundled models' rig: six cameras 6 m away, 1.6 m high, 1000x1000 px;
* ``phone``  - a phone held in portrait: 1080x1920, 26 mm-equivalent lens, 3 m away, 1.5 m
  high, pitched 20 degrees down;
* ``corner`` - a high corner camera: 1920x1080, 90 degrees wide, 4 m away, 3 m high, pitched
  35 degrees down;
* ``low``    - a low camera: 1280x720, 70 degrees wide, 4 m away, 0.4 m high, aimed at the person.

Each setup other than Human3.6M's has four cameras around the person (further out where a
clip's motion needs it: at least 1 m from every joint). For each leave-one-person-out fold it trains, at equal epochs:
``random`` (``--random-cameras``, intrinsics-aware input), ``random-screen`` (the same with
VideoPose3D's image-width normalisation: the normalisation's own share) and one model per
setup trained on that setup itself, then scores every model on every setup's held-out
person; the random model also with its focal length read 20% short and 20% long
(``random f x0.8`` / ``x1.2``: the cost of a wrong guess). Prints per setup P1/P2/P3/MPJVE/accel and the predicted / true bone-length ratio
(mean over folds and seeds, +- spread), and each random model's P2 / the setup's own model.
With ``--bundled``, the bundled models (trained on S1, S5, S7 of the ring) are scored on the
S6 fold of every setup, with the true intrinsics.

    python benchmarks/camera_generalisation.py                  # 4 folds, seed 0
    python benchmarks/camera_generalisation.py --folds S6 --bundled
    python benchmarks/camera_generalisation.py --bundled-only      # the bundled models alone

Cost: about 7 trainings per fold and seed at the protocol's small settings; see the
printed time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jointpose.data.h36m import load_dataset
from jointpose.evaluation.evaluate import evaluate_model, inference_settings
from jointpose.geometry import skeleton
from jointpose.geometry.cameras import Camera
from jointpose.inference.lifter import Lifter
from jointpose.motion.builder import CameraRing, write_h36m_dataset
from jointpose.motion.mocap import load_bvh_folder
from jointpose.motion.viewpoints import aimed_camera, keep_in_front, placement
from jointpose.training.config import TrainConfig
from jointpose.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = {"001": "S1", "002": "S5", "003": "S6", "005": "S7"}
# (image size, focal length px, distance m, height m, pitch degrees or None: aimed at the person)
FIXED = {
    "phone": ((1080, 1920), 1390.0, 3.0, 1.5, -20.0),
    "corner": ((1920, 1080), 960.0, 4.0, 3.0, -35.0),
    "low": ((1280, 720), 914.0, 4.0, 0.4, None),
}
SETUPS = ("h36m", "ring", *FIXED)
FOCAL_ERRORS = (0.8, 1.2)  # the cost of a wrong focal length: read 20% short or 20% long
METRICS = ("p1", "p2", "p3", "mpjve", "accel", "bone_ratio")


def setup_cameras(name: str, motion: dict[str, dict[str, np.ndarray]]) -> CameraRing | dict[str, list[Camera]] | None:
    """The cameras of a setup for every subject (None: Human3.6M's calibration by subject name)."""
    if name == "h36m":
        return None
    if name == "ring":
        return CameraRing(count=6, distance=6.0, height=1.6)
    size, focal, distance, height, pitch = FIXED[name]
    out = {}
    for subject, clips in motion.items():
        world = np.concatenate(list(clips.values()))
        centre, extent = placement(world)
        reach = max(distance, extent + 1.0)
        limits = (pitch, pitch) if pitch is not None else (-89.0, 89.0)
        out[subject] = [
            keep_in_front(
                aimed_camera(
                    np.array([centre[0] + reach * np.cos(yaw), centre[1] + reach * np.sin(yaw), height]),
                    centre,
                    size,
                    focal,
                    pitch_limits=limits,
                    id=f"{name}{i}",
                ),
                world,
                1.0,
            )
            for i, yaw in enumerate(np.pi / 4 + np.arange(4) * np.pi / 2)
        ]
    return out


def setup_data(name: str, motion: dict[str, dict[str, np.ndarray]], work: Path) -> Path:
    """The dataset of one setup, built once into ``work``/data-NAME."""
    out = work / f"data-{name}"
    if not (out / "data_2d_h36m_noisy.npz").exists():
        write_h36m_dataset(out, motion, fps=50.0, cameras=setup_cameras(name, motion), seed=0, input_layout="coco")
    return out


class QuietTrainer(Trainer):
    """Scores the last epoch only (the per-epoch validation would cost as much as training)."""

    def quick_validation(self) -> float:
        return float("nan")


def train(data: Path, fold: str, seed: int, args: argparse.Namespace, folder: Path, **fields: Any) -> Lifter:
    """Train one model (or load it when already trained) and return it as a lifter."""
    if not (folder / "done").exists():
        config = TrainConfig(
            data_dir=str(data),
            checkpoint_dir=str(folder),
            keypoints="noisy",
            subjects_train=tuple(p for p in PEOPLE.values() if p != fold),
            subjects_test=(fold,),
            architecture=tuple(int(w) for w in args.arc.split(",")),
            channels=args.channels,
            epochs=args.epochs,
            batch_size=args.batch_size,
            downsample=args.downsample,
            subset=args.subset,
            seed=seed,
            progress=False,
            keep_last=1,
            device="cpu",
            **fields,
        )
        start = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            QuietTrainer(config).fit()
        (folder / "done").write_text(f"{time.time() - start:.0f}\n")
    return Lifter.load(folder, device="cpu")


def score(lifter: Lifter, data: Path, fold: str, downsample: int, focal_error: float = 1.0) -> dict[str, float]:
    """P1/P2/P3/MPJVE/accel (mm) of ``lifter`` (its own inference step) on ``fold`` in ``data``,
    and the mean predicted / true bone length. ``focal_error``: the intrinsics-aware input is
    read with the focal length off by this factor (a user's wrong guess)."""
    test = load_dataset(data, "noisy", [fold], downsample=downsample, normalization=lifter.normalization)
    if focal_error != 1.0:
        if lifter.normalization != "intrinsics":
            raise ValueError("a wrong focal length only changes intrinsics-aware input")
        for seq in test.sequences:
            seq.keypoints = seq.keypoints / np.float32(focal_error)
    result = evaluate_model(lifter.model, test.sequences, **inference_settings(lifter, test))
    bones = np.array(skeleton.BONES)

    def lengths(poses: np.ndarray) -> np.ndarray:
        return np.linalg.norm(poses[:, bones[:, 0]] - poses[:, bones[:, 1]], axis=-1).mean(axis=0)

    ratios = [np.mean(lengths(result.predictions[s.key]) / lengths(s.poses_3d)) for s in test.sequences]
    return {**{k: result.summary["average"][k] for k in METRICS[:-1]}, "bone_ratio": float(np.mean(ratios))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmu", default=str(ROOT.parent / "shared" / "data" / "cmu-mocap"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "cameras"))
    parser.add_argument("--folds", default="S1,S5,S6,S7")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--arc", default="3,3,3")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--downsample", type=int, default=2)
    parser.add_argument("--subset", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bundled", action="store_true", help="also score the bundled models on S6")
    parser.add_argument("--bundled-only", action="store_true", help="score the bundled models on S6, train nothing")
    parser.add_argument(
        "--models", default=None, help="only these models, comma-separated (random, random-screen, own:SETUP)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    start = time.time()
    motion = load_bvh_folder(args.cmu, fps=50.0, subjects=PEOPLE, seed=0)
    data = {name: setup_data(name, motion, work) for name in SETUPS}
    folds, seeds = args.folds.split(","), [int(s) for s in args.seeds.split(",")]
    models = {
        "random": ("ring", {"random_cameras": _ranges()}),
        "random-screen": ("ring", {"random_cameras": _ranges(), "normalization": "screen"}),
        **{f"own:{name}": (name, {}) for name in SETUPS},
    }
    if args.bundled_only:
        models, args.bundled = {}, True
    elif args.models:
        wanted = set(args.models.split(","))
        if wanted - set(models):
            parser.error(f"--models: unknown {', '.join(sorted(wanted - set(models)))} (known: {', '.join(models)})")
        models = {m: v for m, v in models.items() if m in wanted}
    scores: dict[str, dict[str, list[dict[str, float]]]] = {m: {s: [] for s in SETUPS} for m in models}
    for fold in folds:
        for seed in seeds:
            for model, (base, fields) in models.items():
                lifter = train(data[base], fold, seed, args, work / "runs" / f"{model}-{fold}-s{seed}", **fields)
                setups = SETUPS if model.startswith("random") else (base,)
                for setup in setups:
                    scores[model][setup].append(score(lifter, data[setup], fold, args.downsample))
                    if model == "random":
                        for factor in FOCAL_ERRORS:
                            runs = scores.setdefault(f"random f x{factor:g}", {s: [] for s in SETUPS})
                            runs[setup].append(score(lifter, data[setup], fold, args.downsample, factor))
                print(f"{model:<14} held out {fold} seed {seed}: trained and scored", flush=True)
    if args.bundled:
        for variant in ("offline", "causal"):
            lifter = Lifter.from_pretrained(variant, device="cpu")
            scores[f"bundled-{variant}"] = {s: [score(lifter, data[s], "S6", args.downsample)] for s in SETUPS}
    report = format_report(scores)
    print(report)
    print(f"\n{time.time() - start:.0f} s ({len(folds)} folds x {len(seeds)} seeds, {args.threads} thread(s))")
    out = work / (
        "camera_generalisation.json" if not args.models else f"camera_generalisation-{len(models)}models.json"
    )
    out.write_text(json.dumps({"protocol": {k: v for k, v in vars(args).items()}, "scores": scores}, indent=1))
    print(f"wrote {out}")


def _ranges():
    from jointpose.motion.viewpoints import CameraRanges

    return CameraRanges()


def format_report(scores: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """Per setup, every model's metrics (mean +- std over folds x seeds) and random / own P2."""
    lines = []
    head = f"{'model':<18}" + "".join(f"{m:>16}" for m in METRICS) + f"{'P2 / own':>12}"
    for setup in SETUPS:
        lines += ["", f"setup {setup}", head]
        own = [r["p2"] for r in scores.get(f"own:{setup}", {}).get(setup, [])]
        for model, per_setup in scores.items():
            runs = per_setup.get(setup, [])
            if not runs:
                continue
            cells = "".join(
                f"{np.mean([r[m] for r in runs]):>9.3f} ±{np.std([r[m] for r in runs]):<5.3f}"
                if m == "bone_ratio"
                else f"{np.mean([r[m] for r in runs]):>9.2f} ±{np.std([r[m] for r in runs]):<5.2f}"
                for m in METRICS
            )
            versus = (
                f"{np.mean([r['p2'] for r in runs]) / np.mean(own):>12.3f}"
                if own and not model.startswith("own")
                else ""
            )
            lines.append(f"{model:<18}{cells}{versus}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
