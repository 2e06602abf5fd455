"""Grey-level profiles along lines drawn through resin, and their interquartile range.

Coordinates are napari's *data* coordinates, (row, col) or (z, row, col): pixel centres sit on integers and a
pixel covers +-0.5 around its centre. ``world_to_data`` converts napari world coordinates
(``data * scale + translate``) so that profiles of layers with different scales line up.

Only the pixels under a line are read: a 3-D (lazy) stack is indexed at one slice, and only the bounding box
of the samples is computed, so a line on a 6144x4096 slice of a dask stack reads a small crop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from napari_nrrn.words import plural

# A pixel covers +-0.5 around its centre, so a line may reach the outer edge of the border pixels.
_EDGE = 0.5
_EPS = 1e-9


def world_to_data(points, scale, translate) -> np.ndarray:
    """Convert world coordinates ``data * scale + translate`` (napari's, per axis) to data coordinates.

    ``points`` is one point (D,) or an array of points (..., D); ``scale`` and ``translate`` have D entries.
    """
    points, scale, translate = _transform_args(points, scale, translate)
    return (points - translate) / scale


def data_to_world(points, scale, translate) -> np.ndarray:
    """Inverse of :func:`world_to_data`: ``points * scale + translate``."""
    points, scale, translate = _transform_args(points, scale, translate)
    return points * scale + translate


def _transform_args(points, scale, translate):
    points = np.asarray(points, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    translate = np.asarray(translate, dtype=np.float64)
    if not (points.shape[-1] == scale.shape[-1] == translate.shape[-1]):
        raise ValueError(
            f"points have {points.shape[-1]} coordinates but scale has {scale.shape[-1]} and translate "
            f"{translate.shape[-1]}: pass one scale and one translate entry per coordinate"
        )
    if np.any(scale == 0):
        raise ValueError(f"scale {tuple(scale)} has a zero entry: every axis needs a non-zero pixel size")
    return points, scale, translate


def line_profile(image, start, end, width: int = 1, z: int | None = None) -> np.ndarray:
    """Grey levels along the segment ``start`` -> ``end`` (data coordinates), bilinearly interpolated.

    Samples are evenly spaced, both endpoints included, about one per pixel of length:
    ``ceil(length) + 1`` samples. With ``width`` > 1, each sample is the mean of ``width`` samples spaced
    1 pixel apart across the line, centred on it.

    ``image`` is 2-D, or 3-D (Z, Y, X) with the slice given by ``z`` or by a third (leading) coordinate of
    ``start`` and ``end``; only that slice is read. Returns float64 values.
    """
    return path_profile(image, [start, end], width=width, z=z)


def path_profile(image, vertices, width: int = 1, z: int | None = None) -> np.ndarray:
    """Profile along a polyline: the profiles of its segments joined, each joint sampled once.

    ``vertices`` is (N, 2) or (N, 3) in data coordinates, N >= 2; zero-length segments are skipped.
    Sample spacing, ``width`` and ``z`` as in :func:`line_profile`.
    """
    vertices, z = _split_z(vertices, z)
    slice2d = _slice2d(image, z)
    rows, cols = _sample_coords(vertices, width)
    return _sample(slice2d, rows, cols, vertices, width).mean(axis=0)


def path_distances(vertices, scale=None) -> np.ndarray:
    """Distance along the path of every sample :func:`path_profile` takes, in units of ``scale``.

    ``vertices`` are data coordinates (N, 2) (a leading z coordinate is ignored); ``scale`` (row, col) turns
    them into world units (napari's layer scale); without it, distances are in pixels.
    """
    vertices = np.asarray(vertices, dtype=np.float64)[:, -2:]
    scale = np.ones(2) if scale is None else np.asarray(scale, dtype=np.float64)[-2:]
    distances = [np.zeros(1)]
    travelled = 0.0
    for a, b in _segments(vertices):
        n = _n_samples(b - a)
        world_length = float(np.hypot(*((b - a) * scale)))
        distances.append(travelled + np.linspace(0.0, world_length, n)[1:])
        travelled += world_length
    return np.concatenate(distances)


def iqr(values) -> float:
    """Interquartile range Q3 - Q1 (numpy percentiles, linear interpolation)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("iqr of an empty profile: the line has no samples")
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def mean_line_iqr(image2d, lines: Iterable, width: int = 1) -> float:
    """Mean IQR over several lines or paths (each (N, 2) data coordinates) on one 2-D image.

    This is the paper's resin flatness score for one image: lower is flatter. Used by the profile widget and
    by the denoise widget's depth explorer (one score per block output).
    """
    if np.ndim(image2d) != 2:
        raise ValueError(f"mean_line_iqr needs one 2-D image, got shape {np.shape(image2d)}")
    scores = [iqr(path_profile(image2d, line, width=width)) for line in lines]
    if not scores:
        raise ValueError("mean_line_iqr needs at least one line: draw a line through resin")
    return float(np.mean(scores))


def _split_z(vertices, z):
    """Separate the (N, 2) in-plane vertices from a slice index given as a third coordinate or as ``z``."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] not in (2, 3) or len(vertices) < 2:
        raise ValueError(
            f"a line needs at least 2 points of 2 (row, col) or 3 (z, row, col) coordinates, "
            f"got an array of shape {vertices.shape}"
        )
    if vertices.shape[1] == 3:
        line_z = vertices[:, 0]
        if np.ptp(line_z) > _EPS:
            raise ValueError(f"the line spans z = {line_z.min()} .. {line_z.max()}: it must lie in one slice")
        if z is not None and abs(z - line_z[0]) > _EPS:
            raise ValueError(f"z = {z} disagrees with the line's own z coordinate {line_z[0]}: give one")
        z = line_z[0]
        vertices = vertices[:, 1:]
    return vertices, z


def _slice2d(image, z):
    """The 2-D slice to sample, still lazy if ``image`` is (indexing a dask stack reads nothing)."""
    ndim = len(image.shape)
    if ndim == 2:
        if z is not None:
            raise ValueError(f"z = {z} given for a 2-D image of shape {image.shape}: leave z out")
        return image
    if ndim != 3:
        raise ValueError(f"line profiles need a 2-D image or a 3-D (Z, Y, X) stack, got shape {image.shape}")
    if z is None:
        raise ValueError(
            f"image of shape {image.shape} is 3-D: pass z= (the slice index) or 3-coordinate points"
        )
    index = int(round(float(z)))
    if not 0 <= index < image.shape[0]:
        raise ValueError(
            f"z = {z} is outside the stack of {plural(image.shape[0], 'slice')} (0 .. {image.shape[0] - 1})"
        )
    return image[index]


def _segments(vertices):
    """Consecutive vertex pairs, skipping zero-length segments; a path of zero total length is an error."""
    segments = [(a, b) for a, b in zip(vertices[:-1], vertices[1:], strict=True) if np.hypot(*(b - a)) > _EPS]
    if not segments:
        raise ValueError(
            f"zero-length line at {tuple(vertices[0])}: its points coincide; "
            "draw a line with two distinct ends"
        )
    return segments


def _n_samples(delta) -> int:
    # About one sample per pixel; the epsilon keeps an exact integer length from gaining a sample.
    return math.ceil(float(np.hypot(*delta)) - 1e-6) + 1


def _sample_coords(vertices, width):
    """(width, n) row and column coordinates of every sample, offsets across the line along axis 0."""
    if int(width) != width or width < 1:
        raise ValueError(f"width = {width} must be a whole number of pixels >= 1")
    width = int(width)
    rows, cols = [], []
    for i, (a, b) in enumerate(_segments(vertices)):
        delta = b - a
        t = np.linspace(0.0, 1.0, _n_samples(delta))
        if i > 0:
            t = t[1:]  # the joint was the previous segment's last sample
        normal = np.array([-delta[1], delta[0]]) / np.hypot(*delta)
        offsets = np.arange(width) - (width - 1) / 2
        centre = a + t[:, None] * delta  # (n, 2)
        points = centre[None, :, :] + offsets[:, None, None] * normal  # (width, n, 2)
        rows.append(points[..., 0])
        cols.append(points[..., 1])
    return np.concatenate(rows, axis=1), np.concatenate(cols, axis=1)


def _sample(slice2d, rows, cols, vertices, width):
    height, breadth = slice2d.shape
    inside = (
        rows.min() >= -_EDGE - _EPS
        and cols.min() >= -_EDGE - _EPS
        and rows.max() <= height - 1 + _EDGE + _EPS
        and cols.max() <= breadth - 1 + _EDGE + _EPS
    )
    if not inside:
        ends = " -> ".join(f"({r:g}, {c:g})" for r, c in vertices)
        across = f" (width {width})" if width > 1 else ""
        raise ValueError(
            f"line {ends}{across} is outside the image of shape ({height}, {breadth}): "
            f"rows must stay within 0 .. {height - 1} and columns within 0 .. {breadth - 1}; "
            "draw the line inside the image"
        )
    # Read only the bounding box of the samples (plus the neighbours bilinear interpolation needs).
    r0 = max(math.floor(rows.min()), 0)
    c0 = max(math.floor(cols.min()), 0)
    r1 = min(math.floor(rows.max()) + 2, height)
    c1 = min(math.floor(cols.max()) + 2, breadth)
    crop = np.asarray(slice2d[r0:r1, c0:c1], dtype=np.float64)
    return ndi.map_coordinates(crop, [rows - r0, cols - c0], order=1, mode="nearest")
