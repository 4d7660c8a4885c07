"""Training-step speed of fp32, bf16/fp16 autocast and torch.compile on this device.

Times optimiser steps of the strided training model (forward, joint-aware loss, backward,
Adam) on random chunks, reports target frames per second and the speed-up over fp32, and
the peak memory on CUDA. Use it on a GPU to fill the GPU table of docs/benchmarks.md for the 243-frame,
2048-channel model:

    python benchmarks/precision_speed.py --arc 3,3,3,3,3 --channels 2048 --batch 1024 [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch

from jointpose.data.batching import receptive_windows
from jointpose.losses import JointAwareLoss
from jointpose.model.loading import resolve_device
from jointpose.model.temporal import StridedTemporalModel
from jointpose.training.distributed import DistContext


def measure(args, precision: str, compile_model: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    device = resolve_device(args.device)
    dist = DistContext(0, 1, 0, device)
    model = StridedTemporalModel(tuple(int(w) for w in args.arc.split(",")), channels=args.channels).to(device)
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    loss_fn = JointAwareLoss()
    chunks = args.batch // args.chunk
    inputs = torch.randn(chunks, model.receptive_field() + args.chunk - 1, 17, 2, device=device)
    targets = 0.3 * torch.randn(chunks, args.chunk, 17, 3, device=device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def step() -> None:
        with dist.autocast(precision):
            pred = step_model(receptive_windows(inputs, model.receptive_field())).reshape(targets.shape)
        total, _ = loss_fn(pred.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            total.backward()
            optimizer.step()
        else:
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return args.batch / seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arc", default="3,3,3")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1024, help="target frames per step")
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    device = resolve_device(args.device)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads; model -arc {args.arc} "
        f"-ch {args.channels}; {args.batch} target frames per step in chunks of {args.chunk}"
    )
    base = None
    for compile_model in [False, True] if args.compile else [False]:
        for precision in precisions:
            fps, memory = measure(args, precision, compile_model)
            base = base or fps
            label = precision + (" + compile" if compile_model else "")
            print(f"  {label:16s} {fps:10.0f} target frames/s  x{fps / base:5.2f}  peak memory {memory:.2f} GiB")


if __name__ == "__main__":
    main()
