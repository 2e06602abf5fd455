"""What the resin profile widget reads from napari layers: lines in world space, displayed slices.

No Qt here. The widget snapshots the viewer on the GUI thread (``profile_tasks``), then the pixels are read
and sampled by ``compute_profiles``, which may run in a worker thread: reading a slice of a lazy (dask)
layer can be slow, and the viewer must not freeze meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_nrrn.measures.profiles import data_to_world, iqr, path_distances, path_profile, world_to_data

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
    """The 2-D (still lazy) data of an image layer displayed at ``world_point`` (viewer.dims.point), and z.

    A 2-D layer is shown on every slice of a 3-D viewer, so it is profiled on every slice (z is None).
    A 3-D layer is indexed at the slice nearest the displayed world z, as napari shows it.
    """
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer '{layer.name}' is RGB: profiles need a grey-level image")
    data = layer.data[0] if layer.multiscale else layer.data  # full resolution; only a crop is read
    if layer.ndim == 2:
        return data, None
    if layer.ndim != 3:
        raise ValueError(
            f"layer '{layer.name}' has {layer.ndim} dimensions: profiles need 2-D or 3-D (Z, Y, X)"
        )
    world_z = world_point[-3] if len(world_point) >= 3 else 0.0
    z = int(round((world_z - layer.translate[0]) / layer.scale[0]))
    if not 0 <= z < data.shape[0]:
        raise NoSliceHere(f"layer '{layer.name}' has no slice at z = {world_z:g}")
    return data[z], z


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


@dataclass
class ProfileResult:
    layer_name: str
    line_index: int
    distances: np.ndarray | None = None  # world units along the line
    values: np.ndarray | None = None
    error: str | None = None

    @property
    def stats(self) -> dict:
        return {
            "layer": self.layer_name,
            "line": self.line_index,
            "iqr": iqr(self.values),
            "mean": float(np.mean(self.values)),
            "std": float(np.std(self.values)),
            "samples": int(self.values.size),
        }


def profile_tasks(image_layers, lines, world_point, width: int):
    """Tasks for every (layer, line) pair, and the ``ValueError`` of each layer that cannot be profiled here.

    A :class:`NoSliceHere` among them is expected (a layer that ends before the displayed z), the others are
    layers no profile can be taken from (RGB, 4-D).
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
            tasks.append(ProfileTask(layer.name, line_index, slice2d, vertices, scale, width))
    return tasks, skipped


def compute_profiles(tasks) -> list[ProfileResult]:
    """Read and sample every task; a bad line gives a result carrying the error, the others still run."""
    results = []
    for task in tasks:
        result = ProfileResult(task.layer_name, task.line_index)
        try:
            result.values = path_profile(task.slice2d, task.vertices, width=task.width)
            result.distances = path_distances(task.vertices, scale=task.scale)
        except ValueError as error:
            result.error = f"line {task.line_index} on layer '{task.layer_name}': {error}"
        results.append(result)
    return results
