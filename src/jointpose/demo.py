"""``jointpose demo``: the whole pipeline on built-in data, offline, in a few minutes.

1. Build a small Human3.6M-format dataset: SYNTHETIC motion from :mod:`jointpose.motion.synthetic`
   (or real BVH clips with ``--bvh``), seen by the Human3.6M cameras, with detector-like
   noise on the 2D keypoints.
2. Train the joint-aware model briefly.
3. Evaluate on held-out subjects and print the table, beside the error of always
   predicting the mean training pose (the model must beat half of it).
4. Write an animation of one test sequence: 2D input beside predicted and true 3D.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jointpose.data.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS
from jointpose.errors import JointposeError
from jointpose.evaluation.metrics import mpjpe
from jointpose.model.temporal import receptive_field
from jointpose.motion.builder import CameraRing, NoiseModel, write_h36m_dataset
from jointpose.motion.viewpoints import RandomRig
from jointpose.safeio import atomic_write, limit
from jointpose.training.checkpoint import run_files
from jointpose.training.config import TrainConfig
from jointpose.training.trainer import Trainer

DEMO_MARKER = ".jointpose-demo"  # in --out: the folder's data and checkpoint are a demo's own
SYNTHETIC_TRAIN, SYNTHETIC_TEST = TRAIN_SUBJECTS, TEST_SUBJECTS  # the synthetic people, split as Human3.6M's
DEMO_ARCHITECTURE = (3, 3, 3)


@dataclass(frozen=True)
class DemoConfig:
    """What ``jointpose demo`` builds and trains: output folder, optional BVH source, epochs,
    channels, seconds of synthetic motion per clip, seed, animation file and its frames, the
    dataset's cameras, 2D noise, frame rate and 2D layout."""

    out: str = "jointpose-demo"
    bvh: str | None = None
    epochs: int = 15
    channels: int = 256
    seconds: float = 4.0
    seed: int = 0
    animation: str = "demo.gif"
    animation_frames: int = 100
    cameras: CameraRing | RandomRig | None = None
    noise: NoiseModel = NoiseModel()
    fps: float = 50.0
    input_layout: str = "h36m"
    progress: bool = True

    def __post_init__(self) -> None:
        from jointpose.render import check_animation_path
        from jointpose.safeio import check_fps

        check_fps(self.fps, "fps")
        name = check_animation_path(self.animation, "animation")
        if name.name != self.animation or name.name in ("", ".", ".."):
            raise JointposeError(
                "{0} {path}: must be a file name inside {1}, without folders",
                fields=("animation", "out"),
                path=self.animation,
            )
        if not 0 < self.seconds * self.fps < limit("frames"):
            raise JointposeError(
                "{0} {fps:g}: {seconds:g} s clips would have {frames:.3g} frames",
                fields=("fps",),
                fps=self.fps,
                seconds=self.seconds,
                frames=self.seconds * self.fps,
            )

    @property
    def paths(self) -> dict[str, Path]:
        """Where the demo writes, in ``out``: the ``data`` and ``checkpoint`` folders and the ``animation`` file."""
        out = Path(self.out)
        return {"data": out / "data", "checkpoint": out / "checkpoint", "animation": out / self.animation}


def demo_motion(config: DemoConfig) -> tuple[dict[str, dict[str, np.ndarray]], tuple[str, ...], tuple[str, ...]]:
    """The demo's motion (synthetic, or ``config.bvh``'s) and its train and test subjects; writes nothing."""
    if config.bvh is None:
        from jointpose.motion.synthetic import generate

        motion = generate(
            list(SYNTHETIC_TRAIN + SYNTHETIC_TEST), seconds=config.seconds, fps=config.fps, seed=config.seed
        )
        print(
            f"Built-in SYNTHETIC motion (procedural, not captured): {len(motion)} subjects x "
            f"{len(next(iter(motion.values())))} clips of {config.seconds:g} s"
        )
        return motion, SYNTHETIC_TRAIN, SYNTHETIC_TEST
    from jointpose.motion.mocap import load_bvh_folder

    motion = load_bvh_folder(config.bvh, fps=config.fps, seed=config.seed)
    subjects = list(motion)
    if len(subjects) < 2:
        raise JointposeError(
            "{0} {path}: the demo needs at least two subject folders (train and test)",
            fields=("bvh",),
            path=config.bvh,
        )
    train, test = tuple(subjects[:-1]), (subjects[-1],)
    print(f"BVH motion from {config.bvh}: train on {', '.join(train)}, test on {test[0]}")
    return motion, train, test


def write_data(config: DemoConfig, motion: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write ``motion`` as the demo's dataset (``config.paths["data"]``); returns the folder."""
    folder = config.paths["data"]
    write_h36m_dataset(
        folder,
        motion,
        fps=config.fps,
        cameras=config.cameras,
        noise=config.noise,
        seed=config.seed,
        input_layout=config.input_layout,
    )
    return folder


def build_data(config: DemoConfig) -> tuple[Path, tuple[str, ...], tuple[str, ...]]:
    """Write the demo dataset; returns its folder and the train and test subjects."""
    motion, train, test = demo_motion(config)
    return write_data(config, motion), train, test


def mean_pose_error(trainer: Trainer) -> float:
    """P1 (mm) of always predicting the mean training pose (camera space, root-relative)."""
    mean = torch.from_numpy(np.concatenate([s.poses_3d for s in trainer.train_data.sequences]).mean(axis=0))
    errors = [
        mpjpe(mean.expand(len(s.poses_3d), -1, -1), torch.from_numpy(s.poses_3d)) for s in trainer.test_data.sequences
    ]
    return 1000.0 * float(torch.cat(errors).mean())


def check_demo_folder(config: DemoConfig) -> None:
    """Refuse an ``out`` folder whose ``data`` or ``checkpoint`` folder holds a dataset or a
    training run that no demo wrote there (a VideoPose3D checkout keeps its Human3.6M files in
    ``data``): the demo replaces its own files only, which its marker file names."""
    out = Path(config.out)
    if (out / DEMO_MARKER).is_file():
        return
    data = config.paths["data"]
    found = (sorted(data.glob("data_*.npz")) if data.is_dir() else []) + run_files(config.paths["checkpoint"])
    if found:
        raise JointposeError(
            "{0} {path}: {file} was not written by a demo, and the demo would replace it; choose another folder",
            fields=("out",),
            path=out,
            file=found[0],
        )


def run_demo(config: DemoConfig) -> dict:
    """Run the demo; returns the evaluation summary with the mean-pose baseline added.

    Everything that can be refused (a folder holding files that no demo wrote, the training
    settings, clips too short for the model) is checked before the ``data`` and ``checkpoint``
    folders of an earlier demo are replaced."""
    start = time.perf_counter()
    check_demo_folder(config)
    motion, train, test = demo_motion(config)
    folder = config.paths["data"]
    train_config = TrainConfig(
        data_dir=str(folder),
        checkpoint_dir=str(config.paths["checkpoint"]),
        keypoints="noisy",
        subjects_train=train,
        subjects_test=test,
        architecture=DEMO_ARCHITECTURE,
        channels=config.channels,
        epochs=config.epochs,
        batch_size=1024,
        lr=0.002,
        lr_decay=0.9,
        seed=config.seed,
        progress=config.progress,
    )
    longest = max(len(clip) for subject in train for clip in motion[subject].values())
    if longest < receptive_field(DEMO_ARCHITECTURE):
        raise JointposeError(
            "{0} {fps:g}: the longest training clip has {frames} frames, fewer than the demo model's "
            "receptive field ({field}); raise {0}",
            fields=("fps",),
            fps=config.fps,
            frames=longest,
            field=receptive_field(DEMO_ARCHITECTURE),
        )
    checkpoints = Path(train_config.checkpoint_dir)
    earlier = run_files(checkpoints)  # checked before anything is written
    Path(config.out).mkdir(parents=True, exist_ok=True)
    with atomic_write(Path(config.out) / DEMO_MARKER, "w", encoding="utf-8") as handle:
        handle.write("jointpose demo: the next demo in this folder replaces data/, checkpoint/ and its animation\n")
    write_data(config, motion)
    if earlier:  # a fresh demo each run: what a training run writes goes, nothing else
        print(f"note: replacing the earlier demo's checkpoints in {checkpoints}")
        for old in earlier:
            old.unlink()
    trainer = Trainer(train_config)
    summary = trainer.fit()
    baseline = mean_pose_error(trainer)
    summary["mean_pose_p1"] = baseline
    p1 = summary["average"]["p1"]
    verdict = "OK" if p1 < baseline / 2 else "NOT below half"
    print(
        f"\nP1 {p1:.1f} mm vs {baseline:.1f} mm for always predicting the mean training pose "
        f"(ratio {p1 / baseline:.2f}; {verdict})"
    )
    seq = _showcase(trainer.test_data.sequences, config.animation_frames)
    animation = config.paths["animation"]
    _animate(seq, trainer.final_result.predictions[seq.key], animation, config.animation_frames, trainer.test_data.fps)
    print(f"animation of {seq.key}: {animation}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s; outputs in {config.out}/")
    return summary


def _showcase(sequences, frames: int):
    """The test view with the most body motion among those whose 2D stays in the image."""

    def in_view(seq) -> bool:
        from jointpose.geometry.cameras import keypoint_pixels

        pixels = keypoint_pixels(seq.keypoints[:frames], seq.camera, seq.normalization)
        size = np.array([seq.camera.res_w, seq.camera.res_h])
        return bool(((pixels > 0.025 * size) & (pixels < 0.975 * size)).all())

    candidates = [s for s in sequences if in_view(s)] or list(sequences)
    return max(candidates, key=lambda s: float(np.ptp(s.poses_3d[:frames], axis=0).sum()))


def _animate(seq, prediction: np.ndarray, path: Path, frames: int, fps: float) -> None:
    from jointpose.geometry.cameras import keypoint_pixels
    from jointpose.render import render_animation

    count = min(frames, len(prediction))
    pixels = keypoint_pixels(seq.keypoints[:count], seq.camera, seq.normalization)
    render_animation(
        path,
        pixels,
        {"Prediction": prediction[:count], "Ground truth": seq.poses_3d[:count]},
        image_size=(seq.camera.res_w, seq.camera.res_h),
        fps=fps,
        progress=False,
    )
