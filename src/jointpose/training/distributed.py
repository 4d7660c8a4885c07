"""Process context for training: one process, or many under ``torchrun`` (DDP).

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :meth:`DistContext.from_env`
then joins the process group (NCCL on GPUs, Gloo on CPU) and picks this process's device.
Everything else in training asks the context: whether it is rank 0 (logging, checkpoints),
how to shard batches, how to reduce metrics and gather RNG states.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from jointpose.errors import JointposeError
from jointpose.model.loading import resolve_device

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class DistContext:
    """Rank, world size and device of this training process."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @classmethod
    def single(cls, device: str = "auto") -> DistContext:
        """One process on ``device``: no process group."""
        return cls(0, 1, 0, resolve_device(device))

    @classmethod
    def from_env(cls, device: str = "auto") -> DistContext:
        """Join the process group when launched by ``torchrun``; a single process otherwise."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls.single(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        chosen = resolve_device(device)
        if chosen.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise JointposeError(
                    f"torchrun started local rank {local_rank} but this machine has {torch.cuda.device_count()} CUDA "
                    f"device(s): start at most that many processes per node (--nproc_per_node), or train on the CPU "
                    f"(--device cpu)"
                )
            chosen = torch.device("cuda", local_rank)
            torch.cuda.set_device(chosen)
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
        return cls(rank, world_size, local_rank, chosen)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (nothing with one process)."""
        if self.distributed:
            torch_dist.barrier()

    @contextlib.contextmanager
    def autocast(self, precision: str) -> Iterator[None]:
        """Mixed-precision autocast for ``bf16``/``fp16``; a no-op for ``fp32``."""
        if precision not in PRECISIONS:
            raise JointposeError(
                "{0} must be one of {choices}, got '{value}'",
                fields=("precision",),
                choices=", ".join(PRECISIONS),
                value=precision,
            )
        dtype = PRECISIONS[precision]
        if dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def gather_rng_states(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Every rank's RNG state, in rank order (collective: call on all ranks)."""
        if not self.distributed:
            return [state]
        states: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(states, state)
        return states

    def close(self) -> None:
        """Leave the process group, if one was joined."""
        if self.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def global_mean(value: torch.Tensor, local_count: int, dist: DistContext) -> float:
    """Mean over every rank of a per-rank mean ``value`` taken over ``local_count`` items."""
    if not dist.distributed:
        return float(value)
    pair = torch.tensor([float(value) * local_count, float(local_count)], dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(pair)
    return float(pair[0] / pair[1])


def reduce_sums(sums: dict[str, torch.Tensor], dist: DistContext) -> dict[str, torch.Tensor]:
    """Sum each value over all ranks (keys must match across ranks)."""
    if not dist.distributed:
        return dict(sums)
    names = sorted(sums)
    stacked = torch.stack([sums[n].double() for n in names]).to(dist.device)
    torch_dist.all_reduce(stacked)
    return dict(zip(names, stacked.cpu()))


def _summed(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` summed over every rank (all_reduce works in place)."""
    total = x.clone(memory_format=torch.contiguous_format)
    torch_dist.all_reduce(total)
    return total


class _SumOverRanks(torch.autograd.Function):
    """Sum over ranks whose backward sums the ranks' gradients: each rank's input reaches
    every rank's loss through the sum."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return _summed(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _summed(grad)


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over every rank, differentiable (collective: call on all ranks)."""
    return _SumOverRanks.apply(x)


class AllReduceBatchNorm1d(nn.BatchNorm1d):
    """Batch norm whose training statistics cover every process's batch, for CPU (Gloo).

    PyTorch's SyncBatchNorm runs on GPUs only. This computes the per-channel sum, sum of
    squares and count locally, sums them over ranks with :func:`sum_over_ranks`, and
    normalises with the global mean and variance, so gradients flow through the statistics
    as in SyncBatchNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not torch_dist.is_initialized():
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        channels = x.shape[1]
        # Two passes in float64, as accurate as the single-process batch norm.
        xd = x.double()
        count = torch.full((1,), x.numel() / channels, dtype=torch.float64, device=x.device)
        totals = sum_over_ranks(torch.cat([xd.sum(dims), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        shape = [1, channels] + [1] * (x.dim() - 2)
        var = sum_over_ranks(((xd - mean.view(shape)) ** 2).sum(dims)) / n
        with torch.no_grad():
            momentum = self.momentum if self.momentum is not None else 0.1
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
            self.running_var.lerp_((var.detach() * n / (n - 1).clamp_min(1)).to(self.running_var.dtype), momentum)
            self.num_batches_tracked.add_(1)
        scale = (self.weight / torch.sqrt(var + self.eps)).to(x.dtype)
        return (x - mean.to(x.dtype).view(shape)) * scale.view(shape) + self.bias.view(shape)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """SyncBatchNorm on GPUs; :class:`AllReduceBatchNorm1d` on CPU. Parameters and buffers are shared."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm1d) and not isinstance(child, AllReduceBatchNorm1d):
            synced = AllReduceBatchNorm1d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            setattr(module, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return module


def wrap_model(model: nn.Module, dist: DistContext, *, sync_bn: bool = False, compile: bool = False) -> nn.Module:
    """The module training calls: optionally synchronised batch norm, DDP across ranks, ``torch.compile``.

    Parameters stay shared with ``model``, so its state dict and optimiser see the updates.
    """
    wrapped = model
    if dist.distributed:
        if sync_bn:
            wrapped = convert_sync_batchnorm(wrapped, dist.device)
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=device_ids)
    if compile:
        wrapped = torch.compile(wrapped)
    return wrapped
