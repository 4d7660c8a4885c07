"""How well do the bundled models place the root in the camera, frame by frame and filtered?

Builds (once, cached in ``--work``) the held-out person of the bundled models (CMU subject 3,
S6) seen by their training rig (six cameras 6 m away, 1.6 m high) with the builder's
detector-like noise, once per 2D layout (COCO points for the offline models, BlazePose points
for the video models), and lifts every view with each bundled model and the true intrinsics.
The root's path then comes two ways from the same poses and keypoints:

* ``per frame``: the least-squares root of each frame alone
  (:func:`jointpose.geometry.cameras.root_trajectory`);
* ``shipped``: ``Lifter.predict_trajectory``, which filters the rays and the path
  (:func:`jointpose.geometry.alignment.root_path`): with a Gaussian of 80 ms for an offline
  model, over 40 ms of past frames for a causal one.

Against the true root in camera space, pooled over every frame of the views (mm; mm per frame
and per frame squared at 50 fps): ``error`` (3D distance), ``scaled`` (the path scaled about the
camera so that its median depth is the truth's: what is left once the body's size, which one
view cannot give, is taken out), ``velocity`` and ``acceleration`` (errors of the path's first
and second differences); beside them the true path's mean acceleration (what a path without
any would score).

    python benchmarks/root_trajectory.py [--work DIR] [--models offline,video,causal,video-causal]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from jointpose.data.h36m import load_dataset
from jointpose.geometry.cameras import keypoint_pixels, normalize_keypoints, root_trajectory
from jointpose.inference.lifter import Lifter
from jointpose.inference.pretrained import PRETRAINED
from jointpose.motion.builder import CameraRing, NoiseModel, write_h36m_dataset
from jointpose.motion.mocap import load_bvh_folder

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "src" / "jointpose" / "resources" / "pretrained" / "model_card.json"
FPS = 50.0


def held_out_data(cmu: Path, work: Path, layout: str, subject: str) -> Path:
    """The held-out subject through the bundled models' ring, 2D from ``layout``'s points (built once)."""
    data = work / f"held-out-{layout}"
    if not (data / "data_2d_h36m_noisy.npz").exists():
        motion = load_bvh_folder(cmu, fps=FPS, seed=0)
        write_h36m_dataset(
            data,
            {subject: motion[subject]},
            fps=FPS,
            cameras=CameraRing(count=6, distance=6.0, height=1.6),
            noise=NoiseModel(),
            seed=0,
            input_layout=layout,
        )
    return data


def path_errors(paths: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Errors of root paths (frames, 3) metres against the true ones, pooled over frames: mm, mm/frame, mm/frame²."""

    def pooled(values: list[np.ndarray]) -> float:
        return 1000 * float(np.concatenate(values).mean())

    scaled = [p * (np.median(t[:, 2]) / np.median(p[:, 2])) for p, t in zip(paths, truths)]
    return {
        "error": pooled([np.linalg.norm(p - t, axis=-1) for p, t in zip(paths, truths)]),
        "scaled": pooled([np.linalg.norm(s - t, axis=-1) for s, t in zip(scaled, truths)]),
        "velocity": pooled([np.linalg.norm(np.diff(p - t, axis=0), axis=-1) for p, t in zip(paths, truths)]),
        "acceleration": pooled([np.linalg.norm(np.diff(p - t, 2, axis=0), axis=-1) for p, t in zip(paths, truths)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmu", type=Path, default=ROOT.parent / "shared" / "data" / "cmu-mocap")
    parser.add_argument("--work", type=Path, default=None, help="cache folder for the datasets (default: temporary)")
    parser.add_argument("--models", default="offline,video,causal,video-causal", help="bundled models, comma-separated")
    args = parser.parse_args()
    card = json.loads(CARD.read_text())
    names = args.models.split(",")
    if unknown := sorted(set(names) - set(PRETRAINED)):
        parser.error(f"--models: {', '.join(unknown)} not bundled ({', '.join(PRETRAINED)})")
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        print(
            f"{'model':13} {'root path':10} {'error mm':>9} {'scaled mm':>10} {'velocity':>9} {'accel':>7}"
            f"   (true path's acceleration)"
        )
        for name in names:
            entry = card[name]
            layout = entry["input_layout"]  # the dataset builder's name: coco or blazepose
            data = held_out_data(args.cmu, work, layout, entry["held_out_subject"])
            sequences = load_dataset(data, "noisy", [entry["held_out_subject"]], normalization="intrinsics").sequences
            lifter = Lifter.from_pretrained(name, device="cpu")
            source = "h36m17" if layout == "h36m" else "coco17"  # converted 2D: the limbs are aligned
            shipped, per_frame, truths = [], [], []
            for seq in sequences:
                pixels = keypoint_pixels(seq.keypoints, seq.camera, "intrinsics")
                poses = lifter.predict(pixels, camera=seq.camera, source_layout=source)
                shipped.append(lifter.predict_trajectory(pixels, camera=seq.camera, poses=poses))
                per_frame.append(root_trajectory(poses, normalize_keypoints(pixels, seq.camera, "intrinsics")))
                truths.append(seq.trajectory.astype(np.float64))
            true_acceleration = 1000 * float(
                np.concatenate([np.linalg.norm(np.diff(t, 2, axis=0), axis=-1) for t in truths]).mean()
            )
            rows = {"per frame": path_errors(per_frame, truths), "shipped": path_errors(shipped, truths)}
            for label, row in rows.items():
                print(
                    f"{name:13} {label:10} {row['error']:9.1f} {row['scaled']:10.1f} {row['velocity']:9.2f} "
                    f"{row['acceleration']:7.2f}   ({true_acceleration:.2f}; {len(sequences)} views, "
                    f"{sum(len(t) for t in truths)} frames)"
                )
            ratio = {k: rows["shipped"][k] / rows["per frame"][k] for k in rows["shipped"]}
            print(
                f"{name:13} shipped ÷ per frame: error {ratio['error']:.3f}, scaled {ratio['scaled']:.3f}, "
                f"velocity {ratio['velocity']:.3f}, acceleration {ratio['acceleration']:.3f}"
            )


if __name__ == "__main__":
    main()
