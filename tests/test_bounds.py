"""Upper and lower bounds on sizes, rates and physical values from the command line and files:
each out-of-range value is refused with one line naming it, and what is accepted costs time
and memory in proportion to the input."""

import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from jointpose.cli import flag_message, main
from jointpose.data.h36m import H36MFiles
from jointpose.errors import JointposeError
from jointpose.geometry import filters
from jointpose.geometry.cameras import Camera, camera_from_intrinsics
from jointpose.geometry.filters import check_sigma, gaussian_kernel, smooth_poses
from jointpose.model.temporal import TemporalModel
from jointpose.motion.builder import CameraRing, NoiseModel
from jointpose.render import render_animation
from jointpose.training import trainer as trainer_module
from jointpose.training.config import TrainConfig


def one_line_error(capsys, argv: list[str]) -> str:
    """Run ``jointpose argv``, expect exit code 2 and return its one line on stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def train_args(tmp_path, *flags: str) -> list[str]:
    """``jointpose train`` arguments with a missing data folder and a checkpoint folder in ``tmp_path``."""
    return ["train", "--data-dir", str(tmp_path / "nowhere"), "--checkpoint", str(tmp_path / "ckpt"), *flags]


def config(**fields) -> TrainConfig:
    return TrainConfig(data_dir="data", checkpoint_dir="ckpt", **fields)


# --- 1. The Gaussian filter's sigma -------------------------------------------------------


def reference_smoothing(poses: np.ndarray, sigma: float) -> np.ndarray:
    """The filter worked out directly: the whole kernel of radius ceil(3 sigma), every tap that
    falls outside the sequence reading its first or last frame."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    frames = len(poses)
    out = np.zeros_like(poses)
    for i in range(frames):
        out[i] = np.tensordot(weights, poses[np.clip(i + offsets, 0, frames - 1)], axes=(0, 0))
    return out


@pytest.mark.parametrize("sigma", [0.5, 2.0, 4.1, 50.0, 30000.0])
def test_wide_kernels_are_folded_to_the_sequence_length_with_the_same_result(sigma):
    poses = np.random.default_rng(1).normal(size=(12, 17, 3))
    out = smooth_poses(torch.from_numpy(poses), sigma).numpy()
    np.testing.assert_allclose(out, reference_smoothing(poses, sigma), rtol=0, atol=1e-12)
    kernel = gaussian_kernel(sigma, dtype=torch.float64, max_radius=12)
    assert len(kernel) == min(2 * max(1, math.ceil(3 * sigma)) + 1, 2 * 12 + 1)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-12)


def test_ordinary_kernels_are_unchanged_bit_for_bit():
    for sigma in (0.3, 1.0, 1.5, 2.0, 3.0):
        radius = max(1, math.ceil(3 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        taps = torch.exp(-0.5 * (t / sigma) ** 2)
        assert torch.equal(gaussian_kernel(sigma, max_radius=radius), taps / taps.sum())
        assert torch.equal(gaussian_kernel(sigma, max_radius=1000), gaussian_kernel(sigma))


def test_smoothing_convolves_at_most_twice_the_sequence_length(monkeypatch):
    widths = []
    conv1d = filters.F.conv1d

    def spy(series, kernel):
        widths.append(kernel.shape[-1])
        return conv1d(series, kernel)

    monkeypatch.setattr(filters.F, "conv1d", spy)
    poses = torch.randn(150, 17, 3)
    out = smooth_poses(poses, 1e5)
    assert widths == [2 * 150 + 1]
    # Far wider than the clip: every frame becomes (nearly) the mean of the two end frames.
    torch.testing.assert_close(out, ((poses[0] + poses[-1]) / 2).expand_as(poses), atol=5e-3, rtol=0)


def test_sigma_above_the_frame_limit_is_refused(monkeypatch, capsys, tmp_path):
    with pytest.raises(JointposeError, match=r"--smooth: 1000000000 exceeds the limit of 1000000"):
        check_sigma(1e9, "--smooth")
    assert check_sigma(1e6, "--smooth") == 1e6
    monkeypatch.setenv("JOINTPOSE_MAX_FRAMES", "100")
    with pytest.raises(JointposeError, match=r"smoothing sigma: 101 exceeds the limit of 100.*JOINTPOSE_MAX_FRAMES"):
        smooth_poses(torch.randn(20, 17, 3), 101.0)
    with pytest.raises(JointposeError) as caught:
        config(smooth=101.0)
    assert caught.value.fields == ("smooth",)
    monkeypatch.delenv("JOINTPOSE_MAX_FRAMES")
    err = one_line_error(capsys, train_args(tmp_path, "--smooth", "1e9"))
    assert "--smooth: 1000000000 exceeds the limit" in err


# --- 2. Model size ------------------------------------------------------------------------


def test_channels_are_capped_as_in_model_files(capsys, tmp_path):
    with pytest.raises(JointposeError) as caught:
        config(channels=16385)
    assert caught.value.fields == ("channels",) and "16384" in str(caught.value)
    assert config(channels=16384).channels == 16384
    with pytest.raises(JointposeError, match="'channels' must be a number in \\[1, 16384\\], got 16385"):
        TemporalModel((3,), channels=16385)
    with torch.device("meta"):
        assert TemporalModel((3, 3), channels=16384).channels == 16384
    err = one_line_error(capsys, train_args(tmp_path, "-ch", "100000"))
    assert "-ch must be in [1, 16384]" in err and "100000" in err


def test_a_model_too_large_to_train_is_refused_before_it_is_built(h36m_dir, tmp_path, monkeypatch):
    # 16384 channels (C) and two levels of width 3: the expansion 34*3*C and its batch norm 2C,
    # the level's 3-wide and 1-wide convolutions 4C^2 and their batch norms 4C, the output
    # 51C + 51: 1,076,346,931 parameters (4.3 GB, twice that again for Adam), over 10^9.
    monkeypatch.setattr(trainer_module.Trainer, "training_windows", lambda *a, **k: pytest.fail("windows built"))
    run = TrainConfig(
        data_dir=str(h36m_dir),
        checkpoint_dir=str(tmp_path / "ckpt"),
        keypoints="gt",
        subjects_train=("S1",),
        subjects_test=("S9",),
        architecture=(3, 3),
        channels=16384,
        device="cpu",
    )
    with pytest.raises(JointposeError, match=r"parameters \(-ch, -arc\): 1076346931 exceeds the limit of 1000000000"):
        trainer_module.Trainer(run)

    class Built(Exception):
        pass

    counted = trainer_module.build_model

    def build(args, strided=False):  # at the limit the run goes on to build its training model: stopped there
        if strided:
            raise Built
        return counted(args)

    monkeypatch.setenv("JOINTPOSE_MAX_PARAMETERS", "1076346931")
    monkeypatch.setattr(trainer_module, "build_model", build)
    with pytest.raises(Built):
        trainer_module.Trainer(run)


def test_architecture_is_capped_as_in_model_files():
    assert config(architecture=(3,) * 8).architecture == (3,) * 8  # 6561 frames, the most
    for widths in ((17,), (3,) * 9, (15,) * 8, (3,) * 7 + (5,)):
        with pytest.raises(JointposeError, match="1 to 8 odd filter widths up to 15") as caught:
            config(architecture=widths)
        assert caught.value.fields == ("architecture",)


@pytest.mark.parametrize("text", ["3,,3", "3,3,", ",3"])
def test_an_empty_architecture_entry_is_refused(capsys, tmp_path, text):
    err = one_line_error(capsys, train_args(tmp_path, "-arc", text))
    assert "-arc" in err and "empty entry" in err


def test_spaces_around_architecture_entries_still_parse():
    from jointpose.training.config import _int_list

    assert _int_list(" 3, 5 ") == (3, 5) and _int_list("3") == (3,)


def test_receptive_field_is_checked_before_any_model_or_window(h36m_dir, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("built a model or windows for a receptive field longer than every clip")

    monkeypatch.setattr(trainer_module, "build_model", forbidden)
    monkeypatch.setattr(trainer_module.Trainer, "training_windows", forbidden)
    run = TrainConfig(
        data_dir=str(h36m_dir),
        checkpoint_dir=str(tmp_path / "ckpt"),
        keypoints="gt",
        subjects_train=("S1",),
        subjects_test=("S9",),
        architecture=(3,) * 5,
        channels=8,
        device="cpu",
    )
    with pytest.raises(JointposeError, match=r"160 frames, fewer than the model's receptive field \(243\)") as e:
        trainer_module.Trainer(run)
    assert e.value.fields == ("data_dir", "architecture")


# --- 3. and 4. The dataset builder's cameras and noise ------------------------------------


@pytest.mark.parametrize(
    "fields, flag",
    [
        ({"distance": 1e308}, "--ring-distance"),
        ({"distance": 1e-300}, "--ring-distance"),
        ({"distance": 0.0}, "--ring-distance"),
        ({"distance": float("nan")}, "--ring-distance"),
        ({"height": 1e308}, "--ring-height"),
        ({"height": -float("inf")}, "--ring-height"),
        ({"target_height": 5000.0}, "target_height"),
        ({"focal_length": 1e300}, "--focal-length"),
        ({"focal_length": 1.0}, "--focal-length"),
    ],
)
def test_camera_ring_out_of_range_is_refused_when_made(fields, flag):
    with pytest.raises(JointposeError) as caught:
        CameraRing(**fields)
    assert flag_message(caught.value).startswith(flag), flag_message(caught.value)


def test_data_build_refuses_cameras_and_noise_before_reading_motion(tmp_path, capsys):
    # The BVH folder does not exist: the camera and noise flags are refused first.
    out = tmp_path / "ds"
    base = ["data", "build", "--bvh", str(tmp_path / "no-motion"), "--out", str(out)]
    assert "--ring-distance" in one_line_error(capsys, [*base, "--cameras", "ring", "--ring-distance", "1e308"])
    assert "--noise-jitter" in one_line_error(capsys, [*base, "--noise-jitter", "nan"])
    # A negative number with an exponent is the flag's value, checked by its bound, not a flag.
    message = one_line_error(capsys, [*base, "--cameras", "ring", "--ring-height", "-1e300"])
    assert message.rstrip().endswith(
        "--ring-height: the camera ring's height (m) must be in [-1000, 1000], got -1e+300"
    )
    assert "no-motion" in one_line_error(capsys, base)  # and with good flags, the missing motion
    assert not out.exists()


def test_camera_ring_at_its_limits_is_well_conditioned():
    for ring in (
        CameraRing(distance=0.5, height=1000.0, target_height=-1000.0),
        CameraRing(distance=1000.0, height=-1000.0, target_height=1000.0),
        CameraRing(count=3, focal_length=1000 / 2 / math.tan(math.radians(0.5))),
    ):
        for camera in ring.cameras():
            assert np.isfinite(camera.orientation).all()
            assert np.linalg.norm(camera.orientation) == pytest.approx(1.0)
            pixel = camera.project(camera.world_to_camera(np.array([[0.0, 0.0, ring.target_height]])))
            np.testing.assert_allclose(pixel, [[500.0, 500.0]], atol=1e-6)  # aimed at the target


@pytest.mark.parametrize("name", ["jitter", "drift", "drift_time", "outlier_rate", "outlier_px"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 1e6])
def test_noise_parameters_must_be_finite_and_in_range(name, value):
    with pytest.raises(JointposeError) as caught:
        NoiseModel(**{name: value})
    assert flag_message(caught.value).startswith("--noise-" + name.replace("_", "-"))


def test_noise_at_its_limits_stays_finite():
    noise = NoiseModel(jitter=10_000.0, drift=10_000.0, drift_time=3600.0, outlier_rate=1.0, outlier_px=10_000.0)
    sample = noise.sample((50, 17, 2), 50.0, np.random.default_rng(0))
    assert np.isfinite(sample).all() and np.abs(sample).max() <= 10_000.0  # every joint an outlier
    assert np.array_equal(
        NoiseModel(drift_time=0.0).sample((5, 17, 2), 50.0, np.random.default_rng(3)).shape, (5, 17, 2)
    )


# --- 5. Render's frame rate ---------------------------------------------------------------


def moving_points(frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(frames, 17, 2) pixels and their (frames, 17, 3) camera-space points, metres."""
    poses = np.random.default_rng(0).normal(0.0, 0.3, (frames, 17, 3)) + [0.0, 0.0, 4.0]
    pixels = 500.0 * poses[..., :2] / poses[..., 2:] + [400.0, 300.0]
    return pixels, {"Prediction": poses}


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
@pytest.mark.parametrize("fps", [1e-9, 0.0, 5000.0])
def test_render_refuses_a_frame_rate_outside_the_project_range(tmp_path, suffix, fps):
    pixels, poses = moving_points(2)
    with pytest.raises(JointposeError, match="frames per second") as caught:
        render_animation(tmp_path / f"x{suffix}", pixels, poses, image_size=(800, 600), fps=fps, progress=False)
    assert flag_message(caught.value).startswith("--fps")
    assert list(tmp_path.iterdir()) == []


def test_gif_frame_rate_must_fit_its_frame_delay(tmp_path):
    pixels, poses = moving_points(2)
    with pytest.raises(JointposeError, match=r"too slow for a GIF.*655\.35 s.*\.mp4") as caught:
        render_animation(tmp_path / "x.gif", pixels, poses, image_size=(800, 600), fps=0.001, progress=False)
    assert flag_message(caught.value).startswith("--fps")
    slowest = 100.0 / 65535  # a delay of 65535 hundredths of a second, the most a GIF holds
    path = render_animation(tmp_path / "y.gif", pixels, poses, image_size=(800, 600), fps=slowest, progress=False)
    with Image.open(path) as gif:
        assert gif.n_frames == 2 and gif.info["duration"] == 655350


def test_dataset_frame_rate_is_checked_with_the_project_range(h36m_dir, tmp_path):
    for fps, message in ((1e-9, "outside"), (5000.0, "outside"), (0.0, "positive")):
        folder = tmp_path / str(fps)
        shutil.copytree(h36m_dir, folder)
        path = folder / "data_2d_h36m_gt.npz"
        files = dict(np.load(path, allow_pickle=True))
        np.savez_compressed(path, **files, fps=np.array(fps))
        with pytest.raises(JointposeError, match=rf"data_2d_h36m_gt\.npz: key 'fps'.*{message}"):
            H36MFiles(folder, "gt")
    assert H36MFiles(h36m_dir, "gt").fps == 50.0


# --- 6. Focal length ----------------------------------------------------------------------


def test_focal_length_is_bounded_by_the_field_of_view_range():
    width = 1920
    most = width / 2 / math.tan(math.radians(1.0) / 2)  # a 1 degree field of view
    fewest = width / 2 / math.tan(math.radians(179.0) / 2)
    assert Camera.from_fov(width, 1080, 1.0).focal_length[0] == pytest.approx(most)
    assert Camera.from_fov(width, 1080, 179.0).focal_length[0] == pytest.approx(fewest)
    for ok in (most * 0.999, fewest * 1.001, 1400.0):
        assert camera_from_intrinsics((width, 1080), focal_length=ok).focal_length == (ok, ok)
    for bad in (1e30, most * 1.001, fewest * 0.999, (1400.0, 1e9)):
        with pytest.raises(JointposeError) as caught:
            camera_from_intrinsics((width, 1080), focal_length=bad)
        message = flag_message(caught.value)
        assert message.startswith("--focal-length must be 8.378 to 1.1e+05 pixels") and "\n" not in message
    # Any real number type: numpy's integers and floats (as read from a calibration array) too.
    for kind in (np.int64, np.int32, np.float32):
        assert Camera.from_focal_length(width, 1080, kind(1400)).focal_length == (1400.0, 1400.0)
