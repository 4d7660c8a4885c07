"""Crafted files a few bytes to a few hundred kB long that made jointpose hang, run for
minutes or allocate gigabytes (a pickle's memo hands one object to many places, stored
tensors with zero strides, sparse detections, BVH End Sites): each is refused on one line,
and what is reported about a file's values is bounded in length."""

import io
import json
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from h36m_files import SMALL, write_dataset
from jointpose.data.h36m import load_dataset
from jointpose.data.keypoints import load_keypoints
from jointpose.errors import JointposeError, brief
from jointpose.model.loading import FORMAT, LoadedModel, load_checkpoint, load_model, model_args_of, save_model
from jointpose.model.temporal import TemporalModel
from jointpose.motion.bvh import read_bvh
from jointpose.safeio import check_checkpoint_pickle, load_npz, restricted_loads


def _doubling(levels: int) -> bytes:
    """Protocol-2 opcodes pushing ``L``, ``L = (L, L)`` ``levels`` times over the empty tuple
    (9 bytes a level; written out, 2**levels leaves), in memo 0 to ``levels``."""
    code = b")q\x000"
    for i in range(levels):
        code += b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86q" + bytes([i + 1]) + b"0"
    return code + b"h" + bytes([levels])


def _npz(path, pickle_bytes: bytes, key: str = "keypoints"):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", header.getvalue() + pickle_bytes)
    return path


def test_brief_is_bounded_for_values_shared_through_a_memo():
    value = restricted_loads(b"\x80\x02" + _doubling(60) + b".")
    assert len(brief(value)) < 200
    error = JointposeError("{0} got {v}", fields=("x",), v=value)
    assert len(str(error)) < 200 and len(error.naming({})) < 200
    assert str(JointposeError("{0}: {v!r}, {v!s}, {v}", fields=("x",), v=[1, "a"])) == "x: [1, 'a'], [1, 'a'], [1, 'a']"


@pytest.mark.parametrize(
    ("opcode", "size"),
    [(pickle.EMPTY_SET, 216), (pickle.EMPTY_LIST, 56), (pickle.EMPTY_DICT, 64), (pickle.MARK, 56)],
)
def test_python_objects_a_pickle_builds_count_against_its_budget(tmp_path, opcode, size):
    """One byte of pickle builds a set of 216 bytes: a few hundred kilobytes of deflated
    npz member held gigabytes of empty sets. Each is charged; the pickle's budget is 16 times
    its size and 64 MiB more, so objects of more than 16 bytes each pass it at last."""
    count = 2**26 // (size - 16) + 100  # past the budget: size * count > 16 * (count + 5) + 2**26
    data = b"\x80\x04(" + opcode * count + b"l."
    tracemalloc.start()
    try:
        with pytest.raises(JointposeError, match="the Python objects it builds would take more memory than"):
            load_npz(_npz(tmp_path / "sets.npz", data, "metadata"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * (16 * len(data) + 2**26)  # the budget and the objects' bookkeeping, not more
    small = b"\x80\x04(" + opcode * 1000 + b"l."
    assert len(restricted_loads(small)) == (1000 if opcode != pickle.MARK else 0)


def test_deep_shared_value_in_an_error_message(tmp_path):
    """A 60-level doubled tuple as numpy.dtype's argument: the refusal used to write it out."""
    path = _npz(tmp_path / "d.npz", b"\x80\x02cnumpy\ndtype\nq\xff" + _doubling(60) + b"\x85R.")
    with pytest.raises(JointposeError, match="refusing numpy.dtype arguments") as info:
        load_npz(path)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    "body, needle",
    [
        # numpy.ndarray((10**6, 17, 3), '<f8', 8 bytes, 0, (0, 0, 0)): a 24 MB array of 8 bytes
        (
            b"cnumpy\nndarray\n(J@B\x0f\x00K\x11K\x03\x87X\x03\x00\x00\x00<f8C\x08"
            + b"\0" * 8
            + b"K\x00K\x00K\x00K\x00\x87t"
            b"R.",
            "refusing a direct call of numpy.ndarray",
        ),
        # _codecs.encode(str, 'punycode'): quadratic in the length of the text
        (b"c_codecs\nencode\nX\x04\x00\x00\x00abcdX\x08\x00\x00\x00punycode\x86R.", "_codecs.encode arguments"),
        # one 1 MiB str encoded 200 times through the memo: 200 MiB from a 1 MiB pickle
        (
            b"c_codecs\nencode\nq\x00X" + struct.pack("<I", 2**20) + b"x" * 2**20 + b"X\x06\x00\x00\x00latin1\x86q\x01"
            b"](" + b"h\x00h\x01R" * 200 + b"e.",
            "a pickled bytes object would take more memory than a pickle of this size holds",
        ),
        # _reconstruct(ndarray, (2**27,), 'O') four times: 4 GiB of pointers from 100 bytes
        (
            b"cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nJ\x00\x00\x00\x08\x85X\x01\x00\x00\x00O\x87q\x01"
            b"](" + b"h\x00h\x01R" * 4 + b"e.",
            "a pickled array would take more memory than a pickle of this size holds",
        ),
        # {L: 1} for a 60-level doubled tuple L: hashing it takes 2**60 steps
        (b"}(" + _doubling(60) + b"K\x01u.", "dict key or set item that is not a string or a number"),
    ],
    ids=["ndarray with zero strides", "punycode", "shared str encoded again and again", "repeated reconstruct", "key"],
)
def test_pickle_amplification_is_refused(tmp_path, body, needle):
    path = _npz(tmp_path / "p.npz", b"\x80\x02" + body)
    with pytest.raises(JointposeError, match=needle):
        load_npz(path)


def test_plain_arrays_and_dicts_still_load(tmp_path):
    value = {"a": np.arange(5.0), "b": [np.zeros((2, 3), np.float32), "x", b"\x00\xff"], "c": {1: (2, 3)}}
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        loaded = restricted_loads(pickle.dumps(value, protocol=protocol))
        np.testing.assert_array_equal(loaded["a"], value["a"])
        assert loaded["b"][1:] == value["b"][1:] and loaded["c"] == value["c"]


def test_dataset_clips_sharing_one_array_are_refused(tmp_path):
    """A pickle's memo can give every clip of a dataset one array: 400 clips of 100,000 frames
    from a 40 kB file. Repeating an array is allowed as far as a pickle of the arrays' size
    may build, counted as the float64 copies the loader makes
    (:func:`jointpose.safeio.pickle_budget`: 16 times the stored bytes, and 64 MiB more)."""
    folder = write_dataset(tmp_path / "d", {"S1": SMALL["S1"]})
    path = folder / "data_2d_h36m_gt.npz"
    with np.load(path, allow_pickle=True) as files:
        positions, metadata = files["positions_2d"].item(), files["metadata"].item()
    one = np.zeros((100_000, 17, 2), np.float32)  # 13.6 MB, stored once
    positions["S1"] = {f"Walking {i}": [one] * 4 for i in range(6)}  # as 24 clips: 653 MB in float64
    np.savez(path, positions_2d=positions, metadata=metadata)
    assert path.stat().st_size < 2 * one.nbytes
    with pytest.raises(JointposeError, match=r"'positions_2d' repeats its arrays as more clips than its 13600000 "):
        load_dataset(folder, "gt", ["S1"])
    positions["S1"] = {f"Walking {i}": [one] * 4 for i in range(2)}  # 8 clips: 218 MB, within the bound
    np.savez(path, positions_2d=positions, metadata=metadata)
    with pytest.raises(JointposeError, match=r"S1 'Directions' is in .*data_3d_h36m.npz but not in the 2D file"):
        load_dataset(folder, "gt", ["S1"])  # read within the bound: on to the clips' own checks


def _torch_file(path, pickle_bytes: bytes):
    """A ``torch.save`` archive whose data.pkl is ``pickle_bytes``."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w") as archive:
        for member in source.infolist():
            archive.writestr(member, pickle_bytes if member.filename.endswith("/data.pkl") else source.read(member))
    return path


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"}(" + _doubling(60) + b"K\x01u.", "a dict key or set item that is not a string or a number"),
        (b"c_codecs\nencode\nX\x04\x00\x00\x00abcdX\x08\x00\x00\x00punycode\x86R.", "_codecs.encode arguments"),
    ],
    ids=["deep shared key", "punycode"],
)
def test_checkpoint_pickles_are_checked_before_torch_loads_them(tmp_path, body, needle):
    path = _torch_file(tmp_path / "c.pt", b"\x80\x02" + body)
    with pytest.raises(JointposeError, match=rf"c\.pt: unsafe or corrupt checkpoint \(refusing {needle}"):
        load_checkpoint(path)


def test_checkpoint_tensors_with_zero_strides_are_refused(tmp_path):
    """Weights saved as ``torch.zeros(1).expand(shape)`` claim the model's sizes from 4 bytes each."""
    model = TemporalModel([3, 3], channels=64)
    args = model_args_of(model)
    state = {k: torch.zeros(1).expand(v.shape) if v.dim() else v for k, v in model.state_dict().items()}
    path = tmp_path / "c.pt"
    torch.save({"format": FORMAT, "model": state, "model_args": args, "config": {}, "epoch": 0}, path)
    with pytest.raises(JointposeError, match=r"has more elements than its file stores \(zero strides\)"):
        load_model(path, device="cpu")


def test_bvh_end_sites_times_frames_beyond_the_file_are_refused(tmp_path):
    """One channel and 9,999 End Sites: a line ``0`` per frame became 10,000 rotations."""
    lines = ["HIERARCHY", "ROOT r", "{", "OFFSET 0 0 0", "CHANNELS 1 Xrotation"]
    lines += ["End Site { OFFSET 0 0 1 }"] * 9_999 + ["}", "MOTION", "Frames: 2000", "Frame Time: 0.04"] + ["0"] * 2000
    (tmp_path / "wide.bvh").write_text("\n".join(lines) + "\n")
    with pytest.raises(JointposeError, match=r"2000 frames of 10000 joints hold more than the 4000 bytes"):
        read_bvh(tmp_path / "wide.bvh")


def test_bvh_reading_takes_a_few_times_the_file_size(tmp_path):
    """A 3 MB capture of 31 joints: its values are parsed from the bytes, not through a Python
    object per value (which took 9 times the file's size besides the motion read)."""
    lines = [
        "HIERARCHY",
        "ROOT j0",
        "{",
        "OFFSET 0 0 0",
        "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
    ]
    for j in range(1, 31):
        lines += [f"JOINT j{j}", "{", "OFFSET 0 1 0", "CHANNELS 3 Zrotation Xrotation Yrotation"]
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * 31
    values = np.random.default_rng(0).uniform(-180, 180, (3000, 96))
    lines += ["MOTION", "Frames: 3000", "Frame Time: 0.008333"] + [" ".join(f"{v:.6f}" for v in row) for row in values]
    path = tmp_path / "long.bvh"
    path.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        motion = read_bvh(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert motion.num_frames == 3000
    assert (
        peak - motion.rotations.nbytes - motion.translations.nbytes < 6 * path.stat().st_size
    )  # 3 times now, 9 before


def test_sparse_detections_are_refused_before_per_frame_work(tmp_path):
    """A detection every 300 frames passes the file-wide gap check, but each is a track of its own."""
    entry = {"keypoints": [500.0, 500.0, 0.9] * 17, "score": 1.0}
    (tmp_path / "s.json").write_text(json.dumps([{**entry, "image_id": i} for i in range(0, 3001, 300)]))
    with pytest.raises(
        JointposeError, match=r"no person can be followed through the 3001 frames.*frames 1500-1500, leaves 1500 frames"
    ):
        load_keypoints(tmp_path / "s.json")


def test_json_integer_beyond_pythons_digit_limit(tmp_path):
    (tmp_path / "k.json").write_text('[{"image_id": 0, "keypoints": [' + "1" * 5000 + "]}]")
    with pytest.raises(JointposeError, match=r"k\.json: not valid JSON \(Exceeds the limit"):
        load_keypoints(tmp_path / "k.json")


def test_model_arguments_with_a_deep_shared_value_are_reported_briefly(tmp_path):
    model = TemporalModel([3], channels=8).eval()
    deep = restricted_loads(b"\x80\x02" + _doubling(60) + b".")
    args = {"filter_widths": [3], "channels": deep, "dropout": 0.25, "causal": False}
    path = tmp_path / "c.pt"
    torch.save({"format": FORMAT, "model": model.state_dict(), "model_args": args, "config": {}, "epoch": 0}, path)
    with pytest.raises(JointposeError, match="model argument 'channels' must be a number") as info:
        load_model(path, device="cpu")
    assert len(str(info.value)) < 400


def test_checkpoint_records_torch_never_writes_are_refused(tmp_path):
    """A deflated record of 10**9 zeros is 1 MB; torch would inflate it (and more than once,
    were several entries to point at it)."""
    path = tmp_path / "c.pt"
    torch.save({"format": FORMAT, "w": torch.zeros(1000)}, path)
    deflated = tmp_path / "d.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(deflated, "w") as archive:
        for member in source.infolist():
            compress = zipfile.ZIP_DEFLATED if "/data/" in member.filename else zipfile.ZIP_STORED
            archive.writestr(member.filename, source.read(member), compress_type=compress)
    check_checkpoint_pickle(path)  # as torch.save wrote it
    with pytest.raises(JointposeError, match=r"d\.pt: a compressed record \(torch.save writes none\)"):
        load_checkpoint(deflated)


def _dataset(folder, positions, **entries):
    folder.mkdir(exist_ok=True)
    np.savez(folder / "data_2d_h36m_x.npz", positions_2d=np.array(positions, dtype=object), **entries)
    return folder


@pytest.mark.parametrize(
    "positions, entries, needle",
    [
        # 4 MB of uint8 as 8 views: 256 MB once read as float64
        (
            {"S1": {"Walking": [np.zeros((1, 2_000_000, 2), np.uint8)] * 8}},
            {},
            "repeats its arrays as more clips than its 4000000 bytes",
        ),
        ({"S1": {"Walking": [np.zeros((10, 100, 2), np.float32)] * 4}}, {}, "at most 64 joints, got shape"),
        ({10**5000: {}, "S1": {}}, {}, "must name its subjects and actions with strings"),
        (
            {"S1": {"Walking": [np.zeros((10, 17, 2))] * 4}},
            {"fps": np.array(10**400, dtype=object)},
            "'fps' must be one number, got object",
        ),
    ],
    ids=["uint8 repeated", "joints", "integer key", "fps beyond a float"],
)
def test_dataset_files_refused_before_their_arrays_are_converted(tmp_path, positions, entries, needle):
    folder = _dataset(tmp_path / "d", positions, **entries)
    with pytest.raises(JointposeError, match=needle):
        load_dataset(folder, "x", ["S1"], require_3d=False)


def test_a_camera_id_shared_through_the_memo_is_refused(tmp_path):
    """``str()`` of a 26-level doubled tuple took 14 s and 1 GB; an id is a string or a number."""
    deep = restricted_loads(b"\x80\x02" + _doubling(26) + b".")
    intrinsic = {"id": deep, "res_w": 1000, "res_h": 1000, "focal_length": [1000, 1000], "center": [500, 500]}
    cameras = {"intrinsic": [intrinsic], "extrinsic": {"S1": [{"orientation": [1, 0, 0, 0], "translation": [0, 0, 0]}]}}
    positions = {"S1": {"Walking": [np.zeros((10, 17, 2))]}}
    folder = _dataset(tmp_path / "d", positions, cameras=np.array(cameras, dtype=object))
    with pytest.raises(JointposeError, match="a camera id must be a string or a whole number, got tuple"):
        load_dataset(folder, "x", ["S1"], require_3d=False)


@pytest.mark.parametrize("widths", [(15,) * 6, (15,) * 8, (5,) * 6])
def test_a_tiny_model_file_with_a_vast_receptive_field_is_refused(tmp_path, monkeypatch, widths):
    """One channel keeps the weights of 15**8 = 2.6e9 frames in 11 kB; inference would pad a
    sequence to that many frames. At most 3**8 = 6561 frames (27 times VideoPose3D's 243)."""
    with monkeypatch.context() as patch:  # the constructor refuses such a model: crafted past its check
        patch.setattr("jointpose.model.temporal._check_args", lambda *args: None)
        wide = TemporalModel(widths, channels=1)
    save_model(tmp_path / "wide.safetensors", LoadedModel(wide))
    with pytest.raises(JointposeError, match=r"wide.safetensors: model argument 'filter_widths' must be .* up to 6561"):
        load_model(tmp_path / "wide.safetensors", device="cpu")
    load_model(save_model(tmp_path / "ok.safetensors", LoadedModel(TemporalModel((3,) * 8, channels=1))), device="cpu")


def test_a_keypoint_no_ray_reaches_through_the_datasets_own_lens_names_the_view(tmp_path):
    """A dataset's own calibration with a strong barrel lens (k1 = -0.5, f = 500 px): a keypoint
    773 px right of the centre lies where that lens folds back (it reaches 272 px at most). The
    error names the camera, and the file and view that hold the keypoint."""
    intrinsic = {
        "id": "wide",
        "res_w": 1000,
        "res_h": 1000,
        "focal_length": [500.0, 500.0],
        "center": [500.0, 500.0],
        "radial_distortion": [-0.5, 0.0, 0.0],
    }
    cameras = {"intrinsic": [intrinsic], "extrinsic": {"S1": [{"orientation": [1, 0, 0, 0], "translation": [0, 0, 0]}]}}
    view = np.full((10, 17, 2), 500.0) + np.random.default_rng(0).normal(0, 20, (10, 17, 2))
    view[3, 4] = [1273.0, 500.0]
    folder = _dataset(tmp_path / "d", {"S1": {"Walking": [view]}}, cameras=np.array(cameras, dtype=object))
    with pytest.raises(
        JointposeError, match=r"\['S1'\]\['Walking'\]\[0\]: camera wide: no ray reaches pixel \(1273, 500\)"
    ):
        load_dataset(folder, "x", ["S1"], require_3d=False, normalization="intrinsics")
