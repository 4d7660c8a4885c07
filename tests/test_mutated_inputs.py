"""Inputs a mutation fuzzer found (valid files with a byte, a number or a name changed) that
raised something other than one named ``JointposeError``: each is refused on one line now."""

import io
import json
import struct
import warnings
import zipfile

import numpy as np
import pytest
import torch

from jointpose.cli import main
from jointpose.data.keypoints import load_keypoints
from jointpose.errors import JointposeError
from jointpose.geometry.cameras import Camera
from jointpose.inference.lifter import Lifter
from jointpose.model.loading import FORMAT
from jointpose.model.temporal import TemporalModel
from jointpose.motion.bvh import read_bvh
from jointpose.safeio import check_limit, load_npy, load_npz
from jointpose.training.checkpoint import atomic_save

COCO_OK = {
    "image_id": 1,
    "keypoints": [v for j in range(17) for v in (100.0 + 5 * j, 200.0 + 10 * j, 0.9)],
    "score": 0.9,
}


def _npy(header: str, data: bytes) -> bytes:
    """A version 1.0 ``.npy`` file with ``header`` as its (padded) header text."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


@pytest.mark.parametrize(
    "header, data, needle",
    [
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 17, 3), '", b"\0" * 408, "is not a valid .npy array"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (" + "9" * 310 + ",), }", b"\0" * 8, "exceeds the limit"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (True,), }", b"\0" * 8, r"invalid shape \(True,\)"),
    ],
    ids=["unterminated header", "310-digit shape", "bool in the shape"],
)
def test_npy_headers(tmp_path, header, data, needle):
    path = tmp_path / "k.npy"
    path.write_bytes(_npy(header, data))
    with pytest.raises(JointposeError, match=needle) as caught:
        load_npy(path)
    assert str(caught.value).count(str(path)) == 1


@pytest.mark.parametrize("archived", [False, True])
def test_an_npy_header_claiming_gigabytes_is_refused_before_it_is_read(tmp_path, archived):
    """13 bytes can claim a 4 GiB header, which numpy would read before its own size check."""
    raw = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{"
    if archived:
        with zipfile.ZipFile(tmp_path / "k.npz", "w") as archive:
            archive.writestr("keypoints.npy", raw)
    else:
        (tmp_path / "k.npy").write_bytes(raw)
    with pytest.raises(JointposeError, match=r"k\.np[yz].*: its \.npy header claims 4294967295 bytes, more than 10000"):
        (load_npz if archived else load_npy)(tmp_path / ("k.npz" if archived else "k.npy"))


def test_npz_archives_zipfile_cannot_open(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("keypoints.npy", b"x")
    raw = bytearray(buffer.getvalue())
    raw[raw.rfind(b"PK\x01\x02") + 6] = 148  # the central directory's "version needed": 14.8
    (tmp_path / "v.npz").write_bytes(bytes(raw))
    with pytest.raises(JointposeError, match=r"v\.npz: not a valid \.npz archive \(zip file version 14\.8\)"):
        load_npz(tmp_path / "v.npz")


def test_a_key_with_a_line_break_is_shown_on_one_line(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "k.npz", "w") as archive:
        archive.writestr("key\npoints.npy", b"not an array")
    with pytest.raises(JointposeError, match=r"key 'key\\npoints' is not a valid \.npy array"):
        load_npz(tmp_path / "k.npz")
    # Other messages quote the file's keys as they are; the command line escapes line breaks.
    args = ["infer", str(tmp_path / "k.npz"), "-o", str(tmp_path / "o.npz"), "--image-size", "1000", "1000"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jointpose infer: error: ") and "\\n" in err


def test_limits_show_numbers_too_large_for_a_float():
    with pytest.raises(JointposeError, match=r"frames: 1\.000e\+400 exceeds the limit"):
        check_limit("frames", 10**400, "frames")
    with pytest.raises(JointposeError, match="nan exceeds the limit"):
        check_limit("frames", float("nan"), "frames")


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"keypoints": [10**400, 200.0, 0.9] + [100.0, 200.0, 0.9] * 16}, "holds a number too large for a float"),
        ({"keypoints": [1e308, 200.0, 0.9] + [100.0, 200.0, 0.9] * 16}, r"holds a value beyond 1e\+09"),
    ],
    ids=["integer beyond a float", "1e308 px"],
)
def test_coco_numbers_out_of_range(tmp_path, change, needle):
    (tmp_path / "d.json").write_text(json.dumps([{**COCO_OK, **change}]))
    with pytest.raises(JointposeError, match=needle):
        load_keypoints(tmp_path / "d.json")


def test_coco_integer_score_beyond_int64_is_a_score(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps([{**COCO_OK, "score": 2**64}]))
    assert load_keypoints(tmp_path / "d.json").num_frames == 1


def test_openpose_head_from_one_far_eye_is_refused_not_infinite(tmp_path):
    """OpenPose BODY_25 with the left eye at y = 1e308: the head built from it overflowed to inf."""
    pose = [100.0, 200.0, 0.9] * 25
    pose[16 * 3 + 1], pose[15 * 3 + 2] = 1e308, 0.0  # l_eye far away, r_eye missing
    (tmp_path / "f_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": pose}]}))
    with pytest.raises(JointposeError, match=r"'pose_keypoints_2d': holds a value beyond 1e\+09"):
        load_keypoints(tmp_path / "f_keypoints.json")


@pytest.mark.parametrize(
    "line, needle",
    [
        ("CHANNELS 99999999999999999999", "CHANNELS count"),
        ("Frames: 1" + "0" * 400, r"'Frames:': 1\.000e\+400 exceeds the limit"),
    ],
    ids=["channel count", "frame count"],
)
def test_bvh_integers_beyond_a_float(tmp_path, line, needle):
    key = line.split()[0]
    text = "\n".join(
        [
            "HIERARCHY",
            "ROOT Hips",
            "{",
            "  OFFSET 0 0 0",
            "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
            "  End Site",
            "  {",
            "    OFFSET 0 10 0",
            "  }",
            "}",
            "MOTION",
            "Frames: 1",
            "Frame Time: 0.02",
            "0 0 0 0 0 0",
            "",
        ]
    )
    text = text.replace("CHANNELS 6", line, 1) if key == "CHANNELS" else text.replace("Frames: 1", line, 1)
    (tmp_path / "c.bvh").write_text(text)
    with pytest.raises(JointposeError, match=needle):
        read_bvh(tmp_path / "c.bvh")


def _checkpoint(tmp_path, **changes):
    model = TemporalModel([3], channels=8, causal=True).eval()
    args = {
        "filter_widths": [3],
        "channels": 8,
        "dropout": 0.25,
        "causal": True,
        "num_joints_in": 17,
        "in_features": 2,
        "num_joints_out": 17,
    }
    ckpt = {"format": FORMAT, "model": model.state_dict(), "model_args": args, "config": {}, "epoch": 1}
    return atomic_save({**ckpt, **changes}, tmp_path / "latest.pt")


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"averaged_model": {}}, r"'averaged_model' is malformed"),
        ({"config": {"constraints": True, "smooth": "wide"}}, r"config 'smooth' is not a number"),
        ({"config": {"constraints": True, "align_2d": "far"}}, r"config 'align_2d' must be a number in \[0, 1\]"),
        ({"config": {"constraints": True, "align_2d": 1e400}}, r"config 'align_2d' must be a number in \[0, 1\]"),
        ({"fps": 2**64}, r"'fps': 1\.845e\+19 frames per second is outside"),
        ({"trajectory_model": {"w": torch.zeros(1)}}, "model arguments must be a dict, got NoneType"),
        ({"input_layout": "yolo"}, r"checkpoint 'input_layout' must be one of h36m, coco, blazepose or 'NAME order'"),
        ({"input_layout": "x" * 200 + " order"}, r"checkpoint 'input_layout' must be one of .*, got 'xxx"),
    ],
    ids=[
        "averaged weights",
        "smooth",
        "align_2d text",
        "align_2d infinite",
        "fps",
        "trajectory without its arguments",
        "input_layout",
        "input_layout too long",
    ],
)
def test_checkpoint_fields(tmp_path, changes, needle):
    path = _checkpoint(tmp_path, **changes)
    with pytest.raises(JointposeError, match=needle):
        Lifter.load(path, device="cpu")


def test_safetensors_smooth_beyond_a_float(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Lifter(TemporalModel([3], channels=8).eval()).save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(tensors, str(path), metadata={**meta, "smooth": "1" * 400})
    with pytest.raises(JointposeError, match=r"metadata 'smooth' is not a number"):
        Lifter.load(path, device="cpu")


def test_safetensors_input_layout_of_no_known_kind(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Lifter(TemporalModel([3], channels=8).eval(), input_layout="coco").save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(tensors, str(path), metadata={**meta, "input_layout": "coco17"})
    with pytest.raises(JointposeError, match=r"m.safetensors: metadata 'input_layout' must be one of .*, got 'coco17'"):
        Lifter.load(path, device="cpu")


def test_complex_weights_are_refused_without_a_warning(tmp_path):
    """A model file whose weight is complex: torch's cast warned and dropped the imaginary part."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Lifter(TemporalModel([3], channels=8).eval()).save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    key = "pose.expand_conv.weight"
    tensors[key] = tensors[key].to(torch.complex64)
    save_file(tensors, str(path), metadata=meta)
    state = TemporalModel([3], channels=8, causal=True).state_dict()
    state["expand_conv.weight"] = state["expand_conv.weight"].to(torch.complex64)
    checkpoint = _checkpoint(tmp_path, model=state)
    for source, name in ((path, key.removeprefix("pose.")), (checkpoint, "expand_conv.weight")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(JointposeError, match=rf"weight '{name}' is of dtype torch.complex64, not real numbers"):
                Lifter.load(source, device="cpu")


def test_half_precision_model_loads_as_float32(tmp_path):
    """Weights stored as float16 are cast on loading, to the values the model was saved with."""
    model = TemporalModel([3], channels=8).eval()
    path = Lifter(model).save(tmp_path / "m.safetensors", half=True)
    loaded = Lifter.load(path, device="cpu").model
    for (name, saved), got in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert got.dtype == saved.dtype, name
        torch.testing.assert_close(got, saved.half().to(saved.dtype), rtol=0, atol=0)


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"focal_length": (-1000.0, 1000.0)}, "focal length must be positive"),
        ({"res_w": 10**400}, r"resolution: 1\.000e\+400 exceeds the limit"),
        ({"res_w": "1000"}, r"camera c: resolution must be positive whole pixels, got '1000'x1000"),
        ({"res_h": 1000.0}, r"resolution must be positive whole pixels, got 1000x1000.0"),
        ({"focal_length": 1000.0}, r"camera c: focal_length must be 2 finite numbers, got 1000.0"),
        ({"center": (500.0, "500")}, r"center must be 2 finite numbers"),
        ({"radial_distortion": (0.1, 0.0)}, r"radial_distortion must be 3 finite numbers"),
        ({"tangential_distortion": None}, r"tangential_distortion must be 2 finite numbers, got None"),
        ({"orientation": (1.0, 0.0, 0.0)}, r"orientation must be 4 finite numbers"),
        ({"translation": (0.0, 0.0, float("nan"))}, r"translation must be 3 finite numbers"),
    ],
    ids=[
        "negative focal length",
        "400-digit width",
        "text width",
        "fractional height",
        "one focal length",
        "text centre",
        "two radial",
        "no tangential",
        "three-number quaternion",
        "NaN translation",
    ],
)
def test_cameras_out_of_range(fields, needle):
    base = {"id": "c", "res_w": 1000, "res_h": 1000, "focal_length": (1000.0, 1000.0), "center": (500.0, 500.0)}
    with pytest.raises(JointposeError, match=needle):
        Camera(**{**base, **fields})
    assert np.isfinite(Camera(**base).focal_length).all()
    # Arrays and numpy numbers are taken, kept as plain tuples of floats (the camera stays hashable).
    arrays = Camera(**{**base, "res_w": np.int64(1000), "center": np.array([500, 500]), "translation": np.zeros(3)})
    assert arrays == Camera(**{**base, "translation": (0.0, 0.0, 0.0)}) and hash(arrays) == hash(Camera(**base))
