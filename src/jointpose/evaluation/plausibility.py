"""Plausibility metrics of predicted motion: does it look like one rigid human body?

* ``bone_std``: standard deviation of each bone's length over a sequence, averaged over
  bones (metres; reported in mm). A real skeleton's bones do not change length.
* ``lr_gap``: mean absolute difference between the lengths of left and right limb
  segments (hip, thigh, shin, shoulder, upper arm, forearm), per frame (metres; mm).
* ``rom_pct``: share of frames in which any joint angle leaves its anatomical range of
  motion (:mod:`jointpose.geometry.anatomy`), reported in percent.

Each function returns per-frame values so sequences pool frame-weighted like the pose
metrics; ``bone_std`` is a per-sequence value repeated for each frame.
"""

from __future__ import annotations

import torch

from jointpose.geometry.anatomy import bone_lengths, rom_violation, tables


def bone_length_std(poses: torch.Tensor) -> torch.Tensor:
    """(frames, J, 3) metres -> (frames,): mean over bones of the length std over the sequence, metres."""
    lengths = bone_lengths(poses.double())
    value = lengths.std(dim=0, unbiased=False).mean() if len(poses) > 1 else lengths.new_zeros(())
    return value.expand(len(poses))


def left_right_gap(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> (...): mean |left - right| segment length of the skeleton's symmetric pairs, metres."""
    lengths, t = bone_lengths(poses.double()), tables(poses.shape[-2])
    return (lengths[..., t.left_bones] - lengths[..., t.right_bones]).abs().mean(dim=-1)


def outside_range_of_motion(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) -> (...): 1.0 where any joint angle is outside its range, else 0.0."""
    return (rom_violation(poses.double()) > 0).any(dim=-1).double()


def plausibility_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame plausibility values of a predicted sequence (the target is not used)."""
    return {
        "bone_std": bone_length_std(pred),
        "lr_gap": left_right_gap(pred),
        "rom_pct": outside_range_of_motion(pred),
    }
