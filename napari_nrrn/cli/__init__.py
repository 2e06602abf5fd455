"""The ``napari-nrrn`` command line. Each subcommand lives in its own module of this package,
with ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports stay inside ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys

from napari_nrrn import __version__
from napari_nrrn.words import cli_message

# name -> one-line help; the module napari_nrrn.cli.<name> implements it.
SUBCOMMANDS = {
    "info": "print shape, dtype, chunking and voxel size of a stack without reading pixels",
    "train": "train an NRRN model on a noisy stack",
    "denoise": "denoise a stack to TIFF or OME-Zarr",
    "demo": "denoise the shipped sample stack with the shipped model and plot a resin profile",
    "export": "write a model as a BioImage.IO model package (.zip) for the BioImage Model Zoo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-nrrn", description="Unsupervised NRRN denoising of FIB-SEM stacks."
    )
    parser.add_argument("--version", action="version", version=f"napari-nrrn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        module = importlib.import_module(f"napari_nrrn.cli.{name}")
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        # Bad input and faults of the disk are the user's to fix: one plain line, no traceback.
        print(f"napari-nrrn {args.command}: error: {error_line(error, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-nrrn {args.command}: cancelled", file=sys.stderr)
        return 130


def error_line(error: Exception, args: argparse.Namespace) -> str:
    """What to print for ``error``: our own messages as they are; a system error (one with an errno) as what
    went wrong on which file (the command's output when it names none) and what to do."""
    if not isinstance(error, OSError) or error.errno is None:
        return cli_message(error)
    from napari_nrrn.io.writers import os_error_message

    return os_error_message(error, getattr(args, "output", None))


if __name__ == "__main__":
    sys.exit(main())
