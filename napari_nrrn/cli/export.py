"""``napari-nrrn export MODEL OUT.zip``: write a model as a BioImage.IO model package (spec 0.5), for the
BioImage Model Zoo and the tools that read it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, help="napari-nrrn model, authors' state dict or BioImage.IO package"
    )
    parser.add_argument("out", type=Path, help="the package to write (.zip)")
    parser.add_argument(
        "--depth", type=int, default=None, help="export the model cut to its first K blocks (default: all)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def run(args: argparse.Namespace) -> int:
    from napari_nrrn.model.bioimageio import check_export, export_bioimageio
    from napari_nrrn.model.checkpoint import load_model

    check_export(args.out, args.overwrite)
    model = load_model(args.model)
    if args.depth is not None and not 1 <= args.depth <= model.depth:
        raise ValueError(
            f"--depth {args.depth}: {args.model} has depth {model.depth}; choose 1..{model.depth}"
        )
    path = export_bioimageio(model, args.out, overwrite=args.overwrite, depth=args.depth)
    depth = model.depth if args.depth is None else args.depth
    print(f"wrote {path}: NRRN depth {depth} of {model.depth}, width {model.width}")
    print(f"check it with: bioimageio test {path}  (pip install bioimageio.core)")
    return 0
