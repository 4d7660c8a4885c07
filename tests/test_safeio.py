import io
import os
import pickle
import re
import zipfile

import numpy as np
import pytest

from jointpose.errors import JointposeError
from jointpose.safeio import frame_ranges, load_npy, load_npz


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
    os.mkfifo(tmp_path / "pipe.npz")  # read, it would wait for a writer forever
    (tmp_path / "folder.npy").mkdir()
    for path in (tmp_path / "pipe.npz", tmp_path / "folder.npy"):
        for read in (load_npz, load_npy):
            with pytest.raises(JointposeError, match=f"^{re.escape(str(path))}: not a regular file$"):
                read(path)


def test_damaged_compressed_data_is_a_clear_error(tmp_path):
    np.savez_compressed(tmp_path / "ok.npz", x=np.random.default_rng(0).random((2000, 17, 2)))
    raw = bytearray((tmp_path / "ok.npz").read_bytes())
    raw[200:400] = bytes(b ^ 0xFF for b in raw[200:400])  # inside the deflate stream, headers intact
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(JointposeError, match="bad.npz: key 'x'"):
        load_npz(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- atomic writing


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from jointpose.safeio import atomic_write

    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as handle:
            handle.write("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.json"]
    with atomic_write(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new" and _listing(tmp_path) == ["out.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would have made it


def test_atomic_write_turns_os_errors_into_one_named_error(tmp_path):
    from jointpose.safeio import atomic_write

    (tmp_path / "file").write_text("x")
    with pytest.raises(JointposeError, match=r"cannot write .*file/out\.npz"):
        with atomic_write(tmp_path / "file" / "out.npz"):
            pass


def test_export_and_predictions_keep_the_old_file_on_failure(tmp_path, monkeypatch):
    from jointpose.evaluation.evaluate import write_predictions
    from jointpose.inference.export import export

    poses = np.zeros((3, 17, 3))
    for name, write in (
        ("a.npz", lambda p: export(p, poses, 50.0)),
        ("b.npz", lambda p: write_predictions({"S9/x/0": poses}, p)),
    ):
        target = tmp_path / name
        target.write_bytes(b"good old result")

        def broken(*args, **kwargs):
            args[0].write(b"torn")
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(np, "savez_compressed", broken)
            with pytest.raises(JointposeError, match=f"cannot write .*{name}: No space left"):
                write(target)
        assert target.read_bytes() == b"good old result"
        write(target)
        assert load_npz(target)
    assert _listing(tmp_path) == ["a.npz", "b.npz"]


def test_dataset_rebuild_replaces_the_files_as_a_set(tmp_path, monkeypatch):
    from jointpose.motion.builder import dataset_paths, write_h36m_dataset
    from jointpose.motion.synthetic import generate

    motion = generate(["S1", "S9"], seconds=0.2, motions=["Walking"])
    write_h36m_dataset(tmp_path / "ds", motion, fps=50.0)
    before = {k: p.read_bytes() for k, p in dataset_paths(tmp_path / "ds").items()}
    calls = []
    real = np.savez_compressed

    def fails_on_third(path, **arrays):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, **arrays)

    monkeypatch.setattr(np, "savez_compressed", fails_on_third)
    with pytest.raises(JointposeError, match="No space left"):
        write_h36m_dataset(tmp_path / "ds", motion, fps=50.0, seed=1)
    assert {k: p.read_bytes() for k, p in dataset_paths(tmp_path / "ds").items()} == before
    assert _listing(tmp_path) == ["ds"] and len(_listing(tmp_path / "ds")) == 3
    monkeypatch.setattr(np, "savez_compressed", real)
    write_h36m_dataset(tmp_path / "ds", motion, fps=50.0, seed=1)
    after = {k: p.read_bytes() for k, p in dataset_paths(tmp_path / "ds").items()}
    assert after["noisy"] != before["noisy"]  # a new seed: new detector noise
    assert _listing(tmp_path) == ["ds"]


def test_output_paths_are_checked_before_work(tmp_path):
    from jointpose.safeio import check_output_folder, check_output_path

    (tmp_path / "file").write_text("x")
    with pytest.raises(JointposeError, match=r"-o .*: is a folder"):
        check_output_path(tmp_path, "-o")
    with pytest.raises(JointposeError, match=r"--out .*file/sub.*file is not a folder"):
        check_output_path(tmp_path / "file" / "sub" / "x.npz", "--out")
    with pytest.raises(JointposeError, match=r"--checkpoint .*file: is a file, not a folder"):
        check_output_folder(tmp_path / "file", "--checkpoint")
    with pytest.raises(JointposeError, match=r"^checkpoint_dir .*file: is a file, not a folder$") as named:
        check_output_folder(tmp_path / "file", "checkpoint_dir", field=True)  # a field: the CLI writes its flag
    assert (
        named.value.naming({"checkpoint_dir": "--checkpoint"})
        == f"--checkpoint {tmp_path / 'file'}: is a file, not a folder"
    )
    with pytest.raises(JointposeError, match=r"^checkpoint_dir .*file/sub: .*file is not a folder$"):
        check_output_folder(tmp_path / "file" / "sub", "checkpoint_dir", field=True)
    assert check_output_folder(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


# ----------------------------------------------------------------------------- bounded reading


def test_pickle_memo_index_is_bounded_before_unpickling(tmp_path):
    """A 261-byte npz whose pickle stores into memo slot 2**26: the C unpickler would first
    allocate 16 bytes per slot (1 GiB); the opcode scan refuses it."""
    import struct

    payload = b"\x80\x02N" + b"r" + struct.pack("<I", 2**26) + b"."  # None, LONG_BINPUT 2**26, STOP
    path = tmp_path / "memo.npz"
    _write_npz_raw(path, "positions_3d", payload)
    assert path.stat().st_size < 300
    with pytest.raises(JointposeError, match=r"memo\.npz: key 'positions_3d'.*memo index 67108864 exceeds the limit"):
        load_npz(path)
    ok = b"\x80\x02N" + b"r" + struct.pack("<I", 7) + b"."
    _write_npz_raw(path, "x", ok)
    with pytest.raises(JointposeError, match="does not hold an array"):  # scanned, loaded: None is no array
        load_npz(path)


def _write_npz_raw(path, key: str, pickle_bytes: bytes) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    buffer.write(pickle_bytes)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{key}.npy", buffer.getvalue())


def test_counted_pickle_strings_longer_than_the_data_are_refused(tmp_path):
    import struct

    payload = b"\x80\x04" + b"\x8e" + struct.pack("<Q", 2**40) + b"abc."  # BINBYTES8 claiming 1 TiB
    _write_npz_raw(tmp_path / "b.npz", "x", payload)
    with pytest.raises(JointposeError, match=r"b\.npz: key 'x': unsafe or corrupt pickle"):
        load_npz(tmp_path / "b.npz")


def test_a_crafted_dtype_state_is_refused_where_it_is_read(tmp_path):
    """numpy takes a pickled dtype's state as given: an alignment of -23041 (one byte of a real
    pickle changed) made a float32 dtype whose arrays raised RuntimeError later, wherever they
    were freed; a dtype built from arguments numpy never writes printed numpy's warnings."""
    import gc
    import warnings

    data = np.empty((), dtype=object)
    data[()] = {"positions_2d": np.ones((2, 17, 2), np.float32)}  # as VideoPose3D's files hold it
    stream = pickle.dumps(data, protocol=3)
    state = b"J\xff\xff\xff\xffJ\xff\xff\xff\xff"  # a dtype's item size and alignment, -1 and -1
    at = stream.rindex(state)  # the float32 dtype's (the object dtype's comes first)
    _write_npz_raw(tmp_path / "ok.npz", "data", stream)
    np.testing.assert_array_equal(load_npz(tmp_path / "ok.npz")["data"].item()["positions_2d"], 1.0)
    crafted = stream[: at + 5] + b"J\xff\xa5\xff\xff" + stream[at + 10 :]
    _write_npz_raw(tmp_path / "state.npz", "data", crafted)
    with pytest.raises(JointposeError, match=r"state\.npz: key 'data'.*dtype state numpy does not write for <f4"):
        load_npz(tmp_path / "state.npz")
    arguments = stream.replace(b"\x89\x88\x87", b"X\x01\x00\x00\x008\x88\x87")  # align=False -> align='8'
    assert arguments != stream
    _write_npz_raw(tmp_path / "args.npz", "data", arguments)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(JointposeError, match=r"args\.npz: key 'data'.*numpy\.dtype arguments"):
            load_npz(tmp_path / "args.npz")
    gc.collect()  # nothing left half-built raises when freed


def test_pickled_array_shapes_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", "1000000")
    big = np.empty(2, dtype=object)
    big[0], big[1] = np.zeros((200_000,)), None  # 1.6 MB inside an object array
    np.savez(tmp_path / "big.npz", data=big)
    with pytest.raises(JointposeError, match=r"big\.npz.*exceeds the limit of 1000000 \(set JOINTPOSE_MAX_NPZ_BYTES"):
        load_npz(tmp_path / "big.npz")
    monkeypatch.delenv("JOINTPOSE_MAX_NPZ_BYTES")
    assert load_npz(tmp_path / "big.npz")["data"][0].shape == (200_000,)


def test_decompressed_size_is_checked_before_reading(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros(1_000_000))  # 8 MB in about 8 kB
    assert (tmp_path / "zeros.npz").stat().st_size < 50_000
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", str(4 * 2**20))
    with pytest.raises(
        JointposeError,
        match=r"zeros\.npz: arrays decompressed \(bytes\): 8000128 exceeds the limit "
        r"of 4194304",
    ):
        load_npz(tmp_path / "zeros.npz")
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", "many")
    with pytest.raises(JointposeError, match="JOINTPOSE_MAX_NPZ_BYTES must be an integer >= 1, got 'many'"):
        load_npz(tmp_path / "zeros.npz")


def test_declared_sizes_that_lie_are_caught(tmp_path):
    """A member declaring fewer bytes than it inflates to stops at the declared size (CRC
    error); a header claiming 10**11 frames is refused from the header alone."""
    np.savez_compressed(tmp_path / "a.npz", x=np.zeros(100_000))
    raw = bytearray((tmp_path / "a.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        info = archive.infolist()[0]
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")  # uncompressed size in the central directory
    local = info.header_offset
    raw[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    (tmp_path / "lie.npz").write_bytes(bytes(raw))
    with pytest.raises(JointposeError, match=r"lie\.npz: key 'x'"):
        load_npz(tmp_path / "lie.npz")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 17, 2)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + b"\0" * 64)
    from jointpose.safeio import load_npy

    with pytest.raises(
        JointposeError, match=r"huge\.npy of shape \(100000000000, 17, 2\): bytes: 27200000000000 exceeds"
    ):
        load_npy(tmp_path / "huge.npy")
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("keypoints.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(JointposeError, match=r"huge\.npz: key 'keypoints' of shape \(100000000000, 17, 2\)"):
        load_npz(tmp_path / "huge.npz")


def test_frame_ranges_lists_runs_then_how_many_more():
    assert frame_ranges([]) == "none"
    assert frame_ranges([3, 4, 5, 9, 12]) == "3-5, 9, 12"
    frames = [0, 1, 2, 4, 170, 171, 227, 229, 300, 301, 305]  # seven runs
    assert frame_ranges(frames) == "0-2, 4, 170-171, 227, 229 and 2 more"
    assert frame_ranges(frames, most=7) == "0-2, 4, 170-171, 227, 229, 300-301, 305"


def test_only_the_keys_asked_for_are_read_and_counted(tmp_path, monkeypatch):
    """A small array beside 40 MB of zeros (40 kB compressed): asking for the small one neither
    decompresses the zeros nor counts them against the limit."""
    import tracemalloc

    from jointpose.safeio import npz_keys

    keypoints = np.random.default_rng(0).random((50, 17, 2))
    np.savez_compressed(tmp_path / "a.npz", keypoints=keypoints, junk=np.zeros(5_000_000), fps=np.array(25.0))
    assert npz_keys(tmp_path / "a.npz") == ["keypoints", "junk", "fps"]
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", str(2**20))
    with pytest.raises(JointposeError, match=r"a\.npz: arrays decompressed \(bytes\): 40013992 exceeds"):
        load_npz(tmp_path / "a.npz")  # all three arrays, each with its 128-byte header
    tracemalloc.start()
    loaded = load_npz(tmp_path / "a.npz", keys=["keypoints", "fps", "absent"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sorted(loaded) == ["fps", "keypoints"]
    assert np.array_equal(loaded["keypoints"], keypoints) and loaded["fps"] == 25.0
    assert peak < 2**20  # the zeros alone would be 40 MB
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", str(keypoints.nbytes))
    with pytest.raises(
        JointposeError, match=r"a\.npz: arrays decompressed \(bytes\): 13728 exceeds the limit of 13600"
    ):
        load_npz(tmp_path / "a.npz", keys=["keypoints"])  # 13600 bytes of data and its 128-byte header


@pytest.mark.parametrize("name", ["a.npz", "a.npy", "c.npz"])
def test_an_array_is_read_into_one_copy(tmp_path, name):
    """Peak memory while reading a 16 MB array is about the array itself (not the file's
    bytes, then the data cut from them, then a copy)."""
    import tracemalloc

    from jointpose.safeio import load_npy

    array = np.asfortranarray(np.random.default_rng(0).random((2_000, 1_000)))
    path = tmp_path / name
    if name == "a.npy":
        np.save(path, array)
    else:
        (np.savez_compressed if name == "c.npz" else np.savez)(path, x=array)
    tracemalloc.start()
    loaded = load_npy(path) if name == "a.npy" else load_npz(path)["x"]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(loaded, array) and loaded.flags.f_contiguous and loaded.flags.writeable
    assert peak < 1.2 * array.nbytes, peak / array.nbytes


def test_check_fps_takes_any_real_number_type_but_not_a_bool():
    from jointpose.safeio import check_fps

    for fps in (30, 29.97, np.int64(30), np.float32(25.0)):
        assert check_fps(fps, "fps") == pytest.approx(float(fps))
    for fps in (True, np.bool_(True), "30", float("nan"), 0, -5):
        with pytest.raises(JointposeError, match="fps must be a positive number of frames per second"):
            check_fps(fps, "fps")


def test_numeric_array_refuses_a_bool_among_numbers_and_reads_big_integers():
    """numpy reads [1.0, True] as [1.0, 1.0] and an integer beyond int64 as an object: a list
    holding either is told apart before it is cast."""
    from jointpose.safeio import numeric_array

    with pytest.raises(JointposeError, match=r"^poses must be an array of numbers, got true or false at \[1, 0\]$"):
        numeric_array([[2.5, 3], [True, 4.0]], "poses")
    with pytest.raises(JointposeError, match=r"^poses must be an array of numbers, got bool$"):
        numeric_array(np.array([True]), "poses")
    np.testing.assert_array_equal(numeric_array([[1.5, -(2**63) - 1]], "poses"), [[1.5, -(2.0**63)]])
    with pytest.raises(JointposeError, match=r"^poses holds an integer too large for a floating-point number$"):
        numeric_array([1.5, 10**400], "poses")
    with pytest.raises(JointposeError, match=r"^poses must be an array of numbers, got object$"):
        numeric_array([[None, 1.0]], "poses")
    assert numeric_array(7, "fps").shape == () and numeric_array([np.float32(2)], "x").dtype == np.float64
