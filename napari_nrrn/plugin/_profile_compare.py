"""Side-by-side comparison for the resin profile widget: classic baselines on the displayed slice, and
PSNR/SSIM of every image layer against a reference layer. No Qt; the jobs run in napari thread workers.
"""

from __future__ import annotations

import numpy as np

from napari_nrrn.measures.baselines import BASELINES
from napari_nrrn.measures.metrics import psnr, ssim

from ._profile_layers import layer_slice


def baseline_placement(source, z) -> dict:
    """Scale and translate that put a baseline computed on one slice exactly where that slice is shown.

    A 2-D source gives a 2-D layer with its scale and translate. A 3-D source gives a one-slice 3-D
    layer, (1, Y, X), translated in z to the slice it came from: it lines up in 2-D and 3-D views and is
    shown only on that slice, the one it was computed for.
    """
    scale = np.asarray(source.scale, dtype=float)
    translate = np.asarray(source.translate, dtype=float)
    if z is not None:
        translate = translate.copy()
        translate[0] += z * scale[0]
    return {"scale": tuple(scale), "translate": tuple(translate)}


def baseline_images(slice2d, methods: dict):
    """Generator: run each baseline ``{name: params}`` on one slice, yielding ``(done, total)`` after each.

    Returns (StopIteration.value, napari's ``returned`` signal) ``[(name, image), ...]``. The slice is read
    once, here, in the worker thread.
    """
    image = np.asarray(slice2d)
    results = []
    for done, (name, params) in enumerate(methods.items(), start=1):
        results.append((name, BASELINES[name](image, **params)))
        yield done, len(methods)
    return results


def metric_inputs(image_layers, reference, world_point):
    """The reference slice, and ``(name, slice or None, note)`` for every other layer at the displayed z."""
    reference_slice, _ = layer_slice(reference, world_point)
    reference_grid = (tuple(reference.scale[-2:]), tuple(reference.translate[-2:]))
    candidates = []
    for layer in image_layers:
        if layer.name == reference.name:
            continue
        try:
            slice2d, _ = layer_slice(layer, world_point)
        except ValueError as unusable:
            candidates.append((layer.name, None, str(unusable)))
            continue
        if slice2d.shape != reference_slice.shape:
            note = f"shape {slice2d.shape} differs from the reference's {reference_slice.shape}"
            candidates.append((layer.name, None, note))
        elif (tuple(layer.scale[-2:]), tuple(layer.translate[-2:])) != reference_grid:
            candidates.append((layer.name, None, "not on the reference's pixel grid (scale or translate)"))
        else:
            candidates.append((layer.name, slice2d, ""))
    return reference_slice, candidates


def compute_metrics(reference_slice, candidates) -> list[dict]:
    """PSNR (dB) and SSIM of each candidate slice against the reference (range from the reference)."""
    reference = np.asarray(reference_slice)
    rows = []
    for name, slice2d, note in candidates:
        if slice2d is None:
            rows.append({"layer": name, "psnr": np.nan, "ssim": np.nan, "note": note})
            continue
        image = np.asarray(slice2d)
        rows.append(
            {"layer": name, "psnr": psnr(image, reference), "ssim": ssim(image, reference), "note": ""}
        )
    return rows
