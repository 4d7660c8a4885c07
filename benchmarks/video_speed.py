"""Speed of ``jointpose video`` on this CPU for a 1080p clip: frames/s of each stage and of the whole run.

The clip: the four views of Pose2Sim's Demo_SinglePerson (1080x1920, 60 fps, ~100 frames each;
see .ci/run for where they come from) scaled to exactly 1080x1920 and joined into one video
with ffmpeg (imageio-ffmpeg's), ``--repeat`` times over. Printed, in one run:

* decoding alone (a pass that only decodes);
* detection: time inside MediaPipe BlazePose (model_complexity=1) per frame;
* lifting: the bundled offline model from 2D track to 3D poses at the video's rate
  (resampling, flip averaging, skeleton fit, trajectory), cold as in a real run;
* the whole run: ``lift_video`` wall time (decode, detect, repair, lift), and the lifting's share of it;
* rendering (optional, ``--render``), which is extra work on top of the run.

    python benchmarks/video_speed.py [--footage tests/.footage] [--repeat 2] [--render]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import torch

from jointpose.data.video import open_video
from jointpose.inference.lifter import Lifter
from jointpose.inference.video import lift_video
from jointpose.render import render_animation


def joined_clip(footage: Path, repeat: int, out: Path) -> Path:
    """The demo views scaled to 1080x1920 and concatenated ``repeat`` times, as H.264."""
    views = sorted(footage.glob("cam0[1-4].mp4")) * repeat
    if not views:
        raise SystemExit(f"no cam0N.mp4 in {footage}: see .ci/run for how to get the demo footage")
    inputs = [arg for view in views for arg in ("-i", str(view))]
    chains = "".join(f"[{i}:v]scale=1080:1920,setsar=1[v{i}];" for i in range(len(views)))
    joined = "".join(f"[v{i}]" for i in range(len(views))) + f"concat=n={len(views)}:v=1:a=0[out]"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            *inputs,
            "-filter_complex",
            chains + joined,
            "-map",
            "[out]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-r",
            "60",
            str(out),
        ],
        check=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / ".footage")
    parser.add_argument("--repeat", type=int, default=2, help="times the four views are joined (default 2)")
    parser.add_argument("--render", action="store_true", help="also time rendering the result over the video")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip_path = joined_clip(args.footage, args.repeat, Path(tmp) / "clip_1080p.mp4")
        clip = open_video(clip_path)
        start = time.perf_counter()
        frames = sum(1 for _ in clip.frames())
        decode = time.perf_counter() - start
        print(
            f"clip: {clip.width}x{clip.height}, {clip.fps:g} fps, {frames} frames; torch threads {torch.get_num_threads()}"
        )
        print(f"decoding alone     {frames / decode:8.1f} frames/s")

        lifter = Lifter.from_pretrained("video", device="cpu")
        start = time.perf_counter()
        result = lift_video(str(clip_path), lifter, progress=False)
        total = time.perf_counter() - start
        seconds = result.seconds
        print(
            f"detection          {frames / seconds['detect']:8.1f} frames/s  (BlazePose full, time inside the detector)"
        )
        print(f"lifting            {frames / seconds['lift']:8.1f} frames/s  (bundled video model, {lifter.fps:g} fps)")
        print(
            f"whole run          {frames / total:8.1f} frames/s  ({total:.1f} s: decode waits {seconds['decode']:.1f} s, "
            f"detect {seconds['detect']:.1f} s, lift {seconds['lift']:.2f} s)"
        )
        print(f"lifting's share of the run: {100 * seconds['lift'] / total:.1f}%")
        if args.render:
            start = time.perf_counter()
            render_animation(
                Path(tmp) / "render.mp4",
                result.keypoints.xy,
                {"3D": result.poses},
                image_size=clip.size,
                fps=clip.fps,
                background=result.clip,
                trajectory=result.trajectory,
                progress=False,
            )
            print(f"rendering          {frames / (time.perf_counter() - start):8.1f} frames/s  (extra, --render)")


if __name__ == "__main__":
    main()
