"""Inference speed on this machine, against what its CPU can do.

1. Full-sequence inference of 243-frame models (1024 and 2048 channels) on a 10,000-frame
   sequence: frames/s, and the share of the CPU's peak it reaches: peak = fp32 4096x4096
   matmul FLOP/s measured in this run with the same thread count; work per output frame
   = 2 x the convolutions' multiply-adds per output frame.
2. Streaming with the 243-frame 1024-channel causal model: frames/s and latency per
   frame, against re-running the whole receptive field for every new frame, and the floor
   memory bandwidth puts under it (each step reads every weight once).
3. Reduced precision (bf16 autocast) where it is faster: speed and mean deviation from
   fp32 in millimetres.

    python benchmarks/inference_speed.py [--frames 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from jointpose.model import FusedTemporalModel, TemporalModel
from jointpose.streaming import StreamingLifter


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs)


def peak_flops(repeats: int) -> float:
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    return 2 * 4096**3 / timed(lambda: a @ b, repeats)


def memory_bandwidth(repeats: int) -> float:
    """Bytes/s this process reads from main memory (sum over a 512 MB fp32 tensor)."""
    big = torch.ones(128 * 2**20)
    return big.numel() * 4 / timed(lambda: big.sum(), repeats)


def macs_per_frame(model: TemporalModel) -> int:
    """Multiply-adds of every convolution for one output frame of a long sequence."""
    convs = [model.expand_conv, *model.layers_conv, model.shrink]
    return sum(c.in_channels * c.out_channels * c.kernel_size[0] for c in convs)


def trained_like(model: TemporalModel) -> TemporalModel:
    """Give batch norm realistic statistics so the fused model is a fair stand-in."""
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.uniform_(-0.5, 0.5)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-frames", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(0)
    peak = peak_flops(args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"peak: fp32 4096x4096 matmul {peak / 1e9:.1f} GFLOP/s")

    print("\nfull-sequence inference, 243-frame models, sequence of", args.frames, "frames")
    for channels in (1024, 2048):
        model = trained_like(TemporalModel((3, 3, 3, 3, 3), channels=channels))
        fused = FusedTemporalModel(model)
        x = torch.randn(1, args.frames + model.receptive_field() - 1, 17, 2)
        with torch.no_grad():
            seconds = timed(lambda: fused(x), args.repeats)
            plain = timed(lambda: model(x), args.repeats)
            reference = model(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16_seconds = timed(lambda: fused(x), args.repeats)
                bf16 = fused(x).float()
        work = 2 * macs_per_frame(model)
        fps = args.frames / seconds
        deviation = 1000 * torch.linalg.vector_norm(bf16 - reference, dim=-1).mean()
        print(f"  {channels:5d} channels: {fps:9.0f} frames/s fused fp32 ({args.frames / plain:7.0f} unfused), "
              f"{work / 1e6:.1f} MFLOP/frame -> {fps * work / 1e9:6.1f} GFLOP/s = {fps * work / peak:.2f} of peak (target >= 0.75)")
        print(f"  {'':5s}           {args.frames / bf16_seconds:9.0f} frames/s bf16 autocast "
              f"(x{seconds / bf16_seconds:.2f}), mean deviation from fp32 {deviation:.3f} mm (random weights, outputs ~1 m)")

    print("\nstreaming, 243-frame 1024-channel causal model")
    causal = trained_like(TemporalModel((3, 3, 3, 3, 3), channels=1024, causal=True))
    keypoints = np.random.default_rng(0).uniform(-1, 1, (args.stream_frames + 1, 17, 2))
    latencies, poses = {}, {}
    for precision in ("fp32", "bf16"):
        stream = StreamingLifter(causal, precision=precision)
        poses[precision] = [stream.push(keypoints[0], normalized=True)]  # first frame also fills the caches
        latencies[precision] = []
        for frame in keypoints[1:]:
            start = time.perf_counter()
            poses[precision].append(stream.push(frame, normalized=True))
            latencies[precision].append(time.perf_counter() - start)
    per_frame = statistics.median(latencies["fp32"])
    window = torch.randn(1, causal.receptive_field(), 17, 2)
    fused = FusedTemporalModel(causal)
    with torch.no_grad():
        rerun = timed(lambda: fused(window), args.repeats * 5)
    print(f"  streaming: {1 / per_frame:7.1f} frames/s, latency per frame median {1000 * per_frame:.2f} ms, "
          f"p95 {1000 * np.percentile(latencies['fp32'], 95):.2f} ms (target >= 100 frames/s)")
    bf16_per_frame = statistics.median(latencies["bf16"])
    deviation = 1000 * np.linalg.norm(np.array(poses["bf16"]) - np.array(poses["fp32"]), axis=-1).mean()
    print(f"  streaming bf16 weights: {1 / bf16_per_frame:7.1f} frames/s, latency per frame median "
          f"{1000 * bf16_per_frame:.2f} ms, mean deviation from fp32 {deviation:.3f} mm")
    print(f"  re-running the {causal.receptive_field()}-frame receptive field per frame (fused): {1000 * rerun:.2f} ms "
          f"-> streaming is {rerun / per_frame:.1f}x cheaper per frame in time (target >= 30x)")
    rerun_macs = sum(c.in_channels * c.out_channels * c.kernel_size[0] * n for c, n in
                     zip([causal.expand_conv, *causal.layers_conv, causal.shrink], _outputs_per_layer(causal)))
    print(f"  multiply-adds per frame: streaming {macs_per_frame(causal) / 1e6:.1f} M, "
          f"re-run {rerun_macs / 1e6:.0f} M ({rerun_macs / macs_per_frame(causal):.0f}x)")
    # One streaming step multiplies each weight once, so it must read every weight from
    # memory once per frame: a floor on its time however the arithmetic is done.
    weight_bytes = 4 * sum(p.numel() for p in causal.parameters())
    bandwidth = memory_bandwidth(args.repeats)
    floor = weight_bytes / bandwidth
    print(f"  memory bound: {weight_bytes / 1e6:.0f} MB of fp32 weights per frame at {bandwidth / 1e9:.1f} GB/s "
          f"measured = {1000 * floor:.2f} ms floor -> at most {rerun / floor:.1f}x cheaper than re-running in fp32 "
          f"({rerun / (floor / 2):.1f}x with bf16 weights)")


def _outputs_per_layer(model: TemporalModel) -> list[int]:
    """Frames each convolution computes when the model runs on exactly one receptive field."""
    length, out = model.receptive_field(), []
    length -= 2 * model.pad[0]
    out.append(length)
    for pad in model.pad[1:]:
        length -= 2 * pad
        out.extend([length, length])
    out.append(length)
    return out


if __name__ == "__main__":
    main()
