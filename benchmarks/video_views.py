"""``jointpose video`` on each view of real multi-view footage, against a triangulation of the views.

The footage: Pose2Sim's Demo_SinglePerson (four synchronised, calibrated 1080x1920 views of one
person, 60 fps; BSD-3, from ``pip download pose2sim==0.10.49 --no-deps``; .ci/run extracts the
videos and ``calibration/Calib.qca.txt`` into tests/.footage). A second person: the woman of
Demo_MultiPerson (the same rig, 100 frames; .ci/run extracts it into
tests/.footage/multi-person), with ``--views cam01,cam02,cam04 --person cam04=788,691`` (in
cam04 the man is the larger in the image, and ``jointpose video`` follows him unless pointed at
her), and cam03 with ``--views cam01,cam02,cam03,cam04 --reference-views cam01,cam02,cam04
--person cam04=788,691 --person cam03=280,790`` (in cam03 the track starts on the man and
moves over to her unless pointed at her; cam03 scored against the reference of the three views
above). Neither
person appeared in the bundled models' training data (CMU motion capture through virtual
cameras).

Reference: BlazePose's COCO-17 keypoints of every view scored (``--reference-views``: of
those views only; every view is scored against it), with each reference view's left/right
labels chosen per frame from the views themselves (the combination of exchanged views that
triangulates with the least reprojection error, mirrored where it puts the nose behind the
body; :func:`labels_from_views`: independent of jointpose's own left/right repair, whose
choices are printed beside), triangulated per frame (linear DLT, each view weighted by the
keypoint's confidence, lens distortion ignored), converted to Human3.6M-17 with the same
recipes as the network input, then moved into each camera's frame, root-relative. It shares
the detector's keypoint definition with the monocular result, so for a view in the reference
the figures measure the lifting (depth, proportions, left/right), not the detector; a view
outside it is also scored on where its detector puts the points. How well each view's
detections agree with the others: the median distance (pixels) of its detections to a
triangulation of the other reference views reprojected into it (:func:`view_distance`).
Printed per view, with and without ``--focal-length`` (the calibrated focal length):

* P1 (MPJPE) and P2 (after per-frame similarity alignment), mm; with the focal length, P2
  per joint (the same alignment);
* left/right correct: frames where the predicted shoulder and hip axes both point within
  90 degrees of the reference's (camera space, no alignment), %;
* size: the predicted skeleton's summed bone length over the reference's (median over frames),
  and its standing height (:func:`jointpose.geometry.bones.standing_height`), m; with
  ``--height`` every view's person is scaled to that height (Pose2Sim 0.9.4's demo
  configurations give the people's heights: 1.72 m for Demo_SinglePerson's man, 1.40 m for
  Demo_MultiPerson's woman); root distance: the predicted root's depth over the reference
  root's in that camera (median over frames; a wrong size puts the person as much too near
  or too far);
* root path (with the focal length): the predicted root against the reference's, the path
  scaled about the camera to the reference's median depth (the size, and with it the
  distance, one view cannot give): mean distance, mm, and velocity error, mm per frame
  against the reference's path filtered over 33 ms; beside the same for a least-squares fit
  of each frame alone (:func:`jointpose.geometry.cameras.root_trajectory`);
* bone lengths between views: the spread (std over the views / mean) of each bone's
  length, the skeleton that the skeleton fit gives each view;
* size against image size: the first view's track scaled about its root by a factor (as if
  filmed from further away), lifted again: the predicted summed bone length per factor;
* noise-free 2D: each view's P2 when the model lifts the reference's own joints projected
  into that view (with the focal length) instead of the detections: what remains is the
  lifting of this motion, not the detector's noise;
* distance to the training motion (where ``--training-motion`` is a folder, by default the
  CMU clips in ../shared): for every 5th frame, the reference pose's P2 against the nearest
  pose of the bundled models' training subjects (every 2nd frame at 50 fps, as the dataset
  builder scales them, in the reference's joint definition), beside the same for the
  held-out CMU subject: how far this motion lies from anything the models trained on.

    python benchmarks/video_views.py [--footage tests/.footage] [--views cam01,...] [--model video|PATH]
        [--reference-views cam01,...] [--end SECONDS] [--height METRES] [--person VIEW=X,Y ...]
        [--training-motion DIR]

The man of Demo_MultiPerson (the smaller in the image in cam01 and cam02):
``--footage tests/.footage/multi-person --views cam01,cam02,cam04 --person cam01=422,736
--person cam02=584,758 --person cam04=394,975``; his cam03 up to the frame where the track is
noted as moving to the woman: ``--views cam01,cam02,cam03,cam04 --reference-views
cam01,cam02,cam04 --end 1.3`` with the same ``--person``.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import torch

from jointpose.data.layouts import LAYOUTS, to_h36m
from jointpose.data.resampling import resample
from jointpose.data.tracks import repair_swaps, side_pairs
from jointpose.evaluation.metrics import mpjpe, p_mpjpe, procrustes_align
from jointpose.geometry import skeleton
from jointpose.geometry.bones import bone_vectors, standing_height
from jointpose.geometry.cameras import camera_from_intrinsics, normalize_keypoints, root_trajectory
from jointpose.geometry.filters import smooth_poses
from jointpose.inference.lifter import Lifter
from jointpose.inference.pretrained import PRETRAINED
from jointpose.inference.video import lift_video
from jointpose.motion.builder import detector_points
from jointpose.motion.mocap import load_bvh_folder

SUBPIXELS = 64  # Qualisys stores intrinsics in 1/64 pixel
ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "src" / "jointpose" / "resources" / "pretrained" / "model_card.json"
REFERENCE_SIGMA_S = 1 / 30  # the reference root's filter for velocity errors: 2 frames at 60 fps


def read_qca(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per camera serial: ``K`` (3, 3) pixels, ``R`` (3, 3) world->camera, ``C`` (3,) centre in metres.

    The transform's matrix, read by rows and turned by 180 degrees about x, maps world axes to
    the usual camera axes (x right, y down, z forward): of the readings tried (the matrix or
    its transpose, turned or not) it is the one whose triangulation reprojects into the four
    views (median error ~13 px; the others >= 97 px).
    """
    cameras = {}
    for cam in ElementTree.parse(path).getroot().iter("camera"):
        t, i = cam.find("transform").attrib, cam.find("intrinsic").attrib
        rotation = np.array([[float(t[f"r{r}{c}"]) for c in "123"] for r in "123"])
        centre = np.array([float(t[k]) for k in "xyz"]) / 1000.0
        k = (
            np.array(
                [
                    [float(i["focalLengthU"]), 0, float(i["centerPointU"])],
                    [0, float(i["focalLengthV"]), float(i["centerPointV"])],
                    [0, 0, SUBPIXELS],
                ]
            )
            / SUBPIXELS
        )
        cameras[cam.attrib["serial"]] = {"K": k, "R": np.diag([1.0, -1.0, -1.0]) @ rotation, "C": centre}
    return cameras


def triangulate(points: np.ndarray, weights: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """(F, N, 3) world points from (V, F, N, 2) pixels, (V, F, N) weights and (V, 3, 4) projections (DLT)."""
    rows = (
        np.concatenate(
            [
                points[..., 0:1, None] * projections[:, None, None, 2:3] - projections[:, None, None, 0:1],
                points[..., 1:2, None] * projections[:, None, None, 2:3] - projections[:, None, None, 1:2],
            ],
            axis=-2,
        )
        * weights[..., None, None]
    )  # (V, F, N, 2, 4)
    a = np.moveaxis(rows, 0, 2).reshape(points.shape[1], points.shape[2], -1, 4)
    x = np.linalg.svd(a)[2][..., -1, :]
    return x[..., :3] / x[..., 3:]


def reprojection(world: np.ndarray, projection: np.ndarray) -> np.ndarray:
    h = np.concatenate([world, np.ones(world.shape[:-1] + (1,))], axis=-1) @ projection.T
    return h[..., :2] / h[..., 2:]


def labels_from_views(
    points: np.ndarray, weights: np.ndarray, projections: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each view's COCO-17 left/right labels chosen per frame from the views themselves.

    ``points`` (V, F, 17, 2) pixels and ``weights`` (V, F, 17) as detected. Every combination
    of views with their labels exchanged is triangulated; per frame the one with the smallest
    median reprojection error is kept, or its complement (every view the other way round,
    which the views cannot tell apart: a mirror image) where the kept one puts the nose behind
    the body, whose front is (left hip - right hip) x (mid-shoulders - mid-hips) in the
    calibration's right-handed world. Returns the points, the weights and (V, F) the views'
    exchanged frames.
    """
    names = LAYOUTS["coco17"]
    pairs = side_pairs(names)
    order = np.arange(points.shape[2])
    order[pairs[:, 0]], order[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    views, frames = points.shape[:2]

    def labelled(exchanged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points and weights with the labels exchanged where ``exchanged`` (V, F) is True."""
        return (
            np.where(exchanged[..., None, None], points[:, :, order], points),
            np.where(exchanged[..., None], weights[:, :, order], weights),
        )

    combos = ((np.arange(2**views)[:, None] >> np.arange(views)) & 1).astype(bool)  # (C, V)
    errors = []
    for combo in combos:
        xy, w = labelled(np.broadcast_to(combo[:, None], (views, frames)))
        world = triangulate(xy, w, projections)
        reprojected = np.stack([reprojection(world, p) for p in projections])
        errors.append(np.median(np.linalg.norm(reprojected - xy, axis=-1), axis=(0, 2)))
    exchanged = combos[np.argmin(np.stack(errors), axis=0)].T  # (V, F)
    world = triangulate(*labelled(exchanged), projections)
    hips = world[:, [names.index("l_hip"), names.index("r_hip")]]
    shoulders = world[:, [names.index("l_shoulder"), names.index("r_shoulder")]].mean(axis=1)
    front = np.cross(hips[:, 0] - hips[:, 1], shoulders - hips.mean(axis=1))
    behind = ((world[:, names.index("nose")] - shoulders) * front).sum(axis=-1) < 0
    exchanged = exchanged ^ behind[None]
    return *labelled(exchanged), exchanged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=ROOT / "tests" / ".footage")
    parser.add_argument(
        "--height",
        type=float,
        default=None,
        metavar="METRES",
        help="the person's standing height: every view's skeleton is scaled to it (jointpose video --height)",
    )
    parser.add_argument(
        "--views",
        help="comma-separated camera names to triangulate and score (default: every camera of the calibration)",
    )
    parser.add_argument(
        "--reference-views",
        help="comma-separated camera names, among --views, whose detections make the reference (default: every "
        "view scored); the others are scored against it",
    )
    parser.add_argument(
        "--end",
        type=float,
        default=None,
        metavar="SECONDS",
        help="score every view up to this time (jointpose video --end; default: the clips' end)",
    )
    parser.add_argument(
        "--person",
        action="append",
        default=[],
        metavar="VIEW=X,Y",
        help="in VIEW, follow the person nearest to pixel X,Y (jointpose video --person); repeat per view",
    )
    parser.add_argument(
        "--training-motion",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "cmu-mocap",
        help="the bundled models' training motion (BVH folder); skipped where absent",
    )
    parser.add_argument(
        "--model",
        default="video",
        help=f"a bundled model ({', '.join(PRETRAINED)}; default: the one jointpose video uses) or a saved "
        "model's path (.safetensors, a training checkpoint or run folder)",
    )
    args = parser.parse_args()
    cameras = read_qca(args.footage / "Calib.qca.txt")
    names = sorted(cameras) if args.views is None else args.views.split(",")
    if unknown := sorted(set(names) - set(cameras)):
        parser.error(
            f"--views: {', '.join(unknown)} not in {args.footage / 'Calib.qca.txt'} ({', '.join(sorted(cameras))})"
        )
    chosen = names if args.reference_views is None else args.reference_views.split(",")
    if unknown := sorted(set(chosen) - set(names)):
        parser.error(f"--reference-views: {', '.join(unknown)} not among the views scored ({', '.join(names)})")
    if len(set(chosen)) < 2:
        parser.error("--reference-views: at least two views are needed to triangulate")
    used = [names.index(n) for n in sorted(set(chosen), key=names.index)]
    if args.model in PRETRAINED:
        lifter = Lifter.from_pretrained(args.model, device="cpu")
    else:
        lifter = Lifter.load(args.model, device="cpu")
    persons = {}
    for value in args.person:
        view, _, point = value.partition("=")
        try:
            persons[view] = tuple(float(v) for v in point.split(","))
        except ValueError:
            parser.error(f"--person: expected VIEW=X,Y, got {value!r}")
    runs = {
        name: {
            f: lift_video(
                str(args.footage / f"{name}.mp4"),
                lifter,
                focal_length=focal,
                end=args.end,
                height=args.height,
                person=persons.get(name),
                progress=False,
            )
            for f, focal in (("default", None), ("focal", float(cameras[name]["K"][0, 0])))
        }
        for name in names
    }
    count = min(r["default"].clip.count for r in runs.values())
    pairs = side_pairs(LAYOUTS["coco17"])
    raw = np.stack([runs[n]["default"].detections.points[:count] for n in names])
    projections = np.stack(
        [
            cameras[n]["K"] @ np.concatenate([cameras[n]["R"], -cameras[n]["R"] @ cameras[n]["C"][:, None]], 1)
            for n in names
        ]
    )
    detected, conf = np.nan_to_num(raw[used, ..., :2]), np.nan_to_num(raw[used, ..., 2])
    xy, conf_views, exchanged = labels_from_views(detected, conf, projections[used])
    repaired = [repair_swaps(p, c, pairs)[2] for p, c in zip(detected, conf)]
    print(
        "left/right labels exchanged, per view: "
        + "; ".join(
            f"{names[i]} {int(e.sum())} frames by the views, {int(r.sum())} by jointpose's repair "
            f"(disagreeing on {int((e != r).sum())})"
            for i, e, r in zip(used, exchanged, repaired)
        )
    )
    for label, points, weights in (
        ("detector's labels", detected, conf),
        ("labels chosen from the views", xy, conf_views),
    ):
        world = triangulate(points, weights, projections[used])
        errors = np.linalg.norm(np.stack([reprojection(world, projections[i]) for i in used]) - points, axis=-1)
        print(
            f"triangulated {count} frames x 17 COCO keypoints from {len(used)} views, {label}: reprojection "
            f"error median {np.nanmedian(errors):.1f} px, 95th percentile {np.nanpercentile(errors, 95):.1f} px; "
            "per view median "
            + ", ".join(f"{names[i]} {e:.1f}" for i, e in zip(used, np.nanmedian(errors, axis=(1, 2))))
        )
    reference_world = triangulate(xy, conf_views, projections[used])  # the labels chosen from the views
    agreement = []
    for i, name in enumerate(names):
        others = [k for k, j in enumerate(used) if j != i]
        if len(others) >= 2:
            world = triangulate(xy[others], conf_views[others], projections[[used[k] for k in others]])
            agreement.append(f"{name} {view_distance(raw[i, ..., :2], reprojection(world, projections[i])):.1f}")
    print(
        "each view's detections against a triangulation of the other reference views, reprojected (median, each "
        "frame's left/right labels as they fit best): " + ", ".join(agreement) + " px"
    )
    reference = to_h36m(reference_world, np.ones(reference_world.shape[:2]), "coco17", 0.0)[0]
    lengths_ref = np.linalg.norm(bone_vectors(reference), axis=-1)
    print(
        f"reference skeleton: summed bone length {np.median(lengths_ref.sum(-1)):.3f} m (median over frames), "
        f"standing height {standing_height(reference):.3f} m"
    )
    lsh, rsh, lhip, rhip = (skeleton.JOINT_NAMES.index(j) for j in ("LShoulder", "RShoulder", "LHip", "RHip"))
    print(
        f"{'view':6} {'focal':8} {'P1 mm':>7} {'P2 mm':>7} {'L/R ok %':>9} {'size':>6} {'height m':>9} {'distance':>9}"
    )
    per_view_lengths = {}
    for name in names:
        cam = cameras[name]
        in_camera = (reference - cam["C"]) @ cam["R"].T
        ref = in_camera - in_camera[:, :1]
        for flavour, result in runs[name].items():
            pred = result.poses[:count]
            pred_t, ref_t = torch.from_numpy(pred), torch.from_numpy(ref)
            p1 = mpjpe(pred_t, ref_t).mean().item() * 1000
            aligned = procrustes_align(pred_t, ref_t)  # P2's alignment, also for P2 per joint
            p2 = mpjpe(aligned, ref_t).mean().item() * 1000
            ok = (((pred[:, lsh] - pred[:, rsh]) * (ref[:, lsh] - ref[:, rsh])).sum(-1) > 0) & (
                ((pred[:, lhip] - pred[:, rhip]) * (ref[:, lhip] - ref[:, rhip])).sum(-1) > 0
            )
            lengths = np.linalg.norm(bone_vectors(pred), axis=-1)
            size = np.median(lengths.sum(-1) / lengths_ref.sum(-1))
            label = "given" if flavour == "focal" else "none"
            distance = "-"
            if result.trajectory is not None:
                distance = f"{np.median(result.trajectory[:count, 2]) / np.median(in_camera[:, 0, 2]):.2f}"
            print(
                f"{name:6} {label:8} {p1:7.1f} {p2:7.1f} {100 * ok.mean():9.1f} {size:6.2f} "
                f"{standing_height(pred):9.2f} {distance:>9}"
            )
            if flavour == "focal":
                per_joint = 1000 * torch.linalg.vector_norm(aligned - ref_t, dim=-1).mean(0)
                print(
                    "       P2 per joint: " + ", ".join(f"{j} {v:.0f}" for j, v in zip(skeleton.JOINT_NAMES, per_joint))
                )
                camera = camera_from_intrinsics(result.clip.size, float(cam["K"][0, 0]), None, None, id=name)
                rays = normalize_keypoints(result.keypoints.points[:count, :, :2], camera, "intrinsics")
                shipped, per_frame = (
                    root_errors(path, in_camera[:, 0], result.fps)
                    for path in (result.trajectory[:count], root_trajectory(pred, rays))
                )
                print(
                    f"       root path: {shipped[0]:.0f} mm off after depth scaling (per-frame fit {per_frame[0]:.0f}), "
                    f"velocity error {shipped[1]:.1f} mm/frame (per-frame fit {per_frame[1]:.1f})"
                )
            per_view_lengths.setdefault(flavour, []).append(lengths.mean(0))
    first = runs[names[0]]["focal"]
    xy = resample(first.keypoints.xy, first.fps, lifter.fps)
    sizes = []
    for factor in (1.0, 0.75, 0.5, 0.35):
        scaled = xy[:, :1] + factor * (xy - xy[:, :1])
        sizes.append(np.median(np.linalg.norm(bone_vectors(lifter.predict(scaled, first.clip.size)), axis=-1).sum(-1)))
    print(
        f"{names[0]}, 2D track scaled about the root by 1, 0.75, 0.5, 0.35 (no focal correction): predicted "
        f"summed bone length {', '.join(f'{v:.2f}' for v in sizes)} m (triangulated {np.median(lengths_ref.sum(-1)):.2f} m)"
    )
    clean = []
    for i, name in enumerate(names):
        result = runs[name]["focal"]
        camera = camera_from_intrinsics(result.clip.size, float(cameras[name]["K"][0, 0]), None, None, id=name)
        projected = reprojection(reference, projections[i])
        lifted = lifter.predict(resample(projected, result.clip.fps, lifter.fps), camera=camera)
        pred = resample(lifted, lifter.fps, result.clip.fps, count)
        ref = (reference - cameras[name]["C"]) @ cameras[name]["R"].T
        clean.append(p_mpjpe(torch.from_numpy(pred), torch.from_numpy(ref - ref[:, :1])).mean().item() * 1000)
    print(
        "P2 per view lifting the reference's joints projected (noise-free 2D, focal given): "
        + " / ".join(f"{v:.1f}" for v in clean)
        + " mm"
    )
    if args.training_motion.is_dir():
        nearest_training_pose(args.training_motion, reference - reference[:, :1])
    for flavour, lengths in per_view_lengths.items():
        lengths = np.stack(lengths)
        spread = lengths.std(0) / lengths.mean(0)
        print(
            f"bone lengths across the {len(names)} views ({'focal given' if flavour == 'focal' else 'no focal'}): "
            f"spread median {100 * np.median(spread):.1f}%, max {100 * spread.max():.1f}% "
            f"({skeleton.BONE_NAMES[int(spread.argmax())]})"
        )


def view_distance(points: np.ndarray, reprojected: np.ndarray) -> float:
    """Median distance (pixels) from a view's COCO-17 ``points`` (F, 17, 2; NaN where not
    found) to the reference ``reprojected`` into it, each frame with the left/right labels that
    fit it best."""
    pairs = side_pairs(LAYOUTS["coco17"])
    order = np.arange(points.shape[1])
    order[pairs[:, 0]], order[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    seen = np.isfinite(points[..., 0]).any(axis=1)
    points, reprojected = points[seen], reprojected[seen]
    distances = np.stack(
        [np.linalg.norm(points - reprojected, axis=-1), np.linalg.norm(points[:, order] - reprojected, axis=-1)]
    )
    best = np.argmin(np.nanmedian(distances, axis=2), axis=0)
    return float(np.nanmedian(distances[best, np.arange(len(points))]))


def root_errors(path: np.ndarray, reference: np.ndarray, fps: float) -> tuple[float, float]:
    """A root path's error against the reference's root (frames, 3) metres, camera space: the
    mean distance (mm) once the path is scaled about the camera to the reference's median
    depth (one view cannot give the body's size, and with it the distance), and the mean error
    of its frame-to-frame velocity (mm per frame) against the reference's filtered over
    :data:`REFERENCE_SIGMA_S` (a per-frame triangulation jitters too)."""
    scaled = path * (np.median(reference[:, 2]) / np.median(path[:, 2]))
    smooth = smooth_poses(torch.from_numpy(reference), REFERENCE_SIGMA_S * fps).numpy()
    return (
        1000 * float(np.linalg.norm(scaled - reference, axis=-1).mean()),
        1000 * float(np.linalg.norm(np.diff(scaled - smooth, axis=0), axis=-1).mean()),
    )


def nearest_training_pose(folder: Path, poses: np.ndarray) -> None:
    """Print how far root-relative ``poses`` (frames, 17, 3) metres lie from the bundled models'
    training motion: P2 to the nearest training pose, every 5th frame, beside the held-out subject's.

    The motion-capture poses are put in the reference's joint definition first: BlazePose's
    COCO-17 points placed on them (as the video model's training data places them), converted
    to Human3.6M-17 like the reference."""
    card = json.loads(CARD.read_text())["video"]
    train = sorted(card["training"]["subjects"])
    motion = load_bvh_folder(folder, fps=50.0, seed=0)

    def as_reference(clip: np.ndarray) -> np.ndarray:
        joints = to_h36m(detector_points(clip, "blazepose"), np.ones(clip.shape[:2]), "coco17", 0.0)[0]
        return joints - joints[:, :1]

    pool = torch.from_numpy(np.concatenate([as_reference(c[::2]) for s in train for c in motion[s].values()]))

    def nearest(frames: np.ndarray) -> np.ndarray:
        return np.array([p_mpjpe(pool, torch.from_numpy(f).expand_as(pool)).min().item() * 1000 for f in frames[::5]])

    held_out = card["held_out_subject"]
    footage = nearest(poses)
    other = nearest(np.concatenate([as_reference(c) for c in motion[held_out].values()])[::2])
    print(
        f"nearest training pose ({', '.join(train)}; P2): footage reference mean {footage.mean():.1f} mm "
        f"(range {footage.min():.0f}-{footage.max():.0f}); held-out {held_out} mean {other.mean():.1f} mm"
    )


if __name__ == "__main__":
    main()
