"""First-principles reference of the joint-aware loss terms, for tests: written from their
definitions (module docstring of jointpose.losses) with plain indexing and arccos, in the
caller's dtype. Nothing comes from the library: each test types out its skeleton's tables
(:class:`Tables`) from the documented joint order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tables:
    """A skeleton as the reference needs it, every joint by index.

    Args:
        parents: parent of each joint (root -1).
        twins: (left, right) bones by end joint.
        proportions: (a, b) bones by end joint, compared as a / (a + b).
        triples: angle name -> (parent-side, vertex, child-side) joints.
        limits: angle name -> (low, high) range of motion, degrees.
    """

    parents: tuple[int, ...]
    twins: tuple[tuple[int, int], ...]
    proportions: tuple[tuple[int, int], ...]
    triples: dict[str, tuple[int, int, int]]
    limits: dict[str, tuple[float, float]]


def lengths(p: torch.Tensor, t: Tables) -> dict[int, torch.Tensor]:
    """{end joint: length} of every bone."""
    return {j: torch.sqrt(((p[..., j, :] - p[..., t.parents[j], :]) ** 2).sum(-1)) for j in range(1, len(t.parents))}


def angles(p: torch.Tensor, t: Tables) -> dict[str, torch.Tensor]:
    """{name: angle at the middle joint (rad)}."""
    out = {}
    for name, (a, v, b) in t.triples.items():
        u, w = p[..., a, :] - p[..., v, :], p[..., b, :] - p[..., v, :]
        out[name] = torch.arccos((u * w).sum(-1) / torch.sqrt((u * u).sum(-1) * (w * w).sum(-1)))
    return out


def huber(x: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.where(x.abs() < beta, 0.5 * x * x / beta, x.abs() - 0.5 * beta)


def outside(angle: dict[str, torch.Tensor], t: Tables) -> dict[str, torch.Tensor]:
    """{name: radians outside the range of motion (0 inside)}."""
    return {
        n: torch.relu(math.radians(t.limits[n][0]) - angle[n]) + torch.relu(angle[n] - math.radians(t.limits[n][1]))
        for n in t.triples
    }


def terms(pred: torch.Tensor, target: torch.Tensor, t: Tables) -> dict[str, torch.Tensor]:
    """Every term of jointpose.losses.TERMS from its definition, on (batch, frames, J, 3) poses."""
    lp, lt = lengths(pred, t), lengths(target, t)
    ap, at = angles(pred, t), angles(target, t)
    mean = lambda values: torch.stack(values).mean()  # noqa: E731 (mean over equal-shaped parts)
    share = lambda lengths, a, b: lengths[a] / (lengths[a] + lengths[b] + 1e-6)  # noqa: E731

    def steps(x, order):
        for _ in range(order):
            x = x[:, 1:] - x[:, :-1]
        return x

    def position_diff(order):
        d = steps(pred, order) - steps(target, order)
        return (torch.sqrt((d * d).sum(-1) + 1e-6) - 1e-3).mean()

    def angle_diff(order):
        return mean([huber(steps(ap[n], order) - steps(at[n], order), 1e-3).mean() for n in t.triples])

    out = {"mpjpe": torch.sqrt(((pred - target) ** 2).sum(-1)).mean()}
    out["sym"] = mean([huber(lp[left] - lp[right], 1e-3) for left, right in t.twins]).mean() * 1.0
    variance = mean([((lp[j] - lp[j].mean(1, keepdim=True)) ** 2).mean(1) for j in lp]).mean()
    proportion = mean([huber(share(lp, a, b) - share(lt, a, b), 1e-3) for a, b in t.proportions])
    out["bone"] = variance + proportion + mean([huber(lp[j] - lt[j], 1e-3) for j in lp])
    out["angle"] = mean([huber(ap[n] - at[n], 1e-3) for n in t.triples])
    out["rom"] = mean([huber(x, 0.1) for x in outside(ap, t).values()])
    out["vel"], out["acc"] = position_diff(1), position_diff(2)
    out["ang_vel"], out["ang_acc"] = angle_diff(1), angle_diff(2)
    out["stretch"] = mean([huber(lp[j] / (lp[j].mean(1, keepdim=True) + 1e-6) - 1, 1e-3) for j in lp]).mean()
    return out
