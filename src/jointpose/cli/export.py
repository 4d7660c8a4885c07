"""``jointpose export``: a model as ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jointpose.cli.common import model_file
from jointpose.errors import JointposeError


def add_export_parser(verbs: Any) -> None:
    """The ``export`` verb: a model as ONNX (docs/onnx.md)."""
    p = verbs.add_parser(
        "export", help="write a model as ONNX (full sequence, or one streaming step of a causal model)"
    )
    from jointpose.inference.lifter import PRETRAINED

    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("model", nargs="?", help="training checkpoint (file or folder) or .safetensors model")
    model.add_argument("--pretrained", choices=tuple(PRETRAINED), help="a bundled model instead (docs/model-card.md)")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument(
        "--streaming", action="store_true", help="export one step of a causal model, layer caches as inputs/outputs"
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> None:
    from jointpose.inference.lifter import pretrained_file
    from jointpose.inference.onnx import OPSET, export_onnx
    from jointpose.model.loading import load_model
    from jointpose.safeio import check_outputs

    if Path(args.onnx).suffix != ".onnx":
        raise JointposeError(f"--onnx {args.onnx}: the file name must end in .onnx")
    check_outputs({"--onnx": args.onnx}, {"model": model_file(args.model)})  # before the export, not after it
    if args.pretrained is not None:
        with pretrained_file(args.pretrained) as path:
            loaded = load_model(path, "cpu")
    else:
        try:
            loaded = load_model(args.model, "cpu")
        except JointposeError as exc:  # the loader names a --checkpoint; export reads its positional model
            raise JointposeError(exc.naming({"checkpoint": "model"})) from None
    path = export_onnx(loaded, args.onnx, streaming=args.streaming)
    print(f"wrote {path} ({'streaming step' if args.streaming else 'full sequence'}, ONNX opset {OPSET})")
