"""Layer bookkeeping for the denoise widget: names, placement and the geometry of results.

Result layers are named after their input and step ("<input> NRRN preview", "... blocks", "... denoised") and
keep the input's scale and translate, so they overlay it exactly. Only scale and translate are carried over
(not rotate, shear or affine, which FIB-SEM stacks do not use).
"""

from __future__ import annotations

import numpy as np

PREVIEW = "preview"
BLOCKS = "blocks"
DENOISED = "denoised"


def result_name(input_name: str, step: str) -> str:
    return f"{input_name} NRRN {step}"


def stack_data(layer):
    """The layer's full-resolution data as a (Z, Y, X) array-like: level 0 of a multiscale layer, and a 2-D
    image as a one-slice stack. Nothing is read."""
    data = layer.data[0] if layer.multiscale else layer.data
    return data[None] if data.ndim == 2 else data


def current_slice(layer, world_point) -> int:
    """Index along the layer's first (z) axis of the slice shown at ``world_point`` (viewer.dims.point)."""
    if layer.ndim == 2:
        return 0
    z = float(layer.world_to_data(world_point)[0])
    return int(np.clip(round(z), 0, layer.data.shape[0] - 1))


def _on_slice(layer, z: int, origin: tuple[int, int] = (0, 0)) -> tuple[tuple, tuple]:
    """scale and translate that put a (1, Y, X) array exactly on slice ``z`` of ``layer`` (2-D: on it), its
    first pixel on pixel ``origin`` (y, x) of the slice."""
    scale, translate = tuple(layer.scale), np.array(layer.translate, dtype=float)
    if layer.ndim == 3:
        translate[0] += z * layer.scale[0]
    translate[-2:] += np.asarray(origin) * np.asarray(layer.scale[-2:])
    return scale, tuple(translate)


def slice_result(layer, z: int, image, origin: tuple[int, int] = (0, 0)) -> tuple:
    """(data, placement) of a layer showing the 2-D ``image`` on slice ``z`` of ``layer``, from pixel
    ``origin`` (y, x) of the slice on (a region's output sits where the region is)."""
    scale, translate = _on_slice(layer, z, origin)
    data = image if layer.ndim == 2 else image[None]
    return data, {"scale": scale, "translate": translate}


def visible_region(viewer, layer) -> tuple[int, int, int, int] | None:
    """The part of the input's slice that the canvas shows, as a half-open (y0, y1, x0, x1) in full-resolution
    pixels; None for the whole slice: when all of it is visible, or the view is not of a (y, x) slice (a 3-D
    view, another axis order), or the canvas has not drawn the layer yet (napari sets ``corner_pixels``, the
    visible data corners, when it draws)."""
    dims = viewer.dims
    if dims.ndisplay != 2 or tuple(dims.displayed) != (dims.ndim - 2, dims.ndim - 1):
        return None
    low, high = np.asarray(layer.corner_pixels, dtype=float)[:, -2:]
    if np.all(low == high):
        return None
    if layer.multiscale:  # corners are in pixels of the level on screen
        factors = np.asarray(layer.downsample_factors[layer.data_level][-2:], dtype=float)
        low, high = low * factors, (high + 1) * factors - 1
    height, width = stack_data(layer).shape[-2:]
    y0, x0 = np.clip(np.floor(low).astype(int), 0, (height - 1, width - 1))
    y1, x1 = np.clip(np.ceil(high).astype(int) + 1, (y0 + 1, x0 + 1), (height, width))
    if (y0, y1, x0, x1) == (0, height, 0, width):
        return None
    return int(y0), int(y1), int(x0), int(x1)


def show_result(viewer, name: str, like, data, placement: dict | None = None):
    """Add an image layer ``name`` or, when one exists, replace its data and placement in place.

    ``placement`` (scale, translate) defaults to that of ``like`` (the input layer); the contrast limits and
    colormap follow ``like`` too, so input and result compare at a glance.
    """
    placement = placement or {"scale": tuple(like.scale), "translate": tuple(like.translate)}
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.ndim == np.ndim(data):
            layer.data = data
            layer.scale = placement["scale"]
            layer.translate = placement["translate"]
            layer.contrast_limits = like.contrast_limits
            return layer
        viewer.layers.remove(name)
    return viewer.add_image(
        data, name=name, contrast_limits=like.contrast_limits, colormap=like.colormap, **placement
    )


def source_path(layer) -> str | None:
    """The file or folder a layer was read from, if any (napari's record, or our reader's metadata)."""
    path = layer.source.path or layer.metadata.get("path")
    return str(path) if path else None


def voxel_size(layer) -> tuple[float, float, float] | None:
    """The layer's (z, y, x) voxel size: our reader's record in nm, else its scale (None when unscaled)."""
    recorded = layer.metadata.get("voxel_size_nm")
    if recorded:
        return tuple(float(v) for v in recorded)
    scale = tuple(float(s) for s in layer.scale[-3:])
    return None if scale == (1.0, 1.0, 1.0) else scale


def registered_triplet(stack, z: int, register: bool, stats_of=None, lazy: bool = False):
    """((previous, centre, next) slices at ``z``, the neighbours shifted onto the centre with ``register``;
    their statistics as read, from ``stats_of(slices)`` or computed), as the engine's ``prepared_triplet``
    gives them (``lazy`` too). A single image is its own neighbour: a model trained elsewhere sees it in
    both channels."""
    from napari_nrrn.engine.inference import prepared_triplet, slice_triplet

    if stack.shape[0] == 1:
        image = np.asarray(stack[0])
        slices = image, image, image
    else:
        slices = slice_triplet(stack, z)
    return prepared_triplet(slices, z, stack.shape[0], register and stack.shape[0] > 1, stats_of, lazy)
