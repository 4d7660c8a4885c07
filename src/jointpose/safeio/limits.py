"""The resource limits every reader enforces, and the checks of numbers and arrays that name
what they refuse.

Limits (:data:`LIMITS`) bound what a small hostile file can make jointpose allocate or
compute; each is overridden by the environment variable ``JOINTPOSE_MAX_<NAME>``
(docs/limits.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from jointpose.errors import JointposeError, brief, first_line

# name -> (default, what it bounds). Override with JOINTPOSE_MAX_<NAME> (an integer >= 1).
LIMITS: dict[str, tuple[int, str]] = {
    "npz_bytes": (2 * 2**30, "bytes of all arrays of one .npz or .npy file, decompressed"),
    "pickle_memo": (1_000_000, "memo index of a pickled object array (the unpickler allocates 16 bytes per index)"),
    "frames": (1_000_000, "frames in one keypoint, motion or dataset sequence"),
    "fill_gap": (300, "frames in a row without any detection that are filled by interpolation"),
    "resample": (100, "factor between two frame rates when resampling (either way)"),
    "fps": (1000, "frames per second of a dataset, a BVH file or an input (and 1 / it the fewest)"),
    "text_bytes": (2**30, "bytes of one text input: JSON keypoints, a BVH file, a rig mapping, index.csv"),
    "image_px": (100_000, "image width or height in pixels"),
    "video_pixels": (100_000_000, "pixels of one video frame (width x height; 3 bytes each when decoded)"),
    "bvh_joints": (10_000, "joints in one BVH hierarchy, End Sites included"),
    "parameters": (1_000_000_000, "parameters of a model to train (a 2048-channel 243-frame model has 67 million)"),
    "people": (100, "people per frame of a detector's keypoint file that are linked into tracks (the most confident)"),
    "track_parts": (1000, "stretches of a track lifted apart, each padded to the receptive field (Lifter.lift_track)"),
}


def limit(name: str) -> int:
    """The current value of limit ``name`` (:data:`LIMITS`): ``JOINTPOSE_MAX_<NAME>`` when set, else the default."""
    default, _ = LIMITS[name]
    variable = f"JOINTPOSE_MAX_{name.upper()}"
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise JointposeError(f"{variable} must be an integer >= 1, got {raw!r}") from None
    if value < 1:
        raise JointposeError(f"{variable} must be an integer >= 1, got {raw!r}")
    return value


def check_limit(name: str, value: float, what: str) -> None:
    """Refuse ``value`` above limit ``name``; the message names ``what`` (an argument's name,
    or a description) and how to raise the limit."""
    bound = limit(name)
    if not value <= bound:  # NaN too
        try:
            shown = f"{int(value)}" if value == int(value) and value < 1e15 else f"{float(value):.4g}"
        except (OverflowError, ValueError):  # inf or NaN, or an integer beyond any float
            digits = str(int(value)) if isinstance(value, (int, np.integer)) else ""
            shown = f"{digits[0]}.{digits[1:4]}e+{len(digits) - 1}" if digits else str(float(value))
        raise JointposeError(
            "{0}: {shown} exceeds the limit of {bound} (set JOINTPOSE_MAX_{env} to allow more)",
            fields=(what,),
            shown=shown,
            bound=bound,
            env=name.upper(),
        )


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite number (a Python int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except (TypeError, ValueError, OverflowError):
        return False


def is_real_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (numpy's too); a bool (JSON ``true``) is not one."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return number and is_finite_number(value)


def check_switch(value: Any, what: str) -> bool:
    """``value`` as a bool where it is one (Python's or numpy's); anything else is refused,
    naming ``what``: a string such as ``"no"`` would read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise JointposeError("{0} must be True or False, got {value}", fields=(what,), value=brief(value))
    return bool(value)


def float_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a floating-point numpy array in native byte order, laid out in C order
    (as torch reads arrays): one already is stays as it is, its dtype too; another float array
    is copied into that form; anything else goes through :func:`numeric_array` (float64)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    return numeric_array(values, what)


def check_path(value: Any, what: str) -> Path:
    """``value`` (a string or path-like object) as a :class:`~pathlib.Path`; anything else
    (None, a number, an open file) is refused, naming ``what``."""
    if not isinstance(value, (str, os.PathLike)):
        raise JointposeError("{0} must be a file or folder path, got {value}", fields=(what,), value=brief(value))
    return Path(value)


def check_fps(fps: float, what: str) -> float:
    """A frame rate (frames per second) in [1 / L, L] for L = ``limit("fps")``; errors name
    ``what`` (an argument's name, or a description). A bool (JSON ``true``) is no frame rate."""
    integer = isinstance(fps, (int, np.integer)) and not isinstance(fps, bool)  # any size: beyond the bound below
    if not ((integer or is_real_number(fps)) and fps > 0):
        # a value read from a file is quoted as read ('60' is text), and cut short
        shown = str(fps) if isinstance(fps, (float, np.floating, np.integer)) else brief(fps)
        raise JointposeError("{0} must be a positive number of frames per second, got {fps}", fields=(what,), fps=shown)
    bound = limit("fps")
    if not (is_finite_number(fps) and 1.0 / bound <= fps <= bound):
        raise JointposeError(
            "{0}: {fps} frames per second is outside [{low:g}, {bound}] (set JOINTPOSE_MAX_FPS to allow more)",
            fields=(what,),
            fps=f"{fps:.4g}" if is_finite_number(fps) else brief(fps),
            low=1 / bound,
            bound=bound,
        )
    return float(fps)


def check_resample(src_fps: float, dst_fps: float, what: str) -> None:
    """Refuse resampling from ``src_fps`` to ``dst_fps`` by a factor beyond ``limit("resample")`` either way."""
    factor = max(src_fps / dst_fps, dst_fps / src_fps)
    check_limit("resample", factor, f"{what}: resampling {src_fps:g} -> {dst_fps:g} fps (factor)")


def numeric_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a float64 array; text, objects, bools (also one among numbers, as JSON
    ``true`` in a list) and ragged nesting are refused, naming ``what``. A torch tensor is
    read detached, on the CPU."""
    if getattr(values, "is_meta", False):
        raise JointposeError(f"{what}: a tensor on the meta device, without values")
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a tensor (perhaps requiring grad, on a GPU)
        values = values.detach().cpu()
        values = values.double() if values.is_floating_point() else values  # numpy has no bf16
    try:
        array = np.asarray(values)
    except ValueError as exc:  # ragged nesting
        raise JointposeError(f"{what} must be an array of numbers ({first_line(exc)})") from None
    if not isinstance(values, np.ndarray) and array.dtype.kind in "iufO":  # nested lists: numpy casts bools
        kinds = np.asarray(_ELEMENT_KIND(np.asarray(values, dtype=object)), dtype=np.int8)  # same shape: not ragged
        if (kinds == 1).any():
            raise JointposeError(f"{what} must be an array of numbers, got true or false at {_first(kinds == 1)}")
        if array.dtype.kind == "O" and (kinds >= 2).all():  # numbers, among them integers beyond int64
            try:
                array = array.astype(np.float64)
            except OverflowError:
                raise JointposeError(f"{what} holds an integer too large for a floating-point number") from None
    if array.dtype.kind not in "iuf":
        raise JointposeError(f"{what} must be an array of numbers, got {array.dtype}")
    return array.astype(np.float64)


# Per element of an object array: 1 a bool, 2 an int (any size), 3 a float, 0 anything else.
_ELEMENT_KIND = np.frompyfunc(
    lambda v: 1 if isinstance(v, (bool, np.bool_)) else 2 if isinstance(v, int) else 3 if isinstance(v, float) else 0,
    1,
    1,
)


def _first(mask: np.ndarray) -> str:
    """The index of ``mask``'s first True element, written as ``[i, j, ...]``."""
    return str(list(map(int, np.argwhere(mask)[0]))) if mask.ndim else "[]"


def check_finite(values: Any, what: str) -> None:
    """Refuse an array (frames, ...) holding NaN or infinity, naming the frames (0-based)."""
    array = np.asarray(values)
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1) if array.ndim else ~np.isfinite(array[None])
    if bad.any():
        raise JointposeError(
            f"{what}: NaN or infinite values in {int(bad.sum())} of {len(bad)} frames "
            f"({frame_ranges(np.flatnonzero(bad))})"
        )


def check_bounded(values: Any, bound: float, what: str, beyond: str) -> None:
    """Refuse an array (frames, ...) holding a value of magnitude above ``bound`` (or NaN),
    naming the frames (0-based); ``beyond`` says what such values are, e.g. "lie more than
    500 image widths off screen"."""
    array = np.asarray(values)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(array.reshape(len(array), -1)) <= bound).all(axis=1)
    if bad.any():
        raise JointposeError(
            f"{what}: {int(bad.sum())} of {len(bad)} frames ({frame_ranges(np.flatnonzero(bad))}) {beyond}"
        )


def frame_ranges(frames: Any, most: int = 5) -> str:
    """Sorted frame numbers as ``"3-5, 9, 12-40"`` (the first ``most`` runs, then how many more)."""
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        return "none"
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    runs = [(int(r[0]), int(r[-1])) for r in np.split(frames, cuts)]
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most])
    return text + (f" and {len(runs) - most} more" if len(runs) > most else "")
