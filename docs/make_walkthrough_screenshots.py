"""Regenerate docs/images/walkthrough_*.png: the NRRN denoising dock at work on the FIB-SEM sample.

Real screenshots of the viewer (canvas and dock). Needs a display; on a headless machine run it under Xvfb:

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_walkthrough_screenshots.py [--model MODEL.pt]

It trains a model on the sample in the widget for a short time budget (the numbers it prints go into
docs/walkthrough.md). The later steps use ``--model`` (loaded with the dock's Load button), else the shipped
model where napari-nrrn has one, else the model just trained. It denoises the sample into a temporary folder
and writes the PNGs next to this script, in images/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_nrrn.io.samples import SAMPLE_STACK_FLAT_LINE
from napari_nrrn.model.checkpoint import default_model_path

IMAGES = Path(__file__).resolve().parent / "images"
SLICE = 16
# Training in the dock: the default depth (4 blocks), half the default width, for a short time budget.
TRAINING = {"depth": 4, "width": 16, "seconds": 180.0, "validation_every": 5}
FLAT_LINE = np.array(SAMPLE_STACK_FLAT_LINE)  # no resin in this neuropil crop: flat cytoplasm


def wait_for_job(widget, kind: str, start) -> None:
    """Start a job with ``start()`` and keep the GUI running until the widget reports it finished."""
    finished = []
    widget.job_finished.connect(finished.append)
    if start() is None:
        sys.exit(f"the widget refused to start the {kind} job")
    while kind not in finished:
        QApplication.processEvents()
        time.sleep(0.02)
    widget.job_finished.disconnect(finished.append)


def settle(seconds: float = 0.5) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def show_only(widget, *sections) -> None:
    for section in (
        widget.data_section,
        widget.model_section,
        widget.training_section,
        widget.preview_section,
        widget.depth_section,
        widget.stack_section,
    ):
        if section in sections:
            section.expand(animate=False)
        else:
            section.collapse(animate=False)
    settle()


def shoot(viewer, name: str) -> None:
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    settle()
    # Toasts such as napari's PyQt5 deprecation warning would cover the canvas.
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    settle()
    path = IMAGES / f"walkthrough_{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model for the preview, depth and full-stack steps")
    args = parser.parse_args()
    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1700, 1050)
    [stack] = viewer.open_sample("napari-nrrn", "fibsem")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    # Wide enough for the depth table's four columns, so no sentence is cut at the window's edge.
    viewer.window._qt_window.resizeDocks([dock], [500], Qt.Horizontal)
    viewer.dims.set_point(0, SLICE * stack.scale[0])
    viewer.reset_view()

    # 1. Data
    show_only(widget, widget.data_section, widget.model_section)
    shoot(viewer, "data")

    # 2. Training with the live loss plot
    training = widget.training_section
    for name, value in TRAINING.items():
        training.train_form.set_value(name, value)
    widget.model_section.device_combo.setCurrentText("cpu")
    training.checkpoint_edit.setText(str(Path(tempfile.mkdtemp()) / "walkthrough-nrrn.pt"))
    show_only(widget, widget.model_section, training)
    started = time.perf_counter()
    wait_for_job(widget, "train", training.start_training)
    print(f"training: {time.perf_counter() - started:.0f} s; {training.train_status.text()}")
    plot = training.loss_plot
    print(f"losses: first {plot.losses[:3]}, last {plot.losses[-3:]}")
    print(f"validation: {list(zip(plot.val_steps, plot.val_losses, strict=True))}")
    shoot(viewer, "training")
    if args.model:
        widget.model_section.load_checkpoint(args.model)
    elif default_model_path().exists():
        widget.model_section.use_shipped_model()
    print(widget.model_section.model_info.text())

    # 3. Preview of the slice on screen
    show_only(widget, widget.preview_section)
    wait_for_job(widget, "preview", widget.preview_section.preview)
    print(widget.preview_section.preview_status.text())
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (1, -1)
    viewer.reset_view()
    viewer.layers.selection.active = viewer.layers[f"{stack.name} NRRN preview"]
    shoot(viewer, "preview")

    # 4. Depth explorer, with a line through a flat area
    viewer.add_shapes(  # 2-D, like the profile dock's "resin lines" layer: shown on every slice
        [FLAT_LINE],
        shape_type="line",
        edge_color="yellow",
        edge_width=1,
        scale=stack.scale[1:],
        name="resin lines",
    )
    viewer.canvas.grid.enabled = False
    viewer.reset_view()
    show_only(widget, widget.depth_section)
    wait_for_job(widget, "blocks", widget.depth_section.explore_depth)
    table = widget.depth_section.blocks_table
    for row in range(table.rowCount()):
        print(*(table.item(row, column).text() for column in range(table.columnCount())))
    blocks = viewer.layers[f"{stack.name} NRRN blocks"]
    viewer.layers.move(viewer.layers.index("resin lines"), len(viewer.layers))  # lines on top
    viewer.layers.selection.active = blocks
    shown = widget.depth_section.shown_depth
    shown.setValue(1)  # the blocks layer shows y_1
    for layer in viewer.layers:
        layer.visible = layer in (blocks, viewer.layers["resin lines"])
    shoot(viewer, "depth_block1")
    shown.setValue(shown.maximum())
    shoot(viewer, "depth_last_block")
    for layer in viewer.layers:
        layer.visible = True
    viewer.layers.remove(blocks)
    viewer.layers.remove("resin lines")
    viewer.layers.remove(f"{stack.name} NRRN preview")

    # 5. The whole stack, written to disk and opened lazily
    show_only(widget, widget.stack_section)
    output = Path(tempfile.mkdtemp()) / "fibsem_sample_nrrn.tif"
    widget.stack_section.output_edit.setText(str(output))
    started = time.perf_counter()
    wait_for_job(widget, "stack", lambda: widget.stack_section.denoise_to_file(output))
    print(f"full stack: {time.perf_counter() - started:.1f} s; {widget.stack_section.stack_status.text()}")
    viewer.dims.set_point(0, SLICE * stack.scale[0])
    viewer.canvas.grid.enabled = True
    viewer.reset_view()
    shoot(viewer, "full_stack")
    viewer.close()


if __name__ == "__main__":
    main()
