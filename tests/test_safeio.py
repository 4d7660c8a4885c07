import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from jointpose.errors import JointposeError
from jointpose.safeio import load_npz


class _Payload:
    """Pickles to a call of os.system: what a malicious data file would hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _write_npz_with_pickle(path, key: str, obj) -> None:
    """A .npz whose member is an object-dtype .npy holding ``obj`` pickled."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    buffer.write(pickle.dumps(obj, protocol=3))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", buffer.getvalue())


def test_reads_videopose3d_style_dicts(tmp_path):
    data = {"S1": {"Walking 1": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}}
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[4, 5], [1, 2]]}
    np.savez_compressed(tmp_path / "a.npz", positions_3d=data, metadata=meta, plain=np.ones((2, 2)))
    loaded = load_npz(tmp_path / "a.npz")
    assert np.array_equal(loaded["positions_3d"].item()["S1"]["Walking 1"], data["S1"]["Walking 1"])
    assert loaded["metadata"].item() == meta
    assert np.array_equal(loaded["plain"], np.ones((2, 2)))


def test_crafted_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    _write_npz_with_pickle(path, "positions_3d", {"S1": _Payload(f"touch {marker}")})
    with pytest.raises(JointposeError, match=r"evil\.npz.*positions_3d.*os\.system|posix\.system"):
        load_npz(path)
    assert not marker.exists()


def test_corrupt_and_truncated_files(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.arange(1000.0))
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(JointposeError, match="trunc.npz"):
        load_npz(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(JointposeError, match="junk.npz.*not a valid .npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(JointposeError, match="file not found"):
        load_npz(tmp_path / "missing.npz")


def test_damaged_compressed_data_is_a_clear_error(tmp_path):
    np.savez_compressed(tmp_path / "ok.npz", x=np.random.default_rng(0).random((2000, 17, 2)))
    raw = bytearray((tmp_path / "ok.npz").read_bytes())
    raw[200:400] = bytes(b ^ 0xFF for b in raw[200:400])  # inside the deflate stream, headers intact
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(JointposeError, match="bad.npz: key 'x'"):
        load_npz(tmp_path / "bad.npz")
