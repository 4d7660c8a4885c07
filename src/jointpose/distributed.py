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

from .errors import JointposeError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise JointposeError(f"--device: unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise JointposeError(f"--device {name}: CUDA is not available on this machine")
    return device


@dataclass
class DistContext:
    """Rank, world size and device of this training process."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @classmethod
    def single(cls, device: str = "auto") -> DistContext:
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
            chosen = torch.device("cuda", local_rank)
            torch.cuda.set_device(chosen)
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
        return cls(rank, world_size, local_rank, chosen)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch_dist.barrier()

    @contextlib.contextmanager
    def autocast(self, precision: str) -> Iterator[None]:
        """Mixed-precision autocast for ``bf16``/``fp16``; a no-op for ``fp32``."""
        if precision not in PRECISIONS:
            raise JointposeError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
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
        if self.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def reduce_sums(sums: dict[str, torch.Tensor], dist: DistContext) -> dict[str, torch.Tensor]:
    """Sum each value over all ranks (keys must match across ranks)."""
    if not dist.distributed:
        return dict(sums)
    names = sorted(sums)
    stacked = torch.stack([sums[n].double() for n in names]).to(dist.device)
    torch_dist.all_reduce(stacked)
    return dict(zip(names, stacked.cpu()))


def wrap_model(model: nn.Module, dist: DistContext, *, sync_bn: bool = False, compile: bool = False) -> nn.Module:
    """The module training calls: optionally SyncBatchNorm, DDP across ranks, ``torch.compile``.

    Parameters stay shared with ``model``, so its state dict and optimiser see the updates.
    """
    wrapped = model
    if dist.distributed:
        if sync_bn:
            wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=device_ids)
    if compile:
        wrapped = torch.compile(wrapped)
    return wrapped
