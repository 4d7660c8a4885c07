"""The temporal filter of the joint-aware inference step."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from jointpose.errors import JointposeError
from jointpose.geometry.filters import gaussian_kernel, smooth_poses
from jointpose.inference.lifter import Lifter
from jointpose.model.temporal import TemporalModel


def test_constant_and_linear_motion_pass_unchanged():
    still = torch.randn(1, 17, 3).expand(40, 17, 3)
    assert torch.allclose(smooth_poses(still, 2.0), still, atol=1e-6)
    t = torch.arange(60, dtype=torch.float64)[:, None, None]
    moving = 0.01 * t * torch.randn(1, 17, 3, dtype=torch.float64)
    smoothed = smooth_poses(moving, 1.5)
    radius = (len(gaussian_kernel(1.5)) - 1) // 2
    inner = slice(radius, len(t) - radius)  # the ends see copies of the first/last frame
    assert torch.allclose(smoothed[inner], moving[inner], atol=1e-12)
    assert smoothed.shape == moving.shape


def test_white_noise_shrinks_by_the_kernel_energy():
    noise = torch.randn(20000, 17, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = 2.0
    # Each output frame is a weighted sum of independent frames: its standard deviation shrinks
    # by the root of the summed squared weights, 1 / sqrt(2 sqrt(pi) sigma) for a Gaussian.
    expected = 1.0 / np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
    ratio = float(smooth_poses(noise, sigma).std() / noise.std())
    assert ratio == pytest.approx(expected, rel=0.02)


def test_the_causal_filter_reads_past_frames_only_with_the_gaussians_past_half():
    rng = np.random.default_rng(2)
    series = rng.normal(size=(50, 4))
    sigma = 2.0
    taps = np.exp(-0.5 * (np.arange(7) / sigma) ** 2)  # frames t, t-1, ..., t-6 (3 sigma)
    taps /= taps.sum()
    padded = np.concatenate([np.repeat(series[:1], 6, axis=0), series])  # the first frame repeated
    expected = np.stack([taps @ padded[t + 6 - np.arange(7)] for t in range(len(series))])
    out = smooth_poses(torch.from_numpy(series), sigma, causal=True).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-12)
    changed = series.copy()
    changed[30:] += 100.0
    np.testing.assert_array_equal(smooth_poses(torch.from_numpy(changed), sigma, causal=True).numpy()[:30], out[:30])
    still = torch.full((20, 3), 0.7, dtype=torch.float64)
    assert torch.allclose(smooth_poses(still, sigma, causal=True), still, atol=1e-15)


def test_zero_sigma_is_identity_and_bad_sigma_is_an_error():
    poses = torch.randn(10, 17, 3)
    assert smooth_poses(poses, 0.0) is poses
    assert smooth_poses(poses[:1], 2.0).shape == (1, 17, 3)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(JointposeError, match="sigma"):
            smooth_poses(poses, bad)
    # A sigma so small its taps beyond the centre are 0 even in float64 is the identity too
    # (below about 1e-45 the kernel was 0 / 0, NaN).
    for tiny in (1e-300, 1e-50, 0.02):
        assert torch.equal(gaussian_kernel(tiny), torch.tensor([0.0, 1.0, 0.0]))
        assert torch.equal(smooth_poses(poses, tiny), poses)
    assert 0 < gaussian_kernel(0.03, dtype=torch.float64)[0] < 1e-240  # just above: the formula's own taps


def test_each_channel_is_filtered_on_its_own():
    poses = torch.zeros(30, 17, 3)
    poses[15, 4, 1] = 1.0
    out = smooth_poses(poses, 1.0)
    assert np.count_nonzero(out.abs().sum(0).numpy() > 0) == 1
    assert out[:, 4, 1].sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fft", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_filtered_by_blocks_or_fft_as_in_one_pass(monkeypatch, causal, fft):
    """Long sequences are filtered in blocks, wide kernels by FFT (bounded memory); the result
    is the numpy convolution of the edge-extended sequence, at block borders too."""
    import jointpose.geometry.filters as filters

    poses = torch.from_numpy(np.random.default_rng(2).normal(0, 1, (103, 4, 3)))
    kernel = gaussian_kernel(2.0, dtype=torch.float64).numpy()
    radius = (len(kernel) - 1) // 2
    taps = kernel[: radius + 1] / kernel[: radius + 1].sum() if causal else kernel
    padded = np.pad(poses.numpy().reshape(103, -1), ((radius, 0 if causal else radius), (0, 0)), mode="edge")
    expected = np.stack([np.convolve(c, taps[::-1], mode="valid") for c in padded.T], -1).reshape(103, 4, 3)
    monkeypatch.setattr(filters, "_CONV_ELEMENTS", 12 * len(taps) * 10)  # blocks of 11 frames
    monkeypatch.setattr(filters, "_DIRECT_TAPS", 0 if fft else 1024)
    np.testing.assert_allclose(smooth_poses(poses, 2.0, causal=causal).numpy(), expected, atol=1e-12)


def test_lifter_keeps_its_filter_and_applies_it(tmp_path):
    torch.manual_seed(0)
    kp = np.random.default_rng(0).uniform(-0.5, 0.5, (40, 17, 2))
    plain = Lifter(TemporalModel((3, 3), channels=16).eval(), flip_test=False)
    smoothed = Lifter(plain.model, flip_test=False, smooth=1.5)
    loaded = Lifter.load(smoothed.save(tmp_path / "m.safetensors"), device="cpu")
    assert loaded.smooth == 1.5
    loaded.flip_test = False
    raw = plain.predict(kp, normalized=True)
    expected = smooth_poses(torch.from_numpy(raw), 1.5).numpy()
    np.testing.assert_allclose(loaded.predict(kp, normalized=True), expected, atol=1e-5)
    assert np.abs(np.diff(expected, 2, axis=0)).mean() < 0.5 * np.abs(np.diff(raw, 2, axis=0)).mean()
    # A causal model refuses the filter: test_alignment.py::test_a_causal_model_refuses_steps_that_read_future_frames


def test_bad_filter_metadata_names_the_file(tmp_path):
    path = Lifter(TemporalModel((3,), channels=8)).save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
    save_file(load_file(str(path)), str(path), metadata={**meta, "smooth": "-2"})
    with pytest.raises(JointposeError, match="m.safetensors.*smooth"):
        Lifter.load(path)


def test_numpy_in_numpy_out():
    """Lifter.predict gives numpy arrays: smoothing one gives the same numbers as its tensor, as
    an array of the same dtype (it was a TypeError from torch)."""
    poses = np.random.default_rng(0).normal(size=(12, 17, 3)).astype(np.float32)
    smoothed = smooth_poses(poses, 1.5)
    assert isinstance(smoothed, np.ndarray) and smoothed.dtype == np.float32
    np.testing.assert_array_equal(smoothed, smooth_poses(torch.from_numpy(poses), 1.5).numpy())
    with pytest.raises(JointposeError, match="poses must be an array of numbers"):
        smooth_poses([["x"]], 1.0)
