"""Does a BVH from ``jointpose video`` open in Blender with the motion of the video?

Runs ``jointpose video`` on a clip twice, to npz (the 3D joints) and to BVH, imports the BVH
with Blender's own importer (``bpy.ops.import_anim.bvh``: BVH Y up becomes Blender's Z up,
forward -Z; ``global_scale`` 0.01 turns the file's centimetres into metres) and prints the
scene's frame count and frame rate, the armature's bone count, and for a few frames the world
positions of a few bones beside jointpose's joints put through the same axis change
(camera x right, y down, z forward -> BVH x, -y, -z -> Blender x, -z_bvh, y_bvh, i.e.
Blender (x, z, -y) of the camera's), root trajectory added where jointpose gives one; then
the largest and median distance over every joint and frame, and how far the wrists travel
in both (the motion is there, not a still pose), and how far the root (Hip) and Thorax bones
turn from their first frame's orientation, beside the turn of the hips' and the chest's frame
from jointpose's joints (the body's orientation is there too).

Blender's Python module (``bpy``, ~370 MB; the wheel for a CPython the project supports, e.g.
bpy 5.0.1 for 3.11) is never a jointpose dependency: install it in a virtual environment of
its own, which needs only numpy besides, and point ``--jointpose`` at the ``jointpose`` command
of the environment that has the ``video`` extra:

    python3.11 -m venv /tmp/venv-bpy && /tmp/venv-bpy/bin/pip install bpy
    /tmp/venv-bpy/bin/python benchmarks/blender_import.py --video tests/.footage/cam01.mp4 \\
        --jointpose .venv/bin/jointpose [-- --end 1.0 --focal-length 1677]

or, for files written before: ``--bvh clip.bvh --npz clip.npz``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BONES = ("Hip", "RKnee", "LFoot", "Thorax", "Head", "LWrist", "RWrist")
# Bones that carry a body part's orientation: (bone, left joint, right joint, lower joint, upper joint).
TURNING = {"Hip": ("LHip", "RHip", "Hip", "Spine"), "Thorax": ("LShoulder", "RShoulder", "Spine", "Thorax")}


def run_jointpose(command: str, video: Path, out: Path, extra: list[str]) -> None:
    """``jointpose video VIDEO -o OUT`` (``extra`` flags added); stops the script if it fails."""
    args = [command, "video", str(video), "-o", str(out), "--device", "cpu", "--no-progress", *extra]
    print("$ " + " ".join(args), flush=True)
    if subprocess.run(args).returncode != 0:
        raise SystemExit(f"jointpose video failed on {video}")


def blender_positions(bvh: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
    """Import ``bvh`` into an empty Blender scene: world positions (frames, 3) metres of every
    bone's head per frame, the world rotations (frames, 3, 3) of the :data:`TURNING` bones, and
    the scene's facts (frame count, fps, bone count)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.import_anim.bvh(
        filepath=str(bvh), global_scale=0.01, update_scene_fps=True, update_scene_duration=True
    )
    if result != {"FINISHED"}:
        raise SystemExit(f"Blender's BVH importer did not finish: {result}")
    armature = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    scene = bpy.context.scene
    start, end = armature.animation_data.action.frame_range
    frames = range(int(start), int(end) + 1)
    heads: dict[str, list[np.ndarray]] = {bone.name: [] for bone in armature.pose.bones}
    turns: dict[str, list[np.ndarray]] = {name: [] for name in TURNING}
    for frame in frames:
        scene.frame_set(frame)
        for bone in armature.pose.bones:
            heads[bone.name].append(np.array(armature.matrix_world @ bone.head))
            if bone.name in turns:
                turns[bone.name].append(np.array((armature.matrix_world @ bone.matrix).to_3x3().normalized()))
    facts = {
        "frames": len(frames),
        "fps": scene.render.fps / scene.render.fps_base,
        "bones": len(armature.data.bones),
        "first frame": frames[0],
        "blender": bpy.app.version_string,
    }
    return (
        {name: np.stack(values) for name, values in heads.items()},
        {name: np.stack(values) for name, values in turns.items()},
        facts,
    )


def body_axes(joints: np.ndarray, names: list[str], left: str, right: str, lower: str, upper: str) -> np.ndarray:
    """(frames, 3, 3) axes as columns (to the person's left, up, forward) of a body part from
    the joints (frames, 17, 3): ``left`` - ``right`` across, ``lower`` to ``upper`` up."""
    j = names.index
    across = joints[:, j(left)] - joints[:, j(right)]
    across /= np.linalg.norm(across, axis=-1, keepdims=True)
    up = joints[:, j(upper)] - joints[:, j(lower)]
    up -= (up * across).sum(-1, keepdims=True) * across
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    return np.stack([across, up, np.cross(across, up)], axis=-1)


def turn_degrees(rotations: np.ndarray) -> np.ndarray:
    """Angles (frames,) in degrees of rotations (frames, 3, 3) relative to the first frame's."""
    relative = rotations @ rotations[:1].transpose(0, 2, 1)
    return np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, help="a clip to run jointpose video on")
    parser.add_argument("--jointpose", default="jointpose", help="the jointpose command (with the video extra)")
    parser.add_argument("--bvh", type=Path, help="a BVH written by jointpose (with --npz: instead of --video)")
    parser.add_argument("--npz", type=Path, help="the same motion as jointpose npz output")
    parser.add_argument("extra", nargs="*", help="more jointpose video flags, after --")
    args = parser.parse_args()
    files = args.bvh is not None and args.npz is not None
    if (args.video is not None) == files or (args.video is not None and (args.bvh or args.npz)):
        parser.error("give --video, or both --bvh and --npz")
    with tempfile.TemporaryDirectory() as tmp:
        bvh, npz = args.bvh, args.npz
        if args.video is not None:
            bvh, npz = Path(tmp) / "clip.bvh", Path(tmp) / "clip.npz"
            run_jointpose(args.jointpose, args.video, npz, args.extra)
            run_jointpose(args.jointpose, args.video, bvh, args.extra)
        with np.load(npz, allow_pickle=False) as data:
            poses, names = data["poses_3d"].astype(np.float64), [str(n) for n in data["joint_names"]]
            trajectory = data["trajectory"].astype(np.float64) if "trajectory" in data else None
        heads, turns, facts = blender_positions(bvh)
    print(
        f"Blender {facts['blender']}: an action of {facts['frames']} frames from frame {facts['first frame']} at "
        f"{facts['fps']:g} fps, an armature of {facts['bones']} bones; jointpose: {len(poses)} frames"
    )
    if trajectory is None:  # the BVH root then stands still at leg height: compare root-relative
        print("no trajectory in the npz: positions compared relative to the root")
    else:
        poses = poses + trajectory[:, None]
    expected = np.stack([poses[..., 0], poses[..., 2], -poses[..., 1]], axis=-1)  # camera -> Blender axes
    blender = np.stack([heads[name.replace("/", "_")] for name in names], axis=1)  # (frames, 17, 3)
    if trajectory is None:
        expected, blender = expected - expected[:, :1], blender - blender[:, :1]
    count = min(len(expected), len(blender))
    print(f"{'frame':>5} {'bone':8} {'Blender x y z (m)':>26} {'jointpose x y z (m)':>26} {'mm':>6}")
    for frame in np.linspace(0, count - 1, 4).round().astype(int):
        for bone in BONES:
            j = names.index(bone)
            b, e = blender[frame, j], expected[frame, j]
            print(
                f"{frame:5d} {bone:8} {' '.join(f'{v:8.3f}' for v in b)} {' '.join(f'{v:8.3f}' for v in e)} "
                f"{1000 * np.linalg.norm(b - e):6.1f}"
            )
    error = 1000 * np.linalg.norm(blender[:count] - expected[:count], axis=-1)
    worst = np.unravel_index(error.argmax(), error.shape)
    print(
        f"all {count} frames x 17 joints: distance Blender - jointpose median {np.median(error):.2f} mm, "
        f"95th percentile {np.percentile(error, 95):.2f} mm, max {error.max():.2f} mm ({names[worst[1]]}, frame {worst[0]})"
    )
    for bone in ("LWrist", "RFoot"):
        j = names.index(bone)
        travel = [np.linalg.norm(np.diff(p[:count, j], axis=0), axis=-1).sum() for p in (blender, expected)]
        print(f"{bone} travels {travel[0]:.2f} m in Blender, {travel[1]:.2f} m in jointpose's output")
    for bone, joints in TURNING.items():
        axes = body_axes(expected[:count], names, *joints)
        relative = turns[bone][:count] @ turns[bone][:1].transpose(0, 2, 1)
        apart = turn_degrees(relative.transpose(0, 2, 1) @ axes @ axes[:1].transpose(0, 2, 1))
        print(
            f"{bone} bone turns with the body part of {', '.join(joints)}: by up to {turn_degrees(axes).max():.1f} "
            f"degrees from the first frame, Blender's bone {apart.max():.2f} degrees from it at most"
        )


if __name__ == "__main__":
    sys.exit(main())
