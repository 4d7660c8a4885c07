"""--average-last: the exported weights are the mean of the last epochs' weights, resumably."""

import pytest
import torch

from h36m_files import cli
from jointpose.cli import build_parser, main, train_config
from jointpose.model.loading import load_checkpoint, load_model
from jointpose.training.trainer import Trainer


def _args(data, ckpt, *extra: str) -> list[str]:
    flags = "-k gt -str S1,S5 -ste S9 -arc 3,3 -ch 32 -b 256 -e 3 --no-progress --seed 3 --average-last 2"
    return [*cli("train", flags, data_dir=data, checkpoint=ckpt), *extra]


@pytest.mark.slow
def test_average_of_the_last_epochs_is_what_loads_and_resumes(h36m_dir, tmp_path):
    assert main(_args(h36m_dir, tmp_path / "run")) == 0
    epochs = [load_checkpoint(tmp_path / "run" / f"epoch_{e:03d}.pt")["model"] for e in (1, 2, 3)]
    expected = {k: (epochs[1][k].double() + epochs[2][k].double()) / 2 for k in epochs[2] if k.endswith("weight")}
    assert not torch.allclose(epochs[2]["expand_conv.weight"], epochs[1]["expand_conv.weight"])

    loaded = load_model(tmp_path / "run", device="cpu").model.state_dict()
    for key, value in expected.items():
        assert torch.allclose(loaded[key].double(), value, atol=1e-6), key
    # Epoch 1 lies outside the last two: the checkpoint of epoch 1 stands for its own weights.
    first = load_model(tmp_path / "run" / "epoch_001.pt", device="cpu").model.state_dict()
    assert torch.equal(first["expand_conv.weight"], epochs[0]["expand_conv.weight"])

    # Stopped after epoch 2 (one epoch averaged) and resumed: the same average.
    Trainer(train_config(build_parser().parse_args(_args(h36m_dir, tmp_path / "split")))).fit(until_epoch=2)
    assert main(_args(h36m_dir, tmp_path / "split", "--resume")) == 0
    resumed = load_model(tmp_path / "split", device="cpu").model.state_dict()
    assert all(torch.allclose(resumed[k].double(), expected[k], atol=1e-6) for k in expected)


def test_average_last_beyond_the_epochs_is_refused(h36m_dir, tmp_path, capsys):
    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -e 2 --average-last 3"
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--average-last" in err and "got 3" in err


@pytest.mark.parametrize(
    ("epochs", "constraints", "expected"), [(5, True, 2), (15, True, 5), (1, True, 0), (15, False, 0)]
)
def test_default_averages_a_third_of_the_epochs_with_constraints_only(epochs, constraints, expected):
    from jointpose.training.config import TrainConfig

    config = TrainConfig(data_dir="d", checkpoint_dir="c", epochs=epochs, constraints=constraints)
    assert config.resolved().average_last == expected
    assert TrainConfig(data_dir="d", checkpoint_dir="c", epochs=epochs, average_last=1).resolved().average_last == 1
