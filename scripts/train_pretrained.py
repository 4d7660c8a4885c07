"""Train the bundled models on the CMU clips and write them into the package.

    python scripts/train_pretrained.py [--cmu ../shared/data/cmu-mocap] [--epochs 15] [--channels N]
        [--batch-size 256] [--precision bf16] [--lr LR] [--work runs/pretrained] [--only offline|causal|video|video-causal]
        [--rescore]

1. Builds a dataset with the dataset builder: a ring of 6 virtual cameras, detector-like
   noise, and 2D keypoints as ``jointpose infer`` derives them from COCO detections
   (``--input-layout coco``); for the video model, as ``jointpose video`` derives them from
   BlazePose's points (``--input-layout blazepose``, a second dataset).
2. Trains the 243-frame joint-aware model (``--channels``: by default 128, 256 for the offline
   video model) with the training defaults (intrinsics-aware input, loss weights, learning
   rate) and dropout 0.2 (``BUNDLED_DROPOUT``), and the causal variant, and the video models
   (offline and causal, BlazePose-derived 2D), on S1, S5, S7, every epoch seeing each motion
   through freshly drawn random cameras (``--random-cameras``, default ranges; the ring only
   places the motion in the world); the
   video models also see each motion on a freshly drawn body every epoch (``--body-scale
   0.12``: overall size and bone proportions), its arms, and independently its legs, moving
   as in another training motion half the time (``--limb-mix 0.5``), with limbs half-way to
   typical adult proportions (``--adult-limbs 0.5``); the video models
   keep the mean of their weights over the last 5 epochs (``--average-last 5``). No trajectory model:
   given the camera's intrinsics, the root follows from the pose
   (``jointpose.geometry.cameras.root_trajectory``).
   S6 (CMU subject 3, walking on uneven terrain) is held out: the subject with the fewest
   frames, so the playground, dance and everyday clips all train the shipped models.
3. Evaluates both on S6 seen by the ring (P1/P2 and the rest, with the default inference, the network
   alone and the consistent-skeleton fit; the causal model ships without the fit; the offline
   models align their limbs with the 2D, ``--align-2d``'s default, the causal ones cannot), writes
   ``model_card.json`` beside the models, and exports
   ``jointpose_cmu_243f_{offline,causal,video,video_causal}.safetensors`` (float16) into
   ``src/jointpose/resources/pretrained/``, reporting the float16 deviation in mm.

``--rescore`` skips training: the bundled files are taken as they are, given the recipe's
inference settings, written again (the same weights) and scored again; the card keeps their
training record.

Camera setups the models never saw (Human3.6M's cameras, a phone in portrait, a high
corner, a low camera): ``benchmarks/camera_generalisation.py --bundled``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jointpose.evaluation.evaluate import evaluate_model, format_table, inference_settings
from jointpose.evaluation.plausibility import plausibility_errors
from jointpose.inference.lifter import Lifter
from jointpose.inference.pretrained import PRETRAINED
from jointpose.model.loading import LATEST_FILE
from jointpose.model.predict import alignment_weight
from jointpose.motion.builder import CameraRing, NoiseModel, write_h36m_dataset
from jointpose.motion.mocap import load_bvh_folder
from jointpose.motion.viewpoints import CameraRanges
from jointpose.training.config import TrainConfig
from jointpose.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
TRAIN, TEST = ("S1", "S5", "S7"), ("S6",)


@dataclass(frozen=True)
class Variant:
    """How one bundled model trains.

    ``layout``: the 2D its training data derives from. "video" reads what `jointpose video`
    feeds it: BlazePose's points, placed on the joints as BlazePose places them.
    ``body_scale``, ``limb_mix``: the video models see every motion on a freshly drawn body
    each epoch (overall size and proportions; docs/tuning.md, "Video: body-size
    augmentation"), its arms, and independently its legs, moving as in another motion
    ``limb_mix`` of the time (docs/tuning.md, "Video: limbs from other motion").
    ``adult_limbs``: the video models' bodies have limbs half-way from the training
    rig's proportions (short arms for its legs) to typical adult ones (docs/tuning.md,
    "Video: adult limb proportions").
    ``channels``: the offline video model is twice as wide: under this much augmentation
    the extra width lowers the error on new people at a small cost in lifting time
    (docs/tuning.md, "Video: a wider network").
    ``average_last``: the video models ship the mean of their weights over the last 5 epochs
    (``--average-last``; docs/tuning.md, "Video: averaged weights").
    """

    causal: bool
    layout: str
    body_scale: float = 0.0
    limb_mix: float = 0.0
    adult_limbs: float = 0.0
    channels: int = 128
    average_last: int = 0


VARIANTS = {
    "offline": Variant(causal=False, layout="coco"),
    "causal": Variant(causal=True, layout="coco"),
    "video": Variant(
        causal=False, layout="blazepose", body_scale=0.12, limb_mix=0.5, adult_limbs=0.5, channels=256, average_last=5
    ),
    "video-causal": Variant(
        causal=True, layout="blazepose", body_scale=0.12, limb_mix=0.5, adult_limbs=0.5, average_last=5
    ),
}
# The offline model ships with a light temporal filter for smooth output (docs/method.md, "Inference").
BUNDLED_SMOOTH = 1.5
# The bundled models' dropout, with which their recipes were tuned on the footage (docs/model-card.md).
BUNDLED_DROPOUT = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmu", default=str(ROOT.parent / "shared" / "data" / "cmu-mocap"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "pretrained"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--channels", type=int, default=None, help="hidden width (default: each variant's own)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", choices=VARIANTS, default=None)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the joint-aware default)")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="no training: re-save and score the bundled models with the recipe's inference",
    )
    args = parser.parse_args()
    work = Path(args.work)
    out_dir = ROOT / "src" / "jointpose" / "resources" / "pretrained"
    out_dir.mkdir(parents=True, exist_ok=True)
    card_path = out_dir / "model_card.json"
    for name, variant in VARIANTS.items():
        if args.only and name != args.only:
            continue
        data = _dataset(
            Path(args.cmu), work / ("data" if variant.layout == "coco" else f"data-{variant.layout}"), variant.layout
        )
        config = TrainConfig(
            data_dir=str(data),
            checkpoint_dir=str(work / name),
            keypoints="noisy",
            subjects_train=TRAIN,
            subjects_test=TEST,
            architecture=(3, 3, 3, 3, 3),
            channels=args.channels or variant.channels,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            dropout=BUNDLED_DROPOUT,
            random_cameras=CameraRanges(),
            average_last=variant.average_last,
            body_scale=variant.body_scale or None,
            adult_limbs=variant.adult_limbs,
            limb_mix=variant.limb_mix,
            causal=variant.causal,
            seed=0,
            precision=args.precision,
            resume=(work / name / LATEST_FILE).exists(),
        )
        trainer = Trainer(config)
        if args.rescore:
            shipped = Lifter.load(out_dir / PRETRAINED[name])
            network, trajectory = shipped.model, shipped.trajectory_model
        else:
            trainer.fit()
            network, trajectory = trainer.evaluation_model(), _trajectory(trainer)
        smooth = 0.0 if config.causal else BUNDLED_SMOOTH
        # The causal model ships as the network alone: its skeleton fit, from past frames
        # only, costs P1 on held-out motion (docs/model-card.md); it is one flag away.
        lifter = Lifter(
            network,
            trajectory_model=trajectory,
            fps=trainer.train_data.fps,
            skeleton_fit=not config.causal,
            smooth=smooth,
            normalization=trainer.config.normalization,
            align_2d=alignment_weight(trainer.config.to_dict()),
            input_layout=variant.layout,
        )
        path = lifter.save(out_dir / PRETRAINED[name], half=True)
        half = Lifter.load(path)
        sequences = trainer.test_data.sequences
        step = inference_settings(half, trainer.test_data)
        result = evaluate_model(half.model, sequences, extra_metrics=plausibility_errors, **step)
        raw = evaluate_model(half.model, sequences, extra_metrics=plausibility_errors)
        # Without flip averaging (half the compute; StreamingLifter's default): with the
        # model's inference step, and the network alone.
        no_flip_fit = evaluate_model(half.model, sequences, extra_metrics=plausibility_errors, flip_test=False, **step)
        no_flip = evaluate_model(half.model, sequences, extra_metrics=plausibility_errors, flip_test=False)
        fitted = (
            result
            if half.skeleton_fit
            else evaluate_model(
                half.model, sequences, extra_metrics=plausibility_errors, **(step | {"skeleton_fit": True})
            )
        )
        print(f"\n{name} model on held-out {TEST[0]} (float16 weights):\n{format_table(result.summary)}")
        print(f"the network alone (no temporal filter, no consistent skeleton):\n{format_table(raw.summary)}")
        deviation = None  # a rescored model's float32 weights are no longer at hand
        if not args.rescore:
            full = evaluate_model(lifter.model, sequences, **step)
            deviation = 1000 * float(
                np.mean(
                    [
                        np.linalg.norm(result.predictions[k] - full.predictions[k], axis=-1).mean()
                        for k in full.predictions
                    ]
                )
            )
            print(f"float16 vs float32 weights: mean deviation {deviation:.3f} mm")
        print(f"file {path.stat().st_size / 1e6:.2f} MB")
        # Read just before writing: another run may have updated the other model's entry.
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
        # A rescored model keeps the record of its training: how it trained, and its float16
        # weights' deviation from the float32 ones.
        previous = card.get(name, {}) if args.rescore else {}
        record = previous.get("training")
        if deviation is None:
            deviation = previous.get("float16_deviation_mm")
        card[name] = {
            "file": path.name,
            "size_mb": round(path.stat().st_size / 1e6, 2),
            "parameters": sum(p.numel() for p in lifter.model.parameters()),
            "receptive_field": lifter.receptive_field,
            "causal": variant.causal,
            "input_layout": variant.layout,
            "trajectory_model": lifter.trajectory_model is not None,
            "held_out_subject": TEST[0],
            "inference": {
                "flip_averaging": True,
                "skeleton_fit": half.skeleton_fit,
                "smooth_sigma_frames": smooth,
                "align_2d": half.align_2d,
            },
            "held_out": {k: round(v, 2) for k, v in result.summary["average"].items()},
            "held_out_raw_network": {k: round(v, 2) for k, v in raw.summary["average"].items()},
            "held_out_no_flip": {k: round(v, 2) for k, v in no_flip_fit.summary["average"].items()},
            "held_out_raw_network_no_flip": {k: round(v, 2) for k, v in no_flip.summary["average"].items()},
            "held_out_skeleton_fit": {k: round(v, 2) for k, v in fitted.summary["average"].items()},
            "float16_deviation_mm": round(deviation, 4),
            "training": record
            or {
                "subjects": list(TRAIN),
                "epochs": args.epochs,
                # Passes over the training windows per epoch (2: each as it is and mirrored).
                "passes_per_epoch": 2 if config.augment else 1,
                "channels": config.channels,
                "batch_size": args.batch_size,
                "lr": trainer.config.lr,
                "precision": args.precision,
                "loss_weights": trainer.config.weights.as_dict(),
                "chunk": config.chunk,
                "chunk_share": config.chunk_share,
                "chunk_dropout": config.chunk_dropout,
                "dropout": trainer.config.dropout,
                "normalization": trainer.config.normalization,
                "random_cameras": trainer.config.random_cameras.to_dict(),
                "body_scale": trainer.config.body_scale,
                "adult_limbs": trainer.config.adult_limbs,
                "limb_mix": trainer.config.limb_mix,
                "average_last": config.average_last,
                "seconds_per_epoch": round(float(np.mean([r["seconds"] for r in trainer.history])), 1),
            },
        }
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    return 0


def _dataset(cmu: Path, data: Path, layout: str) -> Path:
    """The training dataset (built once): the CMU clips seen by a ring of 6 virtual cameras,
    detector-like noise, 2D derived from the ``layout`` detector's points."""
    if not (data / "data_2d_h36m_noisy.npz").exists():
        motion = load_bvh_folder(cmu, fps=50.0, seed=0)
        write_h36m_dataset(
            data,
            motion,
            fps=50.0,
            cameras=CameraRing(count=6, distance=6.0, height=1.6),
            noise=NoiseModel(),
            seed=0,
            input_layout=layout,
        )
    return data


def _trajectory(trainer: Trainer):
    if trainer.trajectory_model is None:
        return None
    from jointpose.model.temporal import build_model

    model = build_model(trainer.trajectory_args)
    model.load_state_dict(trainer.trajectory_model.state_dict())
    return model.eval()


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
