"""Regenerate the screenshots of docs/profiles.md: the resin profile dock comparing NRRN with classic filters.

Run under a display (or Xvfb), from the repository root, with ../shared/data beside the checkout:

    xvfb-run -a -s "-screen 0 1920x1080x24" python docs/make_profile_screenshots.py

The window is taken as a new user meets it: napari's default window size, the dock's default width, the
sample's own layer name (the NRRN layer named as the denoising dock names its output), Qt6 (PyQt6, chosen
here unless QT_API says otherwise).

On the FIB-SEM sample (FlyEM medulla with independent synthetic noise, the data NRRN is made for), slice 16:
the raw slice, the shipped model's output, and two classic baselines run by the dock (Gaussian at sigma 1,
the best sigma for this noise, and non-local means), with the clean FlyEM slice as the PSNR/SSIM reference.
Writes docs/images/profiles_window.png (the whole napari window), profiles_dock.png (the dock alone) and
profiles_plot.png (the exported plot). Then it prints the resin IQR of the same methods on the single SEM
image, where NRRN is out of its domain. It prints every table docs/profiles.md quotes.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_API", "pyqt6")  # before napari and qtpy pick a binding
# napari as first started: its default window size and dock places, not this account's saved settings.
os.environ.setdefault("NAPARI_CONFIG", str(Path(tempfile.mkdtemp()) / "settings.yaml"))

import napari
import numpy as np
import tifffile
from qtpy.QtWidgets import QApplication

from napari_nrrn.engine.inference import denoise_slice, denoise_stack
from napari_nrrn.io.samples import SAMPLE_SEM_PATH, SAMPLE_SEM_RESIN_LINE, SAMPLE_STACK_FLAT_LINE
from napari_nrrn.measures.baselines import BASELINES
from napari_nrrn.measures.profiles import iqr, line_profile
from napari_nrrn.model.checkpoint import default_model_path, load_model
from napari_nrrn.plugin._denoise_layers import DENOISED, result_name

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from make_samples import COLUMNS, MEDULLA, ROWS, SLICES  # noqa: E402  (the sample's crop of clean FlyEM)

IMAGES = Path(__file__).resolve().parent / "images"
SLICE = 16
FLAT_LINE = np.array(SAMPLE_STACK_FLAT_LINE)  # no resin in this neuropil crop: flat cytoplasm


def wait_until(condition, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the dock did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)


def settle(seconds=1.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.05)


def fibsem_screenshots(model):
    viewer = napari.Viewer(show=True)
    [stack] = viewer.open_sample("napari-nrrn", "fibsem")
    nrrn_name = result_name(stack.name, DENOISED)  # as the denoising dock names its output
    style = {"scale": stack.scale, "contrast_limits": tuple(stack.contrast_limits)}
    started = time.perf_counter()
    denoised = denoise_stack(model, stack.data)[SLICE - 1 : SLICE + 2].compute()
    print(f"NRRN, slices {SLICE - 1}-{SLICE + 1} of 160x160: {time.perf_counter() - started:.1f} s")
    full = np.zeros(stack.data.shape, stack.data.dtype)
    full[SLICE - 1 : SLICE + 2] = denoised
    clean = tifffile.imread(MEDULLA)[SLICES, ROWS, COLUMNS]
    viewer.add_image(clean, name="clean", visible=False, **style)
    viewer.add_image(full, name=nrrn_name, **style)
    viewer.dims.set_point(0, SLICE * stack.scale[0])
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "Resin line profiles")
    profile, compare = widget.profile, widget.compare

    compare.gaussian_sigma.setValue(1.0)
    for name, check in compare.baseline_checks.items():
        check.setChecked(name in ("gaussian", "nl_means"))
    compare.reference_combo.setCurrentText("clean")  # the dock scores every layer against it after the run
    compare.run_baselines(stack.name)
    wait_until(lambda: compare.run_button.isEnabled() and len(compare.metric_rows()) == 4)

    viewer.layers.selection.active = stack
    lines = profile.add_resin_lines_layer()
    lines.add_lines([FLAT_LINE])
    lines.mode = "select"  # the screenshot shows the line, not the drawing cursor
    profile.set_layer_checked("clean", True)  # hidden on the canvas, so not profiled unless ticked
    profile.update_now()
    wait_until(lambda: len(profile.table_rows()) == 5)
    viewer.layers.selection.active = lines
    for layer in viewer.layers:
        # The canvas shows raw and NRRN side by side; the baselines and the clean slice are still profiled.
        layer.visible = layer.name in (stack.name, nrrn_name, lines.name)
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (1, 2)
    viewer.reset_view()
    settle()

    viewer.screenshot(str(IMAGES / "profiles_window.png"), canvas_only=False)
    widget.scroll.widget().grab().save(str(IMAGES / "profiles_dock.png"))  # all of it, not the scrolled part
    profile.export_png(IMAGES / "profiles_plot.png")
    print(f"FIB-SEM sample, slice {SLICE}, line {FLAT_LINE.tolist()}:")
    for row in profile.table_rows():
        print(f"{row['layer']:>40}  IQR {row['iqr']:7.2f}  mean {row['mean']:7.2f}  std {row['std']:6.2f}")
    for row in compare.metric_rows():
        if row.get("psnr") is not None:
            print(f"{row['layer']:>40}  PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f} (against clean)")
    viewer.close()


def sem_table(model):
    """Resin IQR on the shipped SEM image: raw, NRRN fed the image in both channels, two baselines."""
    image = tifffile.imread(SAMPLE_SEM_PATH)
    started = time.perf_counter()
    results = {"NRRN (shipped model, out of domain)": denoise_slice(model, image, image, image)}
    print(f"SEM image: NRRN 600x600 in {time.perf_counter() - started:.1f} s")
    results["gaussian, sigma 2"] = BASELINES["gaussian"](image, sigma=2.0)
    results["nl_means"] = BASELINES["nl_means"](image)
    print("SEM image, resin line", SAMPLE_SEM_RESIN_LINE)
    print(f"{'raw':>36}  IQR {iqr(line_profile(image, *SAMPLE_SEM_RESIN_LINE)):8.0f}")
    for name, result in results.items():
        print(f"{name:>36}  IQR {iqr(line_profile(result, *SAMPLE_SEM_RESIN_LINE)):8.0f}")


def main():
    IMAGES.mkdir(exist_ok=True)
    model = load_model(default_model_path())
    fibsem_screenshots(model)
    sem_table(model)


if __name__ == "__main__":
    main()
