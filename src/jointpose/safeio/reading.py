"""Reading ``.npz``, ``.npy`` and text files with their sizes checked before anything is
allocated: the archive's declared sizes against ``limit("npz_bytes")`` and every array's
header shape against the bytes that follow it; object arrays go through the restricted
unpickler (:mod:`jointpose.safeio.pickles`).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from jointpose.errors import JointposeError, first_line
from jointpose.safeio.limits import check_fps, check_limit
from jointpose.safeio.pickles import ZIP_READ_ERRORS, check_array_bytes, restricted_loads


def load_npz(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` file; object arrays go through the restricted unpickler.

    Returns ``{key: array}`` for every key, or with ``keys`` only for those of them the file
    holds (the others are not decompressed; :func:`npz_keys` lists what it holds). Raises
    :class:`JointposeError` naming the file (and key) when the file is missing, not a zip
    archive, truncated, holds a disallowed pickle, or when the arrays read would exceed
    ``limit("npz_bytes")`` decompressed.
    """
    path = Path(path)
    with _open_npz(path) as archive:
        members = archive.infolist()
        if keys is not None:
            wanted = set(keys)
            members = [m for m in members if _key(m.filename) in wanted]
        check_limit("npz_bytes", sum(m.file_size for m in members), f"{path}: arrays decompressed (bytes)")
        return {_key(m.filename): _read_member(archive, m, path) for m in members}


def npz_keys(path: str | Path) -> list[str]:
    """The keys of an ``.npz`` file, in archive order, from its directory alone (nothing is decompressed)."""
    path = Path(path)
    with _open_npz(path) as archive:
        return [_key(name) for name in archive.namelist()]


def stored_fps(arrays: dict[str, np.ndarray], path: str | Path) -> float | None:
    """The frame rate an npz's arrays hold under 'fps' (one number, checked as a frame rate),
    or None where there is no 'fps'; errors name the file and key."""
    if "fps" not in arrays:
        return None
    fps = arrays["fps"]
    if fps.shape != () or fps.dtype.kind not in "iuf":
        raise JointposeError(f"{path}: key 'fps' must be one number, got {fps.dtype} {fps.shape}")
    return check_fps(float(fps), f"{path}: key 'fps'")


def read_text_file(path: str | Path, errors: str = "strict") -> str:
    """The UTF-8 text of a regular file of at most ``limit("text_bytes")``, without the
    byte-order mark Windows editors write; a folder, FIFO or device (read, it would block or
    never end) is refused, naming the file."""
    path = Path(path)
    _check_input_file(path)
    try:
        check_limit("text_bytes", path.stat().st_size, f"{path}: bytes")
        return path.read_text(encoding="utf-8-sig", errors=errors)
    except OSError as exc:
        raise JointposeError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise JointposeError(f"{path}: not a UTF-8 text file") from None


def _check_input_file(path: Path) -> None:
    """Refuse an input that is missing, or that is there but not a regular file (a folder, FIFO,
    device: read, it would block or never end)."""
    if not path.is_file():
        raise JointposeError(f"{path}: not a regular file" if path.exists() else f"file not found: {path}")


@contextmanager
def _open_npz(path: Path) -> Iterator[zipfile.ZipFile]:
    """``path`` open as a zip archive; a missing, invalid or unreadable file raises :class:`JointposeError`."""
    _check_input_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError) as exc:  # bad directory, method, name
        raise JointposeError(f"{path}: not a valid .npz archive ({first_line(exc)})") from None
    except (OSError, EOFError) as exc:
        raise JointposeError(f"{path}: cannot read ({exc})") from None


def load_npy(path: str | Path) -> np.ndarray:
    """Read a plain (non-object) ``.npy`` array, its header shape checked against the file size first."""
    path = Path(path)
    _check_input_file(path)
    size = path.stat().st_size
    check_limit("npz_bytes", size, f"{path}: bytes")
    try:
        with open(path, "rb") as handle:
            if handle.read(2) == b"PK":
                raise JointposeError(f"{path}: an .npz archive, not an .npy array (rename it to .npz)")
            handle.seek(0)
            return _read_npy(handle, size, str(path), allow_object=False)
    except OSError as exc:
        raise JointposeError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> np.ndarray:
    key = _key(member.filename)
    try:
        with archive.open(member) as handle:
            return _read_npy(handle, member.file_size, f"{path}: key {key!r}", allow_object=True)
    except ZIP_READ_ERRORS as exc:
        raise JointposeError(f"{path}: key {key!r} is corrupt or unreadable ({first_line(exc)})") from None


_CHUNK = 2**18  # bytes read at a time into the array
# numpy's own bound on a header it parses, checked here before the header is read: a
# 13-byte file can claim a header of 4 GiB.
_MAX_NPY_HEADER = 10_000


def _read_npy(handle: IO[bytes], size: int, where: str, *, allow_object: bool) -> np.ndarray:
    """An array from an open ``.npy`` stream of ``size`` bytes (as declared); the header's shape
    must match the bytes that follow, and the data is read into the array alone (one copy)."""
    try:
        version = np.lib.format.read_magic(handle)
        length_field = handle.read(2 if version == (1, 0) else 4)
        length = int.from_bytes(length_field, "little")
        if length > _MAX_NPY_HEADER:
            raise JointposeError(f"{where}: its .npy header claims {length} bytes, more than {_MAX_NPY_HEADER}")
        header = io.BytesIO(length_field + handle.read(length))
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(header)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(header)
    except JointposeError:
        raise
    except Exception as exc:  # numpy parses the header text: tokenizer, literal and dtype errors of many types
        raise JointposeError(f"{where} is not a valid .npy array ({first_line(exc)})") from None
    follow = size - handle.tell()
    if dtype.hasobject:
        if not allow_object:
            raise JointposeError(f"{where}: holds Python objects, not numbers")
        return _unpickle_array(handle.read(max(follow, 0) + 1), where)
    try:
        expected = check_array_bytes(shape, dtype.itemsize, where)
    except pickle.UnpicklingError as exc:  # its message names ``where``
        raise JointposeError(str(exc)) from None
    if follow == expected:
        buffer = bytearray(expected)
        view = memoryview(buffer)
        follow = 0
        while follow < expected and (chunk := handle.read(min(_CHUNK, expected - follow))):
            view[follow : follow + len(chunk)] = chunk
            follow += len(chunk)
        follow += len(handle.read(1))  # at the end: nothing more (and a zip member's CRC is checked)
    if follow != expected:
        raise JointposeError(
            f"{where} is truncated or malformed: its header claims shape {shape} "
            f"({expected} bytes) but {follow} bytes follow"
        )
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _unpickle_array(data: bytes, where: str) -> np.ndarray:
    try:
        array = restricted_loads(data)
    except pickle.UnpicklingError as exc:
        raise JointposeError(f"{where}: unsafe or corrupt pickle ({exc})") from None
    except JointposeError as exc:  # a limit
        raise JointposeError(f"{where}: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise JointposeError(f"{where} does not hold an array")
    return array
