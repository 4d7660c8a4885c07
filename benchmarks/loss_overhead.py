"""Cost of the joint-aware loss in a training step (27-frame, 256-channel model, CPU).

Times full optimiser steps as training runs them, on the same random data, interleaved so
that all see the same machine state:

* baseline: ``--batch`` single windows through the strided model, MPJPE, backward, Adam;
* joint-aware: the same number of target frames, ``--chunk-share`` of them as chunks of
  ``--chunk`` consecutive frames (one dropout mask per chunk), MPJPE over the single windows
  plus the constraint terms over the chunks, with the default weights and with every term
  switched on; chunk settings default to training's.

Batches are built before the timed steps, as training builds them in its data pipeline.

Prints each ratio to the baseline. Target: at most 1.10.

    python benchmarks/loss_overhead.py [--steps 40] [--batch 1024] [--chunk N] [--chunk-share S]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from jointpose.data.batching import receptive_windows
from jointpose.losses import CONSTRAINT_TERMS, JointAwareLoss, LossWeights, mpjpe
from jointpose.model.temporal import StridedTemporalModel
from jointpose.training.config import TrainConfig
from jointpose.training.trainer import chunk_groups, mixed_loss

ALL_TERMS = LossWeights(**{name: 0.05 for name in CONSTRAINT_TERMS})  # every constraint on (the most work a step does)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=1024, help="target frames per step")
    defaults = TrainConfig(data_dir="unused", checkpoint_dir="unused")
    parser.add_argument("--chunk", type=int, default=defaults.chunk, help="consecutive target frames per chunk")
    parser.add_argument("--chunk-share", type=float, default=defaults.chunk_share, help="share of the frames in chunks")
    parser.add_argument("--channels", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = StridedTemporalModel((3, 3, 3), channels=args.channels)
    field = model.receptive_field()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    chunks = round(args.chunk_share * args.batch / args.chunk)
    singles = args.batch - chunks * args.chunk
    single_inputs, all_inputs = torch.randn(singles, field, 17, 2), torch.randn(args.batch, field, 17, 2)
    mixed_inputs = torch.cat(
        [single_inputs, receptive_windows(torch.randn(chunks, field + args.chunk - 1, 17, 2), field)]
    )
    single_targets, all_targets = 0.3 * torch.randn(singles, 17, 3), 0.3 * torch.randn(args.batch, 17, 3)
    chunk_targets = 0.3 * torch.randn(chunks, args.chunk, 17, 3)
    groups = chunk_groups(singles, chunks, args.chunk)

    def baseline() -> torch.Tensor:
        return mpjpe(model(all_inputs).reshape(all_targets.shape), all_targets)

    def joint_aware(loss_fn: JointAwareLoss) -> torch.Tensor:
        position, constraints, _ = mixed_loss(
            loss_fn,
            model(mixed_inputs, groups=groups).reshape(-1, 17, 3),
            single_targets,
            chunk_targets,
            chunk_mpjpe=False,
        )
        return position + constraints

    variants = {
        "baseline (MPJPE, single windows)": baseline,
        "joint-aware, default weights": lambda: joint_aware(JointAwareLoss(LossWeights(), log_all=False)),
        "joint-aware, every term on": lambda: joint_aware(JointAwareLoss(ALL_TERMS, log_all=False)),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}

    def step(loss) -> float:
        start = time.perf_counter()
        total = loss()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return time.perf_counter() - start

    for loss in variants.values():  # warm-up
        step(loss)
    for _ in range(args.steps):
        for name, loss in variants.items():
            times[name].append(step(loss))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; model 27 frames, {args.channels} channels; "
        f"{args.batch} target frames per step ({singles} single windows + {chunks} chunks x {args.chunk} frames)"
    )
    base = statistics.median(times["baseline (MPJPE, single windows)"])
    for name, runs in times.items():
        ratio = statistics.median(runs) / base
        print(f"median step, {name:34s} {1000 * statistics.median(runs):7.2f} ms  ratio {ratio:.3f}")
    print("target: joint-aware / baseline <= 1.10")


if __name__ == "__main__":
    main()
