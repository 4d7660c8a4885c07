"""benchmarks/baseline_parity.py scores a jointpose run as ``jointpose evaluate`` does.

The script trains VideoPose3D's code beside jointpose (a checkout this test does not have);
its jointpose half and its scorer run here on a small file in the protocol's layout. The
scorer rebuilds the network from bare weights, so it must read the run's input
normalisation and inference step from ``inference.json``: scored with screen inputs, the
joint-aware model's P1 was 1.4-1.7 times its own evaluation's.
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
PEOPLE = {
    "S1": {"Walking 1": 90},
    "S5": {"Walking 1": 80},
    "S6": {"Walking 1": 70},
    "S7": {"Walking 1": 60},
}


@pytest.fixture(scope="module")
def parity():
    """benchmarks/baseline_parity.py as a module (it imports cross_validate beside it)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import baseline_parity

        yield baseline_parity
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


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
