"""Checkpoints survive crashes and resuming reproduces the uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from h36m_files import cli
from jointpose.cli import build_parser, main, train_config
from jointpose.model.loading import load_checkpoint
from jointpose.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def _train_args(data: Path, ckpt: Path, epochs: int, *extra: str) -> list[str]:
    flags = f"-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 32 -b 256 -e {epochs} --no-progress --seed 7"
    return [*cli("train", flags, data_dir=data, checkpoint=ckpt), *extra]


def _config(*args: str):
    return train_config(build_parser().parse_args(list(args)))


@pytest.mark.slow
@pytest.mark.parametrize("constraints", [False, True])
def test_resume_reproduces_uninterrupted_run(h36m_dir, tmp_path, constraints):
    """3 epochs straight vs the same 3-epoch run stopped after 2 epochs and resumed for 1."""
    extra = () if constraints else ("--no-constraints",)
    assert main(_train_args(h36m_dir, tmp_path / "straight", 3, *extra)) == 0
    Trainer(_config(*_train_args(h36m_dir, tmp_path / "split", 3, *extra))).fit(until_epoch=2)
    assert load_checkpoint(tmp_path / "split")["epoch"] == 2
    assert main(_train_args(h36m_dir, tmp_path / "split", 3, *extra, "--resume")) == 0
    straight = load_checkpoint(tmp_path / "straight")["history"]
    split = load_checkpoint(tmp_path / "split")["history"]
    assert len(straight) == len(split) == 3
    for a, b in zip(straight, split):
        assert a.keys() == b.keys()
        for term in ("mpjpe", "sym", "bone", "angle", "val_p1", *(("vel", "acc") if constraints else ())):
            assert abs(a[term] - b[term]) <= 1e-6 * max(1.0, abs(a[term])), (term, a[term], b[term])
    final_a = load_checkpoint(tmp_path / "straight")["model"]
    final_b = load_checkpoint(tmp_path / "split")["model"]
    assert all(torch.allclose(final_a[k].float(), final_b[k].float(), atol=1e-6) for k in final_a)


def test_resuming_for_more_epochs_averages_the_new_last_epochs(h36m_dir, tmp_path, capsys):
    """A finished run averaging its last epoch (2), resumed with -e 4: the weights scored and
    kept are epoch 4's alone, not the mean of epochs 2 and 4; epoch 3 is scored on its own
    weights, not on epoch 2's average."""
    from jointpose.model.loading import pose_weights

    run = tmp_path / "run"
    assert main(_train_args(h36m_dir, run, 2, "--average-last", "1")) == 0
    first = load_checkpoint(run)
    assert main(_train_args(h36m_dir, run, 4, "--average-last", "1", "--resume")) == 0
    assert (
        "note: -e 4 moves the averaged epochs (the last 1); the mean of epoch 2 is dropped and restarts at epoch 4"
        in (capsys.readouterr().out)
    )
    last = load_checkpoint(run)
    assert int(last["averaged_model"]["n_averaged"]) == 1
    weights = pose_weights(last)
    assert all(torch.equal(weights[k], last["model"][k]) for k in last["model"] if "num_batches" not in k)
    history = last["history"]
    assert history[2]["val_p1"] != history[1]["val_p1"] == first["history"][1]["val_p1"]
    # Resumed for fewer epochs than it ran: nothing to train, said so, its last epoch evaluated.
    assert main(_train_args(h36m_dir, run, 3, "--average-last", "1", "--resume")) == 0
    assert (
        "note: the run is at epoch 4, past -e 3: nothing to train; its epoch 4 is evaluated" in capsys.readouterr().out
    )
    assert load_checkpoint(run)["epoch"] == 4


def test_resuming_for_fewer_epochs_keeps_the_average_within_the_new_last_epochs(h36m_dir, tmp_path, capsys):
    """Planned for 8 epochs averaging the last 3, stopped after epoch 6 (averaged: 6), resumed
    with -e 7: its last 3 are 5-7, so epoch 6's share is kept and epoch 7 added."""
    run = tmp_path / "run"
    Trainer(_config(*_train_args(h36m_dir, run, 8, "--average-last", "3"))).fit(until_epoch=6)
    assert int(load_checkpoint(run)["averaged_model"]["n_averaged"]) == 1
    capsys.readouterr()
    assert main(_train_args(h36m_dir, run, 7, "--average-last", "3", "--resume")) == 0
    assert "moves the averaged epochs" not in capsys.readouterr().out
    assert int(load_checkpoint(run)["averaged_model"]["n_averaged"]) == 2


def _spawn(code: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _train_killed_renaming_latest(args: list[str], second: bool) -> None:
    """Run ``jointpose train args`` in a process killed (SIGKILL) as it renames its temporary
    latest.pt into place: the first time, or the second (over the first)."""
    proc = _spawn(f"""
        import os, signal, sys
        from jointpose.cli import main
        real_replace = os.replace
        def replace(src, dst):
            if str(dst).endswith("latest.pt") and os.path.exists(dst) == {second!r}:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)
        os.replace = replace
        sys.exit(main({args!r}))
    """)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_mid_epoch_leaves_a_resumable_checkpoint(h36m_dir, tmp_path):
    ckpt = tmp_path / "run"
    args = _train_args(h36m_dir, ckpt, 200, "--no-constraints")
    proc = _spawn(f"import sys; from jointpose.cli import main; sys.exit(main({args!r}))")
    # Resume keeps the 200-epoch schedule; it is stopped right after one more epoch.
    deadline = time.time() + 120
    while not (ckpt / "epoch_002.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(ckpt)
    assert saved["epoch"] >= 2
    trainer = Trainer(_config(*_train_args(h36m_dir, ckpt, 200, "--no-constraints", "--resume")))
    assert trainer.epoch == saved["epoch"]
    trainer.fit(until_epoch=saved["epoch"] + 1)
    assert load_checkpoint(ckpt)["epoch"] == saved["epoch"] + 1


@pytest.mark.slow
def test_kill_between_temporary_write_and_rename(h36m_dir, tmp_path):
    """Die exactly after the temporary latest.pt is written and fsynced, before the rename."""
    ckpt = tmp_path / "run"
    args = _train_args(h36m_dir, ckpt, 3, "--no-constraints")
    _train_killed_renaming_latest(args, second=True)
    leftovers = list(ckpt.glob(".latest.*.partial.pt"))  # safeio.atomic_path's temporary file
    assert leftovers, "the kill was meant to land between the write and the rename"
    saved = load_checkpoint(ckpt)  # the previous, complete latest.pt
    assert saved["epoch"] == 1
    assert main(_train_args(h36m_dir, ckpt, 3, "--no-constraints", "--resume")) == 0
    assert load_checkpoint(ckpt)["epoch"] == 3


def test_killed_before_its_first_latest_pt_the_run_resumes_from_its_epoch_file(h36m_dir, tmp_path, capsys):
    """Killed after epoch_001.pt is in place but before latest.pt first is: the folder was
    neither resumable ("no checkpoint (latest.pt)") nor a new run's ("already holds a run").
    ``--resume`` continues from the newest epoch file, as from latest.pt."""
    ckpt = tmp_path / "run"
    args = _train_args(h36m_dir, ckpt, 2, "--no-constraints")
    _train_killed_renaming_latest(args, second=False)
    assert (ckpt / "epoch_001.pt").is_file() and not (ckpt / "latest.pt").exists()
    assert main(args) == 2
    assert "already holds a run (epoch_001.pt); continue it with --resume (from its last epoch file), or move" in (
        capsys.readouterr().err
    )
    assert main(_train_args(h36m_dir, ckpt, 2, "--no-constraints", "--resume")) == 0
    assert [row["epoch"] for row in load_checkpoint(ckpt)["history"]] == [1, 2]


def test_the_run_keeps_its_own_random_streams(h36m_dir, tmp_path):
    """Dropout draws from torch's global generator: a draw of the caller's, or another Trainer
    trained, between a Trainer's construction and its fit, used to change its weights."""
    flags = ("--seed", "3", "-e", "1", "--dropout", "0.5")

    def weights(trainer: Trainer) -> list[torch.Tensor]:
        return list(trainer.model.state_dict().values())

    reference = Trainer(_config(*_train_args(h36m_dir, tmp_path / "ref", 1), *flags))
    reference.fit()
    first = Trainer(_config(*_train_args(h36m_dir, tmp_path / "a", 1), *flags))
    second = Trainer(_config(*_train_args(h36m_dir, tmp_path / "b", 1), *flags))
    torch.rand(5)
    second.fit()
    first.fit()
    for trainer in (first, second):
        assert all(torch.equal(a, b) for a, b in zip(weights(trainer), weights(reference)))
    # Python's own generator, unused by training but saved with the rest, is seeded too.
    saved = [load_checkpoint(tmp_path / name)["rng"][0]["python"] for name in ("ref", "a")]
    assert saved[0] == saved[1]


def test_a_resumed_runs_configuration_is_checked_naming_its_key(h36m_dir, tmp_path, capsys):
    """A value a checkpoint holds that no run could have is named as the checkpoint's key, not
    as a flag the command did not give, and before any epoch runs."""
    ckpt = tmp_path / "run"
    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -b 256 -e 1 --no-progress"
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)) == 0
    original = torch.load(ckpt / "latest.pt", weights_only=True)
    cases = (
        ({"weights": {"vel": float("nan")}}, "'weights.vel' must be a number in [0, 1000000], got nan"),
        ({"random_cameras": {"fov": [1, 2]}}, "'random_cameras': fov must be two numbers LOW:HIGH"),
        ({"epochs": 10**30}, "'epochs' must be an integer of magnitude below 2**63, got 31 digits"),
        ({"augment": "no"}, "'augment' must be True or False, got 'no'"),
        ({"dataset": ["h36m"]}, "'dataset' must be one of h36m, humaneva15, got ['h36m']"),
        ({"precision": ["fp32"]}, "'precision' must be one of fp32, bf16, fp16, got ['fp32']"),
        ({"causal": True, "smooth": 1.0}, "'smooth' reads future frames, which a 'causal' model must not"),
    )
    for changes, needle in cases:
        torch.save({**original, "config": {**original["config"], **changes}}, ckpt / "latest.pt")
        capsys.readouterr()
        assert main(cli("train", flags.replace("-e 1", "-e 2") + " --resume", data_dir=h36m_dir, checkpoint=ckpt)) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"latest.pt: checkpoint config {needle}" in err, err
    torch.save({**original, "epoch": 10**30}, ckpt / "latest.pt")  # not "finished": impossible
    assert main(cli("train", flags.replace("-e 1", "-e 2") + " --resume", data_dir=h36m_dir, checkpoint=ckpt)) == 2
    assert "latest.pt: checkpoint 'epoch' 1000000000000000000000000000000 is beyond the run's 1 epochs" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in ckpt.glob("epoch_*.pt")) == ["epoch_001.pt"]
