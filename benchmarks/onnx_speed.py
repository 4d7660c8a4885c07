"""onnxruntime against torch on this CPU, for the 243-frame 1024-channel model (weights
random, batch-norm statistics set as a trained model's; speed does not depend on them).

1. Full sequence: a ``--frames``-frame sequence (default 10,000) through the network alone,
   no flip: torch's inference form (batch norm folded, what ``Lifter`` runs) and the
   onnxruntime session of ``jointpose export --onnx``; frames/s.
2. One streamed frame: ``StreamingLifter.push`` on the causal model in torch (fp32) and on
   its ``--streaming`` ONNX export; frames/s and milliseconds per frame.

Both print from one run, with each pair's largest difference in millimetres.

    python benchmarks/onnx_speed.py [--frames 10000] [--repeats 3] [--stream-frames 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from inference_speed import timed  # benchmarks/ is on sys.path when run as a script

from jointpose.inference.lifter import Lifter
from jointpose.inference.onnx import OPSET, OnnxModel, export_onnx
from jointpose.inference.streaming import StreamingLifter
from jointpose.model.loading import LoadedModel
from jointpose.model.temporal import FusedTemporalModel, TemporalModel


def trained_like(causal: bool) -> TemporalModel:
    """The 243-frame 1024-channel model with batch-norm statistics away from the identity."""
    torch.manual_seed(0)
    model = TemporalModel((3, 3, 3, 3, 3), channels=1024, causal=causal)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.uniform_(-0.5, 0.5)
    return model.eval()


def full_sequence(folder: Path, frames: int, repeats: int) -> None:
    model = trained_like(causal=False)
    runner = OnnxModel(export_onnx(LoadedModel(model), folder / "full.onnx"))
    fused = FusedTemporalModel(model)
    x = torch.randn(1, frames + model.receptive_field() - 1, 17, 2)
    torch_s = timed(lambda: fused(x), repeats)
    onnx_s = timed(lambda: runner(x), repeats)
    gap = (fused(x) - runner(x)).abs().max().item() * 1000
    print(f"full sequence, {frames} frames, 243 frames x 1024 channels (no flip):")
    print(f"  torch        {frames / torch_s:10.0f} frames/s")
    print(f"  onnxruntime  {frames / onnx_s:10.0f} frames/s   (x{torch_s / onnx_s:.2f}; max difference {gap:.2e} mm)")


def streaming(folder: Path, count: int) -> None:
    model = trained_like(causal=True)
    step_path = export_onnx(LoadedModel(model), folder / "step.onnx", streaming=True)
    kp = np.random.default_rng(0).uniform(-0.5, 0.5, (count + 1, 17, 2))
    results = {}
    for name, lifter in [("torch", Lifter(model, flip_test=False)), ("onnxruntime", Lifter.load(step_path))]:
        stream = StreamingLifter(lifter, flip_test=False)
        stream.push(kp[0], normalized=True)  # the first push fills the caches (receptive_field steps)
        start = time.perf_counter()
        poses = [stream.push(frame, normalized=True) for frame in kp[1:]]
        results[name] = (count / (time.perf_counter() - start), np.stack(poses))
    gap = np.abs(results["torch"][1] - results["onnxruntime"][1]).max() * 1000
    print(f"one streamed frame, causal 243 frames x 1024 channels ({count} frames, fp32, no flip):")
    for name, (rate, _) in results.items():
        print(f"  {name:<12} {rate:10.0f} frames/s  {1000 / rate:7.3f} ms/frame")
    print(f"  max difference {gap:.2e} mm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-frames", type=int, default=300)
    args = parser.parse_args()
    import onnxruntime

    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
        f"ONNX opset {OPSET}"
    )
    with tempfile.TemporaryDirectory() as folder:
        full_sequence(Path(folder), args.frames, args.repeats)
        streaming(Path(folder), args.stream_frames)


if __name__ == "__main__":
    main()
