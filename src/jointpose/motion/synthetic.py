"""Synthetic motion: procedurally animated 17-joint skeletons, the built-in default data.

This is SYNTHETIC data for trying jointpose offline, not captured human motion. A
kinematic skeleton with Human3.6M's joints is driven by joint-angle curves (hip, knee,
shoulder and elbow flexion and abduction, trunk flexion, side bend and twist, neck
flexion) for several kinds of motion, each clip with random amplitudes, tempo, path and
smooth per-angle wobble, and each subject with its own body size and proportions.

Bones keep their lengths exactly (positions come from forward kinematics) and every
angle curve stays inside the anatomical limits of :data:`ANGLE_LIMITS`. World frame:
metres, Z up, feet on the floor (z = 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from jointpose.geometry import skeleton
from jointpose.geometry.bones import body_factors

# Rest pose of a 1.75 m adult: offset of each joint from its parent, metres, body frame
# x = the person's right, y = forward, z = up. Arms hang at the sides.
REST_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],  # Hip (root)
        [0.13, 0.0, -0.01],
        [0.0, 0.0, -0.45],
        [0.0, 0.0, -0.44],  # right leg
        [-0.13, 0.0, -0.01],
        [0.0, 0.0, -0.45],
        [0.0, 0.0, -0.44],  # left leg
        [0.0, 0.01, 0.23],
        [0.0, 0.0, 0.26],  # spine, thorax
        [0.0, 0.08, 0.12],
        [0.0, -0.05, 0.12],  # nose, head top
        [-0.15, 0.0, -0.02],
        [0.0, 0.0, -0.28],
        [0.0, 0.0, -0.25],  # left arm
        [0.15, 0.0, -0.02],
        [0.0, 0.0, -0.28],
        [0.0, 0.0, -0.25],  # right arm
    ]
)

# Limits (degrees) of the clinical angles that drive the skeleton, from standard range-of-
# motion tables (AAOS; Norkin & White): flexion positive, extension negative.
ANGLE_LIMITS = {
    "hip_flexion": (-25.0, 120.0),
    "hip_abduction": (-10.0, 45.0),
    "knee_flexion": (0.0, 135.0),
    "shoulder_flexion": (-50.0, 170.0),
    "shoulder_abduction": (0.0, 170.0),
    "elbow_flexion": (0.0, 145.0),
    "trunk_flexion": (-20.0, 80.0),
    "trunk_side_bend": (-30.0, 30.0),
    "trunk_twist": (-40.0, 40.0),
    "neck_flexion": (-40.0, 45.0),
}

# Which joint each angle rotates (its outgoing bones), the rotation axis in the parent's
# frame, and the sign that makes the clinical angle positive for each side.
_DRIVERS = {
    "hip_flexion": [(1, "x", 1.0), (4, "x", 1.0)],
    "hip_abduction": [(1, "y", -1.0), (4, "y", 1.0)],
    "knee_flexion": [(2, "x", -1.0), (5, "x", -1.0)],
    "shoulder_flexion": [(14, "x", 1.0), (11, "x", 1.0)],
    "shoulder_abduction": [(14, "y", -1.0), (11, "y", 1.0)],
    "elbow_flexion": [(15, "x", 1.0), (12, "x", 1.0)],
}
AngleCurves = dict[str, np.ndarray]  # name -> (frames,) or (frames, 2) for (right, left), degrees


def _wobble(
    rng: np.random.Generator, frames: int, fps: float, amplitude: float, shape: tuple[int, ...] = ()
) -> np.ndarray:
    """Smooth random variation (degrees): a sum of three slow sinusoids per curve."""
    t = np.arange(frames)[:, None] / fps
    freq = rng.uniform(0.1, 0.6, (3,) + shape)
    phase = rng.uniform(0, 2 * np.pi, (3,) + shape)
    weights = rng.uniform(0.3, 1.0, (3,) + shape)
    waves = np.sin(2 * np.pi * freq[None] * t.reshape((frames, 1) + (1,) * len(shape)) + phase[None])
    return amplitude * (weights[None] * waves).sum(axis=1) / 3.0


def _gait(t: np.ndarray, rng: np.random.Generator, run: bool) -> tuple[AngleCurves, float]:
    cadence = rng.uniform(1.3, 1.6) if run else rng.uniform(0.85, 1.05)  # strides per second
    phase = 2 * np.pi * cadence * t
    sides = np.stack([phase, phase + np.pi], axis=1)  # right, left legs half a stride apart
    hip_amp, knee_peak = (
        (rng.uniform(30, 40), rng.uniform(90, 110)) if run else (rng.uniform(18, 25), rng.uniform(50, 65))
    )
    curves = {
        "hip_flexion": (20 if run else 8) + hip_amp * np.sin(sides),
        "knee_flexion": 5 + (knee_peak - 5) * np.clip(np.sin(sides - 0.9), 0, None) ** 1.5,
        "shoulder_flexion": -(hip_amp * 0.8) * np.sin(sides),  # arms swing against the legs
        "shoulder_abduction": np.full_like(sides, 8.0),
        "elbow_flexion": (85 if run else 20) + 10 * np.sin(sides),
        "trunk_flexion": np.full_like(t, 12.0 if run else 3.0),
        "trunk_twist": 6 * np.sin(phase),
    }
    return curves, (rng.uniform(2.6, 3.4) if run else rng.uniform(1.1, 1.5))


def _walking(t, rng):
    return _gait(t, rng, run=False)


def _running(t, rng):
    return _gait(t, rng, run=True)


def _arm_raises(t, rng):
    rate = rng.uniform(0.25, 0.5)
    up = (1 - np.cos(2 * np.pi * rate * np.stack([t, t + rng.uniform(0, 1.5)], axis=1))) / 2
    sideways = rng.random() < 0.5
    return {
        "shoulder_abduction" if sideways else "shoulder_flexion": 5 + rng.uniform(120, 160) * up,
        "elbow_flexion": 10 + 30 * up * rng.random(),
    }, 0.0


def _waving(t, rng):
    wave = np.sin(2 * np.pi * rng.uniform(1.2, 2.0) * t)
    right = np.stack([np.full_like(t, rng.uniform(100, 140)), np.full_like(t, 10.0)], axis=1)
    return {
        "shoulder_abduction": right,
        "elbow_flexion": np.stack([60 + 35 * wave, np.full_like(t, 15.0)], axis=1),
        "trunk_side_bend": 5 * wave,
    }, 0.0


def _trunk(t, rng):
    rate = rng.uniform(0.2, 0.4)
    bend = (1 - np.cos(2 * np.pi * rate * t)) / 2
    return {
        "trunk_flexion": rng.uniform(40, 70) * bend,
        "hip_flexion": np.stack([25 * bend, 25 * bend], axis=1),
        "trunk_twist": rng.uniform(15, 35) * np.sin(2 * np.pi * rate * 0.7 * t),
        "trunk_side_bend": rng.uniform(10, 25) * np.sin(2 * np.pi * rate * 1.3 * t + 1.0),
        "shoulder_flexion": np.stack([40 * bend, 40 * bend], axis=1),
        "neck_flexion": 20 * bend,
    }, 0.0


def _squats(t, rng):
    down = (1 - np.cos(2 * np.pi * rng.uniform(0.3, 0.5) * t)) / 2
    depth = rng.uniform(0.6, 1.0)
    both = np.stack([down, down], axis=1) * depth
    return {
        "hip_flexion": 95 * both,
        "knee_flexion": 5 + 115 * both,
        "trunk_flexion": 25 * down * depth,
        "shoulder_flexion": 80 * both,
        "elbow_flexion": np.full_like(both, 10.0),
    }, 0.0


def _boxing(t, rng):
    jab = np.clip(np.sin(2 * np.pi * rng.uniform(0.8, 1.4) * np.stack([t, t + 0.4], axis=1)), 0, None)
    return {
        "shoulder_flexion": 55 + 30 * jab,
        "shoulder_abduction": np.full_like(jab, 15.0),
        "elbow_flexion": 125 - 115 * jab,
        "trunk_twist": 15 * (jab[:, 0] - jab[:, 1]),
        "hip_flexion": np.full_like(jab, 15.0),
        "knee_flexion": np.full_like(jab, 25.0),
    }, 0.0


MOTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[AngleCurves, float]]] = {
    "Walking": _walking,
    "Running": _running,
    "ArmRaises": _arm_raises,
    "Waving": _waving,
    "TrunkBends": _trunk,
    "Squats": _squats,
    "Boxing": _boxing,
}


def _full_curves(curves: AngleCurves, frames: int, fps: float, rng: np.random.Generator) -> AngleCurves:
    """Every angle as (frames, 2) or (frames,), with smooth wobble, clipped to its limits."""
    out = {}
    for name, (low, high) in ANGLE_LIMITS.items():
        paired = name in _DRIVERS
        base = curves.get(name, np.zeros((frames, 2) if paired else frames))
        if paired and base.ndim == 1:
            base = np.stack([base, base], axis=1)
        noise = _wobble(rng, frames, fps, 4.0, (2,) if paired else ())
        out[name] = np.clip(base + noise, low, high)
    return out


def _rotations(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(frames,) angles in degrees about one body axis -> (frames, 3, 3) rotation matrices."""
    return Rotation.from_euler(axis, degrees[:, None], degrees=True).as_matrix()


def pose_sequence(
    curves: AngleCurves, speed: float, fps: float, offsets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Forward kinematics of angle curves -> (frames, 17, 3) world positions, metres, Z up.

    The body moves at ``speed`` m/s along a circle of random radius (so it stays inside
    the capture area) and its lower foot rests on the floor.
    """
    frames = len(curves["trunk_flexion"])
    local = np.tile(np.eye(3), (frames, skeleton.NUM_JOINTS, 1, 1))
    for name, drivers in _DRIVERS.items():
        for side, (joint, axis, sign) in enumerate(drivers):
            local[:, joint] = local[:, joint] @ _rotations(axis, sign * curves[name][:, side])
    trunk = np.stack([-curves["trunk_flexion"], -curves["trunk_side_bend"], curves["trunk_twist"]], axis=1)
    local[:, 7] = Rotation.from_euler("xyz", trunk, degrees=True).as_matrix()  # spine carries the trunk
    local[:, 8] = _rotations("z", curves["trunk_twist"] * 0.5)
    local[:, 9] = _rotations("x", -curves["neck_flexion"])

    radius = rng.uniform(0.9, 1.5)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(np.full(frames, speed / radius / fps))
    local[:, 0] = _rotations("z", np.degrees(heading))
    glob = np.empty_like(local)
    pos = np.zeros((frames, skeleton.NUM_JOINTS, 3))
    for j in range(skeleton.NUM_JOINTS):  # parents come first; vectorised over frames
        parent = skeleton.PARENTS[j]
        if parent < 0:
            glob[:, j] = local[:, j]
            continue
        glob[:, j] = glob[:, parent] @ local[:, j]
        pos[:, j] = pos[:, parent] + np.einsum("fab,b->fa", glob[:, parent], offsets[j])
    # Travel: the circle's tangent follows the heading (body y axis is forward).
    forward = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
    travel = np.cumsum(forward * speed / fps, axis=0)
    pos[..., :2] += travel[:, None] - travel.mean(axis=0)
    pos[..., 2] -= pos[:, [3, 6], 2].min(axis=1, keepdims=True)  # lower foot on the floor
    return pos


def subject_offsets(rng: np.random.Generator) -> np.ndarray:
    """Rest offsets (17, 3) for one random body: overall size and proportions vary."""
    factors = body_factors(rng, height_spread=0.07, proportion_spread=0.05)
    return REST_OFFSETS * np.concatenate([[1.0], factors])[:, None]


def generate(
    subjects: list[str],
    *,
    seconds: float = 4.0,
    fps: float = 50.0,
    clips_per_motion: int = 1,
    motions: list[str] | None = None,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Synthetic motion for each subject: ``{subject: {action: (frames, 17, 3) metres}}``.

    Actions are named ``<Motion> <n>`` (e.g. ``Walking 1``); every subject has its own body.
    """
    names = motions or list(MOTIONS)
    unknown = [m for m in names if m not in MOTIONS]
    if unknown:
        raise ValueError(f"unknown motions {unknown}; known: {list(MOTIONS)}")
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * fps))
    t = np.arange(frames) / fps
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject in subjects:
        offsets = subject_offsets(rng)
        out[subject] = {}
        for name in names:
            for clip in range(1, clips_per_motion + 1):
                curves, speed = MOTIONS[name](t, rng)
                full = _full_curves(curves, frames, fps, rng)
                out[subject][f"{name} {clip}"] = pose_sequence(full, speed, fps, offsets, rng)
    return out
