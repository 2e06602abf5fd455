"""Regenerate the screenshots of docs/profiles.md: the resin profile dock on the shipped noisy SEM image.

Run under a display (or Xvfb), from the repository root:

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_profile_screenshots.py

The denoised curves come from the classic baselines run by the dock itself (Gaussian, sigma 2 px, and
non-local means); they are not NRRN. Writes docs/images/profiles_window.png (the whole napari window),
docs/images/profiles_dock.png (the dock alone) and docs/images/profiles_plot.png (the exported plot), and
prints the table it shows.
"""

import time
from pathlib import Path

import napari
import napari._qt.qt_main_window
import numpy as np
import tifffile
from qtpy.QtWidgets import QApplication

from napari_nrrn.io.samples import SAMPLE_SEM_PATH, SAMPLE_SEM_RESIN_LINE

IMAGES = Path(__file__).resolve().parent / "images"


def wait_until(condition, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the dock did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)


def main():
    IMAGES.mkdir(exist_ok=True)
    # No "PyQt5 backend is deprecated" toast over the canvas (napari shows it once, on the first window).
    napari._qt.qt_main_window.SHOW_QT_WARNING = False
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1700, 1150)
    viewer.add_image(tifffile.imread(SAMPLE_SEM_PATH), name="raw")
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "Resin line profiles")

    widget.gaussian_sigma.setValue(2.0)
    for name, check in widget.baseline_checks.items():
        check.setChecked(name in ("gaussian", "nl_means"))
    widget.reference_combo.setCurrentText("raw")
    widget.run_baselines("raw")
    wait_until(lambda: widget.run_button.isEnabled() and len(widget.metric_rows()) == 2)

    lines = widget.add_resin_lines_layer()
    lines.add_lines([np.array(SAMPLE_SEM_RESIN_LINE)])  # through the flat resin along the top
    lines.mode = "select"  # the screenshot shows the line, not the drawing cursor
    widget.update_now()
    viewer.layers.selection.active = lines
    for method in ("gaussian", "nl_means"):
        viewer.layers[f"raw {method}"].visible = False  # the canvas shows the noisy raw image; still profiled
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)

    viewer.screenshot(str(IMAGES / "profiles_window.png"), canvas_only=False)
    widget.grab().save(str(IMAGES / "profiles_dock.png"))
    widget.export_png(IMAGES / "profiles_plot.png")
    for row in widget.table_rows():
        print(f"{row['layer']:>16}  IQR {row['iqr']:9.1f}  mean {row['mean']:9.1f}  std {row['std']:8.1f}")
    for row in widget.metric_rows():
        print(f"{row['layer']:>16}  PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f} (against raw)")
    viewer.close()


if __name__ == "__main__":
    main()
