"""Safe reading, atomic writing, and the resource limits every reader enforces.

- :mod:`~jointpose.safeio.limits`: the limits (:data:`LIMITS`, each overridden by
  ``JOINTPOSE_MAX_<NAME>``; docs/limits.md) and the checks of numbers, frame rates and
  arrays that name what they refuse.
- :mod:`~jointpose.safeio.pickles`: object arrays unpickled without running code, and a
  training checkpoint's pickle checked before torch loads it.
- :mod:`~jointpose.safeio.reading`: ``.npz``, ``.npy`` and text files read with their sizes
  checked before anything is allocated.
- :mod:`~jointpose.safeio.writing`: outputs written to a temporary file and renamed into
  place, and output paths checked before any work.
"""

from jointpose.safeio.limits import (
    LIMITS,
    check_bounded,
    check_finite,
    check_fps,
    check_limit,
    check_path,
    check_resample,
    check_switch,
    float_array,
    frame_ranges,
    is_finite_number,
    is_real_number,
    limit,
    numeric_array,
)
from jointpose.safeio.pickles import (
    RestrictedUnpickler,
    check_checkpoint_pickle,
    check_pickle,
    pickle_budget,
    restricted_loads,
)
from jointpose.safeio.reading import load_npy, load_npz, npz_keys, read_text_file, stored_fps
from jointpose.safeio.writing import (
    atomic_folder,
    atomic_path,
    atomic_write,
    check_output_folder,
    check_output_path,
    check_outputs,
    file_path,
    fsync_dir,
    interrupt,
    reset_interrupts,
    signals_deferred,
)

__all__ = [
    "LIMITS",
    "RestrictedUnpickler",
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "check_bounded",
    "check_checkpoint_pickle",
    "check_finite",
    "check_fps",
    "check_limit",
    "check_path",
    "check_output_folder",
    "check_output_path",
    "check_outputs",
    "check_pickle",
    "check_resample",
    "check_switch",
    "file_path",
    "float_array",
    "frame_ranges",
    "fsync_dir",
    "interrupt",
    "reset_interrupts",
    "signals_deferred",
    "is_finite_number",
    "is_real_number",
    "limit",
    "load_npy",
    "load_npz",
    "npz_keys",
    "numeric_array",
    "pickle_budget",
    "read_text_file",
    "restricted_loads",
    "stored_fps",
]
