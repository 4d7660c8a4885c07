"""Leave-one-person-out validation: is a method better on people it never trained on?

Builds (once, cached in ``--work``/data) a dataset from the CMU clips with the Human3.6M
cameras and noisy 2D, one subject per CMU person (001=S1, 002=S5, 003=S6, 005=S7, each
with its own body size and proportions from the dataset builder). Each fold holds one
person out: the model trains on the other three and is scored on that person alone. For
every fold and seed it trains the ``--no-constraints`` baseline (VideoPose3D's recipe, its
own learning rate and dropout) and the joint-aware model (the defaults) at equal compute
(same epochs, steps and target frames), then prints per fold and over folds x seeds the
mean +- standard deviation of every metric and of each joint-aware / baseline ratio (taken
per fold and seed, the same seed for both models).

    python benchmarks/cross_validate.py --name defaults
    python benchmarks/cross_validate.py --name no-bone --joint-flags "--w-bone 0"
    python benchmarks/cross_validate.py --name base-lr3 --baseline-flags "-lr 0.003" --joint-flags "..."

The same protocol runs on any dataset in VideoPose3D's format, such as Human3.6M's own files
(``--data-dir``), over the subjects of ``--people`` (each fold trains on the others):

    python benchmarks/cross_validate.py --data-dir data --keypoints cpn_ft_h36m_dbb \
        --people S1,S5,S6,S7,S8,S9,S11 --work runs/cv-h36m

Every run's result is cached under ``--work``/runs by its training configuration, defaults
resolved (and the thread count, which changes the float sums and so the run), so a
variant that changes only the joint-aware flags reuses the baseline's runs. The summary
goes to ``--work``/<name>.json (``runs/`` is not committed). It trains and scores at 50 fps,
Human3.6M's rate (``--downsample 2``: 25 fps, half the windows), since velocity and
acceleration errors per frame depend on the rate. The protocol's settings (``--epochs``,
``--channels`` ...) keep one full run (4 folds x 3 seeds x 2 models) to about 11 minutes on
this project's 2-core CPU, at the price of models far from convergence; docs/validation.md
states its cost and what that does to its ranking.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jointpose.evaluation.evaluate import evaluate_model
from jointpose.evaluation.plausibility import plausibility_errors
from jointpose.losses import LossWeights
from jointpose.motion.builder import write_h36m_dataset
from jointpose.motion.mocap import load_bvh_folder
from jointpose.training.config import TrainConfig, add_arguments, from_arguments
from jointpose.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = {"001": "S1", "002": "S5", "003": "S6", "005": "S7"}  # CMU folder -> subject name
METRICS = ("p1", "p2", "p3", "mpjve", "accel", "bone_std", "lr_gap", "rom_pct")
MODELS = ("baseline", "joint")
# What an epoch trains on, in every run key: runs cached when an epoch was one pass over the
# windows (each randomly mirrored) are not reused now that it is VideoPose3D's two.
EPOCH = "each window as it is and mirrored"


def protocol_dataset(cmu: Path, out: Path) -> Path:
    """The four people seen by the Human3.6M cameras with noisy 2D, built once into ``out``."""
    if not (out / "data_2d_h36m_noisy.npz").exists():
        motion = load_bvh_folder(cmu, fps=50.0, subjects=PEOPLE, seed=0)
        write_h36m_dataset(out, motion, fps=50.0, seed=0)
    return out


def protocol_data(protocol: argparse.Namespace) -> Path:
    """The folder the protocol trains and scores on: ``--data-dir``, else the four CMU people
    built once into ``--work``/data; refuses folds that are not among ``--people``."""
    people = protocol.people.split(",")
    outside = [fold for fold in protocol.folds.split(",") if fold not in people]
    if outside:
        raise SystemExit(f"--folds {','.join(outside)}: not among --people {protocol.people}")
    if protocol.data_dir is not None:
        return Path(protocol.data_dir)
    if protocol.people != ",".join(PEOPLE.values()):
        raise SystemExit(
            f"--people {protocol.people}: the built data holds {','.join(PEOPLE.values())}; give --data-dir"
        )
    return protocol_dataset(Path(protocol.cmu), Path(protocol.work) / "data")


class ProtocolTrainer(Trainer):
    """A trainer that skips the per-epoch validation: the protocol scores the last epoch only,
    and on held-out people that validation would cost as much as training."""

    def quick_validation(self) -> float:
        return float("nan")


def train_args(
    data: Path, fold: str, people: list[str], seed: int, protocol: argparse.Namespace, model: str, flags: str
) -> list[str]:
    """``jointpose train`` arguments of one run (without the verb and ``--checkpoint``)."""
    args = [
        "--data-dir",
        str(data),
        "-k",
        protocol.keypoints,
        "-str",
        ",".join(p for p in people if p != fold),
        "-ste",
        fold,
        "-arc",
        protocol.arc,
        "-ch",
        str(protocol.channels),
        "-e",
        str(protocol.epochs),
        "-b",
        str(protocol.batch_size),
        "--downsample",
        str(protocol.downsample),
        "--subset",
        str(protocol.subset),
        "--seed",
        str(seed),
        "--no-progress",
        "--keep-last",
        "1",
        "--device",
        "cpu",
    ]
    return args + (["--no-constraints"] if model == "baseline" else []) + shlex.split(flags)


def config_of(args: list[str], checkpoint: str) -> TrainConfig:
    """The training configuration ``args`` (``jointpose train`` flags) describe."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, skip=())
    return from_arguments(parser.parse_args(args + ["--checkpoint", checkpoint]))


LATER_SETTINGS = {"balance_unlabeled": False, "align_2d": 0.0}


def run_key(args: list[str], threads: int, *changes: str) -> str:
    """A short hash of what a run trains: its configuration with every default resolved (so a
    default that changes to the value a run gave explicitly reuses that run), the thread count
    and ``changes``: code changes, named, that train such a run differently from before."""
    config = config_of(args, "unused").resolved().to_dict()
    config = {k: v for k, v in config.items() if k not in ("checkpoint_dir", "progress", "keep_last")}
    # Settings added after runs were cached, with their off value: left off, a run trains as before.
    config = {k: v for k, v in config.items() if not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    if not config["constraints"]:  # the baseline's inference step has no alignment
        config.pop("align_2d", None)
    # A term that is off by default and left off trains nothing: adding such a term keeps every key.
    off = {term for term, weight in LossWeights().as_dict().items() if weight == 0}
    config["weights"] = {term: w for term, w in config["weights"].items() if not (term in off and w == 0)}
    return hashlib.sha256(
        json.dumps([config, threads, EPOCH, *changes], sort_keys=True, default=str).encode()
    ).hexdigest()[:12]


def run_once(args: list[str], folder: Path, raw: bool) -> dict[str, Any]:
    """Train one model (or reuse its cached result) and return its metrics."""
    result_file = folder / "result.json"
    if result_file.exists():
        cached = json.loads(result_file.read_text())
        if not raw or "raw" in cached or not cached["constraints"]:
            return cached
    start = time.time()
    trainer = ProtocolTrainer(config_of(args, str(folder / "ckpt")))
    with contextlib.redirect_stdout(io.StringIO()):
        summary = trainer.fit()
    result = {
        "args": args,
        "threads": torch.get_num_threads(),
        "constraints": trainer.config.constraints,
        "lr": trainer.config.lr,
        "dropout": trainer.config.dropout,
        "seconds": round(time.time() - start, 1),
        "average": {k: summary["average"][k] for k in METRICS},
    }
    if raw and trainer.config.constraints:
        network = evaluate_model(
            trainer.evaluation_model(),
            trainer.test_data.sequences,
            flip_test=trainer.config.test_time_augmentation,
            keypoints_left=trainer.test_data.keypoints_left,
            keypoints_right=trainer.test_data.keypoints_right,
            extra_metrics=plausibility_errors,
            skeleton_fit=False,
            smooth=0.0,
        )
        result["raw"] = {k: network.summary["average"][k] for k in METRICS}
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(result_file)
    return result


def protocol_run(
    data: Path, fold: str, seed: int, protocol: argparse.Namespace, model: str, flags: str, raw: bool = False
) -> tuple[dict[str, Any], Path]:
    """One run of the protocol (trained, or its cached result) and the folder that holds it;
    its checkpoint is the folder's ``ckpt``."""
    args = train_args(data, fold, protocol.people.split(","), seed, protocol, model, flags)
    folder = Path(protocol.work) / "runs" / f"{model}-{fold}-s{seed}-{run_key(args, protocol.threads)}"
    return run_once(args, folder, raw), folder


def ratio(new: float, base: float) -> float:
    """new / base; nan when the baseline is 0 (e.g. no frame outside a range of motion)."""
    return new / base if base else float("nan")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation, ignoring nan; (nan, nan) when none is finite."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    return (float(finite.mean()), float(finite.std())) if len(finite) else (float("nan"), float("nan"))


def summarise(
    results: dict[str, dict[str, dict[int, dict[str, Any]]]], folds: list[str], seeds: list[int]
) -> dict[str, Any]:
    """Per fold and overall: mean and spread of every metric per model and of each ratio."""
    keys = ["joint", *(["raw"] if all("raw" in results["joint"][f][s] for f in folds for s in seeds) else [])]

    def metrics(model: str, fold: str, seed: int) -> dict[str, float]:
        run = results["joint"][fold][seed]
        return run["raw"] if model == "raw" else results[model][fold][seed]["average"]

    def block(pairs: list[tuple[str, int]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in ["baseline", *keys]:
            out[model] = {m: mean_std([metrics(model, f, s)[m] for f, s in pairs]) for m in METRICS}
        for model in keys:
            out[f"{model}/baseline"] = {
                m: mean_std([ratio(metrics(model, f, s)[m], metrics("baseline", f, s)[m]) for f, s in pairs])
                for m in METRICS
            }
        return out

    every = [(f, s) for f in folds for s in seeds]
    return {"folds": {f: block([(f, s) for s in seeds]) for f in folds}, "all": block(every)}


def format_summary(summary: dict[str, Any]) -> str:
    """The per-fold and overall tables as text (mean +- std over seeds, or folds x seeds)."""
    lines = []
    head = f"{'':<22}" + "".join(f"{m:>17}" for m in METRICS)
    for title, block in [
        *((f"held out {f}", b) for f, b in summary["folds"].items()),
        ("all folds x seeds", summary["all"]),
    ]:
        lines += ["", title, head]
        for row, values in block.items():
            cells = "".join(
                f"{values[m][0]:>10.3f} ±{values[m][1]:<5.3f}"
                if "/" in row
                else f"{values[m][0]:>10.2f} ±{values[m][1]:<5.2f}"
                for m in METRICS
            )
            lines.append(f"{row:<22}{cells}")
    return "\n".join(lines)


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The protocol's data, folds, seeds and training settings (shared with the scripts that
    re-read its runs, such as ``velocity_error.py``)."""
    parser.add_argument("--cmu", default=str(ROOT.parent / "shared" / "data" / "cmu-mocap"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "cv"))
    parser.add_argument(
        "--data-dir",
        default=None,
        help="a VideoPose3D-format dataset folder (default: the CMU people built from --cmu)",
    )
    parser.add_argument(
        "--people",
        default=",".join(PEOPLE.values()),
        help="the subjects of the protocol: each fold trains on the others",
    )
    parser.add_argument("--keypoints", default="noisy", help="the 2D trained and scored on (the dataset's -k)")
    parser.add_argument("--folds", default="S1,S5,S6,S7", help="people to hold out, one fold each")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--arc", default="3,3,3")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--downsample", type=int, default=1, help="every N-th frame, training and scoring (1: 50 fps)")
    parser.add_argument("--subset", type=float, default=0.5, help="share of each training sequence")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a busy machine two threads ran one epoch 12x slower)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="defaults", help="summary name: writes --work/NAME.json")
    add_protocol_arguments(parser)
    parser.add_argument("--baseline-flags", default="", help="extra jointpose train flags for the baseline")
    parser.add_argument("--joint-flags", default="", help="extra jointpose train flags for the joint-aware model")
    parser.add_argument(
        "--raw", action="store_true", help="also score the joint-aware network without its inference step"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = protocol_data(args)
    folds = args.folds.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[str, dict[int, dict[str, Any]]]] = {m: {f: {} for f in folds} for m in MODELS}
    start = time.time()
    trained = 0.0
    for fold in folds:
        for seed in seeds:
            for model, flags in (("baseline", args.baseline_flags), ("joint", args.joint_flags)):
                run, _ = protocol_run(data, fold, seed, args, model, flags, args.raw)
                results[model][fold][seed] = run
                trained += run["seconds"]
                p1 = run["average"]["p1"]
                print(f"{model:<8} held out {fold} seed {seed}: P1 {p1:6.2f} mm ({run['seconds']:.0f} s)", flush=True)
    summary = summarise(results, folds, seeds)
    print(format_summary(summary))
    cost = {"wall_seconds": round(time.time() - start), "train_seconds": round(trained)}
    print(
        f"\n{len(folds) * len(seeds) * 2} runs; {cost['train_seconds']} s of training and evaluation "
        f"(cached runs count their original time), {cost['wall_seconds']} s now"
    )
    out = work / f"{args.name}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "protocol": {k: v for k, v in vars(args).items() if k not in ("cmu", "work", "data_dir")},
                "cost": cost,
                "summary": summary,
                "runs": results,
            },
            indent=1,
        )
    )
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
