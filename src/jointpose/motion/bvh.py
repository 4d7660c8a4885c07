"""BVH motion capture: reading, forward kinematics, frame-rate resampling, writing.

Conventions
-----------
* Lengths stay in the file's units (often centimetres); nothing is rescaled here.
* Rotation channels are degrees and compose intrinsically in the order written:
  ``Zrotation Yrotation Xrotation`` means ``R = Rz @ Ry @ Rx``, which maps vectors from the
  joint's frame into its parent's frame (column vectors).
* Local translation of joint ``j`` at frame ``f``:
  ``translations[f, j] = offsets[j] + (position channel values, 0 on axes without one)``,
  i.e. position channels displace the joint from its OFFSET (for the usual root OFFSET of
  0 0 0 they are the root position).
* Forward kinematics: ``G_j = G_parent @ R_j`` and ``p_j = p_parent + G_parent @ t_j``.
* End Sites become joints named ``<parent>_End`` (flagged in ``end_sites``) with no channels
  and the identity rotation, so their positions come out of forward kinematics.
* Quaternions are unit (w, x, y, z).
* A frame time within 0.01 % of ``1 / n`` for a whole ``n`` (files print 1/60 s as 0.016667)
  is read as exactly ``1 / n``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from jointpose.data.resampling import resample_weights
from jointpose.errors import JointposeError, brief
from jointpose.safeio import (
    atomic_write,
    check_fps,
    check_limit,
    check_path,
    check_resample,
    file_path,
    limit,
    read_text_file,
)

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
# Largest channel value read: a million of the file's length unit (10 km in centimetres) or
# degrees; beyond it a value is not motion capture, and squaring it would overflow float32.
MAX_CHANNEL_VALUE = 1e6
_CANONICAL = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
_SPACE = np.isin(np.arange(256), [9, 10, 11, 12, 13, 32])  # by byte: what bytes.split() splits on


def _rotation_order(channels: tuple[str, ...]) -> str:
    """Axis letters of the rotation channels in file order, e.g. 'ZYX'."""
    return "".join(c[0] for c in channels if c in ROTATION_CHANNELS)


def _check_channels(channels: list[str]) -> str | None:
    """Why a joint's channel list is invalid (None when it is fine)."""
    if len(set(channels)) != len(channels):
        return f"repeated channel in {' '.join(channels)}"
    order = _rotation_order(tuple(channels))
    if any(a == b for a, b in zip(order, order[1:])):
        return f"rotation channels {' '.join(channels)} repeat an axis back to back"
    return None


@dataclass(frozen=True, eq=False)
class Motion:
    """A skeleton and its motion, as held in a BVH file.

    ``names``/``parents`` (``-1`` for a root; parents precede children), ``offsets`` (J, 3)
    in file units, ``rotations`` (F, J, 4) local unit quaternions (w, x, y, z),
    ``translations`` (F, J, 3) local translations (see the module docstring), ``frame_time``
    in seconds, ``channels`` per joint (BVH channel names, file order) and ``end_sites``.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    frame_time: float
    channels: tuple[tuple[str, ...], ...]
    end_sites: tuple[bool, ...]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        j = len(self.names)
        where = f"motion {self.source}"
        if len(set(self.names)) != j:
            raise JointposeError(f"{where}: joint names are not unique")
        if len(self.parents) != j or len(self.channels) != j or len(self.end_sites) != j:
            raise JointposeError(f"{where}: names, parents, channels and end_sites must have one entry per joint")
        if any(not -1 <= p < i for i, p in enumerate(self.parents)):
            raise JointposeError(f"{where}: every parent index must be -1 or an earlier joint")
        if np.shape(self.offsets) != (j, 3):
            raise JointposeError(f"{where}: offsets must be ({j}, 3), got {np.shape(self.offsets)}")
        frames = np.shape(self.rotations)[0] if np.ndim(self.rotations) == 3 else -1
        if frames < 1 or np.shape(self.rotations) != (frames, j, 4) or np.shape(self.translations) != (frames, j, 3):
            raise JointposeError(f"{where}: rotations must be (F, {j}, 4) and translations (F, {j}, 3) with F >= 1")
        if not (np.isfinite(self.rotations).all() and np.isfinite(self.translations).all()):
            raise JointposeError(f"{where}: rotations and translations must be finite")
        if not (np.isfinite(self.frame_time) and self.frame_time > 0):
            raise JointposeError(f"{where}: frame_time must be positive, got {self.frame_time}")
        for name, chans, end in zip(self.names, self.channels, self.end_sites):
            problem = _check_channels(list(chans)) if set(chans) <= set(_CANONICAL.values()) else "unknown channel"
            if problem or (end and chans):
                raise JointposeError(f"{where}: joint {name}: {problem or 'an End Site has no channels'}")
        if any(end and p < 0 for end, p in zip(self.end_sites, self.parents)):
            raise JointposeError(f"{where}: an End Site must have a parent")

    @property
    def fps(self) -> float:
        """Frames per second."""
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        """Number of frames F."""
        return self.rotations.shape[0]

    @property
    def num_joints(self) -> int:
        """Number of joints J, End Sites included."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of joint ``name`` (JointposeError if absent)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise JointposeError(f"motion {self.source} has no joint named {brief(name)}") from None

    @classmethod
    def from_arrays(
        cls,
        names: list[str] | tuple[str, ...],
        parents: list[int] | tuple[int, ...],
        offsets: np.ndarray,
        rotations: np.ndarray,
        root_translation: np.ndarray,
        fps: float,
        rotation_order: str = "ZXY",
        end_sites: list[bool] | tuple[bool, ...] | None = None,
        source: str = "<memory>",
    ) -> Motion:
        """Build a motion from code, e.g. after inverse kinematics.

        ``offsets`` (J, 3) and ``root_translation`` (F, 3) in the units to write (the root's
        translation replaces its offset, which is stored as 0 0 0), ``rotations`` (F, J, 4)
        quaternions (w, x, y, z; normalised here). Every root gets X/Y/Z position channels;
        every joint except End Sites gets rotation channels in ``rotation_order`` (e.g. 'ZXY').
        """
        order = rotation_order.upper()
        if sorted(order) != ["X", "Y", "Z"]:
            raise JointposeError(f"rotation_order must be a permutation of XYZ, got {brief(rotation_order)}")
        if not np.isfinite(fps) or fps <= 0:
            raise JointposeError(f"fps must be positive, got {fps}")
        j = len(names)
        ends = tuple(bool(e) for e in end_sites) if end_sites is not None else (False,) * j
        rot, offs = np.array(rotations, dtype=np.float64), np.array(offsets, dtype=np.float64)
        root_t = np.asarray(root_translation, dtype=np.float64)
        if (
            len(parents) != j
            or len(ends) != j
            or offs.shape != (j, 3)
            or rot.ndim != 3
            or rot.shape[1:] != (j, 4)
            or root_t.shape != (rot.shape[0], 3)
        ):
            raise JointposeError(
                f"from_arrays: expected {j} parents and end_sites, offsets ({j}, 3), rotations (F, {j}, 4) "
                f"and root_translation (F, 3); got {offs.shape}, {rot.shape}, {root_t.shape}"
            )
        norm = np.linalg.norm(rot, axis=-1, keepdims=True)
        if not np.all(norm > 1e-12):
            raise JointposeError("from_arrays: rotations must be non-zero quaternions")
        rot /= norm
        rot[:, np.array(ends, dtype=bool)] = (1.0, 0.0, 0.0, 0.0)  # an End Site's own rotation moves nothing
        roots = [i for i, p in enumerate(parents) if p == -1]
        offs[roots] = 0.0
        translations = np.repeat(offs[None], rot.shape[0], axis=0)
        translations[:, roots] = root_t[:, None]
        rot_channels = tuple(f"{axis}rotation" for axis in order)
        channels = tuple(
            () if ends[i] else (POSITION_CHANNELS if parents[i] == -1 else ()) + rot_channels for i in range(j)
        )
        return cls(
            tuple(names), tuple(int(p) for p in parents), offs, rot, translations, 1.0 / fps, channels, ends, source
        )


def global_transforms(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions (F, J, 3) in file units and rotation matrices (F, J, 3, 3).

    Vectorised over frames; one step per hierarchy depth level.
    """
    f, j = motion.num_frames, motion.num_joints
    local = Rotation.from_quat(motion.rotations.reshape(-1, 4), scalar_first=True).as_matrix().reshape(f, j, 3, 3)
    parents = np.asarray(motion.parents)
    depth = np.zeros(j, dtype=int)
    for i in range(j):  # parents precede children
        depth[i] = depth[parents[i]] + 1 if parents[i] >= 0 else 0
    rot = np.empty_like(local)
    pos = np.empty((f, j, 3))
    for level in range(depth.max() + 1):
        idx = np.flatnonzero(depth == level)
        if level == 0:
            rot[:, idx] = local[:, idx]
            pos[:, idx] = motion.translations[:, idx]
            continue
        par = parents[idx]
        pos[:, idx] = pos[:, par] + np.einsum("fjab,fjb->fja", rot[:, par], motion.translations[:, idx])
        rot[:, idx] = rot[:, par] @ local[:, idx]
    return pos, rot


def resample(motion: Motion, fps: float) -> Motion:
    """The motion at a new frame rate over the same duration, on the time grid of
    :func:`jointpose.data.resampling.resample_weights` (first frame kept).

    Rotations by scipy's Slerp (shortest arc), translations linearly; vectorised over frames and joints.
    """
    check_fps(fps, "resample: fps")
    check_resample(motion.fps, fps, str(motion.source))
    count = (motion.num_frames - 1) * motion.frame_time * fps + 1
    check_limit("frames", count, f"{motion.source}: resampled to {fps:g} fps, frames")
    i0, i1, w = resample_weights(motion.num_frames, motion.fps, fps)
    translations = motion.translations[i0] + w[:, None, None] * (motion.translations[i1] - motion.translations[i0])
    return dataclasses.replace(
        motion, rotations=_slerp_frames(motion.rotations, i0 + w), translations=translations, frame_time=1.0 / fps
    )


def _slerp_frames(rotations: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(F, J, 4) unit quaternions (w, x, y, z) at fractional frame ``times`` (T,) in [0, F - 1]:
    (T, J, 4), each joint interpolated by scipy's Slerp (shortest arc) between its frames, in
    the sign (hemisphere) of the frame before.

    One Slerp over every joint: joint j's frames are laid end to end at times j (F + 1) + frame,
    so each query falls between two frames of its own joint.
    """
    frames, joints = rotations.shape[:2]
    if frames == 1:
        return np.repeat(rotations, len(times), axis=0)
    offsets = np.arange(joints)[:, None] * (frames + 1.0)
    keys = Rotation.from_quat(rotations.transpose(1, 0, 2).reshape(-1, 4), scalar_first=True)
    slerp = Slerp((offsets + np.arange(frames)).ravel(), keys)
    out = slerp((offsets + times).ravel()).as_quat(scalar_first=True).reshape(joints, len(times), 4).transpose(1, 0, 2)
    before = rotations[np.minimum(np.floor(times).astype(int), frames - 1)]
    return np.where(np.sum(out * before, axis=-1, keepdims=True) < 0, -out, out)  # the sign of the frame before


def read_bvh(path: str | Path) -> Motion:
    """Read a BVH file (see the module docstring for conventions)."""
    path = check_path(path, "path")
    text = read_text_file(path, errors="replace")
    motion_match = re.search(r"^[ \t]*MOTION[ \t\r]*$", text, flags=re.M | re.I)
    header = text[: motion_match.start()] if motion_match else text
    hierarchy = _HierarchyParser(header, str(path), motion_match is not None).parse()
    lineno = header.count("\n") + 1
    pos = motion_match.end() + 1
    fields: dict[str, tuple[str, int]] = {}
    for key in ("Frames:", "Frame Time:"):
        while True:
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            if pos >= len(text):
                raise JointposeError(f"{path} line {lineno}: file ends before the '{key}' line")
            line, pos, lineno = text[pos:end].strip(), end + 1, lineno + 1
            if line:
                break
        if not line.lower().startswith(key.lower()):
            raise JointposeError(f"{path} line {lineno}: expected '{key} ...', found {line[:40]!r}")
        fields[key] = (line[len(key) :].strip(), lineno)
    frames = _header_number(fields["Frames:"], "Frames:", path, int)
    check_limit("frames", frames, f"{path} line {fields['Frames:'][1]}: 'Frames:'")
    joints = len(hierarchy["names"])  # End Sites included: each gets a rotation and an offset per frame
    if frames * joints > max(len(text) - pos, MIN_JOINT_FRAMES):
        raise JointposeError(
            f"{path} line {fields['Frames:'][1]}: {frames} frames of {joints} joints hold more than the "
            f"{max(len(text) - pos, 0)} bytes of motion that follow can describe"
        )
    frame_time = _header_number(fields["Frame Time:"], "Frame Time:", path, float)
    check_fps(1.0 / frame_time, f"{path} line {fields['Frame Time:'][1]}: 'Frame Time: {frame_time:g}'")
    values = _parse_frames(
        text[pos:].encode("utf-8"),
        lineno + 1,
        frames,
        fields["Frames:"][1],
        sum(len(c) for c in hierarchy["channels"]),
        path,
    )
    rate = 1.0 / frame_time
    if abs(rate - round(rate)) < 1e-4 * rate:
        frame_time = 1.0 / round(rate)
    return _motion_from_values(hierarchy, values, frame_time, str(path))


# Joint-frames (about 150 bytes each while read) any BVH file may have; beyond, at most one per
# byte of its motion text (a frame of a real capture holds several bytes per joint).
MIN_JOINT_FRAMES = 1_000_000


def _header_number(field: tuple[str, int], key: str, path: Path, kind: type) -> float:
    raw, lineno = field
    if raw.isdigit() and len(raw) > 4000:  # past any limit, and near the 4300 digits int() converts
        raise JointposeError(f"{path} line {lineno}: '{key}' is a number of {len(raw)} digits")
    try:
        value = kind(raw)
    except ValueError:
        raise JointposeError(f"{path} line {lineno}: '{key}' needs a number, found {brief(raw)}") from None
    if not value > 0 or value == float("inf"):  # NaN fails the first test; ints of any size pass both
        raise JointposeError(f"{path} line {lineno}: '{key}' must be positive, found {brief(raw)}")
    return value


def _parse_frames(raw: bytes, first_line: int, frames: int, frames_line: int, width: int, path: Path) -> np.ndarray:
    """The (frames, width) channel values of the MOTION block (UTF-8), validated line by line and
    parsed by numpy straight from the bytes (no Python object per value: about 4 times the
    block's size in memory at the peak)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    word = ~_SPACE[data]
    starts = np.flatnonzero(word[1:] > word[:-1])  # a token's first byte, less one
    starts += 1
    if word.size and word[0]:
        starts = np.concatenate([[0], starts])
    del word
    newlines = np.flatnonzero(data == 10)
    per_line = np.bincount(np.searchsorted(newlines, starts), minlength=newlines.size + 1)
    del starts
    used = np.flatnonzero(per_line)
    lines = int(used[-1]) + 1 if used.size else 0
    bad = np.flatnonzero(per_line[:lines] != width)
    if bad.size:
        k = int(bad[0])
        raise JointposeError(
            f"{path} line {first_line + k}: expected {width} values (one per channel), found {per_line[k]}"
        )
    if lines != frames:
        raise JointposeError(
            f"{path} line {frames_line}: 'Frames: {frames}' but {lines} data lines follow"
            + (" (file truncated?)" if lines < frames else "")
        )
    try:
        values = _floats(raw).reshape(frames, width)
    except ValueError:
        for k, line in enumerate(raw.split(b"\n")):
            token = next((token for token in line.split() if not _is_number(token)), None)
            if token is not None:
                raise JointposeError(
                    f"{path} line {first_line + k}: non-numeric value {brief(token.decode(errors='replace'))}"
                ) from None
        raise JointposeError(f"{path} line {first_line}: the MOTION block holds values that are not numbers") from None
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        f = int(np.flatnonzero(~finite)[0])
        raise JointposeError(f"{path}: frame {f} (0-based, line {first_line + f}) holds a NaN or infinite value")
    bounded = (np.abs(values) <= MAX_CHANNEL_VALUE).all(axis=1)
    if not bounded.all():
        f = int(np.flatnonzero(~bounded)[0])
        raise JointposeError(
            f"{path}: frame {f} (0-based, line {first_line + f}) holds a value beyond {MAX_CHANNEL_VALUE:g} "
            "(positions in the file's unit, rotations in degrees): not motion capture"
        )
    return values


def _floats(raw: bytes) -> np.ndarray:
    """The numbers in ``raw``, separated by any whitespace; a ValueError for any other token.
    numpy before 2.3 stops at such a token with a DeprecationWarning instead, made an error here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(raw, sep=" ")
        except DeprecationWarning:
            raise ValueError("unmatched data") from None


def _is_number(token: bytes) -> bool:
    """Whether ``token`` reads as one number, as :func:`_parse_frames` reads the values."""
    try:
        return _floats(token).size == 1
    except ValueError:
        return False


_CHUNK_FRAMES = 1024  # frames turned into rotations at a time


def _motion_from_values(h: dict, values: np.ndarray, frame_time: float, source: str) -> Motion:
    """Turn per-frame channel values (F, C) into local rotations and translations."""
    offsets = np.asarray(h["offsets"], dtype=np.float64).reshape(-1, 3)
    f, j = values.shape[0], len(h["names"])
    translations = np.repeat(offsets[None], f, axis=0)
    rotations = np.zeros((f, j, 4))
    rotations[..., 0] = 1.0
    starts = np.cumsum([0] + [len(c) for c in h["channels"]])
    groups: dict[str, tuple[list[int], list[list[int]]]] = {}
    pos_joint, pos_axis, pos_col = [], [], []
    for i, chans in enumerate(h["channels"]):
        rot_cols = [int(starts[i]) + k for k, c in enumerate(chans) if c in ROTATION_CHANNELS]
        for k, c in enumerate(chans):
            if c in POSITION_CHANNELS:
                pos_joint.append(i), pos_axis.append(POSITION_CHANNELS.index(c)), pos_col.append(int(starts[i]) + k)
        if rot_cols:
            joints, cols = groups.setdefault(_rotation_order(chans), ([], []))
            joints.append(i), cols.append(rot_cols)
    translations[:, pos_joint, pos_axis] += values[:, pos_col]
    for order, (joints, cols) in groups.items():
        for first in range(0, f, _CHUNK_FRAMES):  # scipy's temporaries stay a few MB
            angles = values[first : first + _CHUNK_FRAMES, np.array(cols)]  # (frames, n, len(order))
            quat = Rotation.from_euler(order, angles.reshape(-1, len(order)), degrees=True).as_quat(scalar_first=True)
            rotations[first : first + _CHUNK_FRAMES, joints] = quat.reshape(len(angles), len(joints), 4)
    return Motion(
        tuple(h["names"]),
        tuple(h["parents"]),
        offsets,
        rotations,
        translations,
        frame_time,
        tuple(h["channels"]),
        tuple(h["end_sites"]),
        source,
    )


class _HierarchyParser:
    """Parser for the HIERARCHY section (iterative: any depth), with line numbers in errors."""

    def __init__(self, header: str, source: str, has_motion: bool) -> None:
        self.tokens = [
            (tok, n)
            for n, line in enumerate(header.split("\n"), 1)
            for tok in line.replace("{", " { ").replace("}", " } ").split()
        ]
        self.end_line = header.count("\n") + 1 if has_motion else (self.tokens[-1][1] if self.tokens else 1)
        self.source, self.has_motion, self.pos = source, has_motion, 0
        self.out: dict[str, list] = {"names": [], "parents": [], "offsets": [], "channels": [], "end_sites": []}
        self.seen: set[str] = set()
        self.end_counts: dict[str, int] = {}

    def fail(self, line: int, message: str) -> None:
        raise JointposeError(f"{self.source} line {line}: {message}")

    def peek(self) -> tuple[str, int]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("", self.end_line)

    def take(self, expected: str) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            where = "reached MOTION" if self.has_motion else "file ends (truncated?)"
            self.fail(self.end_line, f"{where} while expecting {expected} (unbalanced braces or missing section)")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def keyword(self, word: str) -> int:
        tok, line = self.take(f"'{word}'")
        if tok.upper() != word.upper():
            self.fail(line, f"expected '{word}', found {brief(tok)}")
        return line

    def number(self, what: str, kind: type = float) -> float:
        tok, line = self.take(what)
        try:
            value = kind(tok)
            finite = math.isfinite(value)
        except (ValueError, OverflowError):  # not a number; an integer too large for a float
            self.fail(line, f"expected {what}, found {tok!r:.40}")
        if not finite:
            self.fail(line, f"{what} must be finite, found {brief(tok)}")
        return value

    def parse(self) -> dict[str, list]:
        self.keyword("HIERARCHY")
        while self.peek()[0].upper() == "ROOT":
            self.skeleton()
        if not self.out["names"]:
            self.fail(self.peek()[1], "expected 'ROOT' after 'HIERARCHY'")
        if self.pos < len(self.tokens):
            tok, line = self.peek()
            self.fail(line, f"unexpected {brief(tok)} after the skeleton (unbalanced braces?); expected ROOT or MOTION")
        if not self.has_motion:
            self.fail(self.end_line, "no MOTION section (file truncated?)")
        return self.out

    def add(self, name: str, parent: int, offset: list[float], channels: tuple[str, ...], end: bool, line: int) -> int:
        if len(self.out["names"]) >= limit("bvh_joints"):
            self.fail(line, f"more than {limit('bvh_joints')} joints (set JOINTPOSE_MAX_BVH_JOINTS to allow more)")
        for key, value in zip(self.out, (name, parent, offset, channels, end)):
            self.out[key].append(value)
        self.seen.add(name)
        return len(self.out["names"]) - 1

    def skeleton(self) -> None:
        """One ROOT and every joint under it. A stack of the open joints (not recursion), so
        a chain of any depth parses."""
        stack = [self.open_joint(-1)]
        while stack:
            index, name = stack[-1]
            tok, line = self.peek()
            if tok.upper() == "JOINT":
                stack.append(self.open_joint(index))
            elif tok.upper() == "END":
                self.end_site(index, name)
            elif tok == "}":
                self.take("}")
                stack.pop()
            elif not tok:
                self.take(f"JOINT, End Site or '}}' in joint {brief(name)}")
            else:
                self.fail(line, f"expected JOINT, End Site or '}}' in joint {brief(name)}, found {brief(tok)}")

    def open_joint(self, parent: int) -> tuple[int, str]:
        """Read a ROOT or JOINT header up to its CHANNELS; returns the joint's index and name."""
        _, line = self.take("ROOT or JOINT")
        words = []
        while self.pos < len(self.tokens) and self.tokens[self.pos][1] == line and self.tokens[self.pos][0] != "{":
            words.append(self.take("a joint name")[0])
        name = " ".join(words)
        if not name:
            self.fail(line, "joint without a name")
        if name in self.seen:
            self.fail(line, f"joint name {brief(name)} is used twice")
        self.keyword("{")
        self.keyword("OFFSET")
        offset = [self.number("an OFFSET number") for _ in range(3)]
        chan_line = self.keyword("CHANNELS")
        count, channels = int(self.number("the channel count", int)), []
        if not 0 <= count <= 6:
            self.fail(chan_line, f"joint {brief(name)}: CHANNELS count must be 0 to 6, found {count}")
        for _ in range(count):
            tok, tok_line = self.take("a channel name")
            if tok.upper() in ("JOINT", "END", "}"):
                self.fail(chan_line, f"joint {brief(name)}: 'CHANNELS {count}' lists fewer than {count} channel names")
            if tok.lower() not in _CANONICAL:
                self.fail(tok_line, f"unknown channel {brief(tok)} for joint {brief(name)}")
            channels.append(_CANONICAL[tok.lower()])
        problem = _check_channels(channels)
        if problem:
            self.fail(chan_line, f"joint {brief(name)}: {problem}")
        return self.add(name, parent, offset, tuple(channels), False, line), name

    def end_site(self, parent: int, name: str) -> None:
        """Read an ``End Site { OFFSET x y z }`` block of joint ``name``."""
        _, line = self.take("End Site")
        self.keyword("Site")
        self.keyword("{")
        self.keyword("OFFSET")
        end_offset = [self.number("an OFFSET number") for _ in range(3)]
        self.keyword("}")
        ends = self.end_counts[name] = self.end_counts.get(name, 0) + 1
        self.add(f"{name}_End{ends if ends > 1 else ''}", parent, end_offset, (), True, line)


def _channel_values(motion: Motion, joints: list[int]) -> np.ndarray:
    """(F, C) channel values of ``joints`` in turn: positions minus offsets, Euler angles in degrees."""
    columns = []
    for i in joints:
        chans = motion.channels[i]
        order = _rotation_order(chans)
        delta = motion.translations[:, i] - motion.offsets[i]
        unwritten = [a for a in range(3) if POSITION_CHANNELS[a] not in chans]
        if np.abs(delta[:, unwritten]).max(initial=0.0) > 1e-9 * (1.0 + np.abs(motion.offsets[i]).max()):
            raise JointposeError(
                f"write_bvh: joint {motion.names[i]} moves away from its offset "
                f"but has no position channel for it ({motion.source})"
            )
        full = order if len(order) == 3 else order + "".join(a for a in "XYZ" if a not in order)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # gimbal lock: the angles still compose exactly
            angles = Rotation.from_quat(motion.rotations[:, i], scalar_first=True).as_euler(full, degrees=True)
        if np.abs(angles[:, len(order) :]).max(initial=0.0) > 1e-6:
            raise JointposeError(
                f"write_bvh: joint {motion.names[i]} rotates about axes it has no channel for "
                f"({' '.join(chans) or 'no channels'}) ({motion.source})"
            )
        for c in chans:
            if c in POSITION_CHANNELS:
                columns.append(delta[:, POSITION_CHANNELS.index(c)])
            else:
                columns.append(angles[:, order.index(c[0])])
    return np.stack(columns, axis=1) if columns else np.zeros((motion.num_frames, 0))


def write_bvh(motion: Motion, path: str | Path) -> None:
    """Write ``motion`` as a BVH file (values with 10 significant digits).

    Joints are written depth first (children in index order); End Sites lose their names and
    read back as ``<parent>_End``.
    """
    path = file_path(path, "path")
    children: list[list[int]] = [[] for _ in motion.names]
    for i, p in enumerate(motion.parents):
        if p >= 0:
            children[p].append(i)
    lines, written = ["HIERARCHY"], []
    # Depth first with a stack of (joint, depth) to open and (None, depth) to close, so any
    # depth writes; indentation stops growing after 40 levels.
    stack: list[tuple[int | None, int]] = [
        (root, 0) for root in reversed(range(len(motion.names))) if motion.parents[root] < 0
    ]
    while stack:
        i, depth = stack.pop()
        pad = "  " * min(depth, 40)
        if i is None:
            lines.append(f"{pad}}}")
            continue
        off = " ".join(f"{v:.10g}" for v in motion.offsets[i])
        if motion.end_sites[i]:
            if children[i]:
                raise JointposeError(f"write_bvh: End Site {motion.names[i]} has children ({motion.source})")
            lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad}  OFFSET {off}", f"{pad}}}"])
            continue
        keyword = "ROOT" if motion.parents[i] < 0 else "JOINT"
        written.append(i)
        chans = motion.channels[i]
        lines.extend(
            [
                f"{pad}{keyword} {motion.names[i]}",
                f"{pad}{{",
                f"{pad}  OFFSET {off}",
                f"{pad}  CHANNELS {len(chans)} {' '.join(chans)}".rstrip(),
            ]
        )
        stack.append((None, depth))
        stack.extend((c, depth + 1) for c in reversed(children[i]))
    values = _channel_values(motion, written)  # columns in the order the joints are written
    lines.extend(["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {motion.frame_time:.10g}"])
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        np.savetxt(fh, values, fmt="%.10g")
