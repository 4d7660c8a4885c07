"""Atomic writing, and output paths checked before any work.

:func:`atomic_write` writes to a temporary file in the target's folder, fsyncs it and
renames it over the target (through a symlink, onto the file it leads to), so a full disk,
a crash or a kill leaves either the old file or the new one complete, never a torn one, and
no folder made for it; :func:`check_outputs` refuses, before any work is done, an
unwritable target, one that is not a regular file, and one that would replace an input or
another output of the same run.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from jointpose.errors import JointposeError
from jointpose.safeio.limits import check_path

_UMASK = os.umask(0)
os.umask(_UMASK)
_NAME_BYTES = 255  # the longest file name most file systems take (ext4, XFS, btrfs, APFS)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (same suffix) for a writer to fill; on success it is
    fsynced and renamed over ``path`` - over the file a symlink ``path`` leads to, the link
    kept - on any error removed, with the folders made for it. An existing ``path`` that is
    not a regular file is refused; OSError becomes :class:`JointposeError` naming ``path``."""
    target = _write_target(path, "cannot write")
    path = Path(path)
    created: list[Path] = []
    tmp: Path | None = None
    written = False
    try:  # one try from the folders on, so that an interruption anywhere (SIGTERM) leaves nothing
        created = _make_folders(target.parent)
        prefix, suffix = _partial_affixes(target.stem, f".partial{target.suffix}")
        with signals_deferred():  # made and named as one step: an interruption between would leave it
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
            tmp = Path(name)
            os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync(tmp)
        os.replace(tmp, target)
        written = True
    except OSError as exc:
        raise JointposeError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if not written:
            _remove_folders(created)
    fsync_dir(target.parent)


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_args: Any) -> Iterator[IO]:
    """``open(path, mode)`` made atomic with :func:`atomic_path`: the file appears complete or not at all."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_args) as handle:
        yield handle


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write a set of files into; on success each is
    moved into ``folder`` (replacing files of the same names), on any error the set is
    discarded and ``folder`` is left as it was (not there, when it was made for the set)."""
    folder = Path(folder)
    created: list[Path] = []
    tmp: Path | None = None
    written = False
    try:  # one try from the folders on, as in atomic_path
        created = _make_folders(folder)
        prefix, suffix = _partial_affixes(folder.name, ".partial")
        with signals_deferred():  # made and named as one step, as in atomic_path
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder.parent))
        yield tmp
        files = sorted(p for p in tmp.iterdir() if p.is_file())
        for file in files:
            os.chmod(file, 0o666 & ~_UMASK)
            _fsync(file)
        for file in files:
            os.replace(file, folder / file.name)
        written = True
    except OSError as exc:
        raise JointposeError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            for leftover in tmp.iterdir():
                leftover.unlink()
            tmp.rmdir()
        if not written:
            _remove_folders(created)
    fsync_dir(folder)


# Interruptions held back by signals_deferred (process-wide, as signals are): how deep the
# deferred blocks nest, and the interruption that arrived within them.
_deferral = {"depth": 0, "pending": None}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back an interruption raised through :func:`interrupt` (the command line's Ctrl-C
    and SIGTERM) while the block runs; it is raised as the block ends. For a call an exception
    must not cut in two: a frame half written to an encoder's pipe leaves the encoder waiting
    for the rest, and its cleanup waiting on the encoder. Signal handlers run in the main
    thread, so a block in another thread holds nothing back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
        if _deferral["depth"] == 0:
            pending, _deferral["pending"] = _deferral["pending"], None
            if pending is not None:
                raise pending


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` (from a signal handler: KeyboardInterrupt, or SIGTERM's), or, within
    :func:`signals_deferred`, keep it for the block's end (the first one kept)."""
    if _deferral["depth"]:
        _deferral["pending"] = _deferral["pending"] or exc
        return
    _deferral["pending"] = None  # one held back and already superseded by this one
    raise exc


def reset_interrupts() -> None:
    """Forget any interruption held back (:func:`signals_deferred`): before and after a command
    line run, so that none outlives the run it was meant for."""
    _deferral["depth"], _deferral["pending"] = 0, None


def _partial_affixes(stem: str, suffix: str) -> tuple[str, str]:
    """The prefix and suffix of a temporary name ``.{stem}.XXXXXXXX{suffix}`` beside a target of
    that stem, the stem cut (the suffix first, if need be) so that the name fits in
    ``_NAME_BYTES`` bytes whenever the target's own name does."""
    encoded = os.fsencode(suffix)[: _NAME_BYTES - 10]  # "." + 8 random letters + "."
    room = _NAME_BYTES - 10 - len(encoded)
    return f".{os.fsencode(stem)[:room].decode('utf-8', 'ignore')}.", encoded.decode("utf-8", "ignore")


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those this call created, outermost first
    (on an error, none stays)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    try:
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:  # made meanwhile by someone else: theirs
                continue
            created.append(new)
    except OSError:
        _remove_folders(created)
        raise
    return created


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` created (innermost first) while they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


_KINDS = (
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def file_path(given: str | Path, what: str) -> Path:
    """``given`` as a :class:`~pathlib.Path`, refused when its text ends in a separator (or
    ``/.``): it names a folder, which :class:`~pathlib.Path` would quietly drop, writing the
    file itself."""
    check_path(given, what)
    if given == "":
        raise JointposeError(f"{what}: an empty file name")
    if isinstance(given, str) and os.path.basename(given) in ("", "."):
        ending = given[-1] if given.endswith(("/", os.sep)) else given[-2:]
        raise JointposeError(f"{what} {given}: ends in '{ending}', which names a folder; give a file name")
    return Path(given)


def _write_target(given: str | Path, what: str) -> Path:
    """The file that writing ``given`` replaces: ``given``, or the file the symlink ``given``
    leads to. A name ending in a separator (or ``/.``), which names a folder, and an existing
    path that is not a regular file (a folder, device, FIFO, socket) raise
    :class:`JointposeError` ``"{what} {given}: ..."``."""
    path = file_path(given, what)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new file (its folder is checked by whoever makes it)
        return target
    except OSError as exc:
        raise JointposeError(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise JointposeError(f"{what} {path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise JointposeError(f"{what} {path}: is {kind}, not a regular file")
    return target


def check_output_path(path: str | Path, what: str) -> Path:
    """Refuse, before any work, an output file that cannot be written: an existing folder,
    device, FIFO or socket, or a place where no file can be created. A symlink is checked
    (and later written) at the file it leads to. Returns ``path`` as a Path."""
    target = _write_target(path, what)
    path = Path(path)
    _check_creatable(target.parent, what, path)
    return path


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Mapping[str, str | Path | Iterable[str | Path] | None] | None = None,
) -> None:
    """Refuse, before any work, outputs that cannot be written (:func:`check_output_path`) or
    that would replace a file the run reads or another output of the same run.

    ``outputs`` maps each flag (or argument name) to its path, ``inputs`` each flag to the
    file it reads or to the files it reads (those of a folder); None means not given. An
    output is refused when it is the same file as an input or another output, also through
    symlinks and hard links; the error names both flags.
    """
    for flag, path in outputs.items():
        if path is not None:
            check_output_path(path, flag)
    given = {flag: Path(path) for flag, path in outputs.items() if path is not None}
    read = [
        (flag, Path(path))
        for flag, paths in (inputs or {}).items()
        if paths is not None
        for path in ((paths,) if isinstance(paths, (str, Path)) else paths)
    ]
    seen: dict[str, Path] = {}
    for flag, path in given.items():
        for source, file in read:
            if _same_file(path, file):
                raise JointposeError(
                    f"{flag} {path}: is the same file as {source} {file}, which this run reads; choose another output"
                )
        for other, earlier in seen.items():
            if _same_file(path, earlier):
                raise JointposeError(
                    f"{flag} {path}: is the same file as {other} {earlier}; give each output its own file"
                )
        seen[flag] = path


def _same_file(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file, existing or not (symlinks and hard links included)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_output_folder(folder: str | Path, what: str, *, field: bool = False) -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written
    in. ``what`` names it in the message: a flag or a role, or with ``field`` a configuration
    field (which the CLI writes as its flag)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _folder_error(what, field, "is a file, not a folder", folder)
    _check_creatable(folder, what, folder, field)
    return folder


def _folder_error(what: str, field: bool, problem: str, target: Path) -> JointposeError:
    """The error "``what`` ``target``: ``problem``", ``what`` a template field where ``field``."""
    if field:
        return JointposeError("{0} {target}: {problem}", fields=(what,), target=str(target), problem=problem)
    return JointposeError(f"{what} {target}: {problem}")


def _check_creatable(folder: Path, what: str, target: Path, field: bool = False) -> None:
    """A file can be created in ``folder`` (or in the nearest existing folder above it): try one."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _folder_error(what, field, f"{existing} is not a folder", target)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise _folder_error(what, field, f"cannot write in {existing} ({exc.strerror or exc})", target) from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
