"""Video in, 3D out: decoding and cutting, left/right repair, the layout conversion, and
``jointpose video`` on real footage (Pose2Sim's demo clips and Sports2D's, see .ci/run)."""

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from jointpose.cli import flag_message, main
from jointpose.data.blazepose import BLAZEPOSE_TO_COCO, require_mediapipe
from jointpose.data.detect import Detections2D
from jointpose.data.layouts import LAYOUTS
from jointpose.data.resampling import resample
from jointpose.data.tracks import (
    keypoints_from_detections,
    out_of_view_note,
    repair_limb_swaps,
    repair_swaps,
    side_pairs,
    swap_transitions,
)
from jointpose.data.video import open_video
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton
from jointpose.geometry.bones import bone_vectors
from jointpose.inference.export import export
from jointpose.motion.bvh import read_bvh
from jointpose.safeio import load_npz

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = Path(os.environ.get("JOINTPOSE_FOOTAGE", Path(__file__).parent / ".footage"))
PAIRS = side_pairs(LAYOUTS["coco17"])
COCO = LAYOUTS["coco17"]

# A person facing the camera, COCO-17 pixels (the person's left on the image's right).
_FRONT = {
    "nose": (0, -160),
    "l_eye": (8, -168),
    "r_eye": (-8, -168),
    "l_ear": (18, -165),
    "r_ear": (-18, -165),
    "l_shoulder": (45, -120),
    "r_shoulder": (-45, -120),
    "l_elbow": (60, -60),
    "r_elbow": (-60, -60),
    "l_wrist": (65, 0),
    "r_wrist": (-65, 0),
    "l_hip": (25, 0),
    "r_hip": (-25, 0),
    "l_knee": (28, 90),
    "r_knee": (-28, 90),
    "l_ankle": (30, 180),
    "r_ankle": (-30, 180),
}
TEMPLATE = np.array([_FRONT[name] for name in COCO], dtype=np.float64)


def walking_track(frames: int = 120, seed: int = 0) -> np.ndarray:
    """(F, 17, 2) pixels: the template moving smoothly across the image, with 1 px noise."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    rng = np.random.default_rng(seed)
    sway = np.stack(
        [20 * np.sin(t / 9.0 + np.arange(17) / 3.0) + 2.0 * t, 8 * np.cos(t / 7.0) + 0 * np.arange(17)], axis=-1
    )
    return 500 + TEMPLATE + sway + rng.normal(scale=1.0, size=(frames, 17, 2))


def mirrored(xy: np.ndarray, frames: slice) -> np.ndarray:
    order = np.arange(17)
    order[PAIRS[:, 0]], order[PAIRS[:, 1]] = PAIRS[:, 1], PAIRS[:, 0]
    out = xy.copy()
    out[frames] = xy[frames][:, order]
    return out


# ----------------------------------------------------------------------------- left/right repair


@pytest.mark.parametrize("segment", [slice(40, 70), slice(0, 30), slice(90, 120)])
def test_a_30_frame_mirrored_segment_is_repaired_exactly(segment):
    truth = walking_track()
    conf = np.full((len(truth), 17), 0.9)
    fixed, fixed_conf, swapped = repair_swaps(mirrored(truth, segment), conf, PAIRS)
    expected = np.zeros(len(truth), dtype=bool)
    expected[segment] = True
    np.testing.assert_array_equal(swapped, expected)
    np.testing.assert_array_equal(fixed, truth)
    np.testing.assert_array_equal(fixed_conf, conf)


def test_a_mirrored_segment_across_lost_frames_is_repaired():
    truth = walking_track()
    seen = mirrored(truth, slice(50, 80))
    seen[[45, 46, 60, 81]] = np.nan  # no detection in these frames
    fixed, _, swapped = repair_swaps(seen, np.ones((len(truth), 17)), PAIRS)
    kept = np.isfinite(seen).all(axis=(1, 2))
    np.testing.assert_array_equal(fixed[kept], truth[kept])
    assert swapped.sum() == 29 and not swapped[~kept].any()


@pytest.mark.parametrize("collapsed", [[70], [69, 70]])
def test_a_swap_back_across_frames_whose_sides_coincide_is_repaired(collapsed):
    # As BlazePose does while its labels flicker: in the frame(s) where the labels change
    # back, left and right points are drawn almost together, so neither neighbour can say
    # which is which; the frame after is compared with the one before them.
    truth = walking_track()
    seen = mirrored(truth, slice(40, 70))
    middle = (seen[collapsed][:, PAIRS[:, 0]] + seen[collapsed][:, PAIRS[:, 1]]) / 2
    seen[np.ix_(collapsed, PAIRS[:, 0])] = middle + 2.0
    seen[np.ix_(collapsed, PAIRS[:, 1])] = middle - 2.0
    fixed, _, swapped = repair_swaps(seen, np.ones((len(truth), 17)), PAIRS)
    clear = np.setdiff1d(np.arange(len(truth)), collapsed)
    np.testing.assert_array_equal(fixed[clear], truth[clear])
    assert np.flatnonzero(swapped[clear]).tolist() == list(range(40, collapsed[0]))


def test_a_person_turning_round_is_not_swapped():
    """Facing the camera, then turning (x shrinks through profile to mirrored): no label swap."""
    frames = 150
    angle = np.clip((np.arange(frames) - 30) / 90.0, 0.0, 1.0) * np.pi  # 0 -> 180 degrees over 3 s
    track = TEMPLATE[None] * np.stack([np.cos(angle), np.ones(frames)], axis=-1)[:, None] + 500
    track += np.random.default_rng(1).normal(scale=1.5, size=track.shape)
    _, _, swapped = repair_swaps(track, np.ones((frames, 17)), PAIRS)
    assert not swapped.any()


def test_low_confidence_pairs_carry_no_weight():
    truth = walking_track()
    seen = mirrored(truth, slice(40, 70))
    conf = np.ones((len(truth), 17))
    conf[40] = 0.0  # the first mirrored frame has no confidence at all: its swap is seen one frame late
    assert np.flatnonzero(swap_transitions(seen, conf, PAIRS)[0]).tolist() == [41, 70]
    conf[40] = 1.0
    assert np.flatnonzero(swap_transitions(seen, conf, PAIRS)[0]).tolist() == [40, 70]


def limb_swapped(xy: np.ndarray, parts: tuple[str, ...], frames: slice) -> np.ndarray:
    """``xy`` with the left and right labels of ``parts`` (e.g. knee, ankle) exchanged in ``frames``."""
    left = [COCO.index(f"l_{p}") for p in parts]
    right = [COCO.index(f"r_{p}") for p in parts]
    out = xy.copy()
    out[frames, left + right] = xy[frames][:, right + left]
    return out


LIMB_SWAPS = [
    (("elbow", "wrist"), slice(40, 45)),  # one arm's two far points, 5 frames
    (("shoulder", "elbow", "wrist"), slice(60, 63)),  # a whole arm, 3 frames
    (("knee", "ankle"), slice(80, 84)),  # one leg, 4 frames
    (("ankle",), slice(100, 101)),  # a foot, one frame
]


@pytest.mark.parametrize("parts,frames", LIMB_SWAPS)
def test_a_single_limb_swap_of_a_few_frames_is_repaired(parts, frames):
    truth = walking_track()
    conf = np.full((len(truth), 17), 0.9)
    fixed, _, exchanged = repair_limb_swaps(limb_swapped(truth, parts, frames), conf, COCO)
    np.testing.assert_array_equal(fixed, truth)
    expected = np.zeros_like(exchanged)
    expected[frames, [int(np.flatnonzero(PAIRS[:, 0] == COCO.index(f"l_{p}"))[0]) for p in parts]] = True
    np.testing.assert_array_equal(exchanged, expected)


def test_an_untouched_track_keeps_its_limbs():
    for track in (walking_track(), walking_track(200, seed=4)):
        fixed, conf, exchanged = repair_limb_swaps(track, np.full(track.shape[:2], 0.9), COCO)
        assert not exchanged.any()
        np.testing.assert_array_equal(fixed, track)


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_legs_and_arms_passing_each_other_in_profile_are_not_swapped(fps):
    """Walking across the image in profile at 1 stride/s: ankles pass each other at up to
    ~30 px a frame, as fast as a label swap moves them; nothing is exchanged."""
    t = np.arange(200)[:, None] / fps
    track = TEMPLATE * [0.1, 1.0] + [100.0, 0.0] * t[..., None] + 500  # profile, walking right
    swing = np.sin(2 * np.pi * t)
    for part, amplitude in (("ankle", 140.0), ("knee", 70.0), ("wrist", -100.0), ("elbow", -50.0)):
        track[:, COCO.index(f"l_{part}"), 0] += amplitude * swing[:, 0]
        track[:, COCO.index(f"r_{part}"), 0] -= amplitude * swing[:, 0]
    track += np.random.default_rng(0).normal(scale=1.5, size=track.shape)
    assert not repair_limb_swaps(track, np.ones((200, 17)), COCO)[2].any()
    # ... while a 3-frame swap of the legs there, where they are apart (t = 2.25 s), is found.
    middle = int(2.25 * fps)
    swapped = limb_swapped(track, ("knee", "ankle"), slice(middle - 1, middle + 2))
    np.testing.assert_array_equal(repair_limb_swaps(swapped, np.ones((200, 17)), COCO)[0], track)


def test_limb_swaps_across_lost_frames_and_at_the_clip_ends():
    truth = walking_track()
    # The first two frames (half MAX_LIMB_SWAP at the ends), and 6 frames of which 2 are lost.
    seen = limb_swapped(limb_swapped(truth, ("knee", "ankle"), slice(0, 2)), ("elbow", "wrist"), slice(50, 56))
    seen[[52, 53, 90]] = np.nan  # no detection in these frames
    fixed, _, exchanged = repair_limb_swaps(seen, np.ones((len(truth), 17)), COCO)
    kept = np.isfinite(seen).all(axis=(1, 2))
    np.testing.assert_array_equal(fixed[kept], truth[kept])
    assert np.flatnonzero(exchanged.any(axis=1)).tolist() == [0, 1, 50, 51, 54, 55]


# ----------------------------------------------------------------------------- track -> network input


def detections(xy: np.ndarray, conf: np.ndarray) -> Detections2D:
    points = np.concatenate([xy, conf[..., None]], axis=-1)
    found = np.isfinite(points[:, 0, 0])
    return Detections2D(points, found)


def test_track_conversion_fills_lost_frames_and_low_confidence_joints():
    truth = walking_track(60)
    xy, conf = truth.copy(), np.full((60, 17), 0.9)
    xy[23:26] = np.nan
    conf[:, COCO.index("l_wrist")] = np.where(np.arange(60) % 10 == 0, 0.9, 0.05)  # below VISIBILITY_THRESHOLD
    track = keypoints_from_detections(detections(xy, conf))
    assert track.xy.shape == (60, 17, 2) and np.isfinite(track.xy).all()
    assert track.filled[23:26].all() and not track.filled[:23, 0].any()
    # Human3.6M joints straight from COCO ones, and the root from the hips.
    lw = skeleton.JOINT_NAMES.index("LWrist")
    np.testing.assert_allclose(track.xy[10, lw], truth[10, COCO.index("l_wrist")])
    np.testing.assert_allclose(track.xy[[0, 30], 0], (truth[[0, 30], 11] + truth[[0, 30], 12]) / 2)
    # The low-confidence wrist is interpolated between its confident frames, linearly.
    np.testing.assert_allclose(track.xy[15, lw], (truth[10, 9] + truth[20, 9]) / 2)
    assert track.confidence[5, lw] == pytest.approx(0.05) and track.confidence[24].max() == 0.0


def test_track_is_not_filled_across_a_possible_switch_of_person():
    truth = walking_track(40)
    other = truth + np.array([600.0, 0.0])  # somebody else, 600 px to the right, from frame 20
    xy = np.where(np.arange(40)[:, None, None] < 20, truth, other)
    conf = np.full((40, 17), 0.9)
    lw, rw = COCO.index("l_wrist"), COCO.index("r_wrist")
    conf[15:25, lw] = 0.05  # the left wrist unsure on both sides of the switch
    conf[20:, rw] = 0.05  # the right wrist unsure for the whole second person
    points = np.concatenate([xy, conf[..., None]], axis=-1)
    track = keypoints_from_detections(Detections2D(points, np.ones(40, dtype=bool), switches=[20]))
    joint = skeleton.JOINT_NAMES.index("LWrist")
    np.testing.assert_allclose(track.xy[15:20, joint], np.repeat(truth[14:15, lw], 5, axis=0))  # held
    np.testing.assert_allclose(track.xy[20:25, joint], np.repeat(other[25:26, lw], 5, axis=0))
    # No confident right wrist after the switch: the detector's own positions are kept there.
    np.testing.assert_allclose(track.xy[20:, skeleton.JOINT_NAMES.index("RWrist")], other[20:, rw])
    assert "RWrist: never above confidence 0.1 in a stretch between possible switches of person" in "\n".join(
        track.notes
    )
    assert not track.filled[20:, skeleton.JOINT_NAMES.index("RWrist")].any()


def test_left_right_is_repaired_on_each_persons_frames():
    # 60 frames of one person, then 30 of another (600 px to the right) whose labels are
    # mirrored for their first 12 frames: over the whole clip the mirrored stretch runs to
    # the switch and looks like the other person's own labelling.
    first, second = walking_track(60), walking_track(30, seed=1) + np.array([600.0, 0.0])
    truth = np.concatenate([first, second])
    seen = mirrored(truth, slice(60, 72))
    conf = np.full((90, 17), 0.9)
    track = keypoints_from_detections(
        Detections2D(np.concatenate([seen, conf[..., None]], -1), np.ones(90, bool), switches=[60])
    )
    expected = keypoints_from_detections(detections(truth, conf))
    assert not any("repaired" in note for note in expected.notes)
    np.testing.assert_allclose(track.xy, expected.xy)
    assert "repaired left/right swaps in 12 frames (1 stretch(es))" in track.notes


def test_a_close_left_right_decision_is_noted():
    """The whole-body repair takes the labelling of most frames as right: where the other one
    covers a quarter of the frames or more, the note says how many decided, and what to do if
    the output looks mirrored (a cut may hold more mirrored frames than labelled ones)."""
    truth, conf = walking_track(40), np.full((40, 17), 0.9)
    expected = keypoints_from_detections(detections(truth, conf))
    minority = keypoints_from_detections(detections(mirrored(truth, slice(10, 25)), conf))  # 15 of 40
    np.testing.assert_allclose(minority.xy, expected.xy)
    close = "repaired left/right swaps in 15 frames (1 stretch(es)): 25 of the 40 frames with the person decided"
    assert any(note.startswith(close) and "lift a longer stretch" in note for note in minority.notes)
    majority = keypoints_from_detections(detections(mirrored(truth, slice(10, 35)), conf))  # 25 of 40
    flip = list(skeleton.H36M_17.flip_permutation)
    np.testing.assert_allclose(majority.xy, expected.xy[:, flip])  # the limit itself: every frame mirrored
    assert any(
        note.startswith("repaired left/right swaps in 15 frames (2 stretch(es)): 25 of") for note in majority.notes
    )
    few = keypoints_from_detections(detections(mirrored(truth, slice(10, 19)), conf))  # 9 of 40: unremarkable
    assert "repaired left/right swaps in 9 frames (1 stretch(es))" in few.notes


def test_a_video_results_export_records_its_cut_camera_stretches_and_height(tmp_path):
    """VideoResult.export (what ``jointpose video -o`` writes) records what infer needs to lift
    the track again as it was lifted: read back, the cut's first frame, the camera, the
    stretches, the threshold and the height are those of the run (no detector needed)."""
    from jointpose.data.keypoints import Keypoints2D, load_keypoints
    from jointpose.data.video import VideoClip
    from jointpose.geometry.cameras import camera_from_intrinsics
    from jointpose.inference.video import VideoResult

    frames = 12
    xy = np.random.default_rng(0).uniform(100, 500, (frames, 17, 2))
    track = Keypoints2D(xy, np.full((frames, 17), 0.9), "video", "coco17", np.zeros((frames, 17), bool), switches=[5])
    clip = VideoClip(Path("clip.mp4"), 640, 480, 30.0, 2.0, first=30, count=frames)
    detections = Detections2D(np.zeros((frames, 17, 3)), np.ones(frames, bool), switches=[5])
    camera = camera_from_intrinsics((640, 480), 900.0, None, (330.0, 250.0))
    poses, path = np.zeros((frames, 17, 3)), np.tile([0.0, 0.0, 4.0], (frames, 1))
    result = VideoResult(clip, poses, path, track, detections, camera=camera, confidence_threshold=0.25, height=1.6)
    for name in ("out.npz", "out.json"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", JointposeWarning)
            read = load_keypoints(result.export(tmp_path / name))
        assert read.source_format == "video" and read.image_size == (640, 480) and read.fps == 30.0, name
        assert read.first_frame == 30 and read.switches == [5] and read.height == 1.6, name
        assert read.camera.focal_length == (900.0, 900.0) and read.camera.center == (330.0, 250.0), name
        np.testing.assert_allclose(read.xy, xy, atol=1e-3)
    assert abs(float(load_npz(tmp_path / "out.npz")["confidence_threshold"]) - 0.25) < 1e-7


def test_render_captions_name_lost_frames_and_possible_switches():
    from jointpose.render import render_captions

    def captions(switches: list[int], lost: tuple[int, ...] = ()) -> dict[int, str]:
        found = np.ones(30, dtype=bool)
        found[list(lost)] = False
        return render_captions(found, switches, 10.0)

    switch = captions([10])  # half a second either side at 10 fps
    assert sorted(switch) == list(range(5, 16))
    assert switch[5] == "the track may move to another person at 1.00 s"
    assert sorted(captions([1, 28])) == [*range(0, 7), *range(23, 30)]  # cut at the ends
    assert captions([]) == {}
    both = captions([10], lost=(3, 4, 9))
    assert sorted(both) == [3, 4, *range(5, 16)]
    assert both[3] == "person not found: pose filled in"
    assert both[9] == "person not found: pose filled in; the track may move to another person at 1.00 s"


def test_person_parts():
    from jointpose.data.tracks import person_parts

    assert person_parts(6, []) == [slice(0, 6)]
    assert person_parts(6, [2, 5]) == [slice(0, 2), slice(2, 5), slice(5, 6)]


def test_track_with_no_person_is_refused_naming_the_clip():
    nobody = detections(np.full((5, 17, 2), np.nan), np.zeros((5, 17)))
    with pytest.raises(JointposeError, match=r"^clips/black\.mp4: no person found in any of its 5 frames$"):
        keypoints_from_detections(nobody, source="clips/black.mp4")


def test_the_detection_bar_ends_on_the_frames_read(capsys):
    """A container's frame count is an estimate (a clip said 104 frames and gave 100): the
    progress bar ends at 100% on the frames actually read, not short of its estimate."""
    from jointpose.data.detect import detect_frames

    class Detector:  # BlazePose's 33 landmarks, the same in every frame
        def detect(self, frame):
            return np.random.default_rng(0).uniform(10, 90, (33, 3))

        def close(self):
            pass

    frames = (np.zeros((4, 4, 3), np.uint8) for _ in range(8))
    assert len(detect_frames(frames, total=10, detector=Detector()).points) == 8
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in last and " 8/8 " in last, last


def test_blazepose_indices_are_the_coco_keypoints():
    # BlazePose-33 order: 0 nose, 1-3 left eye (inner, centre, outer), 4-6 right eye, 7/8 ears,
    # 9/10 mouth, 11-16 shoulders, elbows, wrists (left first), 17-22 hands, 23-28 hips, knees, ankles.
    assert BLAZEPOSE_TO_COCO.tolist() == [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def test_resample_back_to_the_video_holds_the_last_pose():
    values = np.arange(6, dtype=np.float64)[:, None]  # 6 frames at 50 fps: times 0..0.1 s
    out = resample(values, 50.0, 60.0, 8)  # 8 frames at 60 fps: times 0..0.1167 s
    np.testing.assert_allclose(out[:, 0], np.minimum(np.arange(8) * 50 / 60, 5))


def test_resample_poses_keeps_every_bone_length_of_a_turning_body():
    from scipy.spatial.transform import Rotation

    from jointpose.inference.lifter import resample_poses

    # A body turning about the vertical at 0.5 rad a frame (50 fps), its root walking along x.
    body = np.random.default_rng(0).normal(scale=0.3, size=(17, 3))
    turns = Rotation.from_euler("y", 0.5 * np.arange(11)[:, None]).as_matrix()  # (11, 3, 3)
    poses = np.einsum("fij,nj->fni", turns, body - body[0]) + np.array([0.04, 0.0, 3.0]) * np.arange(11)[:, None, None]
    out = resample_poses(poses, 50.0, 30.0, 7)  # 7 frames at 30 fps: times 0..0.2 s
    lengths = np.linalg.norm(bone_vectors(poses[:1]), axis=-1)
    np.testing.assert_allclose(np.linalg.norm(bone_vectors(out), axis=-1), np.repeat(lengths, 7, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out[:, 0, 0], 0.04 * np.arange(7) * 50 / 30)  # the root: linear in time
    np.testing.assert_allclose(out[[0, 3, 6]], poses[[0, 5, 10]], atol=1e-12)  # at the source's frames: its poses
    # Between them each bone points half-way (frame 1 at 30 fps is 1/3 of the way from 50 fps
    # frame 1 to 2: 0.5 + 0.5 / 3 rad), where blending the joints shortens it by cos(0.25) and more.
    turned = np.einsum("ij,nj->ni", Rotation.from_euler("y", 0.5 * 5 / 3).as_matrix(), body - body[0])
    middle = bone_vectors(out[1:2])[0]
    cosine = (middle * bone_vectors(turned[None])[0]).sum(-1) / lengths[0] ** 2
    assert cosine.min() > np.cos(0.02)  # the normalised blend's direction, within 0.02 rad of the slerp
    assert np.linalg.norm(bone_vectors(resample(poses, 50.0, 30.0, 7)[1:2]), axis=-1).max() < 0.998 * lengths.max()


# ----------------------------------------------------------------------------- decoding and errors


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 25) -> None:
    """Encode (H, W, 3) uint8 RGB ``frames`` as an H.264 mp4 at ``fps``."""
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 3 s, 25 fps, 64x48 video whose frame i is uniformly grey at 3 i; and its decoded frames."""
    path = tmp_path_factory.mktemp("video") / "counter.mp4"
    write_clip(path, [np.full((48, 64, 3), 3 * i, dtype=np.uint8) for i in range(75)])
    return path, np.stack(list(open_video(path).frames()))


def test_the_whole_video_decodes(counter_video):
    path, frames = counter_video
    clip = open_video(path)
    assert (clip.width, clip.height, clip.fps) == (64, 48, 25.0)
    assert len(frames) == 75 and clip.estimated_frames() == 75
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), 3 * np.arange(75), atol=2.0)


def test_closing_a_reader_early_hides_ffmpegs_notice_that_it_was_killed(counter_video, monkeypatch, caplog):
    """imageio-ffmpeg logs "We had to kill ffmpeg to stop it." when a reader closed early
    outlives its grace period (a large frame): an expected event, not a line on stderr."""
    real = imageio_ffmpeg.read_frames

    def read_frames(*args, **kwargs):
        def frames():
            try:
                yield from real(*args, **kwargs)
            finally:
                logging.getLogger("imageio_ffmpeg").warning("We had to kill ffmpeg to stop it.")

        return frames()

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", read_frames)
    with caplog.at_level(logging.WARNING, logger="imageio_ffmpeg"):
        clip = open_video(counter_video[0])  # reads the header, then closes the reader
        frames = clip.frames()
        next(frames)
        frames.close()  # a cut that ends before the file does
        logging.getLogger("imageio_ffmpeg").warning("We had to kill ffmpeg to stop it.")  # shown elsewhere
    assert [record.getMessage() for record in caplog.records] == ["We had to kill ffmpeg to stop it."]


def test_a_frame_size_beyond_the_limit_is_refused_before_decoding(counter_video, monkeypatch):
    """A few hundred bytes of video can declare frames of gigabytes; 64x48 is 3,072 pixels."""
    monkeypatch.setenv("JOINTPOSE_MAX_VIDEO_PIXELS", "3071")
    with pytest.raises(JointposeError, match=r"counter\.mp4: 64x48 frames: pixels: 3072 exceeds the limit of 3071"):
        open_video(counter_video[0])
    monkeypatch.setenv("JOINTPOSE_MAX_VIDEO_PIXELS", "3072")
    assert open_video(counter_video[0]).width == 64


def test_a_frame_rate_beyond_the_limit_is_refused_before_decoding(counter_video, monkeypatch):
    monkeypatch.setenv("JOINTPOSE_MAX_FPS", "24")
    with pytest.raises(JointposeError, match=r"counter\.mp4: frame rate: 25 frames per second is outside"):
        open_video(counter_video[0])


def test_a_video_stored_with_a_rotation_decodes_as_displayed(tmp_path, caplog):
    # As phones store portrait video: landscape frames and a display rotation (90 degrees
    # anticlockwise). A 64x48 clip whose top-left 16x16 corner is white.
    stored, turned = tmp_path / "stored.mp4", tmp_path / "turned.mp4"
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[:16, :16] = 255
    write_clip(stored, [frame] * 5)
    remux = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(stored)]
    done = subprocess.run([*remux, "-c", "copy", str(turned)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg cannot write a display rotation: {done.stderr.strip()}")
    with caplog.at_level(logging.WARNING):
        clip = open_video(turned)
        frames = np.stack(list(clip.frames()))
    assert (clip.width, clip.height) == (48, 64) and frames.shape == (5, 64, 48, 3)
    # Turned 90 degrees anticlockwise, the top-left corner is at the bottom left.
    np.testing.assert_allclose(frames.mean(axis=0), np.rot90(frame, 1).astype(float), atol=40)
    assert not caplog.records  # imageio-ffmpeg's size warning is expected here, and kept quiet


def test_a_truncated_video_is_noted_where_its_decoding_ends_early(tmp_path):
    """A file cut short (a broken download or copy, its index first) decodes up to the break; a
    note says so instead of a silently shorter output. A whole file, or a cut of it, has none."""
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    frames = [np.random.default_rng(n).integers(0, 255, (48, 64, 3), dtype=np.uint8) for n in range(75)]
    write_clip(tmp_path / "plain.mp4", frames)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "plain.mp4"), "-c", "copy"]
    done = subprocess.run([*command, "-movflags", "+faststart", str(whole)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    clip = open_video(cut)
    decoded = len(list(clip.frames()))
    assert 10 < decoded < 50 and clip.estimated_frames() == 75
    note = clip.ended_early(decoded)
    assert note == (
        f"note: decoding {cut} ended after {decoded} frames where its duration (3.00 s) announces 75: "
        "the file may be truncated or damaged"
    )
    assert open_video(whole).ended_early(len(list(open_video(whole).frames()))) is None
    assert open_video(whole, 1.0, 2.0).ended_early(25) is None
    assert open_video(cut, 0.0, 1.0).ended_early(25) is None  # before the break
    assert open_video(whole).ended_early(63) is None and open_video(whole).ended_early(62) is not None


def test_a_video_of_variable_frame_rate_decodes_at_its_timestamps(tmp_path):
    # Phones lower the frame rate in dim light. 40 frames, frame n uniformly grey at 5 + 6 n,
    # shown at n / 30 s for the first 30 and 1 + (n - 30) / 10 s after: 30 fps for a second,
    # then 10 fps. Decoded frame i must show a frame on screen between i / fps and half a
    # frame later (ffmpeg's fps filter keeps the last frame whose time rounds to i).
    even, uneven = tmp_path / "even.mp4", tmp_path / "uneven.mp4"
    write_clip(even, [np.full((48, 64, 3), 5 + 6 * n, dtype=np.uint8) for n in range(40)], fps=30)
    retime = "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(even), "-vf", retime, "-fps_mode", "vfr"]
    done = subprocess.run([*command, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(uneven)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg cannot write variable frame rate: {done.stderr.decode().strip()}")
    clip = open_video(uneven)
    frames = np.stack(list(clip.frames()))
    shown = np.where(np.arange(40) < 30, np.arange(40) / 30, 1 + (np.arange(40) - 30) / 10)
    times = np.arange(len(frames)) / clip.fps
    first, last = (np.searchsorted(shown, t + 1e-6, side="right") - 1 for t in (times, times + 0.5 / clip.fps))
    decoded = np.rint((frames.mean(axis=(1, 2, 3)) - 5) / 6).astype(int)
    assert ((decoded >= first) & (decoded <= last)).all(), (decoded, first, last)
    assert times[-1] >= 1.7 and abs(len(frames) - clip.estimated_frames()) <= 4  # the whole clip, at fps


def test_start_and_end_cut_whole_frames(counter_video):
    path, frames = counter_video
    clip = open_video(path, start=1.0, end=2.2)
    cut = np.stack(list(clip.frames()))
    assert clip.first == 25 and clip.count == 30 and len(cut) == 30
    np.testing.assert_array_equal(cut, frames[25:55])
    assert len(list(open_video(path, start=1.0, end=1e308).frames())) == 50  # to the end, as for --end 9
    assert open_video(path, start=1.0, end=9.0).estimated_frames() == 50  # the progress bar's length
    assert open_video(path, start=1.0, end=3.0).estimated_frames() == 50


@pytest.mark.parametrize(
    "start,end,match",
    [
        (-1.0, None, "--start must be"),
        (2.0, 1.0, "--end 1 s must"),
        (9.0, None, "past the last frame"),
        (2.99, None, "--start 2.99 s rounds to frame 75, past the last frame of "),
        (2.99, None, "counter.mp4 (74, shown from 2.960 s)"),
        (1e308, None, "--start 1e+308 s rounds to frame"),
        (1e300, 1e308, "--start 1e+300 s rounds to frame"),
        (None, float("nan"), "--end"),
    ],
)
def test_bad_cuts_are_refused(counter_video, start, end, match):
    with pytest.raises(JointposeError) as error:
        open_video(counter_video[0], start, end)
    assert match.lstrip("-") in str(error.value)  # the Python argument, and on the command line its flag
    assert match in flag_message(error.value)


def test_missing_or_unreadable_video_is_refused(tmp_path):
    with pytest.raises(JointposeError, match="no such file"):
        open_video(tmp_path / "none.mp4")
    with pytest.raises(JointposeError, match="a folder, not a video file"):
        open_video(tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(JointposeError, match="cannot read it as a video"):
        open_video(text)
    sound = tmp_path / "sound.mp4"  # a recording without pictures
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac"]
    done = subprocess.run([*command, str(sound)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg cannot write audio: {done.stderr.strip()}")
    with pytest.raises(JointposeError, match=r"sound.mp4: holds no video stream, only audio$"):
        open_video(sound)


def test_missing_mediapipe_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(JointposeError, match=r'pip install "jointpose\[video\]"'):
        require_mediapipe()
    assert main(["video", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out.bvh"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "jointpose[video]"' in err
    assert not (tmp_path / "out.bvh").exists()
    # A bad --align-2d is named before the detector is looked for.
    bad = ["video", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out.bvh"), "--align-2d", "2", "--no-progress"]
    assert main(bad) == 2
    assert capsys.readouterr().err.strip() == "jointpose video: error: --align-2d must be a number in [0, 1], got 2.0"


def _small_lifter(fps: float = 50.0):
    from jointpose.inference.lifter import Lifter
    from jointpose.model.temporal import TemporalModel

    return Lifter(TemporalModel([3], channels=8), fps=fps)


def test_bad_options_are_refused_before_any_work(counter_video):
    from jointpose.inference.video import lift_video

    with pytest.raises(JointposeError, match="^lifter must be a Lifter, e.g. Lifter.from_pretrained"):
        lift_video(counter_video[0], None)
    lifter = _small_lifter()

    with pytest.raises(JointposeError, match="^confidence_threshold must lie in"):
        lift_video(counter_video[0], lifter, confidence_threshold=1.5)
    with pytest.raises(JointposeError, match="^focal_length must be"):
        lift_video(counter_video[0], lifter, focal_length=0.0)
    with pytest.raises(JointposeError, match="^height must be a standing height"):
        lift_video(counter_video[0], lifter, height=3.0)
    for person in ((float("nan"), 10.0), (1.0, 2.0, 3.0)):
        with pytest.raises(JointposeError, match="^person must be two finite pixel coordinates X Y") as error:
            lift_video(counter_video[0], lifter, person=person)
        assert flag_message(error.value).startswith("--person must be")
    for person in ((64.0, 10.0), (10.0, -1.0)):  # the clip is 64x48
        with pytest.raises(JointposeError, match=r"^person .* lies outside the video's 64x48 frame"):
            lift_video(counter_video[0], lifter, person=person)


def test_a_clip_too_slow_to_resample_to_the_models_rate_is_refused_before_detection(tmp_path):
    # 0.25 fps against the model's 50: a factor of 200, beyond JOINTPOSE_MAX_RESAMPLE (100);
    # resampled, its 3 frames would become 600, and a 1000-times slower clip 150,000.
    from jointpose.inference.video import lift_video

    path = tmp_path / "timelapse.mp4"
    write_clip(path, [np.full((48, 64, 3), 100, dtype=np.uint8)] * 3, fps=0.25)
    lifter = _small_lifter()
    with pytest.raises(JointposeError, match=r"timelapse\.mp4: resampling 0\.25 -> 50 fps \(factor\): 200 exceeds"):
        lift_video(path, lifter)


def test_native_logs_are_hidden_while_python_stderr_stays(capfd):
    from jointpose.data.blazepose import native_logs_hidden

    with native_logs_hidden():
        os.write(2, b"W0000 a native log line\n")  # as MediaPipe's C++ code writes
        print("a progress bar", file=sys.stderr)
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "a progress bar\nafter\n"


def test_cli_error_on_a_clip_without_anybody_is_one_line(tmp_path, capfd):
    # MediaPipe's native code logs a dozen lines to the process's stderr on every run; the
    # CLI's error must stay the only line there (they are shown with --debug).
    pytest.importorskip("mediapipe", reason="the video extra is not installed")
    clip = tmp_path / "black.mp4"
    write_clip(clip, [np.zeros((96, 128, 3), dtype=np.uint8)] * 10)
    assert main(["video", str(clip), "-o", str(tmp_path / "out.npz"), "--no-progress"]) == 2
    err = capfd.readouterr().err
    assert err == f"jointpose video: error: {clip}: no person found in any of its 10 frames\n"
    assert not (tmp_path / "out.npz").exists()


def test_export_writes_extra_arrays_and_leaves_no_partial_file(tmp_path):
    poses = np.zeros((4, 17, 3))
    out = export(tmp_path / "out.npz", poses, 60.0, extra={"confidence_2d": np.full((4, 17), 0.5)})
    assert load_npz(out)["confidence_2d"].shape == (4, 17)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]
    with pytest.raises(JointposeError, match="4 frames"):
        export(tmp_path / "bad.npz", poses, 60.0, extra={"confidence_2d": np.zeros((3, 17))})


def test_body_parts_outside_the_image_are_named_with_their_share_of_the_frames_found():
    width, height = 640, 480
    points = np.tile(np.array([[320.0, 240.0, 0.9]]), (20, 17, 1))
    points[16:] = np.nan  # nobody found in the last 4 frames: they do not count
    ankle, knee, wrist = (COCO.index(name) for name in ("l_ankle", "r_knee", "r_wrist"))
    points[:8, ankle, 1] = height + 30.0  # below the image in 8 of the 16 frames found
    points[:1, knee, 1] = height  # on the edge row's far side (pixels run 0 .. height - 1): 1 of 16
    points[4:8, wrist, 0] = -0.5  # left of the image in 4 of 16
    note = out_of_view_note(points, (width, height))
    assert note is not None and "wrists in 25%, ankles in 50%" in note and "knees" not in note
    points[:8, ankle, 1] = height - 1.0
    points[4:8, wrist, 0] = 0.0
    assert out_of_view_note(points, (width, height)) is None
    assert out_of_view_note(np.full((3, 17, 3), np.nan), (width, height)) is None


# ----------------------------------------------------------------------------- real footage


def footage(name: str) -> Path:
    pytest.importorskip("mediapipe", reason="the video extra is not installed")
    path = FOOTAGE / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: unzip Pose2Sim/Demo_SinglePerson/videos/*.mp4 (Demo_MultiPerson's into "
            f"multi-person/, Sports2D/Demo/demo.mp4 into sports2d/) from `pip download pose2sim==0.10.49 "
            f"sports2d==0.8.34 --no-deps` into {FOOTAGE} (see .ci/run) or set JOINTPOSE_FOOTAGE"
        )
    return path


def side_flips(xy: np.ndarray) -> np.ndarray:
    """Frames where the shoulders' left-right order flips while both frames show them well apart
    (more than 30% of their median width): a label swap, not a turn (which passes through 0)."""
    d = xy[:, COCO.index("l_shoulder"), 0] - xy[:, COCO.index("r_shoulder"), 0]
    wide = np.abs(d) > 0.3 * np.median(np.abs(d))
    return np.flatnonzero((np.sign(d[1:]) != np.sign(d[:-1])) & wide[1:] & wide[:-1]) + 1


@pytest.fixture(scope="module")
def cam02():
    """cam02 of the demo (1080x1920, 60 fps, 100 frames): BlazePose labels ~30 frames mirrored."""
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    return lift_video(str(footage("cam02.mp4")), Lifter.from_pretrained("video", device="cpu"), progress=False)


def test_real_footage_person_found_and_poses_per_video_frame(cam02):
    assert cam02.detections.found.mean() >= 0.95
    assert cam02.fps == 60.0 and cam02.clip.count == 100
    assert cam02.poses.shape == (100, 17, 3) and np.isfinite(cam02.poses).all()
    assert cam02.keypoints.xy.shape == (100, 17, 2) and cam02.keypoints.confidence.shape == (100, 17)


def test_a_video_result_exports_a_track_that_reads_back_as_it_was_lifted(cam02, tmp_path):
    """``VideoResult.export`` writes what ``jointpose video -o`` writes: the poses, and the 2D
    track with what infer needs to lift it again (here at the threshold lift_video was given)."""
    from jointpose.data.keypoints import load_keypoints

    path = cam02.export(tmp_path / "c.npz")
    saved = load_npz(path)
    np.testing.assert_array_equal(saved["poses_3d"], cam02.poses.astype(saved["poses_3d"].dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JointposeWarning)  # the notes of the filled joints
        track = load_keypoints(path)
    assert track.source_format == "video" and track.image_size == (1080, 1920) and track.fps == 60.0
    assert track.first_frame == 0 and track.switches == [] and track.height is None
    np.testing.assert_allclose(track.xy, cam02.keypoints.xy, atol=1e-3)
    assert cam02.confidence_threshold == 0.1 and abs(float(saved["confidence_threshold"]) - 0.1) < 1e-7
    assert cam02.export(tmp_path / "c.csv").read_text().count("\n") > 100


def test_real_footage_one_person_counted_and_no_note(cam02):
    assert cam02.detections.people == {0: 1, 60: 1}  # a count every second (60 frames)
    assert not any("several people" in note for note in cam02.notes)


def test_real_footage_keeps_the_detectors_guess_for_a_joint_it_sees_poorly():
    """cam03 sees the right arm behind the body: BlazePose's visibility there is often under
    0.3, and its own guesses lift better than interpolation (docs/tuning.md): only points
    under VISIBILITY_THRESHOLD (0.1) are filled."""
    from jointpose.data.layouts import VISIBILITY_THRESHOLD
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    result = lift_video(str(footage("cam03.mp4")), Lifter.from_pretrained("video", device="cpu"), progress=False)
    confidence, filled = result.keypoints.confidence, result.keypoints.filled
    assert VISIBILITY_THRESHOLD == 0.1 and result.detections.found.all()
    poorly_seen = (confidence >= 0.1) & (confidence < 0.3)
    assert poorly_seen.sum() >= 30 and not filled[poorly_seen].any()  # the detector's points, kept
    assert filled[confidence < 0.1].all() and not filled[confidence >= 0.1].any()


def test_real_footage_several_people_are_noted():
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    # Demo_MultiPerson's cam04: the woman at the back and the man in front, both in full view.
    result = lift_video(
        str(footage("multi-person/cam04.mp4")), Lifter.from_pretrained("video", device="cpu"), progress=False
    )
    # Counted every second, and every quarter second once others are in view.
    assert result.detections.people == {frame: 2 for frame in range(0, 100, 15)}
    assert "several people in view: 7 of 7 counted frames show 2 (first in frame 0)" in "\n".join(result.notes)
    # The track follows the larger in the image, the man (hips near (394, 975) px; the
    # detector's own pick would be the woman, near (790, 690)); the note says where each stood.
    assert "followed the largest of the 2 people found in frame 0" in "\n".join(result.notes)
    places = re.search(
        r"In frame 0 the track's hips are at \((\d+), (\d+)\) px, the other's at \((\d+), (\d+)\)",
        "\n".join(result.notes),
    )
    assert places is not None and "--person X Y follows another" in "\n".join(result.notes)
    track, other = np.array(places.groups(), dtype=float).reshape(2, 2)
    assert np.linalg.norm(track - [394, 975]) < 15 and np.linalg.norm(other - [790, 690]) < 15
    assert result.detections.switches == []


def test_real_footage_a_track_sliding_to_another_person_is_noted():
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    # Demo_MultiPerson's cam03: the man faces away (BlazePose's person detector, which goes by
    # faces, sees only one person) and the track slides onto the woman in frames 78-82 (seen
    # frame by frame) without losing anyone.
    result = lift_video(
        str(footage("multi-person/cam03.mp4")), Lifter.from_pretrained("video", device="cpu"), progress=False
    )
    assert result.detections.people[0] == 2  # found with the man painted over
    (switch,) = result.detections.switches
    assert 77 <= switch <= 83
    assert f"the track may have moved to another person in frame {switch} ({switch / 60:.2f} s)" in "\n".join(
        result.notes
    )
    # Lifted apart: one skeleton for each person's part, each its own.
    assert "lifted in 2 parts, split where the track may have moved to another person" in result.notes
    lengths = np.linalg.norm(bone_vectors(result.poses), axis=-1)
    assert max(np.ptp(lengths[:switch], axis=0).max(), np.ptp(lengths[switch:], axis=0).max()) < 1e-3
    assert np.abs(lengths[switch] - lengths[switch - 1]).max() > 0.01


def test_real_footage_a_track_lost_is_not_restarted_on_somebody_else():
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    # Sports2D's demo (1768x994, 30 fps, 230 frames): a man on a box (hips near y = 250 px),
    # a woman walking past below (hips near y = 720), from the right edge (frame 60) to the
    # left one (x < 450 from frame 160, out of the image after frame 200). Seen frame by
    # frame: the man flips off the box into the sun's glare (frame 170) and lands on the
    # grass at the right (hips right of x = 1000 from frame 188). The person detector finds
    # the woman first once the man is lost; she stood where the count had seen another
    # person, far from where he was lost, so the track waits for him.
    result = lift_video(
        str(footage("sports2d/demo.mp4")), Lifter.from_pretrained("video", device="cpu"), progress=False
    )
    detections = result.detections
    assert detections.switches == [] and "lifted in" not in "\n".join(result.notes)
    assert detections.refused and 170 <= min(detections.refused) and max(detections.refused) < 188
    hips = detections.points[:, [COCO.index("l_hip"), COCO.index("r_hip")], :2].mean(axis=1)
    assert not detections.found[171:185].any()
    assert detections.found[190:225].all() and hips[190:225, 0].min() > 1000  # on the man again
    assert not (hips[160:201, 0] < 450).any()  # never on the woman
    assert any(
        note.startswith("after the track was lost, somebody else was found in frames 171") for note in result.notes
    )
    assert result.poses.shape == (230, 17, 3) and np.isfinite(result.poses).all()
    lengths = np.linalg.norm(bone_vectors(result.poses), axis=-1)
    assert np.ptp(lengths, axis=0).max() < 1e-3  # one person, one skeleton
    assert max(detections.people.values()) == 2
    assert {frame: detections.people[frame] for frame in (30, 100)} == {30: 1, 100: 2}


def test_real_footage_the_person_nearest_to_a_point_is_followed():
    from jointpose.data.detect import detect_frames

    # Demo_MultiPerson's cam04: the man starts at the front left (hips near (394, 975) px),
    # the larger in the image, and walks towards the woman standing at the back (hips near
    # (790, 690)); seen frame by frame. By default the track follows the man; pointed at the
    # woman, her.
    clip = open_video(footage("multi-person/cam04.mp4"))
    default = detect_frames(clip.frames(), progress=False, fps=clip.fps)
    chosen = detect_frames(clip.frames(), progress=False, fps=clip.fps, person=(800.0, 700.0))
    assert default.found.all() and chosen.found.all() and chosen.switches == default.switches == []
    coco_hips = [COCO.index("l_hip"), COCO.index("r_hip")]
    man, woman = (d.points[:, coco_hips, :2].mean(axis=1) for d in (default, chosen))
    assert np.linalg.norm(woman - [790, 690], axis=1).max() < 60  # she barely moves
    assert np.linalg.norm(man[0] - [394, 975]) < 30
    assert np.linalg.norm(man - woman, axis=1).min() > 200  # never on her
    assert "followed the person nearest to (800, 700) px from frame 0" in chosen.notes


def test_real_footage_everyone_in_the_first_frame_is_found():
    from jointpose.data.blazepose import PeopleCounter

    # Demo_SinglePerson: one person; Demo_MultiPerson: two in every view (in cam03 the man,
    # in front, faces away from the camera).
    footage("cam01.mp4")  # skips without the video extra
    counter = PeopleCounter()
    try:
        for name, count in [
            *((f"cam0{i}.mp4", 1) for i in range(1, 5)),
            *((f"multi-person/cam0{i}.mp4", 2) for i in range(1, 5)),
        ]:
            frame = next(iter(open_video(footage(name)).frames()))
            assert len(counter.everyone(frame)) == count, name
    finally:
        counter.close()


def test_real_footage_nobody_near_the_point_is_refused(counter_video):
    from jointpose.data.detect import detect_frames

    pytest.importorskip("mediapipe", reason="the video extra is not installed")
    clip = open_video(counter_video[0])  # uniformly grey frames: nobody in any of them
    with pytest.raises(JointposeError, match="^person 10 20: nobody to follow there in any of the clip's 75 frames"):
        detect_frames(clip.frames(), progress=False, fps=clip.fps, person=(10.0, 20.0))


def _video_views_benchmark():
    """benchmarks/video_views.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("video_views", ROOT / "benchmarks" / "video_views.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_reference_takes_left_and_right_from_the_views():
    views_benchmark = _video_views_benchmark()
    # A person (COCO-17, metres; z up, facing +y, so their left is at -x) turning slowly in
    # place, seen by three cameras 4 m away at 1 m height.
    side = {"nose": (0, 0.10, 1.60), "eye": (0.03, 0.08, 1.65), "ear": (0.07, 0.0, 1.62),
            "shoulder": (0.20, 0, 1.40), "elbow": (0.25, 0, 1.10), "wrist": (0.25, 0.05, 0.85),
            "hip": (0.12, 0, 0.95), "knee": (0.12, 0.02, 0.50), "ankle": (0.12, 0, 0.08)}  # fmt: skip
    body = np.array(
        [side[n[2:]] * np.array([-1 if n.startswith("l_") else 1, 1, 1]) if n != "nose" else side[n] for n in COCO]
    )
    turn = np.radians(np.arange(20) * 4.0)
    rotation = np.stack(
        [np.stack([np.cos(turn), -np.sin(turn), 0 * turn], -1), np.stack([np.sin(turn), np.cos(turn), 0 * turn], -1),
         np.broadcast_to([0.0, 0.0, 1.0], (20, 3))], axis=1,
    )  # fmt: skip
    world = body @ rotation.transpose(0, 2, 1)  # (20, 17, 3)
    projections = []
    for angle in (-100.0, 0.0, 120.0):  # camera positions around the person, degrees from -y
        centre = 4.0 * np.array([np.sin(np.radians(angle)), -np.cos(np.radians(angle)), 0.0]) + [0, 0, 1.0]
        forward = ([0, 0, 1.0] - centre) / np.linalg.norm([0, 0, 1.0] - centre)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        r = np.stack([right, np.cross(forward, right), forward])
        k = np.array([[1000.0, 0, 960], [0, 1000, 540], [0, 0, 1]])
        projections.append(k @ np.concatenate([r, -r @ centre[:, None]], axis=1))
    projections = np.stack(projections)
    truth = np.stack([views_benchmark.reprojection(world, p) for p in projections])  # (3, 20, 17, 2)
    expected = np.zeros((3, 20), dtype=bool)
    expected[1, 5:10] = True  # one view mirrored
    expected[:, 12:15] = True  # every view mirrored: only the nose tells
    seen = np.where(expected[..., None, None], np.stack([mirrored(v, slice(None)) for v in truth]), truth)
    xy, weights, exchanged = views_benchmark.labels_from_views(seen, np.ones((3, 20, 17)), projections)
    np.testing.assert_array_equal(exchanged, expected)
    np.testing.assert_allclose(xy, truth, atol=1e-6)
    np.testing.assert_array_equal(weights, np.ones((3, 20, 17)))


def test_the_benchmark_distance_of_a_view_to_the_reference_takes_each_frames_best_labels():
    views_benchmark = _video_views_benchmark()
    rng = np.random.default_rng(0)
    reprojected = rng.uniform(100, 900, size=(6, 17, 2))
    points = reprojected + [3.0, 4.0]  # 5 px off everywhere
    points[1, :5] += 30.0  # the face 30 px further in one frame: the median keypoint keeps 5 px
    points[[0, 2, 3, 5]] = mirrored(points[[0, 2, 3, 5]], slice(None))  # most frames labelled mirrored
    points[4] = np.nan  # nobody found
    assert views_benchmark.view_distance(points, reprojected) == pytest.approx(5.0)


def test_nearest_person():
    from jointpose.data.people import nearest_person

    people = [_standing(300.0), _standing(700.0)]  # body boxes x 280-320 and 680-720, y 400-500
    assert nearest_person(people, (480.0, 450.0)) == 0  # 160 px from the first box, 200 from the second
    assert nearest_person(people, (690.0, 100.0)) == 1
    overlapping = [_standing(300.0), _standing(310.0)]  # both boxes hold x 290-320
    assert nearest_person(overlapping, (309.0, 450.0)) == 1  # then the nearest hip centre
    assert nearest_person(overlapping, (301.0, 450.0)) == 0


def test_people_notes():
    from jointpose.data.detect import _people_notes

    assert _people_notes({}) == [] and _people_notes({0: 1, 30: 0, 60: 1}) == []
    (note,) = _people_notes({0: 1, 30: 2, 60: 3, 90: 1})
    assert note.startswith("several people in view: 2 of 4 counted frames show 2 to 3 (first in frame 30)")
    (note,) = _people_notes({0: 1, 30: 2}, (30, np.array([100.4, 200.6]), np.array([[300.0, 400.0]])), 60.0)
    assert note.endswith(
        ". In frame 30 (0.50 s into the clip) the track's hips are at (100, 201) px, the other's at (300, 400): "
        "--person X Y, with --start there, follows another"
    )


def _standing(x: float, torso: float = 100.0) -> np.ndarray:
    """BlazePose-33 landmarks of an upright person whose hips' mid-point is at (x, 500) pixels."""
    points = np.zeros((33, 3))
    points[:, 0], points[:, 1], points[:, 2] = x, 500.0 - torso / 2, 1.0  # everything else mid-torso
    points[[11, 12], 1] = 500.0 - torso  # shoulders
    points[[23, 24], 1] = 500.0  # hips
    points[[11, 23], 0] += 20.0  # left side
    points[[12, 24], 0] -= 20.0
    return points


def test_hip_centre_and_torso_length():
    from jointpose.data.blazepose import hip_centre, torso_length

    person = _standing(300.0, torso=80.0)
    assert np.allclose(hip_centre(person), [300.0, 500.0]) and np.isclose(torso_length(person), 80.0)
    both = np.stack([person, _standing(10.0, torso=50.0)])
    assert np.allclose(hip_centre(both), [[300.0, 500.0], [10.0, 500.0]]) and np.allclose(torso_length(both), [80, 50])


def test_switch_watch_notes_the_track_reaching_where_another_stood():
    from jointpose.data.people import SwitchWatch

    watch = SwitchWatch(fps=10.0)
    watch.update(0, _standing(0.0), [_standing(300.0)])  # another person 3 torso lengths away
    # The track walks towards them 20 px a frame: 0.6 torso lengths (60 px) away at x = 240.
    moved = [watch.moved(frame, _standing(20.0 * frame)) for frame in range(20)]
    assert np.flatnonzero(moved).tolist() == [13]  # x = 260 (240 is not nearer than 0.6), once


def test_switch_watch_takes_the_first_person_tracked_for_no_switch():
    from jointpose.data.people import SwitchWatch

    watch = SwitchWatch(fps=10.0)
    watch.update(0, None, [_standing(300.0), _standing(700.0)])  # two people, nobody tracked yet
    assert not watch.moved(3, _standing(300.0))  # the track starts on one of them
    assert watch.moved(4, _standing(690.0))  # and jumps to the other


def test_switch_watch_ignores_others_at_the_track_and_forgets_unseen_ones():
    from jointpose.data.people import SwitchWatch

    watch = SwitchWatch(fps=10.0)
    watch.update(0, _standing(0.0), [_standing(50.0)])  # half a torso away at the count: the same person
    assert not watch.moved(1, _standing(50.0))
    watch.update(2, _standing(0.0), [_standing(300.0)])
    watch.update(10, _standing(0.0), [])  # hidden for 0.8 s: still remembered
    watch.update(13, _standing(0.0), [])  # 1.1 s unseen: forgotten
    assert not watch.moved(14, _standing(300.0))


@pytest.mark.parametrize(
    "frame, distance, moved",
    [
        (11, 150.0, False),  # not lost: fast motion is not a switch
        (13, 170.0, False),  # lost in 2 frames at 30 fps: allowed 100 px x (1 + 8 x 3 / 30) = 180 px
        (13, 190.0, True),
        (40, 850.0, False),  # lost for a second: allowed 900 px
        (40, 950.0, True),
    ],
)
def test_switch_watch_notes_a_track_found_again_farther_than_a_person_moves(frame, distance, moved):
    from jointpose.data.people import SwitchWatch

    watch = SwitchWatch(fps=30.0)
    assert not watch.moved(10, _standing(0.0))  # torso 100 px
    assert watch.moved(frame, _standing(distance)) == moved


def test_switch_watch_tells_somebody_else_found_after_a_loss():
    from jointpose.data.people import SwitchWatch

    watch = SwitchWatch(fps=30.0)
    assert not watch.moved(10, _standing(0.0))  # the track (torso 100 px), lost after frame 10
    watch.update(12, None, [_standing(600.0)])  # a count while lost: somebody at x = 600
    assert not watch.is_other(11, _standing(590.0))  # not lost: that is for moved() to say
    # Lost for 3 frames: the person followed reaches 100 x (1 + 8 x 3 / 30) = 180 px, the
    # other, seen a frame before, 100 x (1 + 8 / 30) = 127 px.
    assert not watch.is_other(13, _standing(170.0))  # could be the person followed
    assert not watch.is_other(13, _standing(750.0))  # could be neither: a third person
    assert watch.is_other(13, _standing(700.0))  # the other, 100 px on
    assert watch.is_other(14, _standing(810.0))  # their place moved with them: 110 px on
    assert not watch.is_other(15, _standing(940.0))  # 130 px on in a frame: too far for them
    fresh = SwitchWatch(fps=30.0)
    assert not fresh.is_other(13, _standing(600.0))  # nobody followed yet


class _ScriptedDetector:
    """Stands in for PoseDetector: returns the given landmarks in turn, recording resets and
    whether each frame it was shown had been painted over."""

    def __init__(self, *results: np.ndarray | None) -> None:
        self.results, self.resets, self.painted = list(results), 0, []

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        self.painted.append(bool((frame == 128).any()))
        return self.results.pop(0)

    def reset(self) -> None:
        self.resets += 1


@pytest.mark.parametrize(
    "results, kept, resets",
    [
        ((_standing(100.0),), 0, 1),  # after painting the other over: the person followed
        ((None,), None, 1),  # after painting the other over: nobody
        ((_standing(605.0),) * 4, None, 5),  # the other every time: given up after MAX_PEOPLE looks
    ],
)
def test_refind_paints_over_somebody_else_and_looks_again(results, kept, resets):
    pytest.importorskip("cv2", reason="OpenCV comes with the video extra")
    from jointpose.data.blazepose import MAX_PEOPLE
    from jointpose.data.people import SwitchWatch, refind

    assert MAX_PEOPLE == 4
    watch = SwitchWatch(fps=30.0)
    watch.moved(10, _standing(0.0))
    watch.update(12, None, [_standing(600.0)])
    detector = _ScriptedDetector(*results)
    frame = np.zeros((1000, 1000, 3), dtype=np.uint8)
    landmarks, refused = refind(detector, watch, frame, 13, _standing(600.0))
    assert refused and detector.resets == resets and all(detector.painted)
    assert landmarks is None if kept is None else np.array_equal(landmarks, results[kept])
    untouched = _ScriptedDetector()
    assert refind(untouched, watch, frame, 13, _standing(100.0))[1] is False and untouched.resets == 0


def test_switch_notes():
    from jointpose.data.detect import _switch_notes

    assert _switch_notes([], 30.0) == []
    (note,) = _switch_notes([45], 30.0)
    assert note.startswith("the track may have moved to another person in frame 45 (1.50 s) (it came")
    (note,) = _switch_notes([3, 40, 41, 50, 60, 70, 80], 20.0)
    assert note.startswith(
        "the track may have moved to another person in frames 3 (0.15 s), 40 (2.00 s), 41 (2.05 s), "
        "50 (2.50 s), 60 (3.00 s) and 2 more ("
    )


def test_paint_over_hides_the_person_and_nothing_else():
    pytest.importorskip("cv2", reason="OpenCV comes with the video extra")
    from jointpose.data.blazepose import paint_over

    frame = np.zeros((1000, 1000, 3), dtype=np.uint8)
    person = _standing(500.0)
    person[[13, 15], :2] = [[560.0, 450.0], [600.0, 400.0]]  # the left arm raised to the right
    person[[25, 27], :2] = [[520.0, 600.0], [520.0, 700.0]]  # the left leg
    person[0, :2] = [500.0, 360.0]  # the nose
    painted = paint_over(frame, person)
    assert frame.max() == 0  # the input is left as it was
    grey = (painted == 128).all(axis=-1)
    for x, y in [(500, 450), (580, 425), (520, 650), (500, 325)]:  # torso, forearm, shin, head (disc of 45 px)
        assert grey[y, x], (x, y)
    assert not grey[100, 100] and not grey[900, 900] and not grey[450, 700]


def test_others_leaves_out_finds_much_smaller_than_the_tracked_person():
    pytest.importorskip("cv2", reason="OpenCV comes with the video extra")
    from jointpose.data.blazepose import PeopleCounter

    counter = object.__new__(PeopleCounter)  # no models: the finds are given
    near, far = _standing(300.0), _standing(800.0, torso=20.0)  # bodies spanning 108 and 45 px (diagonal)
    counter.find = lambda frame: [near, far]
    frame = np.zeros((1000, 1000, 3), dtype=np.uint8)
    kept = counter.others(frame, _standing(0.0, torso=100.0))  # at least 75 px wanted
    assert len(kept) == 1 and kept[0] is near
    assert len(counter.others(frame, None)) == 2  # without a track nothing to compare with


def test_real_footage_left_right_consistent_through_time(cam02):
    raw = cam02.detections.points[..., :2]
    assert len(side_flips(raw)) >= 2  # the detector swaps labels in this clip
    repaired, _, swapped = repair_swaps(raw, cam02.detections.points[..., 2], PAIRS)
    assert len(side_flips(repaired)) == 0
    assert 25 <= swapped.sum() <= 40
    # The lifted input follows the repaired labels: H36M's left shoulder is COCO's.
    lsh, rsh = skeleton.JOINT_NAMES.index("LShoulder"), skeleton.JOINT_NAMES.index("RShoulder")
    np.testing.assert_allclose(cam02.keypoints.xy[:, [lsh, rsh]], repaired[:, [5, 6]], atol=1e-9)
    # In 3D, the person's left stays on the same side of the body through the clip: the
    # left-right shoulder axis never turns by more than 90 degrees in one frame.
    axis = cam02.poses[:, lsh] - cam02.poses[:, rsh]
    assert ((axis[1:] * axis[:-1]).sum(-1) > 0).all()


def test_real_footage_single_limb_swaps_are_repaired(cam02):
    points = cam02.detections.points
    xy, conf, _ = repair_swaps(points[..., :2], np.nan_to_num(points[..., 2]), PAIRS)
    repaired, _, exchanged = repair_limb_swaps(xy, conf, COCO)
    # BlazePose's own: in frame 60 the legs (knees, ankles) are labelled the wrong way round
    # (the other three views, triangulated, put them 160-260 px from the labels, 5-24 px
    # exchanged); a few frames at most are touched.
    legs = [int(np.flatnonzero(PAIRS[:, 0] == COCO.index(f"l_{p}"))[0]) for p in ("knee", "ankle")]
    assert exchanged[60, legs].all() and exchanged.any(axis=1).sum() <= 4
    for parts, frames in LIMB_SWAPS:
        injected = limb_swapped(repaired, parts, frames)
        np.testing.assert_array_equal(repair_limb_swaps(injected, conf, COCO)[0], repaired)


def test_real_footage_bone_lengths_constant(cam02):
    lengths = np.linalg.norm(bone_vectors(cam02.poses), axis=-1)  # (F, 16) metres
    assert (lengths.std(axis=0) / lengths.mean(axis=0)).max() < 0.005
    assert 0.3 < lengths[:, skeleton.bone_index(skeleton.JOINT_NAMES.index("RKnee"))].mean() < 0.6  # a thigh


def test_real_footage_root_path_is_filtered(cam02):
    # One frame's rays fix the root's depth through the body's size in the image: fitted frame
    # by frame, the root jumps with the detector's noise. The path written (rays and path
    # filtered over 80 ms) keeps where the per-frame fit puts the person and a tenth of its
    # frame-to-frame acceleration at most.
    from jointpose.geometry.cameras import Camera, normalize_keypoints, root_trajectory

    assumed = Camera.assumed(*cam02.clip.size)
    per_frame = root_trajectory(cam02.poses, normalize_keypoints(cam02.keypoints.xy, assumed, "intrinsics"))

    def acceleration(path: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(path, 2, axis=0), axis=-1).mean())

    assert acceleration(cam02.trajectory) < 0.1 * acceleration(per_frame)
    assert np.abs(np.median(cam02.trajectory - per_frame, axis=0)).max() < 0.05  # metres


def test_real_footage_trajectory_without_the_intrinsics_is_the_assumed_cameras():
    from jointpose.geometry.cameras import DEFAULT_FOV_DEG, Camera
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    clip, lifter = str(footage("cam02.mp4")), Lifter.from_pretrained("video", device="cpu")
    plain = lift_video(clip, lifter, end=0.5, progress=False)
    assert any(
        f"assumed a {DEFAULT_FOV_DEG:g} degree field of view over the image's longer side" in n for n in plain.notes
    )
    # A portrait clip (1080 x 1920): 65 degrees over its 1920 px height, 1507 px.
    focal = 960 / np.tan(np.radians(DEFAULT_FOV_DEG / 2))
    np.testing.assert_allclose(Camera.assumed(1080, 1920).focal_length[0], focal)
    given = lift_video(clip, lifter, end=0.5, focal_length=focal, progress=False)
    assert plain.trajectory.shape == (30, 3)
    np.testing.assert_allclose(plain.trajectory, given.trajectory, rtol=1e-6)
    np.testing.assert_allclose(plain.poses, given.poses, rtol=1e-6, atol=1e-7)
    # With cam02's calibrated focal length (1681 px; Pose2Sim's calibration) the root is
    # 3.6-3.9 m away. The assumed lens (1507 px) sees the same image through slightly wider
    # angles: the root comes out about 1507 / 1681 = 0.9 times as far, as far off the axis in metres.
    calibrated = lift_video(clip, lifter, end=0.5, focal_length=1681.2, progress=False)
    depth = plain.trajectory[:, 2] / calibrated.trajectory[:, 2]
    assert (0.85 < depth).all() and (depth < 0.93).all()
    assert np.abs(plain.trajectory[:, :2] - calibrated.trajectory[:, :2]).max() < 0.06


def test_real_footage_height_scales_the_person_and_keeps_the_image():
    from jointpose.geometry.bones import standing_height
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    clip, lifter = str(footage("cam04.mp4")), Lifter.from_pretrained("video", device="cpu")
    plain = lift_video(clip, lifter, end=0.5, focal_length=1500.0, progress=False)
    short = lift_video(clip, lifter, end=0.5, focal_length=1500.0, height=1.55, progress=False)
    assert any(note.startswith("scaled to a standing height of 1.55 m") for note in short.notes)
    # One factor for every joint, frame and the trajectory (scaled at the model's 50 fps, then
    # resampled back to the video's 60): the image stays, the person is 1.55 m tall.
    factor = np.median(np.linalg.norm(short.trajectory, axis=-1) / np.linalg.norm(plain.trajectory, axis=-1))
    np.testing.assert_allclose(short.poses, factor * plain.poses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(short.trajectory, factor * plain.trajectory, rtol=1e-5)
    assert factor == pytest.approx(1.55 / standing_height(plain.poses), rel=1e-3)
    assert standing_height(short.poses) == pytest.approx(1.55, rel=1e-3)


def test_real_footage_cli_writes_bvh_and_render(tmp_path):
    clip = footage("cam01.mp4")
    bvh, render = tmp_path / "cam01.bvh", tmp_path / "cam01.mp4"
    assert (
        main(
            [
                "video",
                str(clip),
                "-o",
                str(bvh),
                "--render",
                str(render),
                "--end",
                "0.5",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    motion = read_bvh(bvh)
    assert motion.rotations.shape[0] == 30 and motion.frame_time == pytest.approx(1 / 60)
    assert open_video(render).fps == 60.0
    assert len(list(open_video(render).frames())) == 30


def test_real_footage_track_is_lifted_again_by_infer_as_the_video_run_lifted_it(tmp_path, capsys):
    """The npz of a 60 fps clip lifted with its focal length and the person's height records
    both; infer reads them and the frame rate back and writes one pose per video frame, as the
    video run did."""
    from jointpose.geometry.bones import standing_height

    clip = footage("cam01.mp4")
    out, again = tmp_path / "cam01.npz", tmp_path / "again.npz"
    flags = ["--end", "0.5", "--device", "cpu", "--no-progress"]
    assert main(["video", str(clip), "-o", str(out), "--focal-length", "1681.2", "--height", "1.62", *flags]) == 0
    video = load_npz(out)
    assert float(video["focal_length"]) == pytest.approx(1681.2)  # float32, as the poses
    np.testing.assert_array_equal(video["principal_point"], np.array(open_video(clip).size) / 2)
    assert float(video["height"]) == pytest.approx(1.62) and standing_height(video["poses_3d"]) == pytest.approx(1.62)
    capsys.readouterr()
    assert main(["infer", str(out), "-o", str(again), "--pretrained", "video", *flags[2:]]) == 0
    printed = capsys.readouterr().out
    assert f"the camera {out} records" in printed and "camera: focal length 1681 px" in printed
    assert "scaled to a standing height of 1.62 m (x " in printed and f"the height {out} records" in printed
    lifted = load_npz(again)
    assert float(lifted["fps"]) == 60.0 and lifted["poses_3d"].shape == video["poses_3d"].shape == (30, 17, 3)
    assert np.abs(lifted["poses_3d"] - video["poses_3d"]).max() < 0.005  # metres
    assert np.abs(lifted["trajectory"] - video["trajectory"]).max() < 0.005


def test_real_footage_track_split_between_people_is_lifted_again_in_its_parts(tmp_path, capsys):
    """Where the track may move to another person (cam03 of Demo_MultiPerson, 0.35 s into
    the cut), the output records each frame's stretch, and infer lifts the stretches apart
    as the video run did: the same poses and trajectory."""
    clip = footage("multi-person/cam03.mp4")
    out, again = tmp_path / "m3.npz", tmp_path / "again.npz"
    cut = ["--start", "1.0", "--end", "1.7", "--focal-length", "1681", "--device", "cpu", "--no-progress"]
    assert main(["video", str(clip), "-o", str(out), *cut]) == 0
    assert "lifted in 2 parts" in capsys.readouterr().out
    video = load_npz(out)
    np.testing.assert_array_equal(video["track_part"], np.repeat([0, 1], [21, 19]))
    assert main(["infer", str(out), "-o", str(again), "--pretrained", "video", "--no-progress"]) == 0
    assert f"lifted in 2 parts, split where {out} records" in capsys.readouterr().out
    lifted = load_npz(again)
    assert np.abs(lifted["poses_3d"] - video["poses_3d"]).max() < 1e-5  # metres
    assert np.abs(lifted["trajectory"] - video["trajectory"]).max() < 1e-5
    # A BVH has one skeleton: the parts share its bone lengths, and the output says so.
    assert main(["infer", str(out), "-o", str(tmp_path / "m3.bvh"), "--pretrained", "video", "--no-progress"]) == 0
    assert "a BVH file has one skeleton: the track's 2 parts (perhaps different people)" in capsys.readouterr().out


def test_real_footage_cut_track_is_drawn_over_its_own_frames_of_the_whole_video(tmp_path, capsys):
    """A track cut with --start records the video frame it starts at; infer and render draw it
    over those frames of the whole video, as video --render drew the cut."""
    clip = footage("cam01.mp4")
    out, drawn = tmp_path / "cut.npz", tmp_path / "video.mp4"
    cut = ["--start", "0.5", "--end", "1.0", "--device", "cpu", "--no-progress"]
    assert main(["video", str(clip), "-o", str(out), "--render", str(drawn), *cut]) == 0
    assert int(load_npz(out)["first_frame"]) == 30
    capsys.readouterr()
    whole = ["--video", str(clip), "--no-progress"]
    assert (
        main(["render", "--keypoints-file", str(out), "--poses", str(out), "-o", str(tmp_path / "r.mp4"), *whole]) == 0
    )
    assert "--video drawn from its frame 30 (0.50 s), where the track starts" in capsys.readouterr().out
    again = [
        "infer",
        str(out),
        "-o",
        str(tmp_path / "i.npz"),
        "--pretrained",
        "video",
        "--render",
        str(tmp_path / "i.mp4"),
    ]
    assert main([*again, *whole]) == 0
    expected = iio.imread(drawn, index=None).astype(np.float64)
    for name in ("r.mp4", "i.mp4"):
        frames = iio.imread(tmp_path / name, index=None).astype(np.float64)
        assert frames.shape == expected.shape == (30, 416, 1060, 3)
        # The video's panel (the left 200 px): 1.7 over the same frames (codec noise), 5.9 over
        # the video's first 30 frames.
        assert np.abs(frames - expected)[:, :, :200].mean() < 3.0


def test_real_footage_cli_follows_the_person_asked_for(tmp_path, capsys):
    clip = footage("multi-person/cam04.mp4")  # the man at the front left, the woman at the back
    out = tmp_path / "woman.npz"
    common = [str(clip), "-o", str(out), "--end", "0.5", "--device", "cpu", "--no-progress"]
    assert main(["video", *common, "--person", "800", "700"]) == 0
    assert "followed the person nearest to (800, 700) px from frame 0" in capsys.readouterr().out
    hips = np.load(out)["keypoints_2d"][:, [skeleton.JOINT_NAMES.index(n) for n in ("LHip", "RHip")]].mean(axis=1)
    assert len(hips) == 30 and np.linalg.norm(hips - [790, 690], axis=1).max() < 60
    assert np.linalg.norm(hips - [394, 975], axis=1).min() > 200  # never on the man
    assert main(["video", *common, "--person", "nan", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(
        "error: --person must be two finite pixel coordinates X Y, got [nan, 5.0]"
    )


def test_real_footage_phone_style_rotated_clip_gives_the_upright_result(tmp_path):
    from jointpose.data.detect import detect_frames

    # A phone films portrait video as landscape frames plus a display rotation. Half a second
    # of cam02, encoded both ways: upright, and turned 90 degrees clockwise into landscape
    # frames with a display rotation that turns them back.
    source, upright, landscape, phone = (tmp_path / f"{n}.mp4" for n in ("source", "upright", "landscape", "phone"))
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error"]
    encode = ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p"]
    subprocess.run([*ffmpeg, "-i", str(footage("cam02.mp4")), "-t", "0.5", "-c", "copy", str(source)], check=True)
    subprocess.run([*ffmpeg, "-i", str(source), *encode, str(upright)], check=True)
    subprocess.run([*ffmpeg, "-i", str(source), "-vf", "transpose=1", *encode, str(landscape)], check=True)
    done = subprocess.run([*ffmpeg, "-display_rotation", "90", "-i", str(landscape), "-c", "copy", str(phone)])
    if done.returncode != 0:
        pytest.skip("this ffmpeg cannot write a display rotation")
    clips = [open_video(path) for path in (upright, phone)]
    assert [c.size for c in clips] == [(1080, 1920)] * 2
    a, b = (detect_frames(c.frames(), progress=False, fps=c.fps).points for c in clips)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    # The same person, joint for joint: after the first frame (the person detector's crop,
    # which moves with small pixel differences) within what a second encoding moves them.
    apart = np.linalg.norm(a[1:, :, :2] - b[1:, :, :2], axis=-1)
    assert np.median(apart) < 2.0 and apart.max() < 25.0


def test_real_footage_legs_cut_off_by_the_image_are_noted(tmp_path, cam02):
    from jointpose.inference.lifter import Lifter
    from jointpose.inference.video import lift_video

    # The top 45% of cam02's first half second: the image ends between the hips and the knees.
    upper = tmp_path / "upper.mp4"
    crop = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(footage("cam02.mp4")), "-t", "0.5"]
    subprocess.run(
        [*crop, "-vf", "crop=iw:ih*0.45:0:0", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(upper)], check=True
    )
    result = lift_video(str(upper), Lifter.from_pretrained("video", device="cpu"), progress=False)
    note = next(note for note in result.notes if note.startswith("outside the image"))
    assert "knees in 100%, ankles in 100%" in note and not any(p in note for p in ("head", "shoulders", "hips"))
    assert not any(note.startswith("outside the image") for note in cam02.notes)  # the whole frame


def test_real_footage_causal_uses_the_causal_video_model(tmp_path, monkeypatch):
    from jointpose.inference.lifter import Lifter

    clip = footage("cam02.mp4")
    asked = []
    load = Lifter.from_pretrained.__func__

    def recording(cls, variant="offline", **kwargs):
        asked.append(variant)
        return load(cls, variant, **kwargs)

    monkeypatch.setattr(Lifter, "from_pretrained", classmethod(recording))
    out = tmp_path / "cam02.npz"
    assert (
        main(["video", str(clip), "-o", str(out), "--causal", "--end", "0.3", "--device", "cpu", "--no-progress"]) == 0
    )
    assert asked == ["video-causal"]
    poses = np.load(out)["poses_3d"]
    assert poses.shape == (18, 17, 3) and np.isfinite(poses).all()


# ----------------------------------------------------------------------------- render


def test_render_draws_the_trajectory_travelled_so_far():
    from jointpose.render import PoseFigure

    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.3, size=(6, 17, 3))
    path = np.stack([np.linspace(0, 1, 6), np.zeros(6), np.linspace(3, 4, 6)], axis=-1)
    keypoints = rng.uniform(10, 90, size=(6, 17, 2))
    plain = PoseFigure(keypoints, {"3D": poses}, image_size=(100, 100))
    figure = PoseFigure(keypoints, {"3D": poses}, image_size=(100, 100), trajectory=path)
    assert figure.frame_shape[1] > plain.frame_shape[1]  # one more panel
    # The trail is drawn in the last panel: frames differ there, and more so as it grows.
    panel = figure._trail[0].axes.get_window_extent()
    height = figure.frame_shape[0]
    rows = slice(int(height - panel.y1), int(height - panel.y0))
    cols = slice(int(panel.x0), int(panel.x1))
    first, middle, last = (figure.draw(i)[rows, cols].astype(int) for i in (0, 2, 5))
    assert 0 < np.abs(middle - first).sum() < np.abs(last - first).sum()
    with pytest.raises(JointposeError, match="trajectory"):
        PoseFigure(keypoints, {"3D": poses}, image_size=(100, 100), trajectory=path[:, :2])
    with pytest.raises(JointposeError, match="frame counts"):
        PoseFigure(keypoints, {"3D": poses}, image_size=(100, 100), trajectory=path[:4])


def test_lost_and_refused_notes_name_frame_ranges():
    from jointpose.data.detect import _lost_notes, _refused_notes

    assert _lost_notes(np.ones(4, dtype=bool)) == ["person found in all 4 frames"]
    found = np.ones(20, dtype=bool)
    found[[0, 1, 2, 4, 10, 12, 14, 16, 18]] = False
    assert _lost_notes(found) == [
        "person found in 11 of 20 frames (55.0%); lost in frames 0-2, 4, 10, 12, 14 and 2 more"
    ]
    assert _refused_notes([]) == []
    (note,) = _refused_notes([171, 172, 173, 179, 180, 187])
    assert note.startswith("after the track was lost, somebody else was found in frames 171-173, 179-180, 187 (")


def test_video_lifts_with_a_users_own_checkpoint(tmp_path, capsys):
    import torch

    from jointpose.cli import main
    from jointpose.model.loading import LoadedModel, save_model
    from jointpose.model.temporal import TemporalModel

    clip = footage("cam02.mp4")
    torch.manual_seed(0)
    own = save_model(tmp_path / "own.safetensors", LoadedModel(TemporalModel([3, 3], channels=16).eval()))
    out = tmp_path / "own.npz"
    common = [str(clip), "-o", str(out), "--end", "0.3", "--device", "cpu", "--no-progress"]
    assert main(["video", *common, "--checkpoint", str(own)]) == 0
    poses = np.load(out)["poses_3d"]
    assert poses.shape == (18, 17, 3) and np.isfinite(poses).all()
    # The untrained network's output, through the same inference step: not the bundled model's.
    assert main(["video", *common[:1], "-o", str(tmp_path / "bundled.npz"), *common[3:]]) == 0
    assert np.abs(np.load(tmp_path / "bundled.npz")["poses_3d"] - poses).mean() > 0.01
    capsys.readouterr()
    assert main(["video", *common, "--checkpoint", str(own), "--causal"]) == 2
    assert "--causal picks the bundled causal model" in capsys.readouterr().err
    assert main(["video", *common, "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    fifteen = LoadedModel(
        TemporalModel([3], channels=8, num_joints_in=15, num_joints_out=15).eval(), keypoints_symmetry=((1,), (2,))
    )
    assert main(["video", *common, "--checkpoint", str(save_model(tmp_path / "he.safetensors", fifteen))]) == 2
    assert "he.safetensors: a model of 15 keypoints in and 15 joints out; video gives Human3.6M's 17" in (
        capsys.readouterr().err
    )


def test_align_2d_is_refused_for_a_causal_model_not_ignored(tmp_path, capsys):
    from jointpose.cli import main

    clip = footage("cam02.mp4")
    out = tmp_path / "c.npz"
    assert main(["video", str(clip), "-o", str(out), "--causal", "--align-2d", "1", "--no-progress"]) == 2
    assert "--align-2d reads future frames, which a causal model (--causal) must not" in capsys.readouterr().err
    assert not out.exists()
