"""README's Quick start, as a user runs it: `jointpose demo` with its defaults, in a fresh folder."""

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_jointpose_demo_with_its_defaults(tmp_path):
    script = Path(sys.executable).with_name("jointpose")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "jointpose"]
    result = subprocess.run([*command, "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "jointpose-demo"
    for name in ("data/data_3d_h36m.npz", "data/data_2d_h36m_noisy.npz", "checkpoint/latest.pt", "demo.gif"):
        assert (out / name).is_file(), name
    found = re.search(r"P1 ([\d.]+) mm vs ([\d.]+) mm for always predicting the mean training pose", result.stdout)
    assert found, result.stdout[-3000:]
    p1, mean_pose = float(found.group(1)), float(found.group(2))
    assert p1 < mean_pose / 2  # the demo's own criterion: the model learnt something
    assert not [p.name for p in tmp_path.rglob("*partial*")]  # no temporary file left
