import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from h36m_files import SMALL, write_dataset  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
CMU_MOCAP = SHARED / "data" / "cmu-mocap"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker process (and the processes its tests start) uses one
    thread for torch and BLAS: the workers already share out the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def h36m_dir(tmp_path_factory) -> Path:
    """A small Human3.6M-format dataset (VideoPose3D layout) with subjects S1, S5, S9, S11."""
    return write_dataset(tmp_path_factory.mktemp("h36m"), SMALL)


@pytest.fixture
def cmu_mocap() -> Path:
    if not CMU_MOCAP.is_dir():
        pytest.skip(f"{CMU_MOCAP} is absent")
    return CMU_MOCAP


@pytest.fixture(scope="session")
def cmu_motion():
    """The whole CMU folder at 50 fps with seed 0, as the bundled models train on it (each
    subject's body scaling and noise depend on the whole folder); loaded once (about 13 s)."""
    from jointpose.motion.mocap import load_bvh_folder

    if not CMU_MOCAP.is_dir():
        pytest.skip(f"{CMU_MOCAP} is absent")
    return load_bvh_folder(CMU_MOCAP, fps=50.0, seed=0)


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request) -> str:
    """Each device the test should run on: the CPU, and CUDA where available."""
    return request.param
