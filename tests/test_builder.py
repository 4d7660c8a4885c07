import json

import numpy as np
import pytest

from h36m_files import cli
from jointpose.cli import flag_message, main
from jointpose.data.h36m import load_dataset
from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.bones import body_factors, bone_vectors, scale_body
from jointpose.motion.builder import CameraRing, NoiseModel, write_h36m_dataset
from jointpose.motion.mocap import load_bvh_folder, parse_subject_map, rigid_bones
from jointpose.motion.synthetic import generate
from jointpose.safeio import load_npz

TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT LegR
  {
    OFFSET -10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -90 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 100 0 0 0 0 0 0 0
0 100 1 0 0 0 10 0 0
0 100 2 0 0 0 20 0 0
"""


def test_camera_ring_looks_at_the_centre():
    ring = CameraRing(count=6, distance=7.0, height=2.0, target_height=1.0)
    for cam in ring.cameras():
        centre = cam.world_to_camera(np.array([0.0, 0.0, 1.0]))
        assert np.allclose(centre[:2], 0, atol=1e-9) and centre[2] > 6.9
        above = cam.world_to_camera(np.array([0.0, 0.0, 2.0]))
        assert above[1] < 0  # world up is image up (camera y points down)
    with pytest.raises(JointposeError, match=r"^count: the number of cameras must be 1 to 64, got 65$"):
        CameraRing(count=65).cameras()


def test_noise_has_the_requested_statistics():
    rng = np.random.default_rng(0)
    shape = (20000, 17, 2)
    jitter = NoiseModel(jitter=3.0, drift=0.0, outlier_rate=0.0).sample(shape, 50.0, rng)
    assert abs(jitter.std() - 3.0) < 0.05 and abs(jitter.mean()) < 0.05
    drift = NoiseModel(jitter=0.0, drift=5.0, drift_time=0.5, outlier_rate=0.0).sample(shape, 50.0, rng)
    assert abs(drift.std() - 5.0) < 0.4
    lag = 25  # 0.5 s at 50 fps: correlation exp(-1)
    corr = np.mean(drift[lag:] * drift[:-lag]) / drift.var()
    assert abs(corr - np.exp(-1)) < 0.06
    outliers = NoiseModel(jitter=0.0, drift=0.0, outlier_rate=0.01, outlier_px=50.0).sample(shape, 50.0, rng)
    moved = np.linalg.norm(outliers, axis=-1) > 0
    assert abs(moved.mean() - 0.01) < 0.001 and np.linalg.norm(outliers, axis=-1).max() <= 50.0
    same = NoiseModel().sample((10, 17, 2), 50.0, np.random.default_rng(5))
    assert np.array_equal(same, NoiseModel().sample((10, 17, 2), 50.0, np.random.default_rng(5)))


def test_body_scaling_and_rigid_bones():
    poses = generate(["S1"], seconds=1.0, motions=["Walking"])["S1"]["Walking 1"]
    factors = body_factors(np.random.default_rng(1))
    scaled = scale_body(poses, factors)
    before, after = (np.linalg.norm(bone_vectors(p), axis=-1) for p in (poses, scaled))
    assert np.allclose(after, before * factors)
    # Directions are kept, and left/right bones get the same factor.
    assert np.allclose(
        factors[[left for left, _ in skeleton.SYMMETRIC_BONES]],
        factors[[right for _, right in skeleton.SYMMETRIC_BONES]],
    )
    wobbly = poses + np.random.default_rng(2).normal(0, 0.01, poses.shape)
    lengths = np.linalg.norm(bone_vectors(rigid_bones(wobbly)), axis=-1)
    assert lengths.std(axis=0).max() < 1e-9


def _bvh_folder(tmp_path):
    for subject, clips in {"01": ["01_01", "01_02", "01_03"], "02": ["02_01"]}.items():
        (tmp_path / subject).mkdir(parents=True)
        for clip in clips:
            (tmp_path / subject / f"{clip}.bvh").write_text(TINY_BVH)
    (tmp_path / "index.csv").write_text(
        "subject,trial,description,file\n1,1,walk,01/01_01.bvh\n1,2,walk,01/01_02.bvh\n1,3,run/jog,01/01_03.bvh\n"
    )
    return tmp_path


def test_bvh_folder_names_subjects_and_actions(tmp_path):
    mapping = {
        "name": "tiny",
        "unit_scale": 0.01,
        "up_axis": "y",
        "joints": {
            name: (
                "LegR_End"
                if name in ("RFoot", "LFoot")
                else "LegR"
                if name in ("RHip", "LHip", "RKnee", "LKnee")
                else "Hips"
            )
            for name in skeleton.JOINT_NAMES
        },
    }
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    from jointpose.motion.rigs import load_rig_mapping

    folder = _bvh_folder(tmp_path / "bvh")
    motion = load_bvh_folder(folder, fps=30, mapping=load_rig_mapping(tmp_path / "map.json"), body_scaling=False)
    assert list(motion) == ["S1", "S5"]
    assert list(motion["S1"]) == ["walk 1", "walk 2", "run-jog"]  # repeated descriptions get the trial
    assert list(motion["S5"]) == ["02_01"]  # no index entry: the file name
    assert motion["S1"]["walk 1"].shape == (3, 17, 3)
    named = load_bvh_folder(
        folder,
        fps=30,
        mapping=load_rig_mapping(tmp_path / "map.json"),
        subjects=parse_subject_map("02=S9"),
        body_scaling=False,
    )
    assert list(named) == ["S1", "S9"]
    with pytest.raises(JointposeError, match="03"):
        load_bvh_folder(folder, mapping=load_rig_mapping(tmp_path / "map.json"), subjects={"03": "S1"})
    with pytest.raises(JointposeError, match="FOLDER=NAME"):
        parse_subject_map("01:S1")


def test_written_files_have_videopose3d_layout_and_load_back(tmp_path):
    motion = generate(["S1", "S5"], seconds=1.0, motions=["Walking", "Squats"])
    paths = write_h36m_dataset(tmp_path, motion, fps=50.0, seed=3)
    files_3d, files_2d = load_npz(paths["3d"]), load_npz(paths["noisy"])
    world = files_3d["positions_3d"].item()["S1"]["Squats 1"]
    assert world.shape == (50, 32, 3) and np.allclose(
        skeleton.reduce_32_to_17(world), motion["S1"]["Squats 1"], atol=1e-6
    )
    assert files_2d["metadata"].item() == {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
        "input_layout": "h36m",
    }
    views = files_2d["positions_2d"].item()["S5"]["Walking 1"]
    assert len(views) == 4 and views[0].shape == (50, 17, 2)
    exact = load_npz(paths["gt"])["positions_2d"].item()["S5"]["Walking 1"][0]
    assert 0.5 < np.abs(views[0] - exact).mean() < 10  # noisy, in pixels
    data = load_dataset(tmp_path, "gt", ["S1"])
    assert len(data.sequences) == 8 and data.fps == 50.0


def test_ring_cameras_are_written_into_the_files(tmp_path):
    motion = generate(["A", "B"], seconds=0.5, motions=["Waving"])
    write_h36m_dataset(tmp_path, motion, fps=25.0, cameras=CameraRing(count=3, distance=6.0))
    data = load_dataset(tmp_path, "gt", ["B"])
    assert len(data.sequences) == 3 and data.sequences[0].camera.id == "ring0" and data.fps == 25.0
    with pytest.raises(JointposeError) as refused:
        write_h36m_dataset(tmp_path / "x", motion, fps=25.0)
    known = "S1, S5, S6, S7, S8, S9, S11"
    assert str(refused.value) == (
        f"motion: subjects A, B have no Human3.6M calibration; name them {known} or give cameras (a ring of "
        "virtual cameras or random ones)"
    )
    assert flag_message(refused.value, "data build") == (
        f"--subjects: subjects A, B have no Human3.6M calibration; name them {known} or give --cameras (a ring of "
        "virtual cameras or random ones)"
    )
    assert flag_message(refused.value, "demo").startswith("motion: ")  # --subjects is data build's alone


def _cmu_subset(cmu_mocap, folder, clips: dict[str, list[str]], index: bool = False):
    """A BVH folder of symbolic links to some of the shared CMU clips."""
    for subject, names in clips.items():
        (folder / subject).mkdir(parents=True)
        for clip in names:
            (folder / subject / f"{clip}.bvh").symlink_to(cmu_mocap / subject / f"{clip}.bvh")
    if index:
        (folder / "index.csv").symlink_to(cmu_mocap / "index.csv")
    return folder


def test_data_build_never_overwrites_a_dataset_unasked(tmp_path, capsys):
    out = tmp_path / "h36m"
    out.mkdir()
    (out / "data_3d_h36m.npz").write_bytes(b"irreplaceable")
    assert main(["data", "build", "--bvh", str(tmp_path / "bvh"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "data_3d_h36m.npz").read_bytes() == b"irreplaceable"
    assert main(["data", "build", "--bvh", str(tmp_path / "bvh"), "--out", str(out), "--overwrite"]) == 2
    assert "--overwrite" not in capsys.readouterr().err  # past the check: now it is the missing BVH folder


def test_demo_dataset_takes_the_frame_rate_and_input_layout(tmp_path):
    from jointpose.demo import DemoConfig, build_data

    default, _, _ = build_data(DemoConfig(out=str(tmp_path / "a"), seconds=1.0))
    other, _, _ = build_data(DemoConfig(out=str(tmp_path / "b"), seconds=1.0, fps=25.0, input_layout="coco"))
    a, b = load_npz(default / "data_2d_h36m_gt.npz"), load_npz(other / "data_2d_h36m_gt.npz")
    assert float(a["fps"]) == 50.0 and float(b["fps"]) == 25.0
    view_a, view_b = a["positions_2d"].item()["S9"], b["positions_2d"].item()["S9"]
    action = next(iter(view_a))
    assert len(view_b[action][0]) < len(view_a[action][0])  # half the frames at 25 fps
    same_rate, _, _ = build_data(DemoConfig(out=str(tmp_path / "c"), seconds=1.0, fps=25.0))
    view_c = load_npz(same_rate / "data_2d_h36m_gt.npz")["positions_2d"].item()["S9"]
    assert view_c[action][0].shape == view_b[action][0].shape
    assert not np.allclose(view_c[action][0], view_b[action][0])  # COCO-derived 2D, not projected joints


@pytest.mark.slow
def test_built_cmu_dataset_trains_and_evaluates(cmu_mocap, tmp_path, capsys):
    subset = _cmu_subset(cmu_mocap, tmp_path / "bvh", {"002": ["002_01", "002_03"], "003": ["003_01"]}, index=True)
    out = tmp_path / "data"
    assert main(cli("data build", "--cameras ring --seed 1 --subjects 003=S9", bvh=subset, out=out)) == 0
    text = capsys.readouterr().out  # the unmapped folder takes the first free name
    assert "S1 (folder 002): 2 actions" in text and "S9 (folder 003): 1 action," in text
    ckpt = tmp_path / "ckpt"
    flags = "-k noisy -str S1 -ste S9 -arc 3,3 -ch 32 -e 1 -b 512 --no-progress"
    assert main(cli("train", flags, data_dir=out, checkpoint=ckpt)) == 0
    assert main(cli("evaluate", "-k noisy -ste S9", data_dir=out, checkpoint=ckpt, json=tmp_path / "r.json")) == 0
    summary = json.loads((tmp_path / "r.json").read_text())
    assert set(summary["actions"]) == {"walk"} and np.isfinite(summary["average"]["p1"])


@pytest.mark.slow
def test_demo_on_real_bvh_clips(cmu_mocap, tmp_path, capsys):
    subset = _cmu_subset(cmu_mocap, tmp_path / "bvh", {"002": ["002_01", "002_02"], "003": ["003_01"]})
    out = tmp_path / "demo"
    assert main(cli("demo", "-e 2 -ch 32 --no-progress", bvh=subset, out=out)) == 0
    text = capsys.readouterr().out
    assert "train on S1, test on S5" in text and "mean training pose" in text
    assert (out / "demo.gif").stat().st_size > 10000
    # Again into the same folder: the demo's own checkpoints are replaced, a folder of the user's kept.
    (out / "checkpoint" / "mine").mkdir()
    (out / "checkpoint" / "notes.txt").write_text("mine")
    (out / "checkpoint" / "epoch_best.pt").write_text("mine")
    assert main(cli("demo", "-e 1 -ch 32 --no-progress", bvh=subset, out=out)) == 0
    assert f"replacing the earlier demo's checkpoints in {out / 'checkpoint'}" in capsys.readouterr().out
    assert (out / "checkpoint" / "mine").is_dir() and (out / "checkpoint" / "notes.txt").read_text() == "mine"
    assert (out / "checkpoint" / "epoch_best.pt").read_text() == "mine"
    assert not (out / "checkpoint" / "epoch_002.pt").exists()
    (out / "checkpoint" / "latest.pt").unlink()
    (out / "checkpoint" / "latest.pt").mkdir()  # where the demo writes a file: refused, nothing removed or written
    data = {path: path.read_bytes() for path in (out / "data").iterdir()}
    assert main(cli("demo", "-e 1 -ch 32 --no-progress --seed 5", bvh=subset, out=out)) == 2
    assert "latest.pt: is not a plain file" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in (out / "data").iterdir()} == data
    assert (out / "checkpoint" / "epoch_001.pt").is_file() and (out / "checkpoint" / "latest.pt").is_dir()


def test_demo_leaves_a_folder_it_did_not_write_alone(tmp_path, capsys):
    """A VideoPose3D checkout keeps Human3.6M in data/: the demo refuses to replace a dataset or
    a training run that no demo wrote, before any work."""
    for name, leftover in (("dataset", "data/data_3d_h36m.npz"), ("run", "checkpoint/epoch_001.pt")):
        out = tmp_path / name
        (out / leftover).parent.mkdir(parents=True)
        (out / leftover).write_bytes(b"precious")
        assert main(cli("demo", "-e 1 -ch 8 --no-progress", out=out)) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: {out / leftover} was not written by a demo" in err, err
        assert (out / leftover).read_bytes() == b"precious" and not (out / ".jointpose-demo").exists()
