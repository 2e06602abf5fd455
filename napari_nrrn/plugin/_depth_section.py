"""Section 4 of the denoise dock: what each depth of the model gives on the slice on screen, and the depth
every preview and full run uses.

Per depth k (what ``model.cut(k)`` returns): the image (shown one depth at a time), the mean resin-line IQR,
the validation loss recorded by training, and the cost in ms per megapixel on the device in use. A model
trained on every depth gets a recommended depth (``engine.depth.recommend_depth``); for others the section
says plainly what a cut gives.
"""

from __future__ import annotations

from napari.layers import Shapes
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHeaderView, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem

from napari_nrrn.plugin._denoise_layers import (
    BLOCKS,
    PREVIEW,
    current_slice,
    result_name,
    show_result,
    slice_result,
    stack_data,
)
from napari_nrrn.plugin._dock_layout import (
    WARNING_STYLE,
    DockSection,
    WrappedLabel,
    follow_layer_list,
    labelled,
    layer_name_combo,
    row_widget,
    set_choices,
)
from napari_nrrn.plugin._dock_state import BLOCKS_JOB, DockJobs, DockState
from napari_nrrn.plugin._model_section import SHIPPED_CHOICES, origin_text, shipped_name, shipped_origin
from napari_nrrn.plugin._profile_layers import lines_in_data_coords
from napari_nrrn.plugin._viewer_helpers import RESIN_LINES_NAME, add_resin_lines, slice_events
from napari_nrrn.words import plural

NO_LINES = "(none)"
COLUMNS = ("output", "resin IQR", "val. loss", "ms / MP")
NOT_YET = "–"
BENCHMARK_NOTE = (
    "The quality numbers are the shipped models' PSNR on held-out FlyEM medulla slices with synthetic noise "
    "(their cards; docs/benchmarks.md), not measured on your data."
)


def val_losses_by_depth(model) -> list[float] | None:
    """The validation loss of every depth that training recorded in the model file, if it did."""
    losses = getattr(model, "metadata", {}).get("training", {}).get("val_loss_by_depth")
    return [float(loss) for loss in losses] if losses and len(losses) == model.depth else None


def what_a_cut_gives(model) -> str:
    """In plain words, what ``model.cut(k)`` is worth, for the depth explorer."""
    if not model.every_depth:
        return (
            "This model was trained on its final output only (the authors' checkpoints and older napari-nrrn "
            "models are): a cut after block k returns that block's estimate without the tail, a poor "
            "denoiser. Keep the full depth, or train a model here: it trains every depth."
        )
    return (
        "This model was trained on every depth, so each cut is a denoiser, but its file records no "
        "validation loss per depth (trained without validation): compare the depths' images and resin IQR."
    )


def shipped_options(measured: dict[str, list[float]]):
    """Every depth of every shipped model as an ``Option`` (its benchmark PSNR, ``SHIPPED_PSNR_DB``), the
    models by name, and the unit of the costs: ms per MP measured on this device where every shipped model's
    were measured (``measured``: name -> ms/MP per depth), else FLOP per pixel, so costs are never mixed."""
    from napari_nrrn.engine.depth import Option, flop_per_pixel
    from napari_nrrn.model.checkpoint import SHIPPED_PSNR_DB, load_model, shipped_model_paths

    models = {name: load_model(path) for name, path in shipped_model_paths().items()}
    timed = all(name in measured for name in models)
    options = [
        Option(name, k, measured[name][k - 1] if timed else flop_per_pixel(k, model.width), psnr)
        for name, model in models.items()
        for k, psnr in enumerate(SHIPPED_PSNR_DB[name], 1)
    ]
    return options, models, "ms / MP measured here" if timed else "FLOP per pixel"


def explore_events(model, stack, z: int, measure_costs: bool, **options):
    """Every depth's output of slice ``z``, then (if ``measure_costs``) the cost of each depth on the device;
    returns (the engine's result, the centre slice, the costs or None)."""
    from napari_nrrn.engine.depth import measure_depth_costs

    result, centre = yield from slice_events(model, stack, z, blocks=True, **options)
    costs = measure_depth_costs(model, device=options.get("device")) if measure_costs else None
    return result, centre, costs


class DepthSection(DockSection):
    """The depth explorer; the depth chosen here ("Use depth") is ``state.depth``.

    Every depth's output of a slice is kept here and one of them at a time is shown as the one-slice layer
    "<input> NRRN blocks", chosen with "Show depth" (1..K): a layer with a depth axis would add a slider to
    the viewer that counts from 0 and outlives the layer's purpose."""

    def __init__(self, state: DockState, jobs: DockJobs, viewer):
        super().__init__("4. Depth explorer")
        self.state, self.jobs, self.viewer = state, jobs, viewer
        self._explored: tuple | None = None  # (layer, z, per-depth outputs) of the last exploration
        self._costs: dict = {}  # device choice -> ms/MP per depth, for the current model
        self._shipped_costs: dict = {}  # device choice -> {shipped model name: ms/MP per depth}
        self.lines_combo = layer_name_combo()
        self.lines_combo.setToolTip(
            f"A Shapes layer with lines drawn through resin (default: one named {RESIN_LINES_NAME!r}); each "
            "depth's output gets the mean IQR of its grey levels along them: flatter is lower"
        )
        self.blocks_button = QPushButton("Show every depth's output")
        self.blocks_button.setToolTip(
            "Denoise the slice on screen at every depth (Show depth picks the one on screen) and measure "
            "each depth's cost"
        )
        self.blocks_button.clicked.connect(lambda: self.explore_depth())
        self.add_lines_button = QPushButton("Add resin lines")
        self.add_lines_button.setToolTip(
            f"Add a Shapes layer {RESIN_LINES_NAME!r} in line mode: draw lines through resin (the embedding "
            "material between cells) for the resin IQR column"
        )
        self.add_lines_button.clicked.connect(lambda: self.add_resin_lines())
        self.shown_depth = QSpinBox()
        self.shown_depth.setRange(1, 1)
        self.shown_depth.setToolTip("Which depth's output the blocks layer shows")
        self.shown_depth.valueChanged.connect(self._show_explored)
        self.blocks_table = QTableWidget(0, len(COLUMNS))
        self.blocks_table.setHorizontalHeaderLabels(COLUMNS)
        self.blocks_table.verticalHeader().setVisible(False)
        # The columns share the dock's width and long cells wrap: a sideways scroll bar would cut the last
        # column and cover the last row at napari's default dock width.
        self.blocks_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.blocks_table.setWordWrap(True)
        self.blocks_table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.blocks_table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._fit_table()
        self.recommendation = WrappedLabel()
        self.use_recommended = QPushButton()
        self.use_recommended.clicked.connect(self._use_recommended)
        self._recommended: int | None = None
        self.depth_spin = QSpinBox()
        self.depth_spin.setRange(1, 1)
        self.depth_spin.setToolTip("Cut the model after this many blocks for the preview and the full run")
        self.depth_spin.valueChanged.connect(self._on_depth)
        self.depth_cost = WrappedLabel()
        self.fastest_button = QPushButton("Fastest within 0.3 dB")
        self.fastest_button.setToolTip(
            "Use the shipped model and depth that costs least among those within 0.3 dB of the best shipped "
            "one, by the shipped models' FlyEM benchmark"
        )
        self.fastest_button.clicked.connect(lambda: self.use_fastest_shipped())
        self.fastest_info = WrappedLabel(BENCHMARK_NOTE)
        self.addWidget(labelled("Resin lines", self.lines_combo))
        self.addWidget(self.add_lines_button)
        self.addWidget(self.blocks_button)
        self.addWidget(labelled("Show depth", self.shown_depth))
        self.addWidget(self.blocks_table)
        self.addWidget(self.recommendation)
        self.addWidget(row_widget(labelled("Use depth", self.depth_spin), self.use_recommended))
        self.addWidget(self.depth_cost)
        self.addWidget(self.fastest_button)
        self.addWidget(self.fastest_info)
        self.expand(animate=False)

        follow_layer_list(viewer.layers, self._refresh_lines)
        self._refresh_lines()
        state.events.model.connect(self._on_model)
        for event in (state.events.model, state.events.input_layer, state.events.running):
            event.connect(self.update_buttons)
        self.update_buttons()

    def add_resin_lines(self) -> Shapes:
        """Add a resin lines layer on the input's pixel grid, in line mode, and measure along it."""
        layer = add_resin_lines(self.viewer, self.state.input_layer)
        self.lines_combo.setCurrentText(layer.name)
        return layer

    def explore_depth(self):
        """Show every depth's output of the slice on screen as "<input> NRRN blocks" (a depth slider), the
        full depth's as the preview, and per depth the mean resin IQR, the recorded validation loss and the
        cost. Always the full model, whatever "use depth" says."""
        state = self.state
        layer, model = state.require_stack(), state.require_model()
        if layer is None or model is None:
            return None
        z = current_slice(layer, self.viewer.dims.point)
        device = state.device

        def done(result, _) -> None:
            (output, depths), centre, costs = result
            if costs is not None:
                self._costs[device] = costs
                if shipped is not None:
                    self._shipped_costs.setdefault(device, {})[shipped] = costs
            self._explored = (layer, z, depths)
            self.shown_depth.setRange(1, len(depths))
            self.shown_depth.setValue(len(depths))
            self._show_explored()
            show_result(self.viewer, result_name(layer.name, PREVIEW), layer, *slice_result(layer, z, output))
            self._fill_table(self._scores(layer, centre, depths))
            self._show_depth_cost()

        stack, tile = stack_data(layer), state.tile
        shipped = shipped_name(state.model_origin)
        measure = device not in self._costs
        return self.jobs.run(
            BLOCKS_JOB,
            lambda _: explore_events(model, stack, z, measure, tile=tile, device=device),
            doing=f"computing every depth's output of slice {z} of {layer.name}",
            total=1,
            describe=lambda event: f"NRRN outputs by depth of slice {z}: tile {event.done}/{event.total}",
            on_done=done,
        )

    def block_scores(self, layer, centre, depths) -> list[float] | None:
        """Mean resin IQR of the input slice and of every depth's output (None without lines)."""
        from napari_nrrn.measures.profiles import mean_line_iqr

        name = self.lines_combo.currentText()
        if name not in self.viewer.layers:
            return None
        lines = lines_in_data_coords(self.viewer.layers[name], layer)
        if not lines:
            return None
        return [mean_line_iqr(image, lines) for image in (centre, *depths)]

    def use_fastest_shipped(self):
        """Use the shipped model and depth ``fastest_within`` picks among every shipped model's depths, by
        their benchmark PSNR and their cost (measured here where the depth explorer timed every shipped
        model on this device, else FLOP); returns the ``Option``."""
        from napari_nrrn.engine.depth import QUALITY_TOLERANCE_DB, fastest_within

        options, models, unit = shipped_options(self._shipped_costs.get(self.state.device, {}))
        chosen = fastest_within(options, QUALITY_TOLERANCE_DB)
        if shipped_name(self.state.model_origin) != chosen.name:
            model = models[chosen.name]
            self.state.set_model(model, origin_text(model, shipped_origin(chosen.name)))
        self.depth_spin.setValue(chosen.depth)
        best = max(options, key=lambda option: option.psnr)
        self.fastest_info.setText(
            f"Fastest within {QUALITY_TOLERANCE_DB:g} dB: the shipped {SHIPPED_CHOICES[chosen.name]} model "
            f"at depth {chosen.depth}, {chosen.psnr:.2f} dB against the best {best.psnr:.2f} dB "
            f"({SHIPPED_CHOICES[best.name]}, depth {best.depth}), costs compared in {unit}. {BENCHMARK_NOTE}"
        )
        return chosen

    def update_buttons(self) -> None:
        state = self.state
        self.fastest_button.setEnabled(not (state.is_training() or state.is_writing()))
        has_model = state.model is not None
        self.depth_spin.setEnabled(has_model and not state.is_writing())
        self.use_recommended.setEnabled(self._recommended is not None and not state.is_writing())
        self.blocks_button.setEnabled(
            state.can_denoise() and not state.is_training() and not state.is_running(BLOCKS_JOB)
        )
        self.shown_depth.setEnabled(self._explored is not None)

    def _on_model(self, model) -> None:
        from napari_nrrn.engine.depth import recommend_depth

        self._costs = {}
        self._explored = None
        self.fastest_info.setText(BENCHMARK_NOTE)
        self.depth_spin.setRange(1, model.depth)
        self.depth_spin.setValue(model.depth)
        losses = val_losses_by_depth(model)
        try:
            self._recommended, reason = (
                recommend_depth(losses) if model.every_depth and losses else (None, "")
            )
        except ValueError:  # a record that is not a curve (e.g. a NaN loss): as if there were none
            self._recommended = None
        if self._recommended is not None:
            self.recommendation.setText(f"Recommended: depth {self._recommended}: {reason}")
            self.recommendation.setStyleSheet("")
        else:
            self._recommended = None
            self.recommendation.setText(what_a_cut_gives(model))
            self.recommendation.setStyleSheet(WARNING_STYLE if not model.every_depth else "")
        self.use_recommended.setVisible(self._recommended is not None)
        self.use_recommended.setText(f"Use depth {self._recommended}")
        self._fill_table(None)
        self._show_depth_cost()

    def _on_depth(self, depth: int) -> None:
        self.state.depth = depth
        self._show_depth_cost()

    def _show_explored(self, *_) -> None:
        """Show the chosen depth's output of the last exploration as the blocks layer, on its slice."""
        if self._explored is None:
            return
        layer, z, depths = self._explored
        image = depths[self.shown_depth.value() - 1]
        show_result(self.viewer, result_name(layer.name, BLOCKS), layer, *slice_result(layer, z, image))

    def _use_recommended(self) -> None:
        self.depth_spin.setValue(self._recommended)

    def _scores(self, layer, centre, depths) -> list[float] | None:
        try:
            return self.block_scores(layer, centre, depths)
        except ValueError as error:  # a line outside the image, a zero-length line
            show_error(f"Resin lines: {error}")
            return None

    def _fill_table(self, scores: list[float] | None) -> None:
        """One row for the input, one per depth; what is not known yet (before a run) shows a dash."""
        model = self.state.model
        losses = val_losses_by_depth(model)
        costs = self._costs.get(self.state.device)
        explored = scores is not None or costs is not None
        rows = [("input", None, None)]
        rows += [
            (
                f"depth {k}" + (" (full)" if k == model.depth else ""),
                None if losses is None else f"{losses[k - 1]:.4g}",
                None if costs is None else f"{costs[k - 1]:.0f}",
            )
            for k in range(1, model.depth + 1)
        ]
        table = self.blocks_table
        table.setRowCount(len(rows))
        for row, (name, loss, cost) in enumerate(rows):
            if scores is not None:
                iqr = f"{scores[row]:.2f}"
            else:
                iqr = "draw resin lines" if explored else NOT_YET
            cells = (name, iqr, loss or (NOT_YET if row else ""), cost or (NOT_YET if row else ""))
            for column, text in enumerate(cells):
                table.setItem(row, column, QTableWidgetItem(text))
        table.resizeRowsToContents()
        self._fit_table()

    def _refresh_lines(self, event=None) -> None:
        shapes = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        chosen = self.lines_combo.currentText()
        set_choices(self.lines_combo, [NO_LINES, *shapes], chosen if chosen in shapes else RESIN_LINES_NAME)

    def _fit_table(self) -> None:
        """Size the table to its rows, so no row hides behind a scroll bar."""
        table = self.blocks_table
        rows = sum(table.rowHeight(row) for row in range(table.rowCount()))
        table.setFixedHeight(table.horizontalHeader().sizeHint().height() + rows + 2 * table.frameWidth())

    def _show_depth_cost(self, *_) -> None:
        model = self.state.model
        if model is None:
            self.depth_cost.setText("")
            return
        depth, full = self.depth_spin.value(), model.depth
        costs = self._costs.get(self.state.device)
        measured = f" ({costs[depth - 1]:.0f} ms per megapixel measured here)" if costs else ""
        if depth == full:
            self.depth_cost.setText(f"All {plural(full, 'block')} (and the tail) are used{measured}.")
            return
        text = (
            f"Preview and full run stop after block {depth} of {full}: {depth}/{full} of the block work, "
            f"about {full / depth:.1f}× faster{measured}."
        )
        if not model.every_depth:
            text += (
                f" A cut of this model returns block {depth}'s estimate without the tail: a poor denoiser "
                "(it was trained on its final output only)."
            )
        self.depth_cost.setText(text)
