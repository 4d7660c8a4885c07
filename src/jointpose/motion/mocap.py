"""Motion capture folders -> per-subject, per-action Human3.6M-17 motion in metres, Z up.

Layout: each sub-folder of the BVH folder is a subject, each ``.bvh`` file an action.
Action names come from an ``index.csv`` beside the folders (columns ``file`` and
``description``, optionally ``trial``) when it lists the file, else from the file name;
``/`` becomes ``-`` so names are safe in ``<subject>/<action>/<camera>`` keys, and
descriptions repeated within a subject get the trial number (``walk 1``, ``walk 2``).

Subjects get Human3.6M names (S1, S5, S6, S7, S8, S9, S11) in sorted folder order unless
a map says otherwise, because the Human3.6M calibration is looked up by subject name.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.geometry.bones import (
    body_factors,
    bone_vectors,
    positions_from_bones,
    recentre,
    scale_body,
)
from jointpose.motion.builder import H36M_SUBJECTS
from jointpose.motion.rigs import RigMapping, bvh_to_h36m
from jointpose.safeio import check_path, read_text_file


def parse_subject_map(text: str | None) -> dict[str, str]:
    """``"001=S1,002=S5"`` -> ``{"001": "S1", "002": "S5"}``."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        folder, sep, name = item.partition("=")
        if not sep or not folder.strip() or not name.strip():
            raise JointposeError(
                "{0}: expected FOLDER=NAME pairs separated by commas, got '{item}'", fields=("subjects",), item=item
            )
        if folder.strip() in out:
            raise JointposeError(
                "{0}: folder '{folder}' is named twice ({first} and {second})",
                fields=("subjects",),
                folder=folder.strip(),
                first=out[folder.strip()],
                second=name.strip(),
            )
        if "/" in name:  # sequence keys are SUBJECT/ACTION/CAMERA
            raise JointposeError(
                "{0}: subject name '{name}' holds '/', which separates subject, action and camera in sequence keys",
                fields=("subjects",),
                name=name.strip(),
            )
        out[folder.strip()] = name.strip()
    return out


def subject_names(folders: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Subject name of each folder: the map's, else the next free Human3.6M name."""
    unknown = sorted(set(mapping) - set(folders))
    if unknown:
        raise JointposeError(
            "{0} names folders that hold no BVH files: {folders}", fields=("subjects",), folders=", ".join(unknown)
        )
    free = [n for n in H36M_SUBJECTS if n not in mapping.values()]
    unmapped = [f for f in folders if f not in mapping]
    if len(unmapped) > len(free):
        raise JointposeError(
            "{count} subject folders but only {names} Human3.6M subject names; map the rest with {0} FOLDER=NAME "
            "(and use a camera ring for non-Human3.6M names)",
            fields=("subjects",),
            count=len(folders),
            names=len(H36M_SUBJECTS),
        )
    names = dict(mapping)
    names.update(zip(unmapped, free))
    if len(set(names.values())) != len(names):
        raise JointposeError("{0} gives two folders the same subject name", fields=("subjects",))
    return names


def read_index(folder: Path) -> dict[str, tuple[str, str]]:
    """``index.csv``: relative file path -> (description, trial); empty when absent."""
    path = folder / "index.csv"
    if not path.is_file():
        return {}
    reader = csv.DictReader(io.StringIO(read_text_file(path), newline=""))
    try:
        if not reader.fieldnames or not {"file", "description"} <= set(reader.fieldnames):
            raise JointposeError(f"{path}: needs 'file' and 'description' columns")
        return {
            (row["file"] or "").strip(): ((row["description"] or "").strip(), (row.get("trial") or "").strip())
            for row in reader
        }
    except csv.Error as exc:
        raise JointposeError(f"{path} line {reader.line_num}: not a CSV file ({exc})") from None


def action_names(files: list[Path], root: Path, index: dict[str, tuple[str, str]]) -> list[str]:
    """Unique, key-safe action names for one subject's files (see the module docstring)."""
    raw = []
    for f in files:
        description, trial = index.get(f.relative_to(root).as_posix(), ("", ""))
        name = re.sub(r"\s+", " ", description.replace("/", "-")).strip() or f.stem
        raw.append((name, trial or f.stem))
    counts = Counter(name for name, _ in raw)
    names = [f"{name} {trial}" if counts[name] > 1 else name for name, trial in raw]
    if len(set(names)) != len(names):  # e.g. equal trial numbers: fall back to file names
        names = [f"{name} {f.stem}" if counts[name] > 1 else name for (name, _), f in zip(raw, files)]
    return names


def rigid_bones(poses: np.ndarray) -> np.ndarray:
    """Give every bone its median length over the clip, keeping its direction (frames, 17, 3).

    Human3.6M's joints are a rigid skeleton; mapped rig points that span bending joints
    (spine, neck, clavicles) otherwise change length by a few centimetres.
    """
    vectors = bone_vectors(poses)
    lengths = np.linalg.norm(vectors, axis=-1, keepdims=True)
    directions = vectors / np.maximum(lengths, 1e-9)
    return positions_from_bones(poses[:, 0], directions * np.median(lengths, axis=0))


def bvh_groups(root: Path) -> dict[str, list[Path]]:
    """{sub-folder name: its .bvh files, sorted} of ``root``'s sub-folders that hold any (one
    per subject), in name order."""
    if not root.is_dir():
        raise JointposeError("{0}: directory not found: {path}", fields=("bvh",), path=root)
    groups = {d.name: sorted(d.glob("*.bvh")) for d in sorted(root.iterdir()) if d.is_dir()}
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise JointposeError(
            "{0} {path}: no sub-folders with .bvh files (one folder per subject)", fields=("bvh",), path=root
        )
    return groups


def load_bvh_folder(
    folder: str | Path,
    *,
    fps: float = 50.0,
    subjects: dict[str, str] | None = None,
    mapping: RigMapping | None = None,
    body_scaling: bool = True,
    seed: int = 0,
    ankle_height: float = 0.08,
) -> dict[str, dict[str, np.ndarray]]:
    """Every clip of a BVH folder as ``{subject: {action: (frames, 17, 3) metres, Z up}}``.

    Clips are resampled (slerp) to ``fps``, given rigid bones, rescaled per subject when
    ``body_scaling`` (overall size and proportions, seeded), re-centred in the capture
    area and put on the floor (lowest ankle at ``ankle_height`` metres).
    """
    root = check_path(folder, "folder")
    groups = bvh_groups(root)
    names = subject_names(list(groups), subjects or {})
    index = read_index(root)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for folder_name, files in groups.items():
        factors = body_factors(rng) if body_scaling else np.ones(len(skeleton.BONES))
        subject = names[folder_name]
        out[subject] = {}
        for action, path in zip(action_names(files, root, index), files):
            poses, _ = bvh_to_h36m(path, mapping, fps)
            poses = recentre(scale_body(rigid_bones(poses), factors))
            poses[..., 2] += ankle_height - poses[:, [3, 6], 2].min()
            out[subject][action] = poses
    return out
