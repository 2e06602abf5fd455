"""TIFF: multi-page TIFF / BigTIFF, ImageJ hyperstacks and OME-TIFF (a 2-D TIFF opens as Z=1), and a folder
of per-slice TIFFs (natural sort: ``s2`` before ``s10``).

Opening reads the tags and IFDs only. Uncompressed contiguous planes are read with one positioned read each;
compressed, tiled or scattered pages are decoded by tifffile, page by page.
"""

from __future__ import annotations

import contextlib
import logging
import math
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from napari_nrrn.io.formats.base import (
    RawPlane,
    StackInfo,
    VoxelSize,
    calibration,
    check_channel,
    check_grey,
    corrupt,
    file_or_slice_folder,
    first_file,
    lazy,
    nm,
    slice_files,
)
from napari_nrrn.words import plural

NAME = "TIFF"
SUFFIXES = (".tif", ".tiff")


def recognises(path: Path) -> bool:
    """A TIFF file, or a folder of TIFF slices (by their names)."""
    return file_or_slice_folder(path, SUFFIXES)


def content_ok(path: Path) -> bool:
    """The (first) TIFF's first page is grey-level: napari's own reader is better for colour images."""
    return _first_page_is_grey(first_file(path, SUFFIXES))


def inspect(path: Path, channel: int | None) -> StackInfo:
    if path.is_dir():
        return _inspect_folder(path, slice_files(path, SUFFIXES), channel)
    found = _tiff_stack(path, channel)
    array = lazy(found.planes, found.plane_shape, found.dtype, path.stat().st_mtime_ns)
    return StackInfo(path, found.format, array, *found.calibration, files=(path,))


def folder_calibration(folder: Path) -> tuple[VoxelSize | None, bool]:
    """The calibration of a folder of slices from its first file: no need to read every header."""
    return _tiff_stack(slice_files(folder, SUFFIXES)[0], None).calibration


@dataclass(frozen=True)
class TiffPagePlane:
    """A TIFF page that tifffile decodes (compressed, tiled or scattered strips), found by its IFD offset."""

    path: str
    ifd_offset: int
    index: int

    def read(self) -> np.ndarray:
        with tifffile.TiffFile(self.path) as tif:
            tif.filehandle.seek(self.ifd_offset)
            return tifffile.TiffPage(tif, self.index).asarray()


class _LoggedErrors(logging.Handler):
    """Collects what tifffile logs at ERROR level: it logs (instead of raising) corrupt IFDs and metadata,
    then silently returns fewer pages."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _open_tiff(path: Path) -> Iterator[tuple[tifffile.TiffFile, _LoggedErrors]]:
    errors = _LoggedErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(errors)
    try:
        try:
            tif = tifffile.TiffFile(path)
        except (ValueError, struct.error, EOFError, IndexError) as error:
            raise ValueError(
                f"{path} is not a readable TIFF ({error}): check that it is an image, copied completely"
            ) from None
        with tif:
            yield tif, errors
    finally:
        logger.removeHandler(errors)


def _first_page_is_grey(path: Path) -> bool:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        return page.samplesperpixel == 1 and np.dtype(page.dtype).kind in "biuf"


@dataclass(frozen=True)
class _FoundTiff:
    planes: list
    plane_shape: tuple[int, int]
    dtype: np.dtype
    format: str
    calibration: tuple[VoxelSize | None, bool]


def _tiff_stack(path: Path, channel: int | None) -> _FoundTiff:
    """The planes (one per slice) of the first image series of a TIFF, their data checked to lie inside
    the file, and the voxel size from ImageJ or OME metadata."""
    file_size = path.stat().st_size
    with _open_tiff(path) as (tif, errors):
        if not tif.series:
            raise ValueError(f"{path} holds no image: choose an image file")
        series = tif.series[0]
        if errors.messages:
            raise corrupt(path, errors.messages[0])
        dtype = np.dtype(series.dtype)
        if dtype.kind == "c":
            check_grey(path, dtype)
        axes, shape = series.axes, tuple(series.shape)
        if "S" in axes or series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB:
            raise ValueError(
                f"{path} is an RGB/colour image (axes {axes}); electron micrographs are grey-level: convert "
                "it to grey values (e.g. in Fiji: Image > Type > 8-bit) and save it again"
            )
        if axes[-2:] != "YX" or dtype.kind not in "biuf":
            raise ValueError(f"{path} has axes {axes} and type {dtype}: not a grey-level image or stack")
        pages = None
        if _one_plane_per_series(tif):
            # tifffile makes one series per page of a file written page by page; Fiji opens it as a stack.
            pages = [s.pages[0] for s in tif.series]
            axes, shape = "I" + axes, (len(pages), *shape)
        flat_indices = _plane_indices(path, axes[:-2], shape[:-2], channel)
        plane_shape = shape[-2:]
        file_dtype = dtype.newbyteorder(tif.byteorder).str
        if pages is None and series.dataoffset is not None:
            end = series.dataoffset + series.nbytes
            if end > file_size:
                raise corrupt(path, f"its image data end at byte {end}, the file has {file_size} bytes")
            plane_bytes = math.prod(plane_shape) * dtype.itemsize
            planes = [
                RawPlane(str(path), series.dataoffset + i * plane_bytes, file_dtype, plane_shape)
                for i in flat_indices
            ]
        else:
            pages = list(series.pages) if pages is None else pages
            if len(pages) != math.prod(shape[:-2]) or any(p is None or p.shape != plane_shape for p in pages):
                raise ValueError(
                    f"{path}: its pages do not hold one plane each (image {shape}, {len(pages)} pages): "
                    "re-export it as a plain multi-page TIFF"
                )
            planes = [_page_plane(path, pages[i], file_dtype, file_size) for i in flat_indices]
        name = "OME-TIFF" if tif.is_ome else "ImageJ TIFF" if tif.is_imagej else "TIFF"
        if tif.is_bigtiff:
            name += " (BigTIFF)"
        return _FoundTiff(planes, plane_shape, dtype.newbyteorder("="), name, _tiff_calibration(tif))


def _plane_indices(path: Path, lead_axes: str, lead_shape: tuple, channel: int | None) -> list[int]:
    """Flat plane numbers, in stack order, of the leading (non-YX) axes: one stack axis, one channel."""
    channel_axis = lead_axes.find("C")
    channel = check_channel(path, lead_shape[channel_axis] if channel_axis >= 0 else 1, channel)
    stack_axes = [i for i, n in enumerate(lead_shape) if n > 1 and i != channel_axis]
    if len(stack_axes) > 1:
        raise ValueError(
            f"{path} has axes {lead_axes}YX of shape {lead_shape}: more than one stack axis besides "
            "channels; save a single z-stack (e.g. one time point) and open that"
        )
    depth = lead_shape[stack_axes[0]] if stack_axes else 1
    indices = []
    for z in range(depth):
        index = [0] * len(lead_shape)
        if stack_axes:
            index[stack_axes[0]] = z
        if channel_axis >= 0:
            index[channel_axis] = channel
        indices.append(int(np.ravel_multi_index(index, lead_shape)) if lead_shape else 0)
    return indices


def _one_plane_per_series(tif: tifffile.TiffFile) -> bool:
    first = tif.series[0]
    return (
        len(tif.series) > 1
        and not tif.is_ome
        and all(s.axes == "YX" and s.shape == first.shape and s.dtype == first.dtype for s in tif.series)
    )


def _page_plane(path: Path, page, file_dtype: str, file_size: int):
    """How to read one page: a raw read when uncompressed and contiguous, else tifffile decodes it."""
    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
        if offset + count > file_size:
            raise corrupt(path, f"page {page.index} ends at byte {offset + count}, the file has {file_size}")
    source = page.parent.filehandle.path
    if page.is_contiguous:
        return RawPlane(source, page.dataoffsets[0], file_dtype, page.shape)
    return TiffPagePlane(source, page.offset, page.index)


def _tiff_calibration(tif: tifffile.TiffFile) -> tuple[VoxelSize | None, bool]:
    if tif.is_ome and tif.ome_metadata:
        return _ome_xml_calibration(tif.ome_metadata)
    if tif.is_imagej and tif.imagej_metadata:
        meta = tif.imagej_metadata
        unit = meta.get("unit")
        page = tif.pages.first
        y = nm(_pixel_size(page.tags.get("YResolution")), unit)
        x = nm(_pixel_size(page.tags.get("XResolution")), unit)
        spacing = meta.get("spacing")
        return calibration(nm(float(spacing), unit) if spacing is not None else None, y, x)
    return None, False


def _pixel_size(tag) -> float:
    """Pixel size in the resolution unit from an X/YResolution tag (pixels per unit); NaN when absent."""
    if tag is None:
        return math.nan
    numerator, denominator = tag.value
    return denominator / numerator if numerator else math.nan


def _ome_xml_calibration(xml: str) -> tuple[VoxelSize | None, bool]:
    try:
        pixels = ElementTree.fromstring(xml).find(".//{*}Pixels")
    except ElementTree.ParseError:
        return None, False
    if pixels is None:
        return None, False

    def size(axis: str) -> float | None:
        value = pixels.get(f"PhysicalSize{axis}")
        # OME's default unit is the micrometre.
        return nm(float(value), pixels.get(f"PhysicalSize{axis}Unit", "µm")) if value else None

    return calibration(size("Z"), size("Y"), size("X"))


def _inspect_folder(folder: Path, files: list[Path], channel: int | None) -> StackInfo:
    planes = []
    first = None
    for file in files:
        found = _tiff_stack(file, channel)
        if len(found.planes) != 1:
            raise ValueError(
                f"{file} holds {len(found.planes)} slices; a folder stack needs one 2-D image per file: "
                "move the multi-page file out of the folder (or open it on its own)"
            )
        if first is None:
            first = found
        elif (found.plane_shape, found.dtype) != (first.plane_shape, first.dtype):
            raise ValueError(
                f"{file} is {found.plane_shape} {found.dtype} but {files[0].name} is {first.plane_shape} "
                f"{first.dtype}: every slice of a folder must have one shape and type; move {file.name} out"
            )
        planes.append(found.planes[0])
    array = lazy(planes, first.plane_shape, first.dtype, [f.stat().st_mtime_ns for f in files])
    kind = f"folder of {plural(len(files), 'TIFF slice')}"
    return StackInfo(folder, kind, array, *first.calibration, files=tuple(files))


