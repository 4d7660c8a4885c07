"""Map a BVH rig's joints onto the Human3.6M 17-joint layout (metres, Z up).

A mapping is a JSON object::

    {
      "name": "my-rig",
      "unit_scale": 0.01,        # metres per file unit (0.01 for centimetres); default 1
      "up_axis": "y",            # the rig world's up axis, "y" or "z"; default "z"
      "joints": {                # one entry for each of the 17 Human3.6M joint names
        "Hip": "pelvis",                                    # a rig joint
        "Spine": {"mean": ["spine1", "spine2"]},            # the mean of several rig joints
        "Head": {"joint": "head", "offset": [0, 18, 2]}     # a point fixed in a joint's frame
      }
    }

Human3.6M joint names are those of :data:`jointpose.geometry.skeleton.JOINT_NAMES`; ``offset`` is in
file units along the axes of that joint's local frame (for points such as the nose or the
top of the head that a rig may lack). Other keys (e.g. ``description``) are ignored. A
Y-up world is turned to Z up by a +90 degree rotation about X: ``(x, y, z) -> (x, -z, y)``.

The built-in map ``cmu`` (``resources/rigs/cmu_cc_base.json``, an example of the schema)
fits the ``CC_Base_*`` rig of the CMU clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jointpose.errors import JointposeError
from jointpose.geometry import skeleton
from jointpose.motion.bvh import Motion, global_transforms, read_bvh, resample
from jointpose.safeio import check_path, is_real_number, read_text_file

BUILTIN_RIGS = {"cmu": "cmu_cc_base.json"}


@dataclass(frozen=True)
class JointSource:
    """How one Human3.6M joint is found: the mean of ``joints``, or ``joints[0]`` plus ``offset``."""

    joints: tuple[str, ...]
    offset: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class RigMapping:
    """A rig -> Human3.6M-17 map: one :class:`JointSource` per joint, in skeleton order."""

    name: str
    unit_scale: float
    up_axis: str
    sources: tuple[JointSource, ...]
    origin: str = "<memory>"

    def rig_joints(self) -> tuple[str, ...]:
        """Every rig joint the mapping names, sorted."""
        return tuple(sorted({name for source in self.sources for name in source.joints}))

    def fits(self, motion: Motion) -> bool:
        """Whether ``motion`` has every rig joint this mapping needs."""
        return set(self.rig_joints()) <= set(motion.names)

    @classmethod
    def from_dict(cls, data: Any, origin: str) -> RigMapping:
        """Validate a parsed mapping; the error names ``origin`` and every bad entry."""
        if not isinstance(data, dict) or not isinstance(data.get("joints"), dict):
            raise JointposeError(f"rig mapping {origin}: needs a 'joints' object")
        joints = data["joints"]
        problems = []
        missing = [name for name in skeleton.JOINT_NAMES if name not in joints]
        if missing:
            problems.append(f"no entry for Human3.6M joints {', '.join(missing)}")
        unknown = [name for name in joints if name not in skeleton.JOINT_NAMES]
        if unknown:
            problems.append(f"unknown Human3.6M joint names {', '.join(map(repr, unknown))}")
        sources = {name: _source(spec) for name, spec in joints.items()}
        bad = [name for name, source in sources.items() if source is None]
        if bad:
            problems.append(
                f"entries for {', '.join(bad)} must be a joint name, "
                '{"mean": [names]} or {"joint": name, "offset": [x, y, z]} (x, y, z finite numbers)'
            )
        scale, up = data.get("unit_scale", 1.0), data.get("up_axis", "z")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 1e-6 <= scale <= 1e3:
            problems.append(
                f"unit_scale must be metres per file unit in [1e-06, 1000] (micrometres to km), got {scale!r}"
            )
        if up not in ("y", "z"):
            problems.append(f"up_axis must be 'y' or 'z', got {up!r}")
        if problems:
            raise JointposeError(f"rig mapping {origin}: " + "; ".join(problems))
        return cls(
            str(data.get("name", origin)),
            float(scale),
            up,
            tuple(sources[name] for name in skeleton.JOINT_NAMES),
            origin,
        )


def _source(spec: Any) -> JointSource | None:
    """One 'joints' entry as a JointSource (None when malformed)."""
    if isinstance(spec, str) and spec:
        return JointSource((spec,))
    if not isinstance(spec, dict):
        return None
    if (
        set(spec) == {"mean"}
        and isinstance(spec["mean"], list)
        and spec["mean"]
        and all(isinstance(s, str) and s for s in spec["mean"])
    ):
        return JointSource(tuple(spec["mean"]))
    offset = spec.get("offset")
    if (
        set(spec) == {"joint", "offset"}
        and isinstance(spec["joint"], str)
        and isinstance(offset, list)
        and len(offset) == 3
        and all(is_real_number(v) for v in offset)
    ):
        return JointSource((spec["joint"],), tuple(float(v) for v in offset))
    return None


def load_rig_mapping(path: str | Path) -> RigMapping:
    """Read a mapping file (JSON, schema in the module docstring)."""
    path = check_path(path, "path")
    text = read_text_file(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JointposeError(f"rig mapping {path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # too many digits, or nested too deeply
        raise JointposeError(f"rig mapping {path}: not valid JSON ({type(exc).__name__})") from None
    return RigMapping.from_dict(data, str(path))


def builtin_rig_mapping(name: str = "cmu") -> RigMapping:
    """A mapping shipped with jointpose: ``cmu`` fits the CC_Base rig of the CMU clips."""
    if name not in BUILTIN_RIGS:
        raise JointposeError(f"unknown built-in rig {name!r} (known: {', '.join(BUILTIN_RIGS)})")
    text = resources.files("jointpose").joinpath("resources", "rigs", BUILTIN_RIGS[name]).read_text("utf-8")
    return RigMapping.from_dict(json.loads(text), f"built-in '{name}'")


def detect_rig_mapping(motion: Motion) -> RigMapping:
    """The first built-in mapping whose rig joints all exist in ``motion``."""
    for name in BUILTIN_RIGS:
        mapping = builtin_rig_mapping(name)
        if mapping.fits(motion):
            return mapping
    raise JointposeError(
        f"{motion.source}: no built-in rig mapping ({', '.join(BUILTIN_RIGS)}) fits its joints "
        f"({', '.join(motion.names[:3])}, ...); supply a mapping file (data build --rig FILE)"
    )


def motion_to_h36m(motion: Motion, mapping: RigMapping | None = None) -> np.ndarray:
    """Human3.6M-17 world positions (F, 17, 3) in metres, Z up (mapping detected when None)."""
    mapping = mapping or detect_rig_mapping(motion)
    absent = [name for name in mapping.rig_joints() if name not in motion.names]
    if absent:
        raise JointposeError(
            f"{motion.source}: lacks the rig joints {', '.join(absent)} named by rig mapping {mapping.origin}"
        )
    used = mapping.rig_joints()
    column = {name: k for k, name in enumerate(used)}
    weights = np.zeros((skeleton.NUM_JOINTS, len(used)))
    for k, source in enumerate(mapping.sources):
        weights[k, [column[name] for name in source.joints]] = 1.0 / len(source.joints)
    positions, rotations = global_transforms(motion)
    index = [motion.names.index(name) for name in used]
    out = np.einsum("ku,fud->fkd", weights, positions[:, index])
    fixed = [k for k, source in enumerate(mapping.sources) if source.offset is not None]
    if fixed:
        frames = rotations[:, [motion.names.index(mapping.sources[k].joints[0]) for k in fixed]]
        offsets = np.array([mapping.sources[k].offset for k in fixed])
        out[:, fixed] += np.einsum("fnab,nb->fna", frames, offsets)
    out *= mapping.unit_scale
    if mapping.up_axis == "y":
        out = np.stack([out[..., 0], -out[..., 2], out[..., 1]], axis=-1)
    return out


def bvh_to_h36m(
    path: str | Path, mapping: RigMapping | None = None, fps: float | None = None
) -> tuple[np.ndarray, float]:
    """Read a BVH file, optionally resample it to ``fps``, and map it: ((F, 17, 3) metres Z up, fps)."""
    motion = read_bvh(path)
    if fps is not None:
        motion = resample(motion, fps)
    return motion_to_h36m(motion, mapping), motion.fps
