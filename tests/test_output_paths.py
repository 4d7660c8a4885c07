"""Output paths on the command line: outputs that are not regular files, symlinks, outputs
that would replace an input or each other, outputs checked before the work, and no folder
left behind by a failed write. Every refusal is exit code 2 with one line naming the flags."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from jointpose.cli import main
from jointpose.errors import JointposeError
from jointpose.safeio import atomic_folder, atomic_write, check_output_path

IMAGE = ["--image-size", "1000", "1000"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """2D keypoints (and a hard link to them), a small model (fast to run, and a symlink to it),
    and stand-ins for a checkpoint run folder, a dataset and videos (refused before they are read)."""
    from jointpose.inference.lifter import Lifter
    from jointpose.model.temporal import TemporalModel

    d = tmp_path_factory.mktemp("output-paths")
    np.save(d / "ok.npy", np.random.default_rng(0).uniform(100, 900, (30, 17, 2)))
    torch.manual_seed(0)
    Lifter(TemporalModel((3, 3), channels=16, causal=True).eval()).save(d / "small.safetensors")
    (d / "run").mkdir()
    (d / "run" / "latest.pt").write_bytes(b"a checkpoint")
    (d / "ds").mkdir()
    (d / "ds" / "data_2d_h36m_noisy.npz").write_bytes(b"a dataset")
    (d / "clip.mp4").write_bytes(b"a video")
    (d / "v.gif").write_bytes(b"a video to draw over")
    (d / "op").mkdir()
    (d / "op" / "f_000000000000_keypoints.json").write_text('{"people": []}')
    os.link(d / "ok.npy", d / "hard.npy")
    os.symlink("small.safetensors", d / "model.onnx")
    return d


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content's hash ('dir', 'link -> target' or the file type otherwise)."""
    found = {}
    for p in sorted(folder.rglob("*")):
        mode = os.lstat(p).st_mode
        if stat.S_ISLNK(mode):
            found[str(p.relative_to(folder))] = f"link -> {os.readlink(p)}"
        elif stat.S_ISREG(mode):
            found[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            found[str(p.relative_to(folder))] = "dir" if stat.S_ISDIR(mode) else f"mode {stat.S_IFMT(mode):o}"
    return found


def _refused(capsys, argv: list[str], *needles: str) -> None:
    """``jointpose argv`` exits with 2 and one line holding every needle."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


# ----------------------------------------------------------------------------- 1. not a regular file


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "fifo.csv")
    return folder / "fifo.csv"


def _socket(folder: Path) -> Path:
    path = folder / "s.csv"
    if len(str(path)) > 100:
        pytest.skip("tmp_path too long for a socket address")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
    return path


def _link_to_fifo(folder: Path) -> Path:
    os.symlink(_fifo(folder), folder / "link.csv")
    return folder / "link.csv"


def _folder(folder: Path) -> Path:
    (folder / "d.csv").mkdir()
    return folder / "d.csv"


@pytest.mark.parametrize(
    "make, kind",
    [(_fifo, "is a FIFO"), (_socket, "is a socket"), (_link_to_fifo, "is a FIFO"), (_folder, "is a folder")],
)
def test_outputs_that_are_not_regular_files_are_refused(tmp_path, make, kind):
    path = make(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(JointposeError, match=f"^-o {path}: {kind}"):
        check_output_path(path, "-o")
    with pytest.raises(JointposeError, match=f"^cannot write {path}: {kind}"):
        with atomic_write(path, "w") as handle:
            handle.write("x")
    assert _snapshot(tmp_path) == before


def test_infer_refuses_a_fifo_output_and_leaves_it(tmp_path, inputs, capsys):
    fifo = _fifo(tmp_path)
    argv = ["infer", str(inputs / "ok.npy"), "-o", str(fifo), "--format", "csv", *IMAGE]
    _refused(capsys, [*argv, "--checkpoint", str(inputs / "small.safetensors")], f"-o {fifo}: is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["fifo.csv"]


def test_a_symlink_output_is_written_through_to_its_target(tmp_path, inputs):
    (tmp_path / "target.csv").write_text("old")
    os.symlink("target.csv", tmp_path / "link.csv")
    os.symlink("new.csv", tmp_path / "dangling.csv")
    for name in ("link.csv", "dangling.csv", "plain.csv"):
        argv = ["infer", str(inputs / "ok.npy"), "-o", str(tmp_path / name), *IMAGE, "--no-progress"]
        assert main([*argv, "--checkpoint", str(inputs / "small.safetensors")]) == 0
    assert os.readlink(tmp_path / "link.csv") == "target.csv"
    assert os.readlink(tmp_path / "dangling.csv") == "new.csv"
    plain = (tmp_path / "plain.csv").read_text()
    assert plain.startswith("frame,joint,x,y,z\n") and len(plain.splitlines()) == 1 + 30 * 17
    assert (tmp_path / "target.csv").read_text() == plain
    assert (tmp_path / "new.csv").read_text() == plain
    assert sorted(os.listdir(tmp_path)) == ["dangling.csv", "link.csv", "new.csv", "plain.csv", "target.csv"]


# ----------------------------------------------------------------------------- 2. an output replacing an input


CLASHES = {
    "infer -o its input": (
        ["infer", "{in}/ok.npy", "-o", "{in}/ok.npy", "--format", "csv", *IMAGE],
        ["-o {in}/ok.npy", "input {in}/ok.npy"],
    ),
    "infer -o a hard link to its input": (
        ["infer", "{in}/ok.npy", "-o", "{in}/hard.npy", "--format", "csv", *IMAGE],
        ["-o {in}/hard.npy", "input {in}/ok.npy"],
    ),
    "infer -o its --checkpoint": (
        ["infer", "{in}/ok.npy", "-o", "{in}/run/latest.pt", "--format", "npz", "--checkpoint", "{in}/run", *IMAGE],
        ["-o {in}/run/latest.pt", "--checkpoint {in}/run/latest.pt"],
    ),
    "infer -o a file of its OpenPose folder": (
        ["infer", "{in}/op", "-o", "{in}/op/f_000000000000_keypoints.json", *IMAGE],
        ["-o {in}/op/f_000000000000_keypoints.json", "input {in}/op/f_000000000000_keypoints.json"],
    ),
    "infer --render as -o": (
        ["infer", "{in}/ok.npy", "-o", "{out}/a.gif", "--format", "csv", "--render", "{out}/a.gif", *IMAGE],
        ["--render {out}/a.gif", "-o {out}/a.gif"],
    ),
    "video -o its input": (
        ["video", "{in}/clip.mp4", "-o", "{in}/clip.mp4", "--format", "npz"],
        ["-o {in}/clip.mp4", "input {in}/clip.mp4"],
    ),
    "evaluate --json the checkpoint in a run folder": (
        ["evaluate", "--data-dir", "{in}/ds", "--checkpoint", "{in}/run", "--json", "{in}/run/latest.pt"],
        ["--json {in}/run/latest.pt", "--checkpoint {in}/run/latest.pt"],
    ),
    "evaluate --export-predictions a dataset file": (
        [
            "evaluate",
            "--data-dir",
            "{in}/ds",
            "--checkpoint",
            "{in}/run",
            "--export-predictions",
            "{in}/ds/data_2d_h36m_noisy.npz",
        ],
        ["--export-predictions {in}/ds/data_2d_h36m_noisy.npz", "--data-dir {in}/ds/data_2d_h36m_noisy.npz"],
    ),
    "evaluate --json and --export-predictions alike": (
        [
            "evaluate",
            "--data-dir",
            "{in}/ds",
            "--checkpoint",
            "{in}/run",
            "--json",
            "{out}/x.npz",
            "--export-predictions",
            "{out}/x.npz",
        ],
        ["--export-predictions {out}/x.npz", "--json {out}/x.npz"],
    ),
    "render -o its --video": (
        [
            "render",
            "-o",
            "{in}/v.gif",
            "--keypoints-file",
            "{in}/ok.npy",
            "--poses",
            "{in}/p.npz",
            "--video",
            "{in}/v.gif",
        ],
        ["-o {in}/v.gif", "--video {in}/v.gif"],
    ),
    "export --onnx a link to its model": (
        ["export", "{in}/small.safetensors", "--onnx", "{in}/model.onnx"],
        ["--onnx {in}/model.onnx", "model {in}/small.safetensors"],
    ),
}


@pytest.mark.parametrize("name", list(CLASHES))
def test_an_output_that_is_an_input_or_another_output_is_refused(name, inputs, tmp_path, capsys):
    argv, needles = CLASHES[name]
    before = _snapshot(inputs)
    args = [a.replace("{in}", str(inputs)).replace("{out}", str(tmp_path)) for a in argv]
    _refused(capsys, args, *(n.replace("{in}", str(inputs)).replace("{out}", str(tmp_path)) for n in needles))
    assert _snapshot(inputs) == before
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- 3. outputs checked before the work


def test_video_export_and_demo_check_every_output_first(tmp_path, inputs, capsys):
    (tmp_path / "d.csv").mkdir()
    (tmp_path / "d.gif").mkdir()
    (tmp_path / "d.onnx").mkdir()
    clip, model = str(inputs / "clip.mp4"), str(inputs / "small.safetensors")
    _refused(capsys, ["video", clip, "-o", str(tmp_path / "d.csv")], f"-o {tmp_path / 'd.csv'}: is a folder")
    argv = ["video", clip, "-o", str(tmp_path / "v.npz"), "--render", str(tmp_path / "d.gif")]
    _refused(capsys, argv, f"--render {tmp_path / 'd.gif'}: is a folder")
    _refused(
        capsys, ["export", model, "--onnx", str(tmp_path / "d.onnx")], f"--onnx {tmp_path / 'd.onnx'}: is a folder"
    )
    (tmp_path / "demo" / "a.gif").mkdir(parents=True)
    argv = ["demo", "--out", str(tmp_path / "demo"), "--animation", "a.gif", "-e", "1", "-ch", "8", "--no-progress"]
    _refused(capsys, argv, f"--animation {tmp_path / 'demo' / 'a.gif'}: is a folder")
    (tmp_path / "demo2").mkdir()
    (tmp_path / "demo2" / "checkpoint").write_text("a file")
    argv = ["demo", "--out", str(tmp_path / "demo2"), "-e", "1", "-ch", "8", "--no-progress"]
    _refused(capsys, argv, f"--out {tmp_path / 'demo2' / 'checkpoint'}: is a file")
    assert sorted(_snapshot(tmp_path)) == [
        "d.csv",
        "d.gif",
        "d.onnx",
        "demo",
        "demo/a.gif",
        "demo2",
        "demo2/checkpoint",
    ]


MODEL = ["--checkpoint", "{in}/small.safetensors"]
FOLDER_NAMES = {  # a trailing separator names a folder; Path() would drop it and write the file
    "infer -o": ["infer", "{in}/ok.npy", "-o", "{out}/kept.npz/", *IMAGE, *MODEL],
    "infer --render": ["infer", "{in}/ok.npy", "-o", "{out}/new.npz", "--render", "{out}/kept.gif/.", *IMAGE, *MODEL],
    "render -o": ["render", "-o", "{out}/kept.gif/", "--keypoints-file", "{in}/ok.npy", "--poses", "{in}/p.npz"],
    "evaluate --json": ["evaluate", "--data-dir", "{in}/ds", "-k", "noisy", "--json", "{out}/kept.json/", *MODEL],
    "export --onnx": ["export", "{in}/small.safetensors", "--onnx", "{out}/kept.onnx/"],
    "video -o": ["video", "{in}/clip.mp4", "-o", "{out}/kept.bvh/"],
}


@pytest.mark.parametrize("name", list(FOLDER_NAMES))
def test_an_output_name_ending_in_a_separator_is_refused_and_the_file_kept(name, inputs, tmp_path, capsys):
    for kept in ("kept.npz", "kept.gif", "kept.json", "kept.onnx", "kept.bvh"):
        (tmp_path / kept).write_text("an earlier result")
    before = _snapshot(tmp_path)
    args = [a.replace("{in}", str(inputs)).replace("{out}", str(tmp_path)) for a in FOLDER_NAMES[name]]
    flag = next(a for a in args if "kept" in a)
    _refused(capsys, args, f"{flag}: ends in '{flag[len(flag.rstrip('/.')) :]}', which names a folder")
    assert _snapshot(tmp_path) == before


def test_python_writers_refuse_a_name_ending_in_a_separator(tmp_path):
    from jointpose import export

    (tmp_path / "p.npz").write_text("an earlier result")
    with pytest.raises(JointposeError, match="p.npz/: ends in '/', which names a folder"):
        export(f"{tmp_path}/p.npz/", np.zeros((3, 17, 3)), 50.0)
    assert (tmp_path / "p.npz").read_text() == "an earlier result"
    from jointpose import Lifter
    from jointpose.model.temporal import TemporalModel

    with pytest.raises(JointposeError, match="m.safetensors/.: ends in '/.', which names a folder"):
        Lifter(TemporalModel((3,), channels=8)).save(f"{tmp_path}/m.safetensors/.")
    assert sorted(os.listdir(tmp_path)) == ["p.npz"]


LONG = "a" * 300  # longer than a file name may be (255 bytes)
TOO_LONG = {
    "infer -o": ["infer", "{in}/ok.npy", "-o", "{out}/{long}.npz", *IMAGE, *MODEL],
    "infer input": ["infer", "{in}/{long}.npy", "-o", "{out}/x.npz", *IMAGE, *MODEL],
    "infer --checkpoint": ["infer", "{in}/ok.npy", "-o", "{out}/x.npz", *IMAGE, "--checkpoint", "{in}/{long}.pt"],
    "render -o": ["render", "-o", "{out}/{long}.gif", "--keypoints-file", "{in}/ok.npy", "--poses", "{in}/p.npz"],
    "data build --out": ["data", "build", "--bvh", "{in}/run", "--out", "{out}/{long}"],
    "export --onnx": ["export", "{in}/small.safetensors", "--onnx", "{out}/{long}.onnx"],
}


@pytest.mark.parametrize("name", list(TOO_LONG))
def test_a_path_too_long_for_the_file_system_is_refused_in_one_line(name, inputs, tmp_path, capsys):
    args = [a.format(**{"in": inputs, "out": tmp_path, "long": LONG}) for a in TOO_LONG[name]]
    _refused(capsys, args, LONG, ": file name too long")
    assert os.listdir(tmp_path) == []


def test_an_output_name_of_255_bytes_is_written(inputs, tmp_path):
    """The temporary file beside it takes a shortened name."""
    npz, folder = tmp_path / ("a" * 251 + ".npz"), tmp_path / ("é" * 127 + "d")
    argv = ["infer", str(inputs / "ok.npy"), "-o", str(npz), *IMAGE, "--no-progress"]
    assert main([*argv, "--checkpoint", str(inputs / "small.safetensors")]) == 0
    with atomic_folder(folder) as building:
        (building / "one.npz").write_bytes(b"1")
    assert sorted(_snapshot(tmp_path)) == sorted([npz.name, folder.name, f"{folder.name}/one.npz"])


# ----------------------------------------------------------------------------- 4. no folder left by a failed write


def test_a_failed_write_leaves_no_folder_it_made(tmp_path, inputs, capsys, monkeypatch):
    import jointpose.inference.export as export_module

    def full_disk(path, *args):
        Path(path).write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "_write_json", full_disk)
    out = tmp_path / "new" / "sub" / "x.json"
    argv = ["infer", str(inputs / "ok.npy"), "-o", str(out), *IMAGE, "--no-progress"]
    _refused(capsys, [*argv, "--checkpoint", str(inputs / "small.safetensors")], f"cannot write {out}: No space left")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    assert main([*argv, "--checkpoint", str(inputs / "small.safetensors")]) == 0
    assert sorted(_snapshot(tmp_path)) == ["new", "new/sub", "new/sub/x.json"]


def test_atomic_writers_remove_only_the_folders_they_made(tmp_path):
    (tmp_path / "kept").mkdir()
    for target in (tmp_path / "kept" / "a" / "b" / "x.json", tmp_path / "kept" / "x.json"):
        with pytest.raises(RuntimeError):
            with atomic_write(target, "w") as handle:
                handle.write("half")
                raise RuntimeError("the writer failed")
        assert sorted(_snapshot(tmp_path)) == ["kept"]
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "kept" / "new" / "set") as building:
            (building / "one.npz").write_bytes(b"1")
            raise RuntimeError("the writer failed")
    assert sorted(_snapshot(tmp_path)) == ["kept"]
    with atomic_folder(tmp_path / "kept" / "new" / "set") as building:
        (building / "one.npz").write_bytes(b"1")
    assert sorted(_snapshot(tmp_path)) == ["kept", "kept/new", "kept/new/set", "kept/new/set/one.npz"]


def test_outputs_beside_the_files_an_input_folder_holds_are_allowed(tmp_path):
    """Only the files a run reads are protected: evaluate reads a dataset's data_*.npz, so a
    result written into the dataset folder (run twice) passes the check."""
    from jointpose.safeio import check_outputs

    (tmp_path / "data_3d_h36m.npz").write_bytes(b"3d")
    dataset = sorted(tmp_path.glob("data_*.npz"))
    for _ in range(2):
        check_outputs({"--json": tmp_path / "results.json"}, {"--data-dir": dataset})
        (tmp_path / "results.json").write_text("{}")
    with pytest.raises(JointposeError, match=r"--json .*data_3d_h36m\.npz: is the same file as --data-dir"):
        check_outputs({"--json": tmp_path / "data_3d_h36m.npz"}, {"--data-dir": dataset})


def test_a_terminated_verb_leaves_no_temporary_file_and_keeps_the_old_output(tmp_path):
    """SIGTERM (kill, a scheduler's stop) while the animation is being written: the verb stops
    as on Ctrl-C, exit code 143, the temporary file removed and the previous animation kept."""
    import signal
    import subprocess
    import sys
    import time

    np.save(tmp_path / "kp.npy", np.random.default_rng(0).uniform(100, 900, (3000, 17, 2)))
    (tmp_path / "out.mp4").write_bytes(b"the previous animation")
    argv = ["infer", "kp.npy", "-o", "out.npz", "--render", "out.mp4", *IMAGE, "--causal", "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "jointpose", *argv],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.partial.mp4")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the animation was written before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and err.strip().endswith("terminated"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npy", "out.mp4", "out.npz"]
    assert (tmp_path / "out.mp4").read_bytes() == b"the previous animation"


def test_an_interruption_within_a_deferred_block_is_raised_as_it_ends():
    """What the command line's Ctrl-C and SIGTERM handlers raise (through ``interrupt``) waits
    for the end of the outermost ``signals_deferred`` block: a frame is sent to ffmpeg whole."""
    from jointpose.safeio import interrupt, signals_deferred

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            with signals_deferred():
                interrupt(KeyboardInterrupt())
                interrupt(SystemExit())  # the first one is kept
                reached.append("inner")
            reached.append("outer")
    assert reached == ["inner", "outer"]
    with pytest.raises(SystemExit):  # outside a block: at once
        interrupt(SystemExit())
    with signals_deferred():  # nothing pending is left over from before
        reached.append("clean")
