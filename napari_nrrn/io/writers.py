"""Write a (Z, Y, X) stack slice by slice to TIFF/BigTIFF, OME-Zarr or MRC, keeping the voxel size.

Memory holds one slice: each slice of the input (numpy or dask) is computed, written and dropped. The output
goes to ``<name>.partial-<pid>`` beside the final path and is renamed only when complete; an exception or an
early ``close()`` of the generator removes it, so no half-written file ever carries the final name. An
``OSError`` while writing (a full disk, a vanished share) names the final path, not the temporary one.

- ``.tif`` / ``.tiff``: an ImageJ hyperstack (resolution + ``spacing``, unit nm) for uint8, uint16 and float32
  below 4 GB, the types and sizes ImageJ reads natively; otherwise an OME-TIFF (BigTIFF above 4 GB) with
  physical sizes in nm. Pixels are stored uncompressed and contiguously, so reading back is memory-mappable
  and ``open_stack`` reads one slice with one read.
- ``.zarr`` / ``.ome.zarr``: OME-Zarr 0.5 (Zarr v3), or 0.4 (Zarr v2) on request, with a multiscale pyramid
  in x and y written slice by slice, chunks of one slice, axes z, y, x in nanometres (``ome_zarr_writer``).
- ``.mrc``: MRC 2014 through ``mrcfile.new_mmap``, one slice at a time, voxel size in Angstrom
  (``mrc_writer``).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from napari_nrrn.io.mrc_writer import MRC_DTYPES, mrc_writer
from napari_nrrn.io.ome_zarr_writer import NGFF_VERSIONS, ome_zarr_writer
from napari_nrrn.io.stack import TIFF_SUFFIXES, VoxelSize
from napari_nrrn.progress import Progress
from napari_nrrn.words import exists_error

# Classic TIFF addresses 4 GiB; keep room for the IFDs (a few hundred bytes per slice) and metadata.
BIGTIFF_THRESHOLD_BYTES = 2**32 - 2**25
IMAGEJ_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))
# What OME-TIFF can describe (ImageJ's three types included).
TIFF_DTYPES = tuple(
    np.dtype(t) for t in ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64")
)


def write_stack(
    stack,
    path: str | os.PathLike,
    voxel_size: VoxelSize | None = None,
    overwrite: bool = False,
    ngff: str | None = None,
) -> Path:
    """Write ``stack`` to ``path`` (format from the extension) and return the final path.

    See ``iter_write_stack``; this drains its progress events.
    """
    for _ in iter_write_stack(stack, path, voxel_size=voxel_size, overwrite=overwrite, ngff=ngff):
        pass
    return Path(path)


def iter_write_stack(
    stack,
    path: str | os.PathLike,
    voxel_size: VoxelSize | None = None,
    overwrite: bool = False,
    ngff: str | None = None,
) -> Iterator[Progress]:
    """Write a (Z, Y, X) array-like slice by slice, yielding ``Progress(stage="write")`` after each slice.

    The format comes from the extension: ``.tif``/``.tiff``, ``.zarr``/``.ome.zarr`` or ``.mrc``.
    ``voxel_size`` is (z, y, x) in nm; ``ngff`` the OME-Zarr version, ``"0.5"`` (default) or ``"0.4"``.
    The arguments, an existing output (refused unless ``overwrite``) and the folder's permissions are
    checked now, before the first event is asked for; the last event (done == total) comes
    once the output is in place under its final name.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (*TIFF_SUFFIXES, ".zarr", ".mrc"):
        raise ValueError(
            f"cannot write {path}: choose a .tif/.tiff (TIFF), .zarr/.ome.zarr (OME-Zarr) or .mrc (MRC) name"
        )
    check_ngff(ngff, path)
    if not (hasattr(stack, "shape") and hasattr(stack, "dtype")):
        raise ValueError(
            f"cannot write {path}: need an array (numpy, dask, zarr), got {type(stack).__name__}"
        )
    shape = tuple(int(n) for n in stack.shape)
    dtype = np.dtype(stack.dtype)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"cannot write {path}: need a (Z, Y, X) stack with at least one slice, got shape {shape}"
        )
    if dtype.kind not in "iuf":
        raise ValueError(f"cannot write {path}: {dtype} is not a grey-level type (need integers or floats)")
    if suffix in TIFF_SUFFIXES and dtype not in TIFF_DTYPES:
        raise ValueError(
            f"cannot write {dtype} to TIFF {path}: convert the stack to float32 or write .ome.zarr"
        )
    if suffix == ".mrc" and dtype not in MRC_DTYPES:
        raise ValueError(
            f"cannot write {dtype} to MRC {path}: MRC holds {', '.join(map(str, MRC_DTYPES))}; convert the "
            "stack to float32 or write .ome.zarr"
        )
    voxel = checked_voxel_size(voxel_size)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise exists_error(path)
    check_writable_folder(path.parent)
    if suffix == ".zarr":
        name = path.name.removesuffix(".zarr").removesuffix(".ome")
        open_writer = ome_zarr_writer(shape, dtype, voxel, name=name, ngff=ngff or NGFF_VERSIONS[0])
    elif suffix == ".mrc":
        open_writer = mrc_writer(shape, dtype, voxel)
    else:
        open_writer = _tiff_writer(shape, dtype, voxel)
    return _write_slices(stack, path, open_writer)


def check_ngff(ngff: str | None, path: Path) -> None:
    """``ngff`` is None, or a known NGFF version for an OME-Zarr ``path``."""
    if ngff is None:
        return
    if ngff not in NGFF_VERSIONS:
        raise ValueError(f"cannot write {path} as NGFF {ngff}: choose NGFF {' or '.join(NGFF_VERSIONS)}")
    if not path.name.lower().endswith(".zarr"):
        raise ValueError(
            f"cannot write {path} as NGFF {ngff}: an NGFF version applies to OME-Zarr output; "
            "name the output .zarr or .ome.zarr, or leave the NGFF version out"
        )


def checked_voxel_size(voxel_size) -> VoxelSize | None:
    if voxel_size is None:
        return None
    values = tuple(float(v) for v in voxel_size)
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"voxel_size must be three positive numbers (z, y, x) in nm, got {voxel_size!r}")
    return values


def check_writable_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"folder {folder} does not exist: create it first or choose another output folder"
        )
    try:
        # A real probe: permission bits do not stop root, read-only mounts and some network shares do.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(
            f"cannot write in folder {folder} ({error.strerror or error}): choose a folder you can write to"
        ) from None


def _write_slices(stack, path: Path, open_writer: Callable) -> Iterator[Progress]:
    depth = stack.shape[0]
    temporary = path.with_name(f"{path.name}.partial-{os.getpid()}")
    _remove(temporary)
    start = time.perf_counter()
    try:
        with open_writer(temporary) as write_plane:
            for z in range(depth):
                # np.asarray on one slice: a dask stack computes that slice only.
                write_plane(z, np.ascontiguousarray(np.asarray(stack[z])))
                if z + 1 < depth:
                    yield Progress("write", z + 1, depth, time.perf_counter() - start, message=str(path))
        move_into_place(temporary, path)
    except BaseException as error:  # includes GeneratorExit from close(): never leave the partial output
        _remove(temporary)
        renamed = naming_output(error, temporary, path) if isinstance(error, OSError) else error
        if renamed is not error:
            raise renamed from error
        raise
    yield Progress("write", depth, depth, time.perf_counter() - start, message=f"saved {path}")


def naming_output(error: OSError, partial: Path, output: Path) -> OSError:
    """``error`` as the user should read it: about ``output`` where it was about ``partial`` (or a file in
    it) or about no file; ``error`` itself when it is about another file or carries no errno."""
    if error.errno is None:
        return error
    if error.filename is not None:
        about = Path(os.fsdecode(error.filename))
        if about != partial and partial not in about.parents:
            return error
    return OSError(error.errno, error.strerror, str(output))  # the errno's own subclass, e.g. PermissionError


def os_error_message(error: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an ``OSError`` of the system (one with an errno) met on ``error.filename`` (else
    ``path``): what went wrong and what to do."""
    name = error.filename if error.filename is not None else path
    where = f" {os.fsdecode(name)}" if name is not None else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device writing{where}: free space or write to another disk"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"permission denied on{where} ({error.strerror}): choose a folder you can write to, "
            "or a file you can read"
        )
    if error.errno == errno.ENOENT:
        return (
            f"{where.strip() or 'a file'} does not exist ({error.strerror}): check the path, and that its "
            "disk or network share is still mounted"
        )
    return (
        f"{error.strerror or error} on{where}: check the disk or the network share (is it still mounted?), "
        "then run again"
    )


def move_into_place(temporary: Path, path: Path) -> None:
    if temporary.is_dir() and (path.exists() or path.is_symlink()):
        # A folder cannot replace a folder in one rename: move the old one aside, then delete it.
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(temporary, path)
        _remove(old)
    else:
        os.replace(temporary, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _tiff_writer(shape: tuple[int, int, int], dtype: np.dtype, voxel: VoxelSize | None) -> Callable:
    import tifffile

    bigtiff = math.prod(shape) * dtype.itemsize > BIGTIFF_THRESHOLD_BYTES
    options = {"photometric": "minisblack", "contiguous": True, "metadata": None}
    if dtype in IMAGEJ_DTYPES and not bigtiff:
        calibration = {"spacing": voxel[0], "unit": "nm"} if voxel else {}
        options["description"] = tifffile.imagej_description(shape, axes="ZYX", **calibration)
        if voxel:
            # ImageJ: pixels per unit in X/YResolution, no TIFF resolution unit; the unit is in the text.
            options.update(resolution=(1 / voxel[2], 1 / voxel[1]), resolutionunit=tifffile.RESUNIT.NONE)
    else:
        physical = {}
        if voxel:
            for axis, size in zip("ZYX", voxel, strict=True):
                physical.update({f"PhysicalSize{axis}": size, f"PhysicalSize{axis}Unit": "nm"})
        ome = tifffile.OmeXml()
        ome.addimage(dtype, shape, (shape[0], 1, 1, shape[1], shape[2], 1), axes="ZYX", **physical)
        options["description"] = ome.tostring(declaration=True)

    @contextmanager
    def open_writer(temporary: Path):
        # shaped=False: our ImageJ/OME description is written as given, pages go contiguously one by one.
        with tifffile.TiffWriter(temporary, bigtiff=bigtiff, shaped=False) as tif:
            yield lambda z, plane: tif.write(plane.astype(dtype, copy=False), **options)

    return open_writer
