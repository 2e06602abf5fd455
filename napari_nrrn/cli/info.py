"""``napari-nrrn info PATH``: what a stack is (shape, type, chunks, voxel size, size on disk), reading
metadata only; with ``--noise``, also its noise and the drift between adjacent slices, measured on a few
slices."""

from __future__ import annotations

import argparse
import math

from napari_nrrn.words import plural


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        help="TIFF, folder of TIFF or .dat slices, Zarr/OME-Zarr, N5, MRC, HDF5 (file.h5/dataset), .dat file",
    )
    parser.add_argument(
        "--channel", type=int, default=None, help="detector channel of a multi-channel file (default 0)"
    )
    parser.add_argument(
        "--noise",
        action="store_true",
        help="also measure the noise (level, correlation across z, rows and columns) and the drift between "
        "adjacent slices on a few slices",
    )


def run(args: argparse.Namespace) -> int:
    from napari_nrrn.io.stack import inspect_stack

    found = inspect_stack(args.path, channel=args.channel)
    array = found.array
    z, y, x = array.shape
    chunk = tuple(c[0] for c in array.chunks)
    voxel = found.voxel_size
    lines = [
        ("path", str(found.path)),
        ("format", found.format),
        ("shape", f"{z} x {y} x {x} (Z, Y, X)"),
        ("dtype", str(array.dtype)),
        ("chunks", f"{chunk} per chunk, {plural(math.prod(array.numblocks), 'chunk')} (one per slice)"),
        ("voxel size", "unknown (not in the file's metadata)" if voxel is None else _voxel_text(voxel)),
        *([("z step", "not recorded: taken equal to the pixel size")] if found.z_step_assumed else []),
        ("size in memory", _bytes(array.nbytes)),
        (
            "size on disk",
            _bytes(found.disk_bytes) + (f" in {len(found.files)} files" if len(found.files) > 1 else ""),
        ),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    if args.noise:
        from napari_nrrn.measures.noise import estimate_noise

        report = estimate_noise(array)
        print()
        for line in report.describe():
            print(line)
        for warning in report.warnings():
            print(f"warning: {warning}")
        _print_drift(array)
    return 0


def _print_drift(array) -> None:
    from napari_nrrn.measures.drift import estimate_drift

    if array.shape[0] < 2:
        print("drift between slices: not measured (a single slice)")
        return
    try:
        drift = estimate_drift(array)
    except ValueError as error:
        print(f"drift between slices: not measured ({error})")
        return
    for line in drift.describe():
        print(line)
    for warning in drift.warnings():
        print(f"warning: {warning}")


def _voxel_text(voxel: tuple[float, float, float]) -> str:
    return " x ".join(f"{v:g}" for v in voxel) + " nm (z, y, x)"


def _bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
