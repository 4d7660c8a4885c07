"""Command-line flags, each checked for its effect against values worked out another way
(the Python API, a hand conversion, or the same command without the flag)."""

import csv
import json
import warnings

import imageio.v3 as iio
import numpy as np
import pytest

from h36m_files import cli
from jointpose.cli import main
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton
from jointpose.inference.lifter import Lifter
from test_keypoints import COCO_TEMPLATE, coco_expected

SIZE = ["--image-size", "1000", "1000"]


def _walk(frames: int = 40) -> np.ndarray:
    """(frames, 17, 2) COCO-17 pixels of a person drifting right."""
    return COCO_TEMPLATE * 2.0 + np.array([400.0, 300.0]) + np.arange(frames)[:, None, None] * np.array([2.0, 0.3])


def _infer(tmp_path, source, name, *flags) -> np.ndarray:
    out = tmp_path / name
    assert main(["infer", str(source), "-o", str(out), *SIZE, "--no-progress", *flags]) == 0
    return np.load(out)["poses_3d"] if out.suffix == ".npz" else out


@pytest.fixture(scope="module")
def offline():
    return Lifter.from_pretrained("offline", device="cpu")


def test_infer_layout_and_format(tmp_path, offline, capsys):
    coco = _walk()
    np.save(tmp_path / "coco.npy", coco)
    np.save(tmp_path / "h36m.npy", coco_expected(coco))  # converted by hand
    # Without the alignment with the 2D, which moves all of Human3.6M-17 keypoints' joints and
    # only the limbs of COCO's (tests/test_alignment.py), the two inputs are one track.
    off = ("--align-2d", "0")
    as_coco = _infer(tmp_path, tmp_path / "coco.npy", "a.npz", "--layout", "coco", *off)
    assert np.array_equal(as_coco, _infer(tmp_path, tmp_path / "h36m.npy", "b.npz", *off))
    assert np.abs(as_coco - _infer(tmp_path, tmp_path / "coco.npy", "c.npz")).max() > 0.01  # read as H36M: other joints
    path = _infer(tmp_path, tmp_path / "h36m.npy", "poses.txt", "--format", "csv", *off)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["frame", "joint", "x", "y", "z"] and len(rows) == 1 + 40 * 17
    values = np.array([[float(v) for v in row[2:]] for row in rows[1:]]).reshape(40, 17, 3)
    assert np.abs(values - as_coco).max() <= 5e-7  # six decimals
    assert rows[1 + 17 * 3 + 5][:2] == ["3", skeleton.JOINT_NAMES[5]]
    # --format against an extension that names another format: the file would not read back.
    (tmp_path / "kept.npz").write_bytes(b"before")
    argv = ["infer", str(tmp_path / "h36m.npy"), "-o", str(tmp_path / "kept.npz"), "--format", "bvh"]
    assert main([*argv, "--image-size", "1000", "1000", "--no-progress"]) == 2
    assert (tmp_path / "kept.npz").read_bytes() == b"before"
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "kept.npz: its extension names the npz format, and --format bvh; leave out --format or name the file .bvh"
        )
    )


def test_threads_sets_pytorchs_threads_before_or_after_the_verb(tmp_path, capsys):
    import torch

    np.save(tmp_path / "coco.npy", _walk(20))
    default = torch.get_num_threads()
    try:
        for argv in (["--threads", "1", "infer"], ["infer", "--threads=1"]):
            torch.set_num_threads(2)
            assert main([*argv, str(tmp_path / "coco.npy"), "-o", str(tmp_path / "t.npz"), *SIZE, "--no-progress"]) == 0
            assert torch.get_num_threads() == 1 and (tmp_path / "t.npz").is_file()
        for bad in ("0", "1025"):
            assert main(["--threads", bad, "infer", str(tmp_path / "coco.npy"), "-o", str(tmp_path / "u.npz")]) == 2
            assert capsys.readouterr().err.strip().endswith(f"--threads {bad}: give a whole number from 1 to 1024")
        assert not (tmp_path / "u.npz").exists()
    finally:
        torch.set_num_threads(default)


def test_main_puts_the_processs_warning_settings_back(tmp_path, capsys):
    """main leaves the warning filters and formatter of a program calling it as they were,
    after a verb that warned (CSV leaving the trajectory out)."""
    import warnings

    from jointpose.errors import JointposeWarning

    before = (warnings.formatwarning, list(warnings.filters))
    xy = np.asarray(COCO_TEMPLATE, dtype=float) + 500.0
    points = np.tile(np.column_stack([xy, np.full(17, 0.9)]), (4, 1, 1))
    entries = [
        {"image_id": f, "category_id": 1, "keypoints": p.ravel().tolist(), "score": 0.9} for f, p in enumerate(points)
    ]
    (tmp_path / "in.json").write_text(json.dumps(entries))
    args = ["infer", str(tmp_path / "in.json"), "-o", str(tmp_path / "out.csv"), "--image-size", "1000", "1000"]
    with pytest.warns(JointposeWarning, match="the trajectory goes to npz"):
        recording = list(warnings.filters)  # pytest.warns's own, which it puts back itself on leaving
        assert main([*args, "--no-progress"]) == 0
        assert list(warnings.filters) == recording
    assert warnings.formatwarning is before[0] and list(warnings.filters) == before[1]


def test_infer_confidence_threshold_fills_low_joints_by_interpolation(tmp_path, capsys):
    h36m = coco_expected(_walk())
    conf = np.full(h36m.shape[:2] + (1,), 0.9)
    conf[10, 13] = 0.5  # left wrist, frame 10
    moved = h36m.copy()
    moved[10, 13] += 80.0  # a wild detection there
    np.save(tmp_path / "conf.npy", np.concatenate([moved, conf], axis=-1))
    by_hand = moved.copy()
    by_hand[10, 13] = (moved[9, 13] + moved[11, 13]) / 2  # linear in time
    np.save(tmp_path / "by_hand.npy", np.concatenate([by_hand, conf], axis=-1))  # a filled joint keeps its confidence
    kept = _infer(tmp_path, tmp_path / "conf.npy", "kept.npz")  # default 0.3: the detection is used
    filled = _infer(tmp_path, tmp_path / "conf.npy", "filled.npz", "--confidence-threshold", "0.6")
    assert "filled 1 low-confidence or missing joints in 1 frames" in capsys.readouterr().out
    assert np.array_equal(filled, _infer(tmp_path, tmp_path / "by_hand.npy", "ref.npz"))
    assert np.abs(kept - filled).max() > 1e-3
    capsys.readouterr()
    for bad in ("nan", "1.5"):
        out = tmp_path / "bad.npz"
        assert main(["infer", str(tmp_path / "conf.npy"), "-o", str(out), *SIZE, "--confidence-threshold", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.endswith(f"--confidence-threshold must lie in [0, 1], got {bad}")
        assert not out.exists()
    # --fps at 0.4 against the model's 50: a factor of 125, beyond JOINTPOSE_MAX_RESAMPLE (100).
    assert main(["infer", str(tmp_path / "conf.npy"), "-o", str(tmp_path / "slow.npz"), *SIZE, "--fps", "0.4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "--fps: resampling 0.4 -> 50 fps (factor): 125 exceeds the limit of 100 (set JOINTPOSE_MAX_RESAMPLE to allow more)"
    )


def test_infer_no_tta_and_causal_follow_the_api(tmp_path, offline):
    kp = coco_expected(_walk())
    np.save(tmp_path / "kp.npy", kp)
    plain = _infer(tmp_path, tmp_path / "kp.npy", "plain.npz", "-no-tta")
    offline.flip_test = False
    assert np.allclose(plain, offline.predict(kp, (1000, 1000)), atol=1e-6)
    offline.flip_test = True
    assert np.abs(plain - offline.predict(kp, (1000, 1000))).max() > 1e-4  # flipping averages something else
    causal = _infer(tmp_path, tmp_path / "kp.npy", "causal.npz", "--causal")
    assert np.allclose(causal, Lifter.from_pretrained("causal", device="cpu").predict(kp, (1000, 1000)), atol=1e-6)


def _video(path, frames: int, size=(96, 64)) -> None:
    colours = np.linspace(20, 230, frames).astype(np.uint8)
    iio.imwrite(
        path, np.broadcast_to(colours[:, None, None, None], (frames, size[1], size[0], 3)), fps=10, macro_block_size=1
    )


def test_infer_render_with_video_and_render_truth(tmp_path, capsys):
    kp = coco_expected(_walk(12)) * 0.1  # in a 96 x 64 image
    np.save(tmp_path / "kp.npy", kp)
    _video(tmp_path / "v.mp4", 12)
    paths = dict(o=tmp_path / "p.npz", render=tmp_path / "a.gif", video=tmp_path / "v.mp4")
    assert main(cli("infer", "--image-size 96 64 --no-progress", tmp_path / "kp.npy", **paths)) == 0
    frames = iio.imread(tmp_path / "a.gif", index=None)
    assert len(frames) == 12
    _video(tmp_path / "short.mp4", 5)
    paths = dict(o=tmp_path / "q.npz", render=tmp_path / "b.gif", video=tmp_path / "short.mp4")
    assert main(cli("infer", "--image-size 96 64 --no-progress", tmp_path / "kp.npy", **paths)) == 2
    assert f"--video {tmp_path / 'short.mp4'}: has 5 frames but the poses have 12" in capsys.readouterr().err
    assert not (tmp_path / "q.npz").exists()  # checked before the npz was written
    inputs = dict(keypoints_file=tmp_path / "kp.npy", poses=tmp_path / "p.npz")
    assert main(cli("render", "--image-size 96 64 --no-progress", **inputs, o=tmp_path / "one.gif")) == 0
    truth = dict(truth=tmp_path / "p.npz", video=tmp_path / "v.mp4")
    assert main(cli("render", "--image-size 96 64 --no-progress", **inputs, o=tmp_path / "two.gif", **truth)) == 0
    one, two = iio.imread(tmp_path / "one.gif", index=0), iio.imread(tmp_path / "two.gif", index=0)
    assert two.shape[1] > one.shape[1] and two.shape[0] == one.shape[0]  # a third panel: the truth


def test_render_height_sizes_the_animation(tmp_path, capsys):
    """--render-height sets the frames' height (the width follows from the panels) in infer and
    render; out of bounds, or without an animation to size, it is refused before any work. The
    help states render.py's own bounds and default."""
    import argparse

    from jointpose.cli import build_parser
    from jointpose.render import RENDER_HEIGHT, RENDER_HEIGHTS

    kp = coco_expected(_walk(6)) * 0.1  # in a 96 x 64 image
    np.save(tmp_path / "kp.npy", kp)
    flags = "--image-size 96 64 --no-progress"
    assert (
        main(
            cli(
                "infer",
                flags + " --render-height 600",
                tmp_path / "kp.npy",
                o=tmp_path / "p.npz",
                render=tmp_path / "a.gif",
            )
        )
        == 0
    )
    assert iio.imread(tmp_path / "a.gif", index=0).shape[0] == 600
    inputs = dict(keypoints_file=tmp_path / "kp.npy", poses=tmp_path / "p.npz")
    assert main(cli("render", flags + " --render-height 301", **inputs, o=tmp_path / "b.gif")) == 0
    assert iio.imread(tmp_path / "b.gif", index=0).shape[0] == 300  # evened, for H.264
    assert main(cli("render", flags, **inputs, o=tmp_path / "c.gif")) == 0
    assert iio.imread(tmp_path / "c.gif", index=0).shape[0] == RENDER_HEIGHT
    capsys.readouterr()
    assert main(cli("render", flags + " --render-height 100", **inputs, o=tmp_path / "d.gif")) == 2
    assert "--render-height must be a whole number of pixels in [200, 2160], got 100" in capsys.readouterr().err
    assert main(cli("infer", flags + " --render-height 600", tmp_path / "kp.npy", o=tmp_path / "q.npz")) == 2
    assert "--render-height sizes the animation of --render; pass --render too" in capsys.readouterr().err
    assert not (tmp_path / "d.gif").exists() and not (tmp_path / "q.npz").exists()
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for verb in ("infer", "video", "render"):
        (action,) = (a for a in verbs[verb]._actions if a.dest == "render_height")
        assert f"{RENDER_HEIGHTS[0]}-{RENDER_HEIGHTS[1]} (default {RENDER_HEIGHT})" in action.help


def test_the_format_flag_offers_the_formats_export_writes():
    """--format's choices are written out in the parser (which does not import the exporter):
    they must stay the exporter's."""
    import argparse

    from jointpose.cli import build_parser
    from jointpose.inference.export import FORMATS

    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for verb in ("infer", "video"):
        (action,) = (a for a in verbs[verb]._actions if a.dest == "format")
        assert tuple(action.choices) == FORMATS


def test_every_flag_of_every_verb_says_what_it_does():
    """`jointpose VERB --help` explains each option: none is listed bare."""
    import argparse

    from jointpose.cli import build_parser

    def bare(parser, verb):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from bare(sub, f"{verb} {name}".strip())
            elif action.option_strings and not action.help:
                yield f"{verb}: {'/'.join(action.option_strings)}"

    assert list(bare(build_parser(), "")) == []


def test_a_video_track_is_read_back_as_it_was_lifted(tmp_path, capsys):
    """A `jointpose video` output records its track's layout, image size, fill threshold and
    frame rate: infer and render read them back (no --image-size needed), the alignment moves
    the limbs only, as in the video run, and render keeps a size when it drops --video."""
    from jointpose.data.keypoints import load_keypoints
    from jointpose.inference.export import export

    frames = 12
    kp = coco_expected(_walk(frames)) * 0.1  # in a 96 x 64 image, Human3.6M-17 order below
    confidence = np.full((frames, 17), 0.9)
    confidence[:6, 3] = 0.2  # above the video run's threshold (0.1), below infer's own (0.3)
    extra = {"keypoints_2d": kp[..., :2], "confidence_2d": confidence}
    info = {"keypoints_layout": "coco17", "image_size": (96, 64), "confidence_threshold": 0.1}
    export(tmp_path / "clip.npz", np.zeros((frames, 17, 3)), 25.0, extra=extra, info=info)
    export(tmp_path / "clip.json", np.zeros((frames, 17, 3)), 25.0, extra=extra, info=info)  # the same, as JSON
    track = load_keypoints(tmp_path / "clip.npz", confidence_threshold=None)
    assert (track.source_format, track.source_layout, track.image_size, track.fps) == (
        "video",
        "coco17",
        (96, 64),
        25.0,
    )
    assert not track.filled.any()  # the recorded threshold: joint 3 at 0.2 is kept
    assert not load_keypoints(tmp_path / "clip.npz").filled.any()  # by default too
    assert load_keypoints(tmp_path / "clip.npz", confidence_threshold=0.3).filled[:6, 3].all()  # a threshold given
    confidence[6:, 5] = 0.05  # a track filled with threshold 0 keeps even these
    export(
        tmp_path / "zero.npz", np.zeros((frames, 17, 3)), 25.0, extra=extra, info=info | {"confidence_threshold": 0.0}
    )
    assert not load_keypoints(tmp_path / "zero.npz", confidence_threshold=None).filled.any()
    lifter = Lifter.from_pretrained("video", device="cpu")
    # The bundled offline model, given a video track, names the video model, which lifts real footage better.
    with pytest.warns(JointposeWarning) as caught:
        Lifter.from_pretrained("offline", device="cpu").lift_track(track)
    assert [str(w.message) for w in caught] == [
        "a jointpose video track (BlazePose's points) lifted by the bundled offline model; the bundled video model, "
        "trained for jointpose video's tracks, lifts real footage better"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lifter.lift_track(track)  # the video model: silent
    from jointpose.data.resampling import at_rate

    at_model, _ = at_rate(track, lifter.fps, None, "clip.npz")
    np.testing.assert_allclose(
        lifter.predict(at_model, (96, 64)),
        lifter.predict(at_model.points, (96, 64), source_layout="coco17"),
        atol=1e-6,
    )
    out = tmp_path / "lifted.npz"
    assert main(cli("infer", "--pretrained video --no-progress", tmp_path / "clip.npz", o=out)) == 0
    text = capsys.readouterr().out
    assert "the keypoints are at 25 fps" in text and "--pretrained video (or video-causal)" not in text
    # Written at the track's 25 fps: frame i is the 50 fps lift's frame 2i, the same instant.
    np.testing.assert_allclose(np.load(out)["poses_3d"], lifter.predict(at_model, (96, 64))[::2], atol=1e-5)
    # The camera it was lifted with, where recorded, gives what the flags leave out.
    from jointpose.data.detector_files import camera_record
    from jointpose.geometry.cameras import Camera

    recorded = camera_record(Camera.from_focal_length(96, 64, 80.0, center=(50.0, 30.0)))
    export(tmp_path / "cam.npz", np.zeros((frames, 17, 3)), 25.0, extra=extra, info=info | recorded)
    at_model_cam, _ = at_rate(load_keypoints(tmp_path / "cam.npz", confidence_threshold=None), lifter.fps, None, "")
    for flags, focal, centre in (
        ("", 80.0, (50.0, 30.0)),
        ("--principal-point 48 32", 80.0, (48.0, 32.0)),
        ("--focal-length 100", 100.0, (50.0, 30.0)),
    ):
        assert main(cli("infer", "--pretrained video --no-progress " + flags, tmp_path / "cam.npz", o=out)) == 0
        assert f"camera: focal length {focal:.0f} px, principal point {centre}" in capsys.readouterr().out
        camera = Camera.from_focal_length(96, 64, focal, center=centre)
        np.testing.assert_allclose(
            np.load(out)["poses_3d"], lifter.predict(at_model_cam, camera=camera)[::2], atol=1e-5
        )
    # In Python, lift_track reads a track with the image size and camera it records, as infer does.
    assert main(cli("infer", "--pretrained video --no-progress", tmp_path / "cam.npz", o=out)) == 0
    cam_track = load_keypoints(tmp_path / "cam.npz")
    poses, root = lifter.lift_track(cam_track)
    np.testing.assert_allclose(poses, np.load(out)["poses_3d"], atol=1e-5)
    np.testing.assert_allclose(root, np.load(out)["trajectory"], atol=1e-5)
    given = Camera.from_focal_length(96, 64, 80.0, center=(50.0, 30.0))
    np.testing.assert_allclose(lifter.lift_track(cam_track, camera=given)[1], root, atol=1e-9)
    other = Camera.from_focal_length(96, 64, 160.0, center=(50.0, 30.0))  # a given camera wins
    assert (lifter.lift_track(cam_track, camera=other)[1][:, 2] > 1.5 * root[:, 2]).all()  # twice the focal length
    with pytest.raises(JointposeError, match=r"^image_size 64x96 differs from the image size the Keypoints2D records"):
        lifter.lift_track(cam_track, (64, 96))
    # predict and predict_trajectory read it so too; a camera of another image size is refused.
    np.testing.assert_allclose(lifter.predict(at_model_cam), lifter.predict(at_model_cam, camera=given), atol=1e-9)
    assume = Camera.assumed(96, 64)
    assert np.abs(lifter.predict(at_model_cam) - lifter.predict(at_model_cam, camera=assume)).max() > 1e-4
    np.testing.assert_allclose(
        lifter.predict_trajectory(at_model_cam), lifter.predict_trajectory(at_model_cam, camera=given), atol=1e-9
    )
    wide = Camera.from_focal_length(128, 64, 80.0)
    refused = r"^the camera's image size 128x64 differs from the image size the Keypoints2D records \(96x64\)$"
    for call in (lifter.predict, lifter.predict_trajectory, lifter.lift_track):
        with pytest.raises(JointposeError, match=refused):
            call(at_model_cam if call != lifter.lift_track else cam_track, camera=wide)
    assert main(cli("infer", "--pretrained video --no-progress", tmp_path / "clip.npz", o=out)) == 0
    capsys.readouterr()
    # Without a model named, a video track is lifted by the video model, as jointpose video lifts it.
    assert main(cli("infer", "--no-progress", tmp_path / "clip.npz", o=tmp_path / "auto.npz")) == 0
    assert "a jointpose video track: lifted by the bundled video model" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "auto.npz")["poses_3d"], np.load(out)["poses_3d"])
    assert main(cli("infer", "--no-progress", tmp_path / "clip.json", o=tmp_path / "auto_json.npz")) == 0
    assert "a jointpose video track: lifted by the bundled video model" in capsys.readouterr().out
    assert np.abs(np.load(tmp_path / "auto_json.npz")["poses_3d"] - np.load(out)["poses_3d"]).max() < 1e-4
    with pytest.warns(JointposeWarning, match="lifted by the bundled offline model"):
        assert (
            main(cli("infer", "--no-progress --pretrained offline", tmp_path / "clip.npz", o=tmp_path / "o.npz")) == 0
        )
    assert "a jointpose video track: lifted by" not in capsys.readouterr().out
    assert np.abs(np.load(tmp_path / "o.npz")["poses_3d"] - np.load(out)["poses_3d"]).max() > 1e-3
    assert main(cli("infer", "--image-size 64 96", tmp_path / "clip.npz", o=tmp_path / "x.npz")) == 2
    assert "--image-size 64 96 differs from the image size" in capsys.readouterr().err
    assert main(cli("infer", "--pretrained video --causal", tmp_path / "clip.npz", o=tmp_path / "x.npz")) == 2
    assert "--pretrained video names the model; leave out --causal" in capsys.readouterr().err
    # render: the track and the poses both at 25 fps, drawn over the video at the recorded size.
    _video(tmp_path / "v.mp4", frames)
    paths = dict(keypoints_file=tmp_path / "clip.npz", poses=out, video=tmp_path / "v.mp4", o=tmp_path / "r.gif")
    assert main(cli("render", "--no-progress", **paths)) == 0
    assert "resampled" not in capsys.readouterr().out
    assert len(iio.imread(tmp_path / "r.gif", index=None)) == frames
    # The poses file's trajectory is drawn in a panel of its own.
    lifted = dict(np.load(out))
    assert lifted["trajectory"].shape == (len(lifted["poses_3d"]), 3)
    np.savez(tmp_path / "bare.npz", **{k: v for k, v in lifted.items() if k != "trajectory"})
    paths |= dict(poses=tmp_path / "bare.npz", o=tmp_path / "bare.gif")
    assert main(cli("render", "--no-progress", **paths)) == 0
    assert iio.imread(tmp_path / "r.gif", index=0).shape[1] > iio.imread(tmp_path / "bare.gif", index=0).shape[1]


def test_evaluate_actions_and_downsample(tmp_path, h36m_dir):
    from jointpose.model.temporal import TemporalModel

    Lifter(TemporalModel((3, 3), channels=16).eval()).save(tmp_path / "m.safetensors")
    runs = {}
    for name, flags in (("all", []), ("walking", ["-a", "Walking"]), ("half", ["-a", "Walking", "--downsample", "2"])):
        out = tmp_path / f"{name}.json"
        evaluate = cli("evaluate", "-k gt -ste S9", data_dir=h36m_dir, checkpoint=tmp_path / "m.safetensors", json=out)
        assert main(evaluate + flags) == 0
        runs[name] = json.loads(out.read_text())
    assert len(runs["all"]["actions"]) > 1 and set(runs["walking"]["actions"]) == {"Walking"}
    assert runs["walking"]["actions"]["Walking"] == runs["all"]["actions"]["Walking"]
    frames = runs["walking"]["actions"]["Walking"]["frames"]
    assert runs["half"]["actions"]["Walking"]["frames"] == sum((n + 1) // 2 for n in _walking_lengths(h36m_dir))
    assert frames == sum(_walking_lengths(h36m_dir))


def _walking_lengths(folder) -> list[int]:
    from jointpose.data.h36m import load_dataset

    data = load_dataset(folder, "gt", ["S9"], ["Walking"])
    return [len(s.keypoints) for s in data.sequences]


@pytest.mark.slow
def test_data_build_rig_subjects_and_input_layout(cmu_mocap, tmp_path, capsys):
    from jointpose.safeio import load_npz
    from test_builder import _cmu_subset

    subset = _cmu_subset(cmu_mocap, tmp_path / "bvh", {"002": ["002_01"], "003": ["003_01"]})
    rig = tmp_path / "rig.json"
    from importlib import resources

    rig.write_text(resources.files("jointpose").joinpath("resources/rigs/cmu_cc_base.json").read_text())
    assert main(cli("data build", "--cameras ring --seed 3", bvh=subset, out=tmp_path / "a")) == 0
    flags = "--cameras ring --seed 3 --subjects 002=S9,003=S1 --input-layout coco"
    assert main(cli("data build", flags, bvh=subset, out=tmp_path / "b", rig=rig)) == 0
    a3, b3 = (load_npz(tmp_path / d / "data_3d_h36m.npz")["positions_3d"].item() for d in "ab")
    assert set(a3) == {"S1", "S5"} and set(b3) == {"S9", "S1"}  # sorted folders -> S1, S5; the map's names
    # The same rig given as a file: the same motion (subjects keep their folder's body: 002 is S1 in a, S9 in b).
    first = next(iter(a3["S1"]))
    assert np.array_equal(a3["S1"][first], b3["S9"][first])
    a2, b2 = (load_npz(tmp_path / d / "data_2d_h36m_gt.npz")["positions_2d"].item() for d in "ab")
    h36m_view, coco_view = a2["S1"][first][0], b2["S9"][first][0]
    knees = [skeleton.JOINT_NAMES.index(n) for n in ("RKnee", "LKnee")]
    assert np.allclose(h36m_view[:, knees], coco_view[:, knees], atol=1e-3)  # COCO has knees: the same points
    head = skeleton.JOINT_NAMES.index("Head")
    assert np.abs(h36m_view[:, head] - coco_view[:, head]).max() > 1.0  # built from eyes and nose: not the same
