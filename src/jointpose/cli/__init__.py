"""Command-line interface: ``jointpose <verb> ...``, a thin layer over the Python API.

One module per verb: :mod:`~jointpose.cli.train` (``train``, ``evaluate``, ``ablate``),
:mod:`~jointpose.cli.data` (``data build``, ``demo``), :mod:`~jointpose.cli.infer`,
:mod:`~jointpose.cli.video`, :mod:`~jointpose.cli.render` and :mod:`~jointpose.cli.export`;
:mod:`~jointpose.cli.common` holds what they share.

User mistakes raise :class:`JointposeError`, printed here as one line with a non-zero
exit code; ``--debug`` shows the traceback. So is a path the system refuses as too long
(``ENAMETOOLONG``, from whichever check first touches it, before any work), and so is running
out of memory (an input larger than the machine can hold). Any other exception is a bug and
propagates.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager

from jointpose.cli import data, export, infer, render, train, video
from jointpose.cli.common import (
    EXIT_USER_ERROR,
    PARAMETER_FLAGS,
    VERB_PARAMETER_FLAGS,
    Parser,
    Terminated,
    one_line,
)
from jointpose.cli.train import train_config
from jointpose.errors import JointposeError, JointposeWarning, out_of_memory

__all__ = ["EXIT_USER_ERROR", "build_parser", "flag_message", "main", "train_config"]

# The verbs whose errors name training settings, written as `train` writes them (-e, -ch, -d).
TRAINING_VERBS = ("train", "ablate", "evaluate", "demo")
MAX_THREADS = 1024
THREADS_HELP = (
    "threads PyTorch computes with in this process (default: PyTorch's, one per core, or OMP_NUM_THREADS); "
    "each torchrun rank uses this many"
)


# Each verb: its line in `jointpose --help` and the function adding its flags to its parser.
VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "train": ("train a model on a Human3.6M-format dataset", train.add_train_flags),
    "infer": ("2D keypoints from a detector -> 3D poses (npz, json, csv or bvh)", infer.add_infer_flags),
    "video": ("video -> 2D keypoints (MediaPipe BlazePose) -> 3D poses (npz, json, csv or bvh)", video.add_video_flags),
    "render": ("animate 2D input beside 3D poses (MP4 or GIF)", render.add_render_flags),
    "ablate": ("train the baseline and the joint-aware model alike and compare them", train.add_ablate_flags),
    "evaluate": ("evaluate a checkpoint on test subjects", train.add_evaluate_flags),
    "data build": ("BVH motion capture -> Human3.6M-format dataset through cameras", data.add_build_flags),
    "demo": ("build data, train briefly, evaluate and animate (offline, minutes)", data.add_demo_flags),
    "export": (
        "write a model as ONNX (full sequence, or one streaming step of a causal model)",
        export.add_export_flags,
    ),
}


def build_parser(verbs_with_flags: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``jointpose`` parser with every verb and, of the keys of :data:`VERBS` in
    ``verbs_with_flags`` (default: all), their flags; the others are listed without them.
    Several verbs' flags take their bounds from modules that import PyTorch or SciPy:
    :func:`main` builds only the flags of the verb it runs, so that ``jointpose --help`` or a
    mistyped verb answers at once."""
    parser = Parser(prog="jointpose", description="3D human pose estimation in video with joint-aware constraints")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    actions = None
    for name, (summary, add_flags) in VERBS.items():
        if name.startswith("data "):
            if actions is None:
                data = _with_common_flags(verbs.add_parser("data", help="build datasets"))
                actions = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
            sub = _with_common_flags(actions.add_parser(name.split()[1], help=summary))
        else:
            sub = _with_common_flags(verbs.add_parser(name, help=summary))
        if verbs_with_flags is None or name in verbs_with_flags:
            add_flags(sub)
    return parser


def _with_common_flags(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``sub`` given ``--debug`` and ``--threads``, which work after the verb too."""
    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for user errors")
    sub.add_argument("--threads", type=int, default=argparse.SUPPRESS, metavar="N", help=THREADS_HELP)
    return sub


def argument_flags(verb: str | None = None) -> dict[str, str]:
    """{argument name: its flag} over the options of ``verb`` (a key of :data:`VERBS`), or of
    every verb (an option's name is its flag's destination: ``focal_length`` ->
    ``--focal-length``), and the library parameters of ``common.PARAMETER_FLAGS`` (and of
    ``common.VERB_PARAMETER_FLAGS`` for ``verb``)."""
    flags = PARAMETER_FLAGS | VERB_PARAMETER_FLAGS.get(verb or "", {})
    parsers = [build_parser(None if verb is None else [verb])]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings:
                flags.setdefault(action.dest, action.option_strings[-1])
    return flags


def flag_message(exc: JointposeError | JointposeWarning, verb: str | None = None) -> str:
    """``exc``'s message with each configuration field or argument it names written as its flag:
    ``verb``'s (a key of :data:`VERBS`; default: any verb's), and training's flags
    (:func:`jointpose.training.config.field_flags`, which load PyTorch) for the verbs that
    take them and any field ``verb`` has no flag for."""
    if not exc.fields:
        return str(exc)
    names = argument_flags(verb)
    if verb in (None, *TRAINING_VERBS) or not set(exc.fields) <= names.keys():
        from jointpose.training.config import field_flags

        names |= field_flags()
    return exc.naming(names)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jointpose`` with ``argv`` (default: the command line); returns the exit code (2: a user error)."""
    given = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser([name] if (name := _verb_named(given)) else [])
    try:
        args, unknown = parser.parse_known_args(given)
        if unknown:  # named by the verb's parser, which points to the verb's --help
            _verb_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    except JointposeError as exc:  # from an option's own parser, e.g. --random-cameras RANGES
        print(f"jointpose {name or given[0]}: error: {one_line(flag_message(exc, name))}", file=sys.stderr)
        return EXIT_USER_ERROR
    verb = " ".join(filter(None, (args.verb, getattr(args, "data_verb", None))))
    args.given = frozenset(token.split("=", 1)[0] for token in given if token.startswith("-"))
    empty = _empty_option(given) or _empty_positional(parser, args)
    if empty is not None:
        print(
            f"jointpose {verb}: error: {empty}: an empty value (give a value or leave the flag out)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        print(
            f"jointpose {verb}: error: --threads {args.threads}: give a whole number from 1 to {MAX_THREADS}",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        with _cli_warnings(verb), _terminate_as_interrupt():
            func(args)
    except JointposeError as exc:
        if args.debug:
            raise
        message = flag_message(exc, verb)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG or args.debug:
            raise
        message = _too_long(exc)
    except (MemoryError, RuntimeError) as exc:
        if args.debug or not out_of_memory(exc):
            raise
        message = (
            "out of memory: the input needs more than this machine has free (what each kind of file may ask "
            "for is bounded as docs/limits.md lists); split it, or run where there is more memory"
        )
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    else:
        return 0
    print(f"jointpose {verb}: error: {one_line(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


@contextmanager
def _cli_warnings(verb: str) -> Iterator[None]:
    """Every :class:`JointposeWarning` shown, each time, as one line naming ``verb``'s flags
    (:func:`_format_warning`); the process's warning settings are put back afterwards
    (``main`` may run in-process)."""
    format_warning = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always", JointposeWarning)
        warnings.formatwarning = functools.partial(_format_warning, verb=verb)
        try:
            yield
        finally:
            warnings.formatwarning = format_warning


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the verb as Ctrl-C does: an exception unwinds it, so each output being
    written is removed with its temporary file, and outputs already there stay as they were
    (the default action ends the process on the spot, leaving the temporary file behind).
    Both go through :func:`jointpose.safeio.interrupt`, which holds them back where a call must
    not be cut in two (:func:`jointpose.safeio.signals_deferred`)."""
    from jointpose.safeio import interrupt, reset_interrupts

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = [True]  # off before the handlers are put back, so that a late signal does nothing here

    def stop(signum: int, frame: object) -> None:
        if armed[0]:
            interrupt(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())

    # A signal the process was started ignoring (a background job's SIGINT, `trap '' TERM`) stays
    # ignored; under torchrun SIGTERM keeps its default action, which stops a rank at once even
    # while it waits in a collective (a handler would wait with it until torchrun's SIGKILL).
    signals = (
        (signal.SIGINT,) if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else (signal.SIGINT, signal.SIGTERM)
    )
    caught = [s for s in signals if signal.getsignal(s) is not signal.SIG_IGN]
    reset_interrupts()
    previous = {signum: signal.signal(signum, stop) for signum in caught}
    try:
        yield
    finally:
        armed[0] = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reset_interrupts()


def _verb_named(argv: Sequence[str]) -> str | None:
    """The key of :data:`VERBS` that ``argv`` runs, read past the options before it (``--threads``
    takes a value); None where it names none (``--help``, a mistyped verb)."""
    words, tokens = [], iter(argv)
    for token in tokens:
        if token == "--threads":
            next(tokens, None)
        elif not token.startswith("-"):
            words.append(token)
            if words[0] != "data" or len(words) == 2:
                break
    name = " ".join(words)
    return name if name in VERBS else None


def _too_long(exc: OSError) -> str:
    """The message for a path the system refuses as too long (``exc``: ENAMETOOLONG)."""
    path = "a path" if exc.filename is None else os.fsdecode(exc.filename)
    return f"{path}: file name too long (at most 255 bytes between slashes, 4095 in all, on most file systems)"


def _empty_option(argv: Sequence[str]) -> str | None:
    """The flag given an empty value (``-o ""``, ``--checkpoint=``), if any: argparse takes it, and
    an empty path would mean the current folder, or an empty ``--checkpoint`` the bundled model."""
    for i, token in enumerate(argv):
        if token.startswith("-") and token.endswith("=") and "=" not in token[:-1]:
            return token[:-1]
        if token == "" and i and argv[i - 1].startswith("-"):
            return argv[i - 1]
    return None


def _verb_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the verb ``args`` were parsed for (``data build``'s for ``data build``)."""
    for name in (args.verb, getattr(args, "data_verb", None)):
        if name is None:
            break
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def _empty_positional(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The verb's positional argument given as an empty string (``jointpose video ""``), named
    as its usage line shows it; an empty path would mean the current folder."""
    for action in _verb_parser(parser, args)._actions:
        if not action.option_strings and getattr(args, action.dest, None) == "":
            return action.metavar or action.dest
    return None


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
    *,
    verb: str | None = None,
) -> str:
    """:func:`warnings.formatwarning` for the CLI: a :class:`JointposeWarning` as one line
    naming ``verb``'s flags, any other warning as Python writes it."""
    if issubclass(category, JointposeWarning):
        text = flag_message(message, verb) if isinstance(message, JointposeWarning) else str(message)
        return f"warning: {one_line(text)}\n"
    return f"{filename}:{lineno}: {category.__name__}: {message}\n"
