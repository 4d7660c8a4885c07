"""BVH reading, forward kinematics, resampling and writing."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from jointpose.errors import JointposeError
from jointpose.motion.bvh import (
    Motion,
    global_transforms,
    read_bvh,
    resample,
    write_bvh,
)

# Line numbers of BASE (1-based) that the error tests below refer to.
BASE = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT knee
  {
    OFFSET 0 -1 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 -2 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.1
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 0 90
"""


def elementary(axis: str, degrees: float) -> np.ndarray:
    """Rotation matrix about one axis, written out (independent of the code under test)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return {
        "X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def write(tmp_path: Path, text: str, name: str = "clip.bvh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_base_clip_positions(tmp_path):
    motion = read_bvh(write(tmp_path, BASE))
    assert motion.names == ("hips", "knee", "knee_End")
    assert motion.parents == (-1, 0, 1)
    assert motion.end_sites == (False, False, True)
    assert motion.num_frames == 2 and motion.fps == pytest.approx(10.0)
    assert np.allclose(np.linalg.norm(motion.rotations, axis=-1), 1.0)
    pos = global_transforms(motion)[0]
    assert np.allclose(pos[0], [[0, 0, 0], [0, -1, 0], [0, -3, 0]])
    # Frame 1: root at (1, 2, 3) turned 90 deg about Z: its -y offset points to +x; the knee
    # turns 90 deg about X, so the End Site's (0, -2, 0) becomes Rz90 @ Rx90 @ (0, -2, 0) = (0, 0, -2).
    assert np.allclose(pos[1], [[1, 2, 3], [2, 2, 3], [2, 2, 1]], atol=1e-12)


ANGLES = {"X": 40.0, "Y": 0.0, "Z": 70.0}  # two non-zero angles


def one_rotation_clip(order: str) -> str:
    return f"""HIERARCHY
ROOT a
{{
  OFFSET 0 0 0
  CHANNELS 3 {" ".join(f"{axis}rotation" for axis in order)}
  End Site
  {{
    OFFSET 1 2 3
  }}
}}
MOTION
Frames: 1
Frame Time: 0.05
{" ".join(str(ANGLES[axis]) for axis in order)}
"""


def test_channel_order_composes_intrinsically(tmp_path):
    found = {}
    for order in ("ZYX", "XYZ", "YXZ"):
        found[order] = global_transforms(read_bvh(write(tmp_path, one_rotation_clip(order), f"{order}.bvh")))[0][0, 1]
        a, b, c = order
        matrix = elementary(a, ANGLES[a]) @ elementary(b, ANGLES[b]) @ elementary(c, ANGLES[c])
        assert np.allclose(found[order], matrix @ [1, 2, 3], atol=1e-12)
        scipy_rot = Rotation.from_euler(order, [ANGLES[axis] for axis in order], degrees=True)  # upper case: intrinsic
        assert np.allclose(found[order], scipy_rot.apply([1, 2, 3]), atol=1e-12)
    assert np.linalg.norm(found["ZYX"] - found["XYZ"]) > 0.5


def test_position_channels_on_a_child_joint(tmp_path):
    text = (
        BASE.replace("CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 4 Xposition Zrotation Zposition Yposition")
        .replace("1 2 3 90 0 0 0 0 90", "1 2 3 90 0 0 0.5 30 -1 0.25")
        .replace("0 0 0 0 0 0 0 0 0", "0 " * 10)
    )
    motion = read_bvh(write(tmp_path, text))
    assert motion.channels[1] == ("Xposition", "Zrotation", "Zposition", "Yposition")
    # local translation = OFFSET + channel values (x 0.5, y 0.25, z -1)
    assert np.allclose(motion.translations[1, 1], [0.5, -0.75, -1.0])
    pos = global_transforms(motion)[0]
    knee = np.array([1, 2, 3]) + elementary("Z", 90) @ [0.5, -0.75, -1.0]
    assert np.allclose(pos[1, 1], knee)
    assert np.allclose(pos[1, 2], knee + elementary("Z", 90) @ elementary("Z", 30) @ [0, -2, 0])


def test_round_trip_hand_written(tmp_path):
    motion = read_bvh(write(tmp_path, BASE))
    out = tmp_path / "out.bvh"
    write_bvh(motion, out)
    again = read_bvh(out)
    assert again.names == motion.names and again.channels == motion.channels
    assert again.end_sites == motion.end_sites and again.frame_time == motion.frame_time
    assert np.allclose(global_transforms(again)[0], global_transforms(motion)[0], atol=1e-9)


def test_round_trip_single_axis_joint(tmp_path):
    text = (
        BASE.replace("    CHANNELS 3 Zrotation Yrotation Xrotation", "    CHANNELS 1 Xrotation")
        .replace("0 0 0 0 0 0 0 0 0", "0 0 0 0 0 0 10")
        .replace("1 2 3 90 0 0 0 0 90", "1 2 3 90 0 0 80")
    )
    motion = resample(read_bvh(write(tmp_path, text)), 40)  # slerp keeps the knee on its one axis
    write_bvh(motion, tmp_path / "out.bvh")
    again = read_bvh(tmp_path / "out.bvh")
    assert again.channels[1] == ("Xrotation",)
    assert np.allclose(global_transforms(again)[0], global_transforms(motion)[0], atol=1e-9)


@pytest.mark.parametrize("order", ["ZXY", "ZYX"])
def test_from_arrays_round_trip(tmp_path, order):
    rng = np.random.default_rng(3)
    frames, names = 20, ["root", "a", "c", "b", "b_End"]
    parents = [-1, 0, 0, 1, 3]  # not depth-first: the file lists root, a, b, b_End, c
    offsets = rng.normal(size=(5, 3)) * 10
    rotations = Rotation.random(frames * 5, random_state=4).as_quat().reshape(frames, 5, 4)[..., [3, 0, 1, 2]]
    motion = Motion.from_arrays(
        names,
        parents,
        offsets,
        rotations,
        rng.normal(size=(frames, 3)) * 50,
        fps=30,
        rotation_order=order,
        end_sites=[False, False, False, False, True],
    )
    assert motion.channels[0] == ("Xposition", "Yposition", "Zposition") + tuple(f"{a}rotation" for a in order)
    assert motion.channels[1] == tuple(f"{a}rotation" for a in order) and motion.channels[4] == ()
    path = tmp_path / f"{order}.bvh"
    write_bvh(motion, path)
    again = read_bvh(path)
    assert again.names == ("root", "a", "b", "b_End", "c") and again.fps == pytest.approx(30.0)
    expected = global_transforms(motion)[0][:, [0, 1, 3, 4, 2]]
    assert np.abs(global_transforms(again)[0] - expected).max() <= 1e-6 * np.abs(expected).max()


def test_from_arrays_rejects_bad_input():
    rot = np.tile([1.0, 0, 0, 0], (4, 2, 1))
    with pytest.raises(JointposeError, match="rotation_order"):
        Motion.from_arrays(["a", "b"], [-1, 0], np.zeros((2, 3)), rot, np.zeros((4, 3)), 30, rotation_order="ZZY")
    with pytest.raises(JointposeError, match="root_translation"):
        Motion.from_arrays(["a", "b"], [-1, 0], np.zeros((2, 3)), rot, np.zeros((3, 3)), 30)
    with pytest.raises(JointposeError, match="parent"):
        Motion.from_arrays(["a", "b"], [1, -1], np.zeros((2, 3)), rot, np.zeros((4, 3)), 30)


def test_resample_interpolates_rotations_on_the_short_arc():
    """Rotations about one fixed axis per joint: slerp turns the angle linearly along the
    shorter way round, whatever the quaternions' signs (worked out here by hand)."""
    degrees = {  # joint: (axis, angle per frame in degrees, the sign of each frame's quaternion)
        0: ([0.0, 0.0, 1.0], [10.0, 30.0, 30.0, 60.0], [1, -1, 1, -1]),
        1: ([1.0, 0.0, 0.0], [170.0, -170.0, -150.0, -150.0], [1, 1, -1, 1]),  # through 180: +20, +20, 0
        2: ([0.0, 0.6, 0.8], [0.0, 90.0, -45.0, -45.0], [-1, 1, 1, -1]),
    }
    quats = np.stack(
        [
            np.stack(
                [
                    sign * Rotation.from_rotvec(np.radians(a) * np.array(axis)).as_quat(scalar_first=True)
                    for a, sign in zip(angles, signs)
                ]
            )
            for axis, angles, signs in degrees.values()
        ],
        axis=1,
    )
    motion = Motion.from_arrays(["root", "a", "b"], [-1, 0, 1], np.ones((3, 3)), quats, np.zeros((4, 3)), fps=10)
    out = resample(motion, 40)  # three new frames between each pair of old ones
    assert out.num_frames == 13
    w = np.arange(13) / 4.0
    for joint, (axis, angles, _) in degrees.items():
        a0, a1 = (
            np.array(angles)[np.minimum(np.floor(w).astype(int), 3)],
            np.array(angles)[np.minimum(np.floor(w).astype(int) + 1, 3)],
        )
        step = (a1 - a0 + 180.0) % 360.0 - 180.0  # the short way round
        expected = Rotation.from_rotvec(np.radians(a0 + (w - np.floor(w)) * step)[:, None] * np.array(axis))
        got = Rotation.from_quat(out.rotations[:, joint], scalar_first=True)
        assert np.degrees((expected.inv() * got).magnitude()).max() < 1e-9, joint
    assert np.allclose(out.translations, motion.translations[:1])
    single = resample(dataclasses.replace(motion, rotations=quats[:1], translations=motion.translations[:1]), 40)
    assert single.num_frames == 1 and np.array_equal(
        single.rotations, quats[:1] / np.linalg.norm(quats[:1], axis=-1, keepdims=True)
    )


def test_resample_cmu_clip(cmu_mocap):
    motion = read_bvh(cmu_mocap / "002" / "002_03.bvh")
    assert motion.fps == 60.0
    out = resample(motion, 50)
    assert out.fps == pytest.approx(50.0)
    assert out.num_frames == int((motion.num_frames - 1) * 50 / 60) + 1
    # every fifth output frame (0.1 s) coincides with every sixth input frame: exact there
    assert np.allclose(out.rotations[::5], motion.rotations[::6][: len(out.rotations[::5])], atol=1e-12)
    pos, pos_out = global_transforms(motion)[0], global_transforms(out)[0]
    assert np.allclose(pos_out[::5], pos[::6][: len(pos_out[::5])], atol=1e-9)
    # in between, an independent per-joint slerp (scipy) gives the same rotations
    times = np.arange(motion.num_frames) / 60
    for joint in (1, 20, 50):
        ref = Slerp(times, Rotation.from_quat(motion.rotations[:, joint][:, [1, 2, 3, 0]]))(
            np.arange(out.num_frames) / 50
        )
        got = Rotation.from_quat(out.rotations[:, joint][:, [1, 2, 3, 0]])
        assert np.degrees((ref * got.inv()).magnitude()).max() < 1e-6
    # between frames, joints stay within a centimetre of the straight line between neighbours
    src = np.arange(out.num_frames) * 1.2
    i0 = np.floor(src).astype(int)
    i1, w = np.minimum(i0 + 1, motion.num_frames - 1), (src - i0)[:, None, None]
    assert np.abs(pos_out - ((1 - w) * pos[i0] + w * pos[i1])).max() < 1.0
    # bones keep their lengths
    parents = np.array(out.parents)
    child = np.flatnonzero(parents >= 0)
    length = np.linalg.norm(pos_out[:, child] - pos_out[:, parents[child]], axis=-1)
    assert (np.ptp(length, axis=0) <= 1e-6 * length.mean(axis=0) + 1e-9).all()


def test_resample_then_write(tmp_path, cmu_mocap):
    motion = resample(read_bvh(cmu_mocap / "002" / "002_03.bvh"), 25)
    path = tmp_path / "r.bvh"
    write_bvh(motion, path)
    again = read_bvh(path)
    assert again.fps == 25.0 and again.num_frames == motion.num_frames
    expected = global_transforms(motion)[0]
    assert np.abs(global_transforms(again)[0] - expected).max() <= 1e-6 * np.abs(expected).max()


def test_write_read_round_trip_cmu(tmp_path, cmu_mocap):
    motion = read_bvh(cmu_mocap / "002" / "002_04.bvh")
    path = tmp_path / "copy.bvh"
    write_bvh(motion, path)
    again = read_bvh(path)
    assert again.names == motion.names and again.parents == motion.parents
    expected = global_transforms(motion)[0]
    assert np.abs(global_transforms(again)[0] - expected).max() <= 1e-6 * np.abs(expected).max()


def edit(line: int, new: str | None) -> str:
    """BASE with 1-based ``line`` replaced (or deleted when ``new`` is None)."""
    lines = BASE.splitlines()
    lines[line - 1 : line] = [] if new is None else [new]
    return "\n".join(lines) + "\n"


BAD_FILES = {
    "truncated hierarchy": ("\n".join(BASE.splitlines()[:9]) + "\n", 9, "truncated"),
    "truncated data line": (BASE[: BASE.rindex(" 0 90")], 20, "expected 9 values"),
    "missing data lines": (edit(20, None), 17, "Frames: 2"),
    "too many data lines": (BASE + "0 0 0 0 0 0 0 0 0\n", 17, "3 data lines"),
    "missing closing brace": (edit(15, None), 15, "MOTION"),
    "extra closing brace": (edit(14, "  }\n  }"), 16, "unbalanced"),
    "missing OFFSET": (edit(8, None), 8, "OFFSET"),
    "missing OFFSET in End Site": (edit(12, "      foo"), 12, "OFFSET"),
    "unknown channel": (edit(9, "    CHANNELS 3 Zrotation Wrotation Xrotation"), 9, "Wrotation"),
    "too few channel names": (edit(9, "    CHANNELS 4 Zrotation Yrotation Xrotation"), 9, "fewer"),
    "repeated channel": (edit(9, "    CHANNELS 3 Zrotation Zrotation Xrotation"), 9, "repeat"),
    "non-numeric offset": (edit(8, "    OFFSET 0 minus1 0"), 8, "minus1"),
    "non-numeric value": (edit(19, "0 0 0 0 zero 0 0 0 0"), 19, "zero"),
    "number glued to text, last": (BASE.rstrip("\n") + "abc\n", 20, "90abc"),
    "number with an underscore": (edit(19, "0 0 0 0 1_0 0 0 0 0"), 19, "1_0"),
    "wrong value count": (edit(19, "0 0 0 0 0 0 0 0"), 19, "found 8"),
    "bad frame count": (edit(17, "Frames: two"), 17, "Frames:"),
    "bad frame time": (edit(18, "Frame Time: 0"), 18, "Frame Time"),
    "missing Frame Time": (edit(18, None), 18, "Frame Time"),
    "duplicate joint": (edit(6, "  JOINT hips"), 6, "twice"),
    "no HIERARCHY": (edit(1, "HIERARCHIE"), 1, "HIERARCHY"),
    "garbage in joint": (edit(10, "    Ed Site"), 10, "End Site"),
    # A token of any length is quoted cut short: the message stays one short line.
    "long frame count": (edit(17, "Frames: " + "x" * 100_000), 17, "'xxxxxxxx"),
    "frame count of 5000 digits": (edit(17, "Frames: " + "9" * 5000), 17, "'Frames:' is a number of 5000 digits"),
    "long channel name": (edit(9, "    CHANNELS 3 Zrotation " + "Q" * 100_000 + " Xrotation"), 9, "'QQQQ"),
    "long token in a joint": (edit(10, "    " + "E" * 100_000), 10, "found 'EEEE"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_name_file_and_line(tmp_path, case):
    text, line, fragment = BAD_FILES[case]
    path = write(tmp_path, text, "broken_clip.bvh")
    with pytest.raises(JointposeError) as info:
        read_bvh(path)
    message = str(info.value)
    assert "broken_clip.bvh" in message and f"line {line}:" in message and fragment in message
    assert len(message) < len(str(path)) + 200, message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_values_name_clip_and_frame(tmp_path, value):
    path = write(tmp_path, edit(20, f"1 2 3 90 0 0 0 {value} 90"), "walk_07.bvh")
    with pytest.raises(JointposeError, match=r"walk_07\.bvh.*frame 1 "):
        read_bvh(path)


@pytest.mark.parametrize("value", ["1e300", "-1000001", "2e6"])
def test_values_beyond_motion_capture_name_clip_and_frame(tmp_path, value):
    # A root at 1e300 is finite, but no capture's unit makes it a place (it overflowed float32
    # later, and the error blamed the cameras); a million (10 km in centimetres) is the most.
    path = write(tmp_path, edit(20, f"{value} 2 3 90 0 0 0 0 90"), "walk_07.bvh")
    with pytest.raises(JointposeError, match=r"walk_07\.bvh: frame 1 .*beyond 1e\+06"):
        read_bvh(path)
    assert read_bvh(write(tmp_path, edit(20, "-1000000 2 3 90 0 0 0 0 90"), "edge.bvh")).translations.min() < 0


def test_missing_file(tmp_path):
    with pytest.raises(JointposeError, match="nothere.bvh"):
        read_bvh(tmp_path / "nothere.bvh")


def test_write_refuses_motion_it_cannot_express(tmp_path):
    motion = read_bvh(write(tmp_path, BASE))
    moved = motion.translations.copy()
    moved[:, 1, 0] += 1.0  # the knee has no position channels
    with pytest.raises(JointposeError, match="knee"):
        write_bvh(dataclasses.replace(motion, translations=moved), tmp_path / "x.bvh")


def chain_bvh(joints: int) -> str:
    """A BVH chain of ``joints`` joints, each 1 unit above its parent and turned 1 degree about Z."""
    lines = ["HIERARCHY"]
    for j in range(joints):
        kind = "ROOT" if j == 0 else "JOINT"
        channels = (
            "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"
            if j == 0
            else "CHANNELS 3 Zrotation Yrotation Xrotation"
        )
        lines += [f"{kind} j{j}", "{", f"OFFSET 0 {0 if j == 0 else 1} 0", channels]
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * joints
    values = ["0 0 0"] + ["1 0 0"] * joints
    return "\n".join(lines + ["MOTION", "Frames: 1", "Frame Time: 0.02", " ".join(values)]) + "\n"


def test_deep_hierarchy_parses_without_recursion(tmp_path):
    """A chain of 9,999 joints and an End Site (once a RecursionError): the parser keeps a
    stack, not the call stack."""
    motion = read_bvh(write(tmp_path, chain_bvh(9_999)))
    assert motion.num_joints == 10_000 and motion.parents[-1] == 9_998
    # Forward kinematics of the first joints, worked out by hand: joint k is at the sum of
    # unit vectors turned by 1, 2, ..., k degrees.
    angles = np.radians(np.arange(1, 5))
    expected = np.cumsum(np.stack([-np.sin(angles), np.cos(angles), 0 * angles], axis=1), axis=0)
    assert np.allclose(global_transforms(motion)[0][0, 1:5], expected)
    write_bvh(motion, tmp_path / "again.bvh")  # written with a stack too
    again = read_bvh(tmp_path / "again.bvh")
    assert again.parents == motion.parents and np.allclose(global_transforms(again)[0], global_transforms(motion)[0])


def test_joint_count_frames_and_frame_time_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTPOSE_MAX_BVH_JOINTS", "50")
    with pytest.raises(JointposeError, match=r"clip\.bvh line \d+: more than 50 joints \(set JOINTPOSE_MAX_BVH_JOINTS"):
        read_bvh(write(tmp_path, chain_bvh(60)))
    with pytest.raises(JointposeError, match=r"clip\.bvh line 17: 'Frames:': 1e\+20 exceeds the limit of 1000000"):
        read_bvh(write(tmp_path, BASE.replace("Frames: 2", "Frames: 100000000000000000000")))
    with pytest.raises(JointposeError, match=r"line 18: 'Frame Time: 1e\+300': 1e-300 frames per second is outside"):
        read_bvh(write(tmp_path, BASE.replace("Frame Time: 0.1", "Frame Time: 1e300")))
    motion = read_bvh(write(tmp_path, BASE))
    with pytest.raises(JointposeError, match=r"clip\.bvh: resampling 10 -> 0.05 fps \(factor\): 200 exceeds"):
        resample(motion, 0.05)
    assert resample(motion, 1000.0).num_frames == 101
