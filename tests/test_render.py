"""Animations of 2D keypoints beside 3D poses: files written, colours, stable equal-axis 3D view, bad input."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from mpl_toolkits.mplot3d import proj3d

from h36m_files import cli, write_dataset
from jointpose.errors import JointposeError, JointposeWarning
from jointpose.geometry.cameras import project_points
from jointpose.geometry.skeleton import BONES
from jointpose.render import (
    BONE_SIDES,
    CENTRE_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    PoseFigure,
    dpi_for,
    render_animation,
)

IMAGE_SIZE = (800, 600)  # width, height (pixels)
FOCAL, CENTER = (800.0, 800.0), (400.0, 300.0)

# Joints relative to the hip of a person facing the camera (camera space, metres: x right,
# y down, z forward), so the person's left side is at +x.
_REST = np.array(
    [
        [0.0, 0.0, 0.0],
        [-0.13, 0.0, 0.0],
        [-0.13, 0.45, 0.0],
        [-0.13, 0.89, 0.0],  # right leg
        [0.13, 0.0, 0.0],
        [0.13, 0.45, 0.0],
        [0.13, 0.89, 0.0],  # left leg
        [0.0, -0.23, 0.0],
        [0.0, -0.49, 0.0],
        [0.0, -0.60, -0.08],
        [0.0, -0.73, 0.0],  # spine to head
        [0.17, -0.47, 0.0],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],  # left arm (elbow, wrist set below)
        [-0.17, -0.47, 0.0],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],  # right arm
    ]
)


def walking_poses(frames: int, root_start: float = 4.5) -> np.ndarray:
    """(frames, 17, 3) camera-space metres: legs swing back and forth, arms held out sideways and swinging."""
    phase = 2 * np.pi * np.arange(frames) / 12.0
    poses = np.repeat(_REST[None], frames, axis=0)
    limbs = ((1.0, (4, 5, 6, 11, 12, 13)), (-1.0, (1, 2, 3, 14, 15, 16)))  # left, right
    for side, (hip, knee, foot, shoulder, elbow, wrist) in limbs:
        swing = np.radians(25.0) * side * np.sin(phase)  # thigh angle, forward = towards the camera (-z)
        poses[:, knee] = poses[:, hip] + 0.45 * np.stack([np.zeros_like(swing), np.cos(swing), -np.sin(swing)], -1)
        shin = swing - np.radians(20.0) * (1 + np.sin(phase + side))
        poses[:, foot] = poses[:, knee] + 0.44 * np.stack([np.zeros_like(shin), np.cos(shin), -np.sin(shin)], -1)
        arm = -0.6 * swing  # arms swing against the legs, 60 degrees out from the body
        outward = np.stack(
            [side * np.sin(np.radians(60.0)) * np.cos(arm), np.cos(np.radians(60.0)) * np.cos(arm), -np.sin(arm)], -1
        )
        poses[:, elbow] = poses[:, shoulder] + 0.28 * outward
        poses[:, wrist] = poses[:, elbow] + 0.25 * outward
    root = np.stack([0.4 * np.sin(phase / 4), np.zeros(frames), root_start - 0.05 * np.arange(frames)], -1)
    return poses + root[:, None]


def clip(frames: int = 10) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """2D pixels and {Prediction, Ground truth} 3D poses that differ slightly."""
    truth = walking_poses(frames)
    prediction = truth + np.random.default_rng(0).normal(0.0, 0.02, truth.shape)
    return project_points(truth, FOCAL, CENTER), {"Prediction": prediction, "Ground truth": truth}


def pixel(figure: PoseFigure, ax, points: np.ndarray) -> np.ndarray:
    """Row, column in the rendered frame of data points (N, 2) of a 2D axes or (N, 3) of a 3D one."""
    if points.shape[-1] == 3:
        x, y, _ = proj3d.proj_transform(points[:, 0], points[:, 1], points[:, 2], ax.get_proj())
        points = np.stack([x, y], -1)
    display = ax.transData.transform(points)
    height = figure.canvas.get_width_height()[1]
    return np.stack([height - display[:, 1], display[:, 0]], -1).round().astype(int)


def plot_coords(poses: np.ndarray) -> np.ndarray:
    """Root-centred camera-space poses in the 3D panels' axes (x, depth z, up = -y)."""
    relative = poses - poses[..., :1, :]
    return np.stack([relative[..., 0], relative[..., 2], -relative[..., 1]], -1)


def forearm_middles(points: np.ndarray) -> dict[str, np.ndarray]:
    """Midpoints of the left (12-13) and right (15-16) forearms of one pose."""
    return {"left": (points[12] + points[13]) / 2, "right": (points[15] + points[16]) / 2}


def test_bone_sides_follow_the_skeleton():
    sides = dict(zip(BONES, BONE_SIDES))
    assert sides[(13, 12)] == "left" and sides[(16, 15)] == "right"
    assert sides[(4, 0)] == "left" and sides[(1, 0)] == "right"
    assert sides[(10, 9)] == "centre" and sides[(7, 0)] == "centre"


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animation_written_and_read_back(tmp_path: Path, suffix: str):
    keypoints, poses = clip(10)
    out = render_animation(
        tmp_path / f"walk{suffix}", keypoints, poses, image_size=IMAGE_SIZE, fps=10.0, progress=False, dpi=50
    )
    assert out == tmp_path / f"walk{suffix}" and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # the partial file is gone
    frames = iio.imread(out, index=None, **({"plugin": "pillow", "mode": "RGB"} if suffix == ".gif" else {}))
    expected = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=50).frame_shape
    assert frames.shape == (10, *expected)
    assert expected[0] % 2 == 0 and expected[1] % 2 == 0
    change = np.abs(frames[0].astype(int) - frames[5].astype(int)).mean(axis=-1)
    assert (change > 60).sum() > 200  # the limbs moved


@pytest.mark.parametrize(
    ("fps", "frames", "delays_ms"),
    [
        (30.0, 6, [30, 40, 30, 30, 40, 30]),  # 1/30 s is 3.33 hundredths: no frame cut short
        (50.0, 4, [20, 20, 20, 20]),
        (60.0, 6, [20, 30, 20, 30]),  # 0.02 s at least: frames 2 and 5 start 0.01 s after 1 and 4
    ],
)
def test_gif_delays_add_up_to_the_clips_duration(tmp_path: Path, fps: float, frames: int, delays_ms: list[int]):
    from PIL import Image

    keypoints, poses = clip(frames)
    out = render_animation(tmp_path / "t.gif", keypoints, poses, image_size=IMAGE_SIZE, fps=fps, progress=False, dpi=30)
    with Image.open(out) as gif:
        delays = []
        for index in range(gif.n_frames):
            gif.seek(index)
            delays.append(gif.info["duration"])
    assert delays == delays_ms
    assert sum(delays) == 10 * round(100 * frames / fps)


def test_max_frames_and_background_array(tmp_path: Path):
    keypoints, poses = clip(6)
    background = np.zeros((6, IMAGE_SIZE[1], IMAGE_SIZE[0], 3), np.uint8)
    background[..., 1] = np.linspace(0, 250, 6).astype(np.uint8)[:, None, None]  # greener frame by frame
    out = render_animation(
        tmp_path / "a.gif",
        keypoints,
        poses,
        image_size=None,
        fps=5.0,
        background=background,
        max_frames=4,
        progress=False,
        dpi=40,
    )
    frames = iio.imread(out, index=None, plugin="pillow", mode="RGB")
    assert len(frames) == 4
    figure = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40)
    row, col = pixel(figure, figure.axes_2d, np.array([[30.0, 30.0]]))[0]  # a corner away from the person
    green = frames[:, row, col].astype(int)
    assert np.all(np.abs(green[:, 1] - background[:4, 0, 0, 1]) < 12) and np.all(green[:, [0, 2]] < 12)


def test_background_video(tmp_path: Path):
    keypoints, poses = clip(5)
    video = tmp_path / "in.mp4"
    colors = np.linspace(0, 240, 5).astype(np.uint8)
    iio.imwrite(video, np.broadcast_to(colors[:, None, None, None], (5, 96, 128, 3)), fps=5, macro_block_size=1)
    scaled = keypoints * np.array([128 / IMAGE_SIZE[0], 96 / IMAGE_SIZE[1]])
    out = render_animation(
        tmp_path / "b.mp4", scaled, poses, image_size=(128, 96), fps=5.0, background=video, progress=False, dpi=40
    )
    assert iio.imread(out, index=None).shape[0] == 5
    with pytest.raises(JointposeError, match="in.mp4.*has 5 frames"):
        render_animation(tmp_path / "c.mp4", scaled[:4], {}, image_size=None, fps=5.0, background=video)
    with pytest.raises(JointposeError, match="128x96.*image_size is 800x600"):
        render_animation(tmp_path / "c.mp4", scaled, {}, image_size=IMAGE_SIZE, fps=5.0, background=video)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(JointposeError, match="text.mp4: cannot read it as a video"):
        render_animation(tmp_path / "c.mp4", scaled, {}, image_size=None, fps=5.0, background=tmp_path / "text.mp4")
    with pytest.raises(JointposeError, match="missing.mp4"):
        render_animation(tmp_path / "c.mp4", scaled, {}, image_size=None, fps=5.0, background=tmp_path / "missing.mp4")


def test_captions_are_drawn_under_their_frames_only():
    keypoints, poses = clip(4)
    captioned = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40, captions={2: "a caption"})
    plain = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40)
    np.testing.assert_array_equal(captioned.draw(1), plain.draw(1))
    assert (captioned.draw(2) != plain.draw(2)).any()


def test_the_counter_of_a_cut_gives_the_video_frame_number():
    keypoints, poses = clip(4)
    assert PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40).counter(2) == "frame 3/4"
    cut = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40, first_frame=300)
    assert cut.counter(2) == "frame 3/4, the video's frame 303"
    assert (cut.draw(2) != PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40).draw(2)).any()
    for bad in (-1, 1.5, True, "300"):
        with pytest.raises(JointposeError, match="first_frame"):
            PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, first_frame=bad)


def test_the_path_is_broken_where_the_track_may_move_to_another_person():
    """A track lifted in two stretches (perhaps two people): its root path is drawn with a gap
    between them, not as a walk from one to the other, and each frame's trail ends at its own
    position."""
    keypoints, poses = clip(6)
    path = np.stack([np.arange(6.0), np.zeros(6), np.r_[np.full(3, 3.0), np.full(3, 6.0)]], axis=-1)
    figure = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40, trajectory=path, breaks=[3])
    done, here, gapped, row = figure._trail
    whole = next(line for line in done.axes.get_lines() if line is not done and line is not here)
    drawn = np.stack(whole.get_data(), axis=-1)
    np.testing.assert_array_equal(np.isnan(drawn[:, 0]), [False] * 3 + [True] + [False] * 3)
    for index in range(6):
        figure.draw(index)
        np.testing.assert_array_equal(np.stack(here.get_data(), axis=-1)[0], path[index, [0, 2]])
        trail = np.stack(done.get_data(), axis=-1)
        assert len(trail) == index + 1 + (index >= 3) and np.isnan(trail[:, 0]).sum() == (index >= 3)


def test_text_and_lines_keep_their_share_of_a_taller_frame(tmp_path):
    """--render-height sets the dpi, not the inches: a frame twice as tall is the same picture
    at twice the resolution (text in points grew with it; before, it stayed 10 px and the
    legend covered the axes at 200 px). Frames wider than players decode are noted."""
    keypoints, poses = clip(2)
    small = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=dpi_for(208)).draw(0)
    large = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=dpi_for(416)).draw(0)
    assert dpi_for(416) == 80 and large.shape[0] == 416 and small.shape[0] == 208
    assert abs(large.shape[1] - 2 * small.shape[1]) <= 2
    halved = large[: 2 * (small.shape[0] // 2) : 2, : 2 * (small.shape[1] // 2) : 2].astype(float)
    assert np.abs(halved - small[: halved.shape[0], : halved.shape[1]]).mean() < 20  # the same picture
    with pytest.warns(JointposeWarning, match=r"w.mp4: frames \d+ pixels wide: many players and browsers decode"):
        render_animation(
            tmp_path / "w.mp4",
            keypoints,
            {"a": poses["Prediction"], "b": poses["Prediction"]},
            image_size=(4000, 1000),
            fps=10,
            dpi=dpi_for(2160),
        )


def test_left_and_right_colours_in_2d_and_3d():
    keypoints, poses = clip(8)
    frame_index = 3
    figure = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE)
    image = figure.draw(frame_index).astype(int)
    expected = {"left": 255 * np.array(to_rgb(LEFT_COLOR)), "right": 255 * np.array(to_rgb(RIGHT_COLOR))}
    assert np.abs(expected["left"] - expected["right"]).max() > 100
    panels = [(figure.axes_2d, keypoints[frame_index])]
    panels += [(figure.axes_3d[name], plot_coords(poses[name][frame_index])) for name in poses]
    for ax, points in panels:
        middles = forearm_middles(points)
        for side, (row, col) in zip(middles, pixel(figure, ax, np.stack(list(middles.values())))):
            patch = image[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3)
            distance = {key: np.abs(patch - color).max(axis=1).min() for key, color in expected.items()}
            other = "right" if side == "left" else "left"
            assert distance[side] < 25 and distance[other] > 75, (ax.get_title(), side, patch)
    # The person's left (at +x, facing the camera) is on the image's right.
    assert keypoints[frame_index, 13, 0] > keypoints[frame_index, 16, 0]
    # The spine is drawn in the centre colour.
    row, col = pixel(figure, figure.axes_2d, ((keypoints[frame_index, 7] + keypoints[frame_index, 8]) / 2)[None])[0]
    patch = image[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3)
    assert np.abs(patch - 255 * np.array(to_rgb(CENTRE_COLOR))).max(axis=1).min() < 25


def test_person_upright_and_not_mirrored():
    keypoints, poses = clip(4)
    figure = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, azimuth=-90.0, elevation=0.0)
    figure.draw(0)
    head_foot = np.array([10, 3])
    rows_2d = pixel(figure, figure.axes_2d, keypoints[0, head_foot])[:, 0]
    assert rows_2d[0] < rows_2d[1]  # head above the foot in the image panel
    ax = figure.axes_3d["Ground truth"]
    points = plot_coords(poses["Ground truth"][0])
    rows_3d = pixel(figure, ax, points[head_foot])[:, 0]
    assert rows_3d[0] < rows_3d[1] - 100  # head well above the foot in the 3D panel
    wrists = np.array([13, 16])  # seen from the camera, left/right order matches the image
    cols_2d = pixel(figure, figure.axes_2d, keypoints[0, wrists])[:, 1]
    cols_3d = pixel(figure, ax, points[wrists])[:, 1]
    assert np.sign(cols_2d[0] - cols_2d[1]) == np.sign(cols_3d[0] - cols_3d[1]) == 1


def test_3d_lines_are_camera_space_rotated_upright():
    _, poses = clip(4)
    figure = PoseFigure(None, poses, image_size=None)
    figure.draw(2)
    relative = poses["Ground truth"][2] - poses["Ground truth"][2, 0]
    sides = {
        to_rgb(color): side for side, color in (("left", LEFT_COLOR), ("right", RIGHT_COLOR), ("centre", CENTRE_COLOR))
    }
    joints, drawn = [], []
    for line in figure.axes_3d["Ground truth"].lines:
        side = sides[to_rgb(line.get_color())]
        joints += [j for (child, parent), s in zip(BONES, BONE_SIDES) if s == side for j in (parent, child)]
        vertices = np.stack(line.get_data_3d(), -1)
        drawn.append(vertices[np.isfinite(vertices).all(axis=1)])
    assert sorted(set(joints)) == list(range(17))
    # The linear map from root-relative camera space to the drawn points: (x, y, z) -> (x, z, -y).
    mapping, residual, *_ = np.linalg.lstsq(relative[joints], np.concatenate(drawn), rcond=None)
    np.testing.assert_allclose(mapping, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-9)
    assert np.linalg.det(mapping) == pytest.approx(1.0)  # a rotation: the person is not mirrored


def test_3d_view_is_stable_and_equal():
    keypoints, poses = clip(12)
    figure = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE)

    def view():
        return [
            (ax.get_xlim3d(), ax.get_ylim3d(), ax.get_zlim3d(), ax.elev, ax.azim, tuple(ax.get_box_aspect()))
            for ax in figure.axes_3d.values()
        ]

    first = figure.draw(0)
    before = view()
    later = figure.draw(6)
    assert view() == before and not np.array_equal(first, later)
    for x, y, z, _, _, aspect in before:
        assert np.ptp(x) == np.ptp(y) == np.ptp(z) > 0
        assert aspect[0] == aspect[1] == aspect[2]
    assert len({lims for lims in before}) == 1  # every 3D panel has the same view
    radius = before[0][0][1]
    everything = np.concatenate([plot_coords(p) for p in poses.values()])
    assert np.abs(everything).max() <= radius < 1.5 * np.abs(everything).max()
    # The 2D panel spans the image (y down) whatever the pose.
    assert figure.axes_2d.get_xlim() == (0, IMAGE_SIZE[0]) and figure.axes_2d.get_ylim() == (IMAGE_SIZE[1], 0)


def test_one_frame_as_an_image():
    keypoints, poses = clip(5)
    single = PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, dpi=40).draw(2)
    assert single.dtype == np.uint8 and single.ndim == 3 and single.shape[2] == 3
    only_3d = PoseFigure(None, {"Ground truth": poses["Ground truth"]}, image_size=None, dpi=40).draw(0)
    assert only_3d.shape[1] < single.shape[1]


def test_bad_input(tmp_path: Path):
    keypoints, poses = clip(5)
    with pytest.raises(JointposeError, match=r"walk\.avi"):
        render_animation(tmp_path / "walk.avi", keypoints, poses, image_size=IMAGE_SIZE, fps=10.0)
    with pytest.raises(JointposeError, match="frame counts.*keypoints_2d.*5.*Prediction.*4"):
        render_animation(
            tmp_path / "w.gif",
            keypoints,
            poses | {"Prediction": poses["Prediction"][:4]},
            image_size=IMAGE_SIZE,
            fps=10.0,
        )
    broken = poses["Ground truth"].copy()
    broken[2, 7, 1] = np.nan
    with pytest.raises(JointposeError, match=r"Ground truth.*frame 2, joint 7"):
        render_animation(
            tmp_path / "w.gif", keypoints, poses | {"Ground truth": broken}, image_size=IMAGE_SIZE, fps=10.0
        )
    far = poses["Ground truth"].copy()
    far[3, 1], far[3, 2] = 1e308, -1e308  # finite, but their extent is not
    with pytest.raises(JointposeError, match=r"Ground truth.*1 of 5 frames \(3\) hold coordinates beyond 10000 m"):
        render_animation(tmp_path / "w.gif", keypoints, poses | {"Ground truth": far}, image_size=IMAGE_SIZE, fps=10.0)
    bad_2d = keypoints.copy()
    bad_2d[1, 0, 0] = np.inf
    with pytest.raises(JointposeError, match="keypoints_2d.*frame 1"):
        PoseFigure(bad_2d, poses, image_size=IMAGE_SIZE)
    with pytest.raises(JointposeError, match="keypoints_2d.*shape"):
        PoseFigure(keypoints[:, :16], poses, image_size=IMAGE_SIZE)
    # Numbers as text or flags are no poses (as in export and Lifter.predict).
    for value, dtype in ((keypoints.astype(str), "<U"), (keypoints > 0, "bool")):
        with pytest.raises(JointposeError, match=f"^keypoints_2d must be an array of numbers, got {dtype}"):
            PoseFigure(value, poses, image_size=IMAGE_SIZE)
    with pytest.raises(JointposeError, match=r"^poses_3d\['x'\] must be an array of numbers \(setting an array"):
        PoseFigure(keypoints, {"x": [np.zeros((17, 3)), np.zeros((16, 3))]}, image_size=IMAGE_SIZE)
    with pytest.raises(JointposeError, match="image_size"):
        PoseFigure(keypoints, poses, image_size=None)
    with pytest.raises(JointposeError, match="fps"):
        render_animation(tmp_path / "w.gif", keypoints, poses, image_size=IMAGE_SIZE, fps=0.0)
    with pytest.raises(JointposeError, match="background"):
        render_animation(
            tmp_path / "w.gif",
            keypoints,
            poses,
            image_size=IMAGE_SIZE,
            fps=10.0,
            background=np.zeros((5, 600, 800), np.uint8),
        )
    assert list(tmp_path.iterdir()) == []


def test_render_cli_names_the_poses_file_at_fault(tmp_path, capsys):
    from jointpose.cli import main

    keypoints, poses = clip(5)
    np.save(tmp_path / "kp.npy", keypoints)
    far = poses["Prediction"].copy()
    far[:, 1], far[:, 2] = 1e308, -1e308
    cases = {
        "objects.npz": (
            np.array([[[{}] * 3] * 17] * 5, dtype=object),
            "objects.npz: key 'poses_3d' must be an array of numbers, got object",
        ),
        "far.npz": (far, "far.npz: key 'poses_3d': 5 of 5 frames (0-4) hold coordinates beyond 10000 m"),
        "short.npz": (
            poses["Prediction"][:4],
            f"--keypoints-file {tmp_path / 'kp.npy'} 5, --poses {tmp_path}/short.npz 4",
        ),
    }
    for name, (array, needle) in cases.items():
        np.savez(tmp_path / name, poses_3d=array)
        argv = cli(
            "render", "--image-size 800 600 --no-progress", keypoints_file=tmp_path / "kp.npy", o=tmp_path / "a.gif"
        )
        assert main([*argv, "--poses", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "a.gif").exists()


def test_render_cli_files_and_dataset_modes(tmp_path, h36m_dir, capsys):
    import imageio.v3 as iio

    from jointpose.cli import main

    ckpt = tmp_path / "ck"
    flags = "-k gt -str S1 -ste S9 -arc 3 -ch 8 -e 1 --no-progress"
    assert main(cli("train", flags, data_dir=h36m_dir, checkpoint=ckpt)) == 0
    preds = tmp_path / "preds.npz"
    assert main(cli("evaluate", "-k gt -ste S9", data_dir=h36m_dir, checkpoint=ckpt, export_predictions=preds)) == 0
    out = tmp_path / "seq.gif"
    flags = "-k gt --sequence S9/Walking/2 --max-frames 5 --no-progress"
    assert main(cli("render", flags, data_dir=h36m_dir, predictions=preds, o=out)) == 0
    assert iio.improps(out, index=None).shape[0] == 5
    # Predictions of every second frame (S9 Walking: 120 frames) are drawn with the same --downsample.
    half = tmp_path / "half.npz"
    flags = "-k gt -ste S9 --downsample 2"
    assert main(cli("evaluate", flags, data_dir=h36m_dir, checkpoint=ckpt, export_predictions=half)) == 0
    capsys.readouterr()
    flags = "-k gt --sequence S9/Walking/2 --no-progress"
    assert main(cli("render", flags, data_dir=h36m_dir, predictions=half, o=tmp_path / "h.gif")) == 2
    assert "60 frames of S9/Walking/2, which has 120; predictions exported by evaluate --downsample N" in (
        capsys.readouterr().err
    )
    assert (
        main(cli("render", flags + " --downsample 2", data_dir=h36m_dir, predictions=half, o=tmp_path / "h.gif")) == 0
    )
    assert iio.improps(tmp_path / "h.gif", index=None).shape[0] == 60
    assert (
        main(cli("render", flags + " --downsample 0", data_dir=h36m_dir, predictions=half, o=tmp_path / "z.gif")) == 2
    )
    assert "--downsample must be" in capsys.readouterr().err

    # Files mode: 2D keypoints array + the npz that infer writes.
    kp = np.random.default_rng(0).uniform(100, 900, (6, 17, 2))
    np.save(tmp_path / "kp.npy", kp)
    from jointpose.inference.export import export

    export(tmp_path / "poses.npz", np.random.default_rng(1).normal(0, 0.3, (6, 17, 3)), 25.0)
    paths = dict(keypoints_file=tmp_path / "kp.npy", poses=tmp_path / "poses.npz", o=tmp_path / "a.gif")
    assert main(cli("render", "--image-size 1000 1000 --no-progress", **paths)) == 0
    assert iio.improps(tmp_path / "a.gif", index=None).shape[0] == 6
    # The JSON output of the same poses reads as its npz (six decimals), trajectory and rate too.
    from jointpose.render import read_poses, read_trajectory

    poses, root = np.random.default_rng(1).normal(0, 0.3, (6, 17, 3)), np.random.default_rng(3).normal(0, 2, (6, 3))
    for name in ("p.npz", "p.json"):
        export(tmp_path / name, poses, 25.0, trajectory=root)
    (from_npz, npz_fps), (from_json, json_fps) = (read_poses(tmp_path / n) for n in ("p.npz", "p.json"))
    assert npz_fps == json_fps == 25.0 and np.abs(from_json - from_npz).max() < 1e-6
    assert np.abs(read_trajectory(tmp_path / "p.json") - read_trajectory(tmp_path / "p.npz")).max() < 1e-6
    assert main(cli("render", "--image-size 1000 1000 --no-progress", **paths | {"poses": tmp_path / "p.json"})) == 0
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "rate.json").write_text('{"fps": "25", "poses_3d": []}')
    for name, needle in (
        ("list.json", "list.json: expected the JSON object a jointpose infer or video output holds"),
        ("rate.json", "rate.json: key 'fps' must be one number, got str"),
    ):
        assert main(cli("render", "--image-size 1000 1000", **paths | {"poses": tmp_path / name})) == 2
        assert needle in capsys.readouterr().err
    # A video track at 30 fps beside poses at 50 fps (lifted at the model's rate): 11 frames span
    # 1/3 s, 17 frames at 50 fps (0.32 s) lie within it.
    rng = np.random.default_rng(2)
    track = rng.uniform(100, 900, (11, 17, 2))
    export(tmp_path / "track.json", np.zeros((11, 17, 3)), 30.0, extra={"keypoints_2d": track})
    export(tmp_path / "p50.npz", rng.normal(0, 0.3, (17, 17, 3)), 50.0)
    rated = dict(keypoints_file=tmp_path / "track.json", poses=tmp_path / "p50.npz", o=tmp_path / "r.gif")
    capsys.readouterr()
    assert main(cli("render", "--image-size 1000 1000 --no-progress", **rated)) == 0
    assert "resampled the keypoints from 30 to 50 fps: 17 frames" in capsys.readouterr().out
    assert iio.improps(tmp_path / "r.gif", index=None).shape[0] == 17
    # One pose per keypoint frame (infer --fps 30 on a file recording 25 fps): frame for frame.
    export(tmp_path / "p30.npz", rng.normal(0, 0.3, (11, 17, 3)), 30.0)
    export(tmp_path / "track25.json", np.zeros((11, 17, 3)), 25.0, extra={"keypoints_2d": track})
    paired = dict(keypoints_file=tmp_path / "track25.json", poses=tmp_path / "p30.npz", o=tmp_path / "p.gif")
    assert main(cli("render", "--image-size 1000 1000 --no-progress", **paired)) == 0
    printed = capsys.readouterr().out
    assert "resampled" not in printed and "--poses at 30 fps beside keypoints recorded at 25 fps" in printed
    assert iio.improps(tmp_path / "p.gif", index=None).shape[0] == 11
    capsys.readouterr()
    assert main(cli("render", "-k gt --sequence S9-Walking", data_dir=h36m_dir, o=out)) == 2
    assert "--sequence" in capsys.readouterr().err
    # A poses file's own frame rate is checked as a flag's would be, naming the file's key.
    for fps, needle in ((0.0, "must be a positive number"), (1e-9, "outside"), (np.ones(2), "must be one number")):
        np.savez(tmp_path / "bad_fps.npz", poses_3d=np.zeros((6, 17, 3)), fps=fps)
        bad = paths | dict(poses=tmp_path / "bad_fps.npz", o=tmp_path / "b.gif")
        assert main(cli("render", "--image-size 1000 1000 --no-progress", **bad)) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "bad_fps.npz: key 'fps'" in err and needle in err, err
        assert not (tmp_path / "b.gif").exists()
    assert main(cli("render", "--image-size 1000 1000 --max-frames 0", **paths)) == 2
    assert capsys.readouterr().err.strip().endswith("--max-frames must be at least 1, got 0")
    np.save(tmp_path / "kp5.npy", kp[:5])
    assert main(cli("render", "--image-size 1000 1000", **paths | dict(keypoints_file=tmp_path / "kp5.npy"))) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"render: error: inputs have different frame counts: --keypoints-file {tmp_path / 'kp5.npy'} 5, "
            f"--poses {tmp_path / 'poses.npz'} 6"
        )
    )


def test_render_reads_the_sequences_action_only(tmp_path, capsys):
    """A dataset whose 3D holds an action the 2D lacks still renders its other sequences; a
    sequence whose action is absent is refused naming --sequence."""
    from jointpose.cli import main

    folder = write_dataset(tmp_path / "d", {"S9": {"Walking": 12}})
    with np.load(folder / "data_3d_h36m.npz", allow_pickle=True) as f:
        poses = f["positions_3d"].item()
    poses["S9"]["Eating"] = poses["S9"]["Walking"]
    np.savez_compressed(folder / "data_3d_h36m.npz", positions_3d=poses)
    out = tmp_path / "w.gif"
    assert main(cli("render", "-k gt --sequence S9/Walking/1 --no-progress", data_dir=folder, o=out)) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    assert main(cli("render", "-k gt --sequence S9/Eating/1 --no-progress", data_dir=folder, o=tmp_path / "e.gif")) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--sequence S9/Eating/1: action(s) Eating not found for S9" in err, err
    assert "it has: Walking" in err and not (tmp_path / "e.gif").exists()


@pytest.mark.parametrize("size", [(100_000, 2), (2, 100_000), (1920, 1080)])
def test_the_figure_stays_bounded_for_any_image_shape(size):
    """The 2D panel keeps the image's shape between 1:4 and 4:1; a sliver of an image would
    otherwise ask for a figure 16 million pixels wide. Panels are 4 x 1.3 inches at 80 dpi."""
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 1, (2, 17, 2)) * size
    figure = PoseFigure(keypoints, {"3D": rng.normal(scale=0.3, size=(2, 17, 3))}, image_size=size)
    height, width, _ = figure.frame_shape
    aspect = min(max(size[0] / size[1], 0.25), 4.0)
    assert height == 416
    assert abs(width - 4 * 80 * (aspect + 1 + 0.5)) <= 2


def test_infer_and_render_take_the_image_size_from_the_video(tmp_path: Path, capsys):
    from jointpose.cli import main
    from jointpose.inference.lifter import Lifter
    from jointpose.model.temporal import TemporalModel

    keypoints, _ = clip(5)
    video = tmp_path / "in.mp4"
    iio.imwrite(video, np.full((5, 96, 128, 3), 90, np.uint8), fps=5, macro_block_size=1)
    np.save(tmp_path / "kp.npy", keypoints * np.array([128 / IMAGE_SIZE[0], 96 / IMAGE_SIZE[1]]))
    model = Lifter(TemporalModel([3], channels=8).eval(), fps=5.0).save(tmp_path / "m.safetensors")
    out, anim = tmp_path / "o.npz", tmp_path / "a.mp4"
    infer = ["infer", str(tmp_path / "kp.npy"), "-o", str(out), "--checkpoint", str(model), "--no-progress"]
    assert main([*infer, "--render", str(anim), "--video", str(video)]) == 0
    printed = capsys.readouterr().out
    assert "no --fps: the keypoints are taken to be at the model's 5 fps" in printed
    assert "--video plays at" not in printed  # the video's 5 fps are the model's
    assert iio.imread(anim, index=None).shape[0] == 5
    for fps in ([], ["--fps", "10"]):
        assert main([*infer, "--render", str(anim), "--video", str(video), "--image-size", "800", "600", *fps]) == 2
        printed, err = capsys.readouterr()
        assert printed == "" and "--image-size 800 600 differs from --video's 128x96" in err
    slow = Lifter(TemporalModel([3], channels=8).eval(), fps=2.5).save(tmp_path / "slow.safetensors")
    assert main([*infer[:5], str(slow), "--no-progress", "--render", str(anim), "--video", str(video)]) == 0
    assert "--video plays at 5 fps; if the keypoints are its frames, pass --fps 5" in capsys.readouterr().out
    # Lifted at another rate, the poses are written back at the keypoints': the video is drawn.
    assert (
        main([*infer, "-o", str(tmp_path / "r.npz"), "--render", str(anim), "--video", str(video), "--fps", "10"]) == 0
    )
    assert "--video is not drawn" not in capsys.readouterr().out
    assert len(np.load(tmp_path / "r.npz")["poses_3d"]) == 5 and iio.imread(anim, index=None).shape[0] == 5
    render = [
        "render",
        "-o",
        str(tmp_path / "r.gif"),
        "--keypoints-file",
        str(tmp_path / "kp.npy"),
        "--poses",
        str(out),
    ]
    assert main([*render, "--video", str(video), "--no-progress"]) == 0
    assert iio.imread(tmp_path / "r.gif", index=None, plugin="pillow").shape[0] == 5
    assert main([*render, "--no-progress"]) == 2  # neither --image-size nor --video
    assert "--image-size" in capsys.readouterr().err


def test_a_trajectory_beyond_10_km_is_refused_not_drawn():
    keypoints, poses = clip(3)
    path = np.zeros((3, 3))
    path[1, 0], path[2, 0] = 1e308, -1e308  # finite, but its extent is not
    with pytest.raises(JointposeError, match=r"trajectory.*beyond 10000 m"):
        PoseFigure(keypoints, poses, image_size=IMAGE_SIZE, trajectory=path)


def test_render_of_a_video_output_draws_its_captions_and_breaks_its_path(tmp_path, monkeypatch):
    """``render`` of a ``jointpose video`` output draws what ``video --render`` draws: a caption
    on the frames where nobody was found and around a possible switch of person, and the
    root's path broken there (the render itself is stubbed: its arguments are checked)."""
    import jointpose.render
    from jointpose.cli import main
    from jointpose.inference.export import export

    keypoints, poses = clip(20)
    confidence = np.ones((20, 17))
    confidence[4] = 0.0  # nobody found in frame 4: filled in
    path = np.stack([np.linspace(0, 1, 20), np.zeros(20), np.full(20, 3.0)], axis=-1)
    extra = {"keypoints_2d": keypoints, "confidence_2d": confidence, "track_part": np.repeat([0, 1], 10)}
    info = {"image_size": IMAGE_SIZE, "keypoints_layout": "h36m17", "confidence_threshold": 0.3, "first_frame": 30}
    export(tmp_path / "v.npz", poses["Prediction"], 10.0, trajectory=path, extra=extra, info=info)
    seen = {}
    monkeypatch.setattr(jointpose.render, "render_animation", lambda *args, **kwargs: seen.update(kwargs))
    files = ["--keypoints-file", str(tmp_path / "v.npz"), "--poses", str(tmp_path / "v.npz")]
    assert main(["render", "-o", str(tmp_path / "a.gif"), *files]) == 0
    assert seen["breaks"] == [10] and seen["first_frame"] == 30  # the cut's first frame, for the counter
    assert seen["captions"][4].startswith("person not found: pose filled in")
    assert "the track may move to another person at 1.00 s" in seen["captions"][10]
    assert set(seen["captions"]) == set(range(5, 16)) | {4}  # half a second either side of frame 10
    seen.clear()
    assert (
        main(["infer", str(tmp_path / "v.npz"), "-o", str(tmp_path / "o.npz"), "--render", str(tmp_path / "b.gif")])
        == 0
    )
    assert seen["breaks"] == [10] and seen["captions"][4].startswith("person not found")
    assert seen["first_frame"] == 30
