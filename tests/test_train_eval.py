import csv
import json

import numpy as np
import pytest
import torch

from jointpose.batching import ChunkedWindows
from jointpose.cli import main
from jointpose.data import load_dataset
from jointpose.losses import mpjpe
from jointpose.model import StridedTemporalModel


def test_training_overfits_a_small_batch(h36m_dir):
    torch.manual_seed(0)
    data = load_dataset(h36m_dir, "gt", ["S1"], ["Walking"])
    model = StridedTemporalModel((3, 3), channels=64, dropout=0.0)
    windows = ChunkedWindows(data.sequences, model.receptive_field(), chunk=1)
    batch = windows.gather(torch.arange(0, len(windows), 9)[:64])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def error() -> float:
        model.eval()
        with torch.no_grad():
            return float(mpjpe(model(batch.inputs), batch.targets))

    before = error()
    model.train()
    for _ in range(150):
        optimizer.zero_grad()
        mpjpe(model(batch.inputs), batch.targets).backward()
        optimizer.step()
    after = error()
    assert after < before / 2, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("constraints", [False, True])
def test_train_evaluate_export_end_to_end(h36m_dir, tmp_path, capsys, constraints):
    ckpt = tmp_path / "ckpt"
    args = ["train", "--data-dir", str(h36m_dir), "-k", "gt", "-str", "S1,S5", "-ste", "S9,S11",
            "-arc", "3,3", "-ch", "32", "-e", "1", "-b", "256", "--checkpoint", str(ckpt), "--no-progress"]
    if not constraints:
        args.append("--no-constraints")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Average" in out and "P1 MPJPE" in out
    assert (ckpt / "epoch_001.pt").is_file() and (ckpt / "latest.pt").is_file()
    assert (ckpt / "learning_curve.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(ckpt / "log.csv")))
    assert len(rows) == 1 and {"mpjpe", "sym", "bone", "angle", "rom", "vel", "acc", "ang_vel", "ang_acc"} <= set(rows[0])
    latest = torch.load(ckpt / "latest.pt", weights_only=True)
    assert latest["config"]["constraints"] is constraints and latest["model_args"]["channels"] == 32

    results, preds = tmp_path / "results.json", tmp_path / "preds.npz"
    assert main(["evaluate", "--data-dir", str(h36m_dir), "-k", "gt", "-ste", "S9,S11", "--checkpoint", str(ckpt),
                 "--json", str(results), "--export-predictions", str(preds), "--by-subject"]) == 0
    summary = json.loads(results.read_text())
    assert set(summary) == {"config", "actions", "average", "subjects"}
    assert set(summary["actions"]) == {"Walking", "Directions"}
    assert set(summary["subjects"]) == {"S9", "S11"}
    for row in list(summary["actions"].values()) + [summary["average"]]:
        assert {"p1", "p2", "p3", "mpjve", "accel", "frames"} <= set(row)
        assert all(np.isfinite(row[k]) for k in ("p1", "p2", "p3", "mpjve", "accel"))
    assert summary["average"]["frames"] == 4 * (120 + 110 + 100 + 90)
    exported = np.load(preds)
    assert set(exported.files) == {f"{s}/{a}/{c}" for s, acts in {"S9": ["Walking", "Directions 1"], "S11": ["Walking 1", "Directions"]}.items()
                                   for a in acts for c in range(4)}
    assert exported["S9/Walking/0"].shape == (120, 17, 3)
    assert np.all(exported["S11/Directions/3"][:, 0] == 0)

    # Without -k / -ste the checkpoint's keypoints and test subjects are used; an exported
    # .safetensors model evaluates to the same figures as its checkpoint.
    from jointpose.lifter import Lifter

    model_file = Lifter.load(ckpt).save(tmp_path / "model.safetensors")
    for source, name in ((ckpt, "defaults.json"), (model_file, "exported.json")):
        extra = [] if source == ckpt else ["-k", "gt", "-ste", "S9,S11"]
        assert main(["evaluate", "--data-dir", str(h36m_dir), "--checkpoint", str(source), *extra,
                     "--json", str(tmp_path / name)]) == 0
        other = json.loads((tmp_path / name).read_text())
        assert other["config"]["evaluated_on"]["subjects"] == ["S9", "S11"]
        assert other["average"]["p1"] == pytest.approx(summary["average"]["p1"], abs=1e-3)
        assert other["average"]["bone_std"] == pytest.approx(summary["average"]["bone_std"], abs=1e-3)


def test_resume_refuses_mismatched_architecture(h36m_dir, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    base = ["train", "--data-dir", str(h36m_dir), "-k", "gt", "-str", "S1", "-ste", "S9", "-b", "512",
            "-ch", "16", "-e", "1", "--checkpoint", str(ckpt), "--no-progress", "--no-constraints"]
    assert main(base + ["-arc", "3,3"]) == 0
    capsys.readouterr()
    assert main(base + ["-arc", "3,3,3", "--resume", "-e", "2"]) == 2
    err = capsys.readouterr().err
    assert "-arc [3, 3] in the checkpoint vs [3, 3, 3] now" in err and "Traceback" not in err
    assert main(base + ["-arc", "3,3"]) == 2  # refusing to overwrite an existing run
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
def test_ablation_compares_both_models(h36m_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    assert main(["ablate", "--data-dir", str(h36m_dir), "-k", "gt", "-str", "S1,S5", "-ste", "S9", "-arc", "3,3",
                 "-ch", "16", "-e", "1", "-b", "512", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "baseline vs joint-aware" in text and "change" in text
    result = json.loads((out / "ablation.json").read_text())
    assert result["baseline"]["average"]["p1"] > 0 and result["joint-aware"]["average"]["p1"] > 0
    assert load_ckpt(out / "baseline")["config"]["constraints"] is False
    assert load_ckpt(out / "joint-aware")["config"]["constraints"] is True
    assert main(["ablate", "--data-dir", str(h36m_dir), "-k", "gt", "--out", str(out)]) == 2  # not empty


def load_ckpt(folder):
    return torch.load(folder / "latest.pt", weights_only=True)


@pytest.mark.slow
def test_2048_channels_end_to_end(h36m_dir, tmp_path):
    ckpt = tmp_path / "wide"
    assert main(["train", "--data-dir", str(h36m_dir), "-k", "gt", "-str", "S1", "-ste", "S9", "-arc", "3", "-ch", "2048",
                 "-e", "1", "-b", "512", "--checkpoint", str(ckpt), "--no-progress"]) == 0
    saved = load_ckpt(ckpt)
    assert saved["model_args"]["channels"] == 2048 and saved["model"]["expand_conv.weight"].shape[0] == 2048
    assert main(["evaluate", "--data-dir", str(h36m_dir), "-k", "gt", "-ste", "S9", "--checkpoint", str(ckpt),
                 "--json", str(tmp_path / "r.json")]) == 0
    assert np.isfinite(json.loads((tmp_path / "r.json").read_text())["average"]["p1"])
