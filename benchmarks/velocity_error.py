"""Where the velocity error of the leave-one-person-out protocol lies: image plane or depth.

Trains (or reuses, from the same cache) the runs of ``cross_validate.py`` for the folds and
seeds given, predicts each held-out person with the model's own inference step, and splits
the velocity error of each model by camera axis, in mm per frame at the protocol's frame
rate, pooled over every frame of the fold (root-relative poses, as MPJVE):

* ``MPJVE``: the velocity error, pooled over frames (``evaluate`` averages per action group
  first, so its figure differs a little);
* ``x``, ``y``, ``depth``: the mean absolute error of each axis' velocity, beside the true
  speed along it (``true``: what a prediction without motion along that axis would score);
* ``corr`` and ``slope``: the correlation of the predicted depth velocity with the true one,
  and the least-squares slope of predicted on true (1: the motion in depth at its full size;
  0: none of it);
* ``depth ÷ base``: the depth error over the baseline's MPJVE. With the true motion across
  the image and its own motion in depth a model would score its depth error as MPJVE, so
  this is the least MPJVE ratio a model with that depth motion can reach;
* ``x, y share``: the largest share of its image-plane velocity error (both axes scaled
  alike, the depth error kept) with which the model would score MPJVE ``--target`` times
  the baseline's (issue 20's target: 0.80).

``--keypoints gt`` trains and scores on the noise-free 2D instead of the protocol's noisy 2D.

    python benchmarks/velocity_error.py [--folds S1,S5,S6,S7] [--seeds 0] [--keypoints gt] [protocol flags]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from cross_validate import MODELS, add_protocol_arguments, protocol_data, protocol_run
from scipy.optimize import brentq

from jointpose.data.h36m import load_dataset
from jointpose.evaluation.evaluate import evaluate_checkpoint


def axis_figures(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Velocity-error figures (mm per frame) of stacked velocities (n, joints, 3), metres per frame."""
    error = pred - true
    axes = ("x", "y", "depth")
    return {
        "mpjve": 1000 * float(np.linalg.norm(error, axis=-1).mean()),
        **{name: 1000 * float(np.abs(error[..., axis]).mean()) for axis, name in enumerate(axes)},
        **{f"true {name}": 1000 * float(np.abs(true[..., axis]).mean()) for axis, name in enumerate(axes)},
        "corr": float(np.corrcoef(pred[..., 2].ravel(), true[..., 2].ravel())[0, 1]),
        "slope": float((pred[..., 2] * true[..., 2]).sum() / (true[..., 2] ** 2).sum()),
    }


def image_plane_share(error: np.ndarray, limit: float) -> float:
    """The largest ``a`` in [0, 1] with mean |(a ex, a ey, ez)| <= ``limit`` (``error``: stacked
    velocity errors (n, joints, 3)); nan when the depth error alone is over it."""

    def mpjve(a: float) -> float:
        return float(np.linalg.norm(error * np.array([a, a, 1.0]), axis=-1).mean())

    if mpjve(0.0) > limit:
        return float("nan")
    if mpjve(1.0) <= limit:
        return 1.0
    return float(brentq(lambda a: mpjve(a) - limit, 0.0, 1.0, xtol=1e-4))


def velocities(poses: dict[str, np.ndarray], keys: list[str]) -> np.ndarray:
    """Frame-to-frame velocities (metres per frame) of each sequence's root-relative poses,
    stacked: (velocities, joints, 3)."""
    return np.concatenate([np.diff(poses[k] - poses[k][:, :1], axis=0) for k in keys])


COLUMNS = (  # (figure, header, width, decimals)
    ("mpjve", "MPJVE", 6, 2),
    ("x", "x", 5, 2),
    ("y", "y", 5, 2),
    ("depth", "depth", 6, 2),
    ("true x", "true x", 7, 2),
    ("true y", "true y", 7, 2),
    ("true depth", "true depth", 10, 2),
    ("corr", "corr", 5, 2),
    ("slope", "slope", 6, 2),
    ("depth ÷ base", "depth ÷ base", 12, 3),
    ("x, y share", "x, y share", 10, 2),
)


def format_row(label: str, figures: dict[str, float]) -> str:
    """One printed row: ``label`` then every column of :data:`COLUMNS`."""
    return label + " ".join(f"{figures[key]:{width}.{decimals}f}" for key, _, width, decimals in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_protocol_arguments(parser)
    parser.add_argument("--target", type=float, default=0.80, help="MPJVE ratio to the baseline for 'x, y share'")
    parser.set_defaults(seeds="0")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = protocol_data(args)
    print(f"{'fold':<5} {'seed':>4} {'model':<9}" + " ".join(f"{head:>{width}}" for _, head, width, _ in COLUMNS))
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}  # (fold, model) -> one per seed
    for fold in args.folds.split(","):
        truth = load_dataset(data, args.keypoints, [fold], downsample=args.downsample).sequences
        true_poses = {seq.key: seq.poses_3d for seq in truth}
        keys = sorted(true_poses)
        true_v = velocities(true_poses, keys)
        for seed in (int(s) for s in args.seeds.split(",")):
            base_mpjve = None
            for model in MODELS:
                _, folder = protocol_run(data, fold, seed, args, model, f"-k {args.keypoints}")
                predicted = evaluate_checkpoint(folder / "ckpt", data, downsample=args.downsample, device="cpu")
                pred_v = velocities(predicted.predictions, keys)
                figures = axis_figures(pred_v, true_v)
                base_mpjve = base_mpjve or figures["mpjve"]
                figures["depth ÷ base"] = figures["depth"] / base_mpjve
                figures["x, y share"] = image_plane_share(pred_v - true_v, args.target * base_mpjve / 1000)
                rows.setdefault((fold, model), []).append(figures)
                print(format_row(f"{fold:<5} {seed:>4} {model:<9}", figures), flush=True)
    print("\nmean over seeds, then over every fold and seed (with the least and the most):")
    for model in MODELS:
        every = [run for (_, m), runs in rows.items() if m == model for run in runs]
        groups = [(f"{fold} mean", runs) for (fold, m), runs in rows.items() if m == model]
        groups += [("mean", every), ("least", every), ("most", every)]
        for name, runs in groups:
            reduce = {"least": np.min, "most": np.max}.get(name, np.mean)
            print(format_row(f"{name:<10} {model:<9}", {k: float(reduce([r[k] for r in runs])) for k in runs[0]}))
    people = args.people.replace(",", ", ")
    print(
        f"\nvelocities at {50 / args.downsample:g} fps; {args.keypoints} 2D; joint-aware: the defaults; people {people}"
    )


if __name__ == "__main__":
    main()
