import math

import numpy as np
import pytest
import torch

from jointpose.evaluation.evaluate import average_over_actions, format_table
from jointpose.evaluation.metrics import (
    acceleration_error,
    mpjpe,
    n_mpjpe,
    p_mpjpe,
    velocity_error,
)


def random_rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.linalg.det(q))


def test_mpjpe_by_hand():
    target = torch.zeros(1, 17, 3)
    pred = target.clone()
    pred[0, 3] = torch.tensor([0.03, 0.04, 0.0])  # one joint 5 cm off
    assert math.isclose(float(mpjpe(pred, target)), 0.05 / 17, rel_tol=1e-6)
    assert float(mpjpe(target, target)) == 0.0


def test_p_mpjpe_of_similarity_copy_is_zero():
    target = torch.randn(6, 17, 3, dtype=torch.float64)
    pred = 1.3 * target @ random_rotation(0).T + torch.tensor([0.2, -0.1, 3.0], dtype=torch.float64)
    assert float(p_mpjpe(pred, target).max()) < 1e-9
    assert float(mpjpe(pred, target).min()) > 0.1


def test_p_mpjpe_does_not_use_reflections():
    target = torch.randn(4, 17, 3, dtype=torch.float64)
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    # A mirror image is not a similarity transform: the error must stay positive.
    assert float(p_mpjpe(mirrored, target).min()) > 1e-3


def test_p_mpjpe_and_n_mpjpe_by_hand():
    """Worked out by hand. P2: a cross rotated, moved and stretched twice along x: the best
    similarity keeps the rotation and scales by trace / |pred|^2 = 6 / 10, leaving errors 0.2,
    0.2, 0.4, 0.4 (mean 0.3). Its mirror image (x negated, two points lifted): the centred
    cross-covariance is diag(-2, 2, 1), the best proper rotation diag(-1, 1, -1) (trace 3),
    the scale 3 / 5, and every joint sqrt(0.8) off. P3: (1, 0, 0) and (0, 2, 0) against
    (1, 0, 0) and (0, 1, 0): scale 3 / 5, errors 0.4 and 0.2."""
    f64 = dict(dtype=torch.float64)
    target = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], **f64)
    pred = target * torch.tensor([2.0, 1.0, 1.0], **f64)
    moved = pred @ random_rotation(3).T + torch.tensor([0.5, -2.0, 4.0], **f64)
    for p in (pred, moved):
        assert math.isclose(float(p_mpjpe(p[None], target[None])[0]), 0.3, rel_tol=1e-9)
    lifted = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, -1.0, 1.0]], **f64)
    mirrored = lifted * torch.tensor([-1.0, 1.0, 1.0], **f64)
    assert math.isclose(float(p_mpjpe(mirrored[None], lifted[None])[0]), math.sqrt(0.8), rel_tol=1e-9)
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], **f64)
    pred = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]], **f64)
    assert math.isclose(float(n_mpjpe(pred, target)[0]), 0.3, rel_tol=1e-9)


def test_velocity_and_acceleration_errors_of_an_alternating_offset():
    """A prediction 1 cm to one side, then the other, of a moving target: its velocity is off
    by 2 cm/frame every frame and its acceleration by |1 + 2 + 1| cm/frame^2."""
    frames = torch.arange(8, dtype=torch.float64)[:, None, None]
    target = torch.randn(8, 17, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.05 * frames
    pred = target + (-1.0) ** frames * torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(velocity_error(pred, target), torch.full((7,), 0.02, dtype=torch.float64))
    torch.testing.assert_close(acceleration_error(pred, target), torch.full((6,), 0.04, dtype=torch.float64))


def test_n_mpjpe_removes_scale_only():
    target = torch.randn(3, 17, 3)
    assert float(n_mpjpe(0.5 * target, target).max()) < 1e-6
    shifted = target + torch.tensor([0.1, 0.0, 0.0])
    assert float(n_mpjpe(shifted, target).min()) > 0.0
    # At any size (a fixed floor on the squared norm made a 1e-7 m copy score 0.7 m); a
    # prediction of zeros has no scale to find and scores the target's own size.
    tiny = target.double()
    assert float(n_mpjpe(1e-7 * tiny, tiny).max()) < 1e-12
    torch.testing.assert_close(n_mpjpe(torch.zeros_like(tiny), tiny), mpjpe(torch.zeros_like(tiny), tiny))


def test_numpy_arrays_in_numpy_arrays_out_and_a_nan_frame_scores_nan():
    """Lifter.predict gives numpy arrays: each metric takes them and gives the same values as an
    array. A frame holding NaN scores NaN in every metric (P2's SVD raised on it)."""
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(6, 17, 3)), rng.normal(size=(6, 17, 3))
    for metric in (mpjpe, p_mpjpe, n_mpjpe, velocity_error, acceleration_error):
        values = metric(pred, target)
        assert isinstance(values, np.ndarray)
        np.testing.assert_array_equal(values, metric(torch.from_numpy(pred), torch.from_numpy(target)).numpy())
        holed = pred.copy()
        holed[4, 5, 1] = np.nan
        for scored in (metric(holed, target), metric(target, holed)):  # NaN in the prediction or the truth
            assert np.isnan(scored).any() and np.isfinite(scored[:1]).all(), metric.__name__
    assert np.isnan(p_mpjpe(holed, target)).tolist() == [False, False, False, False, True, False]
    assert np.isnan(p_mpjpe(target, holed)).tolist() == [False, False, False, False, True, False]
    # Arrays torch cannot read as they are: reversed (a negative stride) and big-endian.
    np.testing.assert_array_equal(mpjpe(pred[::-1], target.astype(">f8")), mpjpe(pred[::-1].copy(), target))


def test_velocity_and_acceleration_on_constant_velocity_motion():
    frames = torch.arange(10, dtype=torch.float64)[:, None, None]
    target = torch.zeros(10, 17, 3, dtype=torch.float64) + frames * torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)
    pred = torch.zeros(10, 17, 3, dtype=torch.float64) + frames * torch.tensor([0.0, 0.02, 0.0], dtype=torch.float64)
    # Velocities 1 cm/frame along x vs 2 cm/frame along y: error sqrt(0.01^2 + 0.02^2) every frame.
    assert velocity_error(pred, target).shape == (9,)
    assert torch.allclose(velocity_error(pred, target), torch.full((9,), math.hypot(0.01, 0.02), dtype=torch.float64))
    # Both move at constant velocity: no acceleration, no acceleration error.
    assert acceleration_error(pred, target).shape == (8,)
    assert float(acceleration_error(pred, target).abs().max()) < 1e-12
    accelerating = pred + 0.5 * 0.004 * frames**2 * torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(acceleration_error(accelerating, target), torch.full((8,), 0.004, dtype=torch.float64))


def test_metrics_are_batched():
    pred, target = torch.randn(2, 5, 17, 3), torch.randn(2, 5, 17, 3)
    assert torch.allclose(p_mpjpe(pred, target)[1], p_mpjpe(pred[1], target[1]), atol=1e-6)
    for metric in (mpjpe, n_mpjpe, velocity_error, acceleration_error):
        batched = metric(pred, target)
        assert torch.allclose(batched, torch.stack([metric(pred[i], target[i]) for i in range(2)]), atol=1e-6)


def test_average_over_actions_is_unweighted():
    rows = {"A": {"p1": 10.0, "frames": 100}, "B": {"p1": 30.0, "frames": 900}}
    avg = average_over_actions(rows)
    assert avg["p1"] == 20.0 and avg["frames"] == 1000
    assert np.isfinite(avg["p1"])
    three = average_over_actions(
        {"A": {"p1": 10.0, "frames": 1}, "B": {"p1": 20.0, "frames": 1}, "C": {"p1": 60.0, "frames": 1}}
    )
    assert three == {"p1": 30.0, "frames": 3}  # the mean (the median would be 20)


def test_average_leaves_out_groups_too_short_for_a_metric():
    rows = {
        "A": {"p1": 10.0, "mpjve": float("nan"), "frames": 1},  # one frame: no velocity
        "B": {"p1": 30.0, "mpjve": 4.0, "frames": 30},
    }
    avg = average_over_actions(rows)
    assert avg["p1"] == 20.0 and avg["mpjve"] == 4.0
    assert math.isnan(average_over_actions({"A": rows["A"]})["mpjve"])


def test_table_rules_off_the_average_and_the_subject_block_once():
    row = {"p1": 50.0, "p2": 40.0, "frames": 10}
    summary = {"actions": {"Walking": row, "Sitting": row}, "average": row, "subjects": {"S9": row, "S11": row}}
    lines = format_table(summary).splitlines()
    names = [line.split()[0] for line in lines[1:]]
    assert names == [
        "-" * len(lines[0]),
        "Walking",
        "Sitting",
        "-" * len(lines[0]),
        "Average",
        "-" * len(lines[0]),
        "[S9]",
        "[S11]",
    ]


def test_plausibility_metrics_by_hand():
    from h36m_files import motion
    from jointpose.evaluation.plausibility import (
        bone_length_std,
        left_right_gap,
        outside_range_of_motion,
    )

    poses = torch.from_numpy(motion(8, seed=0))  # a rigid, left/right-symmetric walker, metres
    assert float(bone_length_std(poses).max()) < 1e-9 and float(left_right_gap(poses).max()) < 1e-9
    assert float(outside_range_of_motion(poses).sum()) == 0.0
    longer = poses.clone()  # left forearm 2 cm longer in frame 3 (the wrist is a leaf joint)
    forearm = longer[3, 13] - longer[3, 12]
    longer[3, 13] += 0.02 * forearm / forearm.norm()
    gap = left_right_gap(longer)
    assert math.isclose(float(gap[3]), 0.02 / 6, rel_tol=1e-6) and float(gap[[0, 1, 2, 4]].max()) < 1e-9
    # one bone of 16 off by 2 cm in 1 frame of 8: std 0.02 * sqrt(1/8 * 7/8), averaged over bones
    assert math.isclose(float(bone_length_std(longer)[0]), 0.02 * math.sqrt(7 / 64) / 16, rel_tol=1e-6)
    folded = poses.clone()  # right knee folded shut in frame 5: the foot back beside the hip
    folded[5, 3] = folded[5, 2] + 0.9 * (folded[5, 1] - folded[5, 2])
    assert outside_range_of_motion(folded).tolist() == [0, 0, 0, 0, 0, 1, 0, 0]


def test_evaluation_in_batches_of_sequences_equals_one_sequence_at_a_time(h36m_dir, monkeypatch):
    """The inference step runs on several sequences at once (the skeleton fit on all their
    frames): with batches of one sequence each the predictions and the table are the same."""
    import jointpose.evaluation.evaluate as evaluate
    from jointpose.data.h36m import load_dataset
    from jointpose.model.temporal import TemporalModel

    torch.manual_seed(0)
    model = TemporalModel([3, 3], channels=32).eval()
    data = load_dataset(h36m_dir, "gt", ["S9", "S11"])
    settings = dict(flip_test=True, skeleton_fit=True, smooth=2.0, align=0.5, fps=50.0)
    together = evaluate.evaluate_model(model, data.sequences, **settings)
    assert sum(len(s.keypoints) for s in data.sequences) <= evaluate.BATCH_FRAMES  # one batch
    monkeypatch.setattr(evaluate, "BATCH_FRAMES", 1)
    alone = evaluate.evaluate_model(model, data.sequences, **settings)
    assert together.predictions.keys() == alone.predictions.keys() and len(alone.predictions) == 16
    for key, pred in together.predictions.items():
        np.testing.assert_allclose(pred, alone.predictions[key], rtol=0, atol=1e-6)
    assert together.summary["average"] == pytest.approx(alone.summary["average"], abs=1e-3)


def test_poses_of_other_shapes_are_refused_not_broadcast():
    from jointpose.errors import JointposeError

    one, five = torch.zeros(1, 17, 3), torch.ones(5, 17, 3)
    for metric in (mpjpe, p_mpjpe, n_mpjpe, velocity_error, acceleration_error):
        with pytest.raises(JointposeError, match=r"must be poses of one shape \(\.\.\., joints, 3\), got \(1, 17, 3\)"):
            metric(one, five)
        with pytest.raises(JointposeError, match=r"got \(5, 17, 2\) and \(5, 17, 2\)"):
            metric(five[..., :2], five[..., :2])
