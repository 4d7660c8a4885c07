import json
import re
import warnings

import numpy as np
import pytest

from jointpose.data.keypoints import (
    Keypoints2D,
    interpolate_gaps,
    load_keypoints,
    require_image_size,
)
from jointpose.data.resampling import resample_keypoints
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton

J = {name: k for k, name in enumerate(skeleton.JOINT_NAMES)}

# A standing person in COCO-17 order, pixels relative to the mid-hip point (y down).
COCO_TEMPLATE = np.array(
    [
        [0, -160],
        [8, -168],
        [-8, -168],
        [16, -164],
        [-16, -164],  # nose, eyes (L, R), ears (L, R)
        [35, -120],
        [-35, -120],
        [45, -70],
        [-45, -70],
        [50, -25],
        [-50, -25],  # shoulders, elbows, wrists
        [20, 0],
        [-20, 0],
        [22, 70],
        [-22, 70],
        [22, 140],
        [-22, 140],  # hips, knees, ankles
    ],
    dtype=float,
)
# COCO-17 index of each OpenPose COCO-18 joint (Neck = 17, derived separately).
COCO18_FROM_COCO = [0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]


def coco_expected(c: np.ndarray) -> np.ndarray:
    """Human3.6M-17 positions computed by hand from COCO-17 keypoints (..., 17, 2)."""
    pelvis = (c[..., 11, :] + c[..., 12, :]) / 2
    thorax = (c[..., 5, :] + c[..., 6, :]) / 2
    eyes = (c[..., 1, :] + c[..., 2, :]) / 2
    rows = [
        pelvis,
        c[..., 12, :],
        c[..., 14, :],
        c[..., 16, :],
        c[..., 11, :],
        c[..., 13, :],
        c[..., 15, :],
        pelvis + 0.5 * (thorax - pelvis),
        thorax,
        c[..., 0, :],
        eyes + 1.75 * (eyes - c[..., 0, :]),
        c[..., 5, :],
        c[..., 7, :],
        c[..., 9, :],
        c[..., 6, :],
        c[..., 8, :],
        c[..., 10, :],
    ]
    return np.stack(rows, axis=-2)


def person(frame: int, scale: float = 1.0, start=(300.0, 400.0), velocity=(2.0, 0.5)) -> np.ndarray:
    """COCO-17 pixels (17, 2) of a person moving at constant velocity."""
    return COCO_TEMPLATE * scale + np.array(start) + frame * np.array(velocity)


def coco_entry(image_id: int, xy: np.ndarray, conf, score: float) -> dict:
    kp = np.concatenate([xy, np.broadcast_to(np.asarray(conf, float), (17,))[:, None]], axis=1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": score}


def write_json(path, data):
    path.write_text(json.dumps(data, indent=1))
    return path


def load_quiet(path, **kwargs) -> Keypoints2D:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JointposeWarning)
        return load_keypoints(path, **kwargs)


def test_coco_array_converts_to_h36m_joints(tmp_path):
    c = np.stack([person(f) for f in range(4)])
    c[1:] += np.random.default_rng(0).normal(0, 3, (3, 17, 2))
    np.save(tmp_path / "k.npy", c)
    kp = load_keypoints(tmp_path / "k.npy", layout="coco")
    assert kp.source_format == "npy" and kp.source_layout == "coco17"
    assert np.allclose(kp.xy, coco_expected(c))
    assert np.all(kp.confidence == 1) and not kp.filled.any()
    # Frame 0 by hand from the template: pelvis = mid-hips, spine halfway to mid-shoulders,
    # head top 1.75 x the nose-to-eyes offset (8 px) above the eyes.
    assert np.allclose(
        kp.xy[0, [J["Hip"], J["Spine"], J["Thorax"], J["Neck/Nose"], J["Head"]]],
        [[300, 400], [300, 340], [300, 280], [300, 240], [300, 218]],
    )
    assert np.allclose(load_keypoints(tmp_path / "k.npy", layout="h36m").xy, c)


def test_coco_json_derived_confidence_and_fallbacks(tmp_path):
    frames = 3
    conf = np.full((frames, 17), 0.9)
    conf[:, 11] = 0.6  # left hip: Hip and Spine take the minimum
    conf[1, 2] = 0.1  # right eye unseen in frame 1: Head from the left eye and nose
    conf[2, [0, 1, 2]] = 0.0  # face unseen in frame 2: Neck/Nose from ears, Head from ears and shoulders
    xy = np.stack([person(f) for f in range(frames)])
    path = write_json(tmp_path / "res.json", [coco_entry(f, xy[f], conf[f], 0.9) for f in range(frames)])
    kp = load_keypoints(path)
    assert kp.source_format == "coco-json" and kp.source_layout == "coco17"
    assert np.allclose(kp.xy[0], coco_expected(xy[0]))
    assert np.isclose(kp.confidence[0, J["Hip"]], 0.6) and np.isclose(kp.confidence[0, J["Spine"]], 0.6)
    assert np.isclose(kp.confidence[0, J["RShoulder"]], 0.9)
    assert np.allclose(kp.xy[1, J["Head"]], xy[1, 1] + 1.75 * (xy[1, 1] - xy[1, 0]))
    ears = (xy[2, 3] + xy[2, 4]) / 2
    shoulders = (xy[2, 5] + xy[2, 6]) / 2
    assert np.allclose(kp.xy[2, J["Neck/Nose"]], ears)
    assert np.allclose(kp.xy[2, J["Head"]], ears + 0.5 * (ears - shoulders))
    assert not kp.filled.any()
    assert any("Head from a fall-back construction in 2 frame(s)" in n for n in kp.notes)


def mmpose_instance(xy: np.ndarray, conf, bbox_score: float | None = 0.95, extra: int = 0) -> dict:
    """One person as MMPose writes it: COCO-17 pixels (17, 2), then ``extra`` more keypoints
    (Halpe-26: 9; COCO-WholeBody: 116) far away, which must not be read."""
    points = np.concatenate([xy, np.full((extra, 2), 5000.0)])
    scores = np.concatenate([np.broadcast_to(np.asarray(conf, float), (17,)), np.full(extra, 0.99)])
    out = {"keypoints": points.tolist(), "keypoint_scores": scores.tolist(), "bbox": [[0.0, 0.0, 10.0, 10.0]]}
    return out if bbox_score is None else out | {"bbox_score": bbox_score}


@pytest.mark.parametrize("extra", [0, 9, 116])  # COCO-17, Halpe-26, COCO-WholeBody
def test_mmpose_video_prediction_follows_the_person_and_skips_missing_frames(tmp_path, extra):
    """MMPose's video JSON, two people: the larger one is followed, frame_id 3 is absent (a
    frame without detections, filled) and frame 4 lists nobody; keypoints past COCO-17's
    seventeen are not read."""
    frames = [
        {
            "frame_id": f + 10,
            "instances": []
            if f == 4
            else [
                mmpose_instance(person(f, 0.5, (900.0, 300.0)), 0.9, 0.99, extra),
                mmpose_instance(person(f), 0.9, None, extra),  # larger, no bbox_score: mean keypoint score
            ],
        }
        for f in range(8)
        if f != 3
    ]
    kp = load_quiet(write_json(tmp_path / "video.json", frames))
    assert kp.source_format == "mmpose-json" and kp.source_layout == "coco17"
    assert kp.num_frames == 8
    np.testing.assert_allclose(
        kp.xy[[0, 1, 2, 5, 6, 7]], coco_expected(np.stack([person(f) for f in (0, 1, 2, 5, 6, 7)]))
    )
    assert kp.filled[[3, 4]].all() and not kp.filled[[0, 1, 2, 5, 6, 7]].any()
    np.testing.assert_allclose(kp.xy[3], coco_expected(person(3)))  # linear motion: interpolation is exact
    assert np.allclose(kp.confidence[0], 0.9)


def test_mmpose_whole_image_stand_ins_are_left_out(tmp_path):
    """Where MMPose's person detector finds nobody, a top-down model writes a pose over the
    whole image (bbox [[0, 0, w, h]], bbox_score 1): those frames count as frames without a
    person (filled, noted), not as the most confident detection."""
    rng = np.random.default_rng(0)
    frames = []
    for f in range(12):
        if 6 <= f < 9:  # nobody found: a made-up pose at random places, low keypoint scores
            stand_in = mmpose_instance(rng.uniform(0, 1900, (17, 2)), rng.uniform(0.05, 0.45, 17), 1.0)
            frames.append({"frame_id": f, "instances": [stand_in | {"bbox": [[0.0, 0.0, 1920.0, 1080.0]]}]})
        else:
            frames.append({"frame_id": f, "instances": [mmpose_instance(person(f), 0.9, 0.97)]})
    kp = load_quiet(write_json(tmp_path / "v.json", frames))
    np.testing.assert_allclose(kp.xy, coco_expected(np.stack([person(f) for f in range(12)])))  # filled in between
    assert kp.filled[6:9].all() and not kp.filled[:6].any()
    assert any("left out MMPose's whole-image pose in 3 frame(s)" in note for note in kp.notes)


def test_an_array_in_the_other_joint_order_is_noted(tmp_path):
    """COCO-17 points read in Human3.6M-17 order (and the reverse) give a scrambled skeleton:
    a note names the likely layout. Each in its own order gives none."""
    coco = np.stack([person(f) for f in range(20)])
    np.save(tmp_path / "coco.npy", coco)
    np.save(tmp_path / "h36m.npy", coco_expected(coco))
    note = "points 1-4 lie close around point 0, as COCO-17's eyes and ears around its nose"
    assert any(note in n and "pass --layout coco" in n for n in load_quiet(tmp_path / "coco.npy").notes)
    with pytest.warns(JointposeWarning, match="pass --layout coco"):
        load_keypoints(tmp_path / "coco.npy")
    reverse = "points 1-4 lie far from point 0, as Human3.6M-17's hips, knee and foot from its pelvis"
    assert any(reverse in n for n in load_quiet(tmp_path / "h36m.npy", layout="coco").notes)
    for path, layout in ((tmp_path / "coco.npy", "coco"), (tmp_path / "h36m.npy", None)):
        assert not any("points 1-4" in n for n in load_quiet(path, layout=layout).notes)


def test_normalised_coordinates_are_refused(tmp_path):
    """Coordinates normalised to the image (0-1, as MediaPipe writes them) or to [-1, 1] (as
    VideoPose3D's inputs) read as pixels would make a person a pixel tall: refused, naming the
    file. A small person far off in a large image is not."""
    coco = np.stack([person(f) for f in range(20)])
    np.save(tmp_path / "unit.npy", coco / np.array([1920.0, 1080.0]))
    with pytest.raises(JointposeError, match=r"unit.npy: the person spans 0.\d+ pixels .*: coordinates normalised"):
        load_keypoints(tmp_path / "unit.npy", layout="coco")
    np.save(tmp_path / "screen.npy", coco / 500.0 - 1.0)
    with pytest.raises(JointposeError, match=r"screen.npy: the person spans .* pixels"):
        load_keypoints(tmp_path / "screen.npy", layout="coco")
    np.save(tmp_path / "far.npy", coco * 0.02 + 1500.0)  # about 6 pixels tall
    assert load_quiet(tmp_path / "far.npy", layout="coco").num_frames == 20


def test_frames_with_all_points_at_one_place_are_missing(tmp_path):
    """A frame whose points all lie at one place holds no person (detectors write zeros for a
    frame they missed): it is filled from its neighbours, with a note. Input made only of such
    frames is refused, naming the file, rather than lifted to one still pose."""
    xy = coco_expected(np.stack([person(f) for f in range(10)]))
    placeholders = xy.copy()
    placeholders[[3, 4]] = 0.0
    np.save(tmp_path / "gaps.npy", placeholders)
    with pytest.warns(JointposeWarning, match=r"gaps.npy: 2 frame\(s\) with all points at one place read as missing"):
        kp = load_keypoints(tmp_path / "gaps.npy")
    assert kp.filled[[3, 4]].all() and not kp.filled[[0, 1, 2, 5, 6, 7, 8, 9]].any()
    np.testing.assert_allclose(kp.xy[3], xy[2] + (xy[5] - xy[2]) / 3)  # linear between frames 2 and 5
    np.testing.assert_array_equal(kp.confidence[[3, 4]], 0.0)
    np.save(tmp_path / "still.npy", np.full((5, 17, 2), 250.0))
    with pytest.raises(JointposeError, match=r"still.npy: in every frame all points lie at one place \(250, 250 px"):
        load_keypoints(tmp_path / "still.npy")


@pytest.mark.parametrize("name", ["clip.mp4", "clip.MOV"])
def test_a_video_given_as_keypoints_points_to_jointpose_video(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00" * 64)
    with pytest.raises(JointposeError, match=f"{name}: a video, not keypoints: jointpose video detects"):
        load_keypoints(tmp_path / name)


def test_mmpose_file_carries_its_own_layout(tmp_path):
    """``layout`` may only name the file's own layout, COCO-17."""
    frames = [{"frame_id": f, "instances": [mmpose_instance(person(f), 0.9, 0.5)]} for f in range(3)]
    path = write_json(tmp_path / "v.json", frames)
    assert load_quiet(path, layout="coco").source_layout == "coco17"
    with pytest.raises(JointposeError, match="does not apply"):
        load_quiet(path, layout="h36m")


def _openpose_frame(people: list[np.ndarray]) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p.ravel().tolist()} for p in people]}


def _coco18(xy17: np.ndarray, conf: float = 0.8) -> np.ndarray:
    neck = (xy17[5] + xy17[6]) / 2 + [0, 6]  # OpenPose's neck: a little below mid-shoulders
    xy = np.concatenate([xy17, neck[None]])[COCO18_FROM_COCO]
    return np.concatenate([xy, np.full((18, 1), conf)], axis=1)


def _body25(xy17: np.ndarray) -> np.ndarray:
    c18 = _coco18(xy17)
    mid_hip = np.array([(xy17[11, 0] + xy17[12, 0]) / 2, xy17[11, 1] - 5, 0.7])  # above mid-hips
    feet = np.column_stack([np.full((6, 2), 10.0), np.full(6, 0.5)])
    return np.concatenate([c18[:8], mid_hip[None], c18[8:], feet])


def test_openpose_body25_folder(tmp_path):
    xy = np.stack([person(f) for f in range(5)])
    frames = [_body25(xy[f]) for f in range(5)]
    frames[2][4] = 0  # right wrist missing in frame 2: x = y = c = 0
    frames[3][10, :2] = 0  # right knee at (0, 0) with a confidence: still missing
    folder = tmp_path / "op"
    folder.mkdir()
    for f in range(5):  # natural order: frame 10 after frame 9 (names f8 ... f12)
        write_json(folder / f"clip_f{8 + f}_keypoints.json", _openpose_frame([frames[f]]))
    with pytest.warns(JointposeWarning, match=r"filled 2 low-confidence or missing joints in 2 frames"):
        kp = load_keypoints(folder)
    assert kp.source_format == "openpose-body25" and kp.source_layout == "body25"
    expected = coco_expected(xy)
    mid_hip, neck = xy[:, [11, 12]].mean(axis=1) - [0, 5], xy[:, [5, 6]].mean(axis=1) + [0, 6]
    assert np.allclose(kp.xy[:, J["Hip"]], mid_hip) and np.allclose(kp.xy[:, J["Thorax"]], neck)
    assert np.allclose(kp.xy[:, J["Spine"]], (mid_hip + neck) / 2)
    assert np.isclose(kp.confidence[0, J["Spine"]], 0.7)
    limbs = [J[n] for n in ("RHip", "RKnee", "RFoot", "LWrist", "RWrist", "LElbow")]
    assert np.allclose(kp.xy[:, limbs], expected[:, limbs])  # missing joints interpolated exactly
    assert kp.filled[2, J["RWrist"]] and kp.filled[3, J["RKnee"]] and kp.filled.sum() == 2


def test_a_person_score_where_the_file_gives_none_counts_unseen_points_as_zero(tmp_path):
    """OpenPose gives no person score and a COCO result may not: each is the mean confidence
    over all the person's points, unseen ones (0 or NaN) counting 0, so that three confident
    points do not outscore a whole body."""
    from jointpose.data.detector_files import read_coco_results, read_openpose

    whole = _coco18(person(0), conf=0.5)
    few = np.zeros((18, 3))
    few[:3] = [100.0, 100.0, 0.9]
    few[3] = [100.0, 100.0, -1.0]  # a negative confidence: not seen, counting 0
    path = write_json(tmp_path / "two_keypoints.json", _openpose_frame([whole, few]))
    np.testing.assert_allclose(read_openpose(path).scores[0], [0.5, 3 * 0.9 / 18])
    points = np.column_stack([np.ones((17, 2)), np.r_[0.6, 0.0, np.nan, np.full(14, 0.3)]])
    entry = {"image_id": 0, "category_id": 1, "keypoints": points.ravel().tolist()}
    np.testing.assert_allclose(read_coco_results([entry], path).scores[0], [(0.6 + 14 * 0.3) / 17])


def test_openpose_coco18_single_file(tmp_path):
    xy = person(0)
    path = write_json(tmp_path / "one_keypoints.json", _openpose_frame([_coco18(xy)]))
    kp = load_keypoints(path)
    assert kp.source_format == "openpose-coco18" and kp.xy.shape == (1, 17, 2)
    expected = coco_expected(xy)
    neck = (xy[5] + xy[6]) / 2 + [0, 6]
    assert np.allclose(kp.xy[0, J["Thorax"]], neck)
    assert np.allclose(kp.xy[0, J["Hip"]], expected[J["Hip"]])
    others = [j for j in range(17) if j not in (J["Thorax"], J["Spine"])]
    assert np.allclose(kp.xy[0, others], expected[others])


def test_interpolation_fills_gaps_linearly_and_holds_edges(tmp_path):
    frames = np.arange(12, dtype=float)
    xy = np.stack([person(f) for f in frames])  # linear motion, converted as H36M-ordered input
    data = np.concatenate([xy, np.full((12, 17, 1), 0.9)], axis=-1)
    data[4:8, 3, 2] = 0.1  # a gap of four frames in joint 3
    data[:2, 5, 2] = 0.0  # joint 5 missing at the start
    data[10:, 7, :2] = np.nan  # joint 7 NaN at the end
    np.savez(tmp_path / "k.npz", keypoints=data, fps=np.array(30.0))
    with pytest.warns(JointposeWarning, match=re.escape("filled 8 low-confidence or missing joints in 8 frames")):
        kp = load_keypoints(tmp_path / "k.npz")
    assert kp.source_format == "npz"
    assert np.allclose(kp.xy[:, 3], xy[:, 3])  # interior gap: exact for linear motion
    assert np.allclose(kp.xy[:2, 5], xy[2, 5]) and np.allclose(kp.xy[10:, 7], xy[9, 7])  # edges held
    assert kp.filled.sum() == 8 and kp.filled[4:8, 3].all() and kp.filled[10:, 7].all()
    assert np.isclose(kp.confidence[5, 3], 0.1) and kp.confidence[10, 7] == 0
    assert any("filled 8" in n for n in kp.notes)


def test_interpolate_gaps_carries_nothing_across_segments():
    values = np.arange(8, dtype=np.float64)[:, None, None] * np.array([1.0, -1.0])  # (8, 1, 2)
    valid = np.zeros((8, 1), dtype=bool)
    valid[[0, 2, 7], 0] = True
    whole = interpolate_gaps(values, valid)
    np.testing.assert_allclose(whole[:, 0, 0], np.arange(8))  # linear through the gap 3-6
    split = interpolate_gaps(values, valid, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    # Frame 3 holds frame 2 (its segment's last valid value); 4-6 hold frame 7.
    np.testing.assert_allclose(split[:, 0, 0], [0, 1, 2, 2, 7, 7, 7, 7])
    np.testing.assert_allclose(split[:, 0, 1], -split[:, 0, 0])


def test_interpolate_gaps_vectorised_matches_numpy_interp():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(50, 4, 2))
    valid = rng.random((50, 4)) > 0.4
    valid[[0, 49], 0] = False
    out = interpolate_gaps(values, valid)
    t = np.arange(50)
    for j in range(4):
        for d in range(2):
            assert np.allclose(out[:, j, d], np.interp(t, t[valid[:, j]], values[valid[:, j], j, d]))


def test_arrays_without_confidence_and_nan_as_missing(tmp_path):
    xy = np.stack([person(f) for f in range(6)])
    xy[2, 4] = np.nan
    np.save(tmp_path / "k.npy", xy.astype(np.float32))
    with pytest.warns(JointposeWarning, match="filled 1 "):
        kp = load_keypoints(tmp_path / "k.npy")
    assert kp.source_layout == "h36m17"
    assert np.allclose(kp.xy[2, 4], person(2)[4]) and kp.confidence[2, 4] == 0
    assert np.all(np.delete(kp.confidence.ravel(), 2 * 17 + 4) == 1)
    np.savez(tmp_path / "only.npz", poses=xy[:3, :, :])
    assert load_quiet(tmp_path / "only.npz").xy.shape == (3, 17, 2)


def _two_people_file(tmp_path, big_score, small_score, frames=8):
    entries = []
    for f in range(frames):
        big = coco_entry(100 + f, person(f, 1.5, (400, 500), (3, 0)), 0.9, big_score)
        small = coco_entry(100 + f, person(f, 0.6, (900, 300), (-2, 1)), 0.8, small_score)
        entries += [big, small] if f % 2 else [small, big]  # identities swap places in the list
    return write_json(tmp_path / "two.json", entries)


def test_track_selection_picks_largest_most_confident(tmp_path):
    kp = load_quiet(_two_people_file(tmp_path, 0.9, 0.95))
    big = coco_expected(np.stack([person(f, 1.5, (400, 500), (3, 0)) for f in range(8)]))
    assert np.allclose(kp.xy, big) and not kp.filled.any()
    assert any(
        re.search(r"track 2 of 2: 8 of 8 frames .*dropped 1 other track\(s\) and 8 detection", n) for n in kp.notes
    )
    # The small person wins when its score outweighs its smaller box (0.6^2 area ratio).
    kp = load_quiet(_two_people_file(tmp_path, 0.05, 0.95))
    small = coco_expected(np.stack([person(f, 0.6, (900, 300), (-2, 1)) for f in range(8)]))
    assert np.allclose(kp.xy, small)


def test_whole_track_beats_a_larger_person_in_a_few_frames(tmp_path):
    entries = [coco_entry(f, person(f, 1.2), 0.9, 0.8) for f in range(6)]
    entries += [coco_entry(f, person(f, 1.6, (1200, 500)), 0.9, 0.9) for f in (2, 3)]  # larger, briefly
    kp = load_keypoints(write_json(tmp_path / "t.json", entries))
    assert np.allclose(kp.xy, coco_expected(np.stack([person(f, 1.2) for f in range(6)])))
    assert any("6 of 6 frames" in n and "dropped 1 other track(s) and 2 detection(s)" in n for n in kp.notes)


def test_tracking_with_sparse_ids_and_a_person_leaving(tmp_path):
    entries = [coco_entry(f, person(f), 0.9, 0.9) for f in (5, 6, 8, 9)]
    entries += [coco_entry(f, person(f, 0.5, (800, 200)), 0.9, 0.9) for f in (5, 6)]  # a passer-by
    with pytest.warns(JointposeWarning, match="filled 17 low-confidence or missing joints in 1 frames"):
        kp = load_keypoints(write_json(tmp_path / "s.json", entries))
    assert kp.xy.shape == (5, 17, 2) and kp.filled[2].all()
    assert np.allclose(kp.xy, coco_expected(np.stack([person(f) for f in range(5, 10)])))
    assert any("4 of 5 frames" in n for n in kp.notes)


def test_a_crowd_is_cut_to_the_most_confident_people_per_frame(tmp_path, monkeypatch):
    # 4 frames of 6 people: the person followed (largest, score 0.9) and five small ones
    # (scores 0.1-0.5), in shuffled order; at JOINTPOSE_MAX_PEOPLE=3 the two lowest-scored
    # people of each frame are not linked at all.
    rng = np.random.default_rng(0)
    entries = []
    for f in range(4):
        frame = [coco_entry(f, person(f, 1.5, (400, 500), (3, 0)), 0.9, 0.9)]
        frame += [coco_entry(f, person(f, 0.3, (100 + 150 * k, 100)), 0.8, 0.1 * (k + 1)) for k in range(5)]
        entries += [frame[i] for i in rng.permutation(6)]
    path = write_json(tmp_path / "crowd.json", entries)
    monkeypatch.setenv("JOINTPOSE_MAX_PEOPLE", "3")
    kp = load_quiet(path)
    assert np.allclose(kp.xy, coco_expected(np.stack([person(f, 1.5, (400, 500), (3, 0)) for f in range(4)])))
    assert "kept the 3 highest-scored people of frames 0-3 (up to 6; set JOINTPOSE_MAX_PEOPLE to keep more)" in kp.notes
    # The tracks linked are those of the three best scores: 0.9, 0.5 and 0.4.
    assert any(re.search(r"of 3: 4 of 4 frames .*dropped 2 other track\(s\) and 8 detection", n) for n in kp.notes)
    monkeypatch.setenv("JOINTPOSE_MAX_PEOPLE", "6")
    kp = load_quiet(path)
    assert not any("highest-scored" in n for n in kp.notes)
    assert any(re.search(r"of 6: 4 of 4 frames .*dropped 5 other track\(s\) and 20 detection", n) for n in kp.notes)


def test_an_npz_input_reads_only_its_keypoints(tmp_path, monkeypatch):
    # Beside the keypoints, 8 MB of zeros (a few kB compressed). With the decompressed limit at
    # 1 MB the file loads: only the array used is decompressed and counted.
    xy = coco_expected(np.stack([person(f) for f in range(5)]))
    np.savez_compressed(tmp_path / "k.npz", keypoints=xy, junk=np.zeros(2**20))
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", str(2**20))
    assert np.array_equal(load_quiet(tmp_path / "k.npz").xy, xy)
    np.savez_compressed(tmp_path / "big.npz", keypoints=np.zeros((2**15, 17, 2)), junk=np.zeros(1))
    declared = 2**15 * 17 * 2 * 8 + 128  # the array and its .npy header
    with pytest.raises(JointposeError, match=rf"big\.npz: arrays decompressed \(bytes\): {declared} exceeds"):
        load_keypoints(tmp_path / "big.npz")


def test_openpose_tracking_with_swapped_order(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    for f in range(6):
        a, b = _coco18(person(f, 1.4, (300, 500))), _coco18(person(f, 0.7, (700, 400), (-3, 0)), 0.5)
        write_json(folder / f"{f:012d}_keypoints.json", _openpose_frame([a, b] if f % 3 else [b, a]))
    kp = load_keypoints(folder)
    assert np.allclose(kp.xy[:, J["LWrist"]], [person(f, 1.4, (300, 500))[9] for f in range(6)])


def test_resample_60_to_30_keeps_linear_motion():
    t = np.arange(61)
    xy = np.array([5.0, -2.0]) * t[:, None, None] + np.arange(34.0).reshape(1, 17, 2)
    filled = np.zeros((61, 17), dtype=bool)
    filled[3, 0] = True
    kp = Keypoints2D(xy, np.ones((61, 17)), "npy", "h36m17", filled)
    half = resample_keypoints(kp, 60, 30)
    assert half.xy.shape == (31, 17, 2) and np.allclose(half.xy, xy[::2])
    assert not half.filled.any() and "60 to 30 fps" in half.notes[-1]
    double = resample_keypoints(kp, 30, 60)
    assert double.num_frames == 121 and np.allclose(double.xy[1], (xy[0] + xy[1]) / 2)
    assert double.filled[5:8, 0].all() and double.filled.sum() == 3
    with pytest.raises(JointposeError, match="dst_fps"):
        resample_keypoints(kp, 60, 0)


def test_require_image_size(tmp_path):
    assert require_image_size((1920, 1080), tmp_path / "a.json") == (1920, 1080)
    with pytest.raises(JointposeError, match=r"a\.json.*image size \(width, height in pixels\); pass image_size$"):
        require_image_size(None, tmp_path / "a.json")
    with pytest.raises(JointposeError, match="positive"):
        require_image_size((0, 1080), "a.json")


def _bad_file(name, text):
    def make(d):
        (d / name).write_text(text)
        return d / name

    return make


def _bad_json(text):
    return _bad_file("bad.json", text)


def _bad_npy(array):
    return lambda d: np.save(d / "bad.npy", array) or d / "bad.npy"


def _bad_coco_entries(entries):
    return lambda d: write_json(d / "bad.json", entries)


def _ok_entry(f=0, **changes):
    return coco_entry(f, person(f), 0.9, 0.9) | changes


def _opdir(d):
    (d / "bad_dir").mkdir()
    (d / "bad_dir" / "notes.txt").write_text("x")
    return d / "bad_dir"


BAD_INPUTS = {
    "15 joints": (_bad_npy(np.zeros((4, 15, 2))), r"\(4, 15, 2\)"),
    "2-D array": (_bad_npy(np.zeros((4, 17))), r"\(4, 17\)"),
    "4-D array": (_bad_npy(np.zeros((2, 4, 17, 2))), r"shape"),
    "no frames": (_bad_npy(np.zeros((0, 17, 2))), r"empty"),
    "infinite value": (
        _bad_npy(np.where(np.arange(3)[:, None, None] == 2, np.inf, np.ones((3, 17, 2)))),
        r"infinite value at frame 2",
    ),
    "coordinate beyond the pixel bound": (
        _bad_npy(np.where(np.arange(3)[:, None, None] == 1, 2e9, np.ones((3, 17, 2)))),
        r"beyond 1e\+09 px or an infinite value at frame 1",
    ),
    "string array": (_bad_npy(np.array([["a"] * 17])), r"dtype"),
    "npz without keypoints key": (
        lambda d: np.savez(d / "bad.npz", a=np.zeros((2, 17, 2)), b=np.zeros(2)) or d / "bad.npz",
        r"keys: a, b\)",
    ),
    "npz of many arrays": (
        lambda d: np.savez(d / "bad.npz", **{f"k{i:05d}": np.zeros(1) for i in range(2000)}) or d / "bad.npz",
        r"keys: k00000, k00001, k00002, k00003, k00004, k00005 and 1994 more\)$",
    ),
    "empty list": (_bad_json("[]"), r"empty"),
    "unrecognised structure": (_bad_json('{"frames": []}'), r"unrecognised JSON structure"),
    "truncated json": (_bad_json('[\n{"image_id": 1,\n "keypoints": [1, 2'), r"line 3"),
    "short keypoints": (
        _bad_coco_entries([_ok_entry(), _ok_entry(1, keypoints=[1.0] * 50)]),
        r"entry 1 \(image_id 1\).*50 values",
    ),
    "text in keypoints": (_bad_coco_entries([_ok_entry(keypoints=["1"] * 51)]), r"not numbers"),
    "infinity in json": (_bad_json('[{"image_id": 0, "keypoints": [Infinity' + ", 1" * 50 + "]}]"), r"infinite"),
    "float image id": (_bad_coco_entries([_ok_entry(image_id=1.5)]), r"image_id"),
    "openpose bad count": (
        _bad_json(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 60}]})),
        r"person 0.*75 or 54",
    ),
    "openpose no people": (_bad_json('{"people": []}'), r"no person"),
    "empty openpose folder": (_opdir, r"no OpenPose"),
    "unknown suffix": (_bad_file("bad.csv", "1,2"), r"unknown keypoint file type"),
    "missing file": (lambda d: d / "bad_missing.npy", r"not found"),
    "joint never seen": (
        _bad_coco_entries([coco_entry(f, person(f), np.r_[np.ones(15), 0, 0], 1) for f in range(3)]),
        r"LFoot, RFoot|RFoot, LFoot",
    ),
    "no valid frame": (_bad_coco_entries([coco_entry(f, person(f), 0.1, 1) for f in range(3)]), r"no valid frame"),
    "mmpose keypoint count": (
        _bad_coco_entries([{"frame_id": 0, "instances": [mmpose_instance(person(0), 0.9, extra=4)]}]),
        r"entry 0 instance 0: 'keypoints' must hold 17 or 26 or 133 \[x, y\] pairs, got 21",
    ),
    "mmpose flat keypoints": (
        _bad_coco_entries([{"frame_id": 0, "instances": [{"keypoints": [1.0] * 17, "keypoint_scores": [0.9] * 17}]}]),
        r"a list of \[x, y\] pairs",
    ),
    "mmpose scores short": (
        _bad_coco_entries(
            [{"frame_id": 0, "instances": [mmpose_instance(person(0), 0.9) | {"keypoint_scores": [0.9] * 16}]}]
        ),
        r"'keypoint_scores' must hold one number per keypoint \(17\)",
    ),
    "mmpose text score": (
        _bad_coco_entries([{"frame_id": 0, "instances": [mmpose_instance(person(0), 0.9, bbox_score="high")]}]),
        r"'bbox_score' must be a finite number",
    ),
    "mmpose boolean bbox_score at the image corner": (
        _bad_coco_entries([{"frame_id": 0, "instances": [mmpose_instance(person(0), 0.9, bbox_score=True)]}]),
        r"'bbox_score' must be a finite number",
    ),
    "mmpose float frame id": (
        _bad_coco_entries([{"frame_id": 0.5, "instances": []}]),
        r"entry 0: 'frame_id' must be an integer",
    ),
    "mmpose repeated frame id": (
        _bad_coco_entries([{"frame_id": 0, "instances": [mmpose_instance(person(0), 0.9)]}] * 2),
        r"entry 1: frame_id 0 already given by entry 0",
    ),
    "mmpose 3d keypoints": (
        _bad_coco_entries(
            [{"frame_id": 0, "instances": [{"keypoints": [[0.0, 0.0, 1.0]] * 17, "keypoint_scores": [0.9] * 17}]}]
        ),
        r"entry 0 instance 0: 'keypoints' are 3D",
    ),
    "mmpose text beyond coco": (
        _bad_coco_entries(
            [
                {
                    "frame_id": 0,
                    "instances": [
                        mmpose_instance(person(0), 0.9, extra=9) | {"keypoints": person(0).tolist() + [["x", None]] * 9}
                    ],
                }
            ]
        ),
        r"'keypoints'.*not numbers",
    ),
    "mmpose nobody": (
        _bad_coco_entries([{"frame_id": f, "instances": []} for f in range(3)]),
        r"no person detected in any of its 3 frame",
    ),
    "mmpose frame gap": (
        _bad_coco_entries([{"frame_id": f, "instances": [mmpose_instance(person(0), 0.9)]} for f in (0, 10**6)]),
        r"no detection in frames 1-999999",
    ),
    "mmpose one image": (
        _bad_coco_entries([mmpose_instance(person(0), 0.9)]),
        r"an MMPose prediction of one image",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_naming_the_file(tmp_path, case):
    make, pattern = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(JointposeError, match=pattern) as info:
        load_keypoints(path)
    assert "\n" not in str(info.value) and str(path.name) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"layout": "mpii"}, "unknown keypoint layout 'mpii'"),
        ({"layout": "h36m"}, "does not apply"),
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"confidence_threshold": "0.3"}, r"confidence_threshold must lie in \[0, 1\], got '0.3'"),
        ({"max_fill_gap": -1}, "max_fill_gap must be a whole number of frames >= 0, got -1"),
        ({"max_gap": 0}, "max_gap"),
        ({"layout": 3}, "unknown keypoint layout 3"),
        ({"max_link_distance": "far"}, "max_link_distance must be a positive number, got 'far'"),
        ({"max_link_distance": float("nan")}, "max_link_distance must be a positive number, got nan"),
    ],
)
def test_bad_arguments_name_the_file(tmp_path, kwargs, pattern):
    path = write_json(tmp_path / "ok.json", [_ok_entry()])
    with pytest.raises(JointposeError, match=pattern) as info:
        load_keypoints(path, **kwargs)
    assert "ok.json" in str(info.value)


def test_long_sequence_loads_and_resamples(tmp_path):
    """50,000 frames through the vectorised loader and resampler (a Python loop per frame would crawl)."""
    frames = 50_000
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.uniform(0, 1000, (frames, 17, 2)), rng.uniform(0, 1, (frames, 17, 1))], axis=-1)
    np.save(tmp_path / "long.npy", data)
    kp = load_quiet(tmp_path / "long.npy", layout="coco")
    assert kp.xy.shape == (frames, 17, 2) and np.isfinite(kp.xy).all()
    assert resample_keypoints(kp, 50, 25).num_frames == frames // 2


def test_openpose_numbering_gaps_are_missing_frames_not_closed_up(tmp_path):
    """Files 0, 1, 4 of a person moving at constant velocity: frames 2 and 3 are missing
    (interpolated at their own times, with a note naming them), not frames 2 of 3."""
    folder = tmp_path / "op"
    folder.mkdir()
    for f in (0, 1, 4):
        write_json(folder / f"video_{f:012d}_keypoints.json", _openpose_frame([_coco18(person(f))]))
    with pytest.warns(JointposeWarning, match=r"no file for 2 frame\(s\) \(2-3 by file number\)"):
        kp = load_keypoints(folder)
    assert kp.num_frames == 5
    expected = coco_expected(np.stack([person(f) for f in range(5)]))
    limbs = [J[n] for n in ("RHip", "RKnee", "LWrist", "RElbow")]
    assert np.allclose(kp.xy[:, limbs], expected[:, limbs])
    assert kp.filled[[2, 3]].all() and not kp.filled[[0, 1, 4]].any()


def test_long_gaps_are_refused_naming_the_frames(tmp_path, monkeypatch):
    far = write_json(
        tmp_path / "far.json", [coco_entry(0, person(0), 0.9, 1.0), coco_entry(2_000_000, person(1), 0.9, 1.0)]
    )
    with pytest.raises(
        JointposeError,
        match=r"far\.json: no detection in frames 1-1999999 \(1999999 frames in a row\); "
        r"at most 300 are filled",
    ):
        load_keypoints(far)
    huge = write_json(tmp_path / "huge.json", [coco_entry(10**30 + i, person(i), 0.9, 1.0) for i in (0, 1)])
    assert load_quiet(huge).num_frames == 2  # ids beyond int64 are fine: only their differences count
    near = write_json(tmp_path / "near.json", [coco_entry(i, person(i), 0.9, 1.0) for i in (0, 1, 6)])
    assert load_quiet(near).num_frames == 7  # a 4-frame gap is filled
    with pytest.raises(JointposeError, match=r"frames 2-5 \(4 frames in a row\); at most 3"):
        load_keypoints(near, max_fill_gap=3)
    monkeypatch.setenv("JOINTPOSE_MAX_FILL_GAP", "3")
    with pytest.raises(JointposeError, match=r"frames 2-5 .*JOINTPOSE_MAX_FILL_GAP"):
        load_keypoints(near)
    nan_run = np.stack([person(i) for i in range(10)])
    nan_run[1:6] = np.nan  # an array input: a run of frames with no joint at all
    np.save(tmp_path / "run.npy", coco_expected(nan_run))
    with pytest.raises(JointposeError, match=r"run\.npy: no detection in frames 1-5 \(5 frames"):
        load_keypoints(tmp_path / "run.npy")


def test_frame_count_and_resampling_are_bounded(tmp_path, monkeypatch):
    kp = load_quiet(write_json(tmp_path / "a.json", [coco_entry(i, person(i), 0.9, 1.0) for i in range(4)]))
    with pytest.raises(JointposeError, match=r"resampling 1e-09 -> 50 fps|outside \[0.001, 1000\]"):
        resample_keypoints(kp, 1e-9, 50.0)
    with pytest.raises(JointposeError, match=r"resampling 0.25 -> 50 fps \(factor\): 200 exceeds the limit of 100"):
        resample_keypoints(kp, 0.25, 50.0)
    assert resample_keypoints(kp, 0.5, 50.0).num_frames == 301  # factor 100: allowed
    monkeypatch.setenv("JOINTPOSE_MAX_FRAMES", "3")
    with pytest.raises(
        JointposeError,
        match=r"a\.json: image_id values span frames: 4 exceeds the limit of 3 "
        r"\(set JOINTPOSE_MAX_FRAMES",
    ):
        load_keypoints(tmp_path / "a.json")


def test_track_linking_is_the_best_gated_assignment_by_brute_force():
    """Each frame's links: as many pairs within the distance limit as possible, then the
    smallest total distance; checked against every one-to-one assignment of small matrices."""
    import itertools

    from jointpose.data.linking import _match

    rng = np.random.default_rng(11)
    for _ in range(200):
        rows, cols = (int(n) for n in rng.integers(0, 5, size=2))
        cost = rng.random((rows, cols)) * 2.0
        limit = 0.8
        best = (0, 0.0)
        for perm in itertools.permutations(range(max(rows, cols)), min(rows, cols)):
            matching = zip(range(rows), perm) if rows <= cols else zip(perm, range(cols))
            pairs = [(r, c) for r, c in matching if cost[r, c] <= limit]
            best = max(best, (len(pairs), -sum(cost[r, c] for r, c in pairs)))
        got = _match(cost, limit)
        assert len({r for r, _ in got}) == len({c for _, c in got}) == len(got)  # one-to-one
        assert all(cost[r, c] <= limit for r, c in got)
        assert len(got) == best[0] and np.isclose(sum(cost[r, c] for r, c in got), -best[1])


def test_keypoints_outside_the_stated_image_are_noted():
    """A person standing in a portrait video (1080 x 1920), read with the landscape size."""
    from jointpose.data.keypoints import Keypoints2D, outside_image_note

    rng = np.random.default_rng(0)
    frames = 50
    xy = np.stack([rng.uniform(400, 700, (frames, 17)), rng.uniform(600, 1700, (frames, 17))], axis=-1)
    confidence, filled = np.full((frames, 17), 0.9), np.zeros((frames, 17), bool)
    keypoints = Keypoints2D(xy, confidence, "array", "h36m", filled)
    assert outside_image_note(keypoints, (1080, 1920)) is None
    note = outside_image_note(keypoints, (1920, 1080))
    assert note.startswith("note: the keypoints lie outside the 1920x1080 image in 100% of the frames (x 40")
    # A few frames out (a detector's guess at feet below the frame), or only filled or
    # unconfident points out: no note.
    inside = np.clip(xy, 0, [1919, 1079])
    some = Keypoints2D(np.where(np.arange(frames)[:, None, None] < 4, xy, inside), confidence, "array", "h36m", filled)
    assert outside_image_note(some, (1920, 1080)) is None
    outside = (xy[..., 1] > 1101)[..., None]
    guessed = Keypoints2D(xy, confidence, "array", "h36m", outside[..., 0])
    assert outside_image_note(guessed, (1920, 1080)) is None
    unsure = Keypoints2D(xy, np.where(outside[..., 0], 0.1, 0.9), "array", "h36m", filled)
    assert outside_image_note(unsure, (1920, 1080), threshold=0.3) is None
    assert outside_image_note(unsure, (1920, 1080)) is not None
    # Just past the edge (2%: a standing person's feet at y 1105 in a portrait clip read as
    # 1920 x 1080), in every frame: noted; at the edge itself: not.
    feet = np.concatenate([xy[:, :16], np.stack([xy[:, 16, 0], np.full(frames, 1105.0)], -1)[:, None]], axis=1)
    low = Keypoints2D(np.clip(feet, 0, [1919, 1105]), confidence, "array", "h36m", filled)
    assert outside_image_note(low, (1920, 1080)) is not None
    edge = Keypoints2D(np.clip(feet, 0, [1919, 1100]), confidence, "array", "h36m", filled)
    assert outside_image_note(edge, (1920, 1080)) is None


def test_a_video_output_gives_back_its_2d_track(tmp_path):
    """``jointpose video``'s npz holds the 3D and the 2D track it lifted: infer and render read the latter."""
    from jointpose.inference.export import export

    rng = np.random.default_rng(0)
    xy, confidence = rng.uniform(100, 900, (12, 17, 2)), rng.uniform(0.5, 1.0, (12, 17))
    path = export(
        tmp_path / "clip.npz",
        rng.normal(scale=0.2, size=(12, 17, 3)),
        30.0,
        extra={"keypoints_2d": xy, "confidence_2d": confidence},
    )
    kp = load_keypoints(path)
    np.testing.assert_allclose(kp.xy, xy.astype(np.float32))
    np.testing.assert_allclose(kp.confidence, confidence.astype(np.float32))
    assert kp.fps == 30.0
    # Its JSON holds the same track (rounded to 1e-6 px) and frame rate.
    as_json = load_keypoints(
        export(
            tmp_path / "clip.json", np.zeros((12, 17, 3)), 60.0, extra={"keypoints_2d": xy, "confidence_2d": confidence}
        )
    )
    np.testing.assert_allclose(as_json.xy, xy, atol=1e-6)
    np.testing.assert_allclose(as_json.confidence, confidence, atol=1e-6)
    assert as_json.fps == 60.0 and as_json.source_format == "video" and not as_json.filled.any()
    doc = json.loads((tmp_path / "clip.json").read_text())
    for change, message in (
        ({"confidence_2d": None}, r"clip.json key 'confidence_2d' must be an array of numbers, got object"),
        ({"keypoints_2d": [[[1, "2"]] * 17]}, r"clip.json key 'keypoints_2d' must be an array of numbers, got <U"),
        (
            {"keypoints_2d": xy[:, :16].tolist()},
            r"clip.json key 'keypoints_2d': expected shape \(frames, 17, 2\) beside 'confidence_2d', got \(12, 16, 2\)",
        ),
        ({"confidence_2d": [[float("inf")] * 17] * 12}, r"clip.json key 'confidence_2d': an infinite value at frame 0"),
        (
            {"keypoints_2d": [[[1.0, True]] * 17] * 12},
            r"'keypoints_2d' must be an array of numbers, got true or false at \[0, 0, 1\]",
        ),
        (
            {"keypoints_2d": [[[1.0, 10**400]] * 17] * 12},
            r"'keypoints_2d' holds an integer too large for a floating-point number",
        ),
        ({"fps": "60"}, r"clip.json: key 'fps' must be a positive number of frames per second, got '60'"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps(doc | change))
        with pytest.raises(JointposeError, match=message.replace("clip.json", "bad.json")):
            load_keypoints(tmp_path / "bad.json")
    (tmp_path / "plain.json").write_text(json.dumps({"keypoints_2d": xy.tolist()}))  # no confidence, no rate
    plain = load_keypoints(tmp_path / "plain.json")
    assert plain.fps is None and (plain.confidence == 1).all()
    np.savez(tmp_path / "only.npz", confidence_2d=confidence, fps=25.0)  # the only array: as keypoints, no confidence
    with pytest.raises(
        JointposeError, match=r"only.npz key 'confidence_2d': expected shape \(frames, 17, 2 or 3\), got \(12, 17\)"
    ):
        load_keypoints(tmp_path / "only.npz")
    np.savez(tmp_path / "odd.npz", keypoints_2d=xy, confidence_2d=confidence[:5])
    with pytest.raises(JointposeError, match=r"odd.npz key 'confidence_2d': expected numbers of shape \(12, 17\)"):
        load_keypoints(tmp_path / "odd.npz")


def test_an_npz_gives_its_frame_rate(tmp_path):
    """'fps' beside the keypoints is the sequence's frame rate; the only other array is the keypoints."""
    xy = np.random.default_rng(1).uniform(100, 900, (6, 17, 2))
    np.savez(tmp_path / "rated.npz", track=xy, fps=np.array(24))
    kp = load_keypoints(tmp_path / "rated.npz")
    assert kp.fps == 24.0 and kp.source_format == "npz"
    np.testing.assert_array_equal(kp.xy, xy)
    assert resample_keypoints(kp, 24.0, 48.0).fps == 48.0
    np.save(tmp_path / "plain.npy", xy)
    assert load_keypoints(tmp_path / "plain.npy").fps is None
    refused = {
        "list": (np.array([24, 25]), r"list.npz: key 'fps' must be one number, got int64 \(2,\)"),
        "zero": (np.array(0.0), r"zero.npz: key 'fps' must be a positive number of frames per second, got 0.0"),
    }
    for name, (fps, message) in refused.items():
        np.savez(tmp_path / f"{name}.npz", keypoints=xy, fps=fps)
        with pytest.raises(JointposeError, match=message):
            load_keypoints(tmp_path / f"{name}.npz")


def test_what_a_video_output_records_is_checked(tmp_path):
    """The layout, image size and fill threshold a video output records are checked, naming the key."""
    from jointpose.inference.export import export

    xy = np.random.default_rng(3).uniform(10, 90, (5, 17, 2))
    refused = {
        "keypoints_layout": ("blazepose99", r"key 'keypoints_layout' must be one of coco17, .*, got 'blazepose99'"),
        "image_size": (
            (96, 0),
            r"key 'image_size' must be positive whole numbers of pixels \(at least 2\), got 96.0 0.0",
        ),
        "confidence_threshold": (1.5, r"key 'confidence_threshold' must be one number in \[0, 1\], got 1.5"),
    }
    for key, (value, message) in refused.items():
        for suffix in ("npz", "json"):
            path = export(
                tmp_path / f"{key}.{suffix}", np.zeros((5, 17, 3)), 30.0, extra={"keypoints_2d": xy}, info={key: value}
            )
            with pytest.raises(JointposeError, match=message):
                load_keypoints(path)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_video_outputs_recorded_camera_is_read_back_and_checked(tmp_path, suffix):
    from jointpose.inference.export import export

    frames = 4
    xy = np.random.default_rng(0).uniform(100, 500, (frames, 17, 2))
    extra = {"keypoints_2d": xy}
    size = {"image_size": (640, 480)}
    export(tmp_path / f"ok{suffix}", np.zeros((frames, 17, 3)), 30.0, extra=extra, info=size | {"focal_length": 500.0})
    camera = load_keypoints(tmp_path / f"ok{suffix}").camera
    assert camera.focal_length == (500.0, 500.0) and camera.center == (320.0, 240.0) and camera.res_w == 640
    export(
        tmp_path / f"pp{suffix}",
        np.zeros((frames, 17, 3)),
        30.0,
        extra=extra,
        info=size | {"focal_length": 500.0, "principal_point": (300.0, 250.0)},
    )
    assert load_keypoints(tmp_path / f"pp{suffix}").camera.center == (300.0, 250.0)
    assert load_keypoints(tmp_path / f"pp{suffix}", confidence_threshold=None).camera is not None
    for info, needle in (
        ({"focal_length": 1e9}, "key 'focal_length' must be 2.793 to 3.667e+04 pixels for an image 640"),
        ({"focal_length": -5.0}, "key 'focal_length' must be a positive number"),
        ({"focal_length": (500.0, 500.0)}, "key 'focal_length' must be one number of pixels"),
        ({"focal_length": "wide"}, "key 'focal_length'"),
        ({"focal_length": 500.0, "principal_point": (1.0,)}, "key 'principal_point' must be two numbers"),
        ({"focal_length": 500.0, "principal_point": (1e5, 0.0)}, "key 'principal_point' must lie within"),
        ({"principal_point": (320.0, 240.0)}, "a recorded camera needs key 'focal_length'"),
    ):
        path = tmp_path / f"bad{suffix}"
        written = size | info
        if suffix == ".json":
            export(path, np.zeros((frames, 17, 3)), 30.0, extra=extra, info=size)
            data = json.loads(path.read_text())
            data.update({k: list(v) if isinstance(v, tuple) else v for k, v in written.items()})
            path.write_text(json.dumps(data))
        else:
            np.savez(path, keypoints_2d=xy, **written)
        with pytest.raises(JointposeError, match=re.escape(str(path)) + ".*" + re.escape(needle)):
            load_keypoints(path)
    # Only a video output's keys: a plain keypoint array beside a 'focal_length' of its own is read as before.
    np.savez(tmp_path / "plain.npz", keypoints=xy, fps=25, focal_length=1000.0)
    assert load_keypoints(tmp_path / "plain.npz").camera is None
    # A video track that does not say which layout it came from is read as Human3.6M-17 joints, with a note.
    assert load_keypoints(tmp_path / f"ok{suffix}").source_layout == "h36m17"
    assert "records no 'keypoints_layout'" in " ".join(load_keypoints(tmp_path / f"ok{suffix}").notes)
    np.savez(tmp_path / "nosize.npz", keypoints_2d=xy, focal_length=500.0)
    with pytest.raises(JointposeError, match="nosize.npz: a recorded camera needs key 'image_size'"):
        load_keypoints(tmp_path / "nosize.npz")


def test_a_video_outputs_track_parts_are_read_back_as_switches(tmp_path, monkeypatch):
    """'track_part' (the stretch each frame belongs to) gives the frames where the track may
    have moved to another person; a joint never confident within a stretch keeps the stored
    positions there, and no gap is filled across a switch."""
    from jointpose.inference.export import export

    frames = 10
    xy = np.tile(np.arange(17, dtype=np.float64)[None, :, None] * 10 + 100, (frames, 1, 2))
    xy[5:] += 200.0  # the second person stands elsewhere
    confidence = np.full((frames, 17), 0.9)
    confidence[3:7, 4] = 0.0  # a gap across the switch at frame 5
    confidence[5:, 6] = 0.05  # never confident in the second stretch
    part = np.array([0] * 5 + [1] * 5)
    extra = {"keypoints_2d": xy, "confidence_2d": confidence, "track_part": part}
    export(tmp_path / "t.npz", np.zeros((frames, 17, 3)), 25.0, extra=extra)
    track = load_keypoints(tmp_path / "t.npz")
    assert track.switches == [5]
    np.testing.assert_allclose(track.xy[3:5, 4], xy[2, 4][None].repeat(2, 0))  # held from its own stretch
    np.testing.assert_allclose(track.xy[5:7, 4], xy[7, 4][None].repeat(2, 0))
    np.testing.assert_allclose(track.xy[5:, 6], xy[5:, 6])  # the stored positions kept
    assert not track.filled[5:, 6].any() and track.filled[3:7, 4].all()
    # Resampled, a switch moves to the first frame at or after its time (0.2 s: frame 10 at 50 fps).
    assert resample_keypoints(track, 25.0, 50.0).switches == [10]
    assert resample_keypoints(track, 25.0, 10.0).switches == [2]
    # One stretch, a joint never confident: its positions are kept, as the video run keeps
    # them, not refused; a stretch where nobody was found is refused, naming it.
    never = confidence.copy()
    never[:, 6] = 0.05
    one = {"keypoints_2d": xy, "confidence_2d": never, "track_part": np.zeros(frames)}
    export(tmp_path / "one.npz", np.zeros((frames, 17, 3)), 25.0, extra=one)
    kept = load_keypoints(tmp_path / "one.npz")
    np.testing.assert_allclose(kept.xy[:, 6], xy[:, 6])
    assert any("never above confidence 0.3 in a stretch" in note for note in kept.notes)
    lost = confidence.copy()
    lost[5:] = 0.0
    export(tmp_path / "lost.npz", np.zeros((frames, 17, 3)), 25.0, extra=extra | {"confidence_2d": lost})
    with pytest.raises(JointposeError, match="lost.npz: no usable joint in frames 5-9, a stretch of its 'track_part'"):
        load_keypoints(tmp_path / "lost.npz")
    monkeypatch.setenv("JOINTPOSE_MAX_TRACK_PARTS", "1")  # each stretch is lifted apart: their count is bounded
    with pytest.raises(JointposeError, match="key 'track_part': stretches: 2 exceeds the limit of 1"):
        load_keypoints(tmp_path / "t.npz")
    monkeypatch.delenv("JOINTPOSE_MAX_TRACK_PARTS")
    for bad in (-1, 2.5, 1e300, "3"):  # the video frame the track starts at
        np.savez(tmp_path / "first.npz", keypoints_2d=xy, first_frame=bad)
        with pytest.raises(JointposeError, match="first.npz.* key 'first_frame'"):
            load_keypoints(tmp_path / "first.npz")
    np.savez(tmp_path / "first.npz", keypoints_2d=xy, first_frame=30)
    assert load_keypoints(tmp_path / "first.npz").first_frame == 30
    for bad in (0.2, 3.0, np.nan, [1.6, 1.7], "1.6"):  # the standing height its poses were scaled to
        np.savez(tmp_path / "tall.npz", keypoints_2d=xy, height=bad)
        with pytest.raises(JointposeError, match="tall.npz.* key 'height'"):
            load_keypoints(tmp_path / "tall.npz")
    np.savez(tmp_path / "tall.npz", keypoints_2d=xy, height=np.float32(1.62))
    assert load_keypoints(tmp_path / "tall.npz").height == 1.62
    np.savez(tmp_path / "plain.npz", keypoints=xy, height=1.62)  # not a video output: not its key
    assert load_keypoints(tmp_path / "plain.npz").height is None
    with pytest.raises(
        JointposeError, match="tall.npz: layout 'coco' does not apply: a jointpose video track is in Human3"
    ):
        load_keypoints(tmp_path / "tall.npz", layout="coco")  # its order is Human3.6M-17's, whatever it came from
    assert load_keypoints(tmp_path / "tall.npz", layout="h36m").source_layout == "h36m17"
    for bad in (part[:-1], part + 0.5, np.array(["a"] * frames), np.where(part, np.inf, 0)):
        np.savez(tmp_path / "bad.npz", keypoints_2d=xy, track_part=bad)
        with pytest.raises(JointposeError, match="bad.npz.* key 'track_part'"):
            load_keypoints(tmp_path / "bad.npz")


def test_a_keypoints2d_built_by_hand_is_checked_naming_the_field():
    """Keypoints2D is public: built by hand, a field of the wrong kind or shape is named at once,
    not met as an IndexError deep inside lifting."""
    xy = coco_expected(np.stack([person(f) for f in range(6)]))
    good = dict(xy=xy, confidence=np.ones((6, 17)), source_format="npy", source_layout="h36m17")
    good["filled"] = np.zeros((6, 17), bool)
    assert Keypoints2D(**good, fps=30, image_size=(640, 480)).fps == 30.0
    for change, message in (
        (dict(xy=xy[:, :16]), r"Keypoints2D xy must be \(frames, 17, 2\) with frames >= 1, got \(6, 16, 2\)"),
        (dict(xy=xy.tolist()[:0]), r"Keypoints2D xy must be \(frames, 17, 2\)"),
        (dict(xy=[["a"]]), r"Keypoints2D xy must be an array of numbers"),
        (dict(confidence=np.ones(6)), r"Keypoints2D confidence must be \(frames, 17\)"),
        (
            dict(filled=np.zeros((6, 17))),
            r"Keypoints2D xy, confidence and filled \(bools\) must have one row per frame and joint",
        ),
        (
            dict(confidence=np.ones((5, 17))),
            r"Keypoints2D xy, confidence and filled \(bools\) must have one row per frame and joint, got \(6, 17, 2\), \(5, 17\)",
        ),
        (dict(fps=0), r"Keypoints2D fps must be a positive number"),
        (dict(image_size=640), r"Keypoints2D image_size must be \(width, height\), got 640"),
        (dict(camera="phone"), r"Keypoints2D camera must be a Camera or None, got str"),
        (dict(switches=[3, 3]), r"Keypoints2D switches must be increasing frames in 1..5, got \[3, 3\]"),
    ):
        with pytest.raises(JointposeError, match="^" + message):
            Keypoints2D(**(good | change))
