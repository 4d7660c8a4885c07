"""Safe reading of ``.npz`` files whose arrays may hold pickled Python objects.

VideoPose3D's data files store dicts inside 0-d object arrays, which numpy can only read
with ``allow_pickle=True`` - and a pickle can run arbitrary code. Here object arrays are
unpickled by :class:`RestrictedUnpickler`, which admits numpy arrays, dtypes and scalars
and the builtin containers (dict, list, tuple, str, bytes, int, float, bool, None) and
refuses every other global, so a crafted file raises :class:`JointposeError` and runs
nothing.
"""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from jointpose.errors import JointposeError

# (module, name) pairs a numpy array pickle needs; numpy 1.x and 2.x spell the modules differently.
_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # bytes written by Python 2 / protocol 2 pickles
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only builds numpy arrays/dtypes and builtin containers."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}'")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (raises ``pickle.UnpicklingError``)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file; object arrays go through the restricted unpickler.

    Returns ``{key: array}``. Raises :class:`JointposeError` naming the file (and key) when
    the file is missing, not a zip archive, truncated, or holds a disallowed pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise JointposeError(f"file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                name[:-4] if name.endswith(".npy") else name: _read_member(archive, name, path)
                for name in archive.namelist()
            }
    except zipfile.BadZipFile as exc:
        raise JointposeError(f"{path}: not a valid .npz archive ({exc})") from None
    except (OSError, EOFError) as exc:
        raise JointposeError(f"{path}: cannot read ({exc})") from None


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    key = name[:-4] if name.endswith(".npy") else name
    try:
        raw = archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error) as exc:
        raise JointposeError(f"{path}: key '{key}' is corrupt or unreadable ({exc})") from None
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, SyntaxError, EOFError) as exc:
        raise JointposeError(f"{path}: key '{key}' is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        try:
            array = restricted_loads(stream.read())
        except pickle.UnpicklingError as exc:
            raise JointposeError(f"{path}: key '{key}': unsafe or corrupt pickle ({exc})") from None
        except Exception as exc:  # malformed pickle streams raise many types
            raise JointposeError(f"{path}: key '{key}': corrupt pickle ({type(exc).__name__}: {exc})") from None
        if not isinstance(array, np.ndarray):
            raise JointposeError(f"{path}: key '{key}' does not hold an array")
        return array
    count = int(np.prod(shape, dtype=np.int64))
    data = stream.read()
    if len(data) != count * dtype.itemsize:
        raise JointposeError(
            f"{path}: key '{key}' is truncated ({len(data)} of {count * dtype.itemsize} bytes)"
        )
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()
