"""Inference speed on this machine, against what its CPU can do.

1. Full-sequence inference of 243-frame models (1024 and 2048 channels) on a 10,000-frame
   sequence: frames/s, and the share of the CPU's peak it reaches: peak = fp32 4096x4096
   matmul FLOP/s measured in this run with the same thread count; work per output frame
   = 2 x the convolutions' multiply-adds per output frame.
2. Streaming with the 243-frame 1024-channel causal model: frames/s and latency per
   frame, against re-running the whole receptive field for every new frame, and the floor
   memory bandwidth puts under it (each step reads every weight once); the same with
   bf16 and int8 weights, each with its mean deviation from fp32 in millimetres.
3. Reduced precision (bf16 autocast) where it is faster: speed and mean deviation from
   fp32 in millimetres.

With ``--held-out DIR`` (a dataset built by scripts/train_pretrained.py, e.g.
runs/pretrained/data) it also streams the bundled causal model over the held-out subject
S6 at each precision and prints P1 and the deviation from fp32 on real motion.

    python benchmarks/inference_speed.py [--frames 10000] [--repeats 3] [--held-out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np
import torch

from jointpose.inference.streaming import StreamingLifter
from jointpose.model.temporal import FusedTemporalModel, TemporalModel


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
    parser.add_argument("--streaming-only", action="store_true", help="skip the full-sequence part")
    parser.add_argument("--held-out", help="dataset directory holding the held-out subject S6")
    args = parser.parse_args()
    if args.held_out:
        held_out_precision(args.held_out)
    torch.manual_seed(0)
    peak = peak_flops(args.repeats)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU vector instructions: {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"peak: fp32 4096x4096 matmul {peak / 1e9:.1f} GFLOP/s")

    print("\nfull-sequence inference, 243-frame models, sequence of", args.frames, "frames")
    for channels in () if args.streaming_only else (1024, 2048):
        model = trained_like(TemporalModel((3, 3, 3, 3, 3), channels=channels))
        fused = FusedTemporalModel(model)
        x = torch.randn(1, args.frames + model.receptive_field() - 1, 17, 2)
        with torch.no_grad():
            seconds = timed(partial(fused, x), args.repeats)
            plain = timed(partial(model, x), args.repeats)
            reference = model(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16_seconds = timed(partial(fused, x), args.repeats)
                bf16 = fused(x).float()
        work = 2 * macs_per_frame(model)
        fps = args.frames / seconds
        deviation = 1000 * torch.linalg.vector_norm(bf16 - reference, dim=-1).mean()
        print(
            f"  {channels:5d} channels: {fps:9.0f} frames/s fused fp32 ({args.frames / plain:7.0f} unfused), "
            f"{work / 1e6:.1f} MFLOP/frame -> {fps * work / 1e9:6.1f} GFLOP/s = {fps * work / peak:.2f} of peak (target >= 0.75)"
        )
        print(
            f"  {'':5s}           {args.frames / bf16_seconds:9.0f} frames/s bf16 autocast "
            f"(x{seconds / bf16_seconds:.2f}), mean deviation from fp32 {deviation:.3f} mm (random weights, outputs ~1 m)"
        )

    print("\nstreaming, 243-frame 1024-channel causal model")
    causal = trained_like(TemporalModel((3, 3, 3, 3, 3), channels=1024, causal=True))
    keypoints = np.random.default_rng(0).uniform(-1, 1, (args.stream_frames + 1, 17, 2))
    window = torch.randn(1, causal.receptive_field(), 17, 2)
    fused = FusedTemporalModel(causal)
    streams = {precision: StreamingLifter(causal, precision=precision) for precision in ("fp32", "bf16", "int8")}
    poses = {precision: [stream.push(keypoints[0], normalized=True)] for precision, stream in streams.items()}
    latencies = {precision: [] for precision in streams}
    reruns, reruns_bf16 = [], []
    # Interleaved rounds, so a slow spell of a shared machine hits streaming and re-running alike.
    for frames in np.array_split(keypoints[1:], 5):
        with torch.no_grad():
            reruns.append(timed(lambda: fused(window), args.repeats))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                reruns_bf16.append(timed(lambda: fused(window), args.repeats))
        for precision, stream in streams.items():
            for frame in frames:
                start = time.perf_counter()
                poses[precision].append(stream.push(frame, normalized=True))
                latencies[precision].append(time.perf_counter() - start)
    per_frame = statistics.median(latencies["fp32"])
    rerun, rerun_bf16 = statistics.median(reruns), statistics.median(reruns_bf16)
    print(
        f"  streaming: {1 / per_frame:7.1f} frames/s, latency per frame median {1000 * per_frame:.2f} ms, "
        f"p95 {1000 * np.percentile(latencies['fp32'], 95):.2f} ms (target >= 100 frames/s)"
    )
    for precision in ("bf16", "int8"):
        seconds = statistics.median(latencies[precision])
        deviation = 1000 * np.linalg.norm(np.array(poses[precision]) - np.array(poses["fp32"]), axis=-1).mean()
        print(
            f"  streaming {precision} weights: {1 / seconds:7.1f} frames/s, latency per frame median "
            f"{1000 * seconds:.2f} ms, mean deviation from fp32 {deviation:.3f} mm "
            f"-> {rerun / seconds:.1f}x cheaper per frame than the fp32 re-run, {rerun_bf16 / seconds:.1f}x than bf16"
        )
    print(
        f"  re-running the {causal.receptive_field()}-frame receptive field per frame (fused): {1000 * rerun:.2f} ms fp32, "
        f"{1000 * rerun_bf16:.2f} ms bf16 autocast -> fp32 streaming is {rerun / per_frame:.1f}x cheaper per frame "
        f"in time (target >= 30x)"
    )
    rerun_macs = sum(
        c.in_channels * c.out_channels * c.kernel_size[0] * n
        for c, n in zip([causal.expand_conv, *causal.layers_conv, causal.shrink], _outputs_per_layer(causal))
    )
    print(
        f"  multiply-adds per frame: streaming {macs_per_frame(causal) / 1e6:.1f} M, "
        f"re-run {rerun_macs / 1e6:.0f} M ({rerun_macs / macs_per_frame(causal):.0f}x)"
    )
    # One streaming step multiplies each weight once, so it must read every weight from
    # memory once per frame: a floor on its time however the arithmetic is done.
    weight_bytes = 4 * sum(p.numel() for p in causal.parameters())
    bandwidth = memory_bandwidth(args.repeats)
    floor = weight_bytes / bandwidth
    print(
        f"  memory bound: {weight_bytes / 1e6:.0f} MB of fp32 weights per frame at {bandwidth / 1e9:.1f} GB/s "
        f"measured = {1000 * floor:.2f} ms floor -> at most {rerun / floor:.1f}x cheaper than re-running in fp32 "
        f"({rerun / (floor / 2):.1f}x with bf16, {rerun / (floor / 4):.1f}x with int8 weights)"
    )


def held_out_precision(directory: str) -> None:
    """P1 of the bundled causal model streamed over S6, and each precision's deviation from fp32."""
    from jointpose.data.h36m import load_dataset
    from jointpose.inference.lifter import Lifter

    lifter = Lifter.from_pretrained("causal", device="cpu")
    sequences = load_dataset(directory, "noisy", ["S6"], normalization=lifter.normalization).sequences
    print(f"bundled causal model streamed over S6 ({sum(len(s.keypoints) for s in sequences)} frames)")
    truth = np.concatenate([s.poses_3d for s in sequences])
    fp32 = None
    for precision in ("fp32", "bf16", "int8"):
        poses = []
        for sequence in sequences:
            stream = StreamingLifter(lifter, precision=precision)
            poses.append(np.stack([stream.push(frame, normalized=True) for frame in sequence.keypoints]))
        poses = np.concatenate(poses)
        fp32 = poses if fp32 is None else fp32
        print(
            f"  {precision}: P1 {1000 * np.linalg.norm(poses - truth, axis=-1).mean():.2f} mm, "
            f"mean deviation from fp32 {1000 * np.linalg.norm(poses - fp32, axis=-1).mean():.3f} mm"
        )


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
