"""Open FIB-SEM stacks lazily: a dask array (Z, Y, X) with one chunk per slice, plus the voxel size in nm.

Opening reads metadata only (TIFF tags and IFDs, Zarr JSON, ``.dat`` headers); pixels are read when a slice
is computed, and computing one slice reads that slice only. Supported:

- multi-page TIFF / BigTIFF, ImageJ hyperstacks and OME-TIFF (a 2-D TIFF opens as Z=1);
- a folder of per-slice TIFFs (natural sort: ``s2`` before ``s10``);
- Zarr arrays and OME-Zarr images (full-resolution level);
- Janelia FIB-SEM ``.dat`` frames, one file or a folder of them (one frame per slice).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile
from dask.base import tokenize

from napari_nrrn.io import dat
from napari_nrrn.words import plural

TIFF_SUFFIXES = (".tif", ".tiff")
DAT_SUFFIX = ".dat"
ZARR_SUFFIX = ".zarr"
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")

VoxelSize = tuple[float, float, float]

# Length units of ImageJ, OME-XML and OME-Zarr (UDUNITS-2 names) metadata, in nanometres.
_NM_PER_UNIT = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "å": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "µm": 1e3,  # micro sign
    "μm": 1e3,  # Greek mu
    "\\u00b5m": 1e3,  # ImageJ escapes the micro sign in its description
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
}


@dataclass(frozen=True)
class StackInfo:
    """What ``inspect_stack`` found: the lazy array, its voxel size and where its bytes live."""

    path: Path
    format: str
    array: da.Array
    voxel_size: VoxelSize | None
    files: tuple[Path, ...]

    @property
    def disk_bytes(self) -> int:
        """Bytes the stack occupies on disk (every slice file; for Zarr the whole store)."""
        total = 0
        for file in self.files:
            if file.is_dir():
                total += sum(f.stat().st_size for f in file.rglob("*") if f.is_file())
            else:
                total += file.stat().st_size
        return total


def open_stack(path: str | os.PathLike, channel: int | None = None) -> da.Array:
    """Open a stack lazily as a (Z, Y, X) dask array with one chunk per slice; no pixels are read.

    ``channel`` picks the detector of a multi-channel image (a ``.dat`` frame, an ImageJ/OME hyperstack
    with channels, an OME-Zarr ``c`` axis); default 0.
    """
    return inspect_stack(path, channel).array


def voxel_size(path: str | os.PathLike) -> VoxelSize | None:
    """Voxel size (z, y, x) in nm from the file's metadata, or None when the file does not record it.

    When only the pixel size is recorded (a 2-D image, a ``.dat`` frame, a folder of 2-D slices), the z
    step is taken equal to the x pixel size: FIB-SEM is usually acquired with near-isotropic voxels.
    """
    path = _existing(path)
    if path.is_dir() and not _is_zarr(path):
        # The first slice carries the calibration: no need to read every header of a long folder.
        tiffs, dats = _folder_slices(path)
        if tiffs:
            return _tiff_stack(tiffs[0], None).voxel_size
        return _dat_voxel_size(dat.read_header(dats[0]))
    return inspect_stack(path).voxel_size


def inspect_stack(path: str | os.PathLike, channel: int | None = None) -> StackInfo:
    """Open ``path`` lazily and report its format, voxel size and files (see ``open_stack``)."""
    path = _existing(path)
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))):
        raise ValueError(f"channel must be a whole number (0, 1, ...), got {channel!r}")
    if _is_zarr(path):
        return _inspect_zarr(path, channel)
    if path.is_dir():
        tiffs, dats = _folder_slices(path)
        return _inspect_tiff_folder(path, tiffs, channel) if tiffs else _inspect_dat(path, dats, channel)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        found = _tiff_stack(path, channel)
        array = _lazy(found.planes, found.plane_shape, found.dtype, path.stat().st_mtime_ns)
        return StackInfo(path, found.format, array, found.voxel_size, (path,))
    if suffix == DAT_SUFFIX:
        return _inspect_dat(path, [path], channel)
    raise ValueError(
        f"cannot open {path}: napari-nrrn reads TIFF (.tif/.tiff), Zarr/OME-Zarr (.zarr), FIB-SEM .dat "
        "frames, or a folder of TIFF or .dat slices; convert the image to one of these"
    )


def looks_like_stack(path: str | os.PathLike) -> bool:
    """Cheap check that ``open_stack`` should read ``path`` (names, folder listing, the first TIFF page or
    the .dat magic number). Never raises, reads no pixels."""
    try:
        path = Path(path)
        if _is_zarr(path):
            return True
        if path.is_dir():
            tiffs, dats = _folder_slices(path)
            return _first_page_is_grey(tiffs[0]) if tiffs else dat.is_dat(dats[0])
        suffix = path.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            return path.is_file() and _first_page_is_grey(path)
        return suffix == DAT_SUFFIX and dat.is_dat(path)
    except (OSError, ValueError):
        return False


def natural_sort_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``s2`` before ``s10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# ---------------------------------------------------------------------------------------------------------
# Lazy planes: a small picklable array-like that dask reads one chunk (one slice) at a time.


@dataclass(frozen=True)
class _RawPlane:
    """An uncompressed plane stored contiguously in a file: one positioned read of its bytes."""

    path: str
    offset: int
    dtype: str  # in the file's byte order
    shape: tuple[int, int]

    def read(self) -> np.ndarray:
        count = self.shape[0] * self.shape[1]
        values = np.fromfile(self.path, dtype=self.dtype, count=count, offset=self.offset)
        if values.size != count:
            raise ValueError(f"{self.path} is shorter than when it was opened: copy it again and reopen it")
        return values.reshape(self.shape).astype(np.dtype(self.dtype).newbyteorder("="), copy=False)


@dataclass(frozen=True)
class _TiffPagePlane:
    """A TIFF page that tifffile decodes (compressed, tiled or scattered strips), found by its IFD offset."""

    path: str
    ifd_offset: int
    index: int

    def read(self) -> np.ndarray:
        with tifffile.TiffFile(self.path) as tif:
            tif.filehandle.seek(self.ifd_offset)
            return tifffile.TiffPage(tif, self.index).asarray()


@dataclass(frozen=True)
class _DatPlane:
    """One detector channel of one ``.dat`` frame."""

    path: str
    header: dat.DatHeader
    channel: int

    def read(self) -> np.ndarray:
        return dat.read_channel(self.path, self.header, self.channel)


class _PlaneStack:
    """(Z, Y, X) array-like over per-slice planes on disk. ``da.from_array`` calls ``__getitem__`` with the
    slices of one chunk; only the planes that key selects are read."""

    ndim = 3

    def __init__(self, planes: Sequence, plane_shape: tuple[int, int], dtype: np.dtype):
        self.planes = tuple(planes)
        self.shape = (len(self.planes), *plane_shape)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        z = np.arange(self.shape[0])[key[0]]
        in_plane = key[1:]
        if z.ndim == 0:
            return self._read(int(z))[in_plane]
        out = np.empty((len(z), *self.shape[1:]), self.dtype)
        for i, index in enumerate(z):
            out[i] = self._read(int(index))
        return out[(slice(None), *in_plane)]

    def _read(self, z: int) -> np.ndarray:
        plane = self.planes[z].read()
        if plane.shape != self.shape[1:] or plane.dtype != self.dtype:
            raise ValueError(
                f"slice {z} ({self.planes[z].path}) is now {plane.shape} {plane.dtype}, not "
                f"{self.shape[1:]} {self.dtype} as when the stack was opened: the file changed; reopen it"
            )
        return plane


def _lazy(planes: Sequence, plane_shape: tuple[int, int], dtype: np.dtype, *identity) -> da.Array:
    stack = _PlaneStack(planes, plane_shape, dtype)
    name = "open_stack-" + tokenize(stack.planes, stack.shape, stack.dtype.str, *identity)
    return da.from_array(
        stack, chunks=(1, *plane_shape), name=name, meta=np.empty((0, 0, 0), stack.dtype), asarray=False
    )


# ---------------------------------------------------------------------------------------------------------
# Paths and folders


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path (and that its drive is mounted)")
    return path


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() == ZARR_SUFFIX or any((path / marker).is_file() for marker in ZARR_MARKERS)
    )


def _folder_slices(folder: Path) -> tuple[list[Path], list[Path]]:
    """The TIFF and .dat files of a folder in natural order (hidden files skipped); one list is empty."""
    files = sorted(
        (f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")),
        key=lambda f: natural_sort_key(f.name),
    )
    tiffs = [f for f in files if f.suffix.lower() in TIFF_SUFFIXES]
    dats = [f for f in files if f.suffix.lower() == DAT_SUFFIX]
    if tiffs and dats:
        raise ValueError(
            f"folder {folder} mixes TIFF and .dat files ({tiffs[0].name}, {dats[0].name}): "
            "put each stack in its own folder"
        )
    if not tiffs and not dats:
        raise ValueError(
            f"folder {folder} holds no TIFF (.tif/.tiff) or FIB-SEM .dat slices and is not a Zarr store: "
            "choose the folder that contains the slices"
        )
    return tiffs, dats


def _nm(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` as nm, rounded to 6 significant digits (metadata holds no more than that);
    None for a missing or unknown unit, or a value that is not a positive number."""
    factor = _NM_PER_UNIT.get(str(unit).strip().lower()) if unit else None
    if factor is None or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        return None
    return float(f"{value * factor:.6g}")


def _voxel(z: float | None, y: float | None, x: float | None) -> VoxelSize | None:
    """(z, y, x) when y and x are known; a missing z step is taken equal to x (near-isotropic FIB-SEM)."""
    if y is None or x is None:
        return None
    return (z if z is not None else x, y, x)


# ---------------------------------------------------------------------------------------------------------
# TIFF


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


def _corrupt(path: Path, detail: str) -> ValueError:
    return ValueError(f"{path} is truncated or corrupt ({detail}): copy the file again or re-export it")


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
    voxel_size: VoxelSize | None


def _tiff_stack(path: Path, channel: int | None) -> _FoundTiff:
    """The planes (one per slice) of the first image series of a TIFF, their data checked to lie inside
    the file, and the voxel size from ImageJ or OME metadata."""
    file_size = path.stat().st_size
    with _open_tiff(path) as (tif, errors):
        if not tif.series:
            raise ValueError(f"{path} holds no image: choose an image file")
        series = tif.series[0]
        if errors.messages:
            raise _corrupt(path, errors.messages[0])
        dtype = np.dtype(series.dtype)
        if dtype.kind == "c":
            raise ValueError(
                f"{path} holds complex numbers ({dtype}); napari-nrrn denoises real grey levels: save the "
                "magnitude (or the real part) as a grey-level image"
            )
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
                raise _corrupt(path, f"its image data end at byte {end}, the file has {file_size} bytes")
            plane_bytes = math.prod(plane_shape) * dtype.itemsize
            planes = [
                _RawPlane(str(path), series.dataoffset + i * plane_bytes, file_dtype, plane_shape)
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
        return _FoundTiff(planes, plane_shape, dtype.newbyteorder("="), name, _tiff_voxel_size(tif))


def _plane_indices(path: Path, lead_axes: str, lead_shape: tuple, channel: int | None) -> list[int]:
    """Flat plane numbers, in stack order, of the leading (non-YX) axes: one stack axis, one channel."""
    channel_axis = lead_axes.find("C")
    channel = _check_channel(path, lead_shape[channel_axis] if channel_axis >= 0 else 1, channel)
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


def _check_channel(path: Path, channels: int, channel: int | None) -> int:
    channel = 0 if channel is None else int(channel)
    if not 0 <= channel < channels:
        raise ValueError(
            f"channel {channel} does not exist in {path}: it has {channels} channel(s), "
            f"choose channel 0{f' to {channels - 1}' if channels > 1 else ''}"
        )
    return channel


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
            raise _corrupt(path, f"page {page.index} ends at byte {offset + count}, the file has {file_size}")
    source = page.parent.filehandle.path
    if page.is_contiguous:
        return _RawPlane(source, page.dataoffsets[0], file_dtype, page.shape)
    return _TiffPagePlane(source, page.offset, page.index)


def _tiff_voxel_size(tif: tifffile.TiffFile) -> VoxelSize | None:
    if tif.is_ome and tif.ome_metadata:
        return _ome_xml_voxel_size(tif.ome_metadata)
    if tif.is_imagej and tif.imagej_metadata:
        meta = tif.imagej_metadata
        unit = meta.get("unit")
        page = tif.pages.first
        y = _nm(_pixel_size(page.tags.get("YResolution")), unit)
        x = _nm(_pixel_size(page.tags.get("XResolution")), unit)
        spacing = meta.get("spacing")
        return _voxel(_nm(float(spacing), unit) if spacing is not None else None, y, x)
    return None


def _pixel_size(tag) -> float:
    """Pixel size in the resolution unit from an X/YResolution tag (pixels per unit); NaN when absent."""
    if tag is None:
        return math.nan
    numerator, denominator = tag.value
    return denominator / numerator if numerator else math.nan


def _ome_xml_voxel_size(xml: str) -> VoxelSize | None:
    try:
        pixels = ElementTree.fromstring(xml).find(".//{*}Pixels")
    except ElementTree.ParseError:
        return None
    if pixels is None:
        return None

    def size(axis: str) -> float | None:
        value = pixels.get(f"PhysicalSize{axis}")
        # OME's default unit is the micrometre.
        return _nm(float(value), pixels.get(f"PhysicalSize{axis}Unit", "µm")) if value else None

    return _voxel(size("Z"), size("Y"), size("X"))


def _inspect_tiff_folder(folder: Path, files: list[Path], channel: int | None) -> StackInfo:
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
    array = _lazy(planes, first.plane_shape, first.dtype, [f.stat().st_mtime_ns for f in files])
    return StackInfo(folder, f"folder of {len(files)} TIFF slices", array, first.voxel_size, tuple(files))


# ---------------------------------------------------------------------------------------------------------
# FIB-SEM .dat


def _dat_voxel_size(header: dat.DatHeader) -> VoxelSize | None:
    pixel = _nm(header.pixel_size_nm, "nm")
    return _voxel(None, pixel, pixel)


def _inspect_dat(path: Path, files: list[Path], channel: int | None) -> StackInfo:
    first = dat.read_header(files[0])
    channel = _check_channel(files[0], first.channels, channel)
    planes = [_DatPlane(str(files[0]), first, channel)]
    for file in files[1:]:
        header = dat.read_header(file)
        layout = (header.width, header.height, header.channels, header.eight_bit)
        if layout != (first.width, first.height, first.channels, first.eight_bit):
            raise ValueError(
                f"{file} is {header.width}x{header.height} with {header.channels} channel(s) but "
                f"{files[0].name} is {first.width}x{first.height} with {first.channels}: every frame of a "
                f"folder must have one size; move {file.name} out"
            )
        planes.append(_DatPlane(str(file), header, channel))
    dtype = first.dtype.newbyteorder("=")
    array = _lazy(planes, (first.height, first.width), dtype, [f.stat().st_mtime_ns for f in files])
    detector = first.detectors[channel] if channel < len(first.detectors) else f"channel {channel}"
    kind = f"FIB-SEM .dat v{first.version}, {detector}"
    if path.is_dir():
        kind = f"folder of {plural(len(files), kind + ' frame')}"
    return StackInfo(path, kind, array, _dat_voxel_size(first), tuple(files))


# ---------------------------------------------------------------------------------------------------------
# Zarr and OME-Zarr


def _inspect_zarr(path: Path, channel: int | None) -> StackInfo:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises several types for a folder that is not a store
        raise ValueError(
            f"{path} is not a readable Zarr store ({error}): choose the .zarr folder itself"
        ) from None
    axes: list[str] | None = None
    voxel = None
    kind = "Zarr"
    if isinstance(node, zarr.Group):
        attributes = node.attrs.asdict()
        multiscales = attributes.get("ome", attributes).get("multiscales")
        if multiscales:
            image = multiscales[0]
            dataset = image["datasets"][0]  # the full-resolution level
            array = node[dataset["path"]]
            axes_meta = image.get("axes")
            if axes_meta:
                axes = [a["name"] if isinstance(a, dict) else a for a in axes_meta]
                voxel = _ome_zarr_voxel_size(image, dataset, axes_meta)
            kind = f"OME-Zarr (level {dataset['path']})"
        else:
            names = list(node.array_keys())
            if len(names) != 1:
                raise ValueError(
                    f"{path} is a Zarr group with {len(names)} arrays ({', '.join(names[:5])}) and no OME "
                    "multiscales metadata: open the array's own folder, e.g. "
                    f"{path / (names[0] if names else 'ARRAY')}"
                )
            array = node[names[0]]
    else:
        array = node
    if axes is None:
        axes = {2: ["y", "x"], 3: ["z", "y", "x"]}.get(array.ndim)
        if axes is None:
            raise ValueError(
                f"{path} holds a {array.ndim}-D array {array.shape} without axis names: save it as (z, y, x) "
                "or as OME-Zarr with axes"
            )
    return StackInfo(path, kind, _zarr_stack(path, array, axes, channel), voxel, (path,))


def _zarr_stack(path: Path, array, axes: list[str], channel: int | None) -> da.Array:
    if np.dtype(array.dtype).kind not in "biuf":
        raise ValueError(f"{path} holds {array.dtype} values; napari-nrrn needs real grey levels")
    if axes[-2:] != ["y", "x"]:
        raise ValueError(f"{path} has axes {axes}; napari-nrrn needs the last two axes to be y and x")
    chunks = [1] * (array.ndim - 2) + list(array.shape[-2:])
    stack = da.from_zarr(array, chunks=tuple(chunks))
    index: list = []
    for name, size in zip(axes[:-2], array.shape[:-2], strict=True):
        if name == "c":
            index.append(_check_channel(path, size, channel))
        elif name == "z":
            index.append(slice(None))
        elif size == 1:
            index.append(0)
        else:
            raise ValueError(
                f"{path} has a {name!r} axis of length {size}: save a single z-stack (e.g. one time point)"
            )
    if "c" not in axes:
        _check_channel(path, 1, channel)
    stack = stack[tuple(index)]
    return stack[None] if stack.ndim == 2 else stack


def _ome_zarr_voxel_size(image: dict, dataset: dict, axes_meta: list) -> VoxelSize | None:
    scale = np.ones(len(axes_meta))
    for transforms in (
        dataset.get("coordinateTransformations", []),
        image.get("coordinateTransformations", []),
    ):
        for transform in transforms:
            if transform.get("type") == "scale":
                scale = scale * np.asarray(transform["scale"], dtype=float)
    sizes = {}
    for axis, value in zip(axes_meta, scale, strict=True):
        if isinstance(axis, dict):
            sizes[axis["name"]] = _nm(float(value), axis.get("unit"))
    return _voxel(sizes.get("z"), sizes.get("y"), sizes.get("x"))
