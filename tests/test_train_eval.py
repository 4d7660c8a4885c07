import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from h36m_files import cli
from jointpose.cli import build_parser, main
from jointpose.data.batching import ChunkedWindows, MixedBatch
from jointpose.data.h36m import load_dataset
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.losses import TERMS, JointAwareLoss, LossWeights, mpjpe
from jointpose.model.temporal import StridedTemporalModel
from jointpose.training.config import TrainConfig


def _kabsch_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-frame mean joint error (metres) after the best rotation, scale and translation of
    ``pred`` onto ``true`` (F, J, 3), a proper rotation (no mirror), by SVD."""
    p, t = pred - pred.mean(1, keepdims=True), true - true.mean(1, keepdims=True)
    u, sigma, vt = np.linalg.svd(np.einsum("fji,fjk->fik", p, t))
    signs = np.ones_like(sigma)
    signs[:, 2] = np.sign(np.linalg.det(u @ vt))
    rotation = u @ (signs[:, :, None] * vt)
    scale = (sigma * signs).sum(-1) / (p * p).sum((1, 2))
    return np.linalg.norm(scale[:, None, None] * p @ rotation - t, axis=-1).mean(-1)


def _independent_average(predictions: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """P1, P2, P3, MPJVE and acceleration error (mm): per frame, pooled per action group
    (the action's name before any space), then the unweighted mean over groups."""
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    for key, true in truth.items():
        pred = predictions[key].astype(np.float64)
        true = true.astype(np.float64)
        scale = (pred * true).sum((1, 2)) / (pred * pred).sum((1, 2))
        per_frame = {
            "p1": np.linalg.norm(pred - true, axis=-1).mean(-1),
            "p2": _kabsch_error(pred, true),
            "p3": np.linalg.norm(scale[:, None, None] * pred - true, axis=-1).mean(-1),
            "mpjve": np.linalg.norm(np.diff(pred, axis=0) - np.diff(true, axis=0), axis=-1).mean(-1),
            "accel": np.linalg.norm(np.diff(pred, 2, axis=0) - np.diff(true, 2, axis=0), axis=-1).mean(-1),
        }
        group = pooled.setdefault(key.split("/")[1].split(" ")[0], {})
        for name, values in per_frame.items():
            group.setdefault(name, []).append(values)
    means = [{name: 1000 * np.concatenate(v).mean() for name, v in group.items()} for group in pooled.values()]
    return {name: float(np.mean([m[name] for m in means])) for name in means[0]}


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
    flags = "-k gt -str S1,S5 -ste S9,S11 -arc 3,3 -ch 32 -e 1 -b 256 --no-progress"
    args = cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)
    if not constraints:
        args.append("--no-constraints")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Average" in out and "P1 MPJPE" in out
    assert (ckpt / "epoch_001.pt").is_file() and (ckpt / "latest.pt").is_file()
    assert (ckpt / "learning_curve.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(ckpt / "log.csv")))
    assert len(rows) == 1 and {"mpjpe", "sym", "bone", "angle", "rom", "vel", "acc", "ang_vel", "ang_acc"} <= set(
        rows[0]
    )
    # The baseline's windows hold one frame each: its velocity terms are not measured (empty), not 0.
    temporal = [rows[0][name] for name in ("vel", "acc", "ang_vel", "ang_acc")]
    assert temporal == [""] * 4 if not constraints else all(float(value) > 0 for value in temporal), temporal
    assert float(rows[0]["sym"]) > 0 and float(rows[0]["mpjpe"]) > 0
    latest = torch.load(ckpt / "latest.pt", weights_only=True)
    assert latest["config"]["constraints"] is constraints and latest["model_args"]["channels"] == 32
    assert latest["input_layout"] == "h36m"  # the 2D it trained on, for inference to compare

    results, preds = tmp_path / "results.json", tmp_path / "preds.npz"
    paths = dict(data_dir=h36m_dir, checkpoint=ckpt, json=results, export_predictions=preds)
    assert main(cli("evaluate", "-k gt -ste S9,S11 --by-subject", **paths)) == 0
    summary = json.loads(results.read_text())
    assert set(summary) == {"config", "actions", "average", "subjects"}
    assert set(summary["actions"]) == {"Walking", "Directions"}
    assert set(summary["subjects"]) == {"S9", "S11"}
    # Training's own final table has the same per-subject rows (two test subjects), and
    # evaluation.json holds it in evaluate --json's format.
    trained = {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line.startswith("[S")}
    assert set(trained) == {"[S9]", "[S11]"}
    for subject in ("S9", "S11"):
        assert trained[f"[{subject}]"] == pytest.approx(summary["subjects"][subject]["p1"], abs=0.006)
    record = json.loads((ckpt / "evaluation.json").read_text())
    assert set(record) == set(summary) and record["config"]["checkpoint_epoch"] == 1
    assert record["config"]["evaluated_on"] == {**summary["config"]["evaluated_on"], "data_dir": str(h36m_dir)}
    assert record["config"]["constraints"] is constraints and record["config"]["checkpoint"] == str(ckpt)
    for key in ("p1", "p2", "p3", "mpjve", "accel", "bone_std", "frames"):
        assert record["average"][key] == pytest.approx(summary["average"][key], abs=1e-3)
        assert record["subjects"]["S11"][key] == pytest.approx(summary["subjects"]["S11"][key], abs=1e-3)
    for row in list(summary["actions"].values()) + [summary["average"]]:
        assert {"p1", "p2", "p3", "mpjve", "accel", "frames"} <= set(row)
        assert all(np.isfinite(row[k]) for k in ("p1", "p2", "p3", "mpjve", "accel"))
    assert summary["average"]["frames"] == 4 * (120 + 110 + 100 + 90)
    exported = np.load(preds)
    assert set(exported.files) == {
        f"{s}/{a}/{c}"
        for s, acts in {"S9": ["Walking", "Directions 1"], "S11": ["Walking 1", "Directions"]}.items()
        for a in acts
        for c in range(4)
    }
    assert exported["S9/Walking/0"].shape == (120, 17, 3)
    assert np.all(exported["S11/Directions/3"][:, 0] == 0)
    # The reported figures, computed again from the exported predictions and the true poses.
    truth = {seq.key: seq.poses_3d for seq in load_dataset(h36m_dir, "gt", ["S9", "S11"]).sequences}
    expected = _independent_average(dict(exported), truth)
    for key, value in expected.items():
        assert summary["average"][key] == pytest.approx(value, rel=1e-4), key

    # Without -k / -ste the checkpoint's keypoints and test subjects are used; an exported
    # .safetensors model evaluates to the same figures as its checkpoint.
    from jointpose.inference.lifter import Lifter

    model_file = Lifter.load(ckpt).save(tmp_path / "model.safetensors")
    assert Lifter.load(model_file).input_layout == "h36m"
    for source, name in ((ckpt, "defaults.json"), (model_file, "exported.json")):
        flags = "" if source == ckpt else "-k gt -ste S9,S11"
        assert main(cli("evaluate", flags, data_dir=h36m_dir, checkpoint=source, json=tmp_path / name)) == 0
        other = json.loads((tmp_path / name).read_text())
        assert other["config"]["evaluated_on"]["subjects"] == ["S9", "S11"]
        assert other["average"]["p1"] == pytest.approx(summary["average"]["p1"], abs=1e-3)
        assert other["average"]["bone_std"] == pytest.approx(summary["average"]["bone_std"], abs=1e-3)


def test_resume_refuses_mismatched_architecture(h36m_dir, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    flags = "-k gt -str S1 -ste S9 -b 512 -ch 16 -e 1 --no-progress --no-constraints"
    base = cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)
    assert main(base + ["-arc", "3,3"]) == 0
    capsys.readouterr()
    assert main(base + ["-arc", "3,3,3", "--resume", "-e", "2"]) == 2
    err = capsys.readouterr().err
    assert "-arc: [3, 3] in the checkpoint vs [3, 3, 3] now" in err and "Traceback" not in err
    assert main(base + ["-arc", "3,3"]) == 2  # refusing to overwrite an existing run
    assert (
        "already holds a run (epoch_001.pt, evaluation.json, latest.pt, ...); continue it with --resume"
        in capsys.readouterr().err
    )
    # A folder where the run writes a file is refused before the first epoch, resumed or not.
    (ckpt / "log.csv").unlink()
    (ckpt / "log.csv").mkdir()
    expected = (
        "log.csv: is not a plain file, and a training run writes a file by that name; move it or choose another folder"
    )
    for extra in (["-arc", "3,3", "--resume", "-e", "2"], ["-arc", "3,3"]):
        assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt) + extra) == 2
        assert capsys.readouterr().err.strip().endswith(f"{ckpt}/{expected}")
    assert (ckpt / "log.csv").is_dir() and not (ckpt / "epoch_002.pt").exists()
    # So is a link (the run would write through it, to a file elsewhere), dangling or looping too.
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    (ckpt / "log.csv").rmdir()
    resume = cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt) + ["-arc", "3,3", "--resume", "-e", "2"]
    for target in (precious, tmp_path / "nowhere" / "x", ckpt / "log.csv"):
        (ckpt / "log.csv").symlink_to(target)
        assert main(resume) == 2
        assert expected in capsys.readouterr().err
        (ckpt / "log.csv").unlink()
    assert precious.read_text() == "mine" and not (tmp_path / "nowhere").exists()
    # A new run refuses any file of a run, not only latest.pt: with --keep-last 1 a stale
    # epoch_005.pt would have been kept in place of the new epoch_001.pt.
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "epoch_005.pt").write_text("old")
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=stale) + ["-arc", "3,3", "--keep-last", "1"]) == 2
    assert (
        f"--checkpoint {stale} already holds a run (epoch_005.pt); continue it with --resume (from its last epoch file), or move them or choose"
        in capsys.readouterr().err
    )
    assert [p.name for p in stale.iterdir()] == ["epoch_005.pt"]
    # Resumed, an epoch file later than latest.pt is another timeline's: refused, not pruned or kept.
    (ckpt / "epoch_007.pt").write_bytes((ckpt / "epoch_001.pt").read_bytes())
    assert main(resume + ["--keep-last", "1"]) == 2
    assert f"--resume: {ckpt / 'epoch_007.pt'} is of a later epoch than latest.pt (1)" in capsys.readouterr().err
    assert (ckpt / "epoch_001.pt").is_file() and not (ckpt / "epoch_002.pt").exists()


def test_resume_refuses_a_different_run_and_allows_training_longer(h36m_dir, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    base = cli("train", "-k gt -str S1 -ste S9 -b 512 -arc 3 -ch 16 --no-progress", data_dir=h36m_dir, checkpoint=ckpt)
    assert main(base + ["-e", "1", "--chunk-dropout", "independent"]) == 0
    capsys.readouterr()
    for changed, message in (
        (["-lr", "0.002"], "-lr: 0.003 in the checkpoint vs 0.002 now"),
        (["--seed", "3"], "--seed: 0 in the checkpoint vs 3 now"),
        (["--w-vel", "0.5"], "--w-vel: 0.4 in the checkpoint vs 0.5 now"),  # the term that differs, alone
        (["--no-constraints"], "--no-constraints: not given in the checkpoint vs given now"),
        (["-b", "256"], "-b: 512 in the checkpoint vs 256 now"),
        (["--chunk-dropout", "shared"], "--chunk-dropout: independent in the checkpoint"),
        (["--no-bn-floor"], "--no-bn-floor: not given in the checkpoint vs given now"),
    ):
        args = base + ["-e", "2", "--chunk-dropout", "independent", "--resume"]
        assert main(args + changed) == 2, changed
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (changed, err)
    # The same keypoints' name in another folder holding other 2D (data build --input-layout).
    other = tmp_path / "other"
    shutil.copytree(h36m_dir, other)
    files = dict(np.load(other / "data_2d_h36m_gt.npz", allow_pickle=True))  # written by the tests themselves
    np.savez(
        other / "data_2d_h36m_gt.npz", **files | {"metadata": {**files["metadata"].item(), "input_layout": "coco"}}
    )
    moved = [other if arg == str(h36m_dir) else arg for arg in base]
    assert main([*map(str, moved), "-e", "2", "--chunk-dropout", "independent", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "-k input layout: h36m in the checkpoint vs coco now" in err and "Traceback" not in err, err
    # The same files in another folder, one training view's 2D moved by a pixel: other data.
    for subject, changes in (("S1", True), ("S9", False)):  # S9 only tests, the training data the same
        other = tmp_path / f"other-{subject}"
        shutil.copytree(h36m_dir, other)
        files = dict(np.load(other / "data_2d_h36m_gt.npz", allow_pickle=True))
        positions = files["positions_2d"].item()
        views = next(iter(positions[subject].values()))
        views[0] = views[0] + 1.0
        np.savez(other / "data_2d_h36m_gt.npz", **files | {"positions_2d": positions})
        moved = [other if arg == str(h36m_dir) else arg for arg in base]
        resumed = [*map(str, moved), "-e", "1", "--chunk-dropout", "independent", "--resume"]
        assert main(resumed) == (2 if changes else 0), subject
        err = capsys.readouterr().err
        refusal = f"--resume: the training data in --data-dir {other} is not what {ckpt / 'latest.pt'} trained on"
        assert (refusal in err) == changes and "Traceback" not in err, err
    assert main(base + ["-e", "2", "--chunk-dropout", "independent", "--resume"]) == 0  # -e may grow
    assert load_ckpt(ckpt)["epoch"] == 2


def test_resume_notes_another_thread_count_torch_or_device(h36m_dir, tmp_path, capsys):
    """Checkpoints record what bit-for-bit reproduction depends on beyond the flags; a run
    resumed under other conditions says so, in one note naming both."""
    ckpt = tmp_path / "ckpt"
    base = cli("train", "-k gt -str S1 -ste S9 -b 512 -arc 3 -ch 16 --no-progress", data_dir=h36m_dir, checkpoint=ckpt)
    assert main(base + ["-e", "1"]) == 0
    threads = torch.get_num_threads()
    assert load_ckpt(ckpt)["environment"] == {"torch": torch.__version__, "threads": threads, "device": "cpu"}
    assert main(base + ["-e", "2", "--resume"]) == 0
    assert "note: the run so far" not in capsys.readouterr().out  # the same conditions: no note
    saved = load_ckpt(ckpt)
    saved["environment"] = {"torch": "2.3.0", "threads": threads + 1, "device": "cuda"}
    torch.save(saved, ckpt / "latest.pt")
    assert main(base + ["-e", "3", "--resume"]) == 0
    out = capsys.readouterr().out
    assert (
        f"note: the run so far trained with torch 2.3.0, {threads + 1} CPU thread(s), cuda; it goes on with "
        f"torch {torch.__version__}, {threads} CPU thread(s), cpu, so it matches an uninterrupted run only as "
        "closely as runs with another thread count do"
    ) in out
    assert load_ckpt(ckpt)["epoch"] == 3


def test_resume_keeps_the_runs_own_rate_dropout_and_weights_when_not_given(h36m_dir, tmp_path, capsys):
    """A run started with other values than today's defaults (or under older defaults)
    resumes without repeating them; giving other values is still refused."""
    ckpt = tmp_path / "ckpt"
    base = cli("train", "-k gt -str S1 -ste S9 -b 512 -arc 3 -ch 16 --no-progress", data_dir=h36m_dir, checkpoint=ckpt)
    assert main(base + ["-e", "1", "-lr", "0.002", "-drop", "0.1", "--w-angle", "0.02", "--w-acc", "0.25"]) == 0
    assert main(base + ["-e", "2", "--resume"]) == 0
    saved = load_ckpt(ckpt)
    assert (saved["epoch"], saved["config"]["lr"], saved["model_args"]["dropout"]) == (2, 0.002, 0.1)
    assert saved["config"]["weights"] == {**LossWeights().as_dict(), "angle": 0.02, "acc": 0.25}
    capsys.readouterr()
    assert main(base + ["-e", "3", "--resume", "-drop", "0.2"]) == 2
    assert "-drop: 0.1 in the checkpoint vs 0.2 now" in capsys.readouterr().err
    # A weight given on resume starts from today's defaults, so it must name every change.
    assert main(base + ["-e", "3", "--resume", "--w-acc", "0.25"]) == 2
    assert "--w-angle: 0.02 in the checkpoint vs 0.01 now" in capsys.readouterr().err
    assert main(base + ["-e", "3", "--resume", "--w-acc", "0.25", "--w-angle", "0.02"]) == 0


def test_resume_with_trajectory_needs_a_trajectory_model(h36m_dir, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    flags = "-k gt -str S1 -ste S9 -b 512 -arc 3 -ch 16 --no-progress --no-constraints"
    base = cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)
    assert main(base + ["-e", "1"]) == 0
    capsys.readouterr()
    assert main(base + ["-e", "2", "--resume", "--trajectory"]) == 2
    assert "--trajectory: not given in the checkpoint vs given now" in capsys.readouterr().err
    saved = load_ckpt(ckpt)  # a checkpoint from before the setting was recorded
    del saved["config"]["trajectory"]
    torch.save(saved, ckpt / "latest.pt")
    assert main(base + ["-e", "2", "--resume", "--trajectory"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {ckpt / 'latest.pt'} has no trajectory model but --trajectory was given" in err
    assert "Traceback" not in err


def test_baseline_resume_ignores_the_chunk_settings(h36m_dir, tmp_path):
    flags = "-k gt -str S1 -ste S9 -b 512 -arc 3 -ch 16 --no-progress --no-constraints"
    base = cli("train", flags, data_dir=h36m_dir, checkpoint=tmp_path / "c")
    assert main(base + ["-e", "1", "--chunk-dropout", "independent", "--w-vel", "1"]) == 0
    assert main(base + ["-e", "2", "--resume"]) == 0


def test_negative_seed_is_refused_by_the_python_api(tmp_path):
    with pytest.raises(JointposeError, match="seed"):
        TrainConfig(data_dir=str(tmp_path), checkpoint_dir=str(tmp_path / "c"), seed=-1)


@pytest.mark.slow
def test_ablation_compares_both_models(h36m_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    flags = "-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 16 -e 1 -b 512 --no-progress"
    assert main(cli("ablate", flags, data_dir=h36m_dir, out=out)) == 0
    text = capsys.readouterr().out
    assert "baseline vs joint-aware" in text and "change" in text
    result = json.loads((out / "ablation.json").read_text())
    assert result["baseline"]["average"]["p1"] > 0 and result["joint-aware"]["average"]["p1"] > 0
    baseline, joint = load_ckpt(out / "baseline"), load_ckpt(out / "joint-aware")
    assert baseline["config"]["constraints"] is False and joint["config"]["constraints"] is True
    # Each model at its own default rate and dropout: the baseline stays VideoPose3D's recipe.
    assert (baseline["config"]["lr"], baseline["model_args"]["dropout"]) == (0.001, 0.25)
    assert (joint["config"]["lr"], joint["model_args"]["dropout"]) == (0.003, 0.1)
    assert (result["baseline"]["dropout"], result["joint-aware"]["dropout"]) == (0.25, 0.1)
    # What differs besides the losses is printed and recorded: the baseline is scored by the network alone.
    assert "=== baseline (--no-constraints: lr 0.001, dropout 0.25, average_last 0, normalization intrinsics, " in text
    assert (result["baseline"]["skeleton_fit"], result["joint-aware"]["skeleton_fit"]) == (False, True)
    assert result["baseline"]["align_2d"] == 0.0 < result["joint-aware"]["align_2d"]
    assert main(["ablate", "--data-dir", str(h36m_dir), "-k", "gt", "--out", str(out)]) == 2  # not empty
    help_text = build_parser()._subparsers._group_actions[0].choices["ablate"].format_help()
    assert "[--no-constraints]" not in help_text and "\n  --no-constraints" not in help_text  # refused, not offered
    assert "--checkpoint" not in help_text and "--keep-last" not in help_text


def load_ckpt(folder):
    return torch.load(folder / "latest.pt", weights_only=True)


@pytest.mark.slow
def test_2048_channels_end_to_end(h36m_dir, tmp_path):
    ckpt = tmp_path / "wide"
    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 2048 -e 1 -b 512 --no-progress"
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)) == 0
    saved = load_ckpt(ckpt)
    assert saved["model_args"]["channels"] == 2048 and saved["model"]["expand_conv.weight"].shape[0] == 2048
    assert main(cli("evaluate", "-k gt -ste S9", data_dir=h36m_dir, checkpoint=ckpt, json=tmp_path / "r.json")) == 0
    assert np.isfinite(json.loads((tmp_path / "r.json").read_text())["average"]["p1"])


def test_mixed_loss_by_hand():
    """MPJPE over every frame (singles and chunk frames alike), constraint terms over the chunks only."""
    from jointpose.training.trainer import mixed_loss

    g = torch.Generator().manual_seed(0)
    singles, chunks = torch.randn(3, 17, 3, generator=g), torch.randn(2, 4, 17, 3, generator=g)
    pred = torch.cat([singles, chunks.reshape(-1, 17, 3)]) + 0.05 * torch.randn(11, 17, 3, generator=g)
    weights = LossWeights()
    position, constraints, terms = mixed_loss(JointAwareLoss(weights), pred, singles, chunks)
    everything = torch.cat([singles, chunks.reshape(-1, 17, 3)])
    assert torch.allclose(position, mpjpe(pred, everything)) and torch.allclose(terms["mpjpe"], position)
    _, chunk_terms = JointAwareLoss(weights)(pred[3:].reshape(chunks.shape), chunks)
    expected = sum(getattr(weights, t) * chunk_terms[t] for t in TERMS if t != "mpjpe")
    assert constraints > 0 and torch.allclose(constraints, expected)
    # chunk_mpjpe=False (shared chunk dropout): MPJPE from the single windows only, same terms.
    pred.requires_grad_(True)
    position, constraints_only, terms = mixed_loss(JointAwareLoss(weights), pred, singles, chunks, chunk_mpjpe=False)
    assert torch.allclose(position, mpjpe(pred[:3], singles)) and torch.allclose(constraints_only, expected)
    assert torch.allclose(terms["mpjpe"], mpjpe(pred, everything))  # still logged over every frame
    (grad,) = torch.autograd.grad(position, pred)
    assert grad[:3].abs().sum() > 0 and grad[3:].abs().sum() == 0


def test_training_step_applies_the_constraint_terms(h36m_dir, tmp_path):
    """One step's loss is the frame MPJPE plus the weighted constraint terms (the baseline: MPJPE alone)."""
    from jointpose.cli import build_parser, train_config
    from jointpose.training.trainer import Trainer

    args = cli("train", "-k gt -str S1 -ste S9 -arc 3,3 -ch 16 -b 64 --no-progress", data_dir=h36m_dir)
    runs = (([], "shared"), (["--chunk-dropout", "independent"], "independent"), (["--no-constraints"], None))
    for extra, chunk_dropout in runs:
        trainer = Trainer(
            train_config(build_parser().parse_args(args + ["--checkpoint", str(tmp_path / str(chunk_dropout))] + extra))
        )
        batch: MixedBatch = next(iter(trainer.windows.batches(64, 0, 0, augment=False)))
        trainer.model.eval()
        with torch.no_grad():
            pred = trainer.model(batch.windows.to(trainer.device)).reshape(len(batch.windows), 17, 3)
        total, terms = trainer.step_loss(pred, batch, 1.0, 1)
        if chunk_dropout:
            assert trainer.config.chunk_dropout == chunk_dropout and len(batch.chunks) > 0
            constraint_part = sum(getattr(trainer.config.weights, t) * terms[t] for t in TERMS if t != "mpjpe")
            assert constraint_part > 0.01 * terms["mpjpe"]
            position = (
                mpjpe(pred[: len(batch.singles)], batch.singles.to(trainer.device))
                if chunk_dropout == "shared"
                else terms["mpjpe"]
            )
            assert torch.allclose(total, position + constraint_part)
            groups = trainer._dropout_groups(batch)
            if chunk_dropout == "shared":  # one label per single window, one per chunk
                chunk = batch.chunks.shape[1]
                assert groups.tolist() == list(range(len(batch.singles))) + [
                    len(batch.singles) + i // chunk for i in range(batch.chunks.shape[0] * chunk)
                ]
            else:
                assert groups is None
        else:
            assert len(batch.chunks) == 0 and torch.allclose(total, terms["mpjpe"])


def test_default_learning_rate_and_dropout_depend_on_the_constraints():
    from jointpose.cli import build_parser, train_config
    from jointpose.training.config import (
        DROPOUT_BASELINE,
        DROPOUT_CONSTRAINTS,
        LR_BASELINE,
        LR_CONSTRAINTS,
    )

    assert (LR_BASELINE, LR_CONSTRAINTS, DROPOUT_BASELINE, DROPOUT_CONSTRAINTS) == (0.001, 0.003, 0.25, 0.1)
    joint = TrainConfig(data_dir="d", checkpoint_dir="c").resolved()
    assert (joint.lr, joint.dropout) == (LR_CONSTRAINTS, DROPOUT_CONSTRAINTS)
    base = TrainConfig(data_dir="d", checkpoint_dir="c", constraints=False).resolved()
    assert (base.lr, base.dropout) == (LR_BASELINE, DROPOUT_BASELINE)  # VideoPose3D's
    given = TrainConfig(data_dir="d", checkpoint_dir="c", lr=0.0005, dropout=0.1)
    assert (given.resolved().lr, given.resolved().dropout) == (0.0005, 0.1)
    # Switching the mode of an unresolved configuration switches the defaults, not given values.
    switched = dataclasses.replace(
        TrainConfig(data_dir="d", checkpoint_dir="c", lr=0.002), constraints=False
    ).resolved()
    assert (switched.lr, switched.dropout) == (0.002, DROPOUT_BASELINE)
    argv = ["train", "--data-dir", "d", "--checkpoint", "c"]
    assert train_config(build_parser().parse_args(argv + ["--no-constraints"])).resolved().lr == LR_BASELINE
    assert train_config(build_parser().parse_args(argv + ["-lr", "0.002"])).resolved().lr == 0.002
    assert train_config(build_parser().parse_args(argv + ["-drop", "0.3"])).resolved().dropout == 0.3
    with pytest.raises(JointposeError, match=r"-drop must be in \[0, 0.999\], got 1.0"):
        train_config(build_parser().parse_args(argv + ["-drop", "1.0"]))


def test_chunk_dropout_setting_is_checked():
    assert TrainConfig(data_dir="d", checkpoint_dir="c").chunk_dropout == "shared"
    with pytest.raises(JointposeError, match="chunk_dropout .* got 'per-frame'") as info:
        TrainConfig(data_dir="d", checkpoint_dir="c", chunk_dropout="per-frame")
    assert info.value.fields == ("chunk_dropout",)  # the CLI writes it as --chunk-dropout


def test_learning_rate_decay_and_keep_last(h36m_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    flags = (
        "-k gt -str S1 -ste S9 -arc 3 -ch 8 -e 3 -b 512 -lr 0.002 -lrd 0.5 --keep-last 2 --no-constraints --no-progress"
    )
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)) == 0
    rates = [float(row["lr"]) for row in csv.DictReader(open(ckpt / "log.csv"))]
    assert rates == pytest.approx([0.002, 0.001, 0.0005])  # the rate each epoch trained at
    assert sorted(p.name for p in ckpt.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_003.pt"]


def test_ablation_reports_relative_changes():
    from jointpose.training.ablation import format_comparison, relative_change

    assert relative_change(10.0, 8.0) == pytest.approx(-20.0) and relative_change(8.0, 10.0) == pytest.approx(25.0)
    assert relative_change(0.0, 0.0) == 0.0 and relative_change(0.0, 1.0) == float("inf")
    base = {"actions": {"Walking": {"p1": 50.0, "mpjve": 4.0}}, "average": {"p1": 50.0, "mpjve": 4.0}}
    joint = {"actions": {"Walking": {"p1": 45.0, "mpjve": 5.0}}, "average": {"p1": 45.0, "mpjve": 5.0}}
    average = format_comparison(base, joint).splitlines()[-1].split()
    assert average == ["Average", "50.00", "45.00", "-10.0%", "4.00", "5.00", "25.0%"]


def test_chunk_mpjpe_supervises_the_chunk_frames_with_shared_masks(h36m_dir, tmp_path):
    """--chunk-mpjpe: the chunks keep one dropout mask each, and MPJPE covers their frames too."""
    from jointpose.cli import build_parser, train_config
    from jointpose.training.trainer import Trainer

    flags = "-k gt -str S1 -ste S9 -arc 3,3 -ch 16 -b 64 --no-progress --chunk-mpjpe"
    args = ["train", "--data-dir", str(h36m_dir), "--checkpoint", str(tmp_path / "ck"), *flags.split()]
    trainer = Trainer(train_config(build_parser().parse_args(args)))
    assert trainer.config.chunk_mpjpe and trainer.config.shared_chunk_dropout
    batch: MixedBatch = next(iter(trainer.windows.batches(64, 0, 0, augment=False)))
    trainer.model.eval()
    with torch.no_grad():
        pred = trainer.model(batch.windows.to(trainer.device)).reshape(len(batch.windows), 17, 3)
    total, terms = trainer.step_loss(pred, batch, 1.0, 1)
    every_frame = torch.cat([batch.singles, batch.chunks.reshape(-1, 17, 3)]).to(trainer.device)
    constraint_part = sum(getattr(trainer.config.weights, t) * terms[t] for t in TERMS if t != "mpjpe")
    assert len(batch.chunks) > 0 and torch.allclose(total, mpjpe(pred, every_frame) + constraint_part)
    assert trainer._dropout_groups(batch) is not None  # masks still shared within each chunk
    assert main([*args, "-e", "1"]) == 0
    assert main([*args[:-1], "-e", "2", "--resume"]) == 2  # a resumed run keeps its --chunk-mpjpe


def test_a_step_out_of_memory_names_the_flags_that_size_it(h36m_dir, tmp_path, capsys, monkeypatch):
    """An allocation failure in a training step is one line naming -b, --chunk, -ch and -arc
    (exit 2, no checkpoint written); any other error in a step stays a bug and propagates."""
    from jointpose.training.trainer import Trainer

    base = cli("train", "-k gt -str S1 -ste S9 -arc 3 -ch 16 -e 1 --no-progress", data_dir=h36m_dir)
    original_step = Trainer.step_loss
    failures = {
        "cpu": RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes."),
        "cuda": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        "numpy": MemoryError("Unable to allocate 20.0 GiB for an array"),
    }
    for name, failure in failures.items():

        def fail(*args, failure=failure, **kwargs):
            raise failure

        monkeypatch.setattr(Trainer, "step_loss", fail)
        assert main(base + ["--checkpoint", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].endswith(
            "out of memory: lower -b (1024 target frames a step), --chunk or -ch, or the receptive field (-arc), "
            "or choose a device with more memory (--device)"
        ), err
        assert not (tmp_path / name / "latest.pt").exists()
    # Predicting the test sequences (validation, final evaluation) names the device instead of -b.
    monkeypatch.setattr(Trainer, "quick_validation", lambda *a, **k: (_ for _ in ()).throw(failures["cuda"]))
    monkeypatch.setattr(Trainer, "step_loss", original_step)
    assert main(base + ["--checkpoint", str(tmp_path / "validation")]) == 2
    assert "out of memory predicting the test sequences (each whole): the epochs saved in" in capsys.readouterr().err
    # Building the model, its windows or its optimiser is guarded alike.
    monkeypatch.setattr(Trainer, "training_windows", lambda *a, **k: (_ for _ in ()).throw(failures["numpy"]))
    assert main(base + ["--checkpoint", str(tmp_path / "build")]) == 2
    assert "out of memory: lower -b" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(Trainer, "step_loss", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(base + ["--checkpoint", str(tmp_path / "bug")])


def test_evaluate_defaults_to_the_runs_own_actions_and_downsampling(h36m_dir, tmp_path, capsys):
    """A run trained on some actions at every second frame is evaluated again the same way
    unless told otherwise, so that `evaluate` reproduces the run's evaluation.json."""
    ckpt = tmp_path / "ckpt"
    flags = "-k gt -str S1 -ste S9 -a Walking --downsample 2 -arc 3,3 -ch 16 -e 1 -b 256 --no-progress"
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)) == 0
    record = json.loads((ckpt / "evaluation.json").read_text())
    assert record["config"]["evaluated_on"]["downsample"] == 2
    assert main(cli("evaluate", "", data_dir=h36m_dir, checkpoint=ckpt, json=tmp_path / "again.json")) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert set(again["actions"]) == set(record["actions"]) == {"Walking"}
    assert again["config"]["evaluated_on"]["downsample"] == 2
    assert again["average"]["frames"] == record["average"]["frames"] == 4 * 60  # S9 Walking: 120 frames, 4 cameras
    for key in ("p1", "p2", "mpjve", "accel"):
        assert again["average"][key] == pytest.approx(record["average"][key], abs=1e-3), key
    flags = "--downsample 1 -a all"
    assert main(cli("evaluate", flags, data_dir=h36m_dir, checkpoint=ckpt, json=tmp_path / "all.json")) == 0
    every = json.loads((tmp_path / "all.json").read_text())
    assert every["average"]["frames"] == 4 * (120 + 110) and set(every["actions"]) == {"Walking", "Directions"}
    # An exported model keeps its frame rate (25 fps here), not the run's settings: it is scored
    # at its own rate, and a rate given that differs is said.
    from jointpose.inference.lifter import Lifter

    exported = Lifter.load(ckpt).save(tmp_path / "m.safetensors")
    flags, json_out = "-k gt -ste S9 -a Walking", tmp_path / "e.json"
    with pytest.warns(JointposeWarning, match=r"a 25 fps model, scored at its own rate \(--downsample 2\)"):
        assert main(cli("evaluate", flags, data_dir=h36m_dir, checkpoint=exported, json=json_out)) == 0
    scored = json.loads(json_out.read_text())
    assert scored["config"]["evaluated_on"]["downsample"] == 2 and scored["average"]["frames"] == 4 * 60
    assert scored["average"]["p1"] == pytest.approx(record["average"]["p1"], abs=1e-3)
    with pytest.warns(JointposeWarning, match="a 25 fps model scored on 50 fps data"):
        assert main(cli("evaluate", flags + " --downsample 1", data_dir=h36m_dir, checkpoint=exported)) == 0
    # The run's settings are checked before they are used, by the rule an argument of that name
    # meets, naming the checkpoint and its key (not a flag the user did not give).
    for name, value, needle in (
        ("downsample", "2", "'downsample' must be an integer in [1, 10000], got '2'"),
        ("actions", "Walking", "'actions' must be a list of names, e.g. ['Walking'], got 'Walking'"),
        ("subjects_test", "S9", "'subjects_test' must be a list of names, e.g. ['S9'], got 'S9'"),
        ("subjects_test", [9], "'subjects_test' must be a list of names, e.g. ['S9'], got list"),
        ("keypoints", 3, "'keypoints' must be a keypoints name (str), got 3"),
        ("dataset", "nope", "'dataset' must be one of h36m, humaneva15, got 'nope'"),
        ("dataset", ["h36m"], "'dataset' must be one of h36m, humaneva15, got ['h36m']"),
        ("subjects_train", "S1", "'subjects_train' must be a list of names, e.g. ['S9'], got 'S1'"),
        ("skeleton_fit", "no", "'skeleton_fit' must be True or False, got 'no'"),
        ("constraints", "yes", "'constraints' must be True or False, got 'yes'"),
    ):
        state = torch.load(ckpt / "latest.pt", weights_only=True)
        state["config"][name] = value
        torch.save(state, tmp_path / "edited.pt")
        capsys.readouterr()
        assert main(cli("evaluate", "", data_dir=h36m_dir, checkpoint=tmp_path / "edited.pt")) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"edited.pt: checkpoint config {needle}" in err, err


def test_evaluate_turns_the_skeleton_fit_on_or_off_for_any_checkpoint(h36m_dir, tmp_path, capsys):
    """--skeleton-fit gives the baseline the joint-aware model's consistent skeleton (bone
    lengths constant over each sequence), --no-skeleton-fit takes it from the joint-aware one."""
    scores = {}
    for mode in ("baseline", "joint-aware"):
        ckpt = tmp_path / mode
        flags = "-k gt -str S1 -ste S9 -arc 3,3 -ch 16 -e 1 -b 256 --no-progress"
        assert (
            main(
                cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt) + (["--no-constraints"] * (mode == "baseline"))
            )
            == 0
        )
        for fit in ("--skeleton-fit", "--no-skeleton-fit"):
            out = tmp_path / f"{mode}{fit}.json"
            assert main(cli("evaluate", fit, data_dir=h36m_dir, checkpoint=ckpt, json=out)) == 0
            summary = json.loads(out.read_text())
            assert summary["config"]["evaluated_on"]["skeleton_fit"] is (fit == "--skeleton-fit")
            scores[mode, fit] = summary["average"]["bone_std"]
    for mode in ("baseline", "joint-aware"):
        assert scores[mode, "--skeleton-fit"] < 0.01 < scores[mode, "--no-skeleton-fit"], scores
    capsys.readouterr()
    assert main(cli("evaluate", "--raw --skeleton-fit", data_dir=h36m_dir, checkpoint=tmp_path / "baseline")) == 2
    assert "leave out --skeleton-fit or --raw" in capsys.readouterr().err


def test_evaluate_model_reports_the_plausibility_metrics_by_default(h36m_dir):
    """Python's evaluate_model gives the columns `jointpose evaluate` prints; None leaves them out."""
    from jointpose.evaluation.evaluate import evaluate_model
    from jointpose.model.temporal import TemporalModel

    torch.manual_seed(0)
    model = TemporalModel([3], channels=8).eval()
    sequences = load_dataset(h36m_dir, "gt", ["S9"]).sequences[:2]
    full = evaluate_model(model, sequences).summary["average"]
    bare = evaluate_model(model, sequences, extra_metrics=None).summary["average"]
    assert {"bone_std", "lr_gap", "rom_pct"} <= set(full) and not {"bone_std", "lr_gap", "rom_pct"} & set(bare)
    assert full["p1"] == bare["p1"] and full["bone_std"] > 0


def test_ablation_over_seeds_reports_mean_and_spread(h36m_dir, tmp_path, capsys):
    """--seeds runs one ablation per seed and summarises each metric over them: the summary
    agrees with the seeds' own ablation.json files."""
    import statistics

    out = tmp_path / "seeds"
    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -e 1 -b 512 --no-progress --seeds 0,3"
    assert main(cli("ablate", flags, data_dir=h36m_dir, out=out)) == 0
    text = capsys.readouterr().out
    assert "mean ± standard deviation over seeds 0, 3" in text
    runs = [json.loads((out / f"seed_{seed}" / "ablation.json").read_text()) for seed in (0, 3)]
    assert [run["config"]["seed"] for run in runs] == [0, 3]
    summary = json.loads((out / "ablation.json").read_text())["summary"]
    for metric in ("p1", "mpjve", "bone_std"):
        base = [run["baseline"]["average"][metric] for run in runs]
        joint = [run["joint-aware"]["average"][metric] for run in runs]
        change = [100 * (j - b) / b for b, j in zip(base, joint)]
        assert summary[metric]["baseline_mean"] == pytest.approx(statistics.mean(base))
        assert summary[metric]["joint-aware_std"] == pytest.approx(statistics.stdev(joint))
        assert summary[metric]["change_mean"] == pytest.approx(statistics.mean(change))
    for bad, message in (
        ("--seeds 0,1 --seed 2", "--seed gives one seed"),
        ("--seeds 1,1", "expected two or more distinct seeds"),
        ("--seeds 4", "expected two or more distinct seeds"),
        ("--seeds ,,,", "expected two or more distinct seeds (a spread needs two), got ,,,"),
    ):
        try:
            code = main(cli("ablate", bad, data_dir=h36m_dir, out=tmp_path / "x"))
        except SystemExit as exc:  # argparse's own error
            code = exc.code
        assert code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupted_training_run_says_how_to_continue_once_an_epoch_is_saved(
    h36m_dir, tmp_path, capsys, monkeypatch, request, signal_name
):
    """Ctrl-C (or SIGTERM) after the first saved epoch: the run says --resume continues it,
    and exits 130 (143); before any epoch was saved there is nothing to continue, and no hint."""
    import os
    import signal

    from jointpose.training.trainer import Trainer

    fit = Trainer.fit
    signum = getattr(signal, signal_name)
    # A pytest-xdist worker starts with SIGINT ignored, which main leaves ignored: as at a terminal here.
    previous = signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    request.addfinalizer(lambda: signal.signal(signum, previous))

    def stopped_after(epochs):
        def fit_then_signal(self, until_epoch=None):
            if epochs:
                fit(self, until_epoch=epochs)
            os.kill(os.getpid(), signum)  # the handler main installs raises it here

        return fit_then_signal

    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -e 3 -b 512 --no-progress"
    for epochs, ckpt in ((1, tmp_path / "one"), (0, tmp_path / "none")):
        monkeypatch.setattr(Trainer, "fit", stopped_after(epochs))
        capsys.readouterr()
        assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)) == 128 + signum
        *before, last = capsys.readouterr().err.splitlines()
        assert last == ("terminated" if signal_name == "SIGTERM" else "interrupted")
        hint = f"the run in --checkpoint {ckpt} keeps its finished epochs: the same command with --resume continues it"
        if epochs:
            assert before[-1] == hint
        else:
            assert hint not in before and not (ckpt / "latest.pt").exists()
    monkeypatch.undo()
    assert load_ckpt(tmp_path / "one")["epoch"] == 1
    assert main(cli("train", flags + " --resume", data_dir=h36m_dir, checkpoint=tmp_path / "one")) == 0
    assert load_ckpt(tmp_path / "one")["epoch"] == 3


def test_an_interrupted_ablation_over_seeds_resumes_to_the_uninterrupted_result(
    h36m_dir, tmp_path, capsys, monkeypatch
):
    """Interrupted in seed 0's joint-aware run after its first epoch (its baseline finished,
    seed 3 not started), ``--resume`` continues that run, evaluates the finished one again
    and trains seed 3: every figure equals the uninterrupted ablation's."""
    from jointpose.training.trainer import Trainer

    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -e 2 -b 512 --no-progress --seeds 0,3"
    assert main(cli("ablate", flags, data_dir=h36m_dir, out=tmp_path / "whole")) == 0
    fit = Trainer.fit

    def interrupted(self, until_epoch=None):
        if self.config.constraints:
            fit(self, until_epoch=1)
            raise KeyboardInterrupt
        return fit(self, until_epoch)

    monkeypatch.setattr(Trainer, "fit", interrupted)
    out = tmp_path / "cut"
    capsys.readouterr()
    assert main(cli("ablate", flags, data_dir=h36m_dir, out=out)) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"the ablation in --out {out} keeps its finished epochs: the same command with --resume continues it",
        "interrupted",
    ]
    monkeypatch.undo()
    assert not (out / "seed_3").exists() and load_ckpt(out / "seed_0" / "joint-aware")["epoch"] == 1
    assert main(cli("ablate", flags, data_dir=h36m_dir, out=out)) == 2
    assert "is not empty; continue it with --resume" in capsys.readouterr().err
    assert main(cli("ablate", flags + " --resume", data_dir=h36m_dir, out=out)) == 0
    text = capsys.readouterr().out
    assert "=== baseline (--no-constraints, resumed after epoch 2: " in text
    assert "=== joint-aware (joint-aware constraints, resumed after epoch 1: " in text
    summary = json.loads((out / "ablation.json").read_text())["summary"]
    assert summary == json.loads((tmp_path / "whole" / "ablation.json").read_text())["summary"]
    for seed in (0, 3):
        resumed, whole = (
            json.loads((top / f"seed_{seed}" / "ablation.json").read_text()) for top in (out, tmp_path / "whole")
        )
        for model in ("baseline", "joint-aware"):  # each figure, not the seconds per epoch
            assert (
                resumed[model]["actions"] == whole[model]["actions"]
                and resumed[model]["average"] == whole[model]["average"]
            )
    for bad, message in (
        (
            flags + " --resume -e 1",
            "-e 1: " + str(out / "seed_0" / "baseline") + " was started with -e 2; resume with -e 2",
        ),
        (flags + " --resume -e 3", "-e 3: " + str(out / "seed_0" / "baseline") + " was started with -e 2"),
        (
            flags.replace("0,3", "1,3") + " --resume",
            "holds seed_0, not among --seeds 1,3; resume with the seeds it was",
        ),
        (
            flags.replace("--seeds 0,3", "") + " --resume",
            "holds an ablation over seeds; resume it with the same --seeds",
        ),
        (flags + " --resume --learning-rate 0.01", "latest.pt disagrees with this configuration: -lr: 0.001 in"),
    ):
        assert main(cli("ablate", bad, data_dir=h36m_dir, out=out)) == 2
        printed, err = capsys.readouterr()
        assert message in err and "Training" not in printed  # refused before any run trains or is scored
    assert main(cli("ablate", flags + " --resume", data_dir=h36m_dir, out=tmp_path / "new")) == 2
    assert "holds no ablation to continue" in capsys.readouterr().err
    # The epochs each run was started for are read before any training, not as each run starts.
    from jointpose.training.ablation import check_resume

    check_resume(out, (0, 3), 2)
    with pytest.raises(JointposeError, match="was started with epochs 2; resume with epochs 2"):
        check_resume(out, (0, 3), 3)
    # A run stopped before its first checkpoint left files but no latest.pt: named before any training.
    (tmp_path / "early" / "seed_3" / "baseline").mkdir(parents=True)
    (tmp_path / "early" / "seed_3" / "baseline" / "log.csv").write_text("epoch\n")
    assert main(cli("ablate", flags + " --resume", data_dir=h36m_dir, out=tmp_path / "early")) == 2
    printed, err = capsys.readouterr()
    assert "seed_3/baseline holds log.csv but no checkpoint to resume from; remove them" in err and printed == ""


def test_seed_summary_leaves_out_changes_without_a_value():
    """A metric whose baseline is 0 has no relative change: it is None, not inf, and left out
    of the mean and spread; the rest are the sample statistics over the seeds."""
    from jointpose.training.ablation import format_seed_summary, seed_summary

    def run(base: dict, joint: dict) -> dict:
        return {"baseline": {"average": base}, "joint-aware": {"average": joint}}

    runs = {
        0: run({"p1": 50.0, "rom_pct": 0.0}, {"p1": 45.0, "rom_pct": 1.0}),
        1: run({"p1": 40.0, "rom_pct": 2.0}, {"p1": 38.0, "rom_pct": 1.0}),
        2: run({"p1": 60.0, "rom_pct": 4.0}, {"p1": 66.0, "rom_pct": 3.0}),
    }
    summary = seed_summary(runs)
    assert summary["p1"]["change"] == pytest.approx([-10.0, -5.0, 10.0])
    assert summary["p1"]["change_mean"] == pytest.approx(-5 / 3)
    assert summary["p1"]["change_std"] == pytest.approx(np.std([-10.0, -5.0, 10.0], ddof=1))
    assert summary["rom_pct"]["change"] == [None, pytest.approx(-50.0), pytest.approx(-25.0)]
    assert summary["rom_pct"]["change_mean"] == pytest.approx(-37.5)
    json.dumps(summary, allow_nan=False)  # plain JSON: no inf or NaN
    table = format_seed_summary(summary, [0, 1, 2])
    rows = {line.split()[0]: line for line in table.splitlines()[3:]}
    assert rows["P1"].endswith("-1.7% ± 10.4  (within the seed spread)"), table


def test_results_json_writes_a_missing_metric_as_null():
    """A metric without a value (NaN: sequences too short for an acceleration) is null, so that
    every JSON reader takes the file (Python's json writes NaN, which others refuse)."""
    from jointpose.evaluation.evaluate import results_json

    text = results_json({"average": {"p1": 41.5, "accel": float("nan")}, "runs": [1, float("inf")]})
    assert json.loads(text) == {"average": {"p1": 41.5, "accel": None}, "runs": [1, None]}
    assert "NaN" not in text and "Infinity" not in text
