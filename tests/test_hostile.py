"""Hostile and careless input on the command line (issue 25): every case ends with exit code 2,
exactly one line on stderr, no traceback, no output file changed, no temporary file left,
and stays within a 2 GiB address space (each case runs in its own process under
``RLIMIT_AS``; a case that tried to allocate more would die with MemoryError's traceback).
The cases' processes run side by side, one per core.

Each case costs a process start and a torch import (about 2 s of CPU); the table holds one
case per way of failing, not every variant (those are unit-tested beside their code).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import struct
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from safetensors_plain import save_with_weight

ADDRESS_SPACE = 2 * 2**30  # bytes; a full `infer` of the bundled model peaks near 1 GiB
PREVIOUS = b"the previous, good result"
IMAGE = ["--image-size", "1000", "1000"]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _limit_file_size() -> None:  # a full disk: writes past 4 kB fail with EFBIG
    _limit_memory()
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


# ----------------------------------------------------------------------------- input files


def _npz_with_pickle(path: Path, pickle_bytes: bytes) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("keypoints.npy", buffer.getvalue() + pickle_bytes)


def _zip_bomb(path: Path) -> None:
    """1 MB of zeros in about 1 kB, its declared size raised to 3 GB (what a real bomb declares)."""
    np.savez_compressed(path, keypoints=np.zeros(125_000))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.infolist()[0].header_offset
    central = raw.rindex(b"PK\x01\x02")
    for offset in (local + 22, central + 24):
        raw[offset : offset + 4] = struct.pack("<I", 3_000_000_000)
    path.write_bytes(bytes(raw))


def _huge_npy(path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 17, 2)})
    path.write_bytes(header.getvalue() + bytes(1024))


def _bvh(frames: str = "2", frame_time: str = "0.02", joints: int = 1) -> str:
    lines = ["HIERARCHY"]
    for j in range(joints):
        lines += [
            f"{'ROOT' if j == 0 else 'JOINT'} j{j}",
            "{",
            f"OFFSET 0 {min(j, 1)} 0",
            "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"
            if j == 0
            else "CHANNELS 3 Zrotation Yrotation Xrotation",
        ]
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * joints
    row = " ".join(["0"] * (6 + 3 * (joints - 1)))
    return "\n".join(lines + ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}", row, row]) + "\n"


def _bvh_folder(root: Path, text: str) -> Path:
    (root / "001").mkdir(parents=True)
    (root / "001" / "clip.bvh").write_text(text)
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Every hostile input, written once."""
    from jointpose.inference.lifter import Lifter
    from jointpose.model.temporal import TemporalModel

    d = tmp_path_factory.mktemp("hostile-inputs")
    keypoints = np.random.default_rng(0).uniform(100, 900, (30, 17, 2))
    np.save(d / "ok.npy", keypoints)
    far = keypoints.copy()
    far[7, 3, 0] = 1e300  # finite in float64, infinite in float32
    np.save(d / "far.npy", far)
    _npz_with_pickle(d / "memo.npz", b"\x80\x02N" + b"r" + struct.pack("<I", 2**26) + b".")
    assert (d / "memo.npz").stat().st_size < 300
    _zip_bomb(d / "bomb.npz")
    _huge_npy(d / "huge.npy")
    entry = {"keypoints": [500.0, 500.0, 0.9] * 17, "score": 1.0}
    (d / "span.json").write_text(json.dumps([{**entry, "image_id": 0}, {**entry, "image_id": 2_000_000}]))
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    torch.manual_seed(0)
    model = TemporalModel((3, 3), channels=16, causal=True).eval()
    Lifter(model).save(d / "ok.safetensors")
    save_with_weight(Lifter(model), d / "nan.safetensors", "pose.shrink.weight", (0, 0, 0), float("nan"))
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(d / "ok.safetensors"), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    args = {**json.loads(meta["model_args"]), "channels": 10**9}
    save_file(tensors, str(d / "crafted.safetensors"), metadata={**meta, "model_args": json.dumps(args)})
    _bvh_folder(d / "bvh_frames", _bvh(frames="100000000000000000000"))
    _bvh_folder(d / "bvh_time", _bvh(frame_time="1e300"))
    _bvh_folder(d / "bvh_chain", _bvh(joints=9_999))
    _bvh_folder(d / "bvh_ok", _bvh())
    (d / "a_file").write_text("not a folder")
    np.savez(d / "poses.npz", poses_3d=np.random.default_rng(1).normal(0, 0.3, (30, 17, 3)), fps=np.array(50.0))
    os.mkfifo(d / "fifo.json")  # read, a FIFO blocks until someone writes
    (d / "openpose").mkdir()
    (d / "openpose" / "a_keypoints.json").write_text('{"people": []}')
    (d / "openpose" / "b_keypoints.json").symlink_to("/dev/zero")  # read, it never ends
    _bvh_folder(d / "bvh_fifo", _bvh())
    os.mkfifo(d / "bvh_fifo" / "001" / "a.bvh")  # read before clip.bvh
    _bvh_folder(d / "bvh_index", _bvh())
    (d / "bvh_index" / "index.csv").write_bytes(b"file,description\n\xff,x\n")
    (d / "latin1_rig.json").write_bytes(b"\xff\xfe{}")
    return d


# ----------------------------------------------------------------------------- the table

# name -> (arguments with {in} for the inputs folder and {out} for the case's own folder,
#          what stderr must say, pre-process hook)
CASES = {
    "a FIFO as keypoints": (
        ["infer", "{in}/fifo.json", "-o", "{out}/out.npz", *IMAGE],
        r"fifo\.json: not a regular file",
        None,
    ),
    "/dev/zero in an OpenPose folder": (
        ["infer", "{in}/openpose", "-o", "{out}/out.npz", *IMAGE],
        r"b_keypoints\.json: not a regular file",
        None,
    ),
    "a FIFO as --rig": (
        ["data", "build", "--bvh", "{in}/bvh_ok", "--out", "{out}/ds", "--rig", "{in}/fifo.json"],
        r"fifo\.json: not a regular file",
        None,
    ),
    "a FIFO among BVH files": (
        ["data", "build", "--bvh", "{in}/bvh_fifo", "--out", "{out}/ds"],
        r"001/a\.bvh: not a regular file",
        None,
    ),
    "index.csv not UTF-8": (
        ["data", "build", "--bvh", "{in}/bvh_index", "--out", "{out}/ds"],
        r"index\.csv: not a UTF-8 text file",
        None,
    ),
    "rig mapping not UTF-8": (
        ["data", "build", "--bvh", "{in}/bvh_ok", "--out", "{out}/ds", "--rig", "{in}/latin1_rig.json"],
        r"latin1_rig\.json: not a UTF-8 text file",
        None,
    ),
    "argparse error": (["infer", "{in}/ok.npy"], r"required: -o/--output \(see 'jointpose infer --help'\)", None),
    "bad flag value": (["infer", "{in}/ok.npy", "-o", "{out}/out.npz", "--fps", "fast"], r"invalid float value", None),
    "pickle memo 2**26 (261 bytes)": (
        ["infer", "{in}/memo.npz", "-o", "{out}/out.npz", *IMAGE],
        r"memo index 67108864 exceeds the limit",
        None,
    ),
    "zip bomb": (["infer", "{in}/bomb.npz", "-o", "{out}/out.npz", *IMAGE], r"bomb\.npz: arrays decompressed", None),
    "npy header of 10**11 frames": (
        ["infer", "{in}/huge.npy", "-o", "{out}/out.npz", *IMAGE],
        r"huge\.npy of shape \(100000000000, 17, 2\)",
        None,
    ),
    "image_id 0 and 2,000,000": (
        ["infer", "{in}/span.json", "-o", "{out}/out.npz", *IMAGE],
        r"no detection in frames 1-1999999",
        None,
    ),
    "JSON nested 100k deep": (["infer", "{in}/deep.json", "-o", "{out}/out.npz", *IMAGE], r"nested too deeply", None),
    "--fps 1e-9": (
        ["infer", "{in}/ok.npy", "-o", "{out}/out.npz", *IMAGE, "--fps", "1e-9"],
        r"--fps: 1e-09 frames per second is outside",
        None,
    ),
    "image size 10**400": (
        ["infer", "{in}/ok.npy", "-o", "{out}/out.npz", "--image-size", "1" + "0" * 400, "9"],
        r"--image-size must be",
        None,
    ),
    "1e300 coordinates": (
        ["infer", "{in}/far.npy", "-o", "{out}/out.npz", *IMAGE],
        r"far\.npy: a coordinate beyond 1e\+09 px or an infinite value at frame 7",
        None,
    ),
    "NaN weights": (
        ["infer", "{in}/ok.npy", "-o", "{out}/out.npz", *IMAGE, "--checkpoint", "{in}/nan.safetensors"],
        r"nan\.safetensors: 1 weight tensor\(s\) hold NaN",
        None,
    ),
    "crafted safetensors metadata": (
        ["infer", "{in}/ok.npy", "-o", "{out}/out.npz", *IMAGE, "--checkpoint", "{in}/crafted.safetensors"],
        r"'channels' must be a number in",
        None,
    ),
    "unreadable --video": (
        [
            "infer",
            "{in}/ok.npy",
            "-o",
            "{out}/out.npz",
            *IMAGE,
            "--render",
            "{out}/a.gif",
            "--video",
            "{in}/missing.mp4",
        ],
        r"missing\.mp4: no such file",
        None,
    ),
    "full disk while a GIF is written": (
        [
            "render",
            "-o",
            "{out}/r.gif",
            "--keypoints-file",
            "{in}/ok.npy",
            "--poses",
            "{in}/poses.npz",
            *IMAGE,
            "--no-progress",
        ],
        r"cannot write .*r\.gif: File too large$",
        _limit_file_size,
    ),
    "full disk while an MP4 is written": (
        [
            "render",
            "-o",
            "{out}/r.mp4",
            "--keypoints-file",
            "{in}/ok.npy",
            "--poses",
            "{in}/poses.npz",
            *IMAGE,
            "--no-progress",
        ],
        r"cannot write .*r\.mp4: the video holds \d+ of its 30 frames \(is the disk full\?\)$",
        _limit_file_size,
    ),
    "full disk": (
        ["infer", "{in}/ok.npy", "-o", "{out}/out.json", *IMAGE, "--no-progress"],
        r"cannot write .*out\.json: File too large",
        _limit_file_size,
    ),
    "-o in a file": (["infer", "{in}/ok.npy", "-o", "{in}/a_file/out.npz", *IMAGE], r"a_file is not a folder", None),
    "train --checkpoint names a file": (
        ["train", "--data-dir", "{in}", "--checkpoint", "{out}/out.npz"],
        r"--checkpoint .*out\.npz: is a file, not a folder",
        None,
    ),
    "data build --out in a file": (
        ["data", "build", "--bvh", "{in}/bvh_ok", "--out", "{in}/a_file/ds"],
        r"--out .*a_file is not a folder",
        None,
    ),
    "BVH Frames: 10**20": (
        ["data", "build", "--bvh", "{in}/bvh_frames", "--out", "{out}"],
        r"'Frames:': 1e\+20 exceeds",
        None,
    ),
    "BVH Frame Time 1e300": (
        ["data", "build", "--bvh", "{in}/bvh_time", "--out", "{out}"],
        r"'Frame Time: 1e\+300': 1e-300 frames per second",
        None,
    ),
    "10,000-joint BVH chain": (
        ["data", "build", "--bvh", "{in}/bvh_chain", "--out", "{out}"],
        r"clip\.bvh: no built-in rig mapping",
        None,
    ),
    "--subjects A=S1,A=S5": (
        ["data", "build", "--bvh", "{in}/bvh_ok", "--out", "{out}", "--subjects", "001=S1,001=S5"],
        r"folder '001' is named twice",
        None,
    ),
    "demo --fps 0": (["demo", "--out", "{out}", "--fps", "0"], r"--fps must be a positive number", None),
    "demo --animation ../../x.gif": (
        ["demo", "--out", "{out}", "--animation", "../../x.gif"],
        r"must be a file name inside --out",
        None,
    ),
    "evaluate --json in a file": (
        ["evaluate", "--data-dir", "{in}", "--checkpoint", "{in}/ok.safetensors", "--json", "{in}/a_file/r.json"],
        r"--json .*a_file is not a folder",
        None,
    ),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@dataclass
class Outcome:
    result: subprocess.CompletedProcess
    before: dict[str, str]
    after: dict[str, str]


def _run_case(name: str, inputs: Path, out: Path) -> Outcome:
    argv, _, hook = CASES[name]
    out.mkdir()
    for previous in ("out.npz", "out.json"):
        (out / previous).write_bytes(PREVIOUS)
    before = {f"out/{k}": v for k, v in _snapshot(out).items()}
    args = [a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in argv]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    result = subprocess.run(
        [sys.executable, "-m", "jointpose", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=hook or _limit_memory,
        timeout=300,
    )
    return Outcome(result, before, {f"out/{k}": v for k, v in _snapshot(out).items()})


@pytest.fixture(scope="module")
def outcomes(request, inputs, tmp_path_factory) -> dict[str, Outcome]:
    """The selected cases, run side by side, one single-threaded process per core (each
    case's process is alone with its limits and its own output folder), with a snapshot of
    the inputs before and after them all."""
    names = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_hostile_case"
    ]
    before = _snapshot(inputs)
    root = tmp_path_factory.mktemp("hostile-outputs")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        runs = {name: pool.submit(_run_case, name, inputs, root / f"case{i}") for i, name in enumerate(names)}
    outcomes = {name: run.result() for name, run in runs.items()}
    assert _snapshot(inputs) == before  # no case changed an input
    return outcomes


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name, outcomes):
    _, needle, _ = CASES[name]
    outcome = outcomes[name]
    err = outcome.result.stderr.strip()
    assert outcome.result.returncode == 2, (outcome.result.returncode, err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    assert re.search(needle, err), err
    assert outcome.after == outcome.before  # nothing written, nothing changed, no temporary file left
