import re
import warnings

import numpy as np
import pytest
import torch

from h36m_files import write_dataset
from jointpose.cli import flag_message
from jointpose.data.batching import ChunkedWindows, MixedWindows
from jointpose.data.h36m import load_dataset
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry import skeleton
from jointpose.geometry.calibrations import h36m_cameras


def test_load_converts_to_camera_space_root_relative(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S9"])
    assert len(data.sequences) == 2 * 4 and data.num_keypoints == 17
    seq = data.sequences[0]
    assert seq.key == "S9/Walking/0" and seq.action_group == "Walking"
    raw = np.load(h36m_dir / "data_3d_h36m.npz", allow_pickle=True)["positions_3d"].item()["S9"]["Walking"]
    cam = h36m_cameras()["S9"][0]
    expected = cam.world_to_camera(skeleton.reduce_32_to_17(raw.astype(np.float64)))
    assert np.allclose(seq.poses_3d, expected - expected[:, :1], atol=1e-5)
    assert np.allclose(seq.trajectory, expected[:, 0], atol=1e-5)
    assert np.all(seq.poses_3d[:, 0] == 0)
    # 2D normalised: the projection of the 3D root lands where the 2D root is.
    pix = cam.project(expected[:, 0])
    assert np.allclose(seq.keypoints[:, 0], cam.normalize(pix), atol=1e-4)


def test_action_filter_subset_and_downsample(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S1", "S5"], ["Walking"])
    assert {s.action for s in data.sequences} == {"Walking 1"}
    full = load_dataset(h36m_dir, "gt", ["S1"], ["Walking"])
    half = load_dataset(h36m_dir, "gt", ["S1"], ["Walking"], subset=0.5)
    assert len(half.sequences[0].keypoints) == 80
    start = np.argwhere(np.all(full.sequences[0].keypoints == half.sequences[0].keypoints[0], axis=(1, 2))).ravel()
    assert len(start) == 1 and np.array_equal(
        full.sequences[0].keypoints[start[0] : start[0] + 80], half.sequences[0].keypoints
    )
    down = load_dataset(h36m_dir, "gt", ["S1"], ["Walking"], downsample=2)
    assert np.array_equal(down.sequences[0].keypoints, full.sequences[0].keypoints[::2])


def test_unknown_names_list_what_the_file_has(h36m_dir):
    with pytest.raises(JointposeError, match="subject S2 not in .*S1, S5, S9, S11"):
        load_dataset(h36m_dir, "gt", ["S2"])
    with pytest.raises(JointposeError, match="Jumping.*Directions, Walking"):
        load_dataset(h36m_dir, "gt", ["S1"], ["Jumping"])
    with pytest.raises(
        JointposeError, match="^keypoints cpn: file not found.*[(]dataset h36m keypoints in .*: gt"
    ) as info:
        load_dataset(h36m_dir, "cpn", ["S1"])
    assert re.match(r"-k cpn: file not found.*[(]-d h36m keypoints in .*: gt[)]$", flag_message(info.value))
    for bad in ("S1", None):  # a bare string would be read letter by letter
        with pytest.raises(JointposeError, match="^subjects must be a list of names, e.g. ..S9.., got"):
            load_dataset(h36m_dir, "gt", bad)
    with pytest.raises(JointposeError, match="^actions must be a list of names, e.g. ..Walking.., got 'Walking'"):
        load_dataset(h36m_dir, "gt", ["S1"], "Walking")
    assert [s.key for s in load_dataset(h36m_dir, "gt", {"S1"}, np.array(["Walking"])).sequences] == [
        s.key for s in load_dataset(h36m_dir, "gt", ["S1"], ["Walking"]).sequences
    ]
    with pytest.raises(JointposeError, match="directory not found"):
        load_dataset(h36m_dir / "nope", "gt", ["S1"])


def test_2d_longer_is_trimmed_with_warning_and_shorter_fails(tmp_path):
    folder = write_dataset(tmp_path / "long", {"S1": {"Walking": 50}}, extra_2d_frames=4)
    with pytest.warns(JointposeWarning, match="trimmed to the 3D length"):
        data = load_dataset(folder, "gt", ["S1"])
    assert all(len(s.keypoints) == 50 for s in data.sequences)

    folder = write_dataset(tmp_path / "short", {"S1": {"Walking": 50}})
    files = dict(np.load(folder / "data_2d_h36m_gt.npz", allow_pickle=True))
    pos = files["positions_2d"].item()
    pos["S1"]["Walking"][2] = pos["S1"]["Walking"][2][:40]
    np.savez(folder / "data_2d_h36m_gt.npz", positions_2d=pos, metadata=files["metadata"].item())
    with pytest.raises(JointposeError, match="camera 2"):
        load_dataset(folder, "gt", ["S1"])


def test_dataset_files_read_only_their_own_keys(tmp_path, monkeypatch):
    # Each file gets 8 MB of zeros under a key jointpose does not use; with the decompressed
    # limit at 4 MB the dataset still loads, and the same data alike, as nothing else is read.
    folder = write_dataset(tmp_path / "d", {"S1": {"Walking": 30}})
    before = load_dataset(folder, "gt", ["S1"])
    for name in ("data_2d_h36m_gt.npz", "data_3d_h36m.npz"):
        files = {k: v.item() if v.dtype.hasobject else v for k, v in np.load(folder / name, allow_pickle=True).items()}
        np.savez_compressed(folder / name, junk=np.zeros(2**20), **files)
    monkeypatch.setenv("JOINTPOSE_MAX_NPZ_BYTES", str(4 * 2**20))
    after = load_dataset(folder, "gt", ["S1"])
    assert [s.key for s in after.sequences] == [s.key for s in before.sequences]
    assert all(np.array_equal(a.keypoints, b.keypoints) for a, b in zip(after.sequences, before.sequences))
    assert all(np.array_equal(a.poses_3d, b.poses_3d) for a, b in zip(after.sequences, before.sequences))


def test_nan_and_confidence_column(tmp_path):
    folder = write_dataset(tmp_path, {"S1": {"Walking": 30}})
    files = dict(np.load(folder / "data_2d_h36m_gt.npz", allow_pickle=True))
    pos = files["positions_2d"].item()
    views = pos["S1"]["Walking"]
    pos["S1"]["Walking"] = [np.concatenate([v, np.ones(v.shape[:2] + (1,), np.float32)], axis=-1) for v in views]
    np.savez(folder / "data_2d_h36m_gt.npz", positions_2d=pos, metadata=files["metadata"].item())
    data = load_dataset(folder, "gt", ["S1"])
    assert data.sequences[0].keypoints.shape == (30, 17, 2)
    pos["S1"]["Walking"][1][7, 3, 0] = np.nan
    np.savez(folder / "data_2d_h36m_gt.npz", positions_2d=pos, metadata=files["metadata"].item())
    with pytest.raises(JointposeError, match=r"\['S1'\]\['Walking'\]\[1\].*NaN.*frame 7"):
        load_dataset(folder, "gt", ["S1"])


def test_mismatched_camera_count(tmp_path):
    folder = write_dataset(tmp_path, {"S1": {"Walking": 30}})
    files = dict(np.load(folder / "data_2d_h36m_gt.npz", allow_pickle=True))
    pos = files["positions_2d"].item()
    pos["S1"]["Walking"] = pos["S1"]["Walking"][:3]
    np.savez(folder / "data_2d_h36m_gt.npz", positions_2d=pos, metadata=files["metadata"].item())
    with pytest.raises(JointposeError, match="3 cameras but subject S1 has 4"):
        load_dataset(folder, "gt", ["S1"])


def test_windows_cover_every_frame_once_and_gather_correctly(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S1"])
    for chunk in (1, 8):
        windows = ChunkedWindows(data.sequences, 27, chunk=chunk)
        covered = torch.cat([windows.target_starts[i] + torch.arange(chunk) for i in range(len(windows))])
        total = sum(len(s.poses_3d) for s in data.sequences)
        assert len(torch.unique(covered)) == total  # every target frame at least once
        assert len(covered) - total < chunk * len(data.sequences)  # overlap only at sequence ends
    windows = ChunkedWindows(data.sequences, 27, chunk=8)
    batch = windows.gather(torch.tensor([0, 5]))
    seq = data.sequences[0]
    # Chunk 5 targets frames 40..47; its window is centred: input frames 40-13 .. 47+13.
    assert torch.equal(batch.targets[1], torch.from_numpy(seq.poses_3d[40:48]))
    assert torch.equal(batch.inputs[1], torch.from_numpy(seq.keypoints[27:61]))
    # Chunk 0 starts at frame 0: its window is edge-padded with copies of frame 0.
    assert torch.equal(batch.inputs[0, :13], torch.from_numpy(seq.keypoints[[0] * 13]))


def test_flip_augmentation_in_batches(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S1"])
    windows = ChunkedWindows(data.sequences, 27, chunk=4)
    index = torch.arange(6)
    plain = windows.gather(index)
    flipped = windows.gather(index, torch.tensor([True, False] * 3))
    assert torch.equal(flipped.inputs[1], plain.inputs[1])
    assert torch.equal(flipped.inputs[0], skeleton.flip_poses(plain.inputs[0]))
    assert torch.equal(flipped.targets[0], skeleton.flip_poses(plain.targets[0]))


def test_epoch_batches_are_seeded_shards(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S1", "S5"])
    windows = ChunkedWindows(data.sequences, 27, chunk=1)
    a = [b.targets for b, _ in windows.batches(300, seed=3, epoch=0)]
    b = [b.targets for b, _ in windows.batches(300, seed=3, epoch=0)]
    c = [b.targets for b, _ in windows.batches(300, seed=3, epoch=1)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    # VideoPose3D's epoch: every window twice, once as it is and once mirrored.
    assert sum(len(x) for x in a) == 2 * len(windows) == windows.entries(augment=True)
    order, flips = windows.epoch_order(3, 0, augment=True)
    assert torch.equal(torch.bincount(order, minlength=len(windows)), torch.full((len(windows),), 2))
    assert torch.equal(torch.bincount(order[flips], minlength=len(windows)), torch.ones(len(windows), dtype=torch.long))
    # Two processes: disjoint shards that together make each global batch.
    seen = []
    for rank in (0, 1):
        for batch, _global_chunks in windows.batches(300, seed=3, epoch=0, rank=rank, world_size=2, augment=False):
            seen.append(len(batch.targets))
    assert sum(seen) == len(windows)
    # Batch norm needs two windows per process: a batch of one frame gets them.
    for world_size in (1, 2):
        sizes = [len(b.targets) for b, _ in windows.batches(1, seed=3, epoch=0, world_size=world_size, augment=False)]
        assert min(sizes) >= 2 and sum(sizes) == len(windows) // world_size
        assert len(sizes) == windows.steps_per_epoch(1, world_size, augment=False)


def test_mixed_steps_keep_the_baseline_compute_and_shard(h36m_dir):
    data = load_dataset(h36m_dir, "gt", ["S1", "S5"])
    singles = ChunkedWindows(data.sequences, 27, chunk=1)
    baseline = MixedWindows(data.sequences, 27, share=0.0)
    # share 0 is VideoPose3D's training, batch for batch.
    for plain, (reference, _) in zip(baseline.batches(300, seed=3, epoch=0), singles.batches(300, seed=3, epoch=0)):
        assert torch.equal(plain.windows, reference.inputs) and torch.equal(plain.singles, reference.targets[:, 0])
        assert len(plain.chunks) == 0
    mixed = MixedWindows(data.sequences, 27, chunk=8, share=0.5)
    steps = list(mixed.batches(304, seed=3, epoch=0, augment=False))
    assert len(steps) == baseline.steps_per_epoch(304, augment=False) == mixed.steps_per_epoch(304, augment=False)
    assert mixed.steps_per_epoch(304) == len(list(mixed.batches(304, seed=3, epoch=0))) >= 2 * len(steps) - 1
    seen = torch.cat([b.singles.reshape(len(b.singles), -1) for b in steps])
    assert len(torch.unique(seen, dim=0)) == len(seen)  # no single window twice in an epoch
    for b in steps:
        assert len(b.singles) == 152 and b.chunks.shape[:2] == (19, 8)  # 304 frames, half in chunks
        assert b.windows.shape == (152 + 19 * 8, 27, 17, 2) and b.trajectory.shape == (152 + 19 * 8, 3)
    # A chunk's windows are consecutive: each is the previous one shifted by a frame.
    chunk_windows = steps[0].windows[152:160]
    assert torch.equal(chunk_windows[1:, :-1], chunk_windows[:-1, 1:])
    # Two processes: disjoint halves of every step, singles and chunks alike.
    for step, (a, b) in zip(
        steps,
        zip(
            mixed.batches(304, 3, 0, augment=False, rank=0, world_size=2),
            mixed.batches(304, 3, 0, augment=False, rank=1, world_size=2),
        ),
    ):
        assert len(a.singles) + len(b.singles) == a.global_singles == len(step.singles)
        assert len(a.chunks) + len(b.chunks) == a.global_chunks == len(step.chunks)
        together = torch.cat([a.singles, b.singles]).reshape(len(step.singles), -1)
        assert torch.equal(together.sort(dim=0).values, step.singles.reshape(len(step.singles), -1).sort(dim=0).values)


def test_windows_handle_short_sequences(tmp_path):
    folder = write_dataset(tmp_path, {"S1": {"Walking": 5}})
    data = load_dataset(folder, "gt", ["S1"])
    windows = ChunkedWindows(data.sequences, 27, chunk=8)
    batch = windows.gather(torch.arange(len(windows)))
    assert batch.inputs.shape[1:] == (34, 17, 2) and batch.targets.shape[1:] == (8, 17, 3)


def test_warning_category(h36m_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(h36m_dir, "gt", ["S1"])  # exact-length files: no warning


def test_messages_list_a_files_names_cut_short(tmp_path):
    """Subjects and actions are names read from the file: a message lists six, each cut to 60
    characters, and how many more (thousands of keys gave a line of hundreds of kilobytes)."""
    long = "Aa" + "x" * 500  # one action group, listed first
    names = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
    write_dataset(tmp_path, {name: {long: 30, **{f"Act{j}": 30 for j in range(8)}} for name in names})
    with pytest.raises(JointposeError) as info:
        load_dataset(tmp_path, "gt", ["S2"])
    assert str(info.value).endswith("(it has: S1, S5, S6, S7, S8, S9 and 1 more)")
    with pytest.raises(JointposeError) as info:
        load_dataset(tmp_path, "gt", ["S1"], ["Sitting"])
    message = str(info.value)
    assert "action(s) Sitting not found for S1" in message and len(message) < 400
    assert message.endswith(f"(it has: {'Aa' + 'x' * 55}..., Act0, Act1, Act2, Act3, Act4 and 3 more)")


def test_a_camera_placed_beyond_any_scene_is_one_error_without_numpys_warnings(tmp_path):
    """The files' own calibration (``cameras``, as data build writes it) with a camera 1e308 m
    away: the 3D it sees overflows, refused in one message, with no RuntimeWarning printed."""
    import json

    from jointpose.geometry.calibrations import h36m_cameras, subject_cameras_schema

    write_dataset(tmp_path, {"S1": {"Walking 1": 30}})
    schema = subject_cameras_schema({"S1": h36m_cameras()["S1"]})
    schema["extrinsic"]["S1"][0]["translation"] = [1e308, 0.0, 0.0]
    files = dict(np.load(tmp_path / "data_3d_h36m.npz", allow_pickle=True))  # written by the tests themselves
    np.savez(tmp_path / "data_3d_h36m.npz", **files, cameras=json.dumps(schema))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(JointposeError, match=r"positions_3d\['S1'\]\['Walking 1'\] seen by camera 0"):
            load_dataset(tmp_path, "gt", ["S1"])
