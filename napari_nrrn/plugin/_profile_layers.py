"""What the resin profile widget reads from napari layers: lines in world space, displayed slices.

No Qt here. The widget snapshots the viewer on the GUI thread (``profile_tasks``), then the pixels are read
and sampled by ``compute_profiles``, which may run in a worker thread: reading a slice of a lazy (dask)
layer can be slow, and the viewer must not freeze meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_nrrn.measures.profiles import data_to_world, iqr, path_distances, path_profile, world_to_data
from napari_nrrn.progress import Cancelled, Progress

LINE_SHAPE_TYPES = ("line", "path")


class NoSliceHere(ValueError):
    """The layer does not extend to the displayed z (e.g. a one-slice baseline layer at another slice)."""


def world_lines(shapes_layer) -> list[tuple[int, np.ndarray]]:
    """``(shape index, (N, 2) world (row, col) vertices)`` for every line and path of a Shapes layer.

    Lines are taken in the plane only: whichever slice a line was drawn on, it is profiled on the displayed
    slice, so a slice change re-measures the same line there.
    """
    lines = []
    for index, (vertices, shape_type) in enumerate(
        zip(shapes_layer.data, shapes_layer.shape_type, strict=True)
    ):
        if shape_type in LINE_SHAPE_TYPES:
            world = data_to_world(vertices, shapes_layer.scale, shapes_layer.translate)
            lines.append((index, world[:, -2:]))
    return lines


def lines_in_data_coords(shapes_layer, image_layer) -> list[np.ndarray]:
    """The lines and paths of a Shapes layer as (N, 2) (row, col) data coordinates of an image layer.

    What :func:`napari_nrrn.measures.profiles.mean_line_iqr` takes, for any 2-D array on that layer's pixel
    grid (e.g. a per-block output of the displayed slice). Shape indices are not kept; see ``world_lines``.
    """
    scale, translate = image_layer.scale[-2:], image_layer.translate[-2:]
    return [world_to_data(world, scale, translate) for _, world in world_lines(shapes_layer)]


def layer_slice(layer, world_point):
    """The 2-D (still lazy) data of an image layer displayed at ``world_point`` (viewer.dims.point), and the
    indices of its other axes (None for a 2-D layer).

    A 2-D layer is shown on every slice of a 3-D viewer, so it is profiled on every slice. A layer of 3 or
    more dimensions is indexed on each leading axis at the position nearest the viewer's, as napari shows
    it: a stack at the displayed slice, a layer with a further axis (time, channel) at its displayed index.
    """
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer '{layer.name}' is RGB: profiles need a grey-level image")
    data = layer.data[0] if layer.multiscale else layer.data  # full resolution; only a crop is read
    if layer.ndim == 2:
        return data, None
    index = tuple(int(round(i)) for i in layer.world_to_data(world_point)[:-2])
    if not all(0 <= i < n for i, n in zip(index, data.shape[:-2], strict=True)):
        world_z = world_point[-3]
        raise NoSliceHere(f"layer '{layer.name}' has no slice at z = {world_z:g}")
    return data[index], index


def _plane_box(layer) -> tuple[np.ndarray, np.ndarray]:
    """World (y, x) of the outer corners of the layer's plane: low, high."""
    data = layer.data[0] if layer.multiscale else layer.data
    scale = np.asarray(layer.scale[-2:], dtype=float)
    low = np.asarray(layer.translate[-2:], dtype=float) - 0.5 * scale
    return low, low + np.asarray(data.shape[-2:], dtype=float) * scale


def same_field(layer, reference) -> bool:
    """Whether a layer shows the reference's field: the same plane (possibly at another pixel size), or a
    part of it on its pixel grid (the denoise dock's preview of a region). A sample of another shape, or an
    image on another grid, does not."""
    (low, high), (ref_low, ref_high) = _plane_box(layer), _plane_box(reference)
    # Up to a pixel of the coarser layer: napari centres pixels on the translate, so layers of one field at
    # two pixel sizes and one translate are offset by half a pixel.
    tolerance = float(np.max(np.abs([*layer.scale[-2:], *reference.scale[-2:]])))
    if np.allclose(low, ref_low, atol=tolerance) and np.allclose(high, ref_high, atol=tolerance):
        return True
    same_grid = np.allclose(layer.scale[-2:], reference.scale[-2:])
    return bool(same_grid and np.all(low >= ref_low - tolerance) and np.all(high <= ref_high + tolerance))


def length_unit(layer) -> str | None:
    """The unit of the layer's in-plane world coordinates: its napari units when set, nm when our reader
    recorded a voxel size, px for an unscaled layer, else None (a scale without a known unit)."""
    unit = layer.units[-1]
    if str(unit) != "pixel":
        return f"{unit:~P}"
    if layer.metadata.get("voxel_size_nm"):
        return "nm"
    if np.allclose(layer.scale[-2:], 1.0):
        return "px"
    return None


def transform_warning(layer) -> str | None:
    """A message if the layer is rotated, sheared or affine-transformed, which profiles do not follow."""
    ndim = layer.ndim
    plain = (
        np.allclose(layer.rotate, np.eye(ndim))
        and np.allclose(layer.shear, 0)
        and np.allclose(layer.affine.affine_matrix, np.eye(ndim + 1))
    )
    if plain:
        return None
    return (
        f"layer '{layer.name}' is rotated, sheared or has an affine transform: "
        "profiles use only its scale and translate"
    )


@dataclass
class ProfileTask:
    """One profile to measure: a line (data coordinates of one layer) on that layer's displayed slice."""

    layer_name: str
    line_index: int
    slice2d: Any
    vertices: np.ndarray
    scale: np.ndarray
    width: int
    world: np.ndarray  # the line's (N, 2) world vertices, for the table's end points
    slice_index: int | None  # the viewer's z slider, None in a 2-D viewer


@dataclass
class ProfileResult:
    task: ProfileTask
    distances: np.ndarray | None = None  # world units along the line
    values: np.ndarray | None = None
    error: str | None = None

    @property
    def layer_name(self) -> str:
        return self.task.layer_name

    @property
    def line_index(self) -> int:
        return self.task.line_index

    @property
    def stats(self) -> dict:
        """The table's row: where the profile was taken (slice, world end points, length) and its numbers."""
        return {
            "layer": self.layer_name,
            "line": self.line_index,
            "slice": self.task.slice_index,
            "start": tuple(float(v) for v in self.task.world[0]),
            "end": tuple(float(v) for v in self.task.world[-1]),
            "length": float(self.distances[-1]),
            "iqr": iqr(self.values),
            "mean": float(np.mean(self.values)),
            "std": float(np.std(self.values)),
            "samples": int(self.values.size),
        }


def profile_tasks(image_layers, lines, world_point, width: int, slice_index: int | None = None):
    """Tasks for every (layer, line) pair, and the ``ValueError`` of each layer that cannot be profiled here.

    A :class:`NoSliceHere` among them is expected (a layer that ends before the displayed z), the others are
    layers no profile can be taken from (RGB).
    """
    tasks, skipped = [], []
    for layer in image_layers:
        try:
            slice2d, _ = layer_slice(layer, world_point)
        except ValueError as unusable:
            skipped.append(unusable)
            continue
        scale, translate = np.asarray(layer.scale[-2:]), np.asarray(layer.translate[-2:])
        for line_index, world in lines:
            vertices = world_to_data(world, scale, translate)
            tasks.append(
                ProfileTask(layer.name, line_index, slice2d, vertices, scale, width, world, slice_index)
            )
    return tasks, skipped


def profile_events(tasks, should_stop=lambda: False):
    """Generator for the dock's job runner: read and sample every task, yielding ``Progress`` after each;
    returns the results. A bad line gives a result carrying the error, the others still run."""
    started = time.perf_counter()
    results = []
    for done, task in enumerate(tasks, start=1):
        if should_stop():
            raise Cancelled
        result = ProfileResult(task)
        try:
            result.values = path_profile(task.slice2d, task.vertices, width=task.width)
            result.distances = path_distances(task.vertices, scale=task.scale)
        except ValueError as error:
            result.error = f"line {task.line_index} on layer '{task.layer_name}': {error}"
        results.append(result)
        yield Progress("profiles", done, len(tasks), time.perf_counter() - started)
    return results


def compute_profiles(tasks) -> list[ProfileResult]:
    """``profile_events`` run to the end, synchronously."""
    events = profile_events(tasks)
    while True:
        try:
            next(events)
        except StopIteration as finished:
            return finished.value
