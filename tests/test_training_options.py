"""Training options: trajectory model, mixed precision, torch.compile wiring, constraint warm-up."""

import random

import numpy as np
import pytest
import torch

from h36m_files import cli
from jointpose.cli import build_parser, main, train_config
from jointpose.inference.lifter import Lifter
from jointpose.model.loading import load_checkpoint
from jointpose.model.temporal import StridedTemporalModel
from jointpose.motion.bvh import global_transforms, read_bvh
from jointpose.training.distributed import DistContext, wrap_model
from jointpose.training.trainer import Trainer


def _args(data, ckpt, *extra):
    flags = "-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 32 -b 256 --no-progress"
    return [*cli("train", flags, data_dir=data, checkpoint=ckpt), *extra]


@pytest.mark.slow
def test_trajectory_model_trains_and_exports(h36m_dir, tmp_path):
    assert main(_args(h36m_dir, tmp_path / "ck", "-e", "3", "--trajectory", "--no-constraints")) == 0
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt["trajectory_model"] is not None and ckpt["trajectory_args"]["num_joints_out"] == 1
    losses = [row["trajectory"] for row in ckpt["history"]]
    assert losses[-1] < losses[0]  # the inverse-depth-weighted root error falls
    lifter = Lifter.load(tmp_path / "ck")
    from jointpose.data.h36m import load_dataset
    from jointpose.geometry.cameras import image_coordinates

    seq = load_dataset(h36m_dir, "gt", ["S9"]).sequences[0]
    pixels = image_coordinates(seq.keypoints, seq.camera.res_w, seq.camera.res_h)
    trajectory = lifter.predict_trajectory(pixels, (seq.camera.res_w, seq.camera.res_h))
    assert trajectory.shape == (len(pixels), 3) and (trajectory[:, 2] > 0).mean() > 0.5  # in front of the camera
    np.save(tmp_path / "kp.npy", pixels)
    flags = f"--image-size {seq.camera.res_w} {seq.camera.res_h} --no-progress"
    assert main(cli("infer", flags, tmp_path / "kp.npy", o=tmp_path / "out.bvh", checkpoint=tmp_path / "ck")) == 0
    motion = read_bvh(tmp_path / "out.bvh")
    root = global_transforms(motion)[0][:, 0]
    assert np.ptp(root, axis=0).max() > 1.0  # the root travels (cm), it does not walk in place


def test_bf16_autocast_changes_the_computation(h36m_dir):
    model = StridedTemporalModel((3, 3), channels=32).eval()
    x = torch.randn(64, 9, 17, 2)
    dist = DistContext.single("cpu")
    with torch.no_grad():
        full = model(x)
        with dist.autocast("bf16"):
            half = model(x)
    assert half.dtype == torch.bfloat16
    difference = (half.float() - full).abs().max()
    assert 0 < difference < 0.1 * full.abs().max()


@pytest.mark.slow
def test_bf16_training_converges(h36m_dir, tmp_path):
    assert main(_args(h36m_dir, tmp_path / "bf16", "-e", "4", "--precision", "bf16", "--no-constraints")) == 0
    history = load_checkpoint(tmp_path / "bf16")["history"]
    assert history[-1]["mpjpe"] < 0.7 * history[0]["mpjpe"]
    assert load_checkpoint(tmp_path / "bf16")["config"]["precision"] == "bf16"


@pytest.mark.slow
def test_fp16_training_scales_the_loss(h36m_dir, tmp_path):
    assert main(_args(h36m_dir, tmp_path / "fp16", "-e", "4", "--precision", "fp16", "--no-constraints")) == 0
    ckpt = load_checkpoint(tmp_path / "fp16")
    assert ckpt["scaler"]["scale"] > 0  # a GradScaler ran (and its state resumes with the run)
    assert ckpt["history"][-1]["mpjpe"] < 0.7 * ckpt["history"][0]["mpjpe"]
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    config = train_config(build_parser().parse_args(_args(h36m_dir, tmp_path / "fp32", "-e", "1")))
    assert not Trainer(config).scaler.is_enabled()


def test_compile_flag_wraps_the_model():
    model = StridedTemporalModel((3,), channels=8)
    wrapped = wrap_model(model, DistContext.single("cpu"), compile=True)
    assert wrapped is not model and hasattr(wrapped, "_orig_mod") and wrapped._orig_mod is model


def test_batch_norm_momentum_schedule():
    from jointpose.training.trainer import bn_momentum

    # Human3.6M-sized epochs (~3,000 steps): VideoPose3D's decay from 0.1 to 0.001, untouched.
    assert [bn_momentum(k, 4, 3000) for k in range(4)] == pytest.approx([0.1 * 0.01 ** (k / 4) for k in range(4)])
    # 40 steps per epoch: never below 1/40, so the statistics stay within about an epoch.
    assert [bn_momentum(k, 4, 40) for k in range(4)] == pytest.approx([0.1, 0.1 * 0.01**0.25, 0.025, 0.025])
    assert bn_momentum(0, 4, 2) == 0.1  # never above the starting momentum
    # Without the floor: VideoPose3D's schedule exactly (train --no-bn-floor).
    assert bn_momentum(3, 4, 40, floor=False) == pytest.approx(0.1 * 0.01**0.75)


@pytest.mark.parametrize("floor", [True, False])
def test_trainer_applies_the_batch_norm_schedule(h36m_dir, tmp_path, floor):
    flags = ["-e", "3", "--no-constraints", *([] if floor else ["--no-bn-floor"])]
    config = train_config(build_parser().parse_args(_args(h36m_dir, tmp_path / "bn", *flags)))
    assert config.bn_floor == floor
    trainer = Trainer(config)
    steps = trainer.windows.steps_per_epoch(config.batch_size)
    assert steps < 100  # so the floor binds: 1 / steps above the last epoch's 0.1 * 0.01 ** (2 / 3) = 0.0046
    for epoch in range(3):
        trainer.fit(until_epoch=epoch + 1)
        decayed = 0.1 * 0.01 ** (epoch / 3)  # VideoPose3D's: exp-decay from 0.1 to 0.001 over the epochs
        expected = max(decayed, 1 / steps) if floor else decayed
        assert trainer.model.expand_bn.momentum == pytest.approx(expected)
        assert trainer.model.layers_bn[-1].momentum == trainer.model.expand_bn.momentum


def test_a_trainer_leaves_the_callers_random_streams_as_they_were(h36m_dir, tmp_path):
    """The run seeds and draws from torch's, numpy's and Python's global generators; the
    caller's draws after building and training it are those it would have made without."""
    config = train_config(build_parser().parse_args(_args(h36m_dir, tmp_path / "rng", "-e", "1", "--seed", "5")))

    def seeded_draws(between=lambda: None):
        torch.manual_seed(1234), np.random.seed(1234), random.seed(1234)
        between()
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()

    expected = seeded_draws()
    trainers = []
    assert seeded_draws(lambda: trainers.append(Trainer(config))) == expected
    assert seeded_draws(lambda: trainers[0].fit()) == expected
    assert trainers[0].epoch == 1


def test_constraint_warmup_ramps_the_weights(h36m_dir, tmp_path):
    config = train_config(build_parser().parse_args(_args(h36m_dir, tmp_path / "w", "-e", "4", "--warmup", "0.5")))
    trainer = Trainer(config)
    scales = []
    for epoch in range(2):
        trainer.fit(until_epoch=epoch + 1)
        scales.append(trainer.loss_fn.constraint_scale)
    assert scales == [0.5, 1.0]


@pytest.mark.slow
def test_temporal_filter_is_stored_and_applied(h36m_dir, tmp_path):
    import json

    assert main(_args(h36m_dir, tmp_path / "ck", "-e", "1", "--smooth", "1.5")) == 0
    assert load_checkpoint(tmp_path / "ck")["config"]["smooth"] == 1.5
    assert Lifter.load(tmp_path / "ck").smooth == 1.5
    runs = {}
    for name, extra in (("default", []), ("raw", ["--raw"]), ("wide", ["--smooth", "4"]), ("none", ["--smooth", "0"])):
        out = tmp_path / f"{name}.json"
        evaluate = cli("evaluate", "-k gt -ste S9", data_dir=h36m_dir, checkpoint=tmp_path / "ck", json=out)
        assert main(evaluate + extra) == 0
        runs[name] = json.loads(out.read_text())
    assert [runs[n]["config"]["evaluated_on"]["smooth"] for n in ("default", "raw", "wide", "none")] == [1.5, 0, 4, 0]
    # The wider the filter, the smaller the acceleration error (skeleton fit alike in all three).
    assert runs["wide"]["average"]["accel"] < runs["default"]["average"]["accel"] < runs["none"]["average"]["accel"]
    assert main(cli("evaluate", "-k gt -ste S9 --smooth -1", data_dir=h36m_dir, checkpoint=tmp_path / "ck")) == 2
    assert (
        main(cli("evaluate", "-k gt -ste S9 --smooth 2 --raw", data_dir=h36m_dir, checkpoint=tmp_path / "ck")) == 2
    )  # the network alone has no filter
    assert main(_args(h36m_dir, tmp_path / "bad", "--smooth", "nan")) == 2
    # The Python API refuses it as the CLI does (raw won silently), naming its own arguments.
    from jointpose.errors import JointposeError
    from jointpose.evaluation.evaluate import evaluate_checkpoint

    for override, what in (
        ({"smooth": 2.0}, "smooth"),
        ({"align_2d": 0.5}, "align_2d"),
        ({"skeleton_fit": True}, "skeleton_fit"),
    ):
        with pytest.raises(
            JointposeError, match=rf"^raw shows the network alone, without .*; leave out {what} or raw$"
        ):
            evaluate_checkpoint(tmp_path / "ck", h36m_dir, "gt", ["S9"], raw=True, **override)


@pytest.mark.slow
def test_alignment_with_the_2d_is_stored_and_applied(h36m_dir, tmp_path):
    import json

    assert main(_args(h36m_dir, tmp_path / "ck", "-e", "1")) == 0
    assert load_checkpoint(tmp_path / "ck")["config"]["align_2d"] == 0.75
    assert Lifter.load(tmp_path / "ck").align_2d == 0.75
    runs = {}
    for name, extra in (
        ("default", []),
        ("raw", ["--raw"]),
        ("full", ["--align-2d", "1"]),
        ("none", ["--align-2d", "0"]),
    ):
        out = tmp_path / f"{name}.json"
        evaluate = cli("evaluate", "-k gt -ste S9", data_dir=h36m_dir, checkpoint=tmp_path / "ck", json=out)
        assert main(evaluate + extra) == 0
        runs[name] = json.loads(out.read_text())
    assert [runs[n]["config"]["evaluated_on"]["align_2d"] for n in ("default", "raw", "full", "none")] == [
        0.75,
        0,
        1,
        0,
    ]
    # On noise-free 2D the rays are where the joints are: the further the alignment, the closer
    # the shape (P2; after one epoch P1 is mostly the network's depth, which the step keeps).
    assert runs["full"]["average"]["p2"] < runs["default"]["average"]["p2"] < runs["none"]["average"]["p2"]
    for bad in ("--align-2d 1.5", "--align-2d 0.5 --raw"):
        assert main(cli("evaluate", f"-k gt -ste S9 {bad}", data_dir=h36m_dir, checkpoint=tmp_path / "ck")) == 2
    assert main(_args(h36m_dir, tmp_path / "bad", "--align-2d", "-0.1")) == 2


def test_training_stops_when_a_weight_diverges(h36m_dir, tmp_path, monkeypatch):
    from jointpose.errors import JointposeError

    config = train_config(build_parser().parse_args(_args(h36m_dir, tmp_path / "nan", "-e", "3", "--no-constraints")))
    trainer = Trainer(config)
    trainer.fit(until_epoch=1)
    assert (tmp_path / "nan" / "epoch_001.pt").exists()
    good = load_checkpoint(tmp_path / "nan")["model"]
    one_epoch = Trainer.train_one_epoch

    def diverging(self):  # an epoch in which one weight becomes NaN, as a runaway loss leaves it
        terms = one_epoch(self)
        with torch.no_grad():
            self.model.shrink.weight[0, 0] = float("nan")
        return terms

    monkeypatch.setattr(Trainer, "train_one_epoch", diverging)
    with pytest.raises(JointposeError, match="diverged in epoch 2"):
        trainer.fit()
    assert not (tmp_path / "nan" / "epoch_002.pt").exists()  # the last good epoch stays the latest
    latest = load_checkpoint(tmp_path / "nan")["model"]
    assert all(torch.equal(latest[k], good[k]) for k in good)


@pytest.mark.parametrize("constraints", [[], ["--no-constraints"]])
def test_a_batch_of_one_frame_trains(tmp_path, constraints):
    """``-b 1``: every step still holds the two windows batch norm needs, baseline and joint-aware."""
    from h36m_files import write_dataset

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 12}, "S9": {"Walking": 12}})
    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -b 1 -e 1 --no-progress"
    assert main([*cli("train", flags, data_dir=folder, checkpoint=tmp_path / "ck"), *constraints]) == 0
    assert len(load_checkpoint(tmp_path / "ck")["history"]) == 1
