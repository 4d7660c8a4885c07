"""Bad input: one clear line naming the file, key or argument; exit code 2; no traceback."""

import re

import numpy as np
import pytest

from h36m_files import cli, pixels, write_dataset
from jointpose.cli import flag_message, main
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.inference.lifter import Lifter


def _edit_2d(folder, edit, **metadata):
    """Rewrite the 2D file: ``edit(positions)`` in place, ``metadata`` entries replaced."""
    files = dict(np.load(folder / "data_2d_h36m_gt.npz", allow_pickle=True))  # written by the test itself
    positions = files["positions_2d"].item()
    edit(positions)
    np.savez(folder / "data_2d_h36m_gt.npz", positions_2d=positions, metadata={**files["metadata"].item(), **metadata})


def _train(folder, tmp_path, *extra):
    flags = "-k gt -str S1 -ste S1 -arc 3 -ch 8 -e 1 --no-progress"
    return main([*cli("train", flags, data_dir=folder, checkpoint=tmp_path / "ck"), *extra])


def _one_clear_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    for needle in needles:
        assert needle in err, (needle, err)


def _set_view(value):
    def edit(positions):
        positions["S1"]["Walking"][0] = value

    return edit


@pytest.mark.parametrize(
    "name, edit, needles",
    [
        (
            "nan",
            lambda p: p["S1"]["Walking"][1].__setitem__((3, 4, 0), np.nan),
            ["['S1']['Walking'][1]", "NaN", "frame 3"],
        ),
        ("inf", lambda p: p["S1"]["Walking"][2].__setitem__((5, 0, 1), np.inf), ["['S1']['Walking'][2]", "inf"]),
        (
            "far off screen",  # finite in float32, but 10^29 image widths away
            lambda p: p["S1"]["Walking"][2].__setitem__((7, 0, 1), 1e30),
            ["['S1']['Walking'][2]", "1 of 30 frames (7)", "image widths off screen"],
        ),
        ("wrong dimensionality", _set_view(np.zeros((30, 17), np.float32)), ["['S1']['Walking'][0]", "shape (30, 17)"]),
        ("wrong coordinates", _set_view(np.zeros((30, 17, 4), np.float32)), ["['S1']['Walking'][0]", "2 or 3"]),
        ("empty", _set_view(np.zeros((0, 17, 2), np.float32)), ["['S1']['Walking'][0]", "empty"]),
        ("not numbers", _set_view(np.array(["a"] * 30)), ["['S1']['Walking'][0]", "numeric"]),
        (
            "wrong joint count",
            lambda p: p["S1"]["Walking"].__setitem__(slice(None), [v[:, :15] for v in p["S1"]["Walking"]]),
            ["keypoints_symmetry", "15"],
        ),
        ("camera count", lambda p: p["S1"].__setitem__("Walking", p["S1"]["Walking"][:2]), ["2 cameras", "S1 has 4"]),
        (
            "action missing",  # VideoPose3D refuses it too, rather than scoring fewer frames
            lambda p: p["S1"].__setitem__("Other", p["S1"].pop("Walking")),
            ["S1 'Walking' is in", "data_3d_h36m.npz but not in the 2D file"],
        ),
        (
            "2D shorter",
            lambda p: p["S1"]["Walking"].__setitem__(3, p["S1"]["Walking"][3][:10]),
            ["camera 3", "10 frames"],
        ),
    ],
)
def test_bad_2d_files(tmp_path, capsys, name, edit, needles):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    _edit_2d(folder, edit)
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "data_2d_h36m_gt.npz", *needles)


def test_fewer_keypoints_without_their_symmetry_name_the_default(tmp_path, capsys):
    """A 2D file of 16 keypoints and no symmetry of its own: the message says the 17-joint
    default was assumed, not that the file names a symmetry."""
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    _edit_2d(folder, lambda p: p["S1"].__setitem__("Walking", [v[:, :16] for v in p["S1"]["Walking"]]))
    _edit_2d(folder, lambda p: None, keypoints_symmetry=None)
    assert _train(folder, tmp_path) == 2
    _one_clear_line(
        capsys,
        "data_2d_h36m_gt.npz: no metadata['keypoints_symmetry'], and the 17-joint default names keypoints beyond "
        "the 16 present",
    )


def test_videopose3d_detector_order_trains_without_the_alignment(tmp_path, capsys):
    """VideoPose3D's detectron_pt_coco files hold COCO's keypoints in COCO's order (metadata
    layout_name 'coco', no input_layout): keypoint j is not joint j, so the alignment with the
    2D, which moves joint j to keypoint j, is left out and said so; --random-cameras, which
    draws the 2D from the joints, is refused."""
    import json

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    coco_symmetry = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
    _edit_2d(folder, lambda p: None, layout_name="coco", keypoints_symmetry=coco_symmetry)
    with pytest.warns(JointposeWarning, match=r"their own order \(coco order\), none at a joint's index"):
        assert _train(folder, tmp_path) == 0
    assert json.loads((tmp_path / "ck" / "evaluation.json").read_text())["config"]["align_2d"] == 0.0
    assert Lifter.load(tmp_path / "ck", device="cpu").input_layout == "coco order"  # recorded for inference
    assert _train(folder, tmp_path / "other", "--random-cameras") == 2
    _one_clear_line(capsys, "--random-cameras draws the 2D from the 3D joints; -k gt holds a detector's keypoints")


def test_the_2d_a_model_trained_on_is_recorded_as_text_or_not_at_all(tmp_path):
    """A dataset's input_layout read as a numpy string, which a checkpoint cannot hold, is
    recorded as text; a detector's order named past 100 characters is not recorded. Both
    checkpoints load."""
    for name, metadata, recorded in (
        ("numpy", {"input_layout": np.str_("coco")}, "coco"),
        ("long", {"layout_name": "x" * 120}, None),
    ):
        folder = write_dataset(tmp_path / name, {"S1": {"Walking": 30}})
        _edit_2d(folder, lambda p: None, **metadata)
        with pytest.warns(JointposeWarning, match="also in subjects_train"):
            assert _train(folder, tmp_path / name) == 0
        assert Lifter.load(tmp_path / name / "ck", device="cpu").input_layout == recorded


def test_evaluate_warns_of_another_layout_and_of_people_trained_on(tmp_path):
    """Scores of keypoints in another layout than the model's (their left/right pairs differ),
    or of people the model trained on, are kept but said to be so."""
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}, "S9": {"Walking": 30}})
    assert _train(folder, tmp_path) == 0  # -str S1
    files = dict(np.load(folder / "data_2d_h36m_gt.npz", allow_pickle=True))  # written by the test itself
    coco_symmetry = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
    metadata = {**files["metadata"].item(), "layout_name": "coco", "keypoints_symmetry": coco_symmetry}
    np.savez(folder / "data_2d_h36m_coco.npz", positions_2d=files["positions_2d"], metadata=metadata)
    flags = ["--data-dir", str(folder), "--checkpoint", str(tmp_path / "ck"), "-ste", "S9"]
    with pytest.warns(JointposeWarning, match="^keypoints coco: its left/right keypoint pairs are not those") as caught:
        assert main(["evaluate", *flags, "-k", "coco"]) == 0
    layout = next(w.message for w in caught if "left/right" in str(w.message))
    assert flag_message(layout, "evaluate").startswith("-k coco: its left/right")  # as the CLI writes it
    with pytest.warns(JointposeWarning, match="S1: .* trained on them; scores on people the model trained on"):
        assert main(["evaluate", *flags[:-1], "S1,S9"]) == 0
    assert not any("trained on them" in str(w.message) for w in caught)


def test_evaluate_refuses_the_offline_steps_for_a_causal_model(tmp_path, capsys):
    """--align-2d and --smooth read future frames: refused for a causal checkpoint, not ignored
    and recorded as applied."""
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    assert _train(folder, tmp_path, "--causal") == 0
    flags = ["--data-dir", str(folder), "--checkpoint", str(tmp_path / "ck"), "-ste", "S1"]
    for flag, value in (("--align-2d", "0.5"), ("--smooth", "2")):
        assert main(["evaluate", *flags, flag, value]) == 2
        _one_clear_line(capsys, f"{flag} reads future frames, which a causal model ({tmp_path / 'ck'}) must not")
    assert main(["evaluate", *flags, "--align-2d", "0"]) == 0
    # A bundled model is named as given, not by its installed file's path.
    bundled = ["--data-dir", str(folder), "--pretrained", "causal", "-k", "gt", "-ste", "S1", "--smooth", "2"]
    assert main(["evaluate", *bundled]) == 2
    _one_clear_line(capsys, "--smooth reads future frames, which a causal model (--pretrained causal) must not")


def test_subject_missing_from_3d_file(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    other = write_dataset(tmp_path / "other", {"S5": {"Walking": 30}})
    (folder / "data_3d_h36m.npz").write_bytes((other / "data_3d_h36m.npz").read_bytes())
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "subject S1 not in", "data_3d_h36m.npz", "S5")


def test_3d_positions_in_millimetres_are_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    files = dict(np.load(folder / "data_3d_h36m.npz", allow_pickle=True))
    positions = files["positions_3d"].item()
    positions["S1"]["Walking"] = positions["S1"]["Walking"] * 1000.0  # Human3.6M's original unit
    np.savez(folder / "data_3d_h36m.npz", **{**files, "positions_3d": positions})
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "data_3d_h36m.npz", "['S1']['Walking'] seen by camera 0", "more than 10 m from the root")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_npz_files(tmp_path, capsys, damage):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    path = folder / "data_3d_h36m.npz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else b"\x00" * 100)
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "data_3d_h36m.npz")


def test_missing_files_and_bad_arguments(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path / "nowhere"), "--checkpoint", str(tmp_path / "c")]) == 2
    _one_clear_line(capsys, "--data-dir", "nowhere")
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    assert _train(folder, tmp_path, "--chunk", "2") == 2
    _one_clear_line(capsys, "--chunk")
    assert _train(folder, tmp_path, "--subset", "1.5") == 2
    _one_clear_line(capsys, "--subset")


@pytest.mark.parametrize(
    "damage", ["truncate", "garbage", "not-a-checkpoint", "config-a-string", "negative-epoch", "smooth-too-wide"]
)
def test_corrupt_checkpoints(tmp_path, capsys, damage):
    import torch

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    assert _train(folder, tmp_path, "--no-constraints") == 0
    capsys.readouterr()
    path = tmp_path / "ck" / "latest.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:2000])
    elif damage == "garbage":
        path.write_bytes(b"junk" * 100)
    elif damage == "not-a-checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    else:  # a well-formed checkpoint with one entry of the wrong kind or size
        ckpt = torch.load(path, weights_only=True)
        key, value, needle = {
            "config-a-string": ("config", "x", "'config' must be a mapping, got str"),
            "negative-epoch": ("epoch", -5, "'epoch' must be a non-negative integer"),
            "smooth-too-wide": (
                "config",
                {**ckpt["config"], "constraints": True, "smooth": 1e9},  # a filter of a billion frames
                "checkpoint config 'smooth': 1000000000 exceeds the limit of 1000000",
            ),
        }[damage]
        torch.save({**ckpt, key: value}, path)
    needles = [needle] if damage in ("config-a-string", "negative-epoch", "smooth-too-wide") else []
    assert main(cli("evaluate", "-k gt -ste S1", data_dir=folder, checkpoint=tmp_path / "ck")) == 2
    _one_clear_line(capsys, "latest.pt", *needles)
    assert _train(folder, tmp_path, "--no-constraints", "--resume") == 2
    _one_clear_line(capsys, "latest.pt")


def _deep() -> tuple:
    """A tuple holding one tuple twice, 40 levels deep: written out (a log row), 2**40 leaves."""
    value = ()
    for _ in range(40):
        value = (value, value)
    return value


@pytest.mark.parametrize("damage", ["rng", "optimizer", "history", "deep history", "deep step log", "lr"])
def test_resuming_from_a_checkpoint_whose_parts_do_not_fit(tmp_path, capsys, damage):
    # The file is a jointpose checkpoint the run matches (evaluate reads it), but one part
    # that only resuming reads is malformed: one line naming the file, not a traceback.
    import torch

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    assert _train(folder, tmp_path, "--no-constraints") == 0
    path = tmp_path / "ck" / "latest.pt"
    ckpt = torch.load(path, weights_only=True)
    broken = {
        "rng": {"rng": [{"torch": 3}]},
        "optimizer": {"optimizer": {"state": {}, "param_groups": []}},
        "history": {"history": 5},
        "deep history": {"history": [{"epoch": _deep()}]},
        "deep step log": {"step_log": [{"step": 1, "loss": _deep()}]},
        "lr": {"lr": "fast"},
    }[damage]
    torch.save({**ckpt, **broken}, path)
    capsys.readouterr()
    assert main(cli("evaluate", "-k gt -ste S1", data_dir=folder, checkpoint=tmp_path / "ck")) == 0
    capsys.readouterr()
    assert _train(folder, tmp_path, "--no-constraints", "--resume") == 2
    _one_clear_line(capsys, "latest.pt: cannot resume from it")


def test_malicious_checkpoint_runs_nothing(tmp_path, capsys):
    import os

    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    (tmp_path / "ck").mkdir()
    torch.save({"format": "jointpose-checkpoint-v1", "evil": Payload()}, tmp_path / "ck" / "latest.pt")
    assert main(cli("evaluate", "-k gt -ste S1", data_dir=folder, checkpoint=tmp_path / "ck")) == 2
    _one_clear_line(capsys, "latest.pt", "not a safe jointpose checkpoint")
    assert not (tmp_path / "pwned").exists()


def test_short_sequences_are_padded_not_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 60}, "S9": {"Walking": 5}})
    flags = "-k gt -str S1 -ste S9 -arc 3,3,3 -ch 8 -e 1 --no-progress"
    assert main(cli("train", flags, data_dir=folder, checkpoint=tmp_path / "ck")) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()  # 5 frames < receptive field 27: edge-padded
    assert row[0] == "Average" and row[-1] == "20"  # all 4 cameras x 5 frames evaluated


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(JointposeError):
        main(["--debug", "train", "--data-dir", str(tmp_path / "nowhere"), "--checkpoint", str(tmp_path / "c")])
    with pytest.raises(JointposeError):  # after the verb too
        main(["data", "build", "--bvh", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--debug"])


def test_errors_name_the_whole_verb(tmp_path, capsys):
    assert main(["data", "build", "--bvh", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("jointpose data build: error: --bvh")


def test_flags_that_would_be_ignored_are_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    flags = "-k gt -str S1 -ste S1 -arc 3 -ch 8 -e 1 --no-constraints --no-progress"
    assert main(cli("ablate", flags, data_dir=folder, out=tmp_path / "abl")) == 2
    _one_clear_line(capsys, "--no-constraints")
    assert _train(folder, tmp_path, "--causal", "--smooth", "1") == 2
    _one_clear_line(capsys, "--smooth", "--causal")
    np.save(tmp_path / "kp.npy", np.zeros((5, 17, 2)))
    paths = dict(o=tmp_path / "p.npz", checkpoint=tmp_path / "m")
    assert main(cli("infer", "--causal --image-size 10 10", tmp_path / "kp.npy", **paths)) == 2
    _one_clear_line(capsys, "--causal", "--checkpoint")
    assert not (tmp_path / "abl").exists() and not (tmp_path / "ck").exists()


@pytest.mark.parametrize(
    "flag, value",
    [
        ("-arc", "2,3"),
        ("-arc", "3,0"),
        ("-ch", "0"),
        ("-e", "0"),
        ("-b", "0"),
        ("-drop", "1"),
        ("-drop", "-0.1"),
        ("-lr", "-1"),
        ("-lr", "nan"),
        ("-lrd", "0"),
        ("-lrd", "1.5"),
        ("--warmup", "5"),
        ("--warmup", "-1"),
        ("--keep-last", "-1"),
        ("-b", "65537"),  # memory and time grew with -b, not with the data
        ("--chunk", "1025"),
        ("-lr", "2"),  # at 1e6 the outputs overflowed while the weights stayed finite
        ("--downsample", "10001"),
    ],
)
def test_out_of_range_training_flags_are_named(tmp_path, capsys, flag, value):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    assert _train(folder, tmp_path, flag, value) == 2
    _one_clear_line(capsys, flag, value)
    assert not (tmp_path / "ck").exists()  # refused before anything was written


@pytest.mark.parametrize("symmetry", [[[], []], [[-1, 4], [2, 5]]])
def test_unusable_keypoint_symmetry_is_named(tmp_path, capsys, symmetry):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    _edit_2d(folder, lambda positions: None, keypoints_symmetry=symmetry)
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "data_2d_h36m_gt.npz", "keypoints_symmetry")


def test_bad_cameras_in_the_3d_file_name_the_3d_file(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    files = dict(np.load(folder / "data_3d_h36m.npz", allow_pickle=True))  # written by the test itself
    np.savez(folder / "data_3d_h36m.npz", **files, cameras="{not json")
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "data_3d_h36m.npz", "cameras")


def test_subject_without_actions_is_named(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}, "S5": {"Walking": 30}})
    _edit_2d(folder, lambda positions: positions.__setitem__("S5", {}))
    flags = "-k gt -str S1,S5 -ste S1 -arc 3 -ch 8 -e 1 --no-progress"
    assert main(cli("train", flags, data_dir=folder, checkpoint=tmp_path / "ck")) == 2
    _one_clear_line(capsys, "data_2d_h36m_gt.npz", "S5", "no actions")


@pytest.mark.parametrize(
    "verb", [["train", "--data-dir", "d", "--checkpoint", "c"], ["data", "build", "--bvh", "b", "--out", "o"]]
)
def test_negative_seed_is_named(capsys, verb):
    with pytest.raises(SystemExit) as exit_info:
        main([*verb, "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, needle", [(["-ch", "0"], "-ch"), (["-e", "0"], "-e"), (["--animation", "demo.avi"], "--animation")]
)
def test_demo_refuses_bad_flags_before_training(tmp_path, capsys, flags, needle):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress", *flags]) == 2
    _one_clear_line(capsys, needle)
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    "flags, needle",
    [
        (
            ["--fps", "1"],
            "--fps 1: the longest training clip has 4 frames, fewer than the demo model's receptive field",
        ),
        (["-e", "10000000"], "-e must be in [1, 1000000]"),
        (["-ch", "100000"], "-ch must be in [1, 16384]"),
    ],
)
def test_a_refused_demo_keeps_the_previous_demos_files(tmp_path, capsys, flags, needle):
    """The checks come before the data and checkpoint folders of an earlier demo are replaced."""
    out = tmp_path / "demo"
    earlier = ("data/data_2d_h36m_noisy.npz", "checkpoint/latest.pt", "demo.gif", ".jointpose-demo")
    for name in earlier:  # the marker says they are a demo's own
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"earlier demo")
    assert main(["demo", "--out", str(out), "--no-progress", *flags]) == 2
    _one_clear_line(capsys, needle)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == {
        name: b"earlier demo" for name in earlier
    }


def test_render_refuses_a_zero_frame_rate(tmp_path, capsys):
    np.savez(tmp_path / "kp.npz", keypoints=pixels(5))
    np.savez(tmp_path / "poses.npz", poses_3d=np.zeros((5, 17, 3)), fps=np.array(50.0))
    paths = dict(keypoints_file=tmp_path / "kp.npz", poses=tmp_path / "poses.npz", o=tmp_path / "a.gif")
    assert main(cli("render", "--image-size 100 100 --fps 0", **paths)) == 2
    _one_clear_line(capsys, "fps")
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["infer", "kp.npy", "-o", "o.npz", "--checkpoint", ""], "--checkpoint"),  # was the bundled model
        (["infer", "kp.npy", "-o", "o.npz", "--checkpoint="], "--checkpoint"),
        (["data", "build", "--bvh", "", "--out", "ds"], "--bvh"),  # was the current folder
        (["infer", "", "-o", "o.npz"], "input"),  # positionals, named as their usage shows them
        (["video", "", "-o", "o.npz"], "input"),
        (["export", "", "--onnx", "o.onnx"], "model"),
    ],
)
def test_empty_values_are_refused(tmp_path, capsys, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "kp.npy", np.full((10, 17, 2), 500.0))
    assert main(argv) == 2
    _one_clear_line(capsys, f"{flag}: an empty value")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npy"]


@pytest.mark.parametrize("device", ["meta", "mps", "xla"])
def test_devices_other_than_cpu_and_cuda_are_refused(tmp_path, capsys, device):
    np.save(tmp_path / "kp.npy", np.full((10, 17, 2), 500.0))
    argv = ["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "o.npz"), "--image-size", "1000", "1000"]
    assert main([*argv, "--device", device]) == 2
    _one_clear_line(capsys, f"--device {device}: jointpose runs on the CPU or CUDA")


def test_downsample_beyond_its_bound_is_named_by_evaluate(tmp_path):
    from jointpose.data.h36m import load_dataset

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    with pytest.raises(
        JointposeError, match=r"^downsample must be an integer in \[1, 10000\], got 18446744073709551616$"
    ):
        load_dataset(folder, "gt", ["S1"], downsample=2**64)


def test_a_non_finite_epoch_loss_stops_training_before_its_checkpoint(tmp_path, capsys, monkeypatch):
    """With a huge learning rate the outputs overflow while the weights stay finite: the epoch's
    loss says so, and the run stops before writing the epoch."""
    from jointpose.training.trainer import Trainer

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    monkeypatch.setattr(Trainer, "train_one_epoch", lambda self: {"mpjpe": float("inf")})
    assert _train(folder, tmp_path) == 2
    _one_clear_line(capsys, "training diverged in epoch 1: its loss or a weight is no longer finite")
    assert not (tmp_path / "ck" / "latest.pt").exists()


def test_index_rows_with_missing_cells_are_read_as_empty(tmp_path):
    from jointpose.motion.mocap import read_index

    (tmp_path / "index.csv").write_text("file,description,trial\nonlyone\n001/a.bvh,Walk\n")
    assert read_index(tmp_path) == {"onlyone": ("", ""), "001/a.bvh": ("Walk", "")}
    # A byte-order mark (as a spreadsheet saving UTF-8 CSV writes) is not part of the first column's name.
    (tmp_path / "index.csv").write_bytes("\ufefffile,description\n001/a.bvh,Walk\n".encode())
    assert read_index(tmp_path) == {"001/a.bvh": ("Walk", "")}


def test_export_names_its_model_argument_and_evaluate_the_predictions_suffix(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    _one_clear_line(capsys, "jointpose export: error: model: file not found")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "ck"), "--data-dir", str(tmp_path)]
    assert main([*argv, "--export-predictions", str(tmp_path / "p.txt")]) == 2
    _one_clear_line(capsys, "p.txt: predictions are written as .npz")


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--ring-count", "-1"], "--ring-count applies to --cameras ring or random only (here --cameras h36m)"),
        (["--ring-distance", "nan"], "--ring-distance applies to --cameras ring only (here --cameras h36m)"),
        (["--camera-ranges", "garbage"], "--camera-ranges applies to --cameras random only (here --cameras h36m)"),
        (["--cameras", "random", "--ring-distance=9"], "--ring-distance applies to --cameras ring only"),
        (["--cameras", "random", "--camera-ranges", "fov=40:100,fov=50:60"], "--camera-ranges: fov is given twice"),
        (["--cameras", "random", "--camera-ranges", "fov=1:2"], "170, got (1.0, 2.0)"),
    ],
)
def test_data_build_flags_that_cannot_act_are_refused(tmp_path, capsys, extra, needle):
    argv = ["data", "build", "--bvh", str(tmp_path / "motion"), "--out", str(tmp_path / "ds"), *extra]
    assert main(argv) == 2
    _one_clear_line(capsys, needle)
    assert not (tmp_path / "ds").exists()


def test_render_flags_of_the_other_mode_are_refused(tmp_path, capsys):
    out = ["render", "-o", str(tmp_path / "r.gif")]
    assert main([*out, "--data-dir", str(tmp_path), "--sequence", "S1/Walking/0", "--poses", "p.npz"]) == 2
    _one_clear_line(capsys, "--poses does not apply with --data-dir")
    assert main([*out, "--keypoints-file", "k.npy", "--poses", "p.npz", "--sequence", "S1/Walking/0"]) == 2
    _one_clear_line(capsys, "--sequence applies with --data-dir only")


def test_a_subject_named_twice_is_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    assert (
        main(
            cli(
                "train",
                "-k gt -str S1,S1 -ste S1 -arc 3 -ch 8 -e 1 --no-progress",
                data_dir=folder,
                checkpoint=tmp_path / "ck",
            )
        )
        == 2
    )
    _one_clear_line(capsys, "-str must be a non-empty tuple of distinct subject names")


def test_a_principal_point_far_outside_the_image_is_named(tmp_path, capsys):
    np.save(tmp_path / "kp.npy", pixels(10))
    argv = ["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "o.npz"), "--image-size", "1000", "800"]
    assert main([*argv, "--fov", "60", "--principal-point", "1e300", "1e300"]) == 2
    _one_clear_line(
        capsys, "--principal-point must lie within one image size of the 1000x800 image, got (1e+300, 1e+300)"
    )
    assert (
        main([*argv, "--fov", "60", "--principal-point", "-1000", "1600", "--no-progress"]) == 0
    )  # the bounds themselves


@pytest.mark.parametrize("verb", ["infer", "video"])
def test_focal_length_and_fov_together_are_refused_before_any_reading(tmp_path, capsys, verb):
    """Both describe the camera's angle of view: refused as the flags are read, not after a
    long input has been loaded (the input here does not even exist)."""
    argv = [verb, str(tmp_path / "missing.npz"), "-o", str(tmp_path / "o.npz"), "--fov", "60", "--focal-length", "900"]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    _one_clear_line(capsys, f"jointpose {verb}: error: argument --focal-length: not allowed with argument --fov")


def test_one_bad_focal_length_on_the_command_line_is_named_as_one_number(tmp_path, capsys):
    """The flag takes one number: its message does not offer the Python API's fx, fy pair."""
    np.save(tmp_path / "k.npy", np.random.default_rng(0).uniform(100, 700, (5, 17, 2)))
    argv = ["infer", str(tmp_path / "k.npy"), "-o", str(tmp_path / "o.npz"), "--image-size", "1000", "800"]
    assert main([*argv, "--focal-length", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "jointpose infer: error: --focal-length must be a positive number of pixels, got -1.0", err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("suffix", [".csv", ".bvh", ".npy"])
def test_render_names_the_poses_it_reads_back(tmp_path, capsys, suffix):
    """A CSV or BVH output (or an array) as --poses: the message names the outputs it reads,
    not a broken npz archive."""
    np.save(tmp_path / "k.npy", np.random.default_rng(0).uniform(100, 700, (5, 17, 2)))
    (tmp_path / f"poses{suffix}").write_text("x")
    argv = ["render", "--keypoints-file", str(tmp_path / "k.npy"), "--poses", str(tmp_path / f"poses{suffix}")]
    assert main([*argv, "--image-size", "1000", "800", "-o", str(tmp_path / "r.gif")]) == 2
    _one_clear_line(capsys, f"poses{suffix}: a {suffix} file; poses are read back from the npz or JSON output")
    assert not (tmp_path / "r.gif").exists()


def test_a_subject_name_holding_a_slash_is_refused(tmp_path, capsys):
    """Sequence keys are SUBJECT/ACTION/CAMERA: S/1 would make keys render --sequence cannot address."""
    argv = ["data", "build", "--bvh", str(tmp_path), "--out", str(tmp_path / "ds"), "--cameras", "ring"]
    assert main([*argv, "--subjects", "001=S/1"]) == 2
    _one_clear_line(capsys, "--subjects: subject name 'S/1' holds '/'")


@pytest.mark.parametrize(
    "failure",
    [
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: 204000000 bytes"),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_running_out_of_memory_is_one_line_and_keeps_the_output(tmp_path, capsys, monkeypatch, failure):
    """An input too large for the machine (a compressed file of a million frames is small)
    fails as one line, exit code 2, with any earlier output kept; other errors stay bugs."""
    import jointpose.inference.lifter as lifter_module

    def allocation_fails(*args, **kwargs):
        raise failure

    np.save(tmp_path / "kp.npy", pixels(30))
    out = tmp_path / "out.npz"
    out.write_bytes(b"kept")
    argv = ["infer", str(tmp_path / "kp.npy"), "-o", str(out), "--image-size", "1000", "1000", "--no-progress"]
    monkeypatch.setattr(lifter_module, "predict", allocation_fails)
    assert main(argv) == 2
    _one_clear_line(capsys, "jointpose infer: error: out of memory: the input needs more than this machine has free")
    assert out.read_bytes() == b"kept"
    monkeypatch.setattr(lifter_module, "predict", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(argv)


@pytest.mark.parametrize(
    "symmetry, needle",
    [
        (["45", "12"], "must be two lists of keypoint indices, got ['45', '12']"),
        ([[4.7, 5.2], [1.9, 2.1]], "must be two lists of keypoint indices, got [[4.7, 5.2], [1.9, 2.1]]"),
        ([[4, True], [1, 2]], "must be two lists of keypoint indices"),
        ([[1, 1, 2], [1, 4, 4]], "needs left/right pairs of distinct keypoint indices >= 0, each on one side once"),
        ([[4, 5], [1]], "sides differ in length"),
    ],
)
def test_a_datasets_keypoint_symmetry_is_read_as_written_or_refused(tmp_path, symmetry, needle):
    """Indices as strings or fractions were read through int(): "45" as 4 and 5, 4.7 as 4."""
    from jointpose.data.h36m import load_dataset

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    _edit_2d(folder, lambda p: None, keypoints_symmetry=symmetry)
    with pytest.raises(JointposeError) as info:
        load_dataset(folder, "gt", ["S1"])
    assert str(info.value).startswith(f"{folder / 'data_2d_h36m_gt.npz'}: metadata['keypoints_symmetry'] ")
    assert needle in str(info.value)


def test_a_datasets_frame_rate_and_keypoints_name_are_read_as_given(tmp_path):
    """A frame rate stored as text or a boolean was read through float(): "50", or true as 1
    fps. A keypoints name is a name in the data folder, not a path out of it."""
    from jointpose.data.h36m import load_dataset

    folder = write_dataset(tmp_path / "data", {"S1": {"Walking": 30}})
    files = dict(np.load(folder / "data_2d_h36m_gt.npz", allow_pickle=True))  # written by the test itself
    for fps, shown in ((np.array("50"), "<U2 ()"), (np.array(True), "bool ()")):
        np.savez(folder / "data_2d_h36m_gt.npz", **files, fps=fps)
        with pytest.raises(
            JointposeError, match=rf"data_2d_h36m_gt.npz: key 'fps' must be one number, got {re.escape(shown)}"
        ):
            load_dataset(folder, "gt", ["S1"])
    with pytest.raises(JointposeError, match=r"keypoints must be a name, without / or \\, got '../data/gt'"):
        load_dataset(folder, "../data/gt", ["S1"])
