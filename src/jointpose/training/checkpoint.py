"""Checkpoints: atomic writes, safe reads (``torch.load(weights_only=True)``), RNG states.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so it
loads with ``weights_only=True``. It is written to a temporary file in the same folder,
fsynced, then renamed over the target (:func:`jointpose.safeio.atomic_write`): a crash at
any moment leaves either the old or the new file complete, never a torn one.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jointpose.errors import JointposeError
from jointpose.model.loading import LATEST_FILE
from jointpose.safeio import atomic_write

EVALUATION_FILE = "evaluation.json"  # the final evaluation, in `jointpose evaluate --json`'s format
# The files a training run writes in its checkpoint folder (and replaces or prunes there).
EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")
RUN_FILES = re.compile(
    rf"{EPOCH_FILE.pattern}|{re.escape(LATEST_FILE)}|log\.csv|steps\.csv|learning_curve\.png|{re.escape(EVALUATION_FILE)}"
)


def atomic_save(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (:func:`jointpose.safeio.atomic_write`)."""
    with atomic_write(path) as handle:
        torch.save(obj, handle)
    return Path(path)


def run_files(folder: str | Path) -> list[Path]:
    """The files of :data:`RUN_FILES` in ``folder`` (none where it does not exist), refused where
    one is not a plain file (a folder, a link, a FIFO: the run replaces its own files, and
    writing through a link would replace a file elsewhere) or the folder cannot be listed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    try:
        found = sorted(path for path in folder.iterdir() if RUN_FILES.fullmatch(path.name))
    except OSError as exc:
        raise JointposeError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    for path in found:
        if path.is_symlink() or not path.is_file():
            raise JointposeError(
                f"{path}: is not a plain file, and a training run writes a file by that name; move it or "
                "choose another folder"
            )
    return found


def epoch_checkpoints(folder: str | Path) -> dict[int, Path]:
    """``{epoch: its epoch_NNN.pt file}`` in ``folder``, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("epoch_*.pt") if (m := EPOCH_FILE.fullmatch(p.name))]
    return dict(sorted(found))


def prune_epochs(folder: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` epoch checkpoints (0 keeps all)."""
    if keep_last > 0:
        for old in list(epoch_checkpoints(folder).values())[:-keep_last]:
            old.unlink(missing_ok=True)


def run_environment(device: torch.device) -> dict[str, Any]:
    """What reproducing a run bit for bit needs beyond its flags: torch's version, the CPU
    threads it computes with and the device type (``device``: the run's)."""
    return {"torch": str(torch.__version__), "threads": torch.get_num_threads(), "device": device.type}


def rng_state() -> dict[str, Any]:
    """Every RNG state that training touches: torch (CPU and CUDA), numpy, Python."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "python": _plain(random.getstate()),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (its tensors may have been loaded onto any device)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        # As many GPUs as this machine has (a run resumed on fewer restores the first ones).
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
