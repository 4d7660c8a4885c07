"""Write small Human3.6M-format datasets in VideoPose3D's exact npz layout, for tests.

Motion: a 17-joint skeleton with human proportions walking and swinging its limbs, with
per-subject size and speed, placed in Human3.6M's world (metres, Z up) and projected into
the subject's four calibrated Human3.6M cameras (pixels). ``cli`` writes ``jointpose`` argument lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from jointpose.geometry import skeleton
from jointpose.geometry.calibrations import h36m_cameras

# Rest pose (metres, Z up, facing +Y): offsets of each joint from its parent.
REST_OFFSETS = np.array(
    [
        [0, 0, 0],
        [-0.13, 0, 0],
        [0, 0, -0.45],
        [0, 0, -0.45],
        [0.13, 0, 0],
        [0, 0, -0.45],
        [0, 0, -0.45],
        [0, 0.01, 0.23],
        [0, 0, 0.26],
        [0, 0.05, 0.12],
        [0, -0.02, 0.12],
        [0.15, 0, 0],
        [0, 0, -0.28],
        [0, 0, -0.25],
        [-0.15, 0, 0],
        [0, 0, -0.28],
        [0, 0, -0.25],
    ]
)


def motion(frames: int, seed: int, scale: float = 1.0, speed: float = 1.0) -> np.ndarray:
    """(frames, 17, 3) world positions in metres of a walking, arm-swinging figure."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 50.0
    phase = 2 * np.pi * speed * t + rng.uniform(0, 2 * np.pi)
    swing = {2: 0.5, 5: -0.5, 12: -0.6, 15: 0.6}  # hips/shoulders swing thighs/upper arms
    bend = {3: 0.6, 6: 0.6, 13: 0.8, 16: 0.8}  # knees and elbows flex
    local = np.repeat(np.eye(3)[None, None], frames, axis=0).repeat(17, axis=1)
    for joint, amp in swing.items():
        local[:, joint] = Rotation.from_euler("x", (amp * np.sin(phase))[:, None]).as_matrix()
    for joint, amp in bend.items():
        local[:, joint] = Rotation.from_euler("x", (amp * (1 + np.sin(phase + 1.0)) / 2)[:, None]).as_matrix()
    heading = Rotation.from_euler("z", (0.3 * np.sin(0.2 * phase) + rng.uniform(-np.pi, np.pi))[:, None]).as_matrix()
    offsets = REST_OFFSETS * scale
    world = np.zeros((frames, 17, 3))
    rotations = np.zeros((frames, 17, 3, 3))
    root = np.stack([0.5 * np.sin(0.1 * phase), 0.5 * np.cos(0.13 * phase), np.full(frames, 0.95 * scale)], axis=1)
    for j in range(17):
        parent = skeleton.PARENTS[j]
        if parent < 0:
            rotations[:, j] = heading
            world[:, j] = root
            continue
        rotations[:, j] = rotations[:, parent] @ local[:, j]
        # The bone to joint j is rotated by its parent's frame, then by the joint's own swing.
        world[:, j] = world[:, parent] + np.einsum("fab,b->fa", rotations[:, j], offsets[j])
    return world


def pixels(frames: int, seed: int = 0) -> np.ndarray:
    """(frames, 17, 2) keypoints in pixels of :func:`motion` seen from the front, in a 1000x1000 image."""
    world = motion(frames, seed)
    return np.stack([500 + 300 * world[..., 0], 800 - 300 * world[..., 2]], axis=-1)


def write_dataset(
    folder: Path,
    subjects: dict[str, dict[str, int]],
    *,
    name: str = "gt",
    noise_px: float = 0.0,
    extra_2d_frames: int = 0,
    seed: int = 0,
) -> Path:
    """Write ``data_3d_h36m.npz`` and ``data_2d_h36m_<name>.npz`` for ``{subject: {action: frames}}``.

    3D: (frames, 32, 3) world metres; 2D: per camera (frames + extra_2d_frames, 17, 2) pixels.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cameras = h36m_cameras()
    rng = np.random.default_rng(seed)
    positions_3d, positions_2d = {}, {}
    for s_index, (subject, actions) in enumerate(subjects.items()):
        positions_3d[subject], positions_2d[subject] = {}, {}
        for a_index, (action, frames) in enumerate(actions.items()):
            world = motion(
                frames + extra_2d_frames,
                seed=seed * 1000 + s_index * 100 + a_index,
                scale=0.9 + 0.05 * s_index,
                speed=0.8 + 0.1 * a_index,
            )
            positions_3d[subject][action] = skeleton.expand_17_to_32(world[:frames]).astype("float32")
            views = []
            for camera in cameras[subject]:
                pixels = camera.project(camera.world_to_camera(world))
                views.append((pixels + rng.normal(0, noise_px, pixels.shape) if noise_px else pixels).astype("float32"))
            positions_2d[subject][action] = views
    metadata = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [list(skeleton.LEFT_JOINTS), list(skeleton.RIGHT_JOINTS)],
    }
    np.savez_compressed(folder / "data_3d_h36m.npz", positions_3d=positions_3d)
    np.savez_compressed(folder / f"data_2d_h36m_{name}.npz", positions_2d=positions_2d, metadata=metadata)
    return folder


SMALL = {
    "S1": {"Walking 1": 160, "Directions": 120},
    "S5": {"Walking 1": 140, "Directions": 130},
    "S9": {"Walking": 120, "Directions 1": 110},
    "S11": {"Walking 1": 100, "Directions": 90},
}


def cli(verb: str, flags: str = "", /, *inputs: Path | str, **paths: Path | str) -> list[str]:
    """``jointpose`` arguments: ``verb``, the positional ``inputs``, the ``flags``, then ``--name value`` for each
    keyword in the order given (``data_dir=`` gives ``--data-dir``, a one-letter name ``-o``).

    ``verb`` ("train", "data build") and ``flags`` are split on white space; inputs and keyword values are
    passed whole, so paths with spaces stay one argument each.
    """
    args = [*verb.split(), *map(str, inputs), *flags.split()]
    for name, value in paths.items():
        args += [f"-{name}" if len(name) == 1 else "--" + name.replace("_", "-"), str(value)]
    return args
