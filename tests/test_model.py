import numpy as np
import pytest
import torch
from torch import nn

from jointpose.errors import JointposeError
from jointpose.model.temporal import (
    StridedTemporalModel,
    TemporalModel,
    build_model,
    dropout,
)


@pytest.mark.parametrize(
    "widths, field", [((3,), 3), ((3, 3, 3), 27), ((3, 3, 3, 3), 81), ((3, 3, 3, 3, 3), 243), ((5, 3), 15)]
)
def test_receptive_field(widths, field):
    assert TemporalModel(widths, channels=8).receptive_field() == field


@pytest.mark.parametrize("causal", [False, True])
def test_output_shapes(causal):
    model = TemporalModel((3, 3, 3), channels=16, causal=causal)
    out = model(torch.randn(2, 40, 17, 2))
    assert out.shape == (2, 40 - 27 + 1, 17, 3)
    strided = StridedTemporalModel((3, 3, 3), channels=16, causal=causal)
    assert strided(torch.randn(5, 27, 17, 2)).shape == (5, 1, 17, 3)
    trajectory = TemporalModel((3, 3), channels=16, num_joints_out=1).eval()
    assert trajectory(torch.randn(1, 9, 17, 2)).shape == (1, 1, 1, 3)


def test_2048_channels_parameter_count():
    wide = TemporalModel((3, 3, 3, 3, 3), channels=2048)
    narrow = TemporalModel((3, 3, 3, 3, 3), channels=1024)
    # Hidden layers dominate: doubling the channels roughly quadruples the parameters.
    assert 3.8 < sum(p.numel() for p in wide.parameters()) / sum(p.numel() for p in narrow.parameters()) < 4.1


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("widths", [(3, 3, 3), (3, 3, 3, 3, 3), (5, 3)])
def test_strided_equals_full_model(widths, causal):
    torch.manual_seed(0)
    full = TemporalModel(widths, channels=32, causal=causal)
    # Give batch norm non-trivial statistics so the comparison covers them.
    for bn in [m for m in full.modules() if isinstance(m, torch.nn.BatchNorm1d)]:
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    strided = StridedTemporalModel(widths, channels=32, causal=causal)
    strided.load_state_dict(full.state_dict())  # one state dict for both
    full.eval()
    strided.eval()
    field = full.receptive_field()
    x = torch.randn(2, field + 20, 17, 2)
    windows = x.unfold(1, field, 1).permute(0, 1, 4, 2, 3).reshape(-1, field, 17, 2)
    with torch.no_grad():
        a = full(x)
        b = strided(windows).reshape(2, -1, 17, 3)
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_dropout_zeroes_a_share_p_and_scales_the_rest(device, p):
    """The CPU mask (16-bit uniform integers against p) behaves as F.dropout: a share p of
    zeros, the rest scaled by 1 / (1 - p) (mean kept), the same mask in the gradient; seeded."""
    x = torch.full((1000, 500), 2.0, device=device, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, p, True)
    zeros = float((y == 0).double().mean())
    assert abs(zeros - p) < 0.005  # 500,000 draws: the standard error is below 0.001
    assert torch.allclose(y[y != 0], torch.tensor(2.0 / (1.0 - p), device=device))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, p, True), y)
    assert dropout(x, p, False) is x and torch.equal(dropout(x, 0.0, True), x)
    half = dropout(x.detach().bfloat16(), p, True)
    assert half.dtype == torch.bfloat16 and abs(float((half == 0).double().mean()) - p) < 0.005


def test_grouped_dropout_shares_masks_within_a_group():
    """Windows with one label get one dropout mask (same input, same output); other labels and
    no labels draw their own; in eval mode labels change nothing."""
    torch.manual_seed(0)
    model = StridedTemporalModel((3, 3), channels=64, dropout=0.5)
    x = torch.randn(1, 9, 17, 2).expand(6, -1, -1, -1)  # six copies of one window
    model.train()
    grouped = model(x, groups=torch.tensor([0, 0, 0, 1, 1, 2])).reshape(6, -1)

    def gap(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).detach().abs().max())

    assert max(gap(grouped[0], grouped[1]), gap(grouped[0], grouped[2]), gap(grouped[3], grouped[4])) < 1e-5
    assert min(gap(grouped[0], grouped[3]), gap(grouped[3], grouped[5])) > 0.05
    independent = model(x).reshape(6, -1)
    assert gap(independent[0], independent[1]) > 0.05
    with pytest.raises(ValueError, match="one label per window"):
        model(x, groups=torch.tensor([0, 1]))
    model.eval()
    assert torch.equal(model(x, groups=torch.tensor([0, 0, 0, 1, 1, 2])), model(x))


def test_strided_and_full_gradients_agree():
    torch.manual_seed(1)
    full = TemporalModel((3, 3), channels=16, dropout=0.0)
    strided = StridedTemporalModel((3, 3), channels=16, dropout=0.0)
    strided.load_state_dict(full.state_dict())
    full.eval()
    strided.eval()
    x = torch.randn(4, 9, 17, 2)
    full(x).square().sum().backward()
    strided(x).square().sum().backward()
    for (name, p), q in zip(full.named_parameters(), strided.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_causal_output_ignores_future_frames():
    torch.manual_seed(2)
    model = TemporalModel((3, 3, 3), channels=16, causal=True).eval()
    x = torch.randn(1, 60, 17, 2)
    y = x.clone()
    y[:, 45:] += 1.0  # change the future only
    with torch.no_grad():
        a, b = model(x), model(y)
    # Output i covers input frames [i, i + 26]; with causal padding it is the pose at frame i + 26.
    assert torch.allclose(a[:, : 45 - 26], b[:, : 45 - 26])
    assert not torch.allclose(a, b)


def test_bad_arguments():
    with pytest.raises(JointposeError, match=r"TemporalModel: model argument 'filter_widths' must be 1 to 8 odd"):
        TemporalModel((2, 3))
    for drop in (1.5, 1.0):  # 1: every activation dropped, nothing to train
        with pytest.raises(JointposeError, match=rf"'dropout' must be a number in \[0.0, 0.999\], got {drop}"):
            TemporalModel((3,), dropout=drop)
    for bad in (dict(channels=8.0), dict(causal="no"), dict(num_joints_in=0), dict(out_features=True)):
        with pytest.raises(JointposeError, match=f"TemporalModel: model argument '{next(iter(bad))}' must be"):
            TemporalModel((3,), **bad)
    for widths in ("33", (3, 3.0), (3,) * 9, (15, 15, 15, 15)):  # the last: receptive field 50625
        with pytest.raises(JointposeError, match="'filter_widths' must be"):
            TemporalModel(widths)
    assert TemporalModel([np.int64(3), 3], channels=8, in_features=3).filter_widths == (3, 3)
    # numpy arrays and scalars, as a configuration built with numpy gives them: plain Python values kept.
    model = TemporalModel(np.array([3, 3]), channels=np.int64(8), dropout=np.float32(0.25), causal=np.bool_(True))
    assert (model.filter_widths, model.channels, model.dropout, model.causal) == ((3, 3), 8, 0.25, True)
    assert type(model.channels) is int and type(model.causal) is bool
    model = TemporalModel((3, 3), channels=8)
    with pytest.raises(JointposeError, match=r"expected input \(batch, frames, 17, 2\), got \(1, 9, 16, 2\)"):
        model(torch.randn(1, 9, 16, 2))
    with pytest.raises(JointposeError, match="shorter than the receptive field"):
        model(torch.randn(1, 5, 17, 2))
    with pytest.raises(JointposeError, match=r"expected input \(batch, frames, 17, 2\) as a torch tensor, got ndarray"):
        model(np.zeros((1, 9, 17, 2), np.float32))
    window = torch.randn(1, 9, 17, 2)  # float64 input is read in the weights' float32
    torch.testing.assert_close(model.eval()(window.double()), model(window), rtol=0, atol=0)
    with pytest.raises(ValueError, match="exactly 9"):
        StridedTemporalModel((3, 3), channels=8)(torch.randn(1, 10, 17, 2))


def test_build_model_from_args():
    args = {
        "filter_widths": [3, 3],
        "channels": 8,
        "dropout": 0.1,
        "causal": True,
        "num_joints_in": 17,
        "in_features": 2,
        "num_joints_out": 17,
    }
    model = build_model(args)
    assert model.causal and model.receptive_field() == 9
    assert isinstance(build_model(args, strided=True), StridedTemporalModel)


def test_bn_momentum_reaches_synchronised_batch_norm():
    # --sync-bn on GPUs swaps every BatchNorm1d for nn.SyncBatchNorm, which is not a
    # BatchNorm1d: the momentum decay must still reach it.
    model = nn.SyncBatchNorm.convert_sync_batchnorm(TemporalModel([3, 3], channels=16))
    model.set_bn_momentum(0.01)
    norms = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert norms and all(m.momentum == 0.01 for m in norms)
