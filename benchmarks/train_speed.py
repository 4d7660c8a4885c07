"""Training speed and accuracy on a Human3.6M-format directory, for side-by-side comparisons.

Takes the flags of ``jointpose train`` (``--checkpoint`` defaults to a temporary folder)
and prints the seconds per epoch spent training (no evaluation, no checkpointing), the
frames per second, and the final evaluation table.

    python benchmarks/train_speed.py --data-dir DIR -k noisy -arc 3,3,3 -ch 256 -e 20 \
        -str S1,S5,S6,S7 -ste S9,S11 --no-constraints
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

import torch

from jointpose.errors import JointposeError
from jointpose.training.config import add_arguments, from_arguments
from jointpose.training.trainer import Trainer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            trainer = Trainer(from_arguments(args, checkpoint_dir=args.checkpoint or tmp, progress=False))
            summary = trainer.fit()
        except JointposeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    seconds = [row["seconds"] for row in trainer.history]
    frames = trainer.windows.singles.entries(trainer.config.augment)  # target frames per epoch
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, device {trainer.device}")
    print(f"training frames per epoch: {frames}")
    print(
        f"seconds per epoch (training only): mean {statistics.mean(seconds):.2f}, "
        f"median {statistics.median(seconds):.2f}, total {sum(seconds):.1f} over {len(seconds)} epochs"
    )
    print(f"training throughput: {frames / statistics.median(seconds):,.0f} frames/s")
    print(
        f"final P1 {summary['average']['p1']:.2f} mm, P2 {summary['average']['p2']:.2f} mm, "
        f"P3 {summary['average']['p3']:.2f} mm, MPJVE {summary['average']['mpjve']:.2f} mm"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
