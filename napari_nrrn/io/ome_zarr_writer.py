"""OME-Zarr output: a multiscale pyramid in x and y, written one slice at a time.

Levels: ``"0"`` is the stack itself; level ``k + 1`` is the 2x2 mean of level ``k`` in y and x (z untouched),
``pyramid_levels`` of them: levels are added while the halved level is still at least ``MIN_LEVEL_SIDE``
(512) px on its longer side, so the smallest level is 512 to 1023 px there (6144x4096 slices: 4 levels,
down to 768x512); a slice under 1024 px on both sides has level 0 only.

The 2x2 mean, exactly (``downsample``):
- odd sizes: a level is ``floor(n / 2)`` pixels along y and x; the last row or column of an odd-sized
  level has no partner and is left out of the next level (less than one pixel of that level).
- integers: the mean rounded to the nearest integer, halves up (``floor((a + b + c + d + 2) / 4)``), computed
  without overflow in the stack's own type; floats: the sum in float64 divided by 4, cast to the stack's type.

NGFF: level ``k`` has scale ``(vz, 2**k vy, 2**k vx)`` and translation ``(0, (2**k - 1) vy / 2,
(2**k - 1) vx / 2)``: a level-k pixel is the mean of a ``2**k``-pixel square of level 0, whose centre lies
``(2**k - 1) / 2`` level-0 pixels beyond the centre of its first pixel. Voxel size in nm; without one, a
unit voxel and no unit. NGFF 0.5 is Zarr v3; NGFF 0.4 is Zarr v2 with "/" chunk keys and Blosc-LZ4 (zarr
2's default), for readers such as ilastik and webKnossos. Every level has chunks of one slice (tiles of
4096 px for slices over 64 MiB), so reading one slice of a level reads one chunk.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

MIN_LEVEL_SIDE = 512
MAX_CHUNK_BYTES = 64 * 2**20
ZARR_TILE = 4096
NGFF_VERSIONS = ("0.5", "0.4")


def pyramid_levels(height: int, width: int) -> int:
    """How many levels a (height, width) slice gets, level 0 included (see the module docstring)."""
    levels = 1
    while max(height, width) // 2 >= MIN_LEVEL_SIDE and min(height, width) >= 2:
        height, width = height // 2, width // 2
        levels += 1
    return levels


def downsample(plane: np.ndarray) -> np.ndarray:
    """The 2x2 mean of a 2-D plane (the rounding and odd-size rule of the module docstring)."""
    height, width = (n - n % 2 for n in plane.shape)
    corners = [plane[dy:height:2, dx:width:2] for dy in (0, 1) for dx in (0, 1)]
    if plane.dtype.kind in "iu":
        # floor((a+b+c+d+2)/4) = sum of floor(x/4) + floor((sum of x mod 4 + 2)/4): no partial sum leaves the
        # range of the type, so int8 to uint64 need no wider type.
        quotient = sum(corner // 4 for corner in corners)
        remainder = sum(corner % 4 for corner in corners)
        return (quotient + (remainder + 2) // 4).astype(plane.dtype)
    total = sum(corner.astype(np.float64) for corner in corners)
    return (total / 4).astype(plane.dtype)


def pyramid(plane: np.ndarray, levels: int) -> list[np.ndarray]:
    """``[plane, downsample(plane), downsample(downsample(plane)), ...]``, ``levels`` planes."""
    planes = [plane]
    for _ in range(levels - 1):
        planes.append(downsample(planes[-1]))
    return planes


def level_shapes(shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    depth, height, width = shape
    shapes = []
    for _ in range(pyramid_levels(height, width)):
        shapes.append((depth, height, width))
        height, width = height // 2, width // 2
    return shapes


def _chunks(shape: tuple[int, int, int], dtype: np.dtype) -> tuple[int, int, int]:
    _, height, width = shape
    if height * width * dtype.itemsize <= MAX_CHUNK_BYTES:
        return (1, height, width)
    return (1, min(height, ZARR_TILE), min(width, ZARR_TILE))


def multiscales_datasets(levels: int, voxel) -> list[dict]:
    """The NGFF ``datasets`` entries: path, scale and (below level 0) the half-pixel translation."""
    vz, vy, vx = voxel or (1.0, 1.0, 1.0)
    datasets = []
    for level in range(levels):
        factor = 2**level
        transforms = [{"type": "scale", "scale": [vz, vy * factor, vx * factor]}]
        if level:
            shift = (factor - 1) / 2
            transforms.append({"type": "translation", "translation": [0.0, vy * shift, vx * shift]})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    return datasets


def create_ome_zarr(
    path: str | os.PathLike, shape: tuple[int, int, int], dtype: np.dtype, voxel, name: str, ngff: str
) -> list:
    """An empty OME-Zarr pyramid at ``path`` (the group, its metadata, every level's array); its arrays."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    if ngff not in NGFF_VERSIONS:
        raise ValueError(f"NGFF version {ngff!r}: choose one of {', '.join(NGFF_VERSIONS)}")
    group = zarr.open_group(str(path), mode="w", zarr_format=3 if ngff == "0.5" else 2)
    arrays = []
    for level, level_shape in enumerate(level_shapes(shape)):
        options = {"shape": level_shape, "chunks": _chunks(level_shape, dtype), "dtype": dtype}
        options["fill_value"] = 0
        if ngff == "0.5":
            options["dimension_names"] = ("z", "y", "x")
        else:
            from numcodecs import Blosc

            options.update(
                chunk_key_encoding={"name": "v2", "separator": "/"},
                compressors=Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE),
            )
        arrays.append(group.create_array(str(level), **options))
    unit = {"unit": "nanometer"} if voxel else {}
    write_multiscales_metadata(
        group,
        datasets=multiscales_datasets(len(arrays), voxel),
        fmt=FormatV05() if ngff == "0.5" else FormatV04(),
        axes=[{"name": axis, "type": "space", **unit} for axis in "zyx"],
        name=name,
    )
    return arrays


def open_levels(path: str | os.PathLike, levels: int) -> list:
    """The level arrays of an OME-Zarr written by ``create_ome_zarr``, for writing."""
    import zarr

    return [zarr.open_array(str(Path(path) / str(level)), mode="r+") for level in range(levels)]


def write_slices(arrays: list, start: int, slices: np.ndarray) -> list[np.ndarray]:
    """Write ``slices`` (n, Y, X) at ``start`` into every level; returns what each level received."""
    per_level = [[] for _ in arrays]
    for plane in slices:
        for level, level_plane in enumerate(pyramid(plane, len(arrays))):
            per_level[level].append(level_plane)
    written = [np.stack(planes) for planes in per_level]
    for array, block in zip(arrays, written, strict=True):
        array[start : start + len(block)] = block
    return written


def ome_zarr_writer(shape: tuple[int, int, int], dtype: np.dtype, voxel, name: str, ngff: str = "0.5"):
    """A context-manager factory for ``writers._write_slices``: ``open_writer(path)`` creates the pyramid
    and yields ``write_plane(z, plane)``, which writes a slice and its levels."""

    @contextmanager
    def open_writer(temporary: Path):
        arrays = create_ome_zarr(temporary, shape, dtype, voxel, name, ngff)

        def write_plane(z: int, plane: np.ndarray) -> None:
            write_slices(arrays, z, plane.astype(dtype, copy=False)[None])

        yield write_plane

    return open_writer
