"""Cost of the joint-aware loss in a training step (27-frame, 256-channel model, CPU).

Times full optimiser steps (chunks of consecutive targets, one receptive-field window per
target through the strided model, loss, backward, Adam) on the same batches with the full
JointAwareLoss and with plain MPJPE, interleaved so that both see the same machine state,
and prints the ratio. Target: at most 1.10. Every frame here is in a chunk and every
constraint term is on (or, with ``--default-weights``, the default ones);
training puts only ``--chunk-share`` of the frames in chunks, so its overhead is lower.

    python benchmarks/loss_overhead.py [--steps 40] [--batch 1024] [--chunk 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from jointpose.losses import JointAwareLoss, LossWeights
from jointpose.model import StridedTemporalModel
from jointpose.batching import receptive_windows


ALL_TERMS = LossWeights(sym=0.05, bone=0.05, angle=0.01, rom=0.05)  # every term with a weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=1024, help="target frames per step")
    parser.add_argument("--chunk", type=int, default=8, help="consecutive target frames per sample")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--default-weights", action="store_true",
                        help="the default weights (terms at weight 0 skipped) instead of every term on")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = StridedTemporalModel((3, 3, 3), channels=args.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    windows = args.batch // args.chunk
    inputs = torch.randn(windows, model.receptive_field() + args.chunk - 1, 17, 2)
    targets = torch.randn(windows, args.chunk, 17, 3) * 0.3
    losses = {"mpjpe only": JointAwareLoss(LossWeights.none(), log_all=False),
              "joint-aware": JointAwareLoss(LossWeights() if args.default_weights else ALL_TERMS, log_all=False)}
    times: dict[str, list[float]] = {name: [] for name in losses}

    def step(loss_fn: JointAwareLoss) -> float:
        start = time.perf_counter()
        pred = model(receptive_windows(inputs, model.receptive_field())).reshape(targets.shape)
        total, _ = loss_fn(pred, targets)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return time.perf_counter() - start

    for loss_fn in losses.values():  # warm-up
        step(loss_fn)
    for _ in range(args.steps):
        for name, loss_fn in losses.items():
            times[name].append(step(loss_fn))
    base = statistics.median(times["mpjpe only"])
    full = statistics.median(times["joint-aware"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model 27 frames, {args.channels} channels; "
          f"{windows} windows x {args.chunk} frames = {windows * args.chunk} target frames per step")
    print(f"median step, MPJPE only:        {1000 * base:7.2f} ms")
    print(f"median step, joint-aware loss:  {1000 * full:7.2f} ms")
    print(f"ratio (with constraints / without): {full / base:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
