"""Side-by-side comparison for the resin profile dock: classic baselines on the displayed slice, and
PSNR/SSIM of every image layer against a reference layer. No Qt; the jobs are generators of ``Progress``
events that the dock's job runner drives in a worker.
"""

from __future__ import annotations

import time

import numpy as np

from napari_nrrn.io.samples import SAMPLE_GALA_PATH, SAMPLE_SEM_PATH, SAMPLE_STACK_PATH
from napari_nrrn.measures.baselines import BASELINES
from napari_nrrn.measures.metrics import psnr, ssim
from napari_nrrn.progress import Cancelled, Progress

from ._profile_layers import layer_slice

NOISY_SAMPLES = {str(path) for path in (SAMPLE_STACK_PATH, SAMPLE_GALA_PATH, SAMPLE_SEM_PATH)}


def baseline_events(slice2d, methods: dict, should_stop=lambda: False):
    """Generator: run each baseline ``{name: params}`` on one slice, yielding ``Progress`` after each;
    returns ``[(name, image), ...]``. The slice is read once, here, in the worker thread."""
    started = time.perf_counter()
    image = np.asarray(slice2d)
    results = []
    for done, (name, params) in enumerate(methods.items(), start=1):
        if should_stop():
            raise Cancelled
        results.append((name, BASELINES[name](image, **params)))
        yield Progress("baselines", done, len(methods), time.perf_counter() - started, name)
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


def metric_events(reference_slice, candidates, should_stop=lambda: False):
    """Generator: PSNR (dB) and SSIM of each candidate slice against the reference (range from the
    reference), yielding ``Progress`` after each layer; returns the table's rows."""
    started = time.perf_counter()
    reference = np.asarray(reference_slice)
    rows = []
    for done, (name, slice2d, note) in enumerate(candidates, start=1):
        if should_stop():
            raise Cancelled
        if slice2d is None:
            rows.append({"layer": name, "psnr": np.nan, "ssim": np.nan, "note": note})
        else:
            image = np.asarray(slice2d)
            rows.append(
                {"layer": name, "psnr": psnr(image, reference), "ssim": ssim(image, reference), "note": ""}
            )
        yield Progress("PSNR/SSIM", done, len(candidates), time.perf_counter() - started, name)
    return rows


def compute_metrics(reference_slice, candidates) -> list[dict]:
    """``metric_events`` run to the end, synchronously."""
    events = metric_events(reference_slice, candidates)
    while True:
        try:
            next(events)
        except StopIteration as finished:
            return finished.value


def noisy_reference_warning(reference, image_layers) -> str | None:
    """A plain warning when the reference is noisy data: the input a compared layer was made from (a
    baseline's source, the "<input> NRRN ..." results of the denoise dock) or one of the noisy samples."""
    derived = [
        layer.name
        for layer in image_layers
        if layer.name != reference.name
        and (
            layer.metadata.get("nrrn_baseline", {}).get("source") == reference.name
            or layer.name.startswith(f"{reference.name} NRRN ")
        )
    ]
    if derived:
        why = f"'{reference.name}' is the noisy input of '{derived[0]}'"
    elif str(reference.metadata.get("path")) in NOISY_SAMPLES:
        why = f"'{reference.name}' is a noisy sample"
    else:
        return None
    return (
        f"{why}: PSNR/SSIM against noisy data only measure how far a result moved from its input, not how "
        "good it is, and a plain Gaussian blur will score above NRRN. Use a clean image as reference, or "
        "judge by the resin IQR."
    )
