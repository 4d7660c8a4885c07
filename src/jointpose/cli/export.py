"""``jointpose export``: a model as ONNX."""

from __future__ import annotations

import argparse

from jointpose.cli.common import add_model_source, model_file, model_source
from jointpose.errors import JointposeError


def add_export_flags(p: argparse.ArgumentParser) -> None:
    """The ``export`` verb: a model as ONNX (docs/onnx.md)."""
    add_model_source(p, "model", nargs="?", help="training checkpoint (file or folder) or .safetensors model")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument(
        "--streaming", action="store_true", help="export one step of a causal model, layer caches as inputs/outputs"
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> None:
    """``jointpose export``: a model, or a bundled one, as ONNX."""
    from jointpose.inference.onnx import OPSET, export_onnx, onnx_path
    from jointpose.model.loading import load_model
    from jointpose.safeio import check_outputs

    onnx_path(args.onnx, "--onnx")
    check_outputs({"--onnx": args.onnx}, {"model": model_file(args.model)})  # before the export, not after it
    with model_source(args.model, args.pretrained) as model:
        try:
            loaded = load_model(model, "cpu")
        except JointposeError as exc:  # the loader names a --checkpoint; export reads its positional model
            raise JointposeError(exc.naming({"checkpoint": "model"})) from None
    path = export_onnx(loaded, args.onnx, streaming=args.streaming)
    print(f"wrote {path} ({'streaming step' if args.streaming else 'full sequence'}, ONNX opset {OPSET})")
