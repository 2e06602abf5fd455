"""Regenerate docs/images/walkthrough_*.png: the NRRN denoising dock at work on the FIB-SEM sample.

Real screenshots of the viewer (canvas and dock). Needs a display; on a headless machine run it under Xvfb:

    xvfb-run -a -s "-screen 0 1920x1080x24" python docs/make_walkthrough_screenshots.py [--model MODEL.pt]

The window is taken as a new user meets it: napari's default window size, the dock's default width, the
sample's own layer names, Qt6 (PyQt6, chosen here unless QT_API says otherwise). It trains a model on the
sample in the widget for a short time budget (the numbers it prints go into docs/walkthrough.md). The later
steps use ``--model`` (loaded with the dock's Load button), else the shipped model where napari-nrrn has one,
else the model just trained. It denoises the sample into a temporary folder
and writes the PNGs next to this script, in images/.
"""

from __future__ import annotations

import argparse
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
from qtpy.QtCore import QPoint
from qtpy.QtWidgets import QApplication

from napari_nrrn.io.samples import SAMPLE_STACK_FLAT_LINE
from napari_nrrn.model.checkpoint import default_model_path

IMAGES = Path(__file__).resolve().parent / "images"
SLICE = 16
# Training in the dock: the default depth (4 blocks), half the default width, for a short time budget.
TRAINING = {"depth": 4, "width": 16, "seconds": 180.0, "validation_every": 5}
FLAT_LINE = np.array(SAMPLE_STACK_FLAT_LINE)  # no resin in this neuropil crop: flat cytoplasm


def wait_for_job(widget, kind: str, start, during=None) -> None:
    """Start a job with ``start()`` and keep the GUI running until the widget reports it finished.
    ``during()`` is called on every turn of the loop while the job runs."""
    finished = []
    widget.job_finished.connect(finished.append)
    if start() is None:
        sys.exit(f"the widget refused to start the {kind} job")
    while kind not in finished:
        QApplication.processEvents()
        if during is not None:
            during()
        time.sleep(0.02)
    widget.job_finished.disconnect(finished.append)


def settle(seconds: float = 0.5) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def show_only(widget, *sections) -> None:
    for section in widget.sections:
        if section in sections:
            section.expand(animate=False)
        else:
            section.collapse(animate=False)
    settle()


def scroll_to(widget, child) -> None:
    """Scroll the dock so that ``child`` (a widget inside it) starts at the top of its visible part: the
    default window is too short to show a whole section."""
    column = widget.scroll.widget()
    widget.scroll.verticalScrollBar().setValue(child.mapTo(column, QPoint(0, 0)).y() - 6)
    settle()


def shoot(viewer, name: str) -> None:
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    settle()
    # A toast (any napari notification) would cover the canvas.
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
    [stack] = viewer.open_sample("napari-nrrn", "fibsem")
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    viewer.dims.set_point(0, SLICE * stack.scale[0])
    viewer.reset_view()

    # 1. Data
    show_only(widget, widget.data_section, widget.model_section)
    scroll_to(widget, widget.data_section.data_info)  # from the shape line to the drift warning
    shoot(viewer, "data")

    # 2. Training with the live loss plot, shot while it runs (the time left), 3/4 through its budget
    training = widget.training_section
    for name, value in TRAINING.items():
        training.train_form.set_value(name, value)
    widget.model_section.device_combo.setCurrentText("cpu")
    training.checkpoint_edit.setText(str(Path(tempfile.mkdtemp()) / "walkthrough-nrrn.pt"))
    show_only(widget, widget.model_section, training)
    scroll_to(widget, training.train_button)  # Train, the loss plot and the status with the time left
    started = time.perf_counter()
    shot = []

    def shoot_while_training() -> None:
        if not shot and time.perf_counter() - started > 0.75 * TRAINING["seconds"]:
            shot.append(training.train_status.text())
            shoot(viewer, "training")

    wait_for_job(widget, "train", training.start_training, during=shoot_while_training)
    print(f"training status when shot: {shot}")
    print(f"training: {time.perf_counter() - started:.0f} s; {training.train_status.text()}")
    plot = training.loss_plot
    print(f"losses: first {plot.losses[:3]}, last {plot.losses[-3:]}")
    print(f"validation: {list(zip(plot.val_steps, plot.val_losses, strict=True))}")
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

    # 4. Depth explorer, with a line through a flat area, added with the section's "Add resin lines" button
    depth = widget.depth_section
    viewer.canvas.grid.enabled = False
    viewer.layers.selection.active = stack
    lines = depth.add_resin_lines()
    lines.add_lines([FLAT_LINE])
    lines.mode = "select"  # the screenshot shows the line, not the drawing cursor
    viewer.reset_view()
    show_only(widget, depth)
    wait_for_job(widget, "blocks", depth.explore_depth)
    table = depth.blocks_table
    for row in range(table.rowCount()):
        print(*(table.item(row, column).text() for column in range(table.columnCount())))
    blocks = viewer.layers[f"{stack.name} NRRN blocks"]
    viewer.layers.move(viewer.layers.index(lines), len(viewer.layers))  # lines on top
    viewer.layers.selection.active = blocks
    scroll_to(widget, depth.blocks_button)  # Show depth, the table and the recommendation
    shown = depth.shown_depth
    shown.setValue(1)  # the blocks layer shows y_1
    for layer in viewer.layers:
        layer.visible = layer in (blocks, lines)
    shoot(viewer, "depth_block1")
    shown.setValue(shown.maximum())
    shoot(viewer, "depth_last_block")
    for layer in viewer.layers:
        layer.visible = True
    viewer.layers.remove(blocks)
    viewer.layers.remove(lines)
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
