"""The benchmark scripts score as jointpose itself does.

benchmarks/baseline_parity.py trains VideoPose3D's code beside jointpose (a checkout this test
does not have); its jointpose half and its scorer run here on a small file in the protocol's
layout. The scorer rebuilds the network from bare weights, so it must read the run's input
normalisation and inference step from ``inference.json``: scored with screen inputs, the
joint-aware model's P1 was 1.4-1.7 times its own evaluation's.

benchmarks/cross_validate.py on a dataset of the user's own (``--data-dir``): each fold trains
on the other people of ``--people`` and is scored on the one held out, as ``jointpose
evaluate`` scores that person.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from h36m_files import write_dataset
from jointpose.cli import main

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = {  # the protocol's people
    "S1": {"Walking 1": 90},
    "S5": {"Walking 1": 80},
    "S6": {"Walking 1": 70},
    "S7": {"Walking 1": 60},
}


@pytest.fixture(scope="module")
def benchmarks():
    """benchmarks/ importable: its scripts import each other as plain modules."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def parity(benchmarks):
    """benchmarks/baseline_parity.py as a module."""
    import baseline_parity

    return baseline_parity


@pytest.fixture(scope="module")
def cross_validate(benchmarks):
    """benchmarks/cross_validate.py as a module."""
    import cross_validate

    return cross_validate


@pytest.mark.parametrize("joint_aware", [False, True], ids=["baseline", "joint-aware"])
def test_parity_scores_a_run_as_jointpose_evaluate_does(parity, tmp_path, capsys, joint_aware):
    data = write_dataset(tmp_path / "data", PEOPLE, name="noisy", noise_px=3.0)
    args = argparse.Namespace(
        arc="3,3",
        channels=16,
        epochs=1,
        downsample=1,
        batch_size=64,
        threads=1,
        joint_aware=joint_aware,
        jointpose_flags="--smooth 1.5" if joint_aware else "",  # the joint-aware run's filter, passed on
    )
    folder = tmp_path / "run"
    weights, seconds = parity.train_jointpose(args, data, "S6", 0, folder)
    assert weights.is_file() and seconds > 0

    step = json.loads((folder / "inference.json").read_text())
    assert step["skeleton_fit"] is joint_aware
    assert (step["normalization"] == "screen") is not joint_aware
    assert step["smooth"] == (1.5 if joint_aware else 0.0)
    assert step["align_2d"] == (0.75 if joint_aware else 0.0)

    scored = parity.score(args, weights, data, "S6")
    report = tmp_path / "evaluation.json"
    flags = ["--data-dir", str(data), "-k", "noisy", "-ste", "S6", "--downsample", "1", "--device", "cpu"]
    assert main(["evaluate", *flags, "--checkpoint", str(folder / "ckpt"), "--json", str(report)]) == 0
    capsys.readouterr()
    evaluated = json.loads(report.read_text())["average"]
    for metric in parity.METRICS:
        assert scored[metric] == pytest.approx(evaluated[metric], rel=1e-4, abs=1e-3), metric


def test_folds_of_a_users_dataset_score_the_person_held_out(cross_validate, tmp_path, monkeypatch, capsys):
    people = {"S1": {"Walking 1": 90}, "S8": {"Walking 1": 80}, "S9": {"Walking 1": 70}}
    data = write_dataset(tmp_path / "data", people, name="cpn", noise_px=3.0)
    work = tmp_path / "work"
    protocol = ["--data-dir", str(data), "--keypoints", "cpn", "--people", "S1,S8,S9", "--work", str(work)]
    small = ["--folds", "S9", "--seeds", "0", "--epochs", "1", "--channels", "16", "--arc", "3,3", "--name", "mine"]
    monkeypatch.setattr(sys, "argv", ["cross_validate.py", *protocol, *small])
    cross_validate.main()
    summary = json.loads((work / "mine.json").read_text())
    assert set(summary["summary"]["folds"]) == {"S9"}
    runs = {model: summary["runs"][model]["S9"]["0"] for model in ("baseline", "joint")}
    for model, run in runs.items():
        args = run["args"]
        assert args[args.index("-str") + 1] == "S1,S8" and args[args.index("-ste") + 1] == "S9"
        assert args[args.index("-k") + 1] == "cpn" and ("--no-constraints" in args) == (model == "baseline")
        folder = next(work.glob(f"runs/{model}-S9-s0-*"))
        report = tmp_path / f"{model}.json"
        flags = ["--data-dir", str(data), "-k", "cpn", "-ste", "S9", "--downsample", "1", "--device", "cpu"]
        assert main(["evaluate", *flags, "--checkpoint", str(folder / "ckpt"), "--json", str(report)]) == 0
        assert run["average"]["p1"] == pytest.approx(json.loads(report.read_text())["average"]["p1"], rel=1e-4)
    ratio = summary["summary"]["all"]["joint/baseline"]["p1"][0]
    assert ratio == pytest.approx(runs["joint"]["average"]["p1"] / runs["baseline"]["average"]["p1"])
    capsys.readouterr()


def test_a_fold_outside_the_people_is_refused(cross_validate, tmp_path, monkeypatch):
    argv = [
        "cross_validate.py",
        "--data-dir",
        str(tmp_path),
        "--people",
        "S1,S8",
        "--folds",
        "S9",
        "--work",
        str(tmp_path),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="--folds S9: not among --people S1,S8"):
        cross_validate.main()
