"""Semi-supervised back-projection (-sun) vs supervised-only training, on people not labelled.

Data: the CMU clips with the Human3.6M cameras and noisy 2D, built as
``benchmarks/cross_validate.py`` builds them (001=S1, 002=S5, 003=S6, 005=S7). S1 alone is
labelled. Every model is scored on S6 and S7 separately:

* supervised: trained on S1 alone (both test people unseen);
* ``-sun S5,S6,S7``: S1 labelled, S5, S6, S7 unlabelled (2D only): S6 and S7 are scored as
  people whose 2D the model trained on without their 3D;
* ``-sun S5,S6``: S7's 2D left out too, so S7 is scored as a person never seen at all.

All at equal epochs (the same labelled steps; a semi-supervised step also carries as many
unlabelled frames, so it costs about twice the compute), for the ``--no-constraints``
baseline and the joint-aware model; the bone-length guard at VideoPose3D's weight and off
(``--w-bone-guard 0``: the four people differ in size); the joint-aware model without its
target-free terms on the unlabelled data (``--no-unlabeled-constraints``), to measure those
on their own; multi-view consistency (``--w-multiview``) for both models, also with every
unlabelled person weighed equally (``--balance-unlabeled``); and, as bounds,
supervised training with S5's 3D as well (``-str S1,S5``: what labelling one more person
brings) and with S6's (``-str S1,S6``: what S6's own 3D brings S6, where ``-sun`` has its
2D only). Prints P1/P2/P3 per run for each person and for both together (``S6+S7``: the P1
that ``jointpose train -ste S6,S7`` reports, errors pooled per action group over both people,
then averaged over the groups, as in the Human3.6M literature), then the means +- standard
deviations over seeds and the ratios of chosen pairs of runs taken per seed; states its cost.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/semi_supervised.py --seeds 0,1,2

Runs are cached under ``--work``/runs by their training configuration (as in
cross_validate.py); the summary goes to ``--work``/<name>.json. Cost at the defaults (18
runs per seed, 10 epochs, one torch thread): about 3,000 s of training and scoring for
seeds 0-2 on the project's 2-core CPU, two processes at a time (supervised runs 16-58 s,
semi-supervised 37-101 s; a cached result without the S6+S7 figure is re-scored from its
checkpoint in a few seconds); run one process per seed (``--seeds 0``, ``--seeds 1`` ...)
and then ``--seeds 0,1,2`` to print the joint summary from the cache.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_validate import ProtocolTrainer, config_of, mean_std, protocol_dataset, ratio, run_key  # noqa: E402

from jointpose.errors import JointposeWarning  # noqa: E402
from jointpose.evaluation.evaluate import evaluate_checkpoint  # noqa: E402
from jointpose.safeio import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TESTED = ("S6", "S7")
POOLED = "S6+S7"  # both people as `jointpose evaluate -ste S6,S7` scores them: action groups pooled, then averaged
PEOPLE = (*TESTED, POOLED)
# In every key of a semi-supervised run on ray input (the joint-aware default): runs cached
# when its reprojection error was in rays are not reused. Screen input is unchanged.
REPROJECTION = "reprojection error in screen units"
METRICS = ("p1", "p2", "p3")
# key -> (label, unlabelled subjects or None, mode, extra flags)
RUNS = {
    "sup-base": ("supervised, baseline", None, "baseline", ""),
    "sup-joint": ("supervised, joint-aware", None, "joint", ""),
    "semi3-base": ("-sun S5,S6,S7 baseline", "S5,S6,S7", "baseline", ""),
    "semi3-base-g0": ("-sun S5,S6,S7 baseline, guard 0", "S5,S6,S7", "baseline", "--w-bone-guard 0"),
    "semi3-joint-g0": ("-sun S5,S6,S7 joint, guard 0", "S5,S6,S7", "joint", "--w-bone-guard 0"),
    "semi3-joint-g0-nou": (
        "-sun S5,S6,S7 joint, guard 0, no unlab. terms",
        "S5,S6,S7",
        "joint",
        "--w-bone-guard 0 --no-unlabeled-constraints",
    ),
    "semi2-base-g0": ("-sun S5,S6 baseline, guard 0", "S5,S6", "baseline", "--w-bone-guard 0"),
    "semi2-joint-g0": ("-sun S5,S6 joint, guard 0", "S5,S6", "joint", "--w-bone-guard 0"),
    "semi3-joint-mv01": (
        "-sun S5,S6,S7 joint, guard 0, multi-view 0.1",
        "S5,S6,S7",
        "joint",
        "--w-bone-guard 0 --w-multiview 0.1",
    ),
    "semi3-joint-mv003": (
        "-sun S5,S6,S7 joint, guard 0, multi-view 0.03",
        "S5,S6,S7",
        "joint",
        "--w-bone-guard 0 --w-multiview 0.03",
    ),
    "semi3-joint-mv01-nou": (
        "-sun S5,S6,S7 joint, guard 0, multi-view 0.1, no unlab. terms",
        "S5,S6,S7",
        "joint",
        "--w-bone-guard 0 --w-multiview 0.1 --no-unlabeled-constraints",
    ),
    "semi3-base-mv01": (
        "-sun S5,S6,S7 baseline, guard 0, multi-view 0.1",
        "S5,S6,S7",
        "baseline",
        "--w-bone-guard 0 --w-multiview 0.1",
    ),
    "semi3-joint-mv01-bal": (
        "-sun S5,S6,S7 joint, guard 0, multi-view 0.1, balanced",
        "S5,S6,S7",
        "joint",
        "--w-bone-guard 0 --w-multiview 0.1 --balance-unlabeled",
    ),
    "semi3-base-mv01-bal": (
        "-sun S5,S6,S7 baseline, guard 0, multi-view 0.1, balanced",
        "S5,S6,S7",
        "baseline",
        "--w-bone-guard 0 --w-multiview 0.1 --balance-unlabeled",
    ),
    "sup2-joint": ("supervised S1,S5, joint-aware (S5's 3D)", None, "joint", "-str S1,S5"),
    "sup2-base": ("supervised S1,S5, baseline (S5's 3D)", None, "baseline", "-str S1,S5"),
    "sup6-joint": ("supervised S1,S6, joint-aware (S6's 3D)", None, "joint", "-str S1,S6"),
    "sup6-base": ("supervised S1,S6, baseline (S6's 3D)", None, "baseline", "-str S1,S6"),
}
# (run, its reference at the same seed): the ratios printed
COMPARISONS = (
    ("semi3-base", "sup-base"),
    ("semi3-base-g0", "sup-base"),
    ("semi3-joint-g0", "sup-joint"),
    ("semi3-joint-g0-nou", "sup-joint"),
    ("semi3-joint-g0", "semi3-joint-g0-nou"),
    ("semi2-base-g0", "sup-base"),
    ("semi2-joint-g0", "sup-joint"),
    ("sup-joint", "sup-base"),
    ("semi3-joint-g0", "semi3-base-g0"),
    ("semi3-joint-mv01", "sup-joint"),
    ("semi3-joint-mv003", "sup-joint"),
    ("semi3-joint-mv01", "semi3-joint-g0"),
    ("semi3-joint-mv01-nou", "sup-joint"),
    ("semi3-joint-mv01-nou", "semi3-joint-g0-nou"),
    ("semi3-base-mv01", "sup-base"),
    ("semi3-base-mv01", "semi3-base-g0"),
    ("semi3-joint-mv01-bal", "sup-joint"),
    ("semi3-joint-mv01-bal", "semi3-joint-mv01"),
    ("semi3-base-mv01-bal", "sup-base"),
    ("semi3-base-mv01-bal", "semi3-base-mv01"),
    ("sup2-joint", "sup-joint"),
    ("sup2-base", "sup-base"),
    ("sup6-joint", "sup-joint"),
    ("sup6-base", "sup-base"),
)


class PerPersonTrainer(ProtocolTrainer):
    """Scores the last epoch on each tested person and on both together (flip averaging and,
    for the joint-aware model, its inference step, as ``jointpose train`` does)."""

    def final_evaluation(self) -> dict[str, Any]:
        return people_metrics(super().final_evaluation())


def people_metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{person or POOLED: {metric: mm}} from an evaluation summary made with ``by_subject``."""
    out = {p: {m: summary["subjects"][p][m] for m in METRICS} for p in TESTED}
    return {**out, POOLED: {m: summary["average"][m] for m in METRICS}}


def add_pooled(result: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A cached result from before POOLED was scored, re-scored from its checkpoint on the
    run's own data, keypoints and test people; the per-person figures must come out as cached."""
    config = config_of(result["args"], str(folder / "ckpt"))
    scored = evaluate_checkpoint(
        folder / "ckpt",
        config.data_dir,
        config.keypoints,
        list(config.subjects_test),
        by_subject=True,
        downsample=config.downsample,
        device="cpu",
        flip_test=config.test_time_augmentation,
    )
    people = people_metrics(scored.summary)
    for person in TESTED:
        for m in METRICS:
            if abs(people[person][m] - result[person][m]) > 1e-3:
                raise RuntimeError(
                    f"{folder}: re-scored {person} {m} {people[person][m]} != cached {result[person][m]}"
                )
    return {**result, POOLED: people[POOLED]}


def train_args(
    data: Path, unlabelled: str | None, mode: str, flags: str, seed: int, p: argparse.Namespace
) -> list[str]:
    """``jointpose train`` arguments of one run (without ``--checkpoint``)."""
    args = f"-k noisy -str S1 -ste {','.join(TESTED)} -arc {p.arc} -ch {p.channels} -e {p.epochs} -b {p.batch_size}"
    args += f" --downsample {p.downsample} --seed {seed} --no-progress --keep-last 1 --device cpu"
    args += f" --warmup-unlabeled {p.warmup_unlabeled}"
    args += (f" -sun {unlabelled}" if unlabelled else "") + (" --no-constraints" if mode == "baseline" else "")
    return ["--data-dir", str(data), *args.split(), *flags.split()]


def run_once(args: list[str], folder: Path) -> dict[str, Any]:
    """Train one model (or reuse its cached result): its per-person metrics and seconds."""
    result_file = folder / "result.json"
    if result_file.exists():
        result = json.loads(result_file.read_text())
        if POOLED not in result:
            result = add_pooled(result, folder)
            with atomic_write(result_file, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=1)
        return result
    start = time.time()
    with warnings.catch_warnings():  # the sup6 runs score S6, whose 3D they train on, on purpose
        warnings.filterwarnings("ignore", "subjects_test .*: also in subjects_train", JointposeWarning)
        trainer = PerPersonTrainer(config_of(args, str(folder / "ckpt")))
    with contextlib.redirect_stdout(io.StringIO()):
        people = trainer.fit()
    result = {"args": args, "threads": torch.get_num_threads(), "seconds": round(time.time() - start, 1), **people}
    with atomic_write(result_file, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    return result


def summarise(results: dict[str, dict[int, dict[str, Any]]], seeds: list[int]) -> dict[str, Any]:
    """Per run and person: mean and spread over seeds of each metric, and of each comparison's ratio."""
    runs = {
        name: {p: {m: mean_std([results[name][s][p][m] for s in seeds]) for m in METRICS} for p in PEOPLE}
        for name in results
    }
    ratios = {
        f"{new} / {ref}": {
            p: {m: mean_std([ratio(results[new][s][p][m], results[ref][s][p][m]) for s in seeds]) for m in METRICS}
            for p in PEOPLE
        }
        for new, ref in COMPARISONS
        if new in results and ref in results
    }
    return {"runs": runs, "ratios": ratios}


def format_summary(summary: dict[str, Any], seeds: list[int]) -> str:
    """The two tables (mean +- std over seeds) as text, runs by their labels."""
    head = f"{'':<46}" + "".join(f"{p + ' ' + m.upper():>16}" for p in PEOPLE for m in METRICS)
    lines = ["", f"mm, mean ± std over seeds {','.join(map(str, seeds))}", head]
    for name, people in summary["runs"].items():
        cells = "".join(f"{people[p][m][0]:>9.1f} ±{people[p][m][1]:<5.1f}" for p in PEOPLE for m in METRICS)
        lines.append(f"{RUNS[name][0]:<46}{cells}")
    lines += ["", "ratios, per seed then mean ± std", head]
    for name, people in summary["ratios"].items():
        new, ref = name.split(" / ")
        cells = "".join(f"{people[p][m][0]:>9.3f} ±{people[p][m][1]:<5.3f}" for p in PEOPLE for m in METRICS)
        lines += [f"{RUNS[new][0]}", f"  ÷ {RUNS[ref][0][:42]:<42}{cells}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, default, text in (
        ("--name", "semi-supervised", "summary name: writes --work/NAME.json"),
        ("--cmu", str(ROOT.parent / "shared" / "data" / "cmu-mocap"), "the CMU clips"),
        ("--work", str(ROOT / "runs" / "semisup"), "dataset, runs and summaries"),
        ("--seeds", "0,1,2", "seeds, comma-separated"),
        ("--arc", "3,3,3", "filter widths"),
    ):
        parser.add_argument(flag, default=default, help=f"{text} (default {default})")
    for flag, default, text in (
        ("--epochs", 10, "epochs of every run"),
        ("--channels", 128, "hidden channels"),
        ("--batch-size", 128, "labelled target frames per step (a semi-supervised step adds as many unlabelled)"),
        ("--downsample", 2, "every N-th frame, training and scoring"),
        ("--warmup-unlabeled", 3, "labelled-only epochs before the unlabelled data joins"),
    ):
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default {default})")
    parser.add_argument("--runs", default=",".join(RUNS), help="which runs (keys of RUNS, comma-separated)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = protocol_dataset(Path(args.cmu), work / "data")
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in RUNS if n in args.runs.split(",")]
    results: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in names}
    start, trained = time.time(), 0.0
    for seed in seeds:
        for name in names:
            _, unlabelled, mode, flags = RUNS[name]
            run_args = train_args(data, unlabelled, mode, flags, seed, args)
            rays = config_of(run_args, "unused").resolved().normalization == "intrinsics"
            changes = (REPROJECTION,) if unlabelled and rays else ()
            key = run_key(run_args, args.threads, *changes)
            run = run_once(run_args, work / "runs" / f"{name}-s{seed}-{key}")
            results[name][seed] = run
            trained += run["seconds"]
            cells = "  ".join(
                f"{p} P1 {run[p]['p1']:6.1f} P2 {run[p]['p2']:6.1f} P3 {run[p]['p3']:6.1f}" for p in PEOPLE
            )
            print(f"{RUNS[name][0]:<46} seed {seed}: {cells}  ({run['seconds']:.0f} s)", flush=True)
    summary = summarise(results, seeds) if all(len(r) == len(seeds) for r in results.values()) else None
    if summary:
        print(format_summary(summary, seeds))
    cost = {"wall_seconds": round(time.time() - start), "train_seconds": round(trained)}
    print(f"\n{len(names) * len(seeds)} runs with {args.threads} torch thread(s): {cost['train_seconds']} s of")
    print(f"training and scoring (a cached run counts its original time), {cost['wall_seconds']} s this time")
    protocol = {k: v for k, v in vars(args).items() if k not in ("cmu", "work")}
    with atomic_write(work / f"{args.name}.json", "w", encoding="utf-8") as handle:
        json.dump({"protocol": protocol, "cost": cost, "summary": summary, "runs": results}, handle, indent=1)
    print(f"wrote {work / f'{args.name}.json'}")


if __name__ == "__main__":
    main()
