"""A reader of .safetensors files written from the format's specification alone (not the
library under test): an 8-byte little-endian header length, a JSON header, then the raw
tensors. It checks that every data byte belongs to exactly one tensor, so a file it reads
has no room for anything but numbers (no pickle, no code)."""

import json
from pathlib import Path

import numpy as np

DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_plain_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors as numpy arrays, metadata strings) of a safetensors file; AssertionError if it
    holds anything else."""
    raw = Path(path).read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    metadata = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in metadata.values())
    data = raw[8 + length :]
    position, tensors = 0, {}
    for key, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        start, end = entry["data_offsets"]
        assert start == position, f"{key}: bytes {position}..{start} belong to no tensor"
        dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
        assert end - start == dtype.itemsize * int(np.prod(entry["shape"], dtype=np.int64)), key
        tensors[key] = np.frombuffer(data[start:end], dtype=dtype).reshape(entry["shape"])
        position = end
    assert position == len(data), f"{len(data) - position} bytes after the last tensor"
    return tensors, metadata


def save_with_weight(lifter, path: str | Path, key: str, index: tuple[int, ...], value: float) -> Path:
    """``lifter`` saved to ``path`` with one weight (``key``, e.g. ``pose.shrink.weight``, at
    ``index``) set to ``value`` in the file: a model file ``Lifter.save`` itself refuses to
    write (NaN, a negative variance), for the loaders' checks."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    lifter.save(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    tensors[key][index] = value
    save_file(tensors, str(path), metadata=metadata)
    return Path(path)
