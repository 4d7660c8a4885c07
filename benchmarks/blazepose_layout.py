"""Where BlazePose puts its keypoints, against the motion-capture joints the models train on.

BlazePose's 33 landmarks of each of the four synchronised, calibrated views of Pose2Sim's
Demo_SinglePerson (1080x1920, 60 fps, 100 frames; see .ci/run) are repaired for whole-body
left/right swaps and triangulated per frame (linear DLT, views weighted by visibility, as
``benchmarks/video_views.py`` does). Their segment lengths and widths (median over frames)
are set beside the same measures of the Human3.6M-17 joints that jointpose's CMU rig map puts
on a CMU clip (every CMU clip shares one rig, so one clip gives its skeleton), with COCO's
face points as :func:`jointpose.motion.builder.coco_keypoints` places them.

The person on the footage is not the CMU rig's size, so BlazePose's figures are also shown
divided by a body scale: the mean of two ratios of lengths between points that BlazePose and
the rig place alike, the shin plus forearm (knee-ankle, elbow-wrist) and the standing height
from nose to ankles (99th percentile over frames). The printed ratios are what
:data:`jointpose.motion.builder.BLAZEPOSE_OFFSETS` models (column "modelled": the same
measures of :func:`~jointpose.motion.builder.blazepose_keypoints` on the rig). One person:
lengths along the body mix their build with where BlazePose puts its points. Last, how far
BlazePose's points converted to Human3.6M-17 (the yardstick of ``video_views.py``) lie from
the joints themselves on the clip (P1, P2).

    python benchmarks/blazepose_layout.py [--footage tests/.footage] [--bvh ../shared/data/cmu-mocap/002/002_01.bvh]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from video_views import read_qca, reprojection, triangulate

from jointpose.data.blazepose import BLAZEPOSE_LANDMARKS, BLAZEPOSE_TO_COCO, PoseDetector
from jointpose.data.layouts import LAYOUTS, to_h36m
from jointpose.data.tracks import repair_swaps, side_pairs
from jointpose.data.video import open_video
from jointpose.evaluation.metrics import mpjpe, p_mpjpe
from jointpose.motion.builder import blazepose_keypoints, coco_keypoints
from jointpose.motion.rigs import bvh_to_h36m

ROOT = Path(__file__).resolve().parents[1]
COCO = LAYOUTS["coco17"]


def detect_landmarks(path: Path) -> np.ndarray:
    """(F, 33, 3) BlazePose landmarks (x, y pixels, visibility) of a video; NaN where no person."""
    rows = []
    with PoseDetector() as detector:
        for frame in open_video(path).frames():
            found = detector.detect(frame)
            rows.append(np.full((BLAZEPOSE_LANDMARKS, 3), np.nan) if found is None else found)
    return np.stack(rows)


def measures(points: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame lengths (metres) between COCO-17 points (F, 17, 3)."""
    p = {name: points[:, k] for k, name in enumerate(COCO)}

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a - b, axis=-1)

    def both(a: str, b: str) -> np.ndarray:
        return (dist(p["l_" + a], p["l_" + b]) + dist(p["r_" + a], p["r_" + b])) / 2

    mid_hip, mid_shoulder = (p["l_hip"] + p["r_hip"]) / 2, (p["l_shoulder"] + p["r_shoulder"]) / 2
    mid_eye, mid_ear = (p["l_eye"] + p["r_eye"]) / 2, (p["l_ear"] + p["r_ear"]) / 2
    return {
        "hip width": dist(p["l_hip"], p["r_hip"]),
        "shoulder width": dist(p["l_shoulder"], p["r_shoulder"]),
        "thigh (hip-knee)": both("hip", "knee"),
        "shin (knee-ankle)": both("knee", "ankle"),
        "upper arm (shoulder-elbow)": both("shoulder", "elbow"),
        "forearm (elbow-wrist)": both("elbow", "wrist"),
        "trunk (mid-hips to mid-shoulders)": dist(mid_hip, mid_shoulder),
        "mid-shoulders to nose": dist(mid_shoulder, p["nose"]),
        "mid-shoulders to mid-ears": dist(mid_shoulder, mid_ear),
        "eye width": dist(p["l_eye"], p["r_eye"]),
        "ear width": dist(p["l_ear"], p["r_ear"]),
        "nose to mid-eyes": dist(p["nose"], mid_eye),
        "mid-ears to mid-eyes": dist(mid_ear, mid_eye),
    }


def standing(points: np.ndarray) -> np.ndarray:
    """Per-frame distance (metres) from the nose to mid-ankles of COCO-17 points (F, 17, 3)."""
    ankles = (points[:, COCO.index("l_ankle")] + points[:, COCO.index("r_ankle")]) / 2
    return np.linalg.norm(points[:, COCO.index("nose")] - ankles, axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=ROOT / "tests" / ".footage")
    parser.add_argument(
        "--bvh", type=Path, default=ROOT.parent / "shared" / "data" / "cmu-mocap" / "002" / "002_01.bvh"
    )
    args = parser.parse_args()
    cameras = read_qca(args.footage / "Calib.qca.txt")
    names = sorted(cameras)
    landmarks = [detect_landmarks(args.footage / f"{name}.mp4") for name in names]
    count = min(len(v) for v in landmarks)
    # Whole-body swaps found on the COCO subset, undone on all 33 landmarks.
    swap33 = np.arange(BLAZEPOSE_LANDMARKS)
    swap33[1:7] = [4, 5, 6, 1, 2, 3]
    swap33[7:] = np.arange(7, BLAZEPOSE_LANDMARKS) + np.where(np.arange(7, BLAZEPOSE_LANDMARKS) % 2, 1, -1)
    pairs = side_pairs(COCO)
    views = []
    for view in landmarks:
        view = view[:count]
        coco = view[:, BLAZEPOSE_TO_COCO]
        toggled = repair_swaps(coco[..., :2], np.nan_to_num(coco[..., 2]), pairs)[2]
        views.append(np.where(toggled[:, None, None], view[:, swap33], view))
    stack = np.stack(views)  # (V, F, 33, 3)
    found = np.isfinite(stack[..., 0]).all(axis=(0, 2))
    projections = np.stack(
        [
            cameras[n]["K"] @ np.concatenate([cameras[n]["R"], -cameras[n]["R"] @ cameras[n]["C"][:, None]], 1)
            for n in names
        ]
    )
    xy, weight = np.nan_to_num(stack[:, found, :, :2]), np.nan_to_num(stack[:, found][..., 2])
    world = triangulate(xy, weight, projections)  # (F, 33, 3) metres
    error = np.linalg.norm(np.stack([reprojection(world, p) for p in projections]) - xy, axis=-1)
    print(
        f"triangulated {int(found.sum())} of {count} frames x 33 BlazePose landmarks from {len(names)} views: "
        f"reprojection error median {np.median(error):.1f} px"
    )
    blaze = measures(world[:, BLAZEPOSE_TO_COCO])
    rig, _ = bvh_to_h36m(args.bvh)
    cmu = measures(coco_keypoints(rig))
    modelled = measures(blazepose_keypoints(rig))
    ref = ("shin (knee-ankle)", "forearm (elbow-wrist)")
    limbs = sum(np.median(blaze[k]) for k in ref) / sum(np.median(cmu[k]) for k in ref)
    height = np.percentile(standing(world[:, BLAZEPOSE_TO_COCO]), 99) / np.percentile(standing(coco_keypoints(rig)), 99)
    scale = (limbs + height) / 2
    print(
        f"body scale, BlazePose's person over the rig: {scale:.3f}, the mean of shin + forearm ({limbs:.3f}) and "
        f"standing nose-to-ankle height ({height:.3f}; 99th percentile over frames)"
    )
    print(f"{'measure':36} {'BlazePose mm':>12} {'/ scale':>8} {'CMU rig mm':>10} {'ratio':>6} {'modelled':>8}")
    for key in blaze:
        b, c, m = (float(np.median(v[key])) * 1000 for v in (blaze, cmu, modelled))
        print(f"{key:36} {b:12.0f} {b / scale:8.0f} {c:10.0f} {b / scale / c:6.2f} {m / c:8.2f}")
    # The yardstick of benchmarks/video_views.py is BlazePose's points converted to Human3.6M-17;
    # the models predict motion-capture joints. How far apart the two definitions are:
    joints = rig - rig[:, :1]
    converted = to_h36m(blazepose_keypoints(rig), np.ones((len(rig), len(COCO))), "coco17", 0.0)[0]
    converted = converted - converted[:, :1]
    gap = [
        metric(torch.from_numpy(converted), torch.from_numpy(joints)).mean().item() * 1000
        for metric in (mpjpe, p_mpjpe)
    ]
    print(
        f"BlazePose's points converted to Human3.6M-17 against the joints, on the clip: P1 {gap[0]:.1f} mm, "
        f"P2 {gap[1]:.1f} mm"
    )


if __name__ == "__main__":
    main()
