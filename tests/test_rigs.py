"""Rig -> Human3.6M-17 mapping: schema, semantics, errors, and the built-in CMU map on real clips."""

import json
from importlib import resources

import numpy as np
import pytest

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.motion.bvh import global_transforms, read_bvh
from jointpose.motion.rigs import (
    builtin_rig_mapping,
    bvh_to_h36m,
    detect_rig_mapping,
    load_rig_mapping,
    motion_to_h36m,
)

TINY = """HIERARCHY
ROOT pelvis
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT a
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 10 0
    }
  }
  JOINT b
  {
    OFFSET -10 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
  }
}
MOTION
Frames: 1
Frame Time: 0.04
5 100 0 0 0 0 90 0 0 0 0 0
"""


def tiny_mapping(**changes) -> dict:
    joints = {name: "pelvis" for name in skeleton.JOINT_NAMES}
    joints.update(
        {
            "RHip": "a",
            "LHip": "b",
            "Spine": {"mean": ["a", "b"]},
            "RKnee": "a_End",
            "Head": {"joint": "a", "offset": [0, 0, 3]},
        }
    )
    mapping = {"name": "tiny", "unit_scale": 0.01, "up_axis": "y", "joints": joints}
    mapping.update(changes)
    return mapping


def write_json(tmp_path, data, name="map.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny_rig.bvh"
    path.write_text(TINY)
    return read_bvh(path)


def test_mapping_semantics_y_up(tmp_path, tiny):
    out = motion_to_h36m(tiny, load_rig_mapping(write_json(tmp_path, tiny_mapping())))
    assert out.shape == (1, 17, 3)
    # rig (file units, Y up): pelvis (5, 100, 0); a (15, 100, 0) turned 90 deg about Z; b (-5, 100, 0)
    # Z up, metres: (x, y, z) -> (x, -z, y) / 100
    expected = {
        "Hip": [0.05, 0.0, 1.0],
        "RHip": [0.15, 0.0, 1.0],
        "LHip": [-0.05, 0.0, 1.0],
        "Spine": [0.05, 0.0, 1.0],  # mean of a and b
        "RKnee": [0.05, 0.0, 1.0],  # a's End Site: (0, 10, 0) turned to (-10, 0, 0)
        "Head": [0.15, -0.03, 1.0],  # (0, 0, 3) in a's frame (a turns about Z, so z stays z)
    }
    for name, position in expected.items():
        assert np.allclose(out[0, skeleton.JOINT_NAMES.index(name)], position), name


def test_mapping_z_up_keeps_axes(tmp_path, tiny):
    mapping = load_rig_mapping(write_json(tmp_path, tiny_mapping(up_axis="z", unit_scale=1)))
    out = motion_to_h36m(tiny, mapping)
    assert np.allclose(out[0, 0], [5, 100, 0]) and np.allclose(out[0, 10], [15, 100, 3])


def test_offset_follows_the_joint_rotation(tmp_path, tiny):
    mapping = tiny_mapping(up_axis="z", unit_scale=1)
    mapping["joints"]["Head"] = {"joint": "a", "offset": [0, 4, 0]}
    out = motion_to_h36m(tiny, load_rig_mapping(write_json(tmp_path, mapping)))
    assert np.allclose(out[0, 10], [15 - 4, 100, 0])  # local +y of a points along world -x


def test_missing_entries_are_all_named(tmp_path):
    mapping = tiny_mapping()
    del mapping["joints"]["LElbow"], mapping["joints"]["RWrist"]
    with pytest.raises(JointposeError) as info:
        load_rig_mapping(write_json(tmp_path, mapping, "partial_map.json"))
    assert all(s in str(info.value) for s in ("partial_map.json", "LElbow", "RWrist"))


def test_absent_rig_joints_are_all_named(tmp_path, tiny):
    mapping = tiny_mapping()
    mapping["joints"]["LWrist"] = "hand_l"
    mapping["joints"]["Thorax"] = {"mean": ["chest", "a"]}
    with pytest.raises(JointposeError) as info:
        motion_to_h36m(tiny, load_rig_mapping(write_json(tmp_path, mapping)))
    assert all(s in str(info.value) for s in ("tiny_rig.bvh", "hand_l", "chest", "map.json"))


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"unit_scale": -1}, "unit_scale"),
        ({"unit_scale": "cm"}, "unit_scale"),
        ({"unit_scale": 1e300}, "unit_scale must be metres per file unit in"),  # overflowed the motion
        ({"unit_scale": 1e-9}, "unit_scale must be metres per file unit in"),
        ({"up_axis": "x"}, "up_axis"),
        ({"joints": []}, "joints"),
    ],
)
def test_bad_mapping_fields(tmp_path, change, fragment):
    with pytest.raises(JointposeError, match=fragment) as info:
        load_rig_mapping(write_json(tmp_path, tiny_mapping(**change)))
    assert "map.json" in str(info.value)


@pytest.mark.parametrize(
    "entry",
    [{"joint": "a", "offset": [1, 2]}, {"joint": "a", "offset": [10**400, 0, 0]}, {"mean": []}, {"joint": "a"}, 3, ""],
)
def test_malformed_entries(tmp_path, entry):
    mapping = tiny_mapping()
    mapping["joints"]["Neck/Nose"] = entry
    with pytest.raises(JointposeError, match="Neck/Nose"):
        load_rig_mapping(write_json(tmp_path, mapping))


def test_unknown_joint_name_and_invalid_json(tmp_path):
    mapping = tiny_mapping()
    mapping["joints"]["Nose"] = "a"
    with pytest.raises(JointposeError, match="'Nose'"):
        load_rig_mapping(write_json(tmp_path, mapping))
    path = tmp_path / "broken.json"
    path.write_text('{\n  "joints": {\n    "Hip": "a",,\n  }\n}\n')
    with pytest.raises(JointposeError, match=r"broken\.json line 3"):
        load_rig_mapping(path)
    with pytest.raises(JointposeError, match="absent.json"):
        load_rig_mapping(tmp_path / "absent.json")


def test_builtin_mapping_is_the_shipped_example():
    builtin = builtin_rig_mapping("cmu")
    assert builtin.unit_scale == 0.01 and builtin.up_axis == "y" and len(builtin.sources) == 17
    with resources.as_file(resources.files("jointpose") / "resources" / "rigs" / "cmu_cc_base.json") as path:
        assert load_rig_mapping(path).sources == builtin.sources
    with pytest.raises(JointposeError, match="known: cmu"):
        builtin_rig_mapping("mixamo")


def test_detection(tiny, cmu_mocap):
    with pytest.raises(JointposeError, match="tiny_rig.bvh"):
        detect_rig_mapping(tiny)
    assert detect_rig_mapping(read_bvh(cmu_mocap / "002" / "002_03.bvh")).name == "cmu-cc-base"


def bone_lengths(positions: np.ndarray) -> np.ndarray:
    child, parent = np.array(skeleton.BONES).T
    return np.linalg.norm(positions[:, child] - positions[:, parent], axis=-1)


# Bones of the CMU map whose two ends sit on one rig body (or a joint and its child body):
# exactly constant. The others span spine, neck or clavicle joints and flex with them.
RIGID_BONES = [
    k
    for k, name in enumerate(skeleton.BONE_NAMES)
    if name not in ("Hip-Spine", "Thorax-Neck/Nose", "Thorax-LShoulder", "Thorax-RShoulder")
]


def check_cmu_clip(positions: np.ndarray) -> None:
    """Constant rigid bones, human proportions, Z up, left on the left."""
    lengths = bone_lengths(positions)
    mean = lengths.mean(axis=0)
    assert (np.ptp(lengths[:, RIGID_BONES], axis=0) <= 1e-6 * mean[RIGID_BONES]).all()
    assert (lengths.std(axis=0) <= 0.15 * mean).all()  # neck nods and shoulder shrugs: at most ~12 % seen
    names = list(skeleton.BONE_NAMES)
    for bone, low, high in [
        ("RHip-RKnee", 0.35, 0.55),
        ("RKnee-RFoot", 0.35, 0.55),
        ("LShoulder-LElbow", 0.2, 0.35),
        ("LElbow-LWrist", 0.2, 0.33),
        ("Hip-RHip", 0.07, 0.16),
        ("Spine-Thorax", 0.15, 0.35),
    ]:
        assert low < mean[names.index(bone)] < high, bone
    height = positions[:, 10, 2] - positions[:, [3, 6], 2].min(axis=1)  # head top over the lower ankle
    assert 1.4 < np.percentile(height, 90) < 2.0
    assert (positions[:, 10, 2] > positions[:, 0, 2]).mean() > 0.8  # head above the hip: Z is up
    forward = positions[:, 9] - positions[:, 8]  # thorax -> nose
    left = np.cross([0.0, 0.0, 1.0], forward)  # up x forward points to the person's left
    assert (np.sum(left * (positions[:, 4] - positions[:, 1]), axis=-1) > 0).mean() > 0.9


@pytest.mark.parametrize("clip", ["002/002_03.bvh", "002/002_04.bvh"])  # RL_BoneRoot and CC_Base_Hip roots
def test_cmu_clip_maps_to_a_plausible_skeleton(cmu_mocap, clip):
    positions, fps = bvh_to_h36m(cmu_mocap / clip)
    assert fps == 60.0 and positions.shape[1:] == (17, 3)
    check_cmu_clip(positions)


def test_bvh_to_h36m_resamples(cmu_mocap):
    full, _ = bvh_to_h36m(cmu_mocap / "002" / "002_03.bvh")
    half, fps = bvh_to_h36m(cmu_mocap / "002" / "002_03.bvh", fps=30)
    assert fps == 30.0 and np.allclose(half, full[::2][: len(half)], atol=1e-9)


@pytest.mark.slow
def test_every_cmu_clip(cmu_mocap):
    clips = sorted(cmu_mocap.glob("*/*.bvh"))
    assert len(clips) >= 35
    for clip in clips:
        motion = read_bvh(clip)
        positions = global_transforms(motion)[0]
        parents = np.array(motion.parents)
        child = np.flatnonzero(parents >= 0)
        lengths = np.linalg.norm(positions[:, child] - positions[:, parents[child]], axis=-1)
        assert (np.ptp(lengths, axis=0) <= 1e-6 * lengths.mean(axis=0) + 1e-9).all(), clip
        check_cmu_clip(motion_to_h36m(motion))
